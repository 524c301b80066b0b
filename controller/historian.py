"""The historian: every sample, command, alarm event, transition and ledger entry, kept in SQL.

Why it is built this way:

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
- **The schema is Alembic's.** `start()` on an empty database runs the migrations; a database behind
  the code's head revision is refused with the instruction to run `depline db upgrade`. If the
  database cannot be reached at start, the historian starts degraded (recording, buffering,
  spilling) and checks the schema when it first gets through.

Rows in memory or in spill files are not visible to the queries until written. A run, its commands
and its transitions are linked by a run id the historian makes itself, so a run can start while the
database is down. Run ids sort by start time.

After a crash (`kill -9`, power loss) the records are where a restart begins:

- **Interrupted runs are closed by the writer.** Right after the spill files a dead process left
  are replayed (so its rows are in), and before any row of this process, runs still 'running' that
  started before this historian are marked 'incomplete', ending at their last record (command,
  transition, alarm, ledger entry or sample) or, with none, now. `interrupted_runs` says which. It
  is a step of the writer, not a row, so it needs no database at start and counts in no statistic.
  One database serves one line: another line's running run would be closed too.
- **The inventory is a fold of records.** A registration is kept as a done "RegisterItem" command
  (`record_registration`: who, where, sealed or not) besides its `items` row, and every done
  MoveItem and SetContainer command carries its action; replayed in id order they give every item's
  last location and seal exactly (`inventory()`). Those rows, and run starts and ends, are written
  at once rather than after `batch_s`, so a crash just after an item moved does not lose the move.
- **`samples_since`** serves the MQTT bridge's back-fill from committed samples only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Integer, RowMapping, Select, cast, func, inspect, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from controller.alarms import AlarmRecord
from controller.errors import ControllerError, UserError
from controller.gate import GateRecord
from controller.historian_schema import (
    HISTORIAN_TABLES,
    alarm_events,
    async_url,
    batches,
    channels,
    commands,
    items,
    job_events,
    jobs,
    ledger,
    make_engine,
    runs,
    samples,
    transitions,
    write_batches,
)
from controller.items import Item, ItemKind
from controller.ledger import ExposureRecord, LedgerEntry, exposure_from_entries
from controller.poller import Sample
from drivers.reading import Quality, Reading

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SPILL_PREFIX: Final = "spill-"
REJECTED_PREFIX: Final = "rejected-"
REPLAY_BATCH_ROWS: Final = 5000  # fixed: a spill file's batch keys must not depend on settings
SAMPLE_CHUNK_ROWS: Final = 5000  # rows converted and inserted at a time (the loop's longest stall)
MARKER_RETENTION_S: Final = 86400.0  # longer than any commit can stay in doubt before its retry
MARKER_PRUNE_EVERY_S: Final = 600.0
SPILL_WRITE_TIMEOUT_S: Final = 60.0
HARD_CAP_MARGIN_ROWS: Final = 100_000
MIGRATION_TIMEOUT_S: Final = 120.0
REGISTER_ITEM: Final = "RegisterItem"  # the action type a registration is recorded under
COAT_ITEM: Final = "CoatItem"
INVENTORY_ACTIONS: Final = (REGISTER_ITEM, "MoveItem", "SetContainer", COAT_ITEM)
ARCHIVE_MAX_ROWS: Final = 200_000  # samples one back-fill may hold in memory (shared by the channels)
IN_CHUNK: Final = 500  # ids per IN (...) list: far below SQLite's and asyncpg's parameter limits
_QUALITY_TEXT: Final = {q: q.value for q in Quality}
_SAMPLE_COLUMNS: Final = ("ts", "channel_id", "value", "quality")
_SQLITE_SAMPLE_INSERT: Final = "INSERT INTO samples (ts, channel_id, value, quality) VALUES (?, ?, ?, ?)"

# Row kinds in the buffer and in spill files. A sample stays a `Sample` in memory (cheapest to
# record); everything else is converted to its column values when recorded.
K_SAMPLE: Final = "s"
K_RUN: Final = "run"
K_RUN_END: Final = "run_end"
K_COMMAND: Final = "cmd"
K_ALARM: Final = "alarm"
K_ITEM: Final = "item"
K_LEDGER: Final = "ledger"
K_TRANSITION: Final = "tr"
_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    K_SAMPLE: ("device", "channel", "unit", "ts", "value", "quality"),
    K_RUN: ("id", "started_at", "status", "config_hash", "config_text", "recipe_hash", "recipe_text", "user"),
    K_RUN_END: ("id", "ended_at", "status"),
    K_COMMAND: (
        "ts",
        "run_id",
        "user",
        "origin",
        "action",
        "outcome",
        "reason",
        "invariant",
        "error",
        "duration_s",
        "request_reason",
        "refusals",
    ),
    K_ALARM: (
        "ts",
        "alarm_id",
        "event",
        "from_state",
        "to_state",
        "user",
        "reason",
        "severity",
        "evidence",
        "trip",
        "until_s",
        "condition_active",
    ),
    K_ITEM: ("id", "kind", "material", "registered_at"),
    K_LEDGER: ("ts", "item", "event", "space", "atmosphere", "exposed", "evidence"),
    K_TRANSITION: ("ts", "run_id", "station", "source", "dest", "trigger", "reason"),
}
_INSERT_TABLES: Final = {
    K_COMMAND: commands,
    K_ALARM: alarm_events,
    K_LEDGER: ledger,
    K_TRANSITION: transitions,
}

Row = tuple[str, tuple[Any, ...]]
Entry = Sample | Row
HealthCallback = Callable[[bool, str], None]


class HistorianError(ControllerError):
    """The historian cannot do what was asked."""


class SchemaOutdated(HistorianError, UserError):
    """The database's schema is not the one this code writes; the message says what to run."""


class HistorianUnavailable(HistorianError):
    """A query could not reach the database (rows being recorded are not affected)."""


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


@dataclass(frozen=True, slots=True)
class InterruptedRun:
    """A run a previous process left 'running', now 'incomplete'.

    `ended_at` is its last record's time; `found_end` is False when it had none and `ended_at` is
    the time it was closed.
    """

    id: str
    started_at: float
    ended_at: float
    found_end: bool


@dataclass(frozen=True, slots=True)
class RecoveredInventory:
    """The inventory rebuilt from the records.

    `approximate`: items that had no registration record (written by an older depline, or lost), put
    in the space their ledger last saw, outside any container: unprotected, so the interlocks treat
    them as exposed (the safe error). `unlocated`: items no record places at all; not in `items`.
    """

    items: tuple[Item, ...]
    approximate: tuple[str, ...] = ()
    unlocated: tuple[str, ...] = ()


@dataclass(slots=True)
class _Batch:
    """Rows written in one transaction; `key` makes a retry of an in-doubt commit idempotent."""

    key: str
    entries: list[Entry]
    check_marker: bool
    source: Path | None = None  # the spill file the rows came from
    last_of_source: bool = False  # the file is deleted once this batch is in


@dataclass(slots=True)
class _SpillFile:
    path: Path
    rows: int


@dataclass(slots=True)
class _Health:
    healthy: bool = True
    key: str = ""
    detail: str = "not started"


# --- Alembic, callable from code --------------------------------------------------------------------


def alembic_config(url: str) -> Config:
    """The Alembic configuration, built in code: no alembic.ini has to exist at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def _script_revisions(url: str) -> tuple[str, frozenset[str]]:
    """Head and all known revisions; reads the versions directory, so it runs in a thread."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    if head is None:
        raise HistorianError(f"no migrations found in {MIGRATIONS_DIR}")
    return head, frozenset(r.revision for r in script.walk_revisions())


def _prepare_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory (the default is data/line.db)."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite" and target.database and target.database != ":memory:":
        Path(target.database).parent.mkdir(parents=True, exist_ok=True)


_ALEMBIC_LOCK = threading.Lock()


def _upgrade_serialised(url: str, revision: str) -> None:
    """Alembic's command context lives in module globals: two upgrades in one process (the historian
    and the batch store opening the same database) must not run at the same time."""
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head", *, timeout_s: float = MIGRATION_TIMEOUT_S) -> None:
    """Bring the database to `revision` (what `depline db upgrade` runs).

    The Alembic command runs in a worker thread with its own event loop (see migrations/env.py), so
    reading the revision scripts and the migration's own I/O never stall the caller's loop.
    """
    await asyncio.wait_for(asyncio.to_thread(_prepare_sqlite_dir, url), timeout_s)
    await asyncio.wait_for(asyncio.to_thread(_upgrade_serialised, url, revision), timeout_s)
    log.info("database upgraded", extra={"url": _shown(url), "revision": revision})


async def head_revision() -> str:
    head, _known = await asyncio.to_thread(_script_revisions, "sqlite://")
    return head


async def current_revision(url: str, *, timeout_s: float = 30.0) -> str | None:
    """The database's Alembic revision, None for a database migrations never touched."""
    await asyncio.wait_for(asyncio.to_thread(_prepare_sqlite_dir, url), timeout_s)
    engine = make_engine(url, timeout_s=timeout_s, poolclass=NullPool)
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            return await conn.run_sync(_revision_of)
    finally:
        await asyncio.wait_for(engine.dispose(), timeout_s)


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _revision_and_tables(conn: Connection) -> tuple[str | None, frozenset[str]]:
    return _revision_of(conn), frozenset(inspect(conn).get_table_names())


def _shown(url: str) -> str:
    return async_url(url).render_as_string(hide_password=True)


# --- error classes ----------------------------------------------------------------------------------

_DATA_ERRORS: Final = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    TypeError,
    ValueError,
)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _json(value: object) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the historian ----------------------------------------------------------------------------------


class Historian:
    """See the module docstring. Build, `await start()`, record, `await stop()`.

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
        self._shown_url = _shown(url)
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
        self._spill_files: collections.deque[_SpillFile] = collections.deque()
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
        await asyncio.wait_for(asyncio.to_thread(_prepare_sqlite_dir, self.url), self._timeout_s)
        self._engine = make_engine(self.url, timeout_s=self._timeout_s)
        self._started_at = time.time()
        self._close_due = True
        try:
            leftovers = await asyncio.wait_for(asyncio.to_thread(self._find_leftovers), self._timeout_s)
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
            self._last_error = _describe(exc)
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
                _json(action),
                outcome,
                record.verdict.reason,
                invariants,
                record.error,
                record.duration_s,
                cmd.reason,
                _json(refusal_list),
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
                _json(dict(record.evidence)),
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
                _json(entry.evidence),
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
            _json(action),
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
            _json(action),
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
        engine = self._require_engine()
        head, known = await asyncio.wait_for(asyncio.to_thread(_script_revisions, self.url), self._timeout_s)
        async with asyncio.timeout(self._timeout_s), engine.connect() as conn:
            current, tables = await conn.run_sync(_revision_and_tables)
        if current is None:
            ours = sorted(HISTORIAN_TABLES & tables)
            if ours:
                raise SchemaOutdated(
                    f"database {self._shown_url} has historian tables ({', '.join(ours)}) but no Alembic "
                    "revision: it was not made by depline's migrations; point the config at an empty database"
                )
            log.info("empty database: creating the schema", extra={"url": self._shown_url, "revision": head})
            await upgrade(self.url)
        elif current != head:
            if current in known:
                raise SchemaOutdated(
                    f"database {self._shown_url} is at schema revision {current}, this depline writes "
                    f"{head}: run `depline db upgrade` first"
                )
            raise SchemaOutdated(
                f"database {self._shown_url} is at schema revision {current}, which this depline does not "
                f"know (its head is {head}): it was upgraded by a newer depline"
            )
        self._schema_ready = True

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise HistorianError("historian not started")
        return self._engine

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
                self._last_error = _describe(exc)
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
        """Mark runs an earlier process left 'running' as 'incomplete' (see the module docstring).

        Idempotent (only 'running' rows change), so a commit in doubt is simply done again.
        """
        try:
            async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                closed = await _close_runs_started_before(conn, self._started_at, self._own_runs)
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
        self._last_error = _describe(exc)
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
        self._last_error = _describe(exc)
        if len(batch.entries) > 1:
            half = len(batch.entries) // 2
            first = _Batch(f"{batch.key}.0", batch.entries[:half], True, batch.source, False)
            second = _Batch(f"{batch.key}.1", batch.entries[half:], True, batch.source, batch.last_of_source)
            self._pending.popleft()
            self._pending.appendleft(second)
            self._pending.appendleft(first)
            log.warning("database refused a batch; splitting it", extra={"rows": len(batch.entries)})
            return
        path = self._spill_dir / f"{REJECTED_PREFIX}{self._instance}-{batch.key}.jsonl"
        line = [_entry_json(batch.entries[0]), self._last_error]
        try:
            await asyncio.wait_for(asyncio.to_thread(_write_lines, path, [line]), SPILL_WRITE_TIMEOUT_S)
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
            log.info("pruning batch keys failed", extra={"error": _describe(exc)})

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
        path = self._spill_dir / f"{SPILL_PREFIX}{self._instance}-{self._spill_seq:06d}.jsonl"
        batches = [
            (f"{path.name}#{i}", chunk[start : start + REPLAY_BATCH_ROWS])
            for i, start in enumerate(range(0, len(chunk), REPLAY_BATCH_ROWS))
        ]
        error = await self._write_spill(path, batches, len(chunk))
        if error is not None:
            self._drop(len(chunk), f"spill to {self._spill_dir} failed: {error}")
            return
        self._spill_files.append(_SpillFile(path, len(chunk)))
        self._spill_rows += len(chunk)
        self._spilled_total += len(chunk)
        log.info("rows spilled to disk", extra={"path": str(path), "rows": len(chunk)})

    async def _write_spill(self, path: Path, batches: list[tuple[str, list[Entry]]], rows: int) -> str | None:
        """Write one spill file off the loop; the error text if it failed."""
        self._spill_in_flight += rows
        try:
            await asyncio.wait_for(asyncio.to_thread(_write_spill_file, path, batches), SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self._last_error = _describe(exc)
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
            reading = asyncio.to_thread(_read_spill_file, spill.path)
            loaded = await asyncio.wait_for(reading, SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self._spill_files.popleft()
            self._spill_rows -= spill.rows
            await self._file_op(spill.path.replace, spill.path.with_name(REJECTED_PREFIX + spill.path.name))
            self._drop(spill.rows, f"spill file {spill.path.name} unreadable ({_describe(exc)}); renamed")
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
                path = self._spill_dir / f"{SPILL_PREFIX}{self._instance}-{0:06d}.jsonl"
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

    def _find_leftovers(self) -> list[_SpillFile]:
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        found: list[_SpillFile] = []
        for path in sorted(self._spill_dir.glob(f"{SPILL_PREFIX}*")):
            if path.suffix == ".tmp":  # a write that never finished; its rows were counted as dropped
                path.unlink(missing_ok=True)
                continue
            found.append(_SpillFile(path, _spill_file_rows(path)))
        return found

    # --- waiting ------------------------------------------------------------------------------------

    @staticmethod
    async def _wait(event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

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
            raise HistorianUnavailable(f"historian query failed: {_describe(exc)}") from exc

    async def recent_samples(
        self, device: str, channel: str, since_ts: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest `limit` samples of one channel (since `since_ts`), oldest first, for a trend plot."""
        statement = (
            select(samples.c.ts, samples.c.value, samples.c.quality, channels.c.unit)
            .join(channels, samples.c.channel_id == channels.c.id)
            .where(channels.c.device == device, channels.c.channel == channel)
            .order_by(samples.c.ts.desc(), samples.c.id.desc())
            .limit(limit)
        )
        if since_ts is not None:
            statement = statement.where(samples.c.ts >= since_ts)
        rows = await self._fetch(statement)
        return [_plain(r) for r in reversed(rows)]

    async def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs first, without their (large) config and recipe texts."""
        statement = (
            select(*(c for c in runs.c if c.name not in ("config_text", "recipe_text")))
            .order_by(runs.c.started_at.desc())
            .limit(limit)
        )
        return [_plain(r) for r in await self._fetch(statement)]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(select(runs).where(runs.c.id == run_id))
        return _plain(rows[0]) if rows else None

    async def commands(
        self, run_id: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Commands of a run, or since a time (or the latest), oldest first, JSON columns decoded."""
        statement = select(commands).order_by(commands.c.id.desc()).limit(limit)
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
        statement = select(alarm_events).order_by(alarm_events.c.id.desc()).limit(limit)
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
        statement = select(ledger).where(ledger.c.ts >= since).order_by(ledger.c.id.desc()).limit(limit)
        if until is not None:
            statement = statement.where(ledger.c.ts <= until)
        rows = await self._fetch(statement)
        return [_plain(r, json_columns=("evidence",)) for r in reversed(rows)]

    async def item_ledger(self, item: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every ledger entry of one item, in order: where it went and what it was exposed to."""
        statement = select(ledger).where(ledger.c.item == item).order_by(ledger.c.id).limit(limit)
        return [_plain(r, json_columns=("evidence",)) for r in await self._fetch(statement)]

    async def items(self, limit: int = 1000) -> list[dict[str, Any]]:
        statement = select(items).order_by(items.c.registered_at.desc()).limit(limit)
        return [_plain(r) for r in await self._fetch(statement)]

    # --- what a restart needs -----------------------------------------------------------------------

    async def inventory(self) -> RecoveredInventory:
        """Every item with its last location and seal, rebuilt from committed records (module docstring).

        Exact for items registered through `record_registration`: the registrations and the done
        MoveItem/SetContainer commands are replayed in the order they were written, the same
        changes in the same order as `LineModel` made them.
        """
        kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
        changes = select(commands.c.action).where(commands.c.outcome == "done", kinds).order_by(commands.c.id)
        async with self._reading() as conn:
            known = (await conn.execute(select(items).order_by(items.c.registered_at, items.c.id))).all()
            actions = [json.loads(text) for text in (await conn.execute(changes)).scalars()]
        folded = _fold_inventory(((r.id, r.kind, r.material) for r in known), actions)
        placed = _placed(folded)
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
                statement = select(ledger).where(ledger.c.item.in_(chunk)).order_by(ledger.c.id)
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
            .where(commands.c.run_id == run_id, commands.c.outcome == "done")
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
            known = (await conn.execute(select(channels).order_by(channels.c.id))).all()
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

    async def table_names(self) -> frozenset[str]:
        """The tables the database has: a reader of a database older than its code finds some missing."""
        async with self._reading() as conn:
            return await conn.run_sync(lambda sync: frozenset(inspect(sync).get_table_names()))

    async def production_jobs(self, run: str) -> list[dict[str, Any]]:
        """The production job with id `run`, or every job of the batch with id `run` in queue order
        (empty if neither exists); `items` decoded (`sequences.batch_store.JobItems`'s JSON)."""
        statement = (
            select(jobs)
            .where(or_(jobs.c.id == run, jobs.c.batch_id == run))
            .order_by(jobs.c.batch_id, jobs.c.position)
        )
        return [_plain(r, json_columns=("items",)) for r in await self._fetch(statement)]

    async def production_batch(self, batch_id: str) -> dict[str, Any] | None:
        """A batch's row without its queue text (which `production_jobs` carries per job as recipes)."""
        statement = select(*(c for c in batches.c if c.name != "queue_text")).where(batches.c.id == batch_id)
        rows = await self._fetch(statement)
        return _plain(rows[0]) if rows else None

    async def job_events(self, job_id: str) -> list[dict[str, Any]]:
        """A job's checkpoints, operator confirmations and state changes, in order, `detail` decoded."""
        statement = select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
        return [_plain(r, json_columns=("detail",)) for r in await self._fetch(statement)]

    async def items_by_id(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `items` rows (kind, material, registration time) of these ids; unknown ids are left out."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(item_ids), IN_CHUNK):
            chunk = list(item_ids[start : start + IN_CHUNK])
            for row in await self._fetch(select(items).where(items.c.id.in_(chunk))):
                out[str(row["id"])] = _plain(row)
        return out

    async def inventory_commands(
        self, item_ids: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Done registrations, moves and seal changes that name one of these items (registered, moved,
        opened or sealed, or moved into), oldest first, `action` decoded: a container's handling,
        which the ledger does not keep (it keeps what can be exposed)."""
        kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
        statement = select(commands).where(commands.c.outcome == "done", kinds).order_by(commands.c.id)
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
                select(channels.c.id).where(channels.c.device == device, channels.c.channel == channel)
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


# --- closing interrupted runs -----------------------------------------------------------------------


async def _close_runs_started_before(
    conn: AsyncConnection, before: float, own: Iterable[str]
) -> list[InterruptedRun]:
    """Runs still 'running' that started before `before` (and are not `own`) become 'incomplete',
    ending at their last record.

    A run's records are looked for between its start and the next run's start (or `before`), so
    two interrupted runs in a row do not share records.
    """
    open_runs = (
        await conn.execute(
            select(runs.c.id, runs.c.started_at)
            .where(runs.c.status == "running", runs.c.started_at < before, runs.c.id.not_in(list(own)))
            .order_by(runs.c.started_at)
        )
    ).all()
    if not open_runs:
        return []
    starts = sorted((await conn.execute(select(runs.c.started_at))).scalars())
    channel_ids = list((await conn.execute(select(channels.c.id))).scalars())
    closed: list[InterruptedRun] = []
    for run_id, started_at in open_runs:
        upper = min([s for s in starts if s > started_at] + [before])
        last = await _last_record_ts(conn, run_id, started_at, upper, channel_ids)
        ended_at = last if last is not None else time.time()
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status == "running")
            .values(status="incomplete", ended_at=ended_at)
        )
        closed.append(InterruptedRun(run_id, started_at, ended_at, last is not None))
    return closed


async def _last_record_ts(
    conn: AsyncConnection, run_id: str, since: float, until: float, channel_ids: Sequence[int]
) -> float | None:
    """The newest record of a run: its commands and transitions by id, the rest by time window.

    Samples are asked per channel, newest first with LIMIT 1, so the `(channel_id, ts)` index answers
    each in one seek however long the run was.
    """
    statements: list[Select[Any]] = [
        select(func.max(commands.c.ts)).where(commands.c.run_id == run_id),
        select(func.max(transitions.c.ts)).where(transitions.c.run_id == run_id),
        select(func.max(alarm_events.c.ts)).where(alarm_events.c.ts >= since, alarm_events.c.ts < until),
        select(func.max(ledger.c.ts)).where(ledger.c.ts >= since, ledger.c.ts < until),
    ]
    statements += [
        select(samples.c.ts)
        .where(samples.c.channel_id == channel_id, samples.c.ts >= since, samples.c.ts < until)
        .order_by(samples.c.ts.desc())
        .limit(1)
        for channel_id in channel_ids
    ]
    found = [await conn.scalar(statement) for statement in statements]
    times = [float(ts) for ts in found if ts is not None]
    return max(times) if times else None


# --- rebuilding the inventory and the exposure records (pure) ---------------------------------------


def _fold_inventory(
    known: Iterable[tuple[str, str, str]], actions: Iterable[dict[str, Any]]
) -> dict[str, Item]:
    """Replay registrations, moves and seals in order. `known` are the items table's (id, kind,
    material): an item with no registration record starts there, with no location yet ("")."""
    out = {item_id: Item(item_id, ItemKind(kind), material, "") for item_id, kind, material in known}
    for action in actions:
        kind = action.get("type")
        if kind == REGISTER_ITEM:
            item = Item(
                str(action["id"]),
                ItemKind(action["kind"]),
                str(action["material"]),
                str(action["location"]),
                bool(action["sealed"]),
            )
            out[item.id] = item
        elif kind == "MoveItem" and action.get("item") in out:
            out[action["item"]] = dataclasses.replace(out[action["item"]], location=str(action["to"]))
        elif kind == COAT_ITEM and action.get("item") in out:
            out[action["item"]] = dataclasses.replace(out[action["item"]], material=str(action["material"]))
        elif kind == "SetContainer" and action.get("container") in out:
            out[action["container"]] = dataclasses.replace(
                out[action["container"]], sealed=bool(action["sealed"])
            )
    return out


def _placed(folded: dict[str, Item]) -> dict[str, Item]:
    """The items whose chain of containers ends in a place (not in an unknown item or nowhere)."""
    placed: dict[str, Item] = {}
    for item_id, item in folded.items():
        chain: set[str] = set()
        location = item.location
        while location in folded and location not in chain:
            chain.add(location)
            location = folded[location].location
        if location and location not in folded:
            placed[item_id] = item
    return placed


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


# --- rows and spill files (pure or thread-side helpers) ---------------------------------------------


def _dicts(kind: str, rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    columns = _COLUMNS[kind]
    return [dict(zip(columns, values, strict=True)) for values in rows]


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


def _sample_rows(
    entries: Sequence[Entry], start: int, stop: int, channel_ids: dict[tuple[str, str], int]
) -> tuple[list[tuple[Any, ...]], int]:
    """Rows for entries[start:stop], up to the first whose channel has no id yet; and where it stopped."""
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    quality_text = _QUALITY_TEXT
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


def _entry_json(entry: Entry) -> list[Any]:
    if isinstance(entry, Sample):
        r = entry.reading
        return [K_SAMPLE, entry.device, entry.channel, r.unit, r.ts, r.value, _QUALITY_TEXT[r.quality]]
    kind, values = entry
    return [kind, *values]


def _entry_from_json(line: list[Any]) -> Row:
    kind = str(line[0])
    if kind not in _COLUMNS or len(line) - 1 != len(_COLUMNS[kind]):
        raise ValueError(f"not a historian row: {line[:3]!r}")
    return kind, tuple(line[1:])


def _write_lines(path: Path, lines: Iterable[object]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(_json(line) + "\n")


def _write_spill_file(path: Path, batches: Sequence[tuple[str, Sequence[Entry]]]) -> None:
    """Header line (batch keys and sizes), then one row per line; renamed into place when complete."""
    tmp = path.with_name(path.name + ".tmp")
    header = {"v": 1, "batches": [[key, len(entries)] for key, entries in batches]}
    with tmp.open("w", encoding="utf-8") as f:
        f.write(_json(header) + "\n")
        for _key, entries in batches:
            f.writelines(_json(_entry_json(e)) + "\n" for e in entries)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _spill_file_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        try:
            header = json.loads(f.readline())
            return sum(int(n) for _key, n in header["batches"])
        except (ValueError, KeyError, TypeError):
            return 0


def _read_spill_file(path: Path) -> list[tuple[str, list[Entry]]]:
    with path.open(encoding="utf-8") as f:
        header = json.loads(f.readline())
        if header.get("v") != 1:
            raise ValueError(f"unknown spill file version {header.get('v')!r}")
        loaded: list[tuple[str, list[Entry]]] = []
        for key, count in header["batches"]:
            entries: list[Entry] = [_entry_from_json(json.loads(f.readline())) for _ in range(int(count))]
            loaded.append((str(key), entries))
    return loaded


__all__ = [
    "MIGRATIONS_DIR",
    "REGISTER_ITEM",
    "Historian",
    "HistorianError",
    "HistorianStats",
    "HistorianUnavailable",
    "InterruptedRun",
    "RecoveredInventory",
    "SchemaOutdated",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]
