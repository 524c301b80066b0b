"""One batch of the historian's rows, written in one transaction, exactly once.

Why it is built this way:

- **The driver's own bulk path for samples.** Samples go in through `executemany` with plain tuples
  on SQLite, `COPY ... FROM STDIN` (asyncpg `copy_records_to_table`) on PostgreSQL, because Core
  inserts with dict parameters cost about 3.5x as much per row (stack.md §5). The low-volume kinds
  use Core.
- **Exactly once.** Each batch carries a key that is inserted into `write_batches` in the same
  transaction. When a commit's fate is unknown (the server died during COMMIT, a timeout cancelled
  it), the retry looks the key up first. Spill files carry their batches' keys, so a file left
  behind by a stopped or crashed process is replayed at the next start without duplicating a row.
- **The data or the database.** `DATA_ERRORS` are the failures that mean a row, not the database,
  is at fault: the writer (`controller.historian.store`) splits such a batch instead of retrying it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from controller.historian.errors import describe_error
from controller.historian.schema import (
    alarm_events,
    channels,
    commands,
    items,
    ledger,
    mode_changes,
    runs,
    transitions,
    write_batches,
)
from controller.historian.spill import (
    COLUMNS,
    K_ALARM,
    K_COMMAND,
    K_ITEM,
    K_LEDGER,
    K_MODE,
    K_RUN,
    K_RUN_END,
    K_SAMPLE,
    K_TRANSITION,
    QUALITY_TEXT,
    Entry,
)
from controller.line.poller import Sample

log = logging.getLogger(__name__)

SAMPLE_CHUNK_ROWS: Final = 5000  # rows converted and inserted at a time (the loop's longest stall)
MARKER_RETENTION_S: Final = 86400.0  # longer than any commit can stay in doubt before its retry
MARKER_PRUNE_EVERY_S: Final = 600.0
_SAMPLE_COLUMNS: Final = ("ts", "channel_id", "value", "quality")
_SQLITE_SAMPLE_INSERT: Final = "INSERT INTO samples (ts, channel_id, value, quality) VALUES (?, ?, ?, ?)"

_INSERT_TABLES: Final = {
    K_COMMAND: commands,
    K_ALARM: alarm_events,
    K_LEDGER: ledger,
    K_TRANSITION: transitions,
    K_MODE: mode_changes,
}


@dataclass(slots=True)
class Batch:
    """Rows written in one transaction; `key` makes a retry of an in-doubt commit idempotent."""

    key: str
    entries: list[Entry]
    check_marker: bool
    source: Path | None = None  # the spill file the rows came from
    last_of_source: bool = False  # the file is deleted once this batch is in


# --- the errors that mean the data, not the database, is at fault ----------------------------------

DATA_ERRORS: Final = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    TypeError,
    ValueError,
)


# --- writing a batch --------------------------------------------------------------------------------


class BatchCommitter:
    """Commits batches for one historian; keeps the channel ids it has learnt and prunes old batch keys.

    The channel ids a transaction learns are kept only once it has committed: an id from a
    transaction that was rolled back may not exist.
    """

    def __init__(self, *, line: str, postgres: bool, timeout_s: float) -> None:
        self._line = line  # every row but a sample gets it here: spill files stay line-free
        self._postgres = postgres
        self._timeout_s = timeout_s
        self._channel_ids: dict[tuple[str, str], int] = {}
        self._next_prune = 0.0

    async def commit(self, engine: AsyncEngine, batch: Batch) -> None:
        grouped: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
        sample_entries: list[Entry] = []
        for entry in batch.entries:
            if isinstance(entry, Sample) or entry[0] == K_SAMPLE:
                sample_entries.append(entry)
            else:
                grouped[entry[0]].append(entry[1])
        async with engine.begin() as conn:
            if batch.check_marker:
                found = await conn.execute(select(write_batches.c.id).where(write_batches.c.id == batch.key))
                if found.first() is not None:
                    log.info("batch was committed before its failure was seen", extra={"key": batch.key})
                    return
            # first statement: on asyncpg it also opens the transaction the COPY below joins
            await conn.execute(write_batches.insert(), {"id": batch.key, "written_at": time.time()})
            if grouped[K_RUN]:
                await conn.execute(runs.insert(), self._dicts(K_RUN, grouped[K_RUN]))
            channel_ids = dict(self._channel_ids)
            if sample_entries:
                await self._write_samples(conn, sample_entries, channel_ids)
            for kind, table in _INSERT_TABLES.items():
                if grouped[kind]:
                    await conn.execute(table.insert(), self._dicts(kind, grouped[kind]))
            if grouped[K_ITEM]:
                await conn.execute(self._insert_ignore_items(), self._dicts(K_ITEM, grouped[K_ITEM]))
            for run_id, ended_at, status in grouped[K_RUN_END]:
                await conn.execute(
                    update(runs)
                    .where(runs.c.id == run_id, runs.c.line == self._line)
                    .values(ended_at=ended_at, status=status)
                )
        self._channel_ids = channel_ids

    def _insert_ignore_items(self) -> Any:
        dialect = pg_dialect if self._postgres else sqlite_dialect
        return dialect.insert(items).on_conflict_do_nothing(index_elements=[items.c.line, items.c.id])

    def _dicts(self, kind: str, rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
        columns = COLUMNS[kind]
        line = self._line
        return [{"line": line, **dict(zip(columns, values, strict=True))} for values in rows]

    async def _write_samples(
        self, conn: AsyncConnection, entries: list[Entry], channel_ids: dict[tuple[str, str], int]
    ) -> None:
        """The hot path: plain tuples into the driver's bulk insert, no per-row SQLAlchemy work.

        In chunks, one after the other: the loop's thread is busy for one chunk's conversion (and on
        PostgreSQL its COPY encoding) at a time, which bounds how late the control loop can be made,
        whatever the batch size. Not overlapped with the insert on purpose: the driver thread and
        the loop would then fight over the GIL and both run slower (measured: -30 % on SQLite).
        At the first channel without an id, every channel new to the rest of the batch is registered
        together, in two statements: one at a time they cost two round trips each, and a line's first
        batch (hundreds of channels) on a busy host outlasted the writer's timeout, was rolled back
        and failed again, for ever.
        """
        done = 0
        while done < len(entries):
            rows, done = _sample_rows(entries, done, done + SAMPLE_CHUNK_ROWS, channel_ids)
            if rows:
                await self._insert_samples(conn, rows)
            if done < len(entries) and len(rows) < SAMPLE_CHUNK_ROWS:  # a channel without an id yet
                new: dict[tuple[str, str], str] = {}
                for entry in entries[done:]:
                    device, channel, unit = _channel_of(entry)
                    if (device, channel) not in channel_ids:
                        new.setdefault((device, channel), unit)
                await self._channel_ids_of(conn, new, channel_ids)

    async def _insert_samples(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if self._postgres:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table("samples", records=rows, columns=_SAMPLE_COLUMNS)
        else:
            await conn.exec_driver_sql(_SQLITE_SAMPLE_INSERT, rows)

    async def _channel_ids_of(
        self, conn: AsyncConnection, new: dict[tuple[str, str], str], channel_ids: dict[tuple[str, str], int]
    ) -> None:
        dialect = pg_dialect if self._postgres else sqlite_dialect
        insert = dialect.insert(channels).on_conflict_do_nothing(
            index_elements=[channels.c.line, channels.c.device, channels.c.channel]
        )
        line = self._line
        await conn.execute(
            insert,
            [{"line": line, "device": d, "channel": c, "unit": unit} for (d, c), unit in sorted(new.items())],
        )
        result = await conn.execute(
            select(channels.c.device, channels.c.channel, channels.c.id).where(channels.c.line == self._line)
        )
        channel_ids.update({(device, channel): cid for device, channel, cid in result})

    async def prune_markers(self, engine: AsyncEngine) -> None:
        """Batch keys are only needed while a commit can be in doubt; a day is far beyond that."""
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + MARKER_PRUNE_EVERY_S
        try:
            async with asyncio.timeout(self._timeout_s), engine.begin() as conn:
                await conn.execute(
                    write_batches.delete().where(write_batches.c.written_at < now - MARKER_RETENTION_S)
                )
        except Exception as exc:  # next time; this is housekeeping
            log.info("pruning batch keys failed", extra={"error": describe_error(exc)})


# --- rows (pure helpers) ----------------------------------------------------------------------------


def _sample_rows(
    entries: Sequence[Entry], start: int, stop: int, channel_ids: dict[tuple[str, str], int]
) -> tuple[list[tuple[Any, ...]], int]:
    """Rows for entries[start:stop], up to the first whose channel has no id yet; and where it stopped."""
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    quality_text = QUALITY_TEXT
    index = start
    for entry in entries[start:stop]:
        if isinstance(entry, Sample):
            reading = entry.reading
            channel_id = channel_ids.get((entry.device, entry.channel))
            if channel_id is None:
                break
            append((reading.ts, channel_id, reading.value, quality_text[reading.quality]))
        else:
            device, channel, _unit, ts, value, quality = entry[1]
            channel_id = channel_ids.get((device, channel))
            if channel_id is None:
                break
            append((ts, channel_id, value, quality))
        index += 1
    return rows, index


def _channel_of(entry: Entry) -> tuple[str, str, str]:
    if isinstance(entry, Sample):
        return entry.device, entry.channel, entry.reading.unit
    device, channel, unit = entry[1][:3]
    return str(device), str(channel), str(unit)


__all__ = ["DATA_ERRORS", "MARKER_RETENTION_S", "SAMPLE_CHUNK_ROWS", "Batch", "BatchCommitter"]
