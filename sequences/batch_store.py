"""The batch queue's persistent state in the historian database: batches, jobs, job events.

Writes here are awaited, each its own small transaction, unlike the historian's buffered telemetry:
the runner moves past a checkpoint only once the checkpoint is on disk, so a controller killed at any
instant restarts from a step that is safe to repeat. There are a few dozen such writes per job, so
their cost does not matter; losing one would.

Every batch and job is its line's: a store reads and writes one `line` (many lines may share the
database), so a queue started on one line never resumes another line's batch of the same file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.errors import ControllerError
from controller.historian.errors import describe_error
from controller.historian.schema import batches, channels, job_events, jobs, make_engine, samples
from controller.historian.upgrade import upgrade
from sequences.batch_queue import BatchQueue

# a checkpoint the runner cannot keep stops the batch, so the store waits out a stalled disk or host
# rather than give up an electrode for it; the interlocks do not wait on this record
DB_TIMEOUT_S = 60.0
LOCKED_RETRIES = 5  # each after SQLite's own busy timeout (5 s): about half a minute of a held lock
LOCKED_PAUSE_S = 0.5

log = logging.getLogger(__name__)


class BatchStoreUnavailable(ControllerError):
    """The batch's record could not be kept: the runner stops rather than pass a checkpoint it
    cannot write, and the batch resumes from its last kept checkpoint."""


@dataclass(frozen=True, slots=True)
class JobItems:
    """The ids of what one job handles: its base (the electrode-to-be) and its two containers."""

    base: str
    container: str
    out_container: str  # the inlet container again when the job reuses it as its storage container
    targets: dict[str, str] = field(default_factory=dict)  # recipe target id -> item id

    @property
    def reuses_container(self) -> bool:
        return self.out_container == self.container

    def as_json(self) -> str:
        return json.dumps(
            {
                "base": self.base,
                "container": self.container,
                "out_container": self.out_container,
                "targets": self.targets,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> JobItems:
        data = json.loads(text)
        return cls(data["base"], data["container"], data["out_container"], dict(data.get("targets", {})))


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    batch_id: str
    position: int
    name: str
    recipe_path: str
    recipe_text: str
    items: JobItems
    on_failure: str
    state: str
    checkpoint: str
    attempts: int
    started_at: float | None
    ended_at: float | None
    outcome: str | None
    message: str

    @property
    def finished(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    queue_path: str
    queue_hash: str
    name: str
    created_at: float
    ended_at: float | None
    status: str
    user: str


class BatchStore:
    """Open with `async with BatchStore(url, line=...)`; the schema is brought to head first (as the
    historian does)."""

    def __init__(self, url: str, *, line: str, timeout_s: float = DB_TIMEOUT_S) -> None:
        self.url = url
        self.line = line
        self.timeout_s = timeout_s
        self._engine: AsyncEngine | None = None

    async def __aenter__(self) -> BatchStore:
        await upgrade(self.url, line=self.line)
        self._engine = make_engine(self.url, timeout_s=self.timeout_s)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _require(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("BatchStore used outside `async with`")
        return self._engine

    async def _execute(self, statement: Any, params: Sequence[Mapping[str, Any]] | None = None) -> None:
        await self._transaction([(statement, params)])

    async def _transaction(
        self, statements: Sequence[tuple[Any, Sequence[Mapping[str, Any]] | None]]
    ) -> None:
        """The statements in one transaction, tried again while SQLite says another writer (the
        historian's) holds the lock longer than its busy timeout: on a loaded machine a telemetry batch
        can, and a batch record must not be lost, nor the batch crash, for that."""
        for attempt in range(1, LOCKED_RETRIES + 2):
            try:
                async with asyncio.timeout(self.timeout_s), self._require().begin() as conn:
                    for statement, params in statements:
                        await conn.execute(statement, params) if params is not None else await conn.execute(
                            statement
                        )
                return
            except TimeoutError:
                raise self._unavailable("a write") from None
            except sa_exc.OperationalError as exc:
                if "database is locked" not in str(exc) or attempt > LOCKED_RETRIES:
                    raise self._unavailable("a write", exc) from exc
                log.warning("database locked by another writer: trying again", extra={"attempt": attempt})
                await asyncio.sleep(LOCKED_PAUSE_S * attempt)

    def _unavailable(self, what: str, exc: sa_exc.DBAPIError | None = None) -> BatchStoreUnavailable:
        refused = None if exc is None else describe_error(exc.orig or exc)  # one line: it ends a CLI's output
        why = f"did not answer within {self.timeout_s:.0f} s" if refused is None else f"refused it: {refused}"
        return BatchStoreUnavailable(f"the batch record of line {self.line!r}: {what} {why}")

    async def _rows(self, statement: Any) -> list[Any]:
        try:
            async with asyncio.timeout(self.timeout_s), self._require().connect() as conn:
                return list((await conn.execute(statement)).mappings())
        except TimeoutError:
            raise self._unavailable("a read") from None
        except sa_exc.OperationalError as exc:
            raise self._unavailable("a read", exc) from exc

    # -- batches -------------------------------------------------------------------------------------

    async def create_batch(self, queue: BatchQueue, user: str) -> BatchRow:
        """A new batch with all its jobs (state idle), written in one transaction."""
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        batch_id = f"B{stamp}-{secrets.token_hex(2)}"
        job_rows = []
        for position, spec in enumerate(queue.jobs, start=1):
            job_id = f"{batch_id}-J{position:02d}"
            container = spec.container or f"{job_id}-box-in"
            items = JobItems(
                spec.base or f"{job_id}-base",
                container,
                container if spec.reuse_container else spec.out_container or f"{job_id}-box-out",
                {t.id: f"{job_id}-{t.id}" for t in spec.recipe.targets},
            )
            job_rows.append(
                {
                    "id": job_id,
                    "line": self.line,
                    "batch_id": batch_id,
                    "position": position,
                    "name": spec.recipe.name,
                    "recipe_path": spec.recipe_path,
                    "recipe_text": spec.recipe_text,
                    "items": items.as_json(),
                    "on_failure": spec.on_failure,
                    "state": "idle",
                    "checkpoint": "",
                    "attempts": 0,
                    "message": "",
                    "updated_at": now,
                }
            )
        batch = {
            "id": batch_id,
            "line": self.line,
            "queue_path": queue.path,
            "queue_hash": queue.hash,
            "queue_text": queue.text,
            "created_at": now,
            "status": "running",
            "user": user,
        }
        await self._transaction([(insert(batches), [batch]), (insert(jobs), job_rows)])
        return BatchRow(batch_id, queue.path, queue.hash, queue.name, now, None, "running", user)

    async def unfinished_batch(self, queue_hash: str) -> BatchRow | None:
        """The newest batch of this very queue file that did not end: the one to resume."""
        found = await self._rows(
            select(batches)
            .where(
                batches.c.line == self.line, batches.c.queue_hash == queue_hash, batches.c.status == "running"
            )
            .order_by(batches.c.created_at.desc())
            .limit(1)
        )
        return _batch(found[0]) if found else None

    async def batch(self, batch_id: str) -> BatchRow | None:
        found = await self._rows(select(batches).where(batches.c.id == batch_id, batches.c.line == self.line))
        return _batch(found[0]) if found else None

    async def end_batch(self, batch_id: str, status: str) -> None:
        await self._execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.line == self.line)
            .values(status=status, ended_at=time.time())
        )

    # -- jobs ----------------------------------------------------------------------------------------

    async def jobs(self, batch_id: str) -> list[JobRow]:
        rows = await self._rows(
            select(jobs)
            .where(jobs.c.line == self.line, jobs.c.batch_id == batch_id)
            .order_by(jobs.c.position)
        )
        return [_job(r) for r in rows]

    async def job(self, job_id: str) -> JobRow | None:
        rows = await self._rows(select(jobs).where(jobs.c.id == job_id, jobs.c.line == self.line))
        return _job(rows[0]) if rows else None

    async def update_job(self, job_id: str, **values: Any) -> None:
        """Durable when it returns: the runner calls this before it moves past a checkpoint."""
        unknown = set(values) - {c.name for c in jobs.columns}
        if unknown:
            raise ValueError(f"jobs has no column {sorted(unknown)}")
        await self._execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.line == self.line)
            .values(**values, updated_at=time.time())
        )

    async def add_event(
        self, job_id: str, kind: str, detail: Mapping[str, Any], ts: float | None = None
    ) -> None:
        row = {
            "ts": time.time() if ts is None else ts,
            "job_id": job_id,
            "kind": kind,
            "detail": json.dumps(dict(detail), sort_keys=True, default=str),
        }
        await self._execute(insert(job_events), [row])

    async def last_sample(self, device: str, channel: str, since_ts: float, until_ts: float) -> float | None:
        """The newest value of one instrument channel recorded in [since_ts, until_ts) (None if none)."""
        statement = (
            select(samples.c.value)
            .join(channels, channels.c.id == samples.c.channel_id)
            .where(channels.c.line == self.line, channels.c.device == device, channels.c.channel == channel)
            .where(samples.c.ts >= since_ts, samples.c.ts < until_ts)
            .where(samples.c.value.is_not(None))
            .order_by(samples.c.ts.desc())
            .limit(1)
        )
        found = await self._rows(statement)
        return float(found[0]["value"]) if found else None

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self._rows(
            select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
        )
        return [{"ts": r["ts"], "kind": r["kind"], "detail": json.loads(r["detail"])} for r in rows]


def _batch(row: Any) -> BatchRow:
    name = str(row["queue_path"]).rsplit("/", 1)[-1].removesuffix(".toml")
    return BatchRow(
        row["id"],
        row["queue_path"],
        row["queue_hash"],
        name,
        row["created_at"],
        row["ended_at"],
        row["status"],
        row["user"],
    )


def _job(row: Any) -> JobRow:
    return JobRow(
        id=row["id"],
        batch_id=row["batch_id"],
        position=row["position"],
        name=row["name"],
        recipe_path=row["recipe_path"],
        recipe_text=row["recipe_text"],
        items=JobItems.from_json(row["items"]),
        on_failure=row["on_failure"],
        state=row["state"],
        checkpoint=row["checkpoint"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        message=row["message"],
    )
