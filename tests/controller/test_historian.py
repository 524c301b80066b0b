"""The historian against real databases: SQLite files and a throwaway PostgreSQL cluster.

Every test that can runs on both backends. Outages are real: the SQLite file is locked by another
connection (root ignores file permissions, so an unwritable path would not fail here), the
PostgreSQL server is stopped with `pg_ctl stop -m fast` and started again. Nothing asserts on time:
waits poll a condition with a generous timeout and fail with the stats if it never comes.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from bench.postgres_cluster import PgCluster, unavailable_reason
from controller.historian.errors import HistorianUnavailable, SchemaOutdated
from controller.historian.schema import is_sample_partition, make_engine, metadata
from controller.historian.store import Historian, HistorianStats
from controller.historian.upgrade import alembic_config, current_revision, head_revision, upgrade
from controller.line.actions import Command, SetPort, SetValve
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmBoard, AlarmDefinition
from controller.line.gate import GateRecord
from controller.line.interlocks import Refusal, Verdict
from controller.line.items import Item, ItemKind
from controller.line.ledger import LedgerEntry
from controller.line.poller import Sample
from drivers.errors import ConfigError
from drivers.reading import Quality, Reading

WAIT_S = 30.0
FAST: dict[str, Any] = {"batch_s": 0.02, "timeout_s": 2.0, "retry_s": 0.05}  # outages noticed quickly
_db_numbers = itertools.count()


# --- databases --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster | None]:
    """One cluster for the module (a fresh database per test); None where PostgreSQL is absent."""
    if unavailable_reason() is not None:
        yield None
        return
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Db:
    """A fresh, empty database and the means to break it and heal it again."""

    backend: str
    url: str
    break_: Callable[[], Awaitable[None]]
    heal: Callable[[], Awaitable[None]]


class SqliteLock:
    """Another connection holding SQLite's write lock: our writer gets `database is locked`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def _lock(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def _release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None

    async def lock(self) -> None:
        await asyncio.to_thread(self._lock)

    async def release(self) -> None:
        await asyncio.to_thread(self._release)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path, pg: PgCluster | None) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "data" / "line.db"
        lock = SqliteLock(path)
        try:
            yield Db("sqlite", f"sqlite:///{path}", lock.lock, lock.release)
        finally:
            await lock.release()
        return
    if pg is None:
        pytest.skip(str(unavailable_reason()))
    url = await asyncio.to_thread(pg.create_database, f"t{next(_db_numbers)}")

    async def stop() -> None:
        await asyncio.to_thread(pg.stop)

    async def start() -> None:
        await asyncio.to_thread(pg.start)

    try:
        yield Db("postgresql", url, stop, start)
    finally:
        if not pg.running:
            await start()


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"


# --- helpers ----------------------------------------------------------------------------------------


def sample(value: float, device: str = "antechamber_gauges", channel: str = "pressure_ch1") -> Sample:
    quality = Quality.OK if math.isfinite(value) else Quality.ERROR
    return Sample(device, channel, Reading(value, "Pa", quality, time.time(), time.monotonic()))


def refused(user: str = "alice") -> GateRecord:
    refusal = Refusal("I2", "port_sides", "outlet side not inert", {"frost_point_c": -12.5})
    command_ = Command(SetPort("inlet_gate", True), user, "hmi", reason="transfer", meta={"step": "3"})
    return GateRecord(time.time(), command_, Verdict(False, (refusal,)), executed=False, duration_s=0.001)


def done(index: int, user: str = "alice") -> GateRecord:
    command_ = Command(SetValve("inlet", "rough", bool(index % 2)), user, "sequence", reason=f"step {index}")
    return GateRecord(time.time(), command_, Verdict(True), executed=True, duration_s=0.01)


async def rows(url: str, sql: str) -> list[dict[str, Any]]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with asyncio.timeout(WAIT_S), engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql))).mappings()]
    finally:
        await engine.dispose()


async def until(condition: Callable[[], bool], what: str, historian: Historian | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            stats = historian.stats if historian is not None else None
            raise AssertionError(f"timed out waiting for {what}; stats: {stats}")
        await asyncio.sleep(0.02)


class Health:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, str]] = []

    def __call__(self, healthy: bool, detail: str) -> None:
        self.calls.append((healthy, detail))

    @property
    def went_down(self) -> bool:
        return any(not ok for ok, _ in self.calls)

    @property
    def is_up(self) -> bool:
        return bool(self.calls) and self.calls[-1][0]


def spill_files(spill_dir: Path) -> list[Path]:
    return sorted(spill_dir.glob("spill-*.jsonl")) if spill_dir.is_dir() else []


def make_unwritable(spill_dir: Path) -> None:
    """Root ignores permissions: a file where the directory was fails every spill, as a lost disk would."""
    shutil.rmtree(spill_dir)
    spill_dir.write_text("not a directory: every spill fails")


def clean(stats: HistorianStats) -> bool:
    return stats.buffered == 0 and stats.spilled == 0 and stats.spill_files == 0


# --- schema and migrations --------------------------------------------------------------------------


def _schema_differences(conn: Connection) -> list[Any]:
    def declared(name: str | None, kind: str, _parent: Any) -> bool:
        return not (kind == "table" and is_sample_partition(name))

    context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": declared})
    return [d for d in compare_metadata(context, metadata) if d]


async def test_an_empty_database_gets_the_schema_by_migration_and_it_matches_the_code(
    db: Db, spill_dir: Path
) -> None:
    assert await current_revision(db.url) is None
    historian = Historian(db.url, line="line1", spill_dir=spill_dir)
    await historian.start()
    await historian.stop()

    assert await current_revision(db.url) == await head_revision()
    engine = make_engine(db.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_schema_differences)
    finally:
        await engine.dispose()
    assert differences == []


async def test_migrations_go_down_to_nothing_and_up_again(db: Db) -> None:
    await upgrade(db.url)
    config = alembic_config(db.url)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await current_revision(db.url) is None
    tables = await rows(
        db.url,
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if db.backend == "sqlite"
        else "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
    )
    assert {t["name"] for t in tables} <= {"alembic_version"}
    await upgrade(db.url)
    assert await current_revision(db.url) == await head_revision()


async def test_a_database_behind_head_is_refused_until_upgraded(db: Db, spill_dir: Path) -> None:
    await upgrade(db.url, "0001")
    historian = Historian(db.url, line="line1", spill_dir=spill_dir)
    with pytest.raises(SchemaOutdated, match=r"revision 0001.*run `depline db upgrade`"):
        await historian.start()

    await upgrade(db.url)
    historian = Historian(db.url, line="line1", spill_dir=spill_dir)
    await historian.start()
    await historian.stop()


async def test_tables_not_made_by_the_migrations_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()
    with pytest.raises(SchemaOutdated, match="not made by depline's migrations"):
        await Historian(url, line="line1", spill_dir=tmp_path / "spill").start()


def test_only_sqlite_and_postgresql_urls_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sqlite:/// and postgresql://"):
        Historian("mysql://user@host/db", line="line1", spill_dir=tmp_path)


# --- writing and reading back -----------------------------------------------------------------------


async def test_every_kind_of_record_round_trips(db: Db, spill_dir: Path) -> None:
    historian = Historian(db.url, line="line1", spill_dir=spill_dir, batch_s=0.05)
    board = AlarmBoard([AlarmDefinition("inlet.frost_point", Severity.HIGH, "Inlet frost point high", "")])
    board.subscribe(historian.record_alarm)
    await historian.start()
    try:
        run_id = historian.start_run("[line]\nname = 'test'\n", "alice", recipe_text="[recipe]\n")
        for i in range(50):
            historian.record_sample(sample(100.0 + i))
            historian.record_sample(sample(-40.0 - i, "inlet_dewpoint", "frost_point"))
        historian.record_sample(sample(math.nan))
        historian.record_command(done(1))
        historian.record_command(refused())
        historian.record_transition("inlet", "sealed", "evacuating", "evacuate", reason="recipe step 1")
        board.raise_alarm("inlet.frost_point", time.time(), {"frost_point_c": -31.0})
        board.acknowledge("inlet.frost_point", "bob", time.time())
        foil = Item("foil-1", ItemKind.BASE_MATERIAL, "Li", "inlet")
        historian.record_item(foil, ts=1000.0)
        historian.record_item(foil, ts=2000.0)  # registered once: the first one counts
        for event, atmosphere in (("registered", "inert"), ("moved", "vacuum")):
            historian.record_ledger(
                LedgerEntry(time.time(), "foil-1", event, "inlet", atmosphere, True, {"p": 1.0})
            )
        historian.end_run(run_id, "complete")
        assert await historian.flush(WAIT_S)

        trend = await historian.recent_samples("antechamber_gauges", "pressure_ch1", limit=10)
        assert [s["value"] for s in trend[:-1]] == [140.0 + i for i in range(1, 10)]
        assert math.isnan(trend[-1]["value"])
        assert trend[-1]["quality"] == "error"
        assert {s["unit"] for s in trend} == {"Pa"}
        frost = await historian.recent_samples("inlet_dewpoint", "frost_point", since_ts=0.0, limit=1000)
        assert [s["value"] for s in frost] == [-40.0 - i for i in range(50)]

        [summary] = await historian.runs()
        assert summary["id"] == run_id
        assert summary["status"] == "complete"
        assert summary["ended_at"]
        assert "config_text" not in summary
        full = await historian.run(run_id)
        assert full is not None
        assert full["recipe_text"] == "[recipe]\n"
        assert full["user"] == "alice"
        assert await historian.run("no-such-run") is None

        cmds = await historian.commands(run_id=run_id)
        assert [c["outcome"] for c in cmds] == ["done", "refused"]
        assert cmds[0]["action"] == {"type": "SetValve", "space": "inlet", "valve": "rough", "open": True}
        assert cmds[0]["request_reason"] == "step 1"
        assert cmds[0]["reason"] == "allowed"
        assert cmds[1]["invariant"] == "I2"
        assert cmds[1]["action"]["meta"] == {"step": "3"}
        assert cmds[1]["refusals"][0]["evidence"] == {"frost_point_c": -12.5}
        assert len(await historian.commands(since=time.time() + 60)) == 0

        events = await historian.alarm_events()
        assert [(e["event"], e["to_state"]) for e in events] == [
            ("condition_raised", "active_unacked"),
            ("acknowledge", "active_acked"),
        ]
        assert events[0]["evidence"] == {"frost_point_c": -31.0}
        assert events[1]["user"] == "bob"
        assert events[0]["condition_active"] is True

        ledger_rows = await historian.item_ledger("foil-1")
        assert [(e["event"], e["atmosphere"], e["exposed"]) for e in ledger_rows] == [
            ("registered", "inert", True),
            ("moved", "vacuum", True),
        ]
        assert [(i["id"], i["registered_at"]) for i in await historian.items()] == [("foil-1", 1000.0)]

        [transition] = await rows(db.url, "SELECT * FROM transitions")
        assert transition["run_id"] == run_id
        assert transition["dest"] == "evacuating"
        stats = historian.stats
        assert stats.healthy
        assert stats.dropped == 0
        assert clean(stats)
    finally:
        await historian.stop()


async def test_stop_writes_what_is_still_buffered(db: Db, spill_dir: Path) -> None:
    historian = Historian(
        db.url, line="line1", spill_dir=spill_dir, batch_s=60.0
    )  # nothing due before the stop
    await historian.start()
    for i in range(500):
        historian.record_sample(sample(float(i)))
    historian.record_command(done(0))
    assert historian.stats.buffered == 501
    await historian.stop()

    values = await rows(db.url, "SELECT value FROM samples ORDER BY id")
    assert [r["value"] for r in values] == [float(i) for i in range(500)]
    assert len(await rows(db.url, "SELECT id FROM commands")) == 1
    assert spill_files(spill_dir) == []

    historian.record_sample(sample(1.0))  # after stop: refused, and counted
    assert historian.stats.dropped == 1


# --- outages ----------------------------------------------------------------------------------------


async def test_an_outage_never_blocks_callers_and_loses_nothing(db: Db, spill_dir: Path) -> None:
    health = Health()
    historian = Historian(
        db.url,
        line="line1",
        spill_dir=spill_dir,
        batch_s=0.02,
        max_buffer=40,
        on_health=health,
        timeout_s=2.0,
        retry_s=0.05,
    )
    await historian.start()
    try:
        for i in range(10):
            historian.record_sample(sample(float(i)))
        historian.record_command(done(0))
        assert await historian.flush(WAIT_S)

        await db.break_()
        for i in range(10, 310):
            historian.record_sample(sample(float(i)))  # plain calls: they return at once, whatever the DB
            if i % 50 == 0:
                historian.record_command(done(i))
                await asyncio.sleep(0.01)
        await until(lambda: health.went_down, "health to go down", historian)
        await until(lambda: bool(spill_files(spill_dir)), "a spill file", historian)
        stats = historian.stats
        assert stats.spilled > 0
        assert stats.spilled_total > 0
        assert stats.buffered <= 2 * 40
        assert stats.last_error
        assert not stats.healthy
        if db.backend == "postgresql":  # the API says so rather than hanging
            with pytest.raises(HistorianUnavailable):
                await historian.runs()
        else:  # WAL: readers are not locked out by a writer
            assert await historian.runs() == []

        await db.heal()
        assert await historian.flush(WAIT_S), historian.stats
        await until(lambda: health.is_up, "health to come back", historian)
        stats = historian.stats
        assert stats.dropped == 0
        assert clean(stats)
        assert spill_files(spill_dir) == []
    finally:
        await historian.stop()

    values = await rows(db.url, "SELECT value FROM samples ORDER BY id")
    assert [r["value"] for r in values] == [float(i) for i in range(310)]  # once each, in order
    reasons = await rows(db.url, "SELECT request_reason FROM commands ORDER BY id")
    assert [r["request_reason"] for r in reasons] == [f"step {i}" for i in (0, 50, 100, 150, 200, 250, 300)]
    assert [ok for ok, _ in health.calls] == [False, True]


async def test_a_failing_spill_drops_rows_loudly_and_keeps_the_rest_in_order(db: Db, spill_dir: Path) -> None:
    health = Health()
    historian = Historian(
        db.url,
        line="line1",
        spill_dir=spill_dir,
        batch_s=0.02,
        max_buffer=20,
        on_health=health,
        timeout_s=2.0,
        retry_s=0.05,
    )
    await historian.start()
    try:
        await db.break_()
        await asyncio.to_thread(make_unwritable, spill_dir)
        for i in range(200):
            historian.record_sample(sample(float(i)))
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        await until(lambda: historian.stats.dropped > 0, "rows to be dropped", historian)
        assert any(not ok and "dropped" in detail for ok, detail in health.calls)
        await db.heal()
        assert await historian.flush(WAIT_S), historian.stats
        await until(lambda: health.is_up, "health to come back", historian)
        stats = historian.stats
    finally:
        await historian.stop()

    values = [r["value"] for r in await rows(db.url, "SELECT value FROM samples ORDER BY id")]
    assert len(values) + stats.dropped == 200
    assert values == sorted(values)
    assert len(set(values)) == len(values)


async def test_rows_spilled_by_one_run_are_replayed_once_by_the_next(db: Db, spill_dir: Path) -> None:
    first = Historian(db.url, line="line1", spill_dir=spill_dir, max_buffer=30, **FAST)
    await first.start()
    await db.break_()
    for i in range(100):
        first.record_sample(sample(float(i)))
    first.record_command(done(7))
    await until(lambda: not first.healthy, "the outage to be noticed", first)
    await first.stop(flush_timeout_s=0.5)
    left = spill_files(spill_dir)
    assert left
    assert first.stats.dropped == 0
    copies = [(p.name, p.read_bytes()) for p in left]
    await db.heal()

    second = Historian(db.url, line="line1", spill_dir=spill_dir, batch_s=0.02)
    await second.start()
    try:
        assert await second.flush(WAIT_S), second.stats
        assert spill_files(spill_dir) == []
    finally:
        await second.stop()

    # as if a process had crashed after committing and before deleting its files: replay them again
    for name, data in copies:
        (spill_dir / name).write_bytes(data)
    third = Historian(db.url, line="line1", spill_dir=spill_dir, batch_s=0.02)
    await third.start()
    try:
        assert await third.flush(WAIT_S), third.stats
    finally:
        await third.stop()

    values = await rows(db.url, "SELECT value FROM samples ORDER BY id")
    assert [r["value"] for r in values] == [float(i) for i in range(100)]
    assert len(await rows(db.url, "SELECT id FROM commands")) == 1
    assert spill_files(spill_dir) == []


async def test_a_row_the_database_refuses_is_set_aside_without_stopping_the_rest(
    db: Db, spill_dir: Path
) -> None:
    health = Health()
    historian = Historian(db.url, line="line1", spill_dir=spill_dir, batch_s=60.0, on_health=health)
    await historian.start()
    try:
        for i in range(20):
            historian.record_sample(sample(float(i)))
            if i == 13:
                historian.current_run = "never-started"  # its commands violate the foreign key
                historian.record_command(done(i))
                historian.current_run = None
        assert await historian.flush(WAIT_S), historian.stats
        assert historian.stats.dropped == 1
        assert any(not ok and "rejected" in detail for ok, detail in health.calls)
        assert len(await asyncio.to_thread(lambda: list(spill_dir.glob("rejected-*.jsonl")))) == 1
    finally:
        await historian.stop()
    values = await rows(db.url, "SELECT value FROM samples ORDER BY id")
    assert [r["value"] for r in values] == [float(i) for i in range(20)]


async def test_a_database_down_at_start_is_written_when_it_comes_up(
    pg: PgCluster | None, spill_dir: Path
) -> None:
    if pg is None:
        pytest.skip(str(unavailable_reason()))
    url = await asyncio.to_thread(pg.create_database, f"t{next(_db_numbers)}")
    health = Health()
    await asyncio.to_thread(pg.stop)
    historian = Historian(
        url, line="line1", spill_dir=spill_dir, batch_s=0.02, on_health=health, timeout_s=2.0, retry_s=0.05
    )
    try:
        await historian.start()  # degraded, not refused
        assert health.calls
        assert not health.calls[-1][0]
        for i in range(30):
            historian.record_sample(sample(float(i)))
        await asyncio.to_thread(pg.start)
        assert await historian.flush(WAIT_S), historian.stats
        await until(lambda: health.is_up, "health to come back", historian)
    finally:
        if not pg.running:
            await asyncio.to_thread(pg.start)
        await historian.stop()
    assert await current_revision(url) == await head_revision()  # the schema was made on the way
    values = await rows(url, "SELECT value FROM samples ORDER BY id")
    assert [r["value"] for r in values] == [float(i) for i in range(30)]
