"""Line identity: the lease keeps one service per line; the upgrade labels old rows with their line."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import pytest

from controller.historian.lease import LineHeld
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from tests.controller import test_historian as th

CONFIG = '[line]\nname = "{name}"\n'


async def test_a_line_held_by_a_running_service_is_refused_to_a_second(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    first = Historian(url, line="line_a", spill_dir=tmp_path / "a", **th.FAST)
    await first.start()
    try:
        again = Historian(url, line="line_a", spill_dir=tmp_path / "a2", **th.FAST)
        with pytest.raises(LineHeld, match=r"line 'line_a' is held by another running service"):
            await again.start()
        other = Historian(url, line="line_b", spill_dir=tmp_path / "b", **th.FAST)
        await other.start()  # another line on the same database is no conflict
        await other.stop()
    finally:
        await first.stop()
    after = Historian(url, line="line_a", spill_dir=tmp_path / "a3", **th.FAST)
    await after.start()  # released by a clean stop
    await after.stop()


async def test_a_lease_left_by_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    historian = Historian(url, line="line_a", spill_dir=tmp_path / "a", **th.FAST)
    await historian.start()
    await historian.stop()
    with sqlite3.connect(tmp_path / "site.db") as db:  # as a kill -9 leaves it: a fresh heartbeat
        db.execute(
            "UPDATE lines SET holder = ?, heartbeat_at = ? WHERE name = 'line_a'",
            (f"{socket.gethostname()}:999999999:dead", time.time()),
        )
    again = Historian(url, line="line_a", spill_dir=tmp_path / "a", **th.FAST)
    await again.start()
    await again.stop()
    with sqlite3.connect(tmp_path / "site.db") as db:  # another host's live lease is respected
        db.execute(
            "UPDATE lines SET holder = 'elsewhere:1:x', heartbeat_at = ? WHERE name = 'line_a'",
            (time.time(),),
        )
    with pytest.raises(LineHeld, match="elsewhere:1:x"):
        await Historian(url, line="line_a", spill_dir=tmp_path / "a", **th.FAST).start()


def _old_database(path: Path, line: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO runs (id, started_at, status, config_hash, config_text, user) "
            "VALUES ('r1', 1.0, 'complete', 'h', ?, 'svc')",
            (CONFIG.format(name=line),),
        )
        db.execute("INSERT INTO items (id, kind, material, registered_at) VALUES ('E1', 'base', 'Li', 1.0)")


async def test_the_upgrade_labels_old_rows_with_the_line_their_runs_recorded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    await upgrade(url, "0004")
    _old_database(path, "line_a")
    with pytest.raises(RuntimeError, match=r"recorded by line\(s\) line_a, not 'line_b'"):
        await upgrade(url, line="line_b")  # another line's config must not relabel line_a's records
    await upgrade(url, line="line_a")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT line, id FROM items").fetchall() == [("line_a", "E1")]
        assert db.execute("SELECT line FROM runs").fetchall() == [("line_a",)]
        assert db.execute("SELECT name FROM lines").fetchall() == [("line_a",)]


async def test_without_a_given_line_the_runs_must_name_one(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    await upgrade(url, "0004")
    _old_database(path, "line_a")
    await upgrade(url)  # BatchStore and the tests upgrade without a line: the runs say which
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT line FROM items").fetchall() == [("line_a",)]
