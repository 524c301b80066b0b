"""Operating the simulated line through the controller, as the step library will (test helpers).

Everything goes through `LineController.gate`; nothing here touches the plant directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from controller.line.actions import Action, Command
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.state import LineState
from sequences.steps import pump_purge


async def do(ctl: LineController, action: Action, user: str = "test") -> GateRecord:
    record = await ctl.gate.submit(Command(action, user, "test"))
    assert record.outcome == "done", f"{action}: {record.verdict.reason} {record.error}"
    return record


async def until(
    ctl: LineController, predicate: Callable[[LineState], bool], timeout_s: float = 30.0
) -> LineState:
    deadline = time.monotonic() + timeout_s
    while True:
        state = ctl.gate.state()
        if predicate(state):
            return state
        assert time.monotonic() < deadline, "line did not reach the expected state"
        await asyncio.sleep(0.05)


def pressure(state: LineState, space: str) -> float:
    p = state.spaces[space].pressure_pa
    return float("nan") if p is None else p


async def purge(ctl: LineController, space: str, *, cycles: int, to_pa: float) -> LineState:
    """Pump/purge cycles through the gate, with the sequences' own step."""
    await pump_purge(ctl.gate, space, cycles=cycles, evacuate_to_pa=to_pa, timeout_s=30.0, user="test")
    return ctl.gate.state()
