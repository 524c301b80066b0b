"""Two upgrades of one empty database at the same instant (two services starting together): both end
well, and the schema is made once. Each run holds the migration lock itself while both upgrades start,
so both are shown waiting on it (not merely lucky in their timing), then lets them go together."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
from alembic import command
from sqlalchemy.pool import NullPool

from bench.postgres_cluster import PgCluster
from controller.historian.migration_lock import LOCK_FILE_SUFFIX, MIGRATION_LOCK_KEY
from controller.historian.schema import make_engine
from controller.historian.upgrade import alembic_config, ensure_schema, head_revision

WAIT_S = 90.0


def _upgrades(url: str, cwd: Path) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "controller.cli", "db", "upgrade", "--database", url]
    return [
        subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]


def _both_succeed(upgrades: list[subprocess.Popen[str]]) -> None:
    try:
        for proc in upgrades:
            out, err = proc.communicate(timeout=WAIT_S)
            assert proc.returncode == 0, err[-3000:]
            assert "schema at revision" in out, out
    finally:
        for proc in upgrades:  # a failed check leaves no process behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


async def _waiters(conn: asyncpg.Connection) -> int:
    found = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return int(found)


async def test_two_upgrades_of_an_empty_postgresql_database_make_the_schema_once(
    pg: PgCluster, tmp_path: Path
) -> None:
    url = await asyncio.to_thread(pg.create_database, "race")
    holder = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        upgrades = _upgrades(url, tmp_path)
        try:
            async with asyncio.timeout(WAIT_S):
                while await _waiters(holder) < 2:
                    assert all(p.poll() is None for p in upgrades), "an upgrade ended without waiting"
                    await asyncio.sleep(0.1)
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            await asyncio.to_thread(_both_succeed, upgrades)
        versions = await holder.fetch("SELECT version_num FROM alembic_version")
        assert [r["version_num"] for r in versions] == [await head_revision()]
    finally:
        await holder.close()


def _blocked_flocks() -> int:
    """Processes waiting for a flock: /proc/locks lists each waiter with a '->' before its entry."""
    return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and "FLOCK" in line)


def test_two_upgrades_of_an_empty_sqlite_file_make_the_schema_once(tmp_path: Path) -> None:
    db = tmp_path / "line.db"
    url = f"sqlite:///{db}"
    before = _blocked_flocks()  # other workers' flocks, if any, are theirs
    with open(f"{db}{LOCK_FILE_SUFFIX}", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        upgrades = _upgrades(url, tmp_path)
        try:
            deadline = time.monotonic() + WAIT_S
            while _blocked_flocks() < before + 2:
                assert all(p.poll() is None for p in upgrades), "an upgrade ended without waiting"
                assert time.monotonic() < deadline, "the upgrades did not wait for the migration lock"
                time.sleep(0.1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            _both_succeed(upgrades)
    with sqlite3.connect(db) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert versions == [(asyncio.run(head_revision()),)]


async def test_a_service_that_finds_another_s_migration_half_done_waits_for_it(tmp_path: Path) -> None:
    """On SQLite a migration is a series of statements: a service starting meanwhile may see tables and
    no revision yet. That is not a foreign database: it waits for the migration lock and reads again."""
    db = tmp_path / "line.db"
    url = f"sqlite:///{db}"
    half_done = threading.Event()
    done = threading.Event()

    def other_service_migrating() -> None:
        with open(f"{db}{LOCK_FILE_SUFFIX}", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with sqlite3.connect(db) as conn:  # its first table made, no revision yet
                    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY)")
                half_done.set()
                deadline = time.monotonic() + WAIT_S
                while _blocked_flocks() < 1 and time.monotonic() < deadline:  # the service waits on us
                    time.sleep(0.05)
                with sqlite3.connect(db) as conn:
                    conn.execute("DROP TABLE runs")
                command.upgrade(alembic_config(url, line="line1"), "head")  # the rest of its migration
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
                done.set()

    other = threading.Thread(target=other_service_migrating)
    other.start()
    engine = make_engine(url, poolclass=NullPool)
    try:
        assert await asyncio.to_thread(half_done.wait, WAIT_S)
        await ensure_schema(engine, url, WAIT_S, line="line1")  # no SchemaOutdated: it waited
        assert done.is_set()
    finally:
        await engine.dispose()
        await asyncio.to_thread(other.join, WAIT_S)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (await head_revision(),)
        ]
