"""The flight recorder's read side: finding batches and jobs, and paging through raw samples.

Why it is built this way:

- **Beside the certificate's queries, not inside them.** `HistorianQueries` answers what a running
  line and a certificate ask; these answer what a maintenance engineer asks afterwards ("which jobs
  ran last night", "every reading of the process chamber from 02:00 to 02:10"). `Historian` inherits
  both, so a `Historian.reader` serves them with the same timeout and error mapping.
- **Samples are paged, never loaded whole.** 24 h of one channel at the line's rate is ~250 k rows and
  a space's instruments several times that: `sample_pages` walks the (channel, ts) index in pages
  keyed on (ts, id), so memory stays at one page whatever the range holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy import and_, func, or_, select

from controller.historian.queries import IN_CHUNK, HistorianQueries
from controller.historian.queries import _plain as plain_row  # the same row decoding (NaN, JSON columns)
from controller.historian.recovery import INVENTORY_ACTIONS
from controller.historian.schema import (
    alarm_events,
    batches,
    channels,
    commands,
    job_events,
    jobs,
    ledger,
    mode_changes,
    samples,
    transitions,
)

SAMPLE_PAGE: Final = 20_000


class SampleRow(NamedTuple):
    id: int
    ts: float
    channel_id: int
    value: float | None  # None where the reading was not a number (SQLite keeps NaN as NULL)
    quality: str


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
        self, channel_ids: Sequence[int], since_ts: float, until_ts: float, *, page: int = SAMPLE_PAGE
    ) -> AsyncIterator[list[SampleRow]]:
        """Every sample of these channels in [since, until], oldest first, `page` rows at a time, as
        plain tuples: an export or a replay handles hundreds of thousands, and a dict per row was most
        of a replay's time."""
        last: tuple[float, int] | None = None
        columns = (samples.c.id, samples.c.ts, samples.c.channel_id, samples.c.value, samples.c.quality)
        while True:
            statement = select(*columns).where(
                samples.c.channel_id.in_(list(channel_ids)),
                samples.c.ts >= since_ts,
                samples.c.ts <= until_ts,
            )
            if last is not None:
                after = or_(samples.c.ts > last[0], and_(samples.c.ts == last[0], samples.c.id > last[1]))
                statement = statement.where(after)
            statement = statement.order_by(samples.c.ts, samples.c.id).limit(page)
            async with self._reading() as conn:
                rows = [SampleRow(*r) for r in (await conn.execute(statement)).all()]
            if not rows:
                return
            yield rows
            if len(rows) < page:
                return
            last = (rows[-1].ts, rows[-1].id)

    async def timeline_rows(
        self, since_ts: float, until_ts: float, *, limit: int = 200_000
    ) -> dict[str, list[dict[str, Any]]]:
        """The rows of every event table in [since, until], per source ("job", "alarm", "command",
        "station", "mode", "item"), each oldest first. The ledger and job events are indexed by item
        and job, not by time, so their range scans grow with the table (issue 12's speed part adds them)."""
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

    async def last_samples_at(self, channel_ids: Sequence[int], at_ts: float) -> list[SampleRow]:
        """Each channel's last sample at or before `at` (channels never read before it left out): one
        indexed (channel, ts) look-up per channel, so the cost does not grow with the night's length."""
        columns = (samples.c.id, samples.c.ts, samples.c.channel_id, samples.c.value, samples.c.quality)
        out: list[SampleRow] = []
        async with self._reading() as conn:
            for channel_id in channel_ids:
                statement = (
                    select(*columns)
                    .where(samples.c.channel_id == channel_id, samples.c.ts <= at_ts)
                    .order_by(samples.c.ts.desc(), samples.c.id.desc())
                    .limit(1)
                )
                out += [SampleRow(*r) for r in (await conn.execute(statement)).all()]
        return out

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


def item_ids_of_job(items: Any) -> set[str]:
    """Every item a job's `items` JSON names: electrode, containers in and out, targets."""
    if not isinstance(items, dict):
        return set()
    ids = {str(items.get(k)) for k in ("base", "container", "out_container") if items.get(k)}
    targets = items.get("targets") or {}
    return ids | {str(v) for v in targets.values()} if isinstance(targets, dict) else ids
