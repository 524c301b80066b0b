"""The flight recorder's speed work: the 0007 time indexes, trends of min/max buckets, event-driven rejudge.

The database tests run on SQLite and on a real PostgreSQL (the historian tests' `db` fixture); rejudge
is judged over a synthetic night of the benchmark (`bench.flight_recorder.build_night`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.pool import NullPool

from bench.flight_recorder import build_night
from controller.config.line_config import load_line_config
from controller.flight_recorder.rejudge import rejudge
from controller.flight_recorder.timeline import Window
from controller.historian.schema import make_engine
from controller.historian.store import Historian
from controller.historian.upgrade import alembic_config, current_revision, head_revision, upgrade
from tests.controller import test_historian as th
from tests.test_cli import ROOT

db = th.db  # the fixtures, reused: a fresh SQLite file or PostgreSQL database per test
pg = th.pg

LINE = "line1"
T0 = 1_796_000_000.0
TIME_INDEXES = {
    f"ix_{t}_line_ts" for t in ("ledger", "commands", "alarm_events", "transitions", "mode_changes")
}
COVERING = "ix_samples_channel_id_ts_value_quality"
LEDGER_RANGE = f"SELECT * FROM ledger WHERE line = '{LINE}' AND ts >= {T0} AND ts <= {T0 + 60} ORDER BY ts"
LATEST = f"SELECT ts, value FROM samples WHERE channel_id = 1 AND ts <= {T0 + 30} ORDER BY ts DESC LIMIT 1"


async def _run(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """The statements on one connection (a SET holds for the EXPLAIN after it); the last one's rows."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = None
            for statement in statements:
                result = await conn.execute(text(statement))
            return [tuple(r) for r in result] if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


async def _indexes(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:

            def names(sync: Any) -> set[str]:
                found = inspect(sync)
                return {str(i["name"]) for table in found.get_table_names() for i in found.get_indexes(table)}

            return await conn.run_sync(names)
    finally:
        await engine.dispose()


async def _plan(url: str, backend: str, query: str) -> str:
    if backend == "sqlite":
        return " ".join(str(r[-1]) for r in await _run(url, f"EXPLAIN QUERY PLAN {query}"))
    # a few rows: PostgreSQL would rightly scan them; forbidding that shows the index can serve the query
    return " ".join(str(r[0]) for r in await _run(url, "SET enable_seqscan = off", f"EXPLAIN {query}"))


async def _old_rows(url: str) -> None:
    """What a 0006 database holds: a minute of one channel's samples, an item and its ledger row."""
    await _run(
        url,
        f"INSERT INTO channels (id, line, device, channel, unit) VALUES (1, '{LINE}', 'process_gauges', "
        "'pressure_ch1', 'Pa')",
        "INSERT INTO samples (ts, channel_id, value, quality) VALUES "
        + ", ".join(f"({T0 + i}, 1, {100.0 + i}, 'ok')" for i in range(60)),
        f"INSERT INTO items (line, id, kind, material, registered_at) VALUES ('{LINE}', 'E1', 'electrode', "
        f"'Li', {T0})",
        "INSERT INTO ledger (line, ts, item, event, space, atmosphere, exposed, evidence) VALUES "
        f"('{LINE}', {T0 + 10}, 'E1', 'moved', 'inlet', 'inert_in_spec', false, '{{}}')",
    )


async def test_the_time_indexes_come_with_0007_and_the_flight_recorder_queries_use_them(db: th.Db) -> None:
    await upgrade(db.url, "0006")
    await _old_rows(db.url)
    before = await _indexes(db.url)
    assert not TIME_INDEXES & before
    assert "ix_samples_channel_id_ts" in before

    await upgrade(db.url, line=LINE)
    assert await current_revision(db.url) == await head_revision()
    after = await _indexes(db.url)
    assert after >= TIME_INDEXES
    assert COVERING in after
    assert "ix_samples_channel_id_ts" not in after  # replaced, not added: the sample path keeps one index
    ledger_plan = await _plan(db.url, db.backend, LEDGER_RANGE)
    latest_plan = await _plan(db.url, db.backend, LATEST)
    if db.backend == "sqlite":
        assert "USING INDEX ix_ledger_line_ts" in ledger_plan, ledger_plan
        assert f"USING COVERING INDEX {COVERING}" in latest_plan, latest_plan
    else:  # the partitions' own copies of the covering index carry generated names
        assert "ix_ledger_line_ts" in ledger_plan, ledger_plan
        assert "Index Only Scan" in latest_plan, latest_plan
    async with Historian.reader(db.url, line=LINE) as historian:  # the rows from before are all there
        (latest,) = await historian.latest_readings_at(T0 + 30.5)
        assert (latest.ts, latest.value) == (T0 + 30, 130.0)
        (place,) = await historian.item_places_at(T0 + 30)
        assert (place["item"], place["space"]) == ("E1", "inlet")
        assert await historian.item_places_at(T0 + 5) == []

    await asyncio.to_thread(command.downgrade, alembic_config(db.url), "0006")
    back = await _indexes(db.url)
    assert not (TIME_INDEXES | {COVERING}) & back
    assert "ix_samples_channel_id_ts" in back


async def test_a_trend_keeps_each_buckets_lowest_and_highest_reading(db: th.Db) -> None:
    """A one-sample spike and a one-sample dip in a thousand survive a 20-point trend; a faulted
    sample is counted, never drawn."""
    await upgrade(db.url, line=LINE)
    values = {i: 10.0 + math.sin(i / 50.0) for i in range(1000)}
    values[333], values[777] = 500.0, -5.0
    qualities = {i: "ok" for i in values} | {100: "error"}
    values[100] = 9999.0  # a fault's number: never a trend's maximum
    await _run(
        db.url,
        f"INSERT INTO channels (id, line, device, channel, unit) VALUES (1, '{LINE}', 'process_gauges', "
        "'pressure_ch1', 'Pa')",
        "INSERT INTO samples (ts, channel_id, value, quality) VALUES "
        + ", ".join(f"({T0 + i}, 1, {v!r}, '{qualities[i]}')" for i, v in values.items()),
    )
    async with Historian.reader(db.url, line=LINE) as historian:
        buckets = await historian.sample_buckets([1], T0, T0 + 999, buckets=10)
    assert 9 <= len(buckets) <= 10  # PostgreSQL rounds where SQLite truncates: the edges move, not the count
    assert sum(b.samples for b in buckets) == 1000
    assert sum(b.unusable for b in buckets) == 1
    for b in buckets:  # each bucket's extremes are those of the usable samples it spans
        inside = [v for i, v in values.items() if b.first_ts <= T0 + i <= b.last_ts and qualities[i] == "ok"]
        assert (b.low, b.high) == (min(inside), max(inside))
    assert max(b.high or 0.0 for b in buckets) == 500.0
    assert min(b.low or 0.0 for b in buckets) == -5.0
    assert [b.first_ts for b in buckets] == sorted(b.first_ts for b in buckets)


def test_samples_max_points_writes_a_trend_of_buckets(tmp_path: Path) -> None:
    """`depline samples --max-points` (one process: the default, every row, is the export tests' own)."""
    path = tmp_path / "line.db"
    url = f"sqlite:///{path}"
    asyncio.run(upgrade(url, line=load_line_config().name))
    spike = {i: (500.0 if i == 4320 else 1.0) for i in range(0, 7200, 10)}  # two hours, a sample each 10 s
    asyncio.run(
        _run(
            url,
            f"INSERT INTO channels (id, line, device, channel, unit) VALUES (1, '{LINE}', 'process_gauges', "
            "'pressure_ch1', 'Pa')",
            "INSERT INTO samples (ts, channel_id, value, quality) VALUES "
            + ", ".join(f"({T0 + i}, 1, {v}, 'ok')" for i, v in spike.items()),
        )
    )
    asked = [
        "--database",
        url,
        "--from",
        str(T0),
        "--to",
        str(T0 + 7200),
        "--channel",
        "process_gauges.pressure_ch1",
    ]

    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "samples", *asked, "--max-points", "100"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    trend = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(trend) == 50  # 50 buckets of 144 s, each with its min and max
    assert max(float(r["max"]) for r in trend) == 500.0
    assert min(float(r["min"]) for r in trend) == 1.0
    assert sum(int(r["samples"]) for r in trend) == 720
    assert "720 samples" in done.stderr


async def test_event_driven_rejudge_decides_as_judging_every_instant(tmp_path: Path) -> None:
    """Skipping the instants whose inputs did not change is a speed-up, not a different judgement: on a
    night with pump-downs, valves and doors moving and commands refused by today's rules, the
    disagreements are the same, instant for instant."""
    night = await asyncio.to_thread(build_night, tmp_path, 0.03)
    config = load_line_config()
    window = Window(night.since_ts, night.until_ts, 1.0, "job")
    async with Historian.reader(f"sqlite:///{night.path}", line=night.line) as historian:
        skipping = await rejudge(historian, config, window)
        every = await rejudge(historian, config, window, every_instant=True)
    assert skipping.disagreements == every.disagreements
    assert len(skipping.disagreements) > 5
    assert {d.kind for d in skipping.disagreements} >= {"allowed_then_refused_now"}
    assert skipping.instants_watched == every.instants_watched
    assert every.instants_skipped == 0
    assert skipping.instants_skipped > skipping.instants_watched // 4
