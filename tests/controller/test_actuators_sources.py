"""`SetSource(..., power_w=P)` for every kind on the rack, and the pressure windows sources run in.

The translation of watts into a kind's setpoints is a pure function, tested on its own; the gate is then
driven over the simulated line's real Modbus link (SimLine at `SPEED`), with the chamber pumped to base
pressure by the sequences' own step, exactly as a recipe would. The pressure windows are judged on
`LineState`s built through the real `build_line_state` (linestate_builder.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from controller.config.line_config import load_line_config
from controller.line.actions import Command, SetSource
from controller.line.actuators import SourcePowerOutOfRange, max_power_w, source_setpoints
from controller.line.controller import LineController
from controller.line.gate import CommandGate, GateRecord
from controller.line.interlocks import check, watch
from controller.line.poller import PollPlan, Priority
from controller.line.state import LineState
from drivers.deposition_sources import STANDARD_LINE_SOURCES, SourceKind, SourceSpec
from sequences.chamber_pressure import pump_to_base, set_process_pressure
from sequences.plant_clock import PlantClock
from sequences.steps import wait_for
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock
from tests.controller.linestate_builder import LineSpec, Space, build

SPEED = 200.0
VIRTUAL = VirtualClock(SPEED)  # the simulator's clock, read by the steps' deadlines too
CLOCK = PlantClock(SPEED, source=VIRTUAL.now_s)
BASE_PA = 1.0e-4
ION_ETCH_PA = 0.3
DRY_S = 7 * 24 * 3600.0
SPACE = "process"
RACK = next(d.name for d in load_line_config().devices if d.family == "deposition_sources")
SOURCES = {s.name: s for s in STANDARD_LINE_SOURCES}
PUMPED = {"process.backing_pump", "process.turbo_gate_valve"}  # a chamber on its turbo


def slot_limits(spec: SourceSpec) -> dict[str, float]:
    return dict(zip((s.name for s in spec.spec.setpoints), spec.limits, strict=True))


def delivered_w(spec: SourceSpec, setpoints: dict[str, float]) -> float:
    """What the supply delivers for these setpoints, by the physics of the kind (not by our table)."""
    match spec.kind:
        case SourceKind.PULSED_LASER:
            return setpoints["pulse_energy_setpoint"] * setpoints["rep_rate_setpoint"]
        case SourceKind.ION_SOURCE:
            return setpoints["beam_voltage_setpoint"] * setpoints["beam_current_setpoint"]
        case _:
            return setpoints["power_setpoint"]


# -- watts into setpoints (pure) -------------------------------------------------------------------


@pytest.mark.parametrize("spec", STANDARD_LINE_SOURCES, ids=lambda s: s.name)
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 1.0])
def test_every_kind_delivers_the_requested_power_within_its_limits(spec: SourceSpec, fraction: float) -> None:
    power = fraction * max_power_w(spec)
    setpoints = source_setpoints(spec, power)
    assert delivered_w(spec, setpoints) == pytest.approx(power, abs=1e-9)
    limits = slot_limits(spec)
    for slot, value in setpoints.items():
        assert 0.0 <= value <= limits[slot] * (1 + 1e-12), (slot, value)


def test_the_laser_runs_at_ten_hertz_and_the_ion_source_at_one_kilovolt() -> None:
    assert source_setpoints(SOURCES["pulsed_laser"], 3.0) == pytest.approx(
        {"rep_rate_setpoint": 10.0, "pulse_energy_setpoint": 0.3}
    )
    assert source_setpoints(SOURCES["ion_source"], 250.0) == pytest.approx(
        {"beam_voltage_setpoint": 1000.0, "beam_current_setpoint": 0.25}
    )
    # a power supply gets its power only: the ramp rate it holds is left alone
    assert source_setpoints(SOURCES["dc_sputter"], 300.0) == {"power_setpoint": 300.0}


def test_the_fixed_setpoint_is_capped_at_the_devices_own_limit() -> None:
    slow_laser = SourceSpec("slow_laser", SourceKind.PULSED_LASER, (0.7, 5.0))
    assert max_power_w(slow_laser) == pytest.approx(3.5)
    assert source_setpoints(slow_laser, 2.0) == pytest.approx(
        {"rep_rate_setpoint": 5.0, "pulse_energy_setpoint": 0.4}
    )


@pytest.mark.parametrize(
    ("source", "power_w", "words"),
    [
        ("pulsed_laser", 8.0, ("0..7 W", "pulse energy limit 0.7 J", "rep rate 10 Hz")),
        ("ion_source", 400.0, ("0..300 W", "beam current limit 0.3 A", "beam voltage 1000 V")),
        ("rf_sputter", 601.0, ("0..600 W", "power setpoint limit")),
        ("evaporation", -1.0, ("-1 W", "0..1500 W")),
        ("dc_sputter", math.nan, ("nan W", "0..1000 W")),
    ],
)
def test_a_power_outside_the_range_names_the_limit(
    source: str, power_w: float, words: tuple[str, ...]
) -> None:
    with pytest.raises(SourcePowerOutOfRange) as raised:
        source_setpoints(SOURCES[source], power_w)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    assert source in str(raised.value)


# -- pressure windows (pure interlocks) ------------------------------------------------------------


def chamber_at(p_pa: float, *, sources_on: set[str] | frozenset[str] = frozenset()) -> LineState:
    """A closed chamber on its turbo, base pressure reached, now at `p_pa` (of Ar)."""
    gas = 20.0 if p_pa > 1e-2 else 0.0
    space = Space(p_pa=p_pa, turbo_hz=1000.0, flow_sccm=gas, base_reached=True)
    return build(LineSpec(spaces={SPACE: space}, outputs_open=PUMPED, sources_on=sources_on))


def test_evaporation_at_ion_plating_pressure_is_allowed_with_the_ion_source_on() -> None:
    plating = chamber_at(0.5, sources_on={"ion_source"})
    verdict = check(plating, SetSource(SPACE, "evaporation", True, 550.0))
    assert verdict.allowed, verdict.reason
    assert watch(plating) == []  # and once both run, nothing switches them off


def test_evaporation_in_gas_without_the_ion_source_is_refused_and_says_how_to_plate() -> None:
    verdict = check(chamber_at(0.5), SetSource(SPACE, "evaporation", True, 550.0))
    assert not verdict.allowed
    assert [(r.invariant, r.rule) for r in verdict.refusals] == [("I6", "process-pressure")]
    assert "0..0.01 Pa" in verdict.reason
    assert "0.1..1 Pa for ion plating" in verdict.reason


def test_evaporation_stops_when_the_ion_source_of_its_plating_goes_out() -> None:
    state = chamber_at(0.5, sources_on={"evaporation"})
    assert [a.action for a in watch(state)] == [SetSource(SPACE, "evaporation", False)]


@pytest.mark.parametrize(
    ("p_pa", "allowed"), [(1e-4, True), (1e-2, True), (0.05, False), (0.1, True), (1.0, True), (2.0, False)]
)
def test_evaporation_with_the_ion_source_on_runs_in_vacuum_or_in_the_plating_window(
    p_pa: float, allowed: bool
) -> None:
    verdict = check(chamber_at(p_pa, sources_on={"ion_source"}), SetSource(SPACE, "evaporation", True))
    assert verdict.allowed is allowed, verdict.reason


@pytest.mark.parametrize(("p_pa", "allowed"), [(0.05, False), (0.09, False), (0.1, True), (1.0, True)])
def test_the_ion_source_window_starts_where_the_simulated_source_lights(p_pa: float, allowed: bool) -> None:
    """The plant strikes the ion source from 0.1 Pa (sim_hardware/plant/deposition.py); 0.05 Pa passed."""
    verdict = check(chamber_at(p_pa), SetSource(SPACE, "ion_source", True, 250.0))
    assert verdict.allowed is allowed, verdict.reason
    if not allowed:
        assert "0.1..1 Pa" in verdict.reason


# -- through the gate, over the simulated line's wire ---------------------------------------------


@dataclass
class Line:
    sim: SimLine
    ctl: LineController

    @property
    def gate(self) -> CommandGate:
        return self.ctl.gate


@pytest.fixture
async def pumped() -> AsyncIterator[Line]:
    """The process chamber on its turbo at base pressure (from dry Ar at atmosphere)."""
    initial = {name: InitialAtmosphere("ar", 101_800.0, DRY_S) for name in ("inlet", SPACE, "outlet")}
    sim = SimLine(load_line_config(), speed=SPEED, initial=initial, clock=VIRTUAL)
    await sim.start()
    try:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.2})
        ctl = LineController(config, plan=plan, travel_timeout_s=2.0)
        await ctl.start()
        try:
            await wait_for(ctl.gate, first_readings_in, 20.0, "first readings")
            await pump_to_base(ctl.gate, SPACE, base_pressure_pa=BASE_PA, clock=CLOCK, timeout_s=3600.0)
            yield Line(sim, ctl)
        finally:
            await ctl.stop()
    finally:
        await sim.stop()


def first_readings_in(state: LineState) -> bool:
    chamber = state.spaces[SPACE]
    return None not in (chamber.pressure_pa, chamber.turbo_speed_hz)


async def send(gate: CommandGate, action: SetSource) -> GateRecord:
    return await gate.submit(Command(action, "test", "test", "source power over the wire"))


async def polled(gate: CommandGate, source: str, after: float, timeout_s: float = 5.0) -> dict[str, float]:
    """The rack's readbacks of `source` from a poll taken after `after` (time.monotonic())."""
    deadline = time.monotonic() + timeout_s
    while True:
        snapshot = gate.snapshot()
        power = snapshot.get((RACK, f"{source}.power"))
        if power is not None and power.mono > after:
            prefix = f"{source}."
            return {
                ch.removeprefix(prefix): r.value
                for (dev, ch), r in snapshot.items()
                if dev == RACK and ch.startswith(prefix)
            }
        assert time.monotonic() < deadline, f"no poll of {source} after the command"
        await asyncio.sleep(0.05)


async def test_laser_and_ion_source_switch_on_with_a_power_and_refuse_one_out_of_range(pumped: Line) -> None:
    gate = pumped.gate
    # in vacuum: the laser; a power it cannot give fails with the limit and leaves it off
    too_much = await send(gate, SetSource(SPACE, "pulsed_laser", True, 8.0))
    assert too_much.outcome == "failed"
    assert "SourcePowerOutOfRange" in too_much.error
    assert "0..7 W" in too_much.error, too_much.error
    assert "pulsed_laser" not in gate.state().spaces[SPACE].sources_on
    on = await send(gate, SetSource(SPACE, "pulsed_laser", True, 3.0))
    assert on.outcome == "done", f"{on.verdict.reason} {on.error}"
    assert (await polled(gate, "pulsed_laser", time.monotonic()))["output_on"] == 1.0
    assert (await send(gate, SetSource(SPACE, "pulsed_laser", False))).outcome == "done"

    # in 0.3 Pa of Ar: the ion source, then evaporation beside it (ion plating)
    await set_process_pressure(gate, SPACE, pressure_pa=ION_ETCH_PA, clock=CLOCK, timeout_s=600.0)
    too_much = await send(gate, SetSource(SPACE, "ion_source", True, 400.0))
    assert too_much.outcome == "failed"
    assert "0..300 W" in too_much.error, too_much.error
    on = await send(gate, SetSource(SPACE, "ion_source", True, 250.0))
    assert on.outcome == "done", f"{on.verdict.reason} {on.error}"
    assert (await polled(gate, "ion_source", time.monotonic()))["output_on"] == 1.0
    plating = await send(gate, SetSource(SPACE, "evaporation", True, 550.0))
    assert plating.outcome == "done", f"{plating.verdict.reason} {plating.error}"
    for source in ("evaporation", "ion_source"):
        assert (await send(gate, SetSource(SPACE, source, False))).outcome == "done"
    assert (await polled(gate, "ion_source", time.monotonic()))["output_on"] == 0.0
    assert gate.state().spaces[SPACE].sources_on == frozenset()


async def test_laser_and_ion_source_read_back_the_power_they_were_given(pumped: Line) -> None:
    gate = pumped.gate
    assert (await send(gate, SetSource(SPACE, "pulsed_laser", True, 3.0))).outcome == "done"
    laser = await polled(gate, "pulsed_laser", time.monotonic())
    assert laser["power"] == pytest.approx(3.0, rel=1e-3)
    assert laser["pulse_energy"] == pytest.approx(0.3, rel=1e-3)
    assert laser["rep_rate"] == pytest.approx(10.0, rel=1e-3)
    assert pumped.sim.plant.sources["pulsed_laser"].emitting  # the plant agrees: the plume is there
    assert (await send(gate, SetSource(SPACE, "pulsed_laser", False))).outcome == "done"

    await set_process_pressure(gate, SPACE, pressure_pa=ION_ETCH_PA, clock=CLOCK, timeout_s=600.0)
    assert (await send(gate, SetSource(SPACE, "ion_source", True, 250.0))).outcome == "done"
    ion = await polled(gate, "ion_source", time.monotonic())
    assert ion["power"] == pytest.approx(250.0, rel=1e-3)
    assert ion["beam_voltage"] == pytest.approx(1000.0, rel=1e-3)
    assert ion["beam_current"] == pytest.approx(0.25, rel=1e-3)
    assert (await send(gate, SetSource(SPACE, "ion_source", False))).outcome == "done"
