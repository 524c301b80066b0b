"""The historian's read side: what the API, the certificate, `depline report` and a restart ask of it.

Why it is built this way:

- **A base class, not a second object.** `Historian` inherits `HistorianQueries`, so callers keep
  asking the one historian they hold (`historian.runs()`, `historian.exposure_record(item)`,
  `historian.production_jobs(run)`); a query needs only the engine and the timeout, never the
  writer's buffers, which is what lets `Historian.reader()` serve `depline report` beside a running
  controller.
- **Committed rows only.** Rows in memory or in spill files are not visible to the queries until
  written. Every query is bounded by `timeout_s`, and any failure to reach the database is
  `HistorianUnavailable`: a query never disturbs the recording.
- **Bounded answers where history is long.** `recent_samples`, `runs`, `commands`, `alarm_events`,
  `ledger_between`, `item_ledger` and `items` take a `limit`; id lists go to the database `IN_CHUNK`
  at a time; `sample_envelope` returns at most a bucket count of rows whatever the window holds,
  and `samples_since` (the MQTT bridge's back-fill, from committed samples only) at most `max_rows`.
- **One line's records.** Many lines may share the database; every query answers for the
  historian's own `line` only (samples through their channel's line, job events through their job's).
- **What a restart needs** (`inventory()`, `ledger_entries()`) reads the records
  `controller.historian.recovery` folds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg
from sqlalchemy import Integer, RowMapping, Select, and_, cast, func, inspect, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from controller.historian.errors import HistorianError, HistorianUnavailable, describe_error
from controller.historian.recovery import (
    INVENTORY_ACTIONS,
    RecoveredInventory,
    fold_inventory,
    placed_items,
)
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
)
from controller.line.ledger import ExposureRecord, LedgerEntry, exposure_from_entries
from controller.line.poller import Sample
from drivers.reading import Quality, Reading

log = logging.getLogger(__name__)

ARCHIVE_MAX_ROWS: Final = 200_000  # samples one back-fill may hold in memory (shared by the channels)
IN_CHUNK: Final = 500  # ids per IN (...) list: far below SQLite's and asyncpg's parameter limits


class HistorianQueries:
    """The queries of a historian; the subclass provides the engine (`_engine`, None until started)."""

    _engine: AsyncEngine | None
    _timeout_s: float
    line: str  # the line whose records every query reads

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise HistorianError("historian not started")
        return self._engine

    # --- queries for the API ------------------------------------------------------------------------

    async def _fetch(self, statement: Select[Any]) -> list[RowMapping]:
        async with self._reading() as conn:
            result = await conn.execute(statement)
            return list(result.mappings().all())

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries, bounded by `timeout_s`; any failure is `HistorianUnavailable`."""
        try:
            async with asyncio.timeout(self._timeout_s), self._require_engine().connect() as conn:
                yield conn
        except HistorianError:
            raise
        except (sa_exc.SQLAlchemyError, OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise HistorianUnavailable(f"historian query failed: {describe_error(exc)}") from exc

    async def recent_samples(
        self, device: str, channel: str, since_ts: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest `limit` samples of one channel (since `since_ts`), oldest first, for a trend plot."""
        statement = (
            select(samples.c.ts, samples.c.value, samples.c.quality, channels.c.unit)
            .join(channels, samples.c.channel_id == channels.c.id)
            .where(channels.c.line == self.line, channels.c.device == device, channels.c.channel == channel)
            .order_by(samples.c.ts.desc(), samples.c.id.desc())
            .limit(limit)
        )
        if since_ts is not None:
            statement = statement.where(samples.c.ts >= since_ts)
        rows = await self._fetch(statement)
        return [_plain(r) for r in reversed(rows)]

    async def alarm_journal(self, since_ts: float = 0.0, limit: int = 200) -> list[dict[str, Any]]:
        """The newest `limit` alarm transitions after `since_ts`, oldest first, evidence decoded:
        what the board journaled, including the processes before this one."""
        return await self._newest(alarm_events, since_ts, limit, json_columns=("evidence",))

    async def command_records(self, since_ts: float = 0.0, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` gate records after `since_ts`, oldest first, action and refusals decoded."""
        return await self._newest(commands, since_ts, limit, json_columns=("action", "refusals"))

    async def mode_journal(self, since_ts: float = 0.0, limit: int = 200) -> list[dict[str, Any]]:
        """The newest `limit` unit-mode changes after `since_ts`, oldest first."""
        return await self._newest(mode_changes, since_ts, limit)

    async def _newest(
        self, table: Any, since_ts: float, limit: int, *, json_columns: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        statement = (
            select(table)
            .where(table.c.line == self.line, table.c.ts > since_ts)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        rows = [_plain(r) for r in await self._fetch(statement)]
        for row in rows:
            for column in json_columns:
                if isinstance(row.get(column), str):
                    row[column] = json.loads(row[column])
        return rows[::-1]

    async def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs first, without their (large) config and recipe texts."""
        statement = (
            select(*(c for c in runs.c if c.name not in ("config_text", "recipe_text")))
            .where(runs.c.line == self.line)
            .order_by(runs.c.started_at.desc())
            .limit(limit)
        )
        return [_plain(r) for r in await self._fetch(statement)]

    async def recorded_lines(self) -> list[dict[str, Any]]:
        """Every line the database holds records of, with its newest run's id, start and configuration
        text (whatever this reader's own line): what a replay draws a line it was given no file for."""
        newest = (
            select(runs.c.line, func.max(runs.c.started_at).label("started_at"))
            .group_by(runs.c.line)
            .subquery()
        )
        statement = (
            select(runs.c.line, runs.c.id, runs.c.started_at, runs.c.config_text)
            .join(newest, and_(runs.c.line == newest.c.line, runs.c.started_at == newest.c.started_at))
            .order_by(runs.c.line)
        )
        return [_plain(r) for r in await self._fetch(statement)]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(select(runs).where(runs.c.id == run_id, runs.c.line == self.line))
        return _plain(rows[0]) if rows else None

    async def commands(
        self, run_id: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Commands of a run, or since a time (or the latest), oldest first, JSON columns decoded."""
        statement = (
            select(commands).where(commands.c.line == self.line).order_by(commands.c.id.desc()).limit(limit)
        )
        if run_id is not None:
            statement = statement.where(commands.c.run_id == run_id)
        if since is not None:
            statement = statement.where(commands.c.ts >= since)
        rows = await self._fetch(statement)
        return [_plain(r, json_columns=("action", "refusals")) for r in reversed(rows)]

    async def alarm_events(
        self, since: float | None = None, limit: int = 1000, *, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Alarm journal records (the latest `limit`, since and until a time), oldest first."""
        statement = (
            select(alarm_events)
            .where(alarm_events.c.line == self.line)
            .order_by(alarm_events.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            statement = statement.where(alarm_events.c.ts >= since)
        if until is not None:
            statement = statement.where(alarm_events.c.ts <= until)
        rows = await self._fetch(statement)
        return [_plain(r, json_columns=("evidence",)) for r in reversed(rows)]

    async def ledger_between(
        self, since: float, until: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Ledger entries of every item in a time window (a run's), the latest `limit`, oldest first."""
        statement = (
            select(ledger)
            .where(ledger.c.line == self.line, ledger.c.ts >= since)
            .order_by(ledger.c.id.desc())
            .limit(limit)
        )
        if until is not None:
            statement = statement.where(ledger.c.ts <= until)
        rows = await self._fetch(statement)
        return [_plain(r, json_columns=("evidence",)) for r in reversed(rows)]

    async def item_ledger(self, item: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every ledger entry of one item, in order: where it went and what it was exposed to."""
        statement = (
            select(ledger)
            .where(ledger.c.line == self.line, ledger.c.item == item)
            .order_by(ledger.c.id)
            .limit(limit)
        )
        return [_plain(r, json_columns=("evidence",)) for r in await self._fetch(statement)]

    async def items(self, limit: int = 1000) -> list[dict[str, Any]]:
        statement = (
            select(items).where(items.c.line == self.line).order_by(items.c.registered_at.desc()).limit(limit)
        )
        return [_plain(r) for r in await self._fetch(statement)]

    # --- what a restart needs -----------------------------------------------------------------------

    async def inventory(self) -> RecoveredInventory:
        """Every item with its last location and seal, rebuilt from committed records.

        How and why: `controller.historian.recovery`.

        Exact for items registered through `record_registration`: the registrations and the done
        MoveItem/SetContainer commands are replayed in the order they were written, the same
        changes in the same order as `LineModel` made them.
        """
        kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
        changes = (
            select(commands.c.action)
            .where(commands.c.line == self.line, commands.c.outcome == "done", kinds)
            .order_by(commands.c.id)
        )
        known_items = (
            select(items).where(items.c.line == self.line).order_by(items.c.registered_at, items.c.id)
        )
        async with self._reading() as conn:
            known = (await conn.execute(known_items)).all()
            actions = [json.loads(text) for text in (await conn.execute(changes)).scalars()]
        folded = fold_inventory(((r.id, r.kind, r.material) for r in known), actions)
        placed = placed_items(folded)
        astray = [item_id for item_id in folded if item_id not in placed]
        last_space = await self._last_ledger_spaces(astray)
        approximate: list[str] = []
        for item_id in astray:
            item = folded[item_id]
            if item_id in last_space and not item.is_container:
                placed[item_id] = dataclasses.replace(item, location=last_space[item_id])
                approximate.append(item_id)
        unlocated = tuple(i for i in astray if i not in placed)
        if approximate or unlocated:
            log.warning(
                "inventory records incomplete",
                extra={"approximate": approximate, "unlocated": list(unlocated)},
            )
        return RecoveredInventory(tuple(placed.values()), tuple(approximate), unlocated)

    async def _last_ledger_spaces(self, item_ids: Sequence[str]) -> dict[str, str]:
        entries = await self.ledger_entries(item_ids)
        return {item_id: found[-1].space for item_id, found in entries.items() if found}

    async def ledger_entries(self, item_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        """Every committed ledger entry of these items, each item's in order (one query per chunk)."""
        out: dict[str, list[LedgerEntry]] = {item_id: [] for item_id in item_ids}
        async with self._reading() as conn:
            for start in range(0, len(item_ids), IN_CHUNK):
                chunk = item_ids[start : start + IN_CHUNK]
                statement = (
                    select(ledger)
                    .where(ledger.c.line == self.line, ledger.c.item.in_(chunk))
                    .order_by(ledger.c.id)
                )
                for row in (await conn.execute(statement)).mappings():
                    out[row["item"]].append(_ledger_entry(row))
        return out

    async def exposure_record(self, item: str) -> ExposureRecord | None:
        """The item's exposure record replayed from its committed ledger (None if it has no entry)."""
        entries = (await self.ledger_entries([item]))[item]
        return exposure_from_entries(item, entries) if entries else None

    async def run_actions(self, run_id: str) -> list[dict[str, Any]]:
        """The distinct actions a run's done commands performed (which stations it worked)."""
        statement = (
            select(commands.c.action)
            .where(commands.c.line == self.line, commands.c.run_id == run_id, commands.c.outcome == "done")
            .distinct()
        )
        async with self._reading() as conn:
            return [json.loads(text) for text in (await conn.execute(statement)).scalars()]

    async def samples_since(self, ts: float, *, max_rows: int = ARCHIVE_MAX_ROWS) -> list[Sample]:
        """Committed samples with `reading.ts >= ts`, each channel's in time order (the MQTT bridge's
        `SampleArchive`: it back-fills what the broker missed).

        At most `max_rows`, shared evenly by the channels and oldest first, so a back-fill's memory is
        bounded and a very long gap is filled from its start. One indexed query per channel
        (`channel_id, ts`). A reading's `mono` is reconstructed from its age, for staleness checks.
        """
        async with self._reading() as conn:
            known = (
                await conn.execute(
                    select(channels).where(channels.c.line == self.line).order_by(channels.c.id)
                )
            ).all()
            if not known:
                return []
            per_channel = max(1, max_rows // len(known))
            now_ts, now_mono = time.time(), time.monotonic()
            out: list[Sample] = []
            for channel in known:
                statement = (
                    select(samples.c.ts, samples.c.value, samples.c.quality)
                    .where(samples.c.channel_id == channel.id, samples.c.ts >= ts)
                    .order_by(samples.c.ts, samples.c.id)
                    .limit(per_channel)
                )
                for row in await conn.execute(statement):
                    value = math.nan if row.value is None else float(row.value)
                    reading = Reading(
                        value, channel.unit, Quality(row.quality), row.ts, now_mono - (now_ts - row.ts)
                    )
                    out.append(Sample(channel.device, channel.channel, reading))
        return out

    # --- reading a line's records from outside its controller (`depline report`) --------------------

    async def table_names(self) -> frozenset[str]:
        """The tables the database has: a reader of a database older than its code finds some missing."""
        async with self._reading() as conn:
            return await conn.run_sync(lambda sync: frozenset(inspect(sync).get_table_names()))

    async def production_jobs(self, run: str) -> list[dict[str, Any]]:
        """The production job with id `run`, or every job of the batch with id `run` in queue order
        (empty if neither exists); `items` decoded (`sequences.batch_store.JobItems`'s JSON)."""
        statement = (
            select(jobs)
            .where(jobs.c.line == self.line, or_(jobs.c.id == run, jobs.c.batch_id == run))
            .order_by(jobs.c.batch_id, jobs.c.position)
        )
        return [_plain(r, json_columns=("items",)) for r in await self._fetch(statement)]

    async def production_batch(self, batch_id: str) -> dict[str, Any] | None:
        """A batch's row without its queue text (which `production_jobs` carries per job as recipes)."""
        statement = select(*(c for c in batches.c if c.name != "queue_text")).where(
            batches.c.id == batch_id, batches.c.line == self.line
        )
        rows = await self._fetch(statement)
        return _plain(rows[0]) if rows else None

    async def job_events(self, job_id: str) -> list[dict[str, Any]]:
        """A job's checkpoints, operator confirmations and state changes, in order, `detail` decoded."""
        own_jobs = select(jobs.c.id).where(jobs.c.line == self.line)
        statement = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.job_id.in_(own_jobs))
            .order_by(job_events.c.id)
        )
        return [_plain(r, json_columns=("detail",)) for r in await self._fetch(statement)]

    async def items_by_id(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `items` rows (kind, material, registration time) of these ids; unknown ids are left out."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(item_ids), IN_CHUNK):
            chunk = list(item_ids[start : start + IN_CHUNK])
            for row in await self._fetch(
                select(items).where(items.c.line == self.line, items.c.id.in_(chunk))
            ):
                out[str(row["id"])] = _plain(row)
        return out

    async def inventory_commands(
        self, item_ids: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Done registrations, moves and seal changes that name one of these items (registered, moved,
        opened or sealed, or moved into), oldest first, `action` decoded: a container's handling,
        which the ledger does not keep (it keeps what can be exposed)."""
        kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
        statement = (
            select(commands)
            .where(commands.c.line == self.line, commands.c.outcome == "done", kinds)
            .order_by(commands.c.id)
        )
        if since is not None:
            statement = statement.where(commands.c.ts >= since)
        if until is not None:
            statement = statement.where(commands.c.ts <= until)
        wanted = set(item_ids)
        found = [_plain(r, json_columns=("action", "refusals")) for r in await self._fetch(statement)]
        return [
            c
            for c in found
            if any(c["action"].get(key) in wanted for key in ("id", "item", "container", "to"))
        ]

    async def sample_envelope(
        self, device: str, channel: str, since: float, until: float, *, buckets: int
    ) -> list[tuple[float, float, float]]:
        """One channel's usable samples (quality ok or under range) in [since, until] as at most
        `buckets` + 1 rows of (time, min, max), oldest first: what a plot of a long run draws.

        The rows are bounded however many samples the window holds, and each keeps its bucket's
        extremes, so a pressure burst or a frost-point excursion shows in the plot (an average or every
        n-th sample would hide it). A row's time is the middle of its samples' times. One indexed
        query (`channel_id, ts`) grouped in the database; an unknown channel gives no rows.
        """
        if buckets < 1 or until < since:
            raise ValueError("sample_envelope needs buckets >= 1 and since <= until")
        width = max((until - since) / buckets, 1e-6)
        bucket = cast((samples.c.ts - since) / width, Integer)
        async with self._reading() as conn:
            channel_id = await conn.scalar(
                select(channels.c.id).where(
                    channels.c.line == self.line, channels.c.device == device, channels.c.channel == channel
                )
            )
            if channel_id is None:
                return []
            statement = (
                select(
                    func.min(samples.c.ts),
                    func.max(samples.c.ts),
                    func.min(samples.c.value),
                    func.max(samples.c.value),
                )
                .where(
                    samples.c.channel_id == channel_id,
                    samples.c.ts >= since,
                    samples.c.ts <= until,
                    samples.c.value.is_not(None),
                    samples.c.quality.in_((Quality.OK.value, Quality.UNDER_RANGE.value)),
                )
                .group_by(bucket)
                .order_by(func.min(samples.c.ts))
            )
            rows = (await conn.execute(statement)).all()
        return [((float(t0) + float(t1)) / 2, float(lo), float(hi)) for t0, t1, lo, hi in rows]


def _plain(row: RowMapping, json_columns: Sequence[str] = ()) -> dict[str, Any]:
    out = dict(row)
    for name in json_columns:
        text = out.get(name)
        if isinstance(text, str):
            out[name] = json.loads(text)
    value = out.get("value")
    if value is None and "value" in out and "quality" in out:
        out["value"] = math.nan  # SQLite stores NaN as NULL; give back what was recorded
    return out


def _ledger_entry(row: RowMapping) -> LedgerEntry:
    evidence = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else {}
    return LedgerEntry(
        float(row["ts"]),
        str(row["item"]),
        str(row["event"]),
        str(row["space"]),
        str(row["atmosphere"]),
        bool(row["exposed"]),
        evidence,
    )


__all__ = ["ARCHIVE_MAX_ROWS", "IN_CHUNK", "HistorianQueries"]
