"""The step library: procedures that operate the line through the command gate.

A step never drives hardware itself: it submits actions to the gate (which may refuse them) and
watches the line state the gate sees. A refused or failed command ends the step with `StepFailed`
naming the command and the gate's reason; a condition that does not arrive in time ends it with
`StepTimeout`; a process step the line cannot carry on with (a source went out, a supply is missing)
ends with `ProcessFault`. A wait's timeout is in the seconds of the clock it is given: wall seconds by
default (what a reply or a poll takes), plant seconds when the step hands in its `PlantClock` (how
long a pump-down may take is a property of the plant, whatever the simulation speed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.errors import ControllerError
from controller.line.actions import Action, Command, SetPump, SetValve
from controller.line.atmosphere import Atmosphere
from controller.line.gate import CommandGate, GateRecord
from controller.line.state import LineState
from sequences.plant_clock import WALL, PlantClock

POLL_S = 0.05
_MOVING = (Atmosphere.BACK_FILLING, Atmosphere.EVACUATING)


class StepFailed(ControllerError):
    """The gate refused a step's command, or the device did not carry it out."""

    def __init__(self, record: GateRecord) -> None:
        self.record = record
        reason = record.verdict.reason if record.outcome == "refused" else record.error
        super().__init__(f"{record.command.action} {record.outcome}: {reason}")


class StepTimeout(ControllerError):
    """The line did not reach the state the step waits for."""


class ProcessFault(ControllerError):
    """The line cannot carry on with a step: a source went out, the turbo tripped, or the line lacks
    what the step needs (a gas it has no supply for). The sequence treats it like `StepFailed`."""


@dataclass(frozen=True, slots=True)
class PurgeCycle:
    cycle: int
    evacuated_to_pa: float
    evacuate_s: float
    filled_to_pa: float
    fill_s: float
    frost_point_c: float | None
    o2_ppmv: float | None
    atmosphere: str


async def submit(gate: CommandGate, action: Action, user: str, reason: str) -> GateRecord:
    record = await gate.submit(Command(action, user, "sequence", reason))
    if record.outcome != "done":
        raise StepFailed(record)
    return record


async def wait_for(
    gate: CommandGate,
    condition: Callable[[LineState], bool],
    timeout_s: float,
    what: str,
    *,
    clock: PlantClock = WALL,
) -> LineState:
    """The line state once `condition` holds; `timeout_s` in `clock`'s seconds."""
    deadline = clock.now_s() + timeout_s
    while True:
        state = gate.state()
        if condition(state):
            return state
        if clock.now_s() > deadline:
            unit = "" if clock is WALL else " of plant time"
            raise StepTimeout(f"{what} did not happen within {timeout_s:.0f} s{unit}")
        await asyncio.sleep(POLL_S)


def pressure_pa(state: LineState, space: str) -> float:
    """The space's pressure, NaN when unknown: every comparison with NaN is false, so unknown never
    counts as reached."""
    p = state.spaces[space].pressure_pa
    return float("nan") if p is None else p


async def pump_purge(
    gate: CommandGate,
    space: str,
    *,
    cycles: int,
    evacuate_to_pa: float,
    fill_to_pa: float = 101_325.0,
    timeout_s: float = 600.0,
    user: str = "sequence",
    on_cycle: Callable[[PurgeCycle], None] | None = None,
    settle_s: float = 1.0,
    clock: PlantClock = WALL,
) -> list[PurgeCycle]:
    """Evacuate and back-fill with the inert gas `cycles` times (the antechamber purge of DESIGN §1.2).

    The back-fill runs until the regulator has the space at or above `fill_to_pa` (room pressure by
    default), so neighbouring spaces filled the same way end within the door's Δp limit. Timeouts,
    settling and the reported durations are in `clock`'s seconds.
    """
    reports: list[PurgeCycle] = []

    async def until(condition: Callable[[LineState], bool], what: str) -> LineState:
        return await wait_for(gate, condition, timeout_s, f"{space} {what}", clock=clock)

    await submit(gate, SetPump(space, True), user, "purge: pump on")
    await until(lambda s: s.spaces[space].pump_running is True, "pump running")
    for cycle in range(1, cycles + 1):
        start = clock.now_s()
        await submit(gate, SetValve(space, "rough", True), user, f"purge cycle {cycle}: evacuate")
        state = await until(lambda s: pressure_pa(s, space) <= evacuate_to_pa, "evacuation")
        evacuated, evacuate_s = pressure_pa(state, space), clock.now_s() - start
        await submit(gate, SetValve(space, "rough", False), user, f"purge cycle {cycle}: isolate")
        start = clock.now_s()
        await submit(gate, SetValve(space, "gas_fill", True), user, f"purge cycle {cycle}: back-fill")
        state = await until(lambda s: pressure_pa(s, space) >= fill_to_pa, "back-fill")
        filled, fill_s = pressure_pa(state, space), clock.now_s() - start
        await submit(gate, SetValve(space, "gas_fill", False), user, f"purge cycle {cycle}: filled")
        # judge the atmosphere once the space is static again
        await until(lambda s: s.spaces[space].atmosphere not in _MOVING, "settled")
        # a transmitter compensated for 1 atm reads too dry during the refill transient: give it
        # fresh readings of the filled space before reporting
        settling = time.monotonic()
        await clock.sleep(settle_s)
        await _fresh_frost_point(gate, space, (settling + time.monotonic()) / 2, timeout_s, clock)
        state = gate.state()
        evidence = state.spaces[space].classification.evidence
        report = PurgeCycle(
            cycle,
            evacuated,
            evacuate_s,
            filled,
            fill_s,
            _number(evidence.get("frost_point_c")),
            _number(evidence.get("o2_ppmv", evidence.get("o2_estimate_ppmv"))),
            state.spaces[space].atmosphere.value,
        )
        reports.append(report)
        if on_cycle is not None:
            on_cycle(report)
    return reports


async def _fresh_frost_point(
    gate: CommandGate, space: str, after_mono: float, timeout_s: float, clock: PlantClock
) -> None:
    """Wait for a frost-point reading taken after `after_mono` (at high plant speed a settle time is
    shorter than a poll, so sleeping alone would report the transient)."""
    source = gate.model.readings.frost.get(space)
    if source is None:
        return

    def fresh(_: LineState) -> bool:
        reading = gate.snapshot().get(source)
        return reading is not None and reading.mono > after_mono

    await wait_for(gate, fresh, timeout_s, f"a fresh frost point in {space}", clock=clock)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
