"""The one production batch a controller process runs at a time, whoever started it.

`depline batch QUEUE` hands it a queue and waits for the result; `depline run` and `depline demo
--operator hmi` leave it idle until an operator starts a queue from the HMI. Either way the API reads
the same object (the batch's rows, the current job's live progress, the last batch's result), so one
page works against every way of running the line.

Why the HMI names a queue instead of uploading one: the queues an operator may start are files an
engineer put in the shipped or configured queue folder, validated with every recipe before anything
moves; the browser can pick one but never bring its own. Starting the same queue again resumes its
unfinished batch, as the CLI does.

The batch runs as one supervised task: if it ends by an unexpected exception (the database gone, a
bug), the exception is kept for the page, logged and raised as an alarm — it never vanishes with the
task. Closing the host is an orderly stop: the running job makes the line safe, the batch stays
resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

from controller.errors import ControllerError, UserError
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.line.controller import LineController
from controller.line.modes import MANUAL_ORIGINS, ModeRefused, ModeState, UnitMode
from sequences.batch import BatchResult, BatchRunner
from sequences.batch_queue import BatchQueue, load_queue
from sequences.batch_store import BatchRow, BatchStore, JobRow
from sequences.job_runner import JobOutcome, JobRunner, Progress, RecordsDurable
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.run_state import RunState

log = logging.getLogger(__name__)

ALARM_ID = "batch.runner"
START_TIMEOUT_S = 30.0  # wall s for a started batch to have read or written its rows
STOP_TIMEOUT_S = 120.0  # wall s an orderly stop on shutdown may take (the route's safe states)


class BatchRefused(ControllerError):
    """A batch request this host cannot take now (one already runs, nothing to hold, ...)."""


@dataclass(frozen=True, slots=True)
class QueueChoice:
    name: str  # what the HMI sends back: the file's stem
    title: str  # the queue's own name
    path: Path
    jobs: int
    recipes: tuple[str, ...]  # each job's recipe name, in order
    hash: str = ""  # of the queue file: a client can tell it holds the very same file


def shipped_queue_folder() -> Path:
    return Path(str(resources.files("sequences").joinpath("queues")))


class BatchHost:
    """Holds the batch store open while the controller runs; starts, steers and reports one batch."""

    def __init__(
        self,
        ctl: LineController,
        url: str,
        *,
        clock: PlantClock,
        desk: OperatorDesk,
        queue_folders: tuple[Path, ...] = (),
        on_start: Callable[[BatchRow, list[JobRow], bool], None] | None = None,
        on_progress: Callable[[Progress, int, int], None] | None = None,
        on_job_end: Callable[[JobRow, JobOutcome], None] | None = None,
        durable: RecordsDurable | None = None,
    ) -> None:
        self.ctl = ctl
        self.durable = durable  # the historian's flush: a checkpoint never gets ahead of the records
        self.clock = clock
        self.desk = desk
        self.store = BatchStore(url, line=ctl.config.name)
        self.queue_folders = (shipped_queue_folder(), *queue_folders)
        self._on_start = on_start
        self._on_progress = on_progress
        self._on_job_end = on_job_end
        self.runner: BatchRunner | None = None
        self.row: BatchRow | None = None  # the current (or last) batch, once its rows are read
        self.progress: Progress | None = None  # the latest progress its current job reported
        self.result: BatchResult | None = None  # the last batch that ended in this process
        self.failure: str | None = None  # why the last batch task died, when it did not end normally
        self.started_by: str | None = None
        self._task: asyncio.Task[BatchResult] | None = None
        self._started = asyncio.Event()
        self._reported: set[tuple[Path, int]] = set()
        # why a batch must not start now although none runs (a manual operation owns a space), or None
        self.blocked_by: Callable[[], str | None] = lambda: None
        self._spaces = tuple(s.name for s in ctl.config.spaces)  # no queue item id may name one
        self._ending = False  # the batch is handing the line back: its own mode change passes
        ctl.modes.guards.append(self._mode_guard)

    async def __aenter__(self) -> BatchHost:
        await self.store.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.close()
        finally:
            await self.store.__aexit__(exc_type, exc, tb)

    # -- what may be started ------------------------------------------------------------------------

    async def choices(self) -> list[QueueChoice]:
        """The queue files an operator may start; one that does not validate is left out (and logged)."""
        return await asyncio.to_thread(self._read_choices)

    def _read_choices(self) -> list[QueueChoice]:
        found: dict[str, QueueChoice] = {}
        for folder in self.queue_folders:
            for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
                if path.stem in found:
                    continue  # the shipped folder comes first: a site file cannot shadow it
                try:
                    queue = load_queue(path, spaces=self._spaces, line=self.ctl.config)
                except UserError as exc:
                    self._report_invalid(path, exc)
                    continue
                recipes = tuple(job.recipe.name for job in queue.jobs)
                found[path.stem] = QueueChoice(
                    path.stem, queue.name, path, len(queue.jobs), recipes, queue.hash
                )
        return list(found.values())

    def _report_invalid(self, path: Path, exc: UserError) -> None:
        """Once per version of the file: the HMI asks for the choices every few seconds."""
        with contextlib.suppress(OSError):
            key = (path, path.stat().st_mtime_ns)
            if key not in self._reported:
                self._reported.add(key)
                log.warning("queue file left out: it does not validate", extra={"error": str(exc)})

    # -- starting -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def busy(self) -> str | None:
        """Why manual operations must wait, or None: a running batch owns the line (a held batch that
        handed the line over to manual does not)."""
        if not self.running or self.ctl.modes.current.mode is not UnitMode.PRODUCTION:
            return None
        which = self.row.id if self.row is not None else "starting"
        return f"batch {which} is running: manual operations wait until it ends or is stopped"

    async def start(self, name: str, user: str) -> BatchRow:
        """Start (or resume) the queue file `name` from `choices()`; answers once its rows exist."""
        if self.running:
            raise BatchRefused("a batch is already running in this controller; stop it or wait for its end")
        blocked = self.blocked_by()
        if blocked is not None:
            raise BatchRefused(blocked)
        choice = next((c for c in await self.choices() if c.name == name), None)
        if choice is None:
            raise BatchRefused(f"no queue {name!r} among the queue files this controller may start")
        queue = await asyncio.to_thread(load_queue, choice.path, spaces=self._spaces, line=self.ctl.config)
        self._launch(queue, user)
        task = self._task
        assert task is not None
        started = asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait({started, task}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if self.row is None:
            raise BatchRefused(self.failure or f"the batch did not start within {START_TIMEOUT_S:.0f} s")
        return self.row

    async def run(self, queue: BatchQueue, user: str) -> BatchResult:
        """Run `queue` to its end here (the CLI's way); an unexpected failure propagates."""
        if self.running:
            raise BatchRefused("a batch is already running in this controller")
        self._launch(queue, user)
        assert self._task is not None
        return await self._task

    def _launch(self, queue: BatchQueue, user: str) -> None:
        try:  # the batch takes the line: manual commands are refused from here on
            self.ctl.modes.change(
                UnitMode.PRODUCTION,
                user,
                f"queue {queue.name} started by {user}",
                owner=f"queue {queue.name}",
            )
        except ModeRefused as exc:
            raise BatchRefused(f"a batch cannot start: {exc}") from None
        self.runner = BatchRunner(
            self.ctl,
            self.store,
            queue,
            clock=self.clock,
            desk=self.desk,
            user=user,
            on_progress=self._progressed,
            on_job_end=self._on_job_end,
            on_start=self._batch_started,
            durable=self.durable,
        )
        self.row, self.progress, self.result, self.failure = None, None, None, None
        self.started_by = user
        self._started.clear()
        # the batch passes its items through every space: alarm when one of them leaves spec meanwhile
        self.ctl.supervisor.need_spaces(self._owner(queue.name), self._spaces)
        self._task = asyncio.create_task(self._supervised(self.runner), name=f"batch:{queue.name}")
        self._task.add_done_callback(_observed)

    async def _supervised(self, runner: BatchRunner) -> BatchResult:
        ended = "failed"
        try:
            result = await runner.run()
            ended = result.status
        except asyncio.CancelledError:
            ended = "cancelled"
            raise
        except Exception as exc:
            self.failure = f"the batch runner failed: {type(exc).__name__}: {exc}"
            log.exception("batch runner failed", extra={"batch": self.row.id if self.row else None})
            self._alarm(self.failure)
            raise
        finally:
            self._hand_back(ended)
        self.result = result
        self.row = result.batch
        return result

    @staticmethod
    def _owner(queue: str) -> str:
        return f"the batch of queue {queue}"

    def _hand_back(self, ended: str) -> None:
        """The batch is over in this process: the line returns to manual, still supervised."""
        if self.runner is not None:
            self.ctl.supervisor.release_spaces(self._owner(self.runner.queue.name))
        modes = self.ctl.modes
        if modes.current.mode is not UnitMode.PRODUCTION:
            return
        which = self.row.id if self.row is not None else modes.current.owner
        self._ending = True
        try:
            modes.change(UnitMode.MANUAL, self.started_by or "batch", f"batch {which} ended ({ended})")
        except ModeRefused as exc:  # e.g. maintenance guards added later: say so, never hide it
            log.error("the line could not be returned to manual", extra={"error": str(exc)})
        finally:
            self._ending = False

    def _mode_guard(self, now: ModeState, to: UnitMode, owner: str | None) -> str | None:
        """Leaving production needs the owning batch held, stopped or ended (not halfway through a step);
        production is taken back only by the batch that holds it."""
        if self._ending or not self.running:
            return None
        job = self.current()
        state = job.machine.current if job is not None else None
        leaving = now.mode is UnitMode.PRODUCTION and to is not UnitMode.PRODUCTION
        if leaving and state not in (RunState.HELD, RunState.STOPPED):
            doing = state.value if state is not None else "between jobs"
            return f"batch {now.owner} is {doing}: hold it before switching the line to {to.value}"
        if to is UnitMode.PRODUCTION and self.row is not None and owner not in (self.row.id, now.owner):
            return f"batch {self.row.id} holds the line's production: only it can take the line back"
        return None

    async def reclaim(self, user: str, reason: str) -> ModeState:
        """Back to production for the held batch, with every manual change since it let go on its record."""
        job = self.current()
        if job is None or self.row is None:
            raise BatchRefused("no held batch to hand the line back to: start a queue instead")
        blocked = self.blocked_by()
        if blocked is not None:
            raise BatchRefused(blocked)
        modes = self.ctl.modes
        since = next(
            (c.ts for c in reversed(modes.journal) if c.previous is UnitMode.PRODUCTION and c.device is None),
            None,
        )
        try:
            state = modes.change(UnitMode.PRODUCTION, user, reason, owner=self.row.id)
        except ModeRefused as exc:
            raise BatchRefused(str(exc)) from None
        changes = [
            {"ts": r.ts, "user": r.command.user, "origin": r.command.origin, "action": str(r.command.action)}
            for r in self.ctl.gate.records
            if since is not None
            and r.ts >= since
            and r.command.origin in MANUAL_ORIGINS
            and r.outcome == "done"
        ]
        await job.note("manual_changes", {"by": user, "reason": reason, "commands": changes})
        return state

    def _batch_started(self, batch: BatchRow, jobs: list[JobRow], resumed: bool) -> None:
        self.row = batch
        if self.ctl.modes.current.mode is UnitMode.PRODUCTION:  # the owner is now a batch id, not a queue
            self.ctl.modes.change(
                UnitMode.PRODUCTION, self.started_by or "batch", f"batch {batch.id} read", owner=batch.id
            )
        self._started.set()
        if self._on_start is not None:
            self._on_start(batch, jobs, resumed)

    def _progressed(self, progress: Progress, position: int, total: int) -> None:
        self.progress = progress
        if self._on_progress is not None:
            self._on_progress(progress, position, total)

    def _alarm(self, text: str) -> None:
        alarms = self.ctl.alarms
        alarms.define(
            AlarmDefinition(
                ALARM_ID,
                Severity.HIGH,
                "The production batch stopped unexpectedly",
                "The line is left as the running step had it: check it is safe, then start the queue "
                "again to resume the batch (its records are kept).",
            )
        )
        alarms.raise_alarm(ALARM_ID, time.time(), {"text": text})

    # -- steering the running batch -------------------------------------------------------------------

    def current(self) -> JobRunner | None:
        return self.runner.current if self.running and self.runner is not None else None

    def stop(self) -> None:
        if not self.running or self.runner is None:
            raise BatchRefused("no batch is running: nothing to stop")
        self.runner.request_stop()

    def stop_if_running(self) -> None:
        """For a signal handler: Ctrl-C with nothing running is not an error."""
        if self.running and self.runner is not None:
            self.runner.request_stop()

    def hold(self, user: str) -> JobRunner:
        return self._job_request(lambda r: r.request_hold(user), "hold")

    def resume(self, user: str) -> JobRunner:
        mode = self.ctl.modes.current
        if (
            self.running
            and self.row is not None
            and (mode.mode, mode.owner) != (UnitMode.PRODUCTION, self.row.id)
        ):
            raise BatchRefused(
                f"the line is in {mode.words()}: switch it back to production first "
                "(the held batch takes it, with every manual change since on its record)"
            )
        return self._job_request(lambda r: r.request_unhold(user), "resume")

    def abort(self, user: str) -> JobRunner:
        return self._job_request(lambda r: r.request_abort(user), "abort")

    def _job_request(self, act: Callable[[BatchRunner], JobRunner | None], verb: str) -> JobRunner:
        job = act(self.runner) if self.running and self.runner is not None else None
        if job is None:
            raise BatchRefused(f"no job is running: nothing to {verb}")
        return job

    async def close(self) -> None:
        """An orderly stop of whatever runs (the route made safe); the batch stays resumable."""
        task = self._task
        if task is None or task.done():
            return
        if self.runner is not None:
            self.runner.request_stop()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            log.error("the batch did not stop in time; cancelling it", extra={"timeout_s": STOP_TIMEOUT_S})
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # its failure is already reported
            await task


def _observed(task: asyncio.Task[BatchResult]) -> None:
    """A batch started from the HMI has nobody awaiting it: its failure is reported by `_supervised`
    (log, alarm, `failure`), and retrieved here so asyncio does not report it a second time."""
    if not task.cancelled():
        task.exception()
