"""An unattended batch: the jobs of a queue file run one after the other, resumable after a restart.

The batch and its jobs live in the historian database (`BatchStore`). Running the same queue file
again finds its unfinished batch (same content hash, status running) and continues it: finished jobs
stay finished, the interrupted job resumes from its last checkpoint (see `JobRunner`).

Failure policy per job: "stop" ends the queue with the line safe and the electrode where it is (a
person decides); "skip" takes the electrode out as a reject (the job ends REJECTED) and goes on with
the next job, as long as the reject path itself works — if it does not, the queue stops. A safety
trip (ABORTED) and a job that cannot tell where it stands (it needs a person) always stop the queue.

"skip" has a memory (`sequences.failure_memory`): failures in a row with the same cause stop the queue
once the queue's limit is reached (1 for an equipment fault by default: a dead turbo does not get
three electrodes). The job that reaches the limit is still taken out as a reject (its reject path
needs no process equipment), then the queue stops and an alarm says why: a person decides before the
next electrode goes in. Every automatic un-hold of the "skip" path is on the job's record as automatic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.line.controller import LineController
from sequences.batch_queue import BatchQueue
from sequences.batch_store import BatchRow, BatchStore, JobRow
from sequences.failure_memory import FailureCause, FailureMemory, failure_cause
from sequences.job_runner import JobOutcome, JobRunner, Progress, RecordsDurable
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock

log = logging.getLogger(__name__)

POLICY_ALARM_ID = "batch.failure_policy"


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch: BatchRow
    jobs: list[JobRow]
    status: str  # "complete" (every job done), "failed" (some failed safe or the queue stopped), "stopped"
    resumed: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "complete" and all(j.outcome == "done" for j in self.jobs) else 1


class BatchRunner:
    def __init__(
        self,
        ctl: LineController,
        store: BatchStore,
        queue: BatchQueue,
        *,
        clock: PlantClock,
        desk: OperatorDesk,
        user: str = "batch",
        on_progress: Callable[[Progress, int, int], None] | None = None,
        on_job_end: Callable[[JobRow, JobOutcome], None] | None = None,
        on_start: Callable[[BatchRow, list[JobRow], bool], None] | None = None,
        durable: RecordsDurable | None = None,
    ) -> None:
        self.ctl = ctl
        self.durable = durable
        self.store = store
        self.queue = queue
        self.clock = clock
        self.desk = desk
        self.user = user
        self.on_progress = on_progress
        self.on_job_end = on_job_end
        self.on_start = on_start
        self.current: JobRunner | None = None
        self._stop = asyncio.Event()
        self.memory = FailureMemory(queue.equipment_fault_limit, queue.same_failure_limit)

    def request_stop(self) -> None:
        """An orderly stop: the running job goes to its safe state and the batch stays resumable."""
        self._stop.set()
        if self.current is not None:
            self.current.request_stop()

    def request_hold(self, user: str) -> JobRunner | None:
        """Hold the running job at its next phase boundary; None when no job runs (nothing to hold)."""
        if self.current is not None:
            self.current.request_hold(user)
        return self.current

    def request_unhold(self, user: str) -> JobRunner | None:
        if self.current is not None:
            self.current.request_unhold(user)
        return self.current

    def request_abort(self, user: str) -> JobRunner | None:
        """Abort the running job (its route made safe at once); an aborted job always ends the queue."""
        if self.current is not None:
            self.current.request_abort(user)
        return self.current

    async def run(self) -> BatchResult:
        batch = await self.store.unfinished_batch(self.queue.hash)
        resumed = batch is not None
        if batch is None:
            batch = await self.store.create_batch(self.queue, self.user)
        jobs = await self.store.jobs(batch.id)
        if self.on_start is not None:
            self.on_start(batch, jobs, resumed)
        status = await self._run_jobs(batch, jobs)
        if status != "stopped":
            await self.store.end_batch(batch.id, status)
        final = await self.store.batch(batch.id)
        return BatchResult(final or batch, await self.store.jobs(batch.id), status, resumed)

    async def _run_jobs(self, batch: BatchRow, jobs: list[JobRow]) -> str:
        any_failed = False
        for position, job in enumerate(jobs, start=1):
            if job.finished:
                any_failed |= job.outcome != "done"
                continue
            if self._stop.is_set():
                return "stopped"
            outcome, stops_queue = await self._run_job(job, position, len(jobs))
            if self.on_job_end is not None:
                fresh = await self.store.job(job.id)
                self.on_job_end(fresh or job, outcome)
            if outcome.outcome == "stopped":
                return "stopped"
            if outcome.outcome != "done":
                any_failed = True
            if stops_queue or outcome.outcome == "aborted":
                log.error("batch stops", extra={"batch": batch.id, "job": job.id, "outcome": outcome.outcome})
                return "failed"
        return "failed" if any_failed else "complete"

    async def _run_job(self, job: JobRow, position: int, total: int) -> tuple[JobOutcome, bool]:
        """The job's outcome, and whether the queue must stop (policy "stop", or a reject that failed)."""

        def progress(p: Progress) -> None:
            if self.on_progress is not None:
                self.on_progress(p, position, total)

        runner = JobRunner(
            self.ctl,
            self.store,
            job,
            clock=self.clock,
            desk=self.desk,
            on_progress=progress,
            durable=self.durable,
        )
        self.current = runner
        started_s = time.time()
        try:
            outcome = await runner.run()
            if outcome.outcome != "held":
                if outcome.outcome == "done":
                    self.memory.ended_otherwise()
                return outcome, outcome.needs_person
            if job.on_failure == "skip" and not self._stop.is_set():
                cause = failure_cause(self.ctl.alarms, outcome.message, started_s)
                stops = self.memory.failed(cause)
                if stops:
                    await self._policy_stops(runner, job, cause)
                outcome = await runner.unhold_and_reject(cause.as_dict())
                if outcome.outcome != "held":
                    return outcome, outcome.needs_person or stops
            return await runner.stop_held(), True
        finally:
            self.current = None

    async def _policy_stops(self, runner: JobRunner, job: JobRow, cause: FailureCause) -> None:
        """The same cause failed too many jobs in a row: on the job's record, and an alarm for a person."""
        limit = self.memory.limit(cause)
        detail = {
            "stops_queue": True,
            "cause": cause.as_dict(),
            "in_a_row": self.memory.in_a_row,
            "limit": limit,
        }
        await runner.note("failure_policy", detail)
        text = (
            f"job {job.id} failed ({cause.words}): {self.memory.in_a_row} failure(s) in a row with this "
            f"{'equipment fault' if cause.equipment else 'cause'} (limit {limit}); the queue stops here"
        )
        log.error("skip policy stops the queue", extra={"job": job.id, "cause": cause.key})
        alarms = self.ctl.alarms
        alarms.define(
            AlarmDefinition(
                POLICY_ALARM_ID,
                Severity.HIGH,
                "A skip queue stopped: the same cause failed its jobs",
                "The failed job's electrode is taken out as a reject and no further job of the queue "
                "starts: remove the cause before starting the remaining jobs.",
            )
        )
        now = time.time()
        alarms.raise_alarm(POLICY_ALARM_ID, now, {"text": text, "job": job.id, "cause": cause.key})
        alarms.clear(POLICY_ALARM_ID, now)  # an event: it stays on display until acknowledged
