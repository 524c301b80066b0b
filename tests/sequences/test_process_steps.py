"""Process-chamber procedures on the simulated line, end to end through the controller's gate.

The SimLine runs at `SPEED` plant seconds per wall second; the steps take a matching `PlantClock`, so
their plant-time timeouts mean the same as on a real line. The plant's own state (substrate film) is
read only to check what the controller measured, never to drive anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from controller.config.line_config import load_line_config
from controller.line.actions import SetFilm, SetHeater, opens_or_starts
from controller.line.controller import LineController
from controller.line.gate import CommandGate, GateRecord
from controller.line.poller import PollPlan, Priority
from controller.line.state import LineState
from drivers.deposition_sources import STANDARD_LINE_SOURCES
from sequences.chamber_pressure import fill_with_gas, pump_to_base
from sequences.deposition_steps import anneal, deposit
from sequences.plant_clock import PlantClock
from sequences.safe_state import make_safe, safe_state_actions
from sequences.steps import ProcessFault, StepTimeout, wait_for
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock

SPEED = 500.0
VIRTUAL = VirtualClock(SPEED)  # the simulator's clock, read by the steps' deadlines too
CLOCK = PlantClock(SPEED, source=VIRTUAL.now_s)
BASE_PA = 1.0e-4
DRY_S = 7 * 24 * 3600.0  # walls kept under dry Ar for a week, as in production
SPACE = "process"
GLASS = "57Li2S-38SiS2-5Li3PO4"


@dataclass
class Line:
    sim: SimLine
    ctl: LineController

    @property
    def gate(self) -> CommandGate:
        return self.ctl.gate


@pytest.fixture
async def line() -> AsyncIterator[Line]:
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
            yield Line(sim, ctl)
        finally:
            await ctl.stop()
    finally:
        await sim.stop()


def first_readings_in(state: LineState) -> bool:
    chamber = state.spaces[SPACE]
    return None not in (chamber.pressure_pa, chamber.substrate_temp_c, chamber.turbo_speed_hz)


def io_output(gate: CommandGate, point: str) -> bool:
    reading = gate.snapshot()[("remote_io", point)]
    return reading.value >= 0.5


def assert_sources_and_shutters_off(gate: CommandGate) -> None:
    """What the gate knows at once from its own read-back writes."""
    assert gate.state().spaces[SPACE].sources_on == frozenset()
    assert not io_output(gate, f"{SPACE}.substrate_shutter")
    for source in STANDARD_LINE_SOURCES:
        assert not io_output(gate, f"{SPACE}.shutter_{source.name}"), source.name


async def assert_switched_off(gate: CommandGate) -> None:
    """No source on, every shutter closed, no process gas, heater safe: what every process step leaves
    behind, judged on polls taken after it (the MFC and heater readbacks come with the next poll)."""
    await asyncio.sleep(0.6)
    assert_sources_and_shutters_off(gate)
    assert gate.state().spaces[SPACE].gas_flow_sccm == 0.0
    setpoint = gate.snapshot()[("substrate_heater", "setpoint")]
    assert setpoint.value == pytest.approx(20.0)


async def test_pump_deposit_anneal_fill_from_an_argon_filled_chamber(line: Line) -> None:
    gate = line.gate
    assert gate.state().spaces[SPACE].pressure_pa == pytest.approx(101_800.0, rel=0.01)

    base = await pump_to_base(gate, SPACE, base_pressure_pa=BASE_PA, clock=CLOCK, timeout_s=3600.0)
    state = gate.state().spaces[SPACE]
    assert base.pressure_pa <= BASE_PA
    assert state.base_pressure_reached
    assert state.valves["turbo_gate"].confirmed_open
    assert not state.valves["rough"].maybe_open
    assert base.rough_s > 0
    assert base.turbo_run_up_s > 0

    film = await deposit(
        gate,
        SPACE,
        source="rf_sputter",
        power_w=400.0,
        material=GLASS,
        thickness_nm=50.0,
        substrate_temp_c=25.0,
        process_pressure_pa=0.5,
        clock=CLOCK,
        timeout_s=3600.0,
    )
    assert film.source == "rf_sputter"
    assert film.thickness_nm >= 50.0
    assert film.process_pressure_pa == pytest.approx(0.5, rel=0.2)
    assert film.stabilised_rate_nm_s > 0
    assert film.mean_rate_nm_s > 0
    # the QCM was told the glass from the materials table (1.889 g/cm3, the plant's is 1.9) and reads
    # it back; the shutter closes one QCM poll late, which at this speed is tens of plant seconds
    snapshot = gate.snapshot()
    assert (snapshot[("qcm", "film_density")].value, snapshot[("qcm", "film_z_ratio")].value) == (1.89, 2.429)
    grown = line.sim.plant.substrates[SPACE].thickness_nm
    assert grown == pytest.approx(film.thickness_nm * 1.889 / 1.9, rel=0.5)
    await assert_switched_off(gate)

    heat = await anneal(gate, SPACE, temp_c=45.0, duration_s=60.0, clock=CLOCK)
    assert heat.hold_min_c >= 45.0 - 2.5
    assert heat.hold_max_c <= 45.0 + 2.5
    assert heat.final_temp_c is not None
    assert heat.final_temp_c < 40.0
    await assert_switched_off(gate)

    filled = await fill_with_gas(gate, SPACE, clock=CLOCK, timeout_s=600.0)
    state = gate.state().spaces[SPACE]
    assert filled >= gate.state().limits.room_pressure_pa
    assert not state.valves["gas_fill"].maybe_open
    assert state.valves["turbo_gate"].confirmed_closed
    assert not state.base_pressure_reached  # a fill spends the base pressure: the gate knows it

    # the turbo was stopped by the fill and still coasts: the next roughing waits for it, no trip
    again = await pump_to_base(gate, SPACE, base_pressure_pa=BASE_PA, clock=CLOCK, timeout_s=3 * 3600.0)
    assert again.pressure_pa <= BASE_PA
    assert gate.snapshot()[("turbo", "error_code")].value == 0.0
    assert line.sim.plant.turbos["process.turbo"].error_code == "000000"


async def test_a_cancelled_deposit_still_switches_everything_off(line: Line) -> None:
    gate = line.gate
    await pump_to_base(gate, SPACE, base_pressure_pa=BASE_PA, clock=CLOCK, timeout_s=3600.0)
    task = asyncio.create_task(
        deposit(
            gate,
            SPACE,
            source="dc_sputter",
            power_w=500.0,
            material="Li",
            thickness_nm=5000.0,
            substrate_temp_c=25.0,
            process_pressure_pa=0.5,
            clock=CLOCK,
            timeout_s=36_000.0,
        )
    )

    # the shutters are open: cancel in the middle of the film
    await wait_for(gate, lambda _: io_output(gate, f"{SPACE}.shutter_dc_sputter"), 20.0, "shutter open")
    assert gate.state().spaces[SPACE].sources_on == {"dc_sputter"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_sources_and_shutters_off(gate)  # at once: the clean-up finished before the cancellation went on
    await assert_switched_off(gate)  # and the next polls of the plant agree
    assert line.sim.plant.sources["dc_sputter"].enabled is False


async def test_a_monitor_holding_another_film_stops_the_layer_before_its_shutters_open(line: Line) -> None:
    """The film is read back from the monitor's own polled readings: someone changing it at the front
    panel right after the controller programmed it (here, the moment the gate reports it done) is a
    ProcessFault naming the parameter, and no film grows."""
    gate = line.gate
    await pump_to_base(gate, SPACE, base_pressure_pa=BASE_PA, clock=CLOCK, timeout_s=3600.0)
    monitor = line.sim.bound["qcm"].sim

    def front_panel(record: GateRecord) -> None:
        if isinstance(record.command.action, SetFilm) and record.outcome == "done":
            monitor.films[1] = replace(monitor.films[1], density_g_cm3=2.5)

    gate.subscribe(front_panel)
    with pytest.raises(ProcessFault, match=r"density \(g/cm³\) reads 2.50, commanded 0.53"):
        await deposit(
            gate,
            SPACE,
            source="dc_sputter",
            power_w=500.0,
            material="Li",
            thickness_nm=100.0,
            substrate_temp_c=25.0,
            process_pressure_pa=0.5,
            clock=CLOCK,
            timeout_s=3600.0,
        )
    gate.unsubscribe(front_panel)
    assert line.sim.plant.substrates[SPACE].thickness_nm == 0.0
    await assert_switched_off(gate)


async def test_a_material_the_monitor_cannot_measure_is_a_process_fault(line: Line) -> None:
    with pytest.raises(ProcessFault, match="cannot be told what 'LiSiPO' is"):
        await deposit(
            line.gate,
            SPACE,
            source="rf_sputter",
            power_w=400.0,
            material="LiSiPO",
            thickness_nm=100.0,
            substrate_temp_c=25.0,
            process_pressure_pa=0.5,
            clock=CLOCK,
            timeout_s=3600.0,
        )


async def test_a_base_pressure_timeout_raises_and_leaves_the_chamber_safe(line: Line) -> None:
    gate = line.gate
    with pytest.raises(StepTimeout, match="plant time"):  # far below what the walls allow
        await pump_to_base(gate, SPACE, base_pressure_pa=1e-9, clock=CLOCK, timeout_s=600.0)
    state = gate.state().spaces[SPACE]
    for valve in ("rough", "vent", "gas_fill"):
        assert state.valves[valve].confirmed_closed, valve
    assert all(p.valve.confirmed_closed for p in gate.state().ports_of(SPACE))
    await assert_switched_off(gate)


async def test_make_safe_never_opens_and_completes_under_cancellation(line: Line) -> None:
    gate = line.gate
    actions = safe_state_actions(gate, SPACE)
    assert not any(opens_or_starts(a) for a in actions if not isinstance(a, SetHeater))
    assert all(a.setpoint_c <= 40.0 for a in actions if isinstance(a, SetHeater))
    task = asyncio.create_task(make_safe(gate, SPACE, user="test"))
    await asyncio.sleep(0)  # let it start, then cancel it mid-way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done = [r for r in gate.records if r.command.user == "test"]
    assert [r.command.action for r in done] == actions  # every command ran although cancelled
    assert all(r.outcome == "done" for r in done)
    records = await make_safe(gate, SPACE, user="test")
    assert len(records) == len(actions)


def test_plant_clock_converts_both_ways() -> None:
    clock = PlantClock(300.0)
    assert clock.wall_s(600.0) == pytest.approx(2.0)
    assert clock.plant_s(2.0) == pytest.approx(600.0)
    with pytest.raises(ValueError, match="speed"):
        PlantClock(0.0)
