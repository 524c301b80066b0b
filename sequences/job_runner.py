"""Runs one production job through its phases under the PackML run states, checkpointing each phase.

One task drives everything (the phases, the state machine, the checkpoints); requests from outside
(stop, a safety trip seen on the gate) only set flags and cancel the running phase, so no transition
ever races another.

- A phase's start and end are written to the batch store *before* the runner goes on, so after a
  kill -9 the job resumes at the phase that was running: again from its start if it is repeatable,
  otherwise the electrode is rejected (it is unloaded, and its record says why).
- Decisions are durable and monotone (`sequences.job_record`): a rejection, a fault and an abort are
  written into the job's events before the runner acts on them, and a resume reads them back before
  it looks at the checkpoint. A rejected job goes on along its reject path — whose phases have names
  of their own, rebuilt from where the electrode was when it was rejected — and ends REJECTED at
  best, never DONE. A checkpoint that is not in the plan that must have written it is not guessed
  at: the line is made safe and the job stops for a person (it never restarts from `load`).
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
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from controller.errors import ControllerError
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.state import LineState
from drivers.errors import DriverError
from sequences.batch_store import BatchStore, JobItems, JobRow
from sequences.job_context import JobContext, Phase
from sequences.job_operations import electrode_space
from sequences.job_plans import plan, reject_plan
from sequences.job_record import DECISION_KINDS, Decisions, decisions, worst
from sequences.line_route import Route, route_of
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.production import recover_partial_layer, restore_inert
from sequences.recipe import parse_recipe
from sequences.run_state import RunState, RunStateMachine
from sequences.safe_state import make_safe

log = logging.getLogger(__name__)

GAS_SUPPLY_LOW = 5  # glovebox controller fault code (drivers.glovebox_controller.GloveboxFault)
SUSPEND_POLL_S = 0.2
MAX_SUSPEND_S = 4 * 3600.0  # plant seconds suspended before it becomes a fault that needs a person
HOLD_RECHECK_S = 5.0  # a held run re-reads its flags at least this often (wall s), even unwoken
PHASE_FAILURES = (ControllerError, DriverError, TimeoutError, OSError)
RecordsDurable = Callable[[], Awaitable[bool]]  # True once every line record so far is on disk
# each wait is the historian's flush (10 s by default): a database slower than this for a minute is a
# fault that holds the job, not a crash of the batch (seen on a machine loaded 7x over its cores)
DURABLE_ATTEMPTS = 6


class RecordsNotDurable(ControllerError):
    """The historian could not confirm the line's records before a checkpoint: the checkpoint waits."""


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
    # "done", "rejected" (taken out, not good), "failed", "aborted", "stopped" (unfinished;
    # resumable), "held" (waiting for the failure policy)
    outcome: str
    message: str
    needs_person: bool = False  # the job cannot go on by itself: the queue stops here


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
        durable: RecordsDurable | None = None,
    ) -> None:
        self.ctl = ctl
        self.durable = durable
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
        self.phases = plan(self.recipe, ctl.config)
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
        self._decision_events: list[dict[str, Any]] = []  # the record's rejections, faults, aborts

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

    async def note(self, kind: str, detail: dict[str, Any]) -> None:
        """Put something that happened around the job on its record (e.g. manual changes while held)."""
        await self._record(kind, detail)

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

    @property
    def decided(self) -> Decisions:
        return decisions(self._decision_events)

    async def _run(self) -> JobOutcome:
        job = self.job
        await self.store.update_job(
            job.id, attempts=job.attempts + 1, started_at=job.started_at or time.time()
        )
        # what the flight recorder needs to state plant hours: the speed the plant ran at this attempt
        await self._record("attempt", {"n": job.attempts + 1, "plant_speed": self.clock.speed})
        events = await self.store.events(job.id)
        self._decision_events = [e for e in events if e["kind"] in DECISION_KINDS]
        self.ctx.carried_confirmations = confirmations_since_checkpoint(events)
        self.machine.fire("start")
        self.machine.fire("sc")
        decided = self.decided
        if decided.any:
            return await self._resume_decided(decided)
        checkpoint = checkpoint_in(self.phases, self.job.checkpoint)
        if checkpoint is None:
            return await self._needs_person(
                f"checkpoint {self.job.checkpoint!r} is not in this job's plan: where the job stands is "
                "not known, so nothing is repeated or skipped"
            )
        start, spoiled = checkpoint
        if spoiled:
            if spoiled.startswith("deposit_"):
                await recover_partial_layer(self.ctx, events, spoiled, self.store.last_sample)
            self.message = f"interrupted during {spoiled}, which cannot be repeated: electrode rejected"
            await self._decide_reject({"phase": spoiled, "why": self.message})
            return await self._reject()
        outcome = await self._run_phases(self.phases, start)
        if outcome is not None:
            return outcome
        self.machine.fire("complete")
        self.machine.fire("sc")
        return await self._finish("done", "complete")

    async def _resume_decided(self, decided: Decisions) -> JobOutcome:
        """Go on from the decisions an earlier attempt took (and wrote down) before it ended."""
        if decided.aborted is not None:
            return await self._abort(decided.aborted, recorded=True)
        if decided.fault is not None:
            fault = decided.fault
            self.message = f"{fault.get('phase', '?')} failed: {fault.get('error', '?')}"
            if decided.rejected is not None:  # the reject path itself failed: that needs a person
                return await self._needs_person(f"the reject path failed ({self.message})")
            self.machine.fire("hold")  # held on the fault when the process ended: still held
            await self._make_line_safe(f"resumed held: {self.message}")
            self.machine.fire("sc")
            return JobOutcome("held", self.message)
        return await self._reject()

    async def _run_phases(self, phases: list[Phase], start: int) -> JobOutcome | None:
        total = sum(p.estimate_s for p in phases) or 1.0
        for index in range(start, len(phases)):
            phase = phases[index]
            done_s = sum(p.estimate_s for p in phases[:index])
            self._progress(index, len(phases), phase.title, done_s / total)
            ended = await self._before_phase(phase)
            if ended is not None:
                return ended
            try:
                await self._checkpoint(phase, "started")
            except RecordsNotDurable as exc:
                return await self._after_failure(phase, exc)
            failure = await self._run_phase(phase)
            if failure is None:
                try:
                    await self._checkpoint(phase, "done")
                except RecordsNotDurable as exc:
                    failure = exc
            if failure is not None:
                return await self._after_failure(phase, failure)
        self._progress(len(phases), len(phases), "done", 1.0)
        return None

    async def _checkpoint(self, phase: Phase, status: str) -> None:
        """The checkpoint goes on disk only after what the line recorded before it (a move, a seal):
        a resume must never find a phase done whose item moves the inventory has lost."""
        await self._wait_durable(phase, status)
        await self.store.update_job(self.job.id, checkpoint=f"{phase.name}:{status}")
        await self._record("checkpoint", {"phase": phase.name, "status": status})

    async def _wait_durable(self, phase: Phase, status: str) -> None:
        if self.durable is None:
            return
        for attempt in range(1, DURABLE_ATTEMPTS + 1):
            if await self.durable():
                return
            log.warning(
                "records not yet on disk before a checkpoint: waiting",
                extra={"job": self.job.id, "phase": phase.name, "status": status, "attempt": attempt},
            )
        # a database this slow for this long is a fault: the job holds with the line safe
        raise RecordsNotDurable(
            f"the historian did not confirm the records before {phase.name}:{status} "
            f"({DURABLE_ATTEMPTS} waits)"
        )

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
        if self._stop.is_set() or self._trip is not None:
            self._phase_task.cancel()  # asked for while its checkpoint was being written: not after it
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

    async def unhold_and_reject(self, cause: dict[str, Any] | None = None) -> JobOutcome:
        """The "skip" policy: leave HELD and take the electrode out of the line as a reject. Nobody
        released the hold, so the record says it was automatic, by which policy and for what cause."""
        self.ctl.gate.subscribe(self._on_gate)
        try:
            self.machine.fire("unhold")
            await self._record("unhold", {"by": None, "automatic": True, "policy": "skip", "cause": cause})
            self.machine.fire("sc")
            await self._decide_reject({"why": self.message, "after": "fault", "policy": "skip"})
            return await self._reject()
        finally:
            self.ctl.gate.unsubscribe(self._on_gate)
            await self._flush_states()

    async def stop_held(self) -> JobOutcome:
        """The "stop" policy: the line stays safe, the electrode stays where it is, the queue ends."""
        outcome = await self._stop_run(self.message or "stopped", outcome="failed")
        await self._flush_states()
        return outcome

    async def _decide_reject(self, detail: dict[str, Any]) -> None:
        """Write the rejection down, with where the electrode is, before the first step out (an
        inventory that cannot place it is written down too: the reject path then says why it stops)."""
        try:
            where: dict[str, Any] = {"from": electrode_space(self.ctx)}
        except PHASE_FAILURES as exc:
            where = {"from_unknown": str(exc)}
        await self._record("rejected", {**detail, **where})

    async def _reject(self) -> JobOutcome:
        """Take the rejected electrode out along the plan its rejection chose, from its checkpoint."""
        rejected = self.decided.rejected or {}
        reason = str(rejected.get("why") or self.message or "rejected")
        try:
            where = rejected["from"] if "from" in rejected else electrode_space(self.ctx)  # older records
        except PHASE_FAILURES as exc:  # no way out can be planned (an inventory that does not add up)
            self.message = f"{reason}; the reject path cannot be planned: {exc}"
            self.machine.fire("hold")
            self.machine.fire("sc")
            return JobOutcome("held", self.message)  # the batch stops the queue: a person decides
        phases = reject_plan(self.route, None if where is None else str(where))
        checkpoint = checkpoint_in(phases, self.job.checkpoint, own_prefix="reject_")
        if checkpoint is None:
            return await self._needs_person(
                f"rejected, but checkpoint {self.job.checkpoint!r} is not on its reject path from {where}"
            )
        self.message = reason
        outcome = await self._run_phases(phases, checkpoint[0])
        if outcome is not None:
            return outcome
        self.message = reason
        self.machine.fire("complete")
        self.machine.fire("sc")
        return await self._finish("rejected", reason)

    async def _needs_person(self, why: str) -> JobOutcome:
        """Stop safe and leave the decision to a person: the queue ends here."""
        self.message = why
        log.error("job needs a person", extra={"job": self.job.id, "why": why})
        await self._record("person_needed", {"why": why, "checkpoint": self.job.checkpoint})
        outcome = await self._stop_run(why, outcome="failed")
        return dataclasses.replace(outcome, needs_person=True)

    # -- end states ---------------------------------------------------------------------------------

    async def _stop_run(self, why: str, *, outcome: str = "stopped") -> JobOutcome:
        self.machine.fire("stop")
        await self._make_line_safe(why)
        self.machine.fire("sc")
        if outcome == "stopped":  # unfinished: the checkpoint stays, a restart resumes from it
            await self._flush_states()
            return JobOutcome("stopped", why)
        return await self._finish(outcome, why)

    async def _abort(self, why: str, *, recorded: bool = False) -> JobOutcome:
        self.message = why
        if self.machine.current not in (RunState.ABORTING, RunState.ABORTED):
            self.machine.fire("abort")
        await self._make_line_safe(why)
        await restore_inert(self.ctx, why)  # an unsealed item is not left in a space out of spec
        self.machine.fire("sc")
        if not recorded:
            await self._record("abort", {"why": why})
        return await self._finish("aborted", why)

    async def _finish(self, outcome: str, message: str) -> JobOutcome:
        """End the job: never better than the worst decision on its record."""
        outcome = worst(outcome, self.decided.floor)
        await self._flush_states()
        await self.store.update_job(self.job.id, outcome=outcome, message=message, ended_at=time.time())
        return JobOutcome(outcome, message)

    async def _make_line_safe(self, why: str) -> None:
        """Every station of the route to its safe state; cancelling the caller cannot cut this short."""
        spaces = list(self.route.spaces)
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
        started = self.clock.now_s()
        while not self._stop.is_set() and self._trip is None:
            if self._conditions():
                clear_since = None
            elif clear_since is None:
                clear_since = self.clock.now_s()
            elif self.clock.now_s() - clear_since >= settle_s:
                break
            if self.clock.now_s() - started > MAX_SUSPEND_S:
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
        plain = json.loads(json.dumps(detail, default=str))
        await self.store.add_event(self.job.id, kind, plain)
        if kind in DECISION_KINDS:  # on disk first, then acted on
            self._decision_events.append({"kind": kind, "detail": plain})

    def _progress(self, index: int, phases: int, title: str, fraction: float) -> None:
        self._last_progress = (index, phases, title, fraction)
        if self.on_progress is not None:
            self.on_progress(Progress(self.job, index, phases, title, fraction, self.machine.current))

    def _progress_state(self, state: RunState) -> None:
        last = self._last_progress
        if self.on_progress is not None and last is not None:
            index, phases, title, fraction = last
            self.on_progress(Progress(self.job, index, phases, title, fraction, state))


def checkpoint_in(
    phases: list[Phase], checkpoint: str, *, own_prefix: str = ""
) -> tuple[int, str | None] | None:
    """Where to (re)start in `phases` from a job's checkpoint ("name:started" or "name:done").

    (index, the spoiled non-repeatable phase or None), or None when the checkpoint must have been
    written by this plan (no checkpoint yet, or one of the other plan's names when `own_prefix` marks
    this plan's) but is not in it: then where the job stands is unknown. A checkpoint of the normal
    plan seen by the reject path is where the job was when it was rejected: the path starts at 0.
    """
    name, _, status = checkpoint.partition(":")
    if not name or (own_prefix and not name.startswith(own_prefix)):
        return 0, None
    names = [p.name for p in phases]
    if name not in names:
        return None
    index = names.index(name)
    if status == "done":
        return index + 1, None
    return (index, None) if phases[index].repeatable else (index, name)


def confirmations_since_checkpoint(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The confirmations an interrupted attempt recorded after its last checkpoint, by prompt key:
    given inside the phase that will now run again."""
    last = max((i for i, e in enumerate(events) if e["kind"] == "checkpoint"), default=-1)
    return {
        str(e["detail"]["key"]): e["detail"]
        for e in events[last + 1 :]
        if e["kind"] == "confirm" and isinstance(e["detail"], dict) and "key" in e["detail"]
    }
