"""The Modbus instruments against software nobody here wrote, configured from the vendors' tables.

- minimalmodbus 2.1.1 (PyPI) drives `depline sim`'s dew-point transmitter and temperature controller on
  the pseudo-terminal the simulator announces, with its own float byte orders;
- our drivers read a pymodbus 3.16 server set up per the vendor register tables (DMT143 / HMP4 status
  block in the manual's polarity, Eurotherm float region at 0x8000 + 2n, MSW first): an emulator our
  map definitions did not write, so a polarity or word-order mistake shared by our driver and our
  simulator shows here;
- pymodbus's client reads our simulated units' FC 43/14, FC 07 and FC 08, so the device role of those
  functions is checked against an independent host.
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import minimalmodbus
import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.pdu.diag_message import ReturnQueryDataResponse
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.dewpoint_transmitter import DEFAULT_SERIAL, DewPointTransmitter
from drivers.link import Link
from drivers.modbus import ModbusClient
from drivers.modbus_pdu import ReadDeviceIdCode
from drivers.reading import Quality
from drivers.setpoint_rate_units import RateUnitsUnknown
from drivers.temperature_controller import TemperatureController
from sim_hardware.devices.dewpoint_transmitter import DewPointTransmitterSim
from sim_hardware.devices.temperature_controller import TemperatureControllerSim
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint
from sim_hardware.modbus_device import ModbusRtuSession, ModbusTcpSession

ROOT = Path(__file__).resolve().parents[2]
STATUS_OK = 0x0000
NO_ERRORS = 0x0001  # HMP4 User Guide Table 78: error status 0001 = no errors
ONLINE = 0x0001  # online status 0001 = online data available


def lsw_first(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi]


def msw_first(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


# --- minimalmodbus against `depline sim` ------------------------------------------------------------


@asynccontextmanager
async def depline_sim() -> AsyncIterator[list[dict[str, Any]]]:
    """`depline sim` in a subprocess; yields its endpoint records once all are announced."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "sim",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        records: list[dict[str, Any]] = []
        while not any(r["device"] == "sources" for r in records):
            line = await asyncio.wait_for(proc.stdout.readline(), 20.0)
            assert line, "depline sim exited before announcing its endpoints"
            records.append(json.loads(line))
        yield records
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20.0)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


def instrument(tty: str, unit: int) -> minimalmodbus.Instrument:
    inst = minimalmodbus.Instrument(tty, unit)
    port = inst.serial
    assert port is not None
    port.baudrate = DEFAULT_SERIAL.baudrate
    port.stopbits = DEFAULT_SERIAL.stopbits
    port.parity = "N"
    port.timeout = 1.0
    return inst


def drive_transmitter(tty: str, unit: int) -> None:
    """What a commissioning engineer does with minimalmodbus on a DMT143 (DMT143 User Guide App. A)."""
    dmt = instrument(tty, unit)
    frost_point = dmt.read_float(0x0008, 3, 2, minimalmodbus.BYTEORDER_LITTLE_SWAP)
    assert 8.0 < frost_point < 11.0  # Td/f of 20 degC, 50 % RH room air: 9.3 degC
    h2o = dmt.read_float(0x0014, 3, 2, minimalmodbus.BYTEORDER_LITTLE_SWAP)
    assert 10_000.0 < h2o < 13_000.0
    status = dmt.read_registers(0x0200, 11)
    assert status[:2] == [NO_ERRORS, ONLINE]  # a healthy transmitter, in the manual's polarity
    assert status[7:] == [STATUS_OK] * 4  # RH, T, Td/f measurement status and device status
    assert dmt.read_register(0x1F00, signed=True) == -12345  # Table 30 test values
    assert dmt.read_float(0x1F01, 3, 2, minimalmodbus.BYTEORDER_LITTLE_SWAP) == pytest.approx(-123.45)
    assert dmt.read_string(0x1F03, 4).rstrip("\0") == "-123.45"
    dmt.write_float(0x0300, 1013.25, 2, minimalmodbus.BYTEORDER_LITTLE_SWAP)  # pressure compensation, FC16
    assert dmt.read_float(0x0300, 3, 2, minimalmodbus.BYTEORDER_LITTLE_SWAP) == pytest.approx(1013.25)
    with pytest.raises(minimalmodbus.IllegalRequestError):
        dmt.read_register(0x0008, functioncode=4)  # not a function of this transmitter: exception 01


def drive_controller(tty: str, unit: int) -> None:
    """Read PV/SP, write a setpoint, read the status as HA026230 and HA028651 describe them."""
    tc = instrument(tty, unit)
    pv = tc.read_float(0x8002)  # IEEE region, MSW first (minimalmodbus's default byte order)
    assert 10.0 < pv < 40.0
    assert tc.read_register(1, functioncode=4) == round(pv)  # "03 or 04": the same words
    tc.write_float(0x8004, 35.0)  # target setpoint, FC16
    assert tc.read_float(0x8004) == 35.0
    assert tc.read_register(2) == 35  # the integer region shows the same parameter
    assert int(tc.read_register(75)) & 0x0030 == 0  # status word: not manual, no sensor break
    assert tc.read_bits(2, 9, functioncode=1) == [0] * 9  # bit 2 auto/manual ... bit 10 sensor break
    with pytest.raises(minimalmodbus.NoResponseError):
        tc.write_bits(2, [1])  # FC15 is not in HA026230's list: the instrument does not answer


async def test_minimalmodbus_drives_depline_sims_transmitter_and_controller() -> None:
    async with depline_sim() as records:
        inlet = next(r for r in records if r["device"] == "inlet_dewpoint" and r["protocol"] == "modbus-rtu")
        heater = next(
            r for r in records if r["device"] == "substrate_heater" and r["protocol"] == "modbus-rtu"
        )
        assert inlet["url"] == heater["url"]  # one RS-485 bus
        tty = inlet["url"].removeprefix("rtu://").split("?")[0]
        try:
            await asyncio.to_thread(drive_transmitter, tty, inlet["unit"])
            await asyncio.to_thread(drive_controller, tty, heater["unit"])
        finally:
            port = instrument(tty, 1).serial  # one serial port, shared by both instruments
            assert port is not None
            port.close()


# --- our drivers against a pymodbus emulator of the vendors' tables ---------------------------------

DMT143_IDENTITY = {0x00: "Vaisala", 0x01: "DMT143", 0x02: "1.4.2", 0x80: "J1140501"}


def dmt143_emulator(unit: int) -> SimDevice:
    """Holding registers per devices.md §4 and the HMP4 / DMT143 tables, typed in, healthy."""
    measurements = [0] * 0x30
    for address, value in ((0x0002, 22.0), (0x0008, -60.0), (0x000A, -60.0), (0x0014, 10.68)):
        measurements[address : address + 2] = lsw_first(value)
    status = [NO_ERRORS, ONLINE, 0, 0, 0, 0x5678, 0x1234, STATUS_OK, STATUS_OK, STATUS_OK, STATUS_OK]
    test = [0xCFC7, *lsw_first(-123.45), 0x2D31, 0x3233, 0x2E34, 0x3500]
    return SimDevice(
        id=unit,
        simdata=[
            SimData(address=0x0000, values=measurements, datatype=DataType.REGISTERS),
            SimData(address=0x0200, values=status, datatype=DataType.REGISTERS),
            SimData(address=0x0300, values=lsw_first(1013.25), datatype=DataType.REGISTERS),
            SimData(address=0x1F00, values=test, datatype=DataType.REGISTERS),
        ],
    )


def eurotherm_emulator(unit: int) -> SimDevice:
    """A 3216 per HA026230 §6 / HA028651 §15.5: integer parameters, floats at 0x8000 + 2n MSW first."""
    integers = [0] * 600
    integers[1:6] = [250, 300, 0, 40, 300]
    integers[531] = 1  # setpoint-rate units: code 1 (the enum is not settled for the 3216)
    floats = [0x0000, 0x8000] * 600  # enum/int parameters pad their second word with 8000h
    for parameter, value in ((1, 250.0), (2, 300.0), (4, 40.0), (5, 300.0), (35, 0.0)):
        floats[2 * parameter : 2 * parameter + 2] = msw_first(value)
    return SimDevice(
        id=unit,
        simdata=[
            SimData(address=0, values=integers, datatype=DataType.REGISTERS),
            SimData(address=0x8000, values=floats, datatype=DataType.REGISTERS),
        ],
    )


@asynccontextmanager
async def emulated_bus() -> AsyncIterator[tuple[ModbusTcpServer, ModbusClient]]:
    identity = ModbusDeviceIdentification(info=dict(DMT143_IDENTITY))  # type: ignore[no-untyped-call]
    server = ModbusTcpServer(
        [dmt143_emulator(240), eurotherm_emulator(1)], address=("127.0.0.1", 0), identity=identity
    )
    await server.serve_forever(background=True)
    listener = server.transport  # pymodbus types it BaseTransport; a listening server holds an asyncio.Server
    assert isinstance(listener, asyncio.Server)
    link = Link(f"tcp://127.0.0.1:{listener.sockets[0].getsockname()[1]}", name="emulator")
    try:
        yield server, ModbusClient(link, timeout_s=2.0)
    finally:
        await link.close()
        await server.shutdown()  # type: ignore[no-untyped-call]


async def test_our_transmitter_driver_against_an_emulated_dmt143() -> None:
    """Would have failed with the old map: a healthy DMT143 (error status 0001) read as ERROR."""
    async with emulated_bus() as (server, client):
        dmt = DewPointTransmitter(client, name="inlet_dewpoint", unit=240)
        readings = await dmt.poll()
        assert readings["frost_point"].value == -60.0
        assert readings["h2o"].value == pytest.approx(10.68, rel=1e-6)
        assert all(r.quality is Quality.OK for r in readings.values())
        assert await dmt.check_word_order() == "little"
        await server.async_setValues(240, 3, 0x0200, [0x0000])  # "one or more errors active"
        assert (await dmt.read_frost_point()).quality is Quality.ERROR
        await server.async_setValues(240, 3, 0x0200, [NO_ERRORS])
        await server.async_setValues(240, 3, 0x0209, [0x0080])  # Td/f sensor failure
        assert (await dmt.read_h2o()).quality is Quality.ERROR
        assert (await dmt.read_status()).faults() == ("Td/f: sensor failure",)
        await server.async_setValues(240, 3, 0x0209, [STATUS_OK])
        await server.async_setValues(240, 3, 0x0201, [0x0000])  # output locked
        assert (await dmt.read_frost_point()).quality is Quality.STALE
        await dmt.set_pressure_compensation_pa(50_000.0)
        assert await server.async_getValues(240, 3, 0x0300, 2) == lsw_first(500.0)  # hPa on the wire
        identity = await dmt.identify()
        assert (identity.vendor, identity.product_code, identity.firmware) == ("Vaisala", "DMT143", "1.4.2")
        assert identity.serial_number == "J1140501"


async def test_our_controller_driver_against_an_emulated_3216() -> None:
    async with emulated_bus() as (server, client):
        tc = TemperatureController(client, name="substrate_heater", unit=1)
        readings = await tc.poll()
        assert (readings["temperature"].value, readings["setpoint"].value) == (250.0, 300.0)
        assert readings["output"].value == 40.0
        await tc.set_setpoint_c(280.0)
        assert await server.async_getValues(1, 3, 0x8004, 2) == [0x438C, 0x0000]  # 280.0, MSW first
        with pytest.raises(RateUnitsUnknown):
            await tc.set_rate_limit_c_per_min(5.0)
        checked = TemperatureController(client, name="substrate_heater", unit=1, rate_units_order="min-h-s")
        await checked.set_rate_limit_c_per_min(5.0)  # code 1 is per hour in this reading: 300 degC/h
        assert await server.async_getValues(1, 3, 0x8046, 2) == msw_first(300.0)


async def test_our_client_reads_pymodbus_device_identification() -> None:
    async with emulated_bus() as (_server, client):
        ident = await client.read_device_identification(240, ReadDeviceIdCode.EXTENDED)
        assert {k: ident.text(k) for k in DMT143_IDENTITY} == DMT143_IDENTITY
        single = await client.read_device_identification(240, ReadDeviceIdCode.SPECIFIC, 0x80)
        assert single.objects == {0x80: b"J1140501"}


# --- pymodbus's client against our simulated units ---------------------------------------------------


async def test_pymodbus_client_identifies_our_simulated_transmitter() -> None:
    sim = DewPointTransmitterSim(240, frost_point_c=lambda: -60.0, h2o_ppmv=lambda: 10.68)
    ep = TcpEndpoint("gateway", lambda: ModbusTcpSession({240: sim.unit}, gateway=True))
    await ep.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=ep.port, timeout=2, retries=0)
    try:
        assert await client.connect()
        stream = await client.read_device_information(read_code=3, object_id=0, device_id=240)
        assert isinstance(stream, ReadDeviceInformationResponse)
        assert stream.information[0x00] == b"Vaisala"
        assert stream.information[0x01] == b"DMT143"
        assert stream.information[0x80] == b"S0000240"
        single = await client.read_device_information(read_code=4, object_id=0x04, device_id=240)
        assert isinstance(single, ReadDeviceInformationResponse)
        assert single.information == {0x04: b"Vaisala DRYCAP(R) Dewpoint Transmitter DMT143"}
        rr = await client.read_holding_registers(0x0200, count=2, device_id=240)
        assert rr.registers == [NO_ERRORS, ONLINE]
    finally:
        client.close()
        await ep.stop()


async def test_pymodbus_client_uses_the_eurotherm_serial_line_functions() -> None:
    sim = TemperatureControllerSim(2, pv_c=lambda: 18.3, setpoint_c=21.6)
    sim.manual = sim.sensor_break = True
    ep = PtyEndpoint("rs485", lambda: ModbusRtuSession({2: sim.unit}), DEFAULT_SERIAL, scheme="rtu")
    await ep.start()
    client = AsyncModbusSerialClient(
        ep.path,
        framer=FramerType.RTU,
        baudrate=19200,
        bytesize=8,
        parity="N",
        stopbits=2,
        timeout=1,
        retries=0,
    )
    try:
        assert await client.connect()
        rr = await client.read_exception_status(device_id=2)
        assert rr.status == 0x30  # HA026230 §3.17: sensor break + manual
        echo = await client.diag_query_data(msg=b"\x12\x34", device_id=2)
        assert isinstance(echo, ReturnQueryDataResponse)
        assert echo.message == b"\x12\x34"
        rr = await client.read_coils(2, count=9, device_id=2)
        assert (rr.bits[0], rr.bits[8]) == (True, True)  # bit 2 manual, bit 10 sensor break
        rr = await client.read_input_registers(1, count=2, device_id=2)
        assert rr.registers == [18, 22]
    finally:
        client.close()
        await asyncio.sleep(0.05)  # let the serial transport release the port
        await ep.stop()
