"""Runs one production job through its phases under the PackML run states, checkpointing each phase.

One task drives everything (the phases, the state machine, the checkpoints); requests from outside
(stop, a safety trip seen on the gate) only set flags and cancel the running phase, so no transition
ever races another.

- A phase's start and end are written to the batch store *before* the runner goes on, so after a
  kill -9 the job resumes at the phase that was running: again from its start if it is repeatable,
  otherwise the electrode is rejected (it is unloaded, and its record says why).
- A failing phase holds the run: the line is made safe (`make_safe` on every station of the route)
  and the run waits in HELD for a decision — `unhold_and_reject` (the "skip" policy: unload the
  electrode through its reject path) or `stop`.
- Before each phase the external conditions are checked; while one holds the run is SUSPENDED, and
  it resumes by itself once they have stayed clear for the configured settle time.
- A command the supervisor's interlock forced on the line during the run is a safety trip: ABORTED.
- An operator's HOLD takes effect at the next phase boundary (a layer or an anneal cannot be paused
  halfway; between phases every step has switched off what it energised, so the line is quiescent)
  and waits in HELD, without a time limit, for resume, stop or abort. An operator's ABORT is a trip:
  it cancels the running phase at once and makes the route safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.errors import ControllerError
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.state import LineState
from drivers.errors import DriverError
from sequences.batch_store import BatchStore, JobItems, JobRow
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.production import JobContext, Phase, Route, plan, reject_plan, route_of
from sequences.recipe import parse_recipe
from sequences.run_state import RunState, RunStateMachine
from sequences.safe_state import make_safe

log = logging.getLogger(__name__)

GAS_SUPPLY_LOW = 5  # glovebox controller fault code (drivers.glovebox_controller.GloveboxFault)
SUSPEND_POLL_S = 0.2
MAX_SUSPEND_S = 4 * 3600.0  # plant seconds suspended before it becomes a fault that needs a person
HOLD_RECHECK_S = 5.0  # a held run re-reads its flags at least this often (wall s), even unwoken
PHASE_FAILURES = (ControllerError, DriverError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Progress:
    job: JobRow
    phase_index: int  # phases done
    phases: int
    title: str
    fraction: float  # of the job's estimated plant time
    state: RunState


@dataclass(frozen=True, slots=True)
class JobOutcome:
    outcome: str  # "done", "failed", "aborted", "stopped" (unfinished; resumable), "held"
    message: str


class StopRequested(Exception):
    """Internal: the phase was cancelled because an orderly stop was asked for."""


def external_conditions(
    state: LineState, snapshot: dict[tuple[str, str], Any], glovebox_devices: list[str]
) -> list[str]:
    """What outside the run keeps it from going on (not a fault of the run: it waits, suspended)."""
    found = []
    for device in glovebox_devices:
        reading = snapshot.get((device, "fault"))  # the glovebox driver polls fault_code as "fault"
        if reading is not None and int(reading.value) == GAS_SUPPLY_LOW:
            found.append(f"{device}: gas supply low")
    return found


class JobRunner:
    def __init__(
        self,
        ctl: LineController,
        store: BatchStore,
        job: JobRow,
        *,
        clock: PlantClock,
        desk: OperatorDesk,
        user: str = "sequence",
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.ctl = ctl
        self.store = store
        self.job = job
        self.clock = clock
        self.desk = desk
        self.on_progress = on_progress
        self.recipe = parse_recipe(job.recipe_text, job.recipe_path)
        self.route: Route = route_of(ctl.config)
        self.ctx = JobContext(
            ctl,
            self.recipe,
            job.items,
            self.route,
            clock,
            desk,
            record=self._record,
            job_id=job.id,
            save_items=self._save_items,
            user=user,
        )
        self.machine = RunStateMachine()
        self.machine.listeners.append(self._on_state)
        self.phases = plan(self.recipe)
        self.message = ""
        self._pending_state: list[tuple[str, str, str]] = []
        self._last_progress: tuple[int, int, str, float] | None = None
        self._stop = asyncio.Event()
        self._hold_by: str | None = None  # an operator asked for a hold that has not been released
        self._release_by = ""
        self._wake = asyncio.Event()  # set on every outside request, so a held run re-reads the flags
        self._trip: str | None = None
        self._phase_task: asyncio.Task[None] | None = None
        self._gloveboxes = [d.name for d in ctl.config.devices if d.family == "glovebox_controller"]

    # -- outside requests ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._cancel_phase()

    def request_hold(self, user: str) -> None:
        """Hold at the next phase boundary (at once when between phases)."""
        self._hold_by = user
        self._wake.set()

    def request_unhold(self, user: str) -> None:
        """Release a hold; before it has taken effect this withdraws the request."""
        self._hold_by = None
        self._release_by = user
        self._wake.set()

    def request_abort(self, user: str) -> None:
        """The operator's emergency end: the running phase is cancelled and the route made safe."""
        if self._trip is None:
            self._trip = f"aborted by {user}"
        self._wake.set()
        self._cancel_phase()

    @property
    def hold_requested_by(self) -> str | None:
        return self._hold_by

    def _cancel_phase(self) -> None:
        if self._phase_task is not None and not self._phase_task.done():
            self._phase_task.cancel()

    def _trip_reason(self) -> str | None:
        return self._trip

    def _on_gate(self, record: GateRecord) -> None:
        if record.command.origin == "interlock" and record.outcome == "done" and self._trip is None:
            self._trip = f"interlock acted: {record.command.reason}"
            self._wake.set()
            self._cancel_phase()

    # -- the run ------------------------------------------------------------------------------------

    async def run(self) -> JobOutcome:
        """Run (or resume) the job to an end state; never raises for a fault of the line."""
        self.ctl.gate.subscribe(self._on_gate)
        try:
            return await self._run()
        finally:
            self.ctl.gate.unsubscribe(self._on_gate)
            await self._flush_states()

    async def _run(self) -> JobOutcome:
        job = self.job
        await self.store.update_job(
            job.id, attempts=job.attempts + 1, started_at=job.started_at or time.time()
        )
        self.machine.fire("start")
        start, spoiled = self._resume_point()
        self.machine.fire("sc")
        if spoiled:
            self.message = f"interrupted during {spoiled}, which cannot be repeated: electrode rejected"
            await self._record("rejected", {"phase": spoiled, "why": "interrupted, not repeatable"})
            return await self._reject()
        outcome = await self._run_phases(self.phases, start)
        if outcome is not None:
            return outcome
        self.machine.fire("complete")
        self.machine.fire("sc")
        return await self._finish("done", "complete")

    def _resume_point(self) -> tuple[int, str | None]:
        """Where to (re)start: (phase index, the spoiled non-repeatable phase or None)."""
        name, _, status = self.job.checkpoint.partition(":")
        if not name:
            return 0, None
        names = [p.name for p in self.phases]
        if name not in names:
            return 0, None
        index = names.index(name)
        if status == "done":
            return index + 1, None
        if self.phases[index].repeatable:
            return index, None
        return index, name

    async def _run_phases(self, phases: list[Phase], start: int) -> JobOutcome | None:
        total = sum(p.estimate_s for p in phases) or 1.0
        for index in range(start, len(phases)):
            phase = phases[index]
            done_s = sum(p.estimate_s for p in phases[:index])
            self._progress(index, len(phases), phase.title, done_s / total)
            ended = await self._before_phase(phase)
            if ended is not None:
                return ended
            await self.store.update_job(self.job.id, checkpoint=f"{phase.name}:started")
            await self._record("checkpoint", {"phase": phase.name, "status": "started"})
            failure = await self._run_phase(phase)
            if failure is not None:
                return await self._after_failure(phase, failure)
            await self.store.update_job(self.job.id, checkpoint=f"{phase.name}:done")
            await self._record("checkpoint", {"phase": phase.name, "status": "done"})
        self._progress(len(phases), len(phases), "done", 1.0)
        return None

    async def _before_phase(self, phase: Phase) -> JobOutcome | None:
        if self._trip is not None:
            return await self._abort(self._trip)
        if self._stop.is_set():
            return await self._stop_run("stop requested")
        verdict = await self._wait_out_conditions()
        trip = self._trip_reason()  # a method: the wait above may have seen a trip arrive
        if trip is not None:
            return await self._abort(trip)
        if verdict == "stop":
            return await self._stop_run("stop requested while suspended")
        if verdict == "hold":
            await self._record("fault", {"phase": phase.name, "error": self.message, "type": "Suspended"})
            self.machine.fire("hold")
            await self._make_line_safe(self.message)
            self.machine.fire("sc")
            return JobOutcome("held", self.message)
        if self._hold_by is not None:
            return await self._operator_hold(phase)
        return None

    async def _operator_hold(self, phase: Phase) -> JobOutcome | None:
        """HELD by an operator before `phase`: None once resumed, else the stop's or abort's outcome."""
        self.machine.fire("hold")
        await self._record("hold", {"by": self._hold_by, "before": phase.name})
        self.machine.fire("sc")
        await self._flush_states()  # HELD is visible in the job's row while it waits
        while self._hold_by is not None and not self._stop.is_set() and self._trip is None:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), HOLD_RECHECK_S)
        if self._trip is not None:
            return await self._abort(self._trip)
        if self._stop.is_set():
            return await self._stop_run(f"stopped while held before {phase.name}")
        self.machine.fire("unhold")
        await self._record("unhold", {"by": self._release_by, "before": phase.name})
        self.machine.fire("sc")
        return None

    async def _run_phase(self, phase: Phase) -> BaseException | None:
        self._phase_task = asyncio.create_task(phase.run(self.ctx), name=f"job:{self.job.id}:{phase.name}")
        try:
            await self._phase_task
        except asyncio.CancelledError:
            if self._trip is None and not self._stop.is_set():
                raise  # we are being cancelled ourselves
            return StopRequested(self._trip or "stop requested")
        except PHASE_FAILURES as exc:
            return exc
        finally:
            self._phase_task = None
        return None

    async def _after_failure(self, phase: Phase, failure: BaseException) -> JobOutcome:
        if self._trip is not None:
            return await self._abort(self._trip)
        if isinstance(failure, StopRequested):
            return await self._stop_run(f"stopped during {phase.name}")
        self.message = f"{phase.title} failed: {failure}"
        log.error("job phase failed", extra={"job": self.job.id, "phase": phase.name, "error": str(failure)})
        await self._record(
            "fault", {"phase": phase.name, "error": str(failure), "type": type(failure).__name__}
        )
        self.machine.fire("hold")
        await self._make_line_safe(f"hold: {phase.name} failed")
        self.machine.fire("sc")
        return JobOutcome("held", self.message)

    # -- decisions on a held run -----------------------------------------------------------------------

    async def unhold_and_reject(self) -> JobOutcome:
        """The "skip" policy: leave HELD and take the electrode out of the line as a reject."""
        self.ctl.gate.subscribe(self._on_gate)
        try:
            self.machine.fire("unhold")
            self.machine.fire("sc")
            return await self._reject()
        finally:
            self.ctl.gate.unsubscribe(self._on_gate)
            await self._flush_states()

    async def stop_held(self) -> JobOutcome:
        """The "stop" policy: the line stays safe, the electrode stays where it is, the queue ends."""
        outcome = await self._stop_run(self.message or "stopped", outcome="failed")
        await self._flush_states()
        return outcome

    async def _reject(self) -> JobOutcome:
        reason = self.message
        try:
            phases = reject_plan(self.ctx)
        except PHASE_FAILURES as exc:  # no way out can be planned (an inventory that does not add up)
            self.message = f"{reason}; the reject path cannot be planned: {exc}"
            self.machine.fire("hold")
            self.machine.fire("sc")
            return JobOutcome("held", self.message)  # the batch stops the queue: a person decides
        outcome = await self._run_phases(phases, 0)
        if outcome is not None:
            return outcome
        self.message = reason
        self.machine.fire("complete")
        self.machine.fire("sc")
        return await self._finish("failed", reason)

    # -- end states ---------------------------------------------------------------------------------

    async def _stop_run(self, why: str, *, outcome: str = "stopped") -> JobOutcome:
        self.machine.fire("stop")
        await self._make_line_safe(why)
        self.machine.fire("sc")
        if outcome == "stopped":  # unfinished: the checkpoint stays, a restart resumes from it
            await self._flush_states()
            return JobOutcome("stopped", why)
        return await self._finish(outcome, why)

    async def _abort(self, why: str) -> JobOutcome:
        self.message = why
        if self.machine.current not in (RunState.ABORTING, RunState.ABORTED):
            self.machine.fire("abort")
        await self._make_line_safe(why)
        self.machine.fire("sc")
        await self._record("abort", {"why": why})
        return await self._finish("aborted", why)

    async def _finish(self, outcome: str, message: str) -> JobOutcome:
        await self._flush_states()
        await self.store.update_job(self.job.id, outcome=outcome, message=message, ended_at=time.time())
        return JobOutcome(outcome, message)

    async def _make_line_safe(self, why: str) -> None:
        """Every station of the route to its safe state; cancelling the caller cannot cut this short."""
        spaces = list(dict.fromkeys([self.route.process, self.route.inlet, self.route.outlet]))
        for space in spaces:
            await make_safe(self.ctl.gate, space, user="sequence")
        await self._record("safe_state", {"why": why, "spaces": spaces})

    # -- suspension ---------------------------------------------------------------------------------

    async def _wait_out_conditions(self) -> str:
        """Suspend while an external condition holds: "go" on, "stop" (asked meanwhile) or "hold"
        (suspended longer than MAX_SUSPEND_S: then it needs a person)."""
        conditions = self._conditions()
        if not conditions:
            return "go"
        self.machine.fire("suspend")
        await self._record("suspended", {"conditions": conditions})
        self.machine.fire("sc")
        await self._flush_states()  # SUSPENDED is visible in the job's row while it waits
        settle_s = self.ctl.config.sequence.suspend_settle_s
        clear_since: float | None = None
        started = time.monotonic()
        while not self._stop.is_set() and self._trip is None:
            if self._conditions():
                clear_since = None
            elif clear_since is None:
                clear_since = time.monotonic()
            elif time.monotonic() - clear_since >= self.clock.wall_s(settle_s):
                break
            if time.monotonic() - started > self.clock.wall_s(MAX_SUSPEND_S):
                self.message = f"suspended longer than {MAX_SUSPEND_S:.0f} s: {', '.join(conditions)}"
                return "hold"
            await asyncio.sleep(SUSPEND_POLL_S)
        if self._stop.is_set() or self._trip is not None:
            return "stop"
        self.machine.fire("unsuspend")
        await self._record("unsuspended", {"settle_s": settle_s})
        self.machine.fire("sc")
        return "go"

    def _conditions(self) -> list[str]:
        gate = self.ctl.gate
        return external_conditions(gate.state(), gate.snapshot(), self._gloveboxes)

    # -- records ------------------------------------------------------------------------------------

    def _on_state(self, source: RunState, dest: RunState, trigger: str) -> None:
        self._pending_state.append((source.value, dest.value, trigger))
        log.info("run state", extra={"job": self.job.id, "from": source.value, "to": dest.value})
        self._progress_state(dest)

    async def _flush_states(self) -> None:
        pending, self._pending_state = self._pending_state, []
        for source, dest, trigger in pending:
            await self._record("state", {"from": source, "to": dest, "trigger": trigger})
        if pending:
            await self.store.update_job(self.job.id, state=pending[-1][1])

    async def _save_items(self, items: JobItems) -> None:
        await self.store.update_job(self.job.id, items=items.as_json())
        await self._record("items", {"targets": items.targets})

    async def _record(self, kind: str, detail: dict[str, Any]) -> None:
        if kind != "state":
            await self._flush_states()
        await self.store.add_event(self.job.id, kind, json.loads(json.dumps(detail, default=str)))

    def _progress(self, index: int, phases: int, title: str, fraction: float) -> None:
        self._last_progress = (index, phases, title, fraction)
        if self.on_progress is not None:
            self.on_progress(Progress(self.job, index, phases, title, fraction, self.machine.current))

    def _progress_state(self, state: RunState) -> None:
        last = self._last_progress
        if self.on_progress is not None and last is not None:
            index, phases, title, fraction = last
            self.on_progress(Progress(self.job, index, phases, title, fraction, state))
