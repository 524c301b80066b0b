"""The production batch over the API: what the HMI's run panel shows, and how an operator steers it.

One `BatchHost` per controller process (`ApiContext.batches`) runs at most one batch, started by
`depline batch` or from this API; the jobs come from the batch's own records (the same rows a restart
resumes from); the current job's phase and run state come from the running `JobRunner`, because its
row is only written at checkpoints and would show a state already left.

Steering follows PackML: *hold* waits at the next phase boundary (a layer cannot be paused halfway),
*resume* releases it, *stop* is the orderly, resumable end (the route made safe, the electrode stays
where it is), *abort* cancels the running phase at once and ends the queue. Each request is written
into the job's events with who asked, so the record says why the run went as it did. Requests answer
202: they are under way when the answer comes; GET /api/batch shows them take effect.

Once a batch has ended, the same view is its end-of-run record: every job's outcome, plant hours,
the electrode's exposure verdict and the link to its certificate (GET /api/reports/{run}.html).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from controller.api.context import ApiContext, Ctx, require
from controller.line.ledger import exposure_line
from controller.users.auth import Permission, Session
from sequences.batch_host import BatchHost, BatchRefused
from sequences.batch_store import JobRow
from sequences.job_runner import JobRunner

log = logging.getLogger(__name__)
router = APIRouter()


class BatchInfo(BaseModel):
    id: str
    name: str
    queue_path: str
    user: str = Field(description="who started the batch")
    created_at: float = Field(description="epoch seconds")
    status: str = Field(description='"running", "complete", "failed"; "stopped" while resumable')
    ended_at: float | None = Field(description="epoch seconds; null while running or resumable")


class BatchJobView(BaseModel):
    position: int = Field(description="1-based place in the queue")
    id: str
    recipe: str = Field(description="the recipe's name")
    electrode: str = Field(description="the base item's id")
    state: str = Field(description="PackML run state: live for the current job, else the last recorded")
    outcome: str | None = Field(description='"done", "rejected", "failed", "aborted"; null while unfinished')
    message: str = Field(description="why it failed or stopped; empty when done")
    checkpoint: str = Field(description="<phase>:started|done, where a restart resumes")
    plant_hours: float | None = Field(description="plant hours from start to end; null until it ended")
    exposed: bool | None = Field(description="ever in a non-inert atmosphere; null before it was loaded")
    exposure: str = Field(description="the electrode's exposure record in one line")
    report: str | None = Field(description="the job's certificate (HTML); null until it has started")


class CurrentJobView(BaseModel):
    job_id: str
    position: int
    jobs: int = Field(description="jobs in the batch")
    phase_index: int = Field(description="phases done; equals `phases` once the last one is done")
    phases: int
    phase_title: str
    fraction: float = Field(description="share of the job's estimated plant time done, 0..1")
    state: str = Field(description="PackML run state (execute, held, suspended, stopping, ...)")
    hold_requested_by: str | None = Field(description="an operator's hold waiting for the phase's end")


class BatchView(BaseModel):
    runs_here: bool = Field(description="whether this controller process can run a batch at all")
    running: bool = Field(description="a batch runs now (hold, resume, stop and abort apply to it)")
    started_by: str | None
    failure: str | None = Field(description="why the last batch ended unexpectedly (its alarm says so too)")
    batch: BatchInfo | None = Field(description="the running or last batch; null before the first one")
    jobs: list[BatchJobView]
    current: CurrentJobView | None = Field(description="null between jobs and when nothing runs")


class QueueView(BaseModel):
    name: str = Field(description="what POST /api/batch/start takes")
    title: str
    jobs: int
    recipes: list[str]
    hash: str = Field(description="SHA-256 of the queue file this service validated")


class StartRequest(BaseModel):
    queue: str = Field(description="a name from GET /api/batch/queues", max_length=200)


class RequestView(BaseModel):
    request: str = Field(description="hold, resume, stop or abort")
    batch: str | None
    job: str | None = Field(description="the job it applies to; null between jobs")
    user: str


def _host(ctx: ApiContext) -> BatchHost:
    if ctx.batches is None:
        raise HTTPException(503, "this controller process runs no production batches")
    return ctx.batches


@router.get("/api/batch", response_model=BatchView, tags=["read"])
async def get_batch(ctx: Ctx) -> BatchView:
    """The running (or last) batch: its jobs with their outcomes and exposure, the current job's progress."""
    host = ctx.batches
    if host is None or host.row is None:
        return BatchView(
            runs_here=host is not None,
            running=host is not None and host.running,
            started_by=None if host is None else host.started_by,
            failure=None if host is None else host.failure,
            batch=None,
            jobs=[],
            current=None,
        )
    try:
        row = await host.store.batch(host.row.id) or host.row
        jobs = await host.store.jobs(row.id)
    except (SQLAlchemyError, TimeoutError) as exc:
        raise HTTPException(503, f"the batch records cannot be read: {exc}") from None
    info = BatchInfo(
        id=row.id,
        name=row.name,
        queue_path=row.queue_path,
        user=row.user,
        created_at=row.created_at,
        status="stopped" if row.status == "running" and not host.running else row.status,
        ended_at=row.ended_at,
    )
    current = host.current()
    return BatchView(
        runs_here=True,
        running=host.running,
        started_by=host.started_by,
        failure=host.failure,
        batch=info,
        jobs=[_job_view(ctx, job, current) for job in jobs],
        current=_current(host, current, len(jobs)),
    )


def _job_view(ctx: ApiContext, job: JobRow, current: JobRunner | None) -> BatchJobView:
    live = current is not None and current.job.id == job.id
    state = current.machine.current.value if current is not None and live else job.state
    hours = None
    if job.started_at is not None and job.ended_at is not None and ctx.batches is not None:
        hours = ctx.batches.clock.plant_s(job.ended_at - job.started_at) / 3600.0
    record = ctx.controller.ledger.records.get(job.items.base)
    return BatchJobView(
        position=job.position,
        id=job.id,
        recipe=job.name,
        electrode=job.items.base,
        state=state,
        outcome=job.outcome,
        message=job.message,
        checkpoint=job.checkpoint,
        plant_hours=hours,
        exposed=None if record is None else record.ever_exposed_to_non_inert,
        exposure=exposure_line(record),
        report=f"/api/reports/{job.id}.html" if job.started_at is not None else None,
    )


def _current(host: BatchHost, current: JobRunner | None, jobs: int) -> CurrentJobView | None:
    if current is None:
        return None
    progress = host.progress
    if progress is None or progress.job.id != current.job.id:  # started, nothing reported yet
        index, phases, title, fraction = 0, len(current.phases), "starting", 0.0
    else:
        index, phases, title, fraction = (
            progress.phase_index,
            progress.phases,
            progress.title,
            progress.fraction,
        )
    return CurrentJobView(
        job_id=current.job.id,
        position=current.job.position,
        jobs=jobs,
        phase_index=index,
        phases=phases,
        phase_title=title,
        fraction=fraction,
        state=current.machine.current.value,
        hold_requested_by=current.hold_requested_by,
    )


@router.get("/api/batch/queues", response_model=list[QueueView], tags=["read"])
async def get_queues(ctx: Ctx) -> list[QueueView]:
    """The queue files an operator may start here (shipped and configured; each validated)."""
    choices = await _host(ctx).choices()
    return [
        QueueView(name=c.name, title=c.title, jobs=c.jobs, recipes=list(c.recipes), hash=c.hash)
        for c in choices
    ]


@router.post("/api/batch/start", response_model=BatchInfo, status_code=201, tags=["act"])
async def start_batch(
    ctx: Ctx, body: StartRequest, session: Annotated[Session, require(Permission.COMMAND)]
) -> BatchInfo:
    """Start a queue (or resume its unfinished batch); 409 when a batch runs or the name is unknown."""
    host = _host(ctx)
    try:
        row = await host.start(body.queue, session.user)
    except BatchRefused as exc:
        raise HTTPException(409, str(exc)) from None
    log.warning("batch started", extra={"batch": row.id, "queue": body.queue, "user": session.user})
    return BatchInfo(
        id=row.id,
        name=row.name,
        queue_path=row.queue_path,
        user=row.user,
        created_at=row.created_at,
        status=row.status,
        ended_at=row.ended_at,
    )


@router.post("/api/batch/hold", response_model=RequestView, status_code=202, tags=["act"])
async def hold_batch(ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]) -> RequestView:
    """Hold the running job at its next phase boundary (HELD then waits for resume, stop or abort)."""
    host = _host(ctx)
    return await _steer(host, "hold", session, lambda: host.hold(session.user))


@router.post("/api/batch/resume", response_model=RequestView, status_code=202, tags=["act"])
async def resume_batch(ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]) -> RequestView:
    """Release a hold (or withdraw one that has not taken effect yet)."""
    host = _host(ctx)
    return await _steer(host, "resume", session, lambda: host.resume(session.user))


@router.post("/api/batch/abort", response_model=RequestView, status_code=202, tags=["act"])
async def abort_batch(ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]) -> RequestView:
    """Cancel the running phase now, make the route safe; the job is ABORTED and the queue ends."""
    host = _host(ctx)
    return await _steer(host, "abort", session, lambda: host.abort(session.user))


@router.post("/api/batch/stop", response_model=RequestView, status_code=202, tags=["act"])
async def stop_batch(ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]) -> RequestView:
    """An orderly stop: the running job takes the line to its safe state; the batch stays resumable."""
    host = _host(ctx)

    def stop() -> JobRunner | None:
        host.stop()
        return host.current()

    return await _steer(host, "stop", session, stop)


async def _steer(
    host: BatchHost, request: str, session: Session, act: Callable[[], JobRunner | None]
) -> RequestView:
    try:
        job = act()
    except BatchRefused as exc:
        raise HTTPException(409, str(exc)) from None
    job_id = job.job.id if job is not None else None
    if job_id is not None:
        detail = {"user": session.user, "via": "hmi", "at": time.time()}
        try:
            await host.store.add_event(job_id, f"{request}_requested", detail)
        except (SQLAlchemyError, TimeoutError):  # the request matters more than its note
            log.exception("could not record a batch request", extra={"job": job_id, "request": request})
    batch_id = host.row.id if host.row is not None else None
    log.warning(f"batch {request} requested", extra={"batch": batch_id, "job": job_id, "user": session.user})
    return RequestView(request=request, batch=batch_id, job=job_id, user=session.user)
