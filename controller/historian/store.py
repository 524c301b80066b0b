"""The historian: every sample, command, alarm event, transition and ledger entry, kept in SQL.

This module is the historian's life cycle and its writer task; the historian's other concepts have
modules of their own, and callers import each name from the module that defines it:
`controller.historian.recording` (the `record_*` methods, which `Historian` inherits),
`controller.historian.commit` (one batch in one transaction, exactly once),
`controller.historian.spiller` (rows to spill files and back), `controller.historian.health` (the
signal the controller raises an alarm on), `controller.historian.upgrade` (the schema is Alembic's),
`controller.historian.spill` (the row format and the spill files), `controller.historian.queries`
(the read side, which `Historian` inherits), `controller.historian.recovery` (what a restart after a
crash rebuilds: interrupted runs, the inventory), `controller.historian.lease` (one running service
per line), `controller.historian.retention` (old raw samples leave), `controller.historian.errors`.

Why the writer is built this way:

- **One writer task** takes rows off the deque `record_*` appends to, in batches, and writes each
  batch in one transaction (SQLite allows one writer; one transaction per batch is what makes 100k
  rows/s possible). How a batch is written: `controller.historian.commit`.
- **Bounded memory, no silent loss.** Rows wait in memory while the database is down; beyond
  `max_buffer` the oldest of them are written by a second task (the *spiller*, which never talks to
  the database, so a hung database call cannot stop it) to JSON-lines files in `spill_dir`, in an
  executor thread. When the database is back they are replayed first, so rows reach each table in
  the order they were recorded. If even the spill fails, the rows are counted in `dropped`, logged,
  and health says so. A hard cap in memory (twice `max_buffer`, and at least `max_buffer` + 100k rows
  so that a burst recorded between two turns of the event loop never meets it) protects against a
  spill that hangs. A batch being written counts against `max_buffer` and is never more than half.
- **A bad row is not a dead historian.** If the database rejects a batch for its data (a constraint
  or a type), the batch is halved until the offending row is alone; that row goes to a
  `rejected-*.jsonl` file next to the spill files and counts as dropped. Anything else (locked,
  disconnected, timed out) is retried every `retry_s`.
- **The schema is checked, not assumed.** `start()` creates it on an empty database and refuses one
  that is not this code's (`SchemaOutdated`). If the database cannot be reached at start, the
  historian starts degraded (recording, buffering, spilling) and checks the schema when it first
  gets through.

Closing the runs a crashed process left 'running' is one of the writer's steps: after that
process's spill files are replayed, before any row of this one, and only once this service holds its
line's lease (claimed at `start()`, or by that step when the database was unreachable at start). A
retention pass is another, run when nothing else is due.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from controller.historian.commit import DATA_ERRORS, Batch, BatchCommitter
from controller.historian.errors import HistorianError, SchemaOutdated, describe_error
from controller.historian.health import HealthCallback, HistorianHealth
from controller.historian.lease import LEASE_HEARTBEAT_S, LineHeld, LineLease
from controller.historian.record_search import RecordSearch
from controller.historian.recording import HistorianRecording
from controller.historian.recovery import InterruptedRun, close_runs_started_before
from controller.historian.retention import (
    DELETE_CHUNK_ROWS,
    RETENTION_EVERY_S,
    delete_old_samples,
    drop_old_partitions,
    may_change_partitions,
    prepare_partitions,
    record_retention,
)
from controller.historian.schema import async_url, make_engine
from controller.historian.spill import Entry
from controller.historian.spiller import Spiller
from controller.historian.upgrade import ensure_schema, prepare_sqlite_dir, shown_url

log = logging.getLogger(__name__)

HARD_CAP_MARGIN_ROWS: Final = 100_000


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


# --- the historian ----------------------------------------------------------------------------------


class Historian(HistorianRecording, RecordSearch):
    """See the module docstring. Build, `await start()`, record, `await stop()`; query (inherited).

    `batch_s` is the longest a recorded row waits in memory while the database is healthy;
    `batch_rows` caps one transaction; samples go to the driver in chunks of `SAMPLE_CHUNK_ROWS`
    (`controller.historian.commit`), the longest the loop's thread is kept busy at a time (20k rows
    converted and COPY-encoded in one go stalled a 0.1 s ticker by 20-55 ms on the bench machine);
    `timeout_s` bounds every database operation; `retry_s` is the pause after a failed write.
    `record_*` must be called on the event loop's thread (they set asyncio events); `on_health` is
    called there too and must return at once (raise or clear an alarm, nothing slower).
    """

    def __init__(
        self,
        url: str,
        *,
        line: str,
        spill_dir: str | os.PathLike[str],
        batch_s: float = 0.5,
        max_buffer: int = 200_000,
        on_health: HealthCallback | None = None,
        batch_rows: int = 20_000,
        timeout_s: float = 10.0,
        retry_s: float = 1.0,
        retention_s: float | None = None,
    ) -> None:
        if batch_s <= 0 or timeout_s <= 0 or retry_s <= 0:
            raise ValueError("batch_s, timeout_s and retry_s must be positive")
        if max_buffer < 2 or batch_rows < 1:
            raise ValueError("max_buffer must be >= 2 and batch_rows >= 1")
        self.url = url
        self.line = line
        self.retention_s = retention_s  # raw samples older than this leave; None: kept for ever
        self._retain_at = 0.0  # monotonic time of the next retention pass (`controller.historian.retention`)
        self._lease = LineLease(line)
        self._lease_due = True  # the line is not ours yet: claimed before anything is written
        self._keeps_partitions = False  # this login may make and drop sample partitions (PostgreSQL owner)
        self.refused: LineHeld | None = None  # another running service holds the line
        self._shown_url = shown_url(url)
        self._batch_s = batch_s
        self._max_buffer = max_buffer
        self._hard_cap = max(2 * max_buffer, max_buffer + HARD_CAP_MARGIN_ROWS)
        self._batch_rows = min(batch_rows, max_buffer // 2)
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._health = HistorianHealth(on_health)
        postgres = async_url(url).get_backend_name() == "postgresql"
        self._committer = BatchCommitter(line=line, postgres=postgres, timeout_s=timeout_s)
        self._spill = Spiller(Path(spill_dir), self._health)
        self._engine: AsyncEngine | None = None

        self._memory: collections.deque[Entry] = collections.deque()
        self._removed = 0  # entries ever taken out of memory (to a batch, a spill file, or dropped)
        self._pending: collections.deque[Batch] = collections.deque()
        self._pending_memory_rows = 0
        self._started_at = math.inf  # runs that started before this are not this process's
        self._own_runs: set[str] = set()  # ... and neither are these (never closed as interrupted)
        self._close_due = False  # interrupted runs still to be closed (the writer's first step)
        self._urgent = False  # a row that must not wait for `batch_s` is in memory
        self.interrupted_runs: tuple[InterruptedRun, ...] = ()

        self._wake = asyncio.Event()
        self._overflow = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._flush_requested = False
        self._stopping = False
        self._closed = False
        self._schema_ready = False
        self._writer: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

        self._written = 0
        self.current_run: str | None = None

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create or check the schema, then start the writer and the spiller.

        Raises `SchemaOutdated` when the database can be reached but its schema is not this code's,
        `LineHeld` when another running service holds this line (`controller.historian.lease`).
        A database that cannot be reached does not stop the start: the historian runs degraded, and
        claims the line before it writes anything.
        """
        if self._writer is not None:
            raise HistorianError("historian already started")
        await asyncio.wait_for(asyncio.to_thread(prepare_sqlite_dir, self.url), self._timeout_s)
        self._engine = make_engine(self.url, timeout_s=self._timeout_s)
        self._started_at = time.time()
        self._close_due = True
        await self._spill.queue_leftovers(self._timeout_s)
        try:
            await self._ensure_schema()
            await self._claim_line()
        except (SchemaOutdated, LineHeld):
            await self._dispose()
            raise
        except Exception as exc:  # unreachable database: run degraded, the writer keeps trying
            self._health.last_error = describe_error(exc)
            log.warning(
                "database unreachable at start; recording into memory and spill files",
                extra={"url": self._shown_url, "error": self._health.last_error},
            )
            self._health.set(False, "db", f"database unreachable: {self._health.last_error}")
        else:
            self._health.set(True, "ok", "writing")
        self._writer = asyncio.create_task(self._supervised(self._write_loop), name="historian-writer")
        self._spiller = asyncio.create_task(self._supervised(self._spill_loop), name="historian-spiller")
        self._heartbeat = asyncio.create_task(self._supervised(self._lease_loop), name="historian-lease")

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
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
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
        await self._release_line()
        await self._dispose()
        log.info("historian stopped", extra={"stats": dataclasses.asdict(self.stats)})

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything recorded so far is written; False if that took longer than allowed.

        "So far": rows recorded after the call do not hold it up (on a busy line memory is never empty
        for long, and a flush that waited for an empty buffer could wait for ever)."""
        target = self._removed + len(self._memory)
        try:
            async with asyncio.timeout(timeout_s):
                while not self._drained(target):
                    if self._writer is None or self._writer.done() or self.refused is not None:
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
            spilled=self._spill.rows + self._spill.in_flight,
            written=self._written,
            dropped=self._health.dropped,
            last_error=self._health.last_error,
            healthy=self._health.healthy,
            detail=self._health.detail,
            spilled_total=self._spill.total,
            spill_files=len(self._spill.files),
        )

    @property
    def healthy(self) -> bool:
        return self._health.healthy

    # --- schema -------------------------------------------------------------------------------------

    async def _ensure_schema(self) -> None:
        """Create or check the schema (`controller.historian.upgrade.ensure_schema`), once."""
        await ensure_schema(self._require_engine(), self.url, self._timeout_s, line=self.line)
        self._schema_ready = True

    # --- the line's lease (`controller.historian.lease`) ----------------------------------------------

    async def _claim_line(self) -> None:
        async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
            await self._lease.claim(conn)
            await record_retention(conn, self.line, self.retention_s)
        async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
            self._keeps_partitions = await may_change_partitions(conn)
            if self._keeps_partitions:
                await prepare_partitions(conn, time.time())  # before the first sample is written
            postgres = conn.dialect.name == "postgresql"
        if postgres and not self._keeps_partitions:
            log.info(
                "sample partitions are the owner role's (`depline db retain`); this service deletes "
                "its old samples by rows only",
                extra={"line": self.line},
            )
        self._lease_due = False
        log.info("line claimed", extra={"line": self.line, "holder": self._lease.holder})

    async def _lease_loop(self) -> None:
        """The heartbeat. A lease lost (taken over after it went stale) is ill health, loudly: two
        services may now be writing as one line."""
        while not self._stopping:
            await self._wait(self._stop_event, LEASE_HEARTBEAT_S)
            if self._stopping or self._lease_due:
                continue
            try:
                async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                    held = await self._lease.renew(conn)
            except Exception as exc:  # the writer reports an unreachable database
                log.info("line lease heartbeat failed", extra={"error": describe_error(exc)})
                continue
            if not held:
                log.error("line lease lost to another service", extra={"line": self.line})
                self._health.set(False, "lease", f"line {self.line!r} lease lost to another service")

    async def _release_line(self) -> None:
        if self._lease_due or self._engine is None:
            self._lease.forget()
            return
        try:
            async with asyncio.timeout(self._timeout_s), self._engine.begin() as conn:
                await self._lease.release(conn)
        except Exception as exc:  # it goes stale instead
            self._lease.forget()
            log.warning("line lease not released", extra={"line": self.line, "error": describe_error(exc)})

    async def _dispose(self) -> None:
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._engine.dispose(), self._timeout_s)

    # --- the writer ---------------------------------------------------------------------------------

    def _drained(self, target: int) -> bool:
        """Every entry up to the `target`-th ever recorded has left memory, and what left is written."""
        return self._removed >= target and not (
            self._pending or self._spill.files or self._spill.in_flight or self._close_due
        )

    async def _supervised(self, body: Callable[[], Awaitable[None]]) -> None:
        """A bug in the writer or spiller must show as ill health and a restart, not a silent stop."""
        while True:
            try:
                await body()
                return
            except Exception as exc:
                self._health.last_error = describe_error(exc)
                log.exception("historian task crashed; restarting it", extra={"task": body.__name__})
                self._health.set(
                    False, "crash", f"historian {body.__name__} crashed: {self._health.last_error}"
                )
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
                await self._wait(self._spill.done, 0.5)
                self._spill.done.clear()
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
        if self._spill.files:
            return "replay"
        if self._close_due:  # after what a dead process left is in, before this process's rows
            return "close"
        if self._spill.in_flight:
            return "wait_spill"
        if self._memory and (due or self._urgent or self._flush_requested or self._stopping):
            return "memory"
        if not self._lease_due and not self._stopping and time.monotonic() >= self._retain_at:
            return "retain"
        return "idle"

    async def _do(self, work: str) -> bool:
        """One step; False when the database failed (health is already updated)."""
        if not self._schema_ready:
            try:
                await self._ensure_schema()
            except SchemaOutdated as exc:
                self._health.last_error = str(exc)
                self._health.set(False, "schema", str(exc))
                return False
            except Exception as exc:
                return self._failed(exc)
        if work == "replay":
            self._pending.extend(await self._spill.load_oldest())
            return True
        if work == "close":
            return await self._close_interrupted_runs()
        if work == "retain":
            await self.apply_retention()
            return True
        if work == "memory":
            self._take_from_memory()
        return await self._write_pending()

    def _take_from_memory(self) -> None:
        memory = self._memory
        count = min(len(memory), self._batch_rows)
        entries = [memory.popleft() for _ in range(count)]
        self._removed += count
        self._pending.append(Batch(uuid.uuid4().hex, entries, check_marker=False))
        self._pending_memory_rows += count
        if not memory:
            self._urgent = False

    async def _write_pending(self) -> bool:
        batch = self._pending[0]
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._committer.commit(self._require_engine(), batch)
        except DATA_ERRORS as exc:
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
        self._health.writing_again()
        await self._committer.prune_markers(self._require_engine())
        return True

    async def _close_interrupted_runs(self) -> bool:
        """Mark runs an earlier process left 'running' as 'incomplete' (see `controller.historian.recovery`).

        Idempotent (only 'running' rows change), so a commit in doubt is simply done again.
        """
        try:
            if self._lease_due:
                await self._claim_line()
            async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                closed = await close_runs_started_before(conn, self.line, self._started_at, self._own_runs)
        except LineHeld as exc:
            self.refused = exc
            self._health.last_error = str(exc)
            self._health.set(False, "lease", str(exc))
            return False
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
        self._health.writing_again()
        return True

    async def apply_retention(self) -> tuple[list[str], int]:
        """One retention pass (the writer runs one every `RETENTION_EVERY_S`): partitions ahead and
        behind (if this login owns them, `may_change_partitions`), one bounded delete; the partitions
        dropped and the rows deleted. Housekeeping: a failure is logged and the pass tried again later,
        never a reason to call the historian unhealthy."""
        now = time.time()
        dropped: list[str] = []
        deleted = 0
        try:
            async with asyncio.timeout(self._timeout_s), self._require_engine().begin() as conn:
                if self._keeps_partitions:
                    await prepare_partitions(conn, now)
                    dropped = await drop_old_partitions(conn, now)
                if self.retention_s is not None:
                    deleted = await delete_old_samples(conn, self.line, now - self.retention_s)
        except Exception as exc:
            log.warning("sample retention pass failed", extra={"error": describe_error(exc)})
            self._retain_at = time.monotonic() + RETENTION_EVERY_S
            return [], 0
        if dropped or deleted:
            log.info("old samples removed", extra={"partitions": dropped, "rows": deleted})
        more = deleted >= DELETE_CHUNK_ROWS  # the next chunk after the next batch, not in ten minutes
        self._retain_at = time.monotonic() + (self._batch_s if more else RETENTION_EVERY_S)
        return dropped, deleted

    def _failed(self, exc: BaseException) -> bool:
        health = self._health
        health.last_error = describe_error(exc)
        log.warning("historian write failed", extra={"error": health.last_error, "url": self._shown_url})
        if health.healthy or health.key == "db":  # keep a more telling reason already shown
            health.set(False, "db", f"database write failing: {health.last_error}")
        return False

    async def _batch_done(self, batch: Batch, *, written: bool) -> None:
        self._pending.popleft()
        rows = len(batch.entries)
        if written:
            self._written += rows
        if batch.source is None:
            self._pending_memory_rows -= rows
        else:
            await self._spill.replayed(batch)

    async def _split_or_reject(self, batch: Batch, exc: BaseException) -> None:
        """The database refused the data: halve the batch until the bad row stands alone."""
        self._health.last_error = describe_error(exc)
        if len(batch.entries) > 1:
            half = len(batch.entries) // 2
            first = Batch(f"{batch.key}.0", batch.entries[:half], True, batch.source, False)
            second = Batch(f"{batch.key}.1", batch.entries[half:], True, batch.source, batch.last_of_source)
            self._pending.popleft()
            self._pending.appendleft(second)
            self._pending.appendleft(first)
            log.warning("database refused a batch; splitting it", extra={"rows": len(batch.entries)})
            return
        path = await self._spill.keep_rejected(batch.key, batch.entries[0], self._health.last_error)
        await self._batch_done(batch, written=False)
        self._health.drop(1, f"rejected by the database: {self._health.last_error}; kept in {path.name}")

    # --- spilling -----------------------------------------------------------------------------------

    async def _spill_loop(self) -> None:
        while not self._stopping:
            await self._wait(self._overflow, 1.0)
            self._overflow.clear()
            while len(self._memory) > self._max_buffer and not self._stopping:
                count = len(self._memory) - self._max_buffer // 2
                chunk = [self._memory.popleft() for _ in range(count)]
                self._removed += count
                await self._spill.spill(chunk)

    async def _spill_remainder(self) -> None:
        """At stop: what is still pending or in memory goes to files, in the order it must be replayed
        (pending batches first: `Spiller.spill_pending`)."""
        if self._pending:
            pending = list(self._pending)
            self._pending.clear()
            if pending[0].source is None:
                self._pending_memory_rows -= sum(len(b.entries) for b in pending)
            await self._spill.spill_pending(pending)
        if self._memory:
            chunk = list(self._memory)
            self._memory.clear()
            self._removed += len(chunk)
            await self._spill.spill(chunk)
        if self._spill.rows:
            log.warning(
                "historian stopped with rows not yet written; the next start replays them",
                extra={"spilled": self._spill.rows, "spill_dir": str(self._spill.spill_dir)},
            )

    # --- waiting ------------------------------------------------------------------------------------

    @staticmethod
    async def _wait(event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    # --- reading a line's records from outside its controller (`depline report`) --------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def reader(
        cls, url: str, *, line: str, timeout_s: float = 10.0, read_only: bool = False
    ) -> AsyncIterator[Historian]:
        """A historian for the queries only, safe beside a controller that is running on the database.

        `start()` would migrate an old schema and close the runs it finds 'running' as interrupted: both
        wrong for a tool that only reads (the running run is the live controller's). This opens the
        engine and nothing else; an old schema stays as it is, for the caller to check
        (`table_names`). Nothing recorded on a reader is kept; it reads `line`'s records only and
        claims no lease. `read_only` opens the database so that nothing can be written to it at all
        (`make_engine`): what a replay of someone's night must promise.
        """
        historian = cls(url, line=line, spill_dir=Path(os.devnull), timeout_s=timeout_s)  # never spills
        historian._stopping = historian._closed = True
        historian._engine = make_engine(url, timeout_s=timeout_s, read_only=read_only, poolclass=NullPool)
        try:
            yield historian
        finally:
            await historian._dispose()


__all__ = ["Historian", "HistorianStats"]
