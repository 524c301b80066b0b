"""Retention: a line's old raw samples leave; its events and every other line's samples stay.

On SQLite and on a real PostgreSQL (partitioned samples: an old day leaves as a whole partition once
every line on the database lets it go).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from controller.historian.retention import partition_name, prepare_partitions
from controller.historian.store import Historian
from controller.line.poller import Sample
from drivers.reading import Quality, Reading
from tests.controller import test_historian as th

db = th.db  # the fixtures, reused: a fresh SQLite file or PostgreSQL database per test
pg = th.pg
DAY_S = 86_400.0


def sample(ts: float, value: float) -> Sample:
    return Sample(
        "antechamber_gauges", "pressure_ch1", Reading(value, "Pa", Quality.OK, ts, time.monotonic())
    )


async def count(url: str, line: str) -> int:
    rows = await th.rows(
        url,
        f"SELECT count(*) AS n FROM samples s JOIN channels c ON c.id = s.channel_id WHERE c.line = '{line}'",
    )
    return int(rows[0]["n"])


async def test_old_samples_leave_and_nothing_else_does(db: th.Db, tmp_path: Path) -> None:
    now = time.time()
    old = now - 3 * DAY_S
    one = Historian(db.url, line="line1", spill_dir=tmp_path / "s1", retention_s=DAY_S, **th.FAST)
    keeper = Historian(db.url, line="line2", spill_dir=tmp_path / "s2", **th.FAST)  # keeps samples for ever
    await one.start()
    await keeper.start()
    try:
        if db.backend == "postgresql":  # the old day gets its partition, as it did when it was today
            async with one._require_engine().begin() as conn:
                await prepare_partitions(conn, old, days_ahead=0)
        for historian in (one, keeper):
            for i in range(30):
                historian.record_sample(sample(old + i, 1.0 + i))
                historian.record_sample(sample(now - 60 + i, 2.0))
            historian.record_command(th.done(1))
            assert await historian.flush(th.WAIT_S)
        commands = await th.rows(db.url, "SELECT count(*) AS n FROM commands")

        removed = 0
        while True:
            _dropped, deleted = await one.apply_retention()
            removed += deleted
            if not deleted:
                break
        assert removed == 30
        assert await count(db.url, "line1") == 30  # the last minute's
        assert await count(db.url, "line2") == 60  # another line's retention is its own
        assert await th.rows(db.url, "SELECT count(*) AS n FROM commands") == commands  # events stay

        if db.backend == "postgresql":
            # line2 keeps samples for ever: the old day's partition stays (line1's rows left by delete)
            partitions = await th.rows(
                db.url, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'samples_p%'"
            )
            old_day = partition_name(dt.datetime.fromtimestamp(old, dt.UTC).date())
            assert old_day in {p["tablename"] for p in partitions}
            await keeper.stop()
            keeper = Historian(db.url, line="line2", spill_dir=tmp_path / "s2", retention_s=DAY_S, **th.FAST)
            await keeper.start()
            dropped, _deleted = await one.apply_retention()
            assert old_day in dropped
            assert await count(db.url, "line2") == 30
    finally:
        await one.stop()
        await keeper.stop()
