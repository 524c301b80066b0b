"""One-button manual operations on an antechamber, run in the background for the operator HMI.

"Cycle" (pump/purge with the inert gas), "Fill" (back-fill to room pressure) and "Pump down" (evacuate
to the purge pressure and hold there with the rough valve closed) are what an operator otherwise does
valve by valve before opening a space to the glovebox. Each runs as a supervised task that acts only
through the command gate, in the name of the person who pressed the button, so the gate's record says
who did what and the interlocks judge every step exactly as they judge a hand-sent command.

However an operation ends other than "done" (a refusal, a fault, a timeout, a cancel), the space is
put in its safe state (`make_safe`: valves shut, never vented) before the operation is reported
ended: an operator who reads "cancelled" or "failed" can trust the valves are closed.

Time-outs are plant seconds from the line's `SequenceConfig`, converted with the `PlantClock`, so the
simulated line running faster than real time does not turn "30 min of pumping" into a wall-clock wait.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, cast, get_args

from controller.errors import ControllerError
from controller.line.actions import SetPump, SetValve
from controller.line.controller import LineController
from controller.line.state import LineState
from drivers.errors import DriverError
from sequences.plant_clock import PlantClock
from sequences.safe_state import make_safe
from sequences.step_budget import POLL_FLOOR_S
from sequences.steps import StepFailed, pressure_pa, pump_purge, submit, wait_for

log = logging.getLogger(__name__)

OperationKind = Literal["cycle", "fill", "pump_down"]
OperationState = Literal["running", "done", "failed", "cancelled"]
KINDS: Final = get_args(OperationKind)
MAX_CYCLES: Final = 10
KEEP_FINISHED: Final = 20  # ended operations kept for the HMI: enough to see what just happened
CANCEL_WAIT_S: Final = 45.0  # wall seconds a cancel waits for the safe state (make_safe bounds itself to 30)
PURGE_SETTLE_WALL_S: Final = 1.0  # a purge's settling before its atmosphere is judged: a poll or two
_LABELS: Final = {"cycle": "cycle", "fill": "fill with gas", "pump_down": "pump down"}


class OperationRefused(ControllerError):
    """A manual operation may not start (or be cancelled) now; the message says why, for the operator."""


class UnknownSpace(OperationRefused):
    """The space named is not one of this line's."""


@dataclass(frozen=True, slots=True)
class OperationView:
    id: str
    space: str
    kind: str
    user: str
    state: str  # "running", "done", "failed", "cancelled"
    step: str  # what it does now, e.g. "cycle 2 of 3: back-filling"
    fraction: float  # 0..1, an estimate from the pressure
    message: str  # why it failed or was cancelled, or what it left behind when done
    started_at: float  # epoch seconds
    ended_at: float | None
    cycles: int | None = None


@dataclass(slots=True)
class _Operation:
    id: str
    space: str
    kind: OperationKind
    user: str
    cycles: int | None
    started_at: float
    state: OperationState = "running"
    step: str = "starting"
    cycle: int = 0  # the cycle under way (cycle operations)
    fraction: float = 0.0
    message: str = ""
    ended_at: float | None = None
    cancelled_by: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class SpaceOperations:
    """The manual operations this controller process runs, at most one per antechamber.

    `busy()` answers why manual operations must wait (the service wires "a batch job is running"), or
    None when they may start.
    """

    def __init__(
        self,
        ctl: LineController,
        clock: PlantClock,
        *,
        busy: Callable[[], str | None] = lambda: None,
        keep_finished: int = KEEP_FINISHED,
    ) -> None:
        self.ctl = ctl
        self.clock = clock
        self.busy = busy
        self.sequence = ctl.config.sequence
        self.spaces: tuple[str, ...] = tuple(ctl.config.spaces_of_kind("antechamber"))
        self._running: dict[str, _Operation] = {}
        self._ended: collections.deque[_Operation] = collections.deque(maxlen=keep_finished)
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def default_cycles(self) -> int:
        return min(MAX_CYCLES, max(1, self.sequence.purge_cycles))

    # -- the operator's buttons -------------------------------------------------------------------

    def start(self, space: str, kind: str, user: str, *, cycles: int | None = None) -> OperationView:
        """Start `kind` on `space` in the background; raises `OperationRefused` when it may not start."""
        self._check_space(space)
        if kind not in KINDS:
            raise OperationRefused(f"unknown operation {kind!r}: one of {', '.join(KINDS)}")
        if self._closed:
            raise OperationRefused("the controller is shutting down: no operation starts")
        reason = self.busy()
        if reason:
            raise OperationRefused(reason)
        running = self._running.get(space)
        if running is not None:
            raise OperationRefused(
                f"{space} already runs {_LABELS[running.kind]} (started by {running.user}): cancel it first"
            )
        if kind == "cycle":
            cycles = self.default_cycles if cycles is None else cycles
            if not 1 <= cycles <= MAX_CYCLES:
                raise OperationRefused(f"cycles must be 1 to {MAX_CYCLES}, got {cycles}")
        else:
            cycles = None
        op = _Operation(f"op{next(self._ids)}", space, cast(OperationKind, kind), user, cycles, time.time())
        op.task = asyncio.create_task(self._run(op), name=f"operation-{op.id}-{space}-{kind}")
        self._running[space] = op
        log.info("operation started", extra={"operation": op.id, "space": space, "kind": kind, "user": user})
        return self._view(op)

    async def cancel(self, space: str, user: str) -> OperationView:
        """Cancel the operation running on `space`; returns once the space is in its safe state."""
        self._check_space(space)
        op = self._running.get(space)
        if op is None or op.task is None:
            raise OperationRefused(f"nothing runs on {space}: nothing to cancel")
        if op.cancelled_by is None:
            op.cancelled_by = user
            op.step = "cancelling: closing valves"
            op.task.cancel()
            log.warning("operation cancel", extra={"operation": op.id, "space": space, "user": user})
        await asyncio.wait({op.task}, timeout=CANCEL_WAIT_S)  # never cancels the task on our own cancel
        return self._view(op)

    def running_reason(self) -> str | None:
        """Why a batch must not start now (a manual operation owns a space), or None."""
        if not self._running:
            return None
        what = ", ".join(f"{_LABELS[op.kind]} on {op.space} by {op.user}" for op in self._running.values())
        return f"a manual operation runs ({what}): wait for it or cancel it"

    def views(self) -> list[OperationView]:
        """Running operations first, then the ended ones, newest first."""
        running = sorted(self._running.values(), key=lambda o: o.started_at)
        ended = sorted(self._ended, key=lambda o: o.ended_at or 0.0, reverse=True)
        return [self._view(op) for op in [*running, *ended]]

    async def close(self) -> None:
        """Cancel every operation and wait for each space's safe state (the service's shutdown)."""
        self._closed = True
        tasks = []
        for op in list(self._running.values()):
            if op.task is not None:
                op.cancelled_by = op.cancelled_by or "shutdown"
                op.task.cancel()
                tasks.append(op.task)
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)

    async def aclose(self) -> None:
        """`close`, under the name `contextlib.aclosing` calls."""
        await self.close()

    # -- supervision ------------------------------------------------------------------------------

    def _check_space(self, space: str) -> None:
        kinds = {s.name: s.kind for s in self.ctl.config.spaces}
        if space not in kinds:
            raise UnknownSpace(f"no space {space!r} on line {self.ctl.config.name!r}")
        if space not in self.spaces:
            raise OperationRefused(
                f"{space} is a {kinds[space].replace('_', ' ')}: manual cycle, fill and pump-down are for "
                "antechambers only"
            )

    async def _run(self, op: _Operation) -> None:
        """The operation's task: nothing escapes it; whatever happens it ends recorded, the space safe."""
        state: OperationState = "done"
        try:
            await self._procedure(op)
        except asyncio.CancelledError:
            state, op.message = "cancelled", f"cancelled by {op.cancelled_by or 'the controller'}"
        except StepFailed as exc:
            state, op.message = "failed", _failure_text(op.step, exc)
        except (ControllerError, DriverError) as exc:
            state, op.message = "failed", f"{op.step}: {exc}"
        except Exception as exc:  # a bug must still end the operation with the space made safe
            log.exception("operation crashed", extra={"operation": op.id, "space": op.space})
            state, op.message = "failed", f"{op.step}: internal error {exc!r}"
        if state != "done":
            await self._make_safe(op, state)
        self._finish(op, state)

    async def _make_safe(self, op: _Operation, state: OperationState) -> None:
        who = op.cancelled_by if state == "cancelled" and op.cancelled_by != "shutdown" else op.user
        op.step = "making the space safe"
        try:
            records = await make_safe(self.ctl.gate, op.space, user=who or op.user)
        except asyncio.CancelledError:  # make_safe finished its commands before re-raising
            records = []
        except Exception:
            log.exception("make safe failed", extra={"operation": op.id, "space": op.space})
            op.message += "; the safe state could not be commanded: check the valves"
            return
        bad = [r for r in records if r.outcome != "done"]
        if bad:
            op.message += f"; {len(bad)} safe-state command(s) not done: check the valves"
        else:
            op.message += f"; {op.space} in its safe state (valves closed)"

    def _finish(self, op: _Operation, state: OperationState) -> None:
        op.state, op.ended_at = state, time.time()
        if state == "done":
            op.fraction = 1.0
        op.step = {"done": "done", "failed": "FAILED", "cancelled": "cancelled"}.get(state, op.step)
        if self._running.get(op.space) is op:
            del self._running[op.space]
        self._ended.append(op)
        level = logging.INFO if state == "done" else logging.WARNING
        log.log(level, "operation ended", extra={"operation": op.id, "state": state, "detail": op.message})

    # -- the procedures -----------------------------------------------------------------------------

    async def _until(self, condition: Callable[[LineState], bool], what: str) -> LineState:
        return await wait_for(self.ctl.gate, condition, self._timeout_s(), what, clock=self.clock)

    def _timeout_s(self) -> float:
        """Plant seconds: the step timeout plus the poll floor."""
        return self.sequence.step_timeout_s + self.clock.plant_s(POLL_FLOOR_S)

    async def _procedure(self, op: _Operation) -> None:
        if op.kind == "cycle":
            await self._cycle(op)
        elif op.kind == "fill":
            await self._fill(op)
        else:
            await self._pump_down(op)

    async def _isolate(self, op: _Operation, reason: str) -> None:
        """Close every valve of the space that is (or may be) open, so the next one may open."""
        valves = self.ctl.gate.state().spaces[op.space].valves
        for name in ("vent", "gas_fill", "rough"):
            if name in valves and valves[name].maybe_open:
                await submit(self.ctl.gate, SetValve(op.space, name, False), op.user, reason)

    async def _cycle(self, op: _Operation) -> None:
        cycles = op.cycles or self.default_cycles
        op.step = "closing valves"
        await self._isolate(op, "cycle: start from closed valves")
        last = ""
        for cycle in range(1, cycles + 1):
            op.cycle = cycle
            op.step = f"cycle {cycle} of {cycles}"
            report = await pump_purge(
                self.ctl.gate,
                op.space,
                cycles=1,
                evacuate_to_pa=self.sequence.purge_evacuate_to_pa,
                timeout_s=self._timeout_s(),
                user=op.user,
                settle_s=self.clock.plant_s(PURGE_SETTLE_WALL_S),
                clock=self.clock,
            )
            last = report[-1].atmosphere.replace("_", " ")
        op.message = f"{cycles} cycle{'s' if cycles > 1 else ''} done; atmosphere {last}"

    async def _fill(self, op: _Operation) -> None:
        gate, space = self.ctl.gate, op.space
        room_pa = gate.state().limits.room_pressure_pa
        op.step = "closing valves"
        await self._isolate(op, "fill: only the fill valve may open")
        op.step = "back-filling"
        await submit(gate, SetValve(space, "gas_fill", True), op.user, f"fill {space} to {room_pa:g} Pa")
        state = await self._until(lambda s: pressure_pa(s, space) >= room_pa, f"{space} back-fill")
        op.step = "closing the fill valve"
        await submit(gate, SetValve(space, "gas_fill", False), op.user, "fill: done")
        op.message = f"filled to {pressure_pa(state, space):.0f} Pa"

    async def _pump_down(self, op: _Operation) -> None:
        gate, space = self.ctl.gate, op.space
        target_pa = self.sequence.purge_evacuate_to_pa
        op.step = "closing valves"
        await self._isolate(op, "pump down: start from closed valves")
        op.step = "starting the pump"
        await submit(gate, SetPump(space, True), op.user, "pump down: pump on")
        await self._until(lambda s: s.spaces[space].pump_running is True, f"{space} pump")
        op.step = "evacuating"
        await submit(gate, SetValve(space, "rough", True), op.user, f"pump down {space} to {target_pa:g} Pa")
        state = await self._until(lambda s: pressure_pa(s, space) <= target_pa, f"{space} evacuation")
        op.step = "closing the rough valve"
        await submit(gate, SetValve(space, "rough", False), op.user, "pump down: hold with the valve closed")
        op.message = f"evacuated to {pressure_pa(state, space):.3g} Pa; holding with the rough valve closed"

    # -- what the HMI shows ---------------------------------------------------------------------------

    def _view(self, op: _Operation) -> OperationView:
        step, fraction = op.step, op.fraction
        if op.state == "running" and op.cancelled_by is None:
            step, fraction = self._live_progress(op)
            op.fraction = fraction
        return OperationView(
            op.id,
            op.space,
            op.kind,
            op.user,
            op.state,
            step,
            max(0.0, min(1.0, fraction)),
            op.message,
            op.started_at,
            op.ended_at,
            op.cycles,
        )

    def _live_progress(self, op: _Operation) -> tuple[str, float]:
        """Step words and a fraction from what the gate sees now: the valves say which phase runs, the
        pressure how far along it is."""
        state = self.ctl.gate.state()
        space = state.spaces[op.space]
        p = pressure_pa(state, op.space)
        room_pa, target_pa = state.limits.room_pressure_pa, self.sequence.purge_evacuate_to_pa
        down = _log_share(room_pa, target_pa, p)
        up = 0.0 if math.isnan(p) else min(1.0, max(0.0, p / room_pa))
        rough = space.valves.get("rough")
        fill = space.valves.get("gas_fill")
        if op.kind == "cycle" and op.cycle > 0:
            cycles = op.cycles or 1
            if rough is not None and rough.commanded_open:
                phase, share = "evacuating", 0.5 * down
            elif fill is not None and fill.commanded_open:
                phase, share = "back-filling", 0.5 + 0.4 * up
            elif p < 0.5 * room_pa:
                phase, share = "evacuating", 0.5 * down
            else:  # near room pressure with the valves shut: before evacuating, or filled and settling
                filled = op.fraction * cycles - (op.cycle - 1) >= 0.4
                phase, share = ("settling", 0.95) if filled else ("starting", 0.0)
            return f"cycle {op.cycle} of {cycles}: {phase}", max(op.fraction, (op.cycle - 1 + share) / cycles)
        if op.kind == "fill" and op.step == "back-filling":
            return op.step, up
        if op.kind == "pump_down" and op.step == "evacuating":
            return op.step, down
        return op.step, op.fraction


def _log_share(start_pa: float, target_pa: float, p: float) -> float:
    """How far from `start_pa` to `target_pa` a pump-down is, on the log scale a gauge reads."""
    if math.isnan(p) or p <= 0.0:
        return 0.0
    if p <= target_pa:
        return 1.0
    return max(0.0, min(1.0, math.log(start_pa / p) / math.log(start_pa / target_pa)))


def _failure_text(step: str, exc: StepFailed) -> str:
    record = exc.record
    if record.outcome == "refused":
        return f"{step}: REFUSED by the gate: {record.verdict.reason}"
    return f"{step}: command failed: {record.error}"
