"""What the process steps read of the chamber: readings the line state does not carry (a device's own
channel such as the QCM's thickness and rate or the MFC's read-back, the chamber pressure from its
gauges, the first reading taken after a command could have changed it), and the state's pressure and
limits read so that an unknown value never passes for a good one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.line.atmosphere import usable
from controller.line.gate import CommandGate
from controller.line.state import LineState
from drivers.reading import Reading
from sequences.step_budget import StepBudget
from sequences.steps import ProcessFault


def device_of(gate: CommandGate, family: str, space: str) -> str:
    name = next((d.name for d in gate.model.config.devices if d.family == family and d.space == space), None)
    if name is None:
        raise ProcessFault(f"{space} has no {family.replace('_', ' ')}")
    return name


def reading_of(gate: CommandGate, device: str, channel: str) -> Reading | None:
    return usable(gate.snapshot().get((device, channel)), time.monotonic(), gate.model.config.limits)


def pressure_reading(gate: CommandGate, space: str) -> Reading | None:
    return gate.model.readings.pressure(gate.snapshot(), space, time.monotonic())


async def fresh_reading(
    gate: CommandGate, read: Callable[[], Reading | None], after_mono: float, budget: StepBudget, what: str
) -> Reading:
    """The first usable reading taken after `after_mono` (one a command could already have changed)."""
    found: list[Reading] = []

    def taken(_: LineState) -> bool:
        reading = read()
        if reading is not None and reading.mono > after_mono:
            found.append(reading)
            return True
        return False

    await budget.wait(gate, taken, what)
    return found[-1]


def is_below(value: float | None, limit: float) -> bool:
    """An unknown value is never below a limit."""
    return value is not None and value <= limit
