"""The simulated line end to end: every configured driver against its simulator over real endpoints."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.errors import ConfigFileError
from controller.line.devices import LineDevices, build_line_devices
from drivers.deposition_sources import DepositionSources
from drivers.dewpoint_transmitter import DewPointTransmitter
from drivers.errors import DeviceRefused, DeviceTimeout, LinkDown, ProtocolError
from drivers.reading import Quality, Reading
from drivers.remote_io import RemoteIo
from drivers.temperature_controller import TemperatureController
from drivers.tpg36x import Tpg36x
from sim_hardware.faults import Fault, inject, load_scenario, run_scenario
from sim_hardware.line import SimLine
from sim_hardware.plant.gas import composition

ROOM_PA = 101325.0


class Line:
    def __init__(self, sim: SimLine, devices: LineDevices) -> None:
        self.sim = sim
        self.devices = devices
        self.driver = devices.get


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    async with SimLine(load_line_config(), speed=100.0) as sim:
        devices = build_line_devices(sim.simulated_config())
        try:
            yield Line(sim, devices)
        finally:
            await devices.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_every_device_answers_with_plausible_values(line: Line) -> None:
    readings: dict[str, dict[str, Reading]] = {}
    for name, driver in line.devices.drivers.items():
        readings[name] = await asyncio.wait_for(driver.poll(), 5.0)
        assert readings[name], f"{name} returned no channels"
    inlet = readings["antechamber_gauges"]["pressure_ch1"]
    assert inlet.unit == "Pa"
    # a PKR head reads over-range just above 1000 hPa: room air is at the top of its range
    assert inlet.quality in (Quality.OK, Quality.OVER_RANGE)
    assert inlet.value == pytest.approx(ROOM_PA, rel=0.02)
    dew = readings["inlet_dewpoint"]
    assert dew["frost_point"].ok
    assert 8.0 < dew["frost_point"].value < 11.0
    assert dew["h2o"].value == pytest.approx(11600, rel=0.05)
    box = readings["inlet_glovebox"]
    assert box["o2"].value == pytest.approx(206_000, rel=0.02)  # 20.9 % O2 diluted by the room's water
    assert readings["turbo"]["speed"].value == 0.0
    assert readings["substrate_heater"]["temperature"].value == pytest.approx(20.0, abs=1.0)
    assert readings["process_mfc"]["mass_flow"].value == pytest.approx(0.0, abs=0.05)
    qcm = readings["qcm"]
    assert 5.0e6 < qcm["frequency"].value <= 6.0e6
    io = readings["remote_io"]
    assert io["inlet.outer_door.closed"].value == 1.0
    assert io["inlet_gate.closed"].value == 1.0


async def test_remote_io_commands_move_the_plant_and_the_gauge_sees_it(line: Line) -> None:
    io = line.driver("remote_io", RemoteIo)
    gauge = line.driver("antechamber_gauges", Tpg36x)
    await io.set_output("inlet.rough_pump", True)
    await io.set_output("inlet.rough_valve", True)

    async def below_1kpa() -> bool:
        r = await gauge.read_pressure(1)
        return r.ok and r.value < 1000.0

    await eventually(below_1kpa)
    outlet = await gauge.read_pressure(2)
    assert outlet.value > 90_000.0  # the other antechamber is untouched
    inputs = await io.read_inputs()
    assert inputs["inlet.rough_pump.running"]
    assert not inputs["inlet.rough_pump.fault"]


async def test_heater_setpoint_reaches_the_plant_and_the_loop_heats(line: Line) -> None:
    heater = line.driver("substrate_heater", TemperatureController)
    await heater.set_setpoint_c(80.0)
    assert line.sim.plant.heaters["substrate"].setpoint_c == 80.0

    async def warming() -> bool:
        return (await heater.read_pv()).value > 30.0

    await eventually(warming)


async def test_silent_transmitter_times_out_alone_on_the_shared_bus(line: Line) -> None:
    inlet = line.driver("inlet_dewpoint", DewPointTransmitter)
    outlet = line.driver("outlet_dewpoint", DewPointTransmitter)
    undo = inject(line.sim, Fault("no_reply", device="inlet_dewpoint"))
    with pytest.raises(DeviceTimeout):
        await inlet.read_frost_point()
    assert (await outlet.read_frost_point()).ok  # the rest of the RS-485 bus keeps working
    undo()
    assert (await inlet.read_frost_point()).ok


async def test_modbus_exception_and_garbage_become_typed_errors_then_recover(line: Line) -> None:
    inlet = line.driver("inlet_dewpoint", DewPointTransmitter)
    gauge = line.driver("antechamber_gauges", Tpg36x)
    undo = inject(line.sim, Fault("modbus_exception", device="inlet_dewpoint", code=4))
    with pytest.raises(DeviceRefused) as refused:
        await inlet.read_frost_point()
    assert refused.value.code == "04"
    undo()
    inject(line.sim, Fault("garbage", device="antechamber_gauges", count=1))
    with pytest.raises((ProtocolError, DeviceTimeout)):
        await gauge.read_pressure(1)
    assert (await gauge.read_pressure(1)).value > 0


async def test_stuck_sensor_holds_while_the_plant_moves(line: Line) -> None:
    gauge = line.driver("antechamber_gauges", Tpg36x)
    io = line.driver("remote_io", RemoteIo)
    await gauge.read_pressure(1)
    inject(line.sim, Fault("stuck_sensor", device="antechamber_gauges", channel="pressure_ch1"))
    held = (await gauge.read_pressure(1)).value
    await io.set_output("inlet.rough_pump", True)
    await io.set_output("inlet.rough_valve", True)
    await asyncio.sleep(0.5)  # 50 s virtual: the real pressure is far below atmosphere by now
    assert line.sim.plant.spaces["inlet"].pressure_pa < 0.5 * ROOM_PA
    assert (await gauge.read_pressure(1)).value == held


async def test_leak_raises_the_pressure_of_an_isolated_evacuated_space(line: Line) -> None:
    space = line.sim.plant.spaces["inlet"]
    plant = line.sim.plant
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    await eventually(_async(lambda: space.pressure_pa < 20.0), 20.0)
    base = space.pressure_pa
    plant.valves["inlet.rough"].open = False
    inject(line.sim, Fault("leak", space="inlet", rate_pa_m3_s=1e-2))
    await eventually(_async(lambda: space.pressure_pa > 10 * base), 20.0)


async def test_device_power_cycle_drops_the_link_and_the_driver_reconnects(line: Line) -> None:
    io = line.driver("remote_io", RemoteIo)
    undo = inject(line.sim, Fault("device_power_cycle", device="remote_io"))
    with pytest.raises((LinkDown, DeviceTimeout)):
        await io.read_inputs()
    undo()

    async def back() -> bool:
        try:
            return bool(await io.read_inputs())
        except (LinkDown, DeviceTimeout):
            return False

    await eventually(back)


async def test_scenario_injects_on_the_virtual_clock(line: Line, tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        '[[events]]\nat_s = 5.0\nfault = "pump_failure"\npump = "inlet.rough"\nduration_s = 10.0\n'
        '[[events]]\nat_s = 1.0\nfault = "gas_supply_empty"\n'
    )
    events = load_scenario(path, line.sim)
    assert [e.fault.kind for e in events] == ["gas_supply_empty", "pump_failure"]
    task = asyncio.create_task(run_scenario(line.sim, events))
    pump = line.sim.plant.pumps["inlet.rough"]
    await eventually(_async(lambda: pump.failed))
    await eventually(_async(lambda: not pump.failed))
    await asyncio.wait_for(task, 5.0)
    assert line.sim.plant.supplies["ar"].empty


async def test_an_event_after_the_deposition_waits_for_a_source_to_emit(line: Line, tmp_path: Path) -> None:
    """ "Mid-deposition" in the plant's terms: at_s counts from the first moment a source emits, however
    long the load and pump-downs before it took."""
    path = tmp_path / "scenario.toml"
    path.write_text('[[events]]\nafter = "deposition"\nat_s = 2.0\nfault = "gas_supply_empty"\n')
    events = load_scenario(path, line.sim)
    task = asyncio.create_task(run_scenario(line.sim, events))
    await asyncio.sleep(0.5)  # 50 plant seconds, nothing lit
    assert not line.sim.plant.supplies["ar"].empty
    source = line.sim.plant.sources["rf_sputter"]
    low, high = source.pressure_window_pa
    source.space.fill(composition({"Ar": 1.0}), math.sqrt(low * high))
    rack = line.driver("sources", DepositionSources)  # switched on as the controller does: the rack
    await rack.set_power_w("rf_sputter", source.max_power_w)  # re-applies its own output state
    lit_s = line.sim.plant.time_s
    await rack.enable("rf_sputter")
    async with asyncio.timeout(30.0):  # wall time: a loaded machine runs the tasks late
        while not task.done():  # sputter gas held in its window, as the MFC and throttle would
            source.space.fill(composition({"Ar": 1.0}), math.sqrt(low * high))
            await asyncio.sleep(0.005)
    await eventually(_async(lambda: line.sim.plant.supplies["ar"].empty))
    assert line.sim.plant.time_s - lit_s >= 2.0  # counted from the plasma, not from the start


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[[events]]\nat_s = 1\nfault = "meltdown"\n', "events[0].fault"),
        ('[[events]]\nat_s = -1\nfault = "power_loss"\n', "events[0].at_s"),
        ('[[events]]\nat_s = 1\nfault = "power_loss"\nafter = "lunch"\n', "events[0].after"),
        ('[[events]]\nat_s = 1\nfault = "leak"\nspace = "attic"\nrate_pa_m3_s = 1e-3\n', "events[0].space"),
        ('[[events]]\nat_s = 1\nfault = "no_reply"\ndevice = "inlet_dewpoint"\ncolour = "red"\n', "colour"),
    ],
)
async def test_bad_scenarios_name_the_field(line: Line, tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_scenario(path, line.sim)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


VARIANTS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "lines").glob("*.toml"))


@pytest.mark.parametrize("path", VARIANTS, ids=[p.stem for p in VARIANTS])
async def test_topology_variants_are_configuration_not_code(path: Path) -> None:
    """A shared antechamber or two chambers in a row: the same code serves and drives them."""
    config = load_line_config(path)
    async with SimLine(config, speed=100.0) as sim:
        devices = build_line_devices(sim.simulated_config())
        try:
            for name, driver in devices.drivers.items():
                values = await asyncio.wait_for(driver.poll(), 5.0)
                assert values, name
                assert all(r.quality is not Quality.OK or math.isfinite(r.value) for r in values.values()), (
                    name
                )
            io = devices.get("remote_io", RemoteIo)
            gates = [p.name for p in config.ports if p.kind != "outer_door"]
            inputs = await io.read_inputs()
            assert all(inputs[f"{g}.closed"] for g in gates)
            await io.set_output(gates[-1], True)
            await eventually(_async(lambda: sim.plant.doors[gates[-1]].is_open))
        finally:
            await devices.close()


async def test_at_1000x_a_device_answers_with_the_plant_of_now_and_a_command_acts_from_its_arrival() -> None:
    """The runner advances the plant once per tick (here 1 s of wall time: 1000 plant seconds); a
    request in between must still see the plant of its own moment, and a command must not act from
    the previous tick on (which would close a valve up to a tick before it was sent)."""
    sim = SimLine(load_line_config(), speed=1000.0)
    sim.runner.real_step_s = 1.0
    async with sim:
        devices = build_line_devices(sim.simulated_config())
        try:
            gauge = devices.get("antechamber_gauges", Tpg36x)
            io = devices.get("remote_io", RemoteIo)
            await asyncio.sleep(0.3)  # a third of a tick: the runner has not advanced since it started
            await gauge.read_pressure(1)
            assert sim.clock.now_s() - sim.plant.time_s < 100.0
            await asyncio.sleep(0.3)
            await io.set_output("inlet.rough_pump", True)
            commanded_at = sim.plant.time_s
            assert sim.clock.now_s() - commanded_at < 100.0
            assert sim.plant.pumps["inlet.rough"].running
        finally:
            await devices.close()
