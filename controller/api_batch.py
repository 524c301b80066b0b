"""The batch this controller process runs, over the API: what the HMI's run panel shows, and its Stop.

Only `depline batch` (controller.batch_run) runs a batch with the API served; a plain `depline run`
answers with no batch, so one page works against both. The jobs come from the batch's own records (the
same rows a restart resumes from); the current job's phase and run state come from the running
`JobRunner`, because its row is only written at checkpoints and would show a state already left.

A stop from the HMI is the same orderly stop as Ctrl-C on `depline batch`: the running job takes the
line to its safe state and the batch stays resumable. Who asked is written into the job's events, so
the record says why the run ended early.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from controller.api import ApiContext, Ctx, require
from controller.auth import Permission, Session
from sequences.batch import BatchRunner
from sequences.batch_store import JobRow

log = logging.getLogger(__name__)
router = APIRouter()


class BatchInfo(BaseModel):
    id: str
    name: str
    queue_path: str
    user: str = Field(description="who started the batch")
    created_at: float = Field(description="epoch seconds")


class BatchJobView(BaseModel):
    position: int = Field(description="1-based place in the queue")
    id: str
    recipe: str = Field(description="the recipe's name")
    state: str = Field(description="PackML run state: live for the current job, else the last recorded")
    outcome: str | None = Field(description='"done", "failed", "aborted"; null while unfinished')
    message: str = Field(description="why it failed or stopped; empty when done")
    checkpoint: str = Field(description="<phase>:started|done, where a restart resumes")


class CurrentJobView(BaseModel):
    job_id: str
    position: int
    jobs: int = Field(description="jobs in the batch")
    phase_index: int = Field(description="phases done; equals `phases` once the last one is done")
    phases: int
    phase_title: str
    fraction: float = Field(description="share of the job's estimated plant time done, 0..1")
    state: str = Field(description="PackML run state (execute, held, suspended, stopping, ...)")


class BatchView(BaseModel):
    runs_here: bool = Field(description="whether this controller process runs a batch at all")
    batch: BatchInfo | None = Field(description="null until the batch has started, or when none runs here")
    jobs: list[BatchJobView]
    current: CurrentJobView | None = Field(description="null between jobs and when nothing runs")


class StopView(BaseModel):
    batch: str | None
    job: str | None = Field(description="the job that goes to its safe state; null between jobs")
    user: str


@router.get("/api/batch", response_model=BatchView, tags=["read"])
async def get_batch(ctx: Ctx) -> BatchView:
    """The batch running in this process: its jobs with their outcomes and the current job's progress."""
    runner, row = ctx.batch, ctx.batch_row
    if runner is None or row is None:
        return BatchView(runs_here=runner is not None, batch=None, jobs=[], current=None)
    try:
        jobs = await runner.store.jobs(row.id)
    except (SQLAlchemyError, TimeoutError) as exc:
        raise HTTPException(503, f"the batch records cannot be read: {exc}") from None
    info = BatchInfo(
        id=row.id, name=row.name, queue_path=row.queue_path, user=row.user, created_at=row.created_at
    )
    return BatchView(
        runs_here=True,
        batch=info,
        jobs=[_job_view(job, runner) for job in jobs],
        current=_current(ctx, len(jobs)),
    )


def _job_view(job: JobRow, runner: BatchRunner) -> BatchJobView:
    current = runner.current
    state = current.machine.current.value if current is not None and current.job.id == job.id else job.state
    return BatchJobView(
        position=job.position,
        id=job.id,
        recipe=job.name,
        state=state,
        outcome=job.outcome,
        message=job.message,
        checkpoint=job.checkpoint,
    )


def _current(ctx: ApiContext, jobs: int) -> CurrentJobView | None:
    runner = ctx.batch
    current = runner.current if runner is not None else None
    if current is None:
        return None
    progress = ctx.batch_progress
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
    )


@router.post("/api/batch/stop", response_model=StopView, status_code=202, tags=["act"])
async def stop_batch(ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]) -> StopView:
    """An orderly stop: the running job takes the line to its safe state; the batch stays resumable.

    202: the stop is under way when this answers; GET /api/batch shows the job stopping, then stopped."""
    runner = ctx.batch
    if runner is None:
        raise HTTPException(503, "no batch runs in this controller process: nothing to stop")
    current = runner.current
    job_id = current.job.id if current is not None else None
    if job_id is not None:
        detail = {"user": session.user, "via": "hmi", "at": time.time()}
        try:
            await runner.store.add_event(job_id, "stop_requested", detail)
        except (SQLAlchemyError, TimeoutError):  # the stop matters more than its note
            log.exception("could not record who stopped the batch", extra={"job": job_id})
    runner.request_stop()
    batch_id = ctx.batch_row.id if ctx.batch_row is not None else None
    log.warning("batch stop requested", extra={"batch": batch_id, "job": job_id, "user": session.user})
    return StopView(batch=batch_id, job=job_id, user=session.user)
