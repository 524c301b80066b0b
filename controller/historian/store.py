"""The historian: every sample, command, alarm event, transition and ledger entry, kept in SQL.

This module is the writer; the historian's other concepts have modules of their own, and callers
import each name from the module that defines it: `controller.historian.upgrade` (the schema is
Alembic's), `controller.historian.spill` (the row format and the spill files),
`controller.historian.queries` (the read side, which `Historian` inherits),
`controller.historian.recovery` (what a restart after a crash rebuilds: interrupted runs, the
inventory), `controller.historian.errors`.

Why the writer is built this way:

- **Callers never wait.** The poller, the gate and the alarm board call `record_*` from the control
  loop; those methods only append to an in-memory deque (O(1), no await). A database that is slow,
  locked or gone must never slow the plant down, so nothing the control loop calls touches it.
- **One writer task** takes rows off the deque in batches and writes each batch in one transaction
  (SQLite allows one writer; one transaction per batch is what makes 100k rows/s possible). Samples
  go in through the driver's own bulk path: `executemany` with plain tuples on SQLite,
  `COPY ... FROM STDIN` (asyncpg `copy_records_to_table`) on PostgreSQL, because Core inserts with
  dict parameters cost about 3.5x as much per row (stack.md §5). The low-volume kinds use Core.
- **Bounded memory, no silent loss.** Rows wait in memory while the database is down; beyond
  `max_buffer` the oldest of them are written by a second task (the *spiller*, which never talks to
  the database, so a hung database call cannot stop it) to JSON-lines files in `spill_dir`, in an
  executor thread. When the database is back they are replayed first, so rows reach each table in
  the order they were recorded. If even the spill fails, the rows are counted in `dropped`, logged,
  and health says so. A hard cap in memory (twice `max_buffer`, and at least `max_buffer` + 100k rows
  so that a burst recorded between two turns of the event loop never meets it) protects against a
  spill that hangs. A batch being written counts against `max_buffer` and is never more than half.
- **Exactly once.** Each batch carries a key that is inserted into `write_batches` in the same
  transaction. When a commit's fate is unknown (the server died during COMMIT, a timeout cancelled
  it), the retry looks the key up first. Spill files carry their batches' keys, so a file left
  behind by a stopped or crashed process is replayed at the next start without duplicating a row.
- **A bad row is not a dead historian.** If the database rejects a batch for its data (a constraint
  or a type), the batch is halved until the offending row is alone; that row goes to a
  `rejected-*.jsonl` file next to the spill files and counts as dropped. Anything else (locked,
  disconnected, timed out) is retried every `retry_s`.
- **Health is a signal, not a log line.** `on_health(healthy, detail)` is called when the writer goes
  from writing to failing and back (and when the reason for failing changes, e.g. rows start being
  dropped), so the controller can raise and clear an alarm.
- **The schema is checked, not assumed.** `start()` creates it on an empty database and refuses one
  that is not this code's (`SchemaOutdated`). If the database cannot be reached at start, the
  historian starts degraded (recording, buffering, spilling) and checks the schema when it first
  gets through.

A run, its commands and its transitions are linked by a run id the historian makes itself, so a run
can start while the database is down. Run ids sort by start time. Closing the runs a crashed process
left 'running' is one of the writer's steps: after that process's spill files are replayed, before
any row of this one. Registrations, moves, seal changes, coatings and run starts and ends are written
at once rather than after `batch_s`, so a crash just after an item moved does not lose the move.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from controller.historian.errors import HistorianError, SchemaOutdated, describe_error
from controller.historian.queries import HistorianQueries
from controller.historian.recovery import (
    COAT_ITEM,
    INVENTORY_ACTIONS,
    REGISTER_ITEM,
    InterruptedRun,
    close_runs_started_before,
)
from controller.historian.schema import (
    alarm_events,
    async_url,
    channels,
    commands,
    items,
    ledger,
    make_engine,
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
    K_RUN,
    K_RUN_END,
    K_SAMPLE,
    K_TRANSITION,
    QUALITY_TEXT,
    REJECTED_PREFIX,
    Entry,
    SpillFile,
    entry_json,
    find_spill_files,
    read_spill_file,
    rejected_path,
    spill_batches,
    spill_path,
    to_json,
    write_lines,
    write_spill_file,
)
from controller.historian.upgrade import ensure_schema, prepare_sqlite_dir, shown_url
from controller.line.alarms import AlarmRecord
from controller.line.gate import GateRecord
from controller.line.items import Item
from controller.line.ledger import LedgerEntry
from controller.line.poller import Sample

log = logging.getLogger(__name__)

SAMPLE_CHUNK_ROWS: Final = 5000  # rows converted and inserted at a time (the loop's longest stall)
MARKER_RETENTION_S: Final = 86400.0  # longer than any commit can stay in doubt before its retry
MARKER_PRUNE_EVERY_S: Final = 600.0
SPILL_WRITE_TIMEOUT_S: Final = 60.0
HARD_CAP_MARGIN_ROWS: Final = 100_000
_SAMPLE_COLUMNS: Final = ("ts", "channel_id", "value", "quality")
_SQLITE_SAMPLE_INSERT: Final = "INSERT INTO samples (ts, channel_id, value, quality) VALUES (?, ?, ?, ?)"

_INSERT_TABLES: Final = {
    K_COMMAND: commands,
    K_ALARM: alarm_events,
    K_LEDGER: ledger,
    K_TRANSITION: transitions,
}

HealthCallback = Callable[[bool, str], None]


@dataclass(frozen=True, slots=True)
class HistorianStats:
    """Counters for the HMI and the health alarm. Row counts cover every kind, samples included.

    `buffered`: rows in memory, waiting to be written. `spilled`: rows in spill files, waiting to be
    replayed. `written`: rows committed since start. `dropped`: rows lost (spill failed, rejected by
    the database, recorded after stop, or over the hard memory cap): never silently.
    """

    buffered: int
    spilled: int
    written: int
    dropped: int
    last_error: str
    healthy: bool
    detail: str
    spilled_total: int
    spill_files: int


@dataclass(slots=True)
class _Batch:
    """Rows written in one transaction; `key` makes a retry of an in-doubt commit idempotent."""

    key: str
    entries: list[Entry]
    check_marker: bool
    source: Path | None = None  # the spill file the rows came from
    last_of_source: bool = False  # the file is deleted once this batch is in


@dataclass(slots=True)
class _Health:
    healthy: bool = True
    key: str = ""
    detail: str = "not started"


# --- the errors that mean the data, not the database, is at fault ----------------------------------

_DATA_ERRORS: Final = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    TypeError,
    ValueError,
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the historian ----------------------------------------------------------------------------------


class Historian(HistorianQueries):
    """See the module docstring. Build, `await start()`, record, `await stop()`; query (inherited).

    `batch_s` is the longest a recorded row waits in memory while the database is healthy;
    `batch_rows` caps one transaction; samples go to the driver in chunks of `SAMPLE_CHUNK_ROWS`, the
    longest the loop's thread is kept busy at a time (20k rows converted and COPY-encoded in one go
    stalled a 0.1 s ticker by 20-55 ms on the bench machine);
    `timeout_s` bounds every database operation; `retry_s` is the pause after a failed write.
    `record_*` must be called on the event loop's thread (they set asyncio events); `on_health` is
    called there too and must return at once (raise or clear an alarm, nothing slower).
    """

    def __init__(
        self,
        url: str,
        *,
        spill_dir: str | os.PathLike[str],
        batch_s: float = 0.5,
        max_buffer: int = 200_000,
        on_health: HealthCallback | None = None,
        batch_rows: int = 20_000,
        timeout_s: float = 10.0,
        retry_s: float = 1.0,
    ) -> None:
        if batch_s <= 0 or timeout_s <= 0 or retry_s <= 0:
            raise ValueError("batch_s, timeout_s and retry_s must be positive")
        if max_buffer < 2 or batch_rows < 1:
            raise ValueError("max_buffer must be >= 2 and batch_rows >= 1")
        self.url = url
        self._shown_url = shown_url(url)
        self._spill_dir = Path(spill_dir)
        self._batch_s = batch_s
        self._max_buffer = max_buffer
        self._hard_cap = max(2 * max_buffer, max_buffer + HARD_CAP_MARGIN_ROWS)
        self._batch_rows = min(batch_rows, max_buffer // 2)
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._on_health = on_health
        self._postgres = async_url(url).get_backend_name() == "postgresql"
        self._engine: AsyncEngine | None = None

        self._memory: collections.deque[Entry] = collections.deque()
        self._pending: collections.deque[_Batch] = collections.deque()
        self._pending_memory_rows = 0
        self._spill_files: collections.deque[SpillFile] = collections.deque()
        self._spill_rows = 0
        self._spill_in_flight = 0
        self._spill_seq = 0
        self._instance = f"{time.time_ns():020d}"
        self._channel_ids: dict[tuple[str, str], int] = {}
        self._started_at = math.inf  # runs that started before this are not this process's
        self._own_runs: set[str] = set()  # ... and neither are these (never closed as interrupted)
        self._close_due = False  # interrupted runs still to be closed (the writer's first step)
        self._urgent = False  # a row that must not wait for `batch_s` is in memory
        self.interrupted_runs: tuple[InterruptedRun, ...] = ()

        self._wake = asyncio.Event()
        self._overflow = asyncio.Event()
        self._spill_done = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._flush_requested = False
        self._stopping = False
        self._closed = False
        self._schema_ready = False
        self._writer: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None
        self._next_prune = 0.0

        self._health = _Health()
        self._written = 0
        self._dropped = 0
        self._spilled_total = 0
        self._last_error = ""
        self.current_run: str | None = None

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create or check the schema, then start the writer and the spiller.

        Raises `SchemaOutdated` when the database can be reached but its schema is not this code's.
        A database that cannot be reached does not stop the start: the historian runs degraded.
        """
        if self._writer is not None:
            raise HistorianError("historian already started")
        await asyncio.wait_for(asyncio.to_thread(prepare_sqlite_dir, self.url), self._timeout_s)
        self._engine = make_engine(self.url, timeout_s=self._timeout_s)
        self._started_at = time.time()
        self._close_due = True
        try:
            leftovers = await asyncio.wait_for(
                asyncio.to_thread(find_spill_files, self._spill_dir), self._timeout_s
            )
        except OSError as exc:  # the database may still work; a spill will fail loudly if it comes to that
            leftovers = []
            log.error(
                "spill directory unusable", extra={"spill_dir": str(self._spill_dir), "error": str(exc)}
            )
        self._spill_files.extend(leftovers)
        self._spill_rows += sum(f.rows for f in leftovers)
        if leftovers:
            log.warning(
                "replaying spill files left by an earlier run",
                extra={"files": len(leftovers), "rows": self._spill_rows, "spill_dir": str(self._spill_dir)},
            )
        try:
            await self._ensure_schema()
        except SchemaOutdated:
            await self._dispose()
            raise
        except Exception as exc:  # unreachable database: run degraded, the writer keeps trying
            self._last_error = describe_error(exc)
            log.warning(
                "database unreachable at start; recording into memory and spill files",
                extra={"url": self._shown_url, "error": self._last_error},
            )
            self._set_health(False, "db", f"database unreachable: {self._last_error}")
        else:
            self._set_health(True, "ok", "writing")
        self._writer = asyncio.create_task(self._supervised(self._write_loop), name="historian-writer")
        self._spiller = asyncio.create_task(self._supervised(self._spill_loop), name="historian-spiller")

    async def stop(self, *, flush_timeout_s: float | None = None) -> None:
        """Write what is buffered (for up to `flush_timeout_s`), spill what could not be, close.

        Rows still in memory when the database cannot take them go to a spill file, to be replayed
        by the next start; nothing buffered is lost by stopping.
        """
        if self._closed:
            return
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        budget = 3 * self._timeout_s if flush_timeout_s is None else flush_timeout_s
        for task in (self._writer, self._spiller):
            if task is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(task), budget)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._closed = True
        await self._spill_remainder()
        await self._dispose()
        log.info("historian stopped", extra={"stats": dataclasses.asdict(self.stats)})

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything recorded so far is written; False if that took longer than allowed."""
        try:
            async with asyncio.timeout(timeout_s):
                while not self._drained():
                    if self._writer is None or self._writer.done():
                        return False
                    self._flush_requested = True
                    self._progress.clear()
                    self._wake.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._progress.wait(), 0.1)
        except TimeoutError:
            return False
        finally:
            self._flush_requested = False
        return True

    @property
    def stats(self) -> HistorianStats:
        return HistorianStats(
            buffered=len(self._memory) + self._pending_memory_rows,
            spilled=self._spill_rows + self._spill_in_flight,
            written=self._written,
            dropped=self._dropped,
            last_error=self._last_error,
            healthy=self._health.healthy,
            detail=self._health.detail,
            spilled_total=self._spilled_total,
            spill_files=len(self._spill_files),
        )

    @property
    def healthy(self) -> bool:
        return self._health.healthy

    # --- recording (synchronous, never waits) -------------------------------------------------------

    def record_sample(self, sample: Sample) -> None:
        memory = self._memory
        memory.append(sample)
        size = len(memory)
        if size >= self._batch_rows or size > self._max_buffer or self._closed:
            self._after_append(size)

    def record_command(self, record: GateRecord) -> None:
        """Every command the gate judged, allowed or refused (a `CommandGate.subscribe` callback)."""
        cmd = record.command
        action: dict[str, object] = {"type": type(cmd.action).__name__, **dataclasses.asdict(cmd.action)}
        if cmd.meta:
            action["meta"] = dict(cmd.meta)
        refusals = record.verdict.refusals
        outcome = record.outcome
        if record.verdict.allowed and not record.executed and not record.error:
            outcome = "allowed"
        invariants = ",".join(dict.fromkeys(r.invariant for r in refusals)) or None
        refusal_list = [
            {"invariant": r.invariant, "rule": r.rule, "reason": r.reason, "evidence": dict(r.evidence)}
            for r in refusals
        ]
        changes_inventory = outcome == "done" and action["type"] in INVENTORY_ACTIONS
        self._append(
            K_COMMAND,
            (
                record.ts,
                self.current_run,
                cmd.user,
                cmd.origin,
                to_json(action),
                outcome,
                record.verdict.reason,
                invariants,
                record.error,
                record.duration_s,
                cmd.reason,
                to_json(refusal_list),
            ),
            urgent=changes_inventory,
        )

    def record_alarm(self, record: AlarmRecord) -> None:
        """Every alarm journal record (an `AlarmBoard.subscribe` callback)."""
        self._append(
            K_ALARM,
            (
                record.ts,
                record.alarm_id,
                record.event.value,
                record.from_state.value,
                record.to_state.value,
                record.user,
                record.reason,
                record.severity.value,
                to_json(dict(record.evidence)),
                record.trip,
                record.until_s,
                record.condition_active,
            ),
        )

    def record_ledger(self, entry: LedgerEntry) -> None:
        self._append(
            K_LEDGER,
            (
                entry.ts,
                entry.item,
                entry.event,
                entry.space,
                entry.atmosphere,
                entry.exposed,
                to_json(entry.evidence),
            ),
        )

    def record_item(self, item: Item, ts: float | None = None) -> None:
        """An item put on the line; recording the same id again keeps the first registration."""
        registered = time.time() if ts is None else ts
        self._append(K_ITEM, (item.id, item.kind.value, item.material, registered))

    def record_registration(self, item: Item, user: str, origin: str, ts: float | None = None) -> None:
        """An item registered (a `LineModel.on_register` hook): its `items` row, and a done
        "RegisterItem" command with where it was put and whether sealed, which `inventory()` starts
        from (the items table has no location: it says what an item is, not where)."""
        when = time.time() if ts is None else ts
        self.record_item(item, when)
        action = {
            "type": REGISTER_ITEM,
            "id": item.id,
            "kind": item.kind.value,
            "material": item.material,
            "location": item.location,
            "sealed": item.sealed,
        }
        values = (
            when,
            self.current_run,
            user,
            origin,
            to_json(action),
            "done",
            "registered",
            None,
            "",
            0.0,
            "",
            "[]",
        )
        self._append(K_COMMAND, values, urgent=True)

    def record_coating(self, item: Item, user: str, origin: str, ts: float | None = None) -> None:
        """A layer deposited on an item (a `LineModel.on_coat` hook): a done "CoatItem" command, which
        `inventory()` replays so a restarted controller judges the electrode by what is on it."""
        when = time.time() if ts is None else ts
        action = {"type": COAT_ITEM, "item": item.id, "material": item.material}
        values = (
            when,
            self.current_run,
            user,
            origin,
            to_json(action),
            "done",
            "coated",
            None,
            "",
            0.0,
            "",
            "[]",
        )
        self._append(K_COMMAND, values, urgent=True)

    def record_transition(
        self, station: str, source: str, dest: str, trigger: str, *, reason: str = "", ts: float | None = None
    ) -> None:
        """A station state machine changed state (tagged with the current run, if any)."""
        when = time.time() if ts is None else ts
        self._append(K_TRANSITION, (when, self.current_run, station, source, dest, trigger, reason))

    def start_run(self, config_text: str, user: str, recipe_text: str | None = None) -> str:
        """Open a run and return its id; commands and transitions recorded from now on carry it.

        Synchronous like every `record_*`: the row is queued, not awaited, so a run can start while
        the database is down. The id is made here (sortable UTC time plus random suffix).
        """
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        recipe_hash = _sha256(recipe_text) if recipe_text is not None else None
        self._append(
            K_RUN,
            (run_id, now, "running", _sha256(config_text), config_text, recipe_hash, recipe_text, user),
            urgent=True,
        )
        self.current_run = run_id
        self._own_runs.add(run_id)
        log.info("run started", extra={"run_id": run_id, "user": user})
        return run_id

    def end_run(self, run_id: str, status: str = "complete") -> None:
        if status not in ("complete", "incomplete"):
            raise ValueError(f"run status must be 'complete' or 'incomplete', not {status!r}")
        self._append(K_RUN_END, (run_id, time.time(), status), urgent=True)
        if self.current_run == run_id:
            self.current_run = None
        log.info("run ended", extra={"run_id": run_id, "status": status})

    def _append(self, kind: str, values: tuple[Any, ...], *, urgent: bool = False) -> None:
        """Queue a row; an `urgent` one (the inventory, a run's start and end) wakes the writer now."""
        memory = self._memory
        memory.append((kind, values))
        self._after_append(len(memory))
        if urgent and not self._closed:
            self._urgent = True
            self._wake.set()

    def _after_append(self, size: int) -> None:
        """The rare paths of recording: wake the writer, trigger a spill, refuse after stop."""
        if self._closed or size > self._hard_cap:
            self._memory.pop()
            self._drop(1, "recorded after stop" if self._closed else "memory buffer at its hard cap")
            return
        if size >= self._batch_rows and not self._wake.is_set():
            self._wake.set()
        if size > self._max_buffer and not self._overflow.is_set():
            self._overflow.set()

    def _drop(self, rows: int, why: str) -> None:
        first = self._dropped == 0
        self._dropped += rows
        if first or rows > 1:
            log.error("historian dropped rows", extra={"rows": rows, "dropped": self._dropped, "why": why})
        self._set_health(False, "dropped", f"{self._dropped} rows dropped ({why})")

    # --- health -------------------------------------------------------------------------------------

    def _set_health(self, healthy: bool, key: str, detail: str) -> None:
        """Tell the controller when health flips, or when the reason for being unhealthy changes."""
        previous = self._health
        self._health = _Health(healthy, key, detail)
        if previous.healthy == healthy and (healthy or previous.key == key):
            return
        log.log(
            logging.INFO if healthy else logging.WARNING,
            "historian health changed",
            extra={"healthy": healthy, "detail": detail},
        )
        if self._on_health is not None:
            try:
                self._on_health(healthy, detail)
            except Exception:  # a broken alarm hook must not stop the historian
                log.exception("historian health callback failed")

    # --- schema -------------------------------------------------------------------------------------

    async def _ensure_schema(self) -> None:
        """Create or check the schema (`controller.historian.upgrade.ensure_schema`), once."""
        await ensure_schema(self._require_engine(), self.url, self._timeout_s)
        self._schema_ready = True

    async def _dispose(self) -> None:
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._engine.dispose(), self._timeout_s)

    # --- the writer ---------------------------------------------------------------------------------

    def _drained(self) -> bool:
        return not (
            self._memory or self._pending or self._spill_files or self._spill_in_flight or self._close_due
        )

    async def _supervised(self, body: Callable[[], Awaitable[None]]) -> None:
        """A bug in the writer or spiller must show as ill health and a restart, not a silent stop."""
        while True:
            try:
                await body()
                return
            except Exception as exc:
                self._last_error = describe_error(exc)
                log.exception("historian task crashed; restarting it", extra={"task": body.__name__})
                self._set_health(False, "crash", f"historian {body.__name__} crashed: {self._last_error}")
                if self._stopping:
                    return
                await self._wait(self._stop_event, self._retry_s)

    async def _write_loop(self) -> None:
        """Write whatever is due, oldest first: pending batches, then spill files, then memory.

        Memory is written when `batch_rows` rows are waiting, when the oldest has waited `batch_s`,
        or when a flush or stop asks; never as a stream of one-row transactions.
        """
        loop = asyncio.get_running_loop()
        due_at = loop.time() + self._batch_s
        while True:
            work = self._next_work(loop.time() >= due_at)
            if work == "idle":
                if self._stopping:
                    return
                if not self._memory:
                    due_at = loop.time() + self._batch_s
                await self._wait(self._wake, max(0.0, due_at - loop.time()))
                self._wake.clear()
                if len(self._memory) >= self._batch_rows or self._urgent:
                    due_at = loop.time()
                continue
            if work == "wait_spill":
                await self._wait(self._spill_done, 0.5)
                self._spill_done.clear()
                continue
            ok = await self._do(work)
            self._progress.set()
            if not ok:
                if self._stopping:
                    return
                await self._wait(self._stop_event, self._retry_s)
            elif work == "memory" and len(self._memory) < self._batch_rows:
                due_at = loop.time() + self._batch_s
            await asyncio.sleep(0)  # let recorders and readers in between batches

    def _next_work(self, due: bool) -> str:
        if self._pending:
            return "pending"
        if self._spill_files:
            return "replay"
        if self._close_due:  # after what a dead process left is in, before this process's rows
            return "close"
        if self._spill_in_flight:
            return "wait_spill"
        if self._memory and (due or self._urgent or self._flush_requested or self._stopping):
            return "memory"
        return "idle"

    async def _do(self, work: str) -> bool:
        """One step; False when the database failed (health is already updated)."""
        if not self._schema_ready:
            try:
                await self._ensure_schema()
            except SchemaOutdated as exc:
                self._last_error = str(exc)
                self._set_health(False, "schema", str(exc))
                return False
            except Exception as exc:
                return self._failed(exc)
        if work == "replay":
            return await self._load_spill_file()
        if work == "close":
            return await self._close_interrupted_runs()
        if work == "memory":
            self._take_from_memory()
        return await self._write_pending()

    def _take_from_memory(self) -> None:
        memory = self._memory
        count = min(len(memory), self._batch_rows)
        entries = [memory.popleft() for _ in range(count)]
        self._pending.append(_Batch(uuid.uuid4().hex, entries, check_marker=False))
        self._pending_memory_rows += count
        if not memory:
            self._urgent = False

    async def _write_pending(self) -> bool:
        batch = self._pending[0]
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._commit(batch)
        except _DATA_ERRORS as exc:
            await self._split_or_reject(batch, exc)
            return True
        except TimeoutError as exc:
            batch.check_marker = True
            # a cancelled call may leave a connection mid-protocol: start the pool afresh
            await self._dispose()
            return self._failed(exc)
        except Exception as exc:
            batch.check_marker = True
            return self._failed(exc)
        await self._batch_done(batch, written=True)
        self._writing_again()
        await self._prune_markers()
        return True

    def _writing_again(self) -> None:
        if not self._health.healthy:
            dropped = f"; {self._dropped} rows dropped since start" if self._dropped else ""
            self._set_health(True, "ok", f"writing{dropped}")

    async def _close_interrupted_runs(self) -> bool:
        """Mark runs an earlier process left 'running' as 'incomplete' (see `controller.historian.recovery`).

        Idempotent (only 'running' rows change), so a commit in doubt is simply done again.
        """
        try:
            async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                closed = await close_runs_started_before(conn, self._started_at, self._own_runs)
        except TimeoutError as exc:
            await self._dispose()
            return self._failed(exc)
        except Exception as exc:
            return self._failed(exc)
        self._close_due = False
        self.interrupted_runs = tuple(closed)
        for run in closed:
            log.warning(
                "run interrupted by an earlier process's end: marked incomplete",
                extra={"run_id": run.id, "started_at": run.started_at, "ended_at": run.ended_at},
            )
        self._writing_again()
        return True

    def _failed(self, exc: BaseException) -> bool:
        self._last_error = describe_error(exc)
        log.warning("historian write failed", extra={"error": self._last_error, "url": self._shown_url})
        if self._health.healthy or self._health.key == "db":  # keep a more telling reason already shown
            self._set_health(False, "db", f"database write failing: {self._last_error}")
        return False

    async def _batch_done(self, batch: _Batch, *, written: bool) -> None:
        self._pending.popleft()
        rows = len(batch.entries)
        if written:
            self._written += rows
        if batch.source is None:
            self._pending_memory_rows -= rows
        else:
            self._spill_rows -= rows
            if batch.last_of_source:
                await self._unlink(batch.source)

    async def _split_or_reject(self, batch: _Batch, exc: BaseException) -> None:
        """The database refused the data: halve the batch until the bad row stands alone."""
        self._last_error = describe_error(exc)
        if len(batch.entries) > 1:
            half = len(batch.entries) // 2
            first = _Batch(f"{batch.key}.0", batch.entries[:half], True, batch.source, False)
            second = _Batch(f"{batch.key}.1", batch.entries[half:], True, batch.source, batch.last_of_source)
            self._pending.popleft()
            self._pending.appendleft(second)
            self._pending.appendleft(first)
            log.warning("database refused a batch; splitting it", extra={"rows": len(batch.entries)})
            return
        path = rejected_path(self._spill_dir, self._instance, batch.key)
        line = [entry_json(batch.entries[0]), self._last_error]
        try:
            await asyncio.wait_for(asyncio.to_thread(write_lines, path, [line]), SPILL_WRITE_TIMEOUT_S)
        except Exception:
            log.exception("could not keep a rejected row", extra={"path": str(path)})
        await self._batch_done(batch, written=False)
        self._drop(1, f"rejected by the database: {self._last_error}; kept in {path.name}")

    async def _commit(self, batch: _Batch) -> None:
        engine = self._require_engine()
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
                await conn.execute(runs.insert(), _dicts(K_RUN, grouped[K_RUN]))
            channel_ids = dict(self._channel_ids)
            if sample_entries:
                await self._write_samples(conn, sample_entries, channel_ids)
            for kind, table in _INSERT_TABLES.items():
                if grouped[kind]:
                    await conn.execute(table.insert(), _dicts(kind, grouped[kind]))
            if grouped[K_ITEM]:
                await conn.execute(self._insert_ignore_items(), _dicts(K_ITEM, grouped[K_ITEM]))
            for run_id, ended_at, status in grouped[K_RUN_END]:
                await conn.execute(
                    update(runs).where(runs.c.id == run_id).values(ended_at=ended_at, status=status)
                )
        self._channel_ids = channel_ids

    def _insert_ignore_items(self) -> Any:
        dialect = pg_dialect if self._postgres else sqlite_dialect
        return dialect.insert(items).on_conflict_do_nothing(index_elements=[items.c.id])

    async def _write_samples(
        self, conn: AsyncConnection, entries: list[Entry], channel_ids: dict[tuple[str, str], int]
    ) -> None:
        """The hot path: plain tuples into the driver's bulk insert, no per-row SQLAlchemy work.

        In chunks, one after the other: the loop's thread is busy for one chunk's conversion (and on
        PostgreSQL its COPY encoding) at a time, which bounds how late the control loop can be made,
        whatever the batch size. Not overlapped with the insert on purpose: the driver thread and
        the loop would then fight over the GIL and both run slower (measured: -30 % on SQLite).
        """
        done = 0
        while done < len(entries):
            rows, done = _sample_rows(entries, done, done + SAMPLE_CHUNK_ROWS, channel_ids)
            if rows:
                await self._insert_samples(conn, rows)
            if done < len(entries) and len(rows) < SAMPLE_CHUNK_ROWS:  # a channel without an id yet
                device, channel, unit = _channel_of(entries[done])
                await self._channel_id(conn, (device, channel), unit, channel_ids)

    async def _insert_samples(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if self._postgres:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table("samples", records=rows, columns=_SAMPLE_COLUMNS)
        else:
            await conn.exec_driver_sql(_SQLITE_SAMPLE_INSERT, rows)

    async def _channel_id(
        self, conn: AsyncConnection, key: tuple[str, str], unit: str, channel_ids: dict[tuple[str, str], int]
    ) -> int:
        dialect = pg_dialect if self._postgres else sqlite_dialect
        insert = dialect.insert(channels).on_conflict_do_nothing(
            index_elements=[channels.c.device, channels.c.channel]
        )
        await conn.execute(insert, {"device": key[0], "channel": key[1], "unit": unit})
        result = await conn.execute(select(channels.c.device, channels.c.channel, channels.c.id))
        channel_ids.update({(device, channel): cid for device, channel, cid in result})
        return channel_ids[key]

    async def _prune_markers(self) -> None:
        """Batch keys are only needed while a commit can be in doubt; a day is far beyond that."""
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + MARKER_PRUNE_EVERY_S
        try:
            async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                await conn.execute(
                    write_batches.delete().where(write_batches.c.written_at < now - MARKER_RETENTION_S)
                )
        except Exception as exc:  # next time; this is housekeeping
            log.info("pruning batch keys failed", extra={"error": describe_error(exc)})

    # --- spilling -----------------------------------------------------------------------------------

    async def _spill_loop(self) -> None:
        while not self._stopping:
            await self._wait(self._overflow, 1.0)
            self._overflow.clear()
            while len(self._memory) > self._max_buffer and not self._stopping:
                count = len(self._memory) - self._max_buffer // 2
                chunk = [self._memory.popleft() for _ in range(count)]
                await self._spill(chunk)

    async def _spill(self, chunk: list[Entry]) -> None:
        """Oldest rows to a new file; if that fails they are dropped and counted (memory stays bounded)."""
        self._spill_seq += 1
        path = spill_path(self._spill_dir, self._instance, self._spill_seq)
        batches = spill_batches(path, chunk)
        error = await self._write_spill(path, batches, len(chunk))
        if error is not None:
            self._drop(len(chunk), f"spill to {self._spill_dir} failed: {error}")
            return
        self._spill_files.append(SpillFile(path, len(chunk)))
        self._spill_rows += len(chunk)
        self._spilled_total += len(chunk)
        log.info("rows spilled to disk", extra={"path": str(path), "rows": len(chunk)})

    async def _write_spill(self, path: Path, batches: list[tuple[str, list[Entry]]], rows: int) -> str | None:
        """Write one spill file off the loop; the error text if it failed."""
        self._spill_in_flight += rows
        try:
            await asyncio.wait_for(asyncio.to_thread(write_spill_file, path, batches), SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self._last_error = describe_error(exc)
            log.error("spill failed", extra={"path": str(path), "rows": rows, "error": self._last_error})
            return self._last_error
        finally:
            self._spill_in_flight -= rows
            self._spill_done.set()
        return None

    async def _load_spill_file(self) -> bool:
        """Turn the oldest spill file into pending batches; it is deleted once the last one is in."""
        spill = self._spill_files[0]  # stays queued while it is read, so a flush never sees it gone
        try:
            reading = asyncio.to_thread(read_spill_file, spill.path)
            loaded = await asyncio.wait_for(reading, SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self._spill_files.popleft()
            self._spill_rows -= spill.rows
            await self._file_op(spill.path.replace, spill.path.with_name(REJECTED_PREFIX + spill.path.name))
            self._drop(
                spill.rows, f"spill file {spill.path.name} unreadable ({describe_error(exc)}); renamed"
            )
            return True
        self._spill_files.popleft()
        self._spill_rows += sum(len(entries) for _key, entries in loaded) - spill.rows
        if not loaded:
            await self._unlink(spill.path)
        for i, (key, entries) in enumerate(loaded):
            self._pending.append(_Batch(key, entries, True, spill.path, i == len(loaded) - 1))
        return True

    async def _unlink(self, path: Path) -> None:
        await self._file_op(path.unlink, True)

    async def _file_op(self, fn: Callable[..., object], *args: object) -> None:
        """Housekeeping on spill files: off the loop, and never a reason to stop writing."""
        try:
            await asyncio.wait_for(asyncio.to_thread(fn, *args), SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            log.error(
                "spill file housekeeping failed", extra={"op": getattr(fn, "__name__", ""), "error": str(exc)}
            )

    async def _spill_remainder(self) -> None:
        """At stop: what is still pending or in memory goes to files, in the order it must be replayed.

        Pending batches keep their keys, so a batch whose commit was in doubt is still found by its key.
        Batches from a spill file are written back over that file (minus the batches already in);
        batches from memory are older than every spill file of this run, so they get sequence 0.
        """
        if self._pending:
            batches = [(b.key, b.entries) for b in self._pending]
            rows = sum(len(entries) for _key, entries in batches)
            source = self._pending[0].source
            self._pending.clear()
            if source is None:
                self._pending_memory_rows -= rows
                path = spill_path(self._spill_dir, self._instance, 0)
                error = await self._write_spill(path, batches, rows)
                if error is None:
                    self._spill_rows += rows
                    self._spilled_total += rows
                else:
                    self._drop(rows, f"spill at stop failed: {error}")
            else:
                # on failure the source file is still there, whole: replaying it is safe (batch keys)
                await self._write_spill(source, batches, rows)
        if self._memory:
            chunk = list(self._memory)
            self._memory.clear()
            await self._spill(chunk)
        if self._spill_rows:
            log.warning(
                "historian stopped with rows not yet written; the next start replays them",
                extra={"spilled": self._spill_rows, "spill_dir": str(self._spill_dir)},
            )

    # --- waiting ------------------------------------------------------------------------------------

    @staticmethod
    async def _wait(event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    # --- reading a line's records from outside its controller (`depline report`) --------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def reader(cls, url: str, *, timeout_s: float = 10.0) -> AsyncIterator[Historian]:
        """A historian for the queries only, safe beside a controller that is running on the database.

        `start()` would migrate an old schema and close the runs it finds 'running' as interrupted: both
        wrong for a tool that only reads (the running run is the live controller's). This opens the
        engine and nothing else; an old schema stays as it is, for the caller to check
        (`table_names`). Nothing recorded on a reader is kept.
        """
        historian = cls(url, spill_dir=Path(os.devnull), timeout_s=timeout_s)  # never spills
        historian._stopping = historian._closed = True
        historian._engine = make_engine(url, timeout_s=timeout_s, poolclass=NullPool)
        try:
            yield historian
        finally:
            await historian._dispose()


# --- rows (pure helpers) ----------------------------------------------------------------------------


def _dicts(kind: str, rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    columns = COLUMNS[kind]
    return [dict(zip(columns, values, strict=True)) for values in rows]


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


__all__ = ["Historian", "HistorianStats"]
