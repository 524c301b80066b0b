"""Operating the simulated line through the controller, as the step library will (test helpers).

Everything goes through `LineController.gate`; nothing here touches the plant directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from controller.actions import Action, Command, SetPump, SetValve
from controller.gate import GateRecord
from controller.line_controller import LineController
from controller.line_state import LineState

ATMOSPHERE_PA = 101_325.0  # fill until the regulator (room + ~5 mbar) has us above the room


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
    """Pump/purge cycles: evacuate to `to_pa`, back-fill with the inert gas to atmosphere."""
    await do(ctl, SetPump(space, True))
    await until(ctl, lambda s: s.spaces[space].pump_running is True)
    state = ctl.gate.state()
    for _ in range(cycles):
        await do(ctl, SetValve(space, "rough", True))
        await until(ctl, lambda s: pressure(s, space) <= to_pa)
        await do(ctl, SetValve(space, "rough", False))
        await do(ctl, SetValve(space, "gas_fill", True))
        await until(ctl, lambda s: pressure(s, space) >= ATMOSPHERE_PA)
        await do(ctl, SetValve(space, "gas_fill", False))
        state = await until(ctl, lambda s: not s.spaces[space].valves["gas_fill"].maybe_open)
    return state
