"""A process step's time: a timeout in plant seconds spent across the step's waits.

Durations and timeouts are plant seconds (`PlantClock`): a recipe's "1800 s at 130 °C" is plant time
whether the plant is real or simulated at 300x; each budget adds a few wall seconds' worth of floor
(`POLL_FLOOR_S`) for poll latency, which is real time whatever the speed.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.line.gate import CommandGate
from controller.line.state import LineState
from sequences.plant_clock import PlantClock
from sequences.steps import StepTimeout, wait_for

POLL_FLOOR_S = 3.0  # wall seconds added to every timeout: a reading arrives one poll after the fact


class StepBudget:
    """One timeout in plant seconds, spent across the waits of a step."""

    def __init__(self, clock: PlantClock, timeout_s: float, step: str) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.step = step
        self.end_s = clock.now_s() + timeout_s + clock.plant_s(POLL_FLOOR_S)

    def left_plant_s(self) -> float:
        return max(0.0, self.end_s - self.clock.now_s())

    async def wait(self, gate: CommandGate, condition: Callable[[LineState], bool], what: str) -> LineState:
        try:
            return await wait_for(gate, condition, self.left_plant_s(), what, clock=self.clock)
        except StepTimeout:
            raise StepTimeout(
                f"{self.step}: {what} did not happen within {self.timeout_s:.0f} s of plant time"
            ) from None
