"""Manual antechamber operations on the simulated line, end to end through the controller's gate.

The SimLine runs at `SPEED` plant seconds per wall second and the operations take a matching
`PlantClock`. What is checked is what the gate recorded and what the line state says, never timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from controller.config.line_config import load_line_config
from controller.errors import ControllerError
from controller.line.actions import SetValve
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.line.state import LineState
from sequences.plant_clock import PlantClock
from sequences.space_operations import OperationRefused, OperationView, SpaceOperations, UnknownSpace
from sequences.steps import wait_for
from sim_hardware.faults import Fault, inject
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock

SPEED = 500.0
VIRTUAL = VirtualClock(SPEED)  # the simulator's clock, read by the steps' deadlines too
CLOCK = PlantClock(SPEED, source=VIRTUAL.now_s)
DRY_S = 7 * 24 * 3600.0
SPACE = "inlet"
USER = "op1"
WAIT_S = 30.0


@dataclass
class Line:
    sim: SimLine
    ctl: LineController
    ops: SpaceOperations
    busy: list[str]


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    initial = {
        SPACE: InitialAtmosphere("air", None, DRY_S),
        "process": InitialAtmosphere("ar", 101_800.0, DRY_S),
        "outlet": InitialAtmosphere("ar", 101_800.0, DRY_S),
    }
    async with SimLine(load_line_config(), speed=SPEED, initial=initial, clock=VIRTUAL) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.2})
        async with LineController(config, plan=plan, travel_timeout_s=2.0) as ctl:
            await wait_for(ctl.gate, first_readings_in, 20.0, "first readings")
            busy: list[str] = []
            ops = SpaceOperations(ctl, CLOCK, busy=lambda: busy[0] if busy else None)
            try:
                yield Line(sim, ctl, ops, busy)
            finally:
                await ops.close()


def first_readings_in(state: LineState) -> bool:
    """Every reading the tests judge: the atmosphere's too (its gas sensors may answer a poll later)."""
    inlet = state.spaces[SPACE]
    return (
        inlet.pressure_pa is not None
        and inlet.pump_running is not None
        and inlet.atmosphere is not Atmosphere.UNKNOWN
    )


async def ended(ops: SpaceOperations, op_id: str, timeout_s: float = WAIT_S) -> OperationView:
    deadline = time.monotonic() + timeout_s
    while True:
        view = next(v for v in ops.views() if v.id == op_id)
        if view.state != "running":
            return view
        assert time.monotonic() < deadline, f"operation still running: {view}"
        await _sleep()


async def _sleep() -> None:
    await asyncio.sleep(0.05)


def assert_isolated(state: LineState) -> None:
    """What make_safe leaves: rough and fill valves commanded shut."""
    valves = state.spaces[SPACE].valves
    for name in ("rough", "gas_fill"):
        assert valves[name].commanded_open is False, name


async def test_two_cycles_leave_the_inlet_inert_in_spec_with_every_command_in_the_operators_name(
    line: Line,
) -> None:
    gate = line.ctl.gate
    assert gate.state().spaces[SPACE].atmosphere is Atmosphere.AIR
    before = len(gate.records)
    started = line.ops.start(SPACE, "cycle", USER, cycles=2)
    assert started.state == "running"
    assert started.cycles == 2
    steps: set[str] = set()
    deadline = time.monotonic() + WAIT_S
    while (view := line.ops.views()[0]).state == "running":
        steps.add(view.step)
        assert 0.0 <= view.fraction <= 1.0
        assert time.monotonic() < deadline
        await _sleep()
    assert view.state == "done", view.message
    assert view.fraction == 1.0
    assert view.ended_at is not None
    assert view.ended_at >= view.started_at
    assert "2 cycles done" in view.message
    assert any(s.startswith("cycle 2 of 2") for s in steps), steps
    assert gate.state().spaces[SPACE].atmosphere is Atmosphere.INERT_IN_SPEC
    records = list(gate.records)[before:]
    assert records, "the operation sent no command"
    assert {r.command.user for r in records} == {USER}
    assert all(r.outcome == "done" for r in records)
    opened = [a.valve for r in records if isinstance(a := r.command.action, SetValve) and a.open]
    assert opened == ["rough", "gas_fill", "rough", "gas_fill"]


async def test_pump_down_holds_with_the_valve_closed_then_fill_brings_it_back_to_room_pressure(
    line: Line,
) -> None:
    gate, ops = line.ctl.gate, line.ops
    down = await ended(ops, ops.start(SPACE, "pump_down", USER).id)
    assert down.state == "done", down.message
    inlet = gate.state().spaces[SPACE]
    assert inlet.pressure_pa is not None
    assert inlet.pressure_pa <= line.ctl.config.sequence.purge_evacuate_to_pa
    assert inlet.valves["rough"].commanded_open is False
    fill = await ended(ops, ops.start(SPACE, "fill", USER).id)
    assert fill.state == "done", fill.message
    inlet = gate.state().spaces[SPACE]
    assert inlet.pressure_pa is not None
    assert inlet.pressure_pa >= gate.state().limits.room_pressure_pa
    assert inlet.valves["gas_fill"].commanded_open is False


async def test_refusals_say_why_and_start_nothing(line: Line) -> None:
    gate, ops = line.ctl.gate, line.ops
    before = len(gate.records)
    line.busy.append("batch b1 is running: manual operations wait until it ends or is stopped")
    with pytest.raises(OperationRefused, match="batch b1 is running"):
        ops.start(SPACE, "cycle", USER)
    line.busy.clear()
    with pytest.raises(OperationRefused, match=r"process chamber: .* antechambers only"):
        ops.start("process", "fill", USER)
    with pytest.raises(UnknownSpace, match="no space 'attic'"):
        ops.start("attic", "fill", USER)
    with pytest.raises(OperationRefused, match="cycles must be 1 to 10"):
        ops.start(SPACE, "cycle", USER, cycles=11)
    with pytest.raises(OperationRefused, match="nothing runs on inlet"):
        await ops.cancel(SPACE, USER)
    assert issubclass(OperationRefused, ControllerError)
    assert len(gate.records) == before
    assert ops.views() == []


async def test_cancel_mid_cycle_leaves_the_inlet_isolated_and_says_who(line: Line) -> None:
    gate, ops = line.ctl.gate, line.ops
    view = ops.start(SPACE, "cycle", USER, cycles=3)
    with pytest.raises(OperationRefused, match=r"inlet already runs cycle \(started by op1\)"):
        ops.start(SPACE, "fill", "op2")
    await wait_for(gate, lambda s: s.spaces[SPACE].valves["rough"].commanded_open is True, WAIT_S, "roughing")
    cancelled = await ops.cancel(SPACE, "op2")
    assert cancelled.state == "cancelled"
    assert cancelled.id == view.id
    assert "cancelled by op2" in cancelled.message
    assert "safe state" in cancelled.message
    assert_isolated(gate.state())
    safe = [r for r in gate.records if r.command.reason.startswith(f"{SPACE}: safe state")]
    assert safe
    assert {r.command.user for r in safe} == {"op2"}
    assert ops.running_reason() is None
    again = await ended(ops, ops.start(SPACE, "fill", USER).id)  # the space is free again
    assert again.state == "done", again.message


async def test_a_failed_rough_pump_ends_the_operation_failed_with_the_reason_and_the_space_safe(
    line: Line,
) -> None:
    gate, ops = line.ctl.gate, line.ops
    undo = inject(line.sim, Fault("pump_failure", pump=f"{SPACE}.rough"))
    try:
        view = await ended(ops, ops.start(SPACE, "pump_down", USER).id)
    finally:
        undo()
    assert view.state == "failed"
    assert view.message, "a failure names its reason"
    assert "did not happen within" in view.message or "REFUSED" in view.message, view.message
    assert view.step == "FAILED"
    assert_isolated(gate.state())
