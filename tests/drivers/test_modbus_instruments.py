"""Each Modbus instrument driver against its simulator over real endpoints.

The dew-point transmitters (240, 241) and the temperature controllers (1, 2) share ONE RS-485 bus on
a pseudo-terminal at 19200 8N2; the remote I/O, glovebox controller and source rack are Modbus TCP.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from drivers.deposition_sources import DepositionSources, FaultCode, SourceStatus
from drivers.dewpoint_status import DeviceStatus, MeasurementStatus
from drivers.dewpoint_transmitter import DEFAULT_SERIAL, DewPointTransmitter, TransmitterIdentity
from drivers.errors import ConfigError, DeviceRefused, DeviceTimeout
from drivers.glovebox_controller import GloveboxController, GloveboxStatus, RegenerationStep
from drivers.link import Link
from drivers.modbus import ModbusClient
from drivers.modbus_framing import encode_rtu_frame
from drivers.reading import Quality
from drivers.remote_io import ModuleStatus, RemoteIo
from drivers.setpoint_rate_units import RATE_UNIT_ORDERS, RateUnit, RateUnitsUnknown
from drivers.temperature_controller import ControllerStatus, TemperatureController
from sim_hardware.devices.deposition_sources import DepositionSourcesSim, IdealSourceBackend
from sim_hardware.devices.dewpoint_transmitter import DewPointTransmitterSim
from sim_hardware.devices.glovebox_controller import GloveboxControllerSim
from sim_hardware.devices.remote_io import RemoteIoSim
from sim_hardware.devices.temperature_controller import TemperatureControllerSim
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint
from sim_hardware.modbus_device import ModbusRtuSession, ModbusTcpSession, ModbusUnit

H = bytes.fromhex


class Clock:
    """A virtual clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Plant:
    """The few physical values the simulators ask for."""

    def __init__(self) -> None:
        self.frost_point_c = -60.0
        self.h2o_ppmv = 10.68
        self.substrate_c = 25.0
        self.o2_ppmv = 0.8
        self.box_pa = 250.0
        self.outputs: dict[str, bool] = {}
        self.inputs: dict[str, bool] = {}


@dataclass
class Bus:
    plant: Plant
    clock: Clock
    inlet: DewPointTransmitterSim
    outlet: DewPointTransmitterSim
    heater: TemperatureControllerSim
    source_heater: TemperatureControllerSim
    client: ModbusClient


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    plant, clock = Plant(), Clock()
    inlet = DewPointTransmitterSim(
        240, frost_point_c=lambda: plant.frost_point_c, h2o_ppmv=lambda: plant.h2o_ppmv
    )
    outlet = DewPointTransmitterSim(241, frost_point_c=lambda: -45.0, h2o_ppmv=lambda: 70.0, word_order="big")
    heater = TemperatureControllerSim(1, pv_c=lambda: plant.substrate_c, clock=clock)
    source_heater = TemperatureControllerSim(2, pv_c=lambda: 300.0, clock=clock)
    units = {u.unit.unit_id: u.unit for u in (inlet, outlet, heater, source_heater)}
    ep = PtyEndpoint("rs485", lambda: ModbusRtuSession(units), DEFAULT_SERIAL, scheme="rtu")
    await ep.start()
    link = Link(ep.url, name="rs485")
    try:
        yield Bus(plant, clock, inlet, outlet, heater, source_heater, ModbusClient(link, timeout_s=0.3))
    finally:
        await link.close()
        await ep.stop()


async def tcp_client(unit: ModbusUnit) -> tuple[TcpEndpoint, Link, ModbusClient]:
    ep = TcpEndpoint("tcp", lambda: ModbusTcpSession({unit.unit_id: unit}))
    await ep.start()
    link = Link(ep.url, name="tcp")
    return ep, link, ModbusClient(link, timeout_s=0.5)


# -- dew-point transmitters on the shared bus ------------------------------------------------------------


async def test_dewpoint_poll_on_the_shared_bus(bus: Bus) -> None:
    inlet = DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240)
    outlet = DewPointTransmitter(bus.client, name="outlet_dewpoint", unit=241, word_order="big")
    r = await inlet.poll()
    assert r["frost_point"].value == -60.0
    assert r["frost_point"].unit == "degC"
    assert r["frost_point"].ok
    assert r["h2o"].value == pytest.approx(10.68, rel=1e-6)
    assert r["h2o"].unit == "ppmv"
    assert r["frost_point_atm"].value == pytest.approx(-60.0, abs=0.01)
    assert r["temperature"].value == 22.0
    o = await outlet.poll()
    assert o["frost_point"].value == -45.0
    assert o["h2o"].value == 70.0
    assert await inlet.check_word_order() == "little"
    assert await outlet.check_word_order() == "big"
    misconfigured = DewPointTransmitter(bus.client, name="x", unit=240, word_order="big")
    assert await misconfigured.check_word_order() == "little"


async def test_healthy_transmitter_reads_healthy_in_the_manuals_polarity(bus: Bus) -> None:
    """HMP4 User Guide Table 78: 0x0200 reads 0001 with no errors, 0x0201 0001 with online data."""
    raw = await bus.client.read_holding_registers(240, 0x0200, 11)
    assert raw[:2] == [0x0001, 0x0001]
    assert raw[7:] == [0, 0, 0, 0]  # RH, T, Td/f measurement status and device status: OK
    inlet = DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240)
    assert all(r.ok for r in (await inlet.poll()).values())
    status = await inlet.read_status()
    assert (status.errors_active, status.online, status.faults()) == (False, True, ())
    bus.inlet.sensor_failed = True
    raw = await bus.client.read_holding_registers(240, 0x0200, 11)
    assert raw[0] == 0x0000  # "one or more errors active"
    assert raw[9] & 0x0080  # Td/f: sensor failure
    assert (await inlet.read_frost_point()).quality is Quality.ERROR


async def test_dewpoint_faults_become_quality_and_typed_errors(bus: Bus) -> None:
    inlet = DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240)
    bus.inlet.warming_up = True
    r = await inlet.poll()
    assert math.isnan(r["frost_point"].value)
    assert r["frost_point"].quality is Quality.SENSOR_OFF
    assert inlet.status is not None
    assert "Td/f: not ready" in inlet.status.faults()
    bus.inlet.warming_up = False
    bus.inlet.sensor_failed = True
    assert (await inlet.read_frost_point()).quality is Quality.ERROR
    status = await inlet.read_status()
    assert status.errors_active
    assert MeasurementStatus.SENSOR_FAILURE in status.measurement["dew_frost_point"]
    assert DeviceStatus.CRITICAL in status.device
    assert status.faults()[:2] == (
        "errors active (error code 0x00000004)",
        "device: critical error, maintenance needed",
    )
    assert await inlet.read_error_code() == 0x0004
    bus.inlet.sensor_failed = False
    assert (await inlet.read_frost_point()).ok
    bus.inlet.output_locked = True  # purge / autocalibration: the output holds its last value
    bus.plant.frost_point_c = -30.0
    held = await inlet.read_frost_point()
    assert (held.value, held.quality) == (-60.0, Quality.STALE)
    bus.inlet.output_locked = False
    bus.inlet.measurement_flags["dew_frost_point"] = MeasurementStatus.UNDER_RANGE
    assert (await inlet.read_h2o()).quality is Quality.UNDER_RANGE
    bus.inlet.measurement_flags.clear()
    bus.plant.frost_point_c = -60.0
    bus.inlet.mapped.stick("frost_point")
    bus.plant.frost_point_c = -20.0
    assert (await inlet.read_frost_point()).value == -60.0  # a frozen output looks healthy
    bus.inlet.mapped.release("frost_point")
    assert (await inlet.read_frost_point()).value == -20.0
    bus.inlet.unit.forced_exception = 0x04
    with pytest.raises(DeviceRefused) as refused:
        await inlet.poll()
    assert refused.value.code == "04"
    bus.inlet.unit.forced_exception = None
    bus.inlet.unit.silent = True
    with pytest.raises(DeviceTimeout):
        await inlet.read_h2o()
    outlet = DewPointTransmitter(bus.client, name="outlet_dewpoint", unit=241, word_order="big")
    assert (await outlet.read_h2o()).ok  # one silent device does not take the bus down
    bus.inlet.unit.silent = False
    assert (await inlet.read_h2o()).ok


async def test_dewpoint_identifies_itself_and_refuses_undocumented_functions(bus: Bus) -> None:
    """DMT143 User Guide Table 31 objects over FC 43/14; anything but 03/16/43 is exception 01."""
    inlet = DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240)
    identity = await inlet.identify()
    assert identity == TransmitterIdentity(
        vendor="Vaisala",
        product_code="DMT143",
        firmware="1.4.2",
        product_name="Vaisala DRYCAP(R) Dewpoint Transmitter DMT143",
        model="G1A1A1A0A0ASX",
        serial_number="S0000240",
        calibration_date="",
        calibration_text="",
    )
    for call in (
        bus.client.write_register(240, 0x0600, 240),
        bus.client.read_input_registers(240, 0x0008, 2),
        bus.client.read_coils(240, 0, 1),
        bus.client.read_exception_status(240),
    ):
        with pytest.raises(DeviceRefused) as refused:
            await call
        assert refused.value.code == "01"
    # the test block of Table 30, the text included
    assert await bus.client.read_holding_registers(240, 0x1F00, 7) == [
        0xCFC7, 0xE666, 0xC2F6, 0x2D31, 0x3233, 0x2E34, 0x3500
    ]  # fmt: skip


async def test_dewpoint_pressure_compensation_round_trip(bus: Bus) -> None:
    inlet = DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240)
    hash_before = (await inlet.read_status()).security_hash
    await inlet.set_pressure_compensation_pa(50_000.0)
    assert bus.inlet.pressure_compensation_pa == 50_000.0
    assert (await inlet.read_status()).security_hash != hash_before
    assert (await inlet.poll())["frost_point_atm"].value > -60.0  # more water per volume at 1 atm
    with pytest.raises(DeviceRefused) as refused:
        await inlet.set_pressure_compensation_pa(-5.0)
    assert refused.value.code == "03"


# -- temperature controllers on the same bus ---------------------------------------------------------------


async def test_temperature_controller_setpoint_and_poll(bus: Bus) -> None:
    tc = TemperatureController(bus.client, name="substrate_heater", unit=1)
    await tc.set_setpoint_c(150.0)
    assert bus.heater.target_sp_c == 150.0
    assert await tc.read_setpoint_c() == 150.0
    r = await tc.poll()
    assert r["temperature"].value == 25.0
    assert r["temperature"].ok
    assert r["setpoint"].value == 150.0
    assert r["working_setpoint"].value == 150.0
    assert r["output"].value == 100.0
    assert r["output"].unit == "%"
    other = TemperatureController(bus.client, name="source_heater", unit=2)
    assert (await other.read_pv()).value == 300.0
    with pytest.raises(DeviceRefused) as refused:
        await tc.set_setpoint_c(1000.0)
    assert refused.value.code == "03"


async def test_fc06_into_the_float_region_is_refused_on_the_wire(bus: Bus) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await bus.client.write_register(1, 0x8004, 0x4396)
    assert refused.value.code == "03"
    assert bus.heater.target_sp_c == 20.0


async def test_temperature_controller_rate_limit_manual_and_sensor_break(bus: Bus) -> None:
    tc = TemperatureController(bus.client, name="substrate_heater", unit=1, rate_units_order="s-min-h")
    await tc.set_rate_limit_c_per_min(60.0)
    await tc.set_setpoint_c(80.0)
    assert ControllerStatus.RAMP_RUNNING in await tc.read_status()
    bus.clock.t += 30.0
    assert await tc.read_working_setpoint_c() == pytest.approx(50.0)
    await tc.set_manual(True)
    await tc.set_manual_output_pct(40.0)
    assert (await tc.read_output_pct()).value == 40.0
    assert ControllerStatus.MANUAL in await tc.read_status()
    await tc.set_manual(False)
    bus.heater.sensor_break = True
    pv = await tc.read_pv()
    assert pv.quality is Quality.ERROR
    assert (await tc.poll())["output"].value == 0.0
    bus.heater.sensor_break = False
    bus.heater.alarm1_high_c = 20.0
    status = await tc.read_status()
    assert ControllerStatus.ALARM_1 in status
    assert ControllerStatus.NEW_ALARM in status
    bus.heater.alarm1_high_c = None
    await tc.acknowledge_alarms()
    assert ControllerStatus.NEW_ALARM not in await tc.read_status()
    assert (await tc.read_pv()).ok


async def test_ramp_is_refused_while_the_rate_units_are_not_known(bus: Bus) -> None:
    """The 3216's enum for 531 is not settled: without the site's reading a ramp is refused, typed."""
    tc = TemperatureController(bus.client, name="substrate_heater", unit=1)
    with pytest.raises(RateUnitsUnknown) as refused:
        await tc.set_rate_limit_c_per_min(5.0)
    assert refused.value.code == 1  # the simulated controller counts per minute, code 1 in its order
    assert "s-min-h: per_minute, min-h-s: per_hour" in refused.value.reason
    assert bus.heater.rate_limit == 0.0  # nothing was written
    await tc.set_rate_limit_c_per_min(0.0)  # "no limit" needs no unit
    with pytest.raises(ConfigError, match="s-min-h, min-h-s"):
        TemperatureController(bus.client, name="substrate_heater", unit=1, rate_units_order="per minute")


@pytest.mark.parametrize("order", sorted(RATE_UNIT_ORDERS))
@pytest.mark.parametrize("unit", list(RateUnit))
async def test_ramp_rate_lands_in_degrees_per_minute_for_either_reading(order: str, unit: RateUnit) -> None:
    """Whatever the controller counts in, 60 degC/min moves the working setpoint 30 degC in 30 s.

    A driver that guessed the enum instead of using the site's reading fails two of the three units
    of one of the orders here: by 60x or 3600x.
    """
    clock = Clock()
    sim = TemperatureControllerSim(1, pv_c=lambda: 25.0, clock=clock, rate_units_order=order)
    sim.rate_unit = unit  # as set on the front panel
    ep = PtyEndpoint("rs485", lambda: ModbusRtuSession({1: sim.unit}), DEFAULT_SERIAL, scheme="rtu")
    await ep.start()
    link = Link(ep.url, name="rs485")
    try:
        tc = TemperatureController(
            ModbusClient(link, timeout_s=0.3), name="heater", unit=1, rate_units_order=order
        )
        await tc.set_rate_limit_c_per_min(60.0)
        assert sim.rate_limit_c_per_min() == pytest.approx(60.0)
        await tc.set_setpoint_c(80.0)
        clock.t += 30.0
        assert await tc.read_working_setpoint_c() == pytest.approx(50.0)
    finally:
        await link.close()
        await ep.stop()


def test_eurotherm_sim_answers_the_handbooks_own_frames() -> None:
    """HA026230 §3.13-3.18 example frames, byte for byte (unit 19 for FC 01, unit 2 for the rest)."""
    clock = Clock()
    unit19 = TemperatureControllerSim(19, pv_c=lambda: 25.0, clock=clock)
    unit19.manual, unit19.sensor_break = True, True
    unit2 = TemperatureControllerSim(2, pv_c=lambda: 18.3, clock=clock, setpoint_c=21.6)
    bus = ModbusRtuSession({19: unit19.unit, 2: unit2.unit})
    # §3.13 read 14 bits from address 2: manual (bit 2) and sensor break (bit 10)
    assert bus.receive(H("13 01 00 02 00 0E 1F 7C")) == H("13 01 02 01 01 C1 AF")
    # "01 or 02": FC 02 reads the same bits
    assert bus.receive(encode_rtu_frame(19, H("02 00 02 00 0E"))) == encode_rtu_frame(19, H("02 02 01 01"))
    # §3.14 read PV and target SP in integer resolution: 18.3 and 21.6 -> 18, 22
    assert bus.receive(H("02 03 00 01 00 02 95 F8")) == H("02 03 04 00 12 00 16 E8 F8")
    # "03 or 04": FC 04 reads the same words
    assert bus.receive(encode_rtu_frame(2, H("04 00 01 00 02"))) == encode_rtu_frame(
        2, H("04 04 00 12 00 16")
    )
    # §3.15 write bit 2 with "01 00": manual mode; the reply is the command
    assert bus.receive(H("02 05 00 02 01 00 6D A9")) == H("02 05 00 02 01 00 6D A9")
    assert unit2.manual
    # §3.17 fast status: 30h = sensor break + manual
    unit2.sensor_break = True
    assert bus.receive(H("02 07 41 12")) == H("02 07 30 D2 24")
    # §3.18 loopback, diagnostic code 0 only
    assert bus.receive(H("02 08 00 00 12 34 ED 4F")) == H("02 08 00 00 12 34 ED 4F")
    assert bus.receive(encode_rtu_frame(2, H("08 00 01 00 00"))) == encode_rtu_frame(2, H("88 03"))
    # §3.16 write SP 25.0 in full resolution (one decimal place): 250
    full_resolution = TemperatureControllerSim(
        2, pv_c=lambda: 17.8, clock=clock, setpoint_c=21.6, decimal_places=1
    )
    one_dp = ModbusRtuSession({2: full_resolution.unit})
    # §3.14's full-resolution reply: its bytes (and CRC) say 178 = 17.8, whatever its caption says
    assert one_dp.receive(H("02 03 00 01 00 02 95 F8")) == H("02 03 04 00 B2 00 D8 69 4E")
    assert one_dp.receive(H("02 06 00 02 00 FA A8 7A")) == H("02 06 00 02 00 FA A8 7A")
    assert full_resolution.target_sp_c == 25.0
    # §3.12: no reply to a function the instrument lacks (15, 17, 23, 43 ...); §3.20: errors 02 / 03 only
    for pdu in ("0F 00 00 00 01 01 01", "11", "2B 0E 01 00", "17 00 00 00 01 00 00 00 01 02 00 00"):
        assert bus.receive(encode_rtu_frame(2, H(pdu))) == b""
    assert bus.receive(encode_rtu_frame(2, H("03 40 00 00 01"))) == encode_rtu_frame(2, H("83 02"))


async def test_undocumented_functions_time_out_on_the_wire(bus: Bus) -> None:
    with pytest.raises(DeviceTimeout):
        await bus.client.write_coils(1, 2, [True])
    with pytest.raises(DeviceTimeout):
        await bus.client.read_device_identification(1)
    assert await bus.client.read_exception_status(1) == 0  # the bus is still in step
    await bus.client.loopback(1, H("A5 37"))


async def test_four_devices_polled_concurrently_on_one_bus(bus: Bus) -> None:
    drivers: list[DewPointTransmitter | TemperatureController] = [
        DewPointTransmitter(bus.client, name="inlet_dewpoint", unit=240),
        DewPointTransmitter(bus.client, name="outlet_dewpoint", unit=241, word_order="big"),
        TemperatureController(bus.client, name="substrate_heater", unit=1),
        TemperatureController(bus.client, name="source_heater", unit=2),
    ]
    for _ in range(3):
        inlet, outlet, heater, source = await asyncio.gather(*(d.poll() for d in drivers))
        assert inlet["frost_point"].value == -60.0
        assert outlet["frost_point"].value == -45.0
        assert heater["temperature"].value == 25.0
        assert source["temperature"].value == 300.0


async def test_rtu_units_through_a_tcp_gateway() -> None:
    sim = DewPointTransmitterSim(240, frost_point_c=lambda: -70.0, h2o_ppmv=lambda: 2.5)
    ep = TcpEndpoint("gateway", lambda: ModbusTcpSession({240: sim.unit}, gateway=True))
    await ep.start()
    link = Link(ep.url)
    try:
        r = await DewPointTransmitter(ModbusClient(link), name="gw", unit=240).poll()
        assert r["frost_point"].value == -70.0
        with pytest.raises(DeviceRefused) as refused:
            await DewPointTransmitter(ModbusClient(link), name="gw", unit=241).poll()
        assert refused.value.code == "0B"
    finally:
        await link.close()
        await ep.stop()


# -- remote I/O --------------------------------------------------------------------------------------------


async def test_remote_io_outputs_inputs_and_faults() -> None:
    plant, clock = Plant(), Clock()
    plant.inputs["inlet_gate.closed"] = True

    def on_output(name: str, on: bool) -> None:
        plant.outputs[name] = on

    sim = RemoteIoSim(on_output=on_output, read_input=lambda n: plant.inputs.get(n, False), clock=clock)
    ep, link, client = await tcp_client(sim.unit)
    try:
        io = RemoteIo(client, name="remote_io")
        await io.set_output("inlet.rough_valve", True)
        assert plant.outputs == {"inlet.rough_valve": True}
        outputs = await io.read_outputs()
        assert outputs["inlet.rough_valve"]
        assert not outputs["inlet.vent_valve"]
        inputs = await io.read_inputs()
        assert inputs["inlet_gate.closed"]
        assert not inputs["inlet_gate.open"]
        r = await io.poll()
        assert r["inlet.rough_valve"].value == 1.0
        assert r["inlet_gate.closed"].ok
        with pytest.raises(ConfigError):
            await io.set_output("inlet_gate.closed", True)
        sim.forced_inputs["inlet_gate.open"] = True  # a stuck limit switch: both contacts made
        assert (await io.read_inputs())["inlet_gate.open"]
        sim.set_field_power(False)
        assert plant.outputs.get("inlet.rough_valve") is False
        r = await io.poll()
        assert r["inlet_gate.closed"].quality is Quality.ERROR
        assert r["inlet_gate.closed"].value == 0.0
        assert ModuleStatus.FIELD_POWER_MISSING in await io.read_status()
        sim.set_field_power(True)
        assert plant.outputs.get("inlet.rough_valve") is True
        await io.set_watchdog_ms(500)
        clock.t += 1.0
        assert ModuleStatus.WATCHDOG_TRIPPED in await io.read_status()
        assert plant.outputs.get("inlet.rough_valve") is False
        assert not (await io.read_outputs())["inlet.rough_valve"]
        await io.set_output("inlet.vent_valve", True)
        assert await io.read_status() == ModuleStatus(0)
    finally:
        await link.close()
        await ep.stop()


# -- glovebox controller -------------------------------------------------------------------------------------


async def test_glovebox_atmosphere_alarms_and_regeneration() -> None:
    plant, clock = Plant(), Clock()
    circulation: list[bool] = []
    sim = GloveboxControllerSim(
        o2_ppmv=lambda: plant.o2_ppmv,
        h2o_ppmv=lambda: plant.h2o_ppmv,
        box_pressure_pa=lambda: plant.box_pa,
        on_circulation=circulation.append,
        clock=clock,
        regeneration_s=1000.0,
    )
    ep, link, client = await tcp_client(sim.unit)
    try:
        box = GloveboxController(client, name="inlet_glovebox")
        r = await box.poll()
        assert r["o2"].value == pytest.approx(0.8)
        assert r["o2"].unit == "ppmv"
        assert r["o2"].ok
        assert r["box_pressure"].value == pytest.approx(250.0)
        assert r["box_pressure"].unit == "Pa"
        assert r["circulation_running"].value == 1.0
        assert r["glove_breach"].value == 0.0
        await box.set_alarm_limits(o2_ppmv=5.0)
        plant.o2_ppmv = 12.0
        assert (await box.read_alarms())["o2_high"]
        plant.o2_ppmv = 0.5
        assert (await box.read_alarms())["o2_high"]  # latched until acknowledged
        await box.acknowledge_alarms()
        assert not (await box.read_alarms())["o2_high"]
        sim.glove_breach = True
        assert (await box.poll())["glove_breach"].value == 1.0
        assert GloveboxStatus.ALARM_ACTIVE in await box.read_status()
        sim.o2_sensor_failed = True
        assert (await box.poll())["o2"].quality is Quality.ERROR
        sim.o2_sensor_failed = False
        with pytest.raises(DeviceRefused) as refused:
            await box.start_regeneration()
        assert refused.value.code == "04"
        await box.set_circulation(False)
        assert circulation == [False]
        await box.start_regeneration()
        clock.t += 300.0
        step, remaining = await box.read_regeneration()
        assert step is RegenerationStep.REGENERATING
        assert remaining == pytest.approx(700.0)
        with pytest.raises(DeviceRefused):
            await box.set_circulation(True)
        clock.t += 800.0
        assert (await box.read_regeneration())[0] is RegenerationStep.IDLE
        await box.set_circulation(True)
        await box.set_pressure_window_pa(-200.0, 800.0)
        assert sim.limits["pressure_low"] == pytest.approx(-200.0)
    finally:
        await link.close()
        await ep.stop()


# -- deposition sources ------------------------------------------------------------------------------------


async def test_sources_setpoints_enable_and_readbacks() -> None:
    clock = Clock()
    backend = IdealSourceBackend()
    sim = DepositionSourcesSim(backend=backend, clock=clock)
    ep, link, client = await tcp_client(sim.unit)
    try:
        rack = DepositionSources(client, name="sources")
        await rack.set_power_w("dc_sputter", 200.0)
        await rack.enable("dc_sputter")
        state = await rack.read_source("dc_sputter")
        assert state.output_on
        assert state.fault is FaultCode.NONE
        assert state.readbacks["dc_sputter.power"].value == pytest.approx(200.0)
        assert state.readbacks["dc_sputter.voltage"].value == pytest.approx(400.0)
        await rack.set_setpoint("pulsed_laser", "pulse_energy_setpoint", 0.25)
        await rack.set_setpoint("pulsed_laser", "rep_rate_setpoint", 10.0)
        await rack.set_setpoint("ion_source", "beam_current_setpoint", 0.05)
        assert sim.sources["ion_source"].setpoints[1] == pytest.approx(0.05)
        await rack.enable("pulsed_laser")
        before = sim.unit.requests
        r = await rack.poll()
        assert sim.unit.requests - before == 1  # every source's readbacks in one request
        assert r["pulsed_laser.power"].value == pytest.approx(2.5)
        assert r["pulsed_laser.pulse_energy"].value == pytest.approx(0.25)
        assert r["pulsed_laser.pulse_energy"].unit == "J"
        assert r["rf_sputter.output_on"].value == 0.0
        assert r["rf_sputter.interlock_ok"].value == 1.0
        with pytest.raises(DeviceRefused) as refused:
            await rack.set_power_w("rf_sputter", 5000.0)
        assert refused.value.code == "03"
        with pytest.raises(ConfigError):
            await rack.set_setpoint("dc_sputter", "rep_rate_setpoint", 1.0)
    finally:
        await link.close()
        await ep.stop()


async def test_sources_interlock_trip_refusal_reset_and_ramp() -> None:
    clock = Clock()
    backend = IdealSourceBackend()
    sim = DepositionSourcesSim(backend=backend, clock=clock)
    ep, link, client = await tcp_client(sim.unit)
    try:
        rack = DepositionSources(client, name="sources")
        backend.interlocks["rf_sputter"] = False
        with pytest.raises(DeviceRefused) as refused:
            await rack.enable("rf_sputter")
        assert refused.value.code == "04"
        assert not (await rack.read_source("rf_sputter")).output_on
        backend.interlocks["rf_sputter"] = True
        await rack.set_setpoint("rf_sputter", "ramp_rate", 10.0)
        await rack.set_power_w("rf_sputter", 100.0)
        await rack.enable("rf_sputter")
        clock.t += 5.0
        state = await rack.read_source("rf_sputter")
        assert state.readbacks["rf_sputter.power"].value == pytest.approx(50.0)
        assert SourceStatus.RAMPING in state.status
        backend.interlocks["rf_sputter"] = False  # the chamber door switch opens while sputtering
        state = await rack.read_source("rf_sputter")
        assert not state.output_on
        assert state.fault is FaultCode.INTERLOCK_OPEN
        assert state.readbacks["rf_sputter.power"].value == 0.0
        with pytest.raises(DeviceRefused):
            await rack.reset_fault("rf_sputter")
        backend.interlocks["rf_sputter"] = True
        with pytest.raises(DeviceRefused):
            await rack.enable("rf_sputter")  # still latched
        await rack.reset_fault("rf_sputter")
        await rack.enable("rf_sputter")
        sim.trip("rf_sputter", FaultCode.REFLECTED_POWER)
        assert (await rack.poll())["rf_sputter.fault"].value == float(FaultCode.REFLECTED_POWER)
    finally:
        await link.close()
        await ep.stop()
