"""Scenarios on the whole simulated line, controller in the loop: faults meet interlocks and alarms."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from controller.config.line_config import load_line_config
from controller.line.actions import Command, MoveItem, SetContainer, SetPort, SetValve
from controller.line.alarm_states import AlarmState
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.items import ItemKind
from controller.line.poller import PollPlan, Priority
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine
from tests.controller.line_ops import do, purge, until


@pytest.fixture
async def line() -> AsyncIterator[tuple[SimLine, LineController]]:
    base = load_line_config()
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with SimLine(base, speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with LineController(config, plan=plan, travel_timeout_s=5.0) as ctl:
            yield sim, ctl


async def inert_inlet_and_chamber(ctl: LineController) -> None:
    await purge(ctl, "inlet", cycles=3, to_pa=20.0)
    await purge(ctl, "process", cycles=2, to_pa=10.0)
    await until(
        ctl,
        lambda s: (
            s.spaces["inlet"].atmosphere is Atmosphere.INERT_IN_SPEC
            and s.spaces["process"].atmosphere is Atmosphere.INERT_IN_SPEC
        ),
    )


async def test_silent_dewpoint_makes_the_inlet_unknown_and_refuses_transfers(
    line: tuple[SimLine, LineController],
) -> None:
    sim, ctl = line
    await inert_inlet_and_chamber(ctl)
    ctl.model.register("C1", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
    ctl.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
    inject(sim, Fault("no_reply", device="inlet_dewpoint"))
    state = await until(ctl, lambda s: s.spaces["inlet"].atmosphere is Atmosphere.UNKNOWN)
    assert "frost point" in state.spaces["inlet"].classification.reason
    refused = await ctl.gate.submit(Command(SetPort("inlet_gate", True), "op1", "test"))
    assert refused.outcome == "refused"
    assert refused.verdict.refusals[0].invariant == "I2"
    opened = await ctl.gate.submit(Command(SetContainer("C1", False), "op1", "test"))
    assert opened.outcome == "refused"  # unknown is never in spec
    await until(ctl, lambda s: any(a.definition.id == "comms.inlet_dewpoint" for a in ctl.alarms.active()))


async def test_transfer_then_inlet_leak_closes_the_open_gate(line: tuple[SimLine, LineController]) -> None:
    sim, ctl = line
    await inert_inlet_and_chamber(ctl)
    ctl.model.register("C1", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
    ctl.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
    await do(ctl, SetContainer("C1", False))  # opened with the gloves in the inert inlet
    await do(ctl, SetPort("inlet_gate", True))
    await until(ctl, lambda s: s.ports["inlet_gate"].valve.confirmed_open)
    await do(ctl, MoveItem("F1", "process"))
    inject(sim, Fault("leak", space="inlet", rate_pa_m3_s=5e-2))
    state = await until(ctl, lambda s: s.ports["inlet_gate"].valve.confirmed_closed, timeout_s=30.0)
    assert state.spaces["process"].safe_for_exposed
    record = ctl.ledger.records["F1"]
    assert [stay.space for stay in record.path] == ["inlet", "process"]
    assert not record.ever_exposed_to_non_inert, record.non_inert
    assert any(r.alarm_id.startswith("interlock.") for r in ctl.alarms.journal)
    assert ctl.ledger.complete(state) == []


async def test_stuck_door_raises_a_position_alarm(line: tuple[SimLine, LineController]) -> None:
    sim, ctl = line
    inject(sim, Fault("stuck_actuator", actuator="inlet.outer"))
    await until(
        ctl,
        lambda s: s.spaces["inlet"].pressure_pa is not None and s.ports["inlet_gate"].valve.confirmed_closed,
    )
    await do(ctl, SetPort("inlet.outer", True))  # allowed: the inlet is at room pressure, nothing exposed
    await until(ctl, lambda s: any(a.definition.id == "position.inlet.outer" for a in ctl.alarms.active()))
    status = ctl.alarms.get("position.inlet.outer")
    assert status.evidence["closed_ls"] == "True"  # commanded open, still reported closed
    assert not sim.plant.doors["inlet.outer"].is_open


async def test_a_command_failure_alarm_clears_once_the_device_does_what_it_is_told(
    line: tuple[SimLine, LineController],
) -> None:
    """The remote I/O answers a Modbus exception: the vent command fails and alarms; once the fault is
    gone, the same command succeeds and the alarm clears (it used to stay active for ever)."""
    sim, ctl = line
    await until(ctl, lambda s: s.spaces["inlet"].pressure_pa is not None)
    heal = inject(sim, Fault("modbus_exception", device="remote_io", code=4))
    failed = await ctl.gate.submit(Command(SetValve("inlet", "vent", False), "op1", "test"))
    assert failed.outcome == "failed"
    assert "command.inlet.vent" in [a.definition.id for a in ctl.alarms.active()]
    heal()
    done = await ctl.gate.submit(Command(SetValve("inlet", "vent", False), "op1", "test"))
    assert done.outcome == "done"
    # the condition is gone; the alarm stays on display, unacknowledged, until someone has seen it
    assert ctl.alarms.get("command.inlet.vent").state is AlarmState.CLEARED_UNACKED
