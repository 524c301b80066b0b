"""`depline batch QUEUE`: the controller, its historian and the batch runner, with progress and a summary.

The caller hands in the line as an async context manager that yields the configuration to control
(the real line's, or the simulated line's endpoints), so this module never imports the simulator.
Progress goes to the terminal: one line per job with a bar for the job and one for the queue, redrawn
in place on a terminal and printed once per phase otherwise (a log file stays readable).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TextIO

from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.historian.recorder import Recorder
from controller.line.controller import LineController
from controller.line.ledger import ExposureRecord, exposure_line
from controller.line.poller import PollPlan, Priority
from controller.service.batch_report import JobLine, job_end_line, progress_line
from controller.service.batch_report import summary_lines as report_lines
from controller.service.line_service import (
    ControllerService,
    HttpServer,
    freeze_startup_objects,
    prepare_data_dirs,
)
from sequences.batch import BatchResult
from sequences.batch_host import BatchHost
from sequences.batch_queue import BatchQueue
from sequences.batch_store import BatchRow, JobRow
from sequences.job_runner import JobOutcome, Progress
from sequences.operator_desk import OperatorDesk, TerminalAnswers
from sequences.plant_clock import PlantClock
from sequences.steps import StepTimeout, wait_for

# Poll periods for a simulated line running faster than real time: a wait for a fresh reading costs
# a poll, and at 1000x a 1 s poll is 17 plant minutes. The simulator's ptys are not baud-paced.
SIMULATED_LINE_PERIODS_S = {Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.2}
FIRST_READINGS_TIMEOUT_S = 60.0
LineFactory = Callable[[], AbstractAsyncContextManager[LineConfig]]


class ProgressBoard:
    """Draws job and queue progress; `tty` redraws one line, otherwise one line per change."""

    def __init__(self, out: TextIO, *, tty: bool, clock: PlantClock) -> None:
        self.out = out
        self.tty = tty
        self.clock = clock
        self._last_key: tuple[str, int, str] | None = None
        self._started_plant_s = self.clock.now_s()

    def start(self, batch: BatchRow, jobs: list[JobRow], resumed: bool) -> None:
        done = sum(j.finished for j in jobs)
        verb = (
            f"resuming batch {batch.id} ({done} of {len(jobs)} jobs already finished)"
            if resumed
            else (f"batch {batch.id}: {len(jobs)} jobs")
        )
        print(f"depline batch: {verb} from {batch.queue_path}", file=self.out, flush=True)

    def update(self, p: Progress, position: int, total: int) -> None:
        key = (p.job.id, p.phase_index, p.state.value)
        if key == self._last_key and not self.tty:
            return
        self._last_key = key
        plant_h = (self.clock.now_s() - self._started_plant_s) / 3600.0
        line = progress_line(position, total, p.fraction, p.state.value, p.title, plant_h)
        if self.tty:
            print(f"\r\033[K{line}", end="", file=self.out, flush=True)
        else:
            print(line, file=self.out, flush=True)

    def job_end(self, job: JobRow, outcome: JobOutcome) -> None:
        if self.tty:
            print(file=self.out)
        line = job_end_line(job.position, job.id, job.name, outcome.outcome, outcome.message)
        print(line, file=self.out, flush=True)


def summary_lines(
    result: BatchResult, exposures: dict[str, ExposureRecord | None], clock: PlantClock
) -> list[str]:
    jobs = [
        JobLine(
            job.position,
            job.id,
            job.name,
            job.outcome,
            None
            if job.started_at is None or job.ended_at is None
            else clock.plant_s(job.ended_at - job.started_at) / 3600.0,
            job.message,
        )
        for job in result.jobs
    ]
    records = [(job.items.base, exposure_line(exposures.get(job.items.base))) for job in result.jobs]
    return report_lines(result.batch.id, result.status, result.resumed, jobs, records)


@contextlib.contextmanager
def _stop_on_signals(host: BatchHost) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, host.stop_if_running)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_batch(
    config: LineConfig,
    queue: BatchQueue,
    line: LineFactory,
    *,
    clock: PlantClock,
    desk: OperatorDesk,
    out: TextIO = sys.stdout,
    terminal: bool = False,
    user: str = "batch",
    api_listener: socket.socket | None = None,
    plan: PollPlan | None = None,
) -> BatchResult:
    """Run (or resume) the queue on the line `line()` yields; returns the result after the summary.

    `plan` None polls at the plant's default periods; `simulated_plan` suits a fast simulated line.

    With `api_listener` the HMI's JSON API and WebSocket are served on it while the batch runs."""
    spill = await asyncio.to_thread(prepare_data_dirs, config)
    board = ProgressBoard(out, tty=out.isatty(), clock=clock)
    async with line() as controlled:
        ctl = LineController(controlled, plan=plan)
        recorder = Recorder(ctl, url=config.database.url, spill_dir=spill, user=user)
        await recorder.start()
        status = "incomplete"
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(ctl)
                host = await stack.enter_async_context(
                    BatchHost(
                        ctl,
                        config.database.url,
                        clock=clock,
                        desk=desk,
                        on_start=board.start,
                        on_progress=board.update,
                        on_job_end=board.job_end,
                        durable=recorder.historian.flush,
                    )
                )
                if api_listener is not None:
                    service = await stack.enter_async_context(
                        ControllerService(ctl, historian=recorder.historian, desk=desk, batches=host)
                    )
                    http = await stack.enter_async_context(HttpServer(service.app, api_listener))
                    print(
                        f"depline: the line's API is at {http.url} while the batch runs", file=out, flush=True
                    )
                await _first_readings(ctl)
                freeze_startup_objects()
                answers = TerminalAnswers(desk) if terminal else contextlib.nullcontext()
                with _stop_on_signals(host), answers:
                    result = await host.run(queue, user)
                status = "complete"
        finally:
            await recorder.stop(status)
    exposures = await _exposures(config, result)
    for text in summary_lines(result, exposures, clock):
        print(text, file=out)
    if result.status == "stopped":
        print(f"\nstopped; run the same command again to resume batch {result.batch.id}", file=out)
    return result


async def _first_readings(ctl: LineController) -> None:
    """Every space read and the supervisor armed (a restart's safe states applied) before any job."""
    spaces = [s.name for s in ctl.config.spaces]
    try:
        await wait_for(
            ctl.gate,
            lambda s: all(s.spaces[n].pressure_pa is not None for n in spaces) and ctl.supervisor.armed,
            FIRST_READINGS_TIMEOUT_S,
            "first pressure readings of every space and the supervisor armed",
        )
    except StepTimeout as exc:
        raise UserError(f"the line does not answer: {exc}") from None


async def _exposures(config: LineConfig, result: BatchResult) -> dict[str, ExposureRecord | None]:
    from controller.historian.store import Historian

    async with Historian.reader(config.database.url, line=config.name) as historian:
        return {job.items.base: await historian.exposure_record(job.items.base) for job in result.jobs}


def simulated_plan(config: LineConfig) -> PollPlan:
    return PollPlan.for_line(config, periods_s=SIMULATED_LINE_PERIODS_S)
