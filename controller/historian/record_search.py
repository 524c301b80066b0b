"""The flight recorder's read side: finding batches and jobs, and paging through raw samples.

Why it is built this way:

- **Beside the certificate's queries, not inside them.** `HistorianQueries` answers what a running
  line and a certificate ask; these answer what a maintenance engineer asks afterwards ("which jobs
  ran last night", "every reading of the process chamber from 02:00 to 02:10"). `Historian` inherits
  both, so a `Historian.reader` serves them with the same timeout and error mapping.
- **Samples are paged, never loaded whole.** 24 h of one channel at the line's rate is ~250 k rows and
  a space's instruments several times that: `sample_pages` walks the (channel, ts) index in pages
  keyed on (ts, id), so memory stays at one page whatever the range holds.
- **A trend asks for buckets, not rows.** `sample_buckets` groups a range into at most a given
  number of buckets per channel in the database and returns each bucket's lowest and highest usable
  value (as the Phoebus Data Browser and the Archiver Appliance's optimized retrieval do): 8 h at the
  line's rate is ~115 k rows a channel, a browser draws ~2000 points, and a spike survives the
  bucketing because its bucket's maximum is it.
- **An instant is one indexed probe per channel, item or alarm.** `latest_readings_at`,
  `item_places_at` and `alarm_states_at` find each one's last record at or before the instant through
  the (channel_id, ts), (line, item, ts) and (line, ts) indexes (migration 0007), so the replay
  cursor's question costs the same at the start of a year of records as at its end.
"""

from __future__ import annotations

import sqlite3
import typing
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy import Integer, Select, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.historian.errors import HistorianUnavailable, describe_error
from controller.historian.queries import IN_CHUNK, HistorianQueries
from controller.historian.queries import _plain as plain_row  # the same row decoding (NaN, JSON columns)
from controller.historian.recovery import INVENTORY_ACTIONS
from controller.historian.schema import (
    alarm_events,
    batches,
    channels,
    commands,
    items,
    job_events,
    jobs,
    ledger,
    mode_changes,
    runs,
    samples,
    transitions,
)
from drivers.reading import Quality

SAMPLE_PAGE: Final = 20_000
FIRST_SLICE_S: Final = 60.0  # a hundred channels at the line's poll rates: a few thousand rows
MIN_SLICE_S: Final = 0.01
MAX_SLICE_GROWTH: Final = 8.0  # a slice after a sparse one grows this much at most


class SampleRow(NamedTuple):
    id: int
    ts: float
    channel_id: int
    value: float | None  # None where the reading was not a number (SQLite keeps NaN as NULL)
    quality: str


class SampleBucket(NamedTuple):
    """One channel's samples in one bucket of a downsampled range."""

    channel_id: int
    first_ts: float  # the bucket's first and last sample
    last_ts: float
    low: float | None  # lowest and highest usable value (ok or under range); None: none was usable
    high: float | None
    samples: int
    unusable: int  # samples of any other quality (stale, error, sensor off ...), or not a number


USABLE_QUALITIES: Final = (Quality.OK.value, Quality.UNDER_RANGE.value)

TIMELINE_TABLES: Final = {
    "job": job_events,
    "alarm": alarm_events,
    "command": commands,
    "station": transitions,
    "mode": mode_changes,
    "item": ledger,
}
JSON_COLUMNS: Final = {"job": ("detail",), "command": ("action", "refusals")}


class RecordSearch(HistorianQueries):
    """Queries for finding what ran and exporting what was measured."""

    async def batch_rows(
        self, since_ts: float | None = None, until_ts: float | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Batches created in [since, until], newest first, without their queue text."""
        columns = [c for c in batches.c if c.name != "queue_text"]
        statement = select(*columns).where(batches.c.line == self.line)
        if since_ts is not None:
            statement = statement.where(batches.c.created_at >= since_ts)
        if until_ts is not None:
            statement = statement.where(batches.c.created_at <= until_ts)
        statement = statement.order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit)
        return [plain_row(r) for r in await self._fetch(statement)]

    async def batch_rows_by_id(self, batch_ids: Sequence[str]) -> list[dict[str, Any]]:
        """These batches (unknown ids left out), newest first."""
        out: list[dict[str, Any]] = []
        columns = [c for c in batches.c if c.name != "queue_text"]
        for start in range(0, len(batch_ids), IN_CHUNK):
            chunk = list(batch_ids[start : start + IN_CHUNK])
            statement = select(*columns).where(batches.c.line == self.line, batches.c.id.in_(chunk))
            out += [plain_row(r) for r in await self._fetch(statement)]
        return sorted(out, key=lambda b: (b["created_at"], b["id"]), reverse=True)

    async def jobs_of_batches(self, batch_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The jobs of these batches in queue order, `items` decoded, without recipe texts."""
        out: list[dict[str, Any]] = []
        columns = [c for c in jobs.c if c.name != "recipe_text"]
        for start in range(0, len(batch_ids), IN_CHUNK):
            chunk = list(batch_ids[start : start + IN_CHUNK])
            statement = select(*columns).where(jobs.c.line == self.line, jobs.c.batch_id.in_(chunk))
            out += [plain_row(r, json_columns=("items",)) for r in await self._fetch(statement)]
        return sorted(out, key=lambda j: (str(j["batch_id"]), int(j["position"])))

    async def batches_naming_item(self, item: str) -> list[str]:
        """Ids of the batches with a job that names `item` (electrode, container or target).

        The items column holds JSON; a LIKE on the quoted id narrows it in the database and the decoded
        JSON decides, so an id that is a substring of another never matches it."""
        pattern = '%"' + item.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
        statement = select(jobs.c.batch_id, jobs.c["items"]).where(
            jobs.c.line == self.line, jobs.c["items"].like(pattern, escape="\\")
        )
        found = []
        for row in await self._fetch(statement):
            decoded = plain_row(row, json_columns=("items",))["items"]
            if item in item_ids_of_job(decoded):
                found.append(str(row["batch_id"]))
        return list(dict.fromkeys(found))

    async def channel_rows(self) -> list[dict[str, Any]]:
        """Every recorded channel: id, device, channel, unit."""
        statement = select(channels).where(channels.c.line == self.line).order_by(channels.c.id)
        return [plain_row(r) for r in await self._fetch(statement)]

    async def sample_pages(
        self,
        channel_ids: Sequence[int],
        since_ts: float,
        until_ts: float,
        *,
        page: int = SAMPLE_PAGE,
        named: bool = True,
    ) -> AsyncIterator[list[SampleRow]]:
        """Every sample of these channels in [since, until], oldest first, about `page` rows at a time,
        as tuples in `SampleRow`'s order: an export or a replay handles millions, and a dict per row was
        most of a replay's time. `named=False` leaves SQLite's rows unnamed (a rejudge reads them by
        position; naming 4.6 M rows costs a quarter of reading them).

        Paged by slices of time, not by a row count after a (ts, id) key: rows of several channels in
        time order are a merge of their (channel_id, ts) index ranges, which SQLite sorts whole, so a
        LIMIT after a key sorted everything after it again on every page (an 8 h night: minutes). A
        slice sorts only its own rows; its length follows the rows the previous slice held, and an
        empty one jumps to the next recorded sample."""
        ids = list(channel_ids)
        if not ids:
            return
        columns = (samples.c.id, samples.c.ts, samples.c.channel_id, samples.c.value, samples.c.quality)
        span, start = FIRST_SLICE_S, since_ts
        while start <= until_ts:
            end = start + span
            last = end >= until_ts
            statement = (
                select(*columns)
                .where(samples.c.channel_id.in_(ids), samples.c.ts >= start)
                .where(samples.c.ts <= until_ts if last else samples.c.ts < end)
                .order_by(samples.c.ts, samples.c.id)
            )
            async with self._reading() as conn:
                rows = await _driver_rows(conn, statement, named=named)
            if last:
                for first in range(0, len(rows), page):
                    yield rows[first : first + page]
                return
            if rows:
                for first in range(0, len(rows), page):
                    yield rows[first : first + page]
                span = min(span * MAX_SLICE_GROWTH, max(span * page / len(rows), MIN_SLICE_S))
                start = end
                continue
            following = await self._next_sample_ts(ids, end)
            if following is None:
                return
            start = following

    async def _next_sample_ts(self, channel_ids: list[int], after_ts: float) -> float | None:
        """The time of the first sample of these channels at or after `after_ts`: one probe each."""
        first = (
            select(samples.c.ts)
            .where(samples.c.channel_id == channels.c.id, samples.c.ts >= after_ts)
            .order_by(samples.c.ts)
            .limit(1)
            .correlate(channels)
            .scalar_subquery()
        )
        async with self._reading() as conn:
            found = await conn.scalar(select(func.min(first)).where(channels.c.id.in_(channel_ids)))
        return None if found is None else float(found)

    async def sample_buckets(
        self, channel_ids: Sequence[int], since_ts: float, until_ts: float, *, buckets: int
    ) -> list[SampleBucket]:
        """The samples of these channels in [since, until] in at most `buckets` equal time buckets per
        channel (empty buckets left out), ordered by time: one grouped query on the covering index."""
        if buckets < 1 or until_ts < since_ts:
            raise ValueError("sample_buckets needs buckets >= 1 and since <= until")
        width = max((until_ts - since_ts) / buckets, 1e-6)
        # SQLite's CAST truncates, PostgreSQL's rounds: the edges differ by half a bucket, the count
        # does not, as the last bucket takes what would fall past it (`until` itself, say)
        index = cast((samples.c.ts - since_ts) / width, Integer)
        bucket = case((index > buckets - 1, buckets - 1), else_=index)
        usable = and_(samples.c.value.is_not(None), samples.c.quality.in_(USABLE_QUALITIES))
        usable_value = case((usable, samples.c.value), else_=None)
        statement = (
            select(
                samples.c.channel_id,
                func.min(samples.c.ts),
                func.max(samples.c.ts),
                func.min(usable_value),
                func.max(usable_value),
                func.count(),
                func.sum(case((usable, 0), else_=1)),
            )
            .where(
                samples.c.channel_id.in_(list(channel_ids)),
                samples.c.ts >= since_ts,
                samples.c.ts <= until_ts,
            )
            .group_by(samples.c.channel_id, bucket)
            .order_by(func.min(samples.c.ts), samples.c.channel_id)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            SampleBucket(int(c), float(t0), float(t1), _number(lo), _number(hi), int(n), int(bad or 0))
            for c, t0, t1, lo, hi, n, bad in rows
        ]

    async def latest_readings_at(self, ts: float, *, not_before: float | None = None) -> list[SampleRow]:
        """Each recorded channel's last sample at or before `ts` (and at or after `not_before`, when
        given), ordered by channel: what the instruments last said at an instant, the replay cursor's
        readings. One probe of the (channel_id, ts) index per channel, whatever the table holds."""
        last = select(samples.c.ts).where(samples.c.channel_id == channels.c.id, samples.c.ts <= ts)
        if not_before is not None:
            last = last.where(samples.c.ts >= not_before)
        last_ts = last.order_by(samples.c.ts.desc()).limit(1).correlate(channels).scalar_subquery()
        # joined on (channel_id, ts), not on id: the covering index answers it without the table, and on
        # PostgreSQL (samples partitioned by ts) the row is looked for in one partition's index only
        statement = (
            select(samples.c.id, samples.c.ts, samples.c.channel_id, samples.c.value, samples.c.quality)
            .select_from(channels)
            .join(samples, and_(samples.c.channel_id == channels.c.id, samples.c.ts == last_ts))
            .where(channels.c.line == self.line)
            .order_by(samples.c.channel_id, samples.c.id.desc())
        )
        async with self._reading() as conn:
            rows = [SampleRow(*r) for r in (await conn.execute(statement)).all()]
        # two samples of one channel at the very same instant: the later written one
        return list({r.channel_id: r for r in reversed(rows)}.values())[::-1]

    async def item_places_at(self, ts: float) -> list[dict[str, Any]]:
        """Each registered item's last ledger entry at or before `ts` (items with none left out),
        ordered by item: where everything was at an instant, and in what atmosphere."""
        last = (
            select(ledger.c.id)
            .where(ledger.c.line == items.c.line, ledger.c.item == items.c.id, ledger.c.ts <= ts)
            .order_by(ledger.c.ts.desc(), ledger.c.id.desc())
            .limit(1)
            .correlate(items)
            .scalar_subquery()
        )
        statement = (
            select(ledger)
            .select_from(items)
            .join(ledger, ledger.c.id == last)
            .where(items.c.line == self.line)
            .order_by(ledger.c.item)
        )
        return [plain_row(r, json_columns=("evidence",)) for r in await self._fetch(statement)]

    async def alarm_states_at(self, ts: float) -> list[dict[str, Any]]:
        """Each alarm's last journal record at or before `ts`, ordered by alarm: its state at that
        instant (`to_state`), who last acknowledged or shelved it, and whether it was first out.
        The line's alarm records up to `ts` are grouped in the database on the (line, ts) index."""
        newest = (
            select(func.max(alarm_events.c.id).label("id"))
            .where(alarm_events.c.line == self.line, alarm_events.c.ts <= ts)
            .group_by(alarm_events.c.alarm_id)
            .subquery()
        )
        statement = (
            select(alarm_events)
            .join(newest, alarm_events.c.id == newest.c.id)
            .order_by(alarm_events.c.alarm_id)
        )
        return [plain_row(r, json_columns=("evidence",)) for r in await self._fetch(statement)]

    async def timeline_rows(
        self, since_ts: float, until_ts: float, *, limit: int = 200_000
    ) -> dict[str, list[dict[str, Any]]]:
        """The rows of every event table in [since, until], per source ("job", "alarm", "command",
        "station", "mode", "item"), each oldest first: each a range on its (line, ts) index (migration
        0007; job events on (job_id, ts) for the line's jobs)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for source, table in TIMELINE_TABLES.items():
            own = (  # job events carry their line through their job; the other tables in a column
                job_events.c.job_id.in_(select(jobs.c.id).where(jobs.c.line == self.line))
                if table is job_events
                else table.c.line == self.line
            )
            statement = (
                select(table)
                .where(own, table.c.ts >= since_ts, table.c.ts <= until_ts)
                .order_by(table.c.ts, table.c.id)
                .limit(limit)
            )
            json_columns = JSON_COLUMNS.get(source, ())
            out[source] = [plain_row(r, json_columns=json_columns) for r in await self._fetch(statement)]
        return out

    async def alarm_rows_of(
        self, alarm_ids: Sequence[str], since_ts: float, until_ts: float, *, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """The journal of these alarms in (since, until], oldest first: what became of the alarms a job
        saw (who acknowledged or shelved them) after the job had ended."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(alarm_ids), IN_CHUNK):
            chunk = list(alarm_ids[start : start + IN_CHUNK])
            statement = (
                select(alarm_events)
                .where(alarm_events.c.line == self.line, alarm_events.c.alarm_id.in_(chunk))
                .where(alarm_events.c.ts > since_ts, alarm_events.c.ts <= until_ts)
                .order_by(alarm_events.c.ts, alarm_events.c.id)
                .limit(limit)
            )
            out += [plain_row(r) for r in await self._fetch(statement)]
        return sorted(out, key=lambda r: (r["ts"], r["id"]))

    async def inventory_actions_until(self, until_ts: float) -> list[dict[str, Any]]:
        """Every done registration, move, seal change and coating up to `until`, oldest first, with its
        time: what the inventory was at any instant before it is folded from these."""
        kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
        statement = (
            select(commands.c.ts, commands.c.action)
            .where(commands.c.line == self.line, commands.c.ts <= until_ts, commands.c.outcome == "done")
            .where(kinds)
            .order_by(commands.c.ts, commands.c.id)
        )
        return [plain_row(r, json_columns=("action",)) for r in await self._fetch(statement)]

    async def run_start_at(self, at_ts: float) -> float | None:
        """When the service run recording at `at` started: the live atmosphere memory began there, so a
        replay or a rejudge folds the line's state from that instant. None when no run covers `at`."""
        statement = (
            select(func.max(runs.c.started_at))
            .where(runs.c.line == self.line, runs.c.started_at <= at_ts)
            .where(or_(runs.c.ended_at.is_(None), runs.c.ended_at >= at_ts))
        )
        async with self._reading() as conn:
            found = await conn.scalar(statement)
        return None if found is None else float(found)

    async def latest_rows_at(self, source: str, key: str, at_ts: float) -> list[dict[str, Any]]:
        """The newest row at or before `at` of each `key` value of a timeline table ("alarm" by
        alarm_id, "station" by station, "mode" by line): what each alarm, station or the mode was then."""
        table = TIMELINE_TABLES[source]
        newest = (
            select(func.max(table.c.id))
            .where(table.c.line == self.line, table.c.ts <= at_ts)
            .group_by(table.c[key])
            .scalar_subquery()
        )
        statement = select(table).where(table.c.id.in_(newest)).order_by(table.c.ts, table.c.id)
        json_columns = (*JSON_COLUMNS.get(source, ()), *(("evidence",) if source == "alarm" else ()))
        return [plain_row(r, json_columns=json_columns) for r in await self._fetch(statement)]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def item_ids_of_job(items: Any) -> set[str]:
    """Every item a job's `items` JSON names: electrode, containers in and out, targets."""
    if not isinstance(items, dict):
        return set()
    ids = {str(items.get(k)) for k in ("base", "container", "out_container") if items.get(k)}
    targets = items.get("targets") or {}
    return ids | {str(v) for v in targets.values()} if isinstance(targets, dict) else ids


async def _driver_rows(conn: AsyncConnection, statement: Select[Any], *, named: bool) -> list[SampleRow]:
    """The samples as the database driver returns them.

    On SQLite, aiosqlite's own `execute_fetchall`: one hop to its thread and a plain tuple per row,
    where SQLAlchemy's result wraps each in a Row through its processors (the samples' columns need
    none), ~2x the time per row (bench.flight_recorder's "every row" line). PostgreSQL keeps
    SQLAlchemy's rows: asyncpg's records are already built in C, and they have the fields by name too.
    """
    if conn.dialect.name != "sqlite":
        return typing.cast("list[SampleRow]", (await conn.execute(statement)).all())
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    parameters = [compiled.params[name] for name in compiled.positiontup or ()]
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:  # not through aiosqlite (never so today): SQLAlchemy's rows then
        return typing.cast("list[SampleRow]", (await conn.execute(statement)).all())
    try:
        rows = await driver.execute_fetchall(str(compiled), parameters)
    except sqlite3.Error as exc:  # past SQLAlchemy, so mapped here as `_reading` maps its errors
        raise HistorianUnavailable(f"historian query failed: {describe_error(exc)}") from exc
    if named:
        return list(map(SampleRow._make, rows))
    return typing.cast("list[SampleRow]", rows)
