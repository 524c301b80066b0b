"""Unit modes: the pure rule the gate applies, the audited changes, and the gate on the simulated line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.config.line_config import load_line_config
from controller.line.actions import Command, SetValve
from controller.line.controller import LineController
from controller.line.modes import (
    MANUAL_ORIGINS,
    ModeBoard,
    ModeChange,
    ModeRefused,
    ModeState,
    UnitMode,
    mode_refusal,
)
from drivers.reading import Quality
from sim_hardware.line import SimLine
from tests.controller.line_ops import until

ORIGINS = ["hmi", "cli", "mqtt", "sequence", "interlock", "test"]
VENT_CLOSED = SetValve("inlet", "vent", False)


def state(mode: UnitMode, owner: str | None = None) -> ModeState:
    return ModeState(mode, 0.0, "op1", "why", owner)


@given(
    st.sampled_from(list(UnitMode)),
    st.sampled_from(ORIGINS),
    st.sampled_from(["operator", "engineer", "maintenance", ""]),
)
def test_only_manual_origins_are_judged_and_production_refuses_every_one(
    mode: UnitMode, origin: str, role: str
) -> None:
    command = Command(VENT_CLOSED, "op1", origin, meta={"role": role} if role else {})  # type: ignore[arg-type]
    refusal = mode_refusal(state(mode, "B1" if mode is UnitMode.PRODUCTION else None), command)
    if origin not in MANUAL_ORIGINS:
        assert refusal is None  # the batch, its prompts and the supervisor's safe actions
    elif mode is UnitMode.PRODUCTION:
        assert refusal is not None
        assert refusal.reason == "batch B1 owns the line: hold it and switch to manual"
        assert refusal.invariant == "MODE"
    elif mode is UnitMode.MAINTENANCE:
        assert (refusal is None) == (role in ("engineer", "maintenance"))
    else:
        assert refusal is None


def test_changes_go_through_manual_and_are_recorded_with_who_and_why() -> None:
    board = ModeBoard()
    seen: list[ModeChange] = []
    board.subscribers.append(seen.append)
    assert board.current.mode is UnitMode.MANUAL
    with pytest.raises(ModeRefused, match="needs a reason"):
        board.change(UnitMode.MAINTENANCE, "eng1", "  ")
    with pytest.raises(ModeRefused, match="start one"):
        board.change(UnitMode.PRODUCTION, "op1", "go")
    board.change(UnitMode.PRODUCTION, "op1", "batch started", owner="B1")
    with pytest.raises(ModeRefused, match="maintenance only through manual"):
        board.change(UnitMode.MAINTENANCE, "eng1", "fix the gauge")
    board.change(UnitMode.MANUAL, "op1", "batch held for a door check")
    assert [(c.previous, c.mode, c.user, c.owner) for c in seen] == [
        (UnitMode.MANUAL, UnitMode.PRODUCTION, "op1", "B1"),
        (UnitMode.PRODUCTION, UnitMode.MANUAL, "op1", None),
    ]
    assert list(board.journal) == seen


def test_a_guard_can_refuse_a_change_with_its_reason() -> None:
    board = ModeBoard()
    board.change(UnitMode.PRODUCTION, "op1", "batch started", owner="B1")
    board.guards.append(lambda now, to, owner: "batch B1 is running: hold it first")
    with pytest.raises(ModeRefused, match="hold it first"):
        board.change(UnitMode.MANUAL, "op1", "a look")
    assert board.current.mode is UnitMode.PRODUCTION


def test_devices_leave_service_only_in_maintenance_and_block_leaving_it() -> None:
    board = ModeBoard()
    with pytest.raises(ModeRefused, match="in maintenance"):
        board.set_in_service("inlet_dewpoint", False, "eng1", "recalibration")
    board.change(UnitMode.MAINTENANCE, "eng1", "recalibrate the inlet transmitter")
    board.set_in_service("inlet_dewpoint", False, "eng1", "recalibration")
    with pytest.raises(ModeRefused, match="put inlet_dewpoint back"):
        board.change(UnitMode.MANUAL, "eng1", "done")
    board.set_in_service("inlet_dewpoint", True, "eng1", "recalibrated")
    board.change(UnitMode.MANUAL, "eng1", "done")
    changes = [(c.device, c.in_service) for c in board.journal if c.device]
    assert changes == [("inlet_dewpoint", False), ("inlet_dewpoint", True)]


# -- the gate on the simulated line ------------------------------------------------------------------


@pytest.fixture
async def ctl() -> AsyncIterator[LineController]:
    async with SimLine(load_line_config(), speed=100.0) as sim, LineController(sim.simulated_config()) as ctl:
        await until(ctl, lambda s: s.spaces["inlet"].pressure_pa is not None)
        yield ctl


async def test_in_production_the_gate_refuses_manual_commands_and_runs_the_batchs(
    ctl: LineController,
) -> None:
    ctl.modes.change(UnitMode.PRODUCTION, "op1", "batch started", owner="B20261206-x")
    refused = await ctl.gate.submit(Command(VENT_CLOSED, "op1", "hmi"))
    assert refused.outcome == "refused"
    assert (
        refused.verdict.reason
        == "[MODE production] batch B20261206-x owns the line: hold it and switch to manual"
    )
    done = await ctl.gate.submit(Command(VENT_CLOSED, "sequence", "sequence"))
    assert done.outcome == "done"
    ctl.modes.change(UnitMode.MANUAL, "op1", "held to look at the door")
    assert (await ctl.gate.submit(Command(VENT_CLOSED, "op1", "hmi"))).outcome == "done"


async def test_a_device_out_of_service_makes_its_space_unknown_never_in_spec(ctl: LineController) -> None:
    ctl.modes.change(UnitMode.MAINTENANCE, "eng1", "swap the inlet transmitter")
    ctl.modes.set_in_service("inlet_dewpoint", False, "eng1", "swapped for calibration")
    readings = [r for (device, _), r in ctl.gate.snapshot().items() if device == "inlet_dewpoint"]
    assert readings
    assert all(r.quality is Quality.OUT_OF_SERVICE for r in readings)
    inlet = ctl.gate.state().spaces["inlet"]
    assert not inlet.safe_for_exposed
    operator = await ctl.gate.submit(Command(VENT_CLOSED, "op1", "hmi", meta={"role": "operator"}))
    assert operator.verdict.reason == "[MODE maintenance] the line is in maintenance: engineers only"
    engineer = await ctl.gate.submit(Command(VENT_CLOSED, "eng1", "hmi", meta={"role": "engineer"}))
    assert engineer.outcome == "done"
