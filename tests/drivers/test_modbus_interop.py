"""Our Modbus codec against independent implementations, so the two roles cannot agree on a wrong format.

- pymodbus 3.16 clients (TCP, and RTU on the pty path) read and write our simulated units;
- our `ModbusClient` reads and writes a pymodbus `ModbusTcpServer`;
- `mbpoll` (libmodbus, Debian) polls our simulated units over TCP and over a pty.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.errors import DeviceRefused
from drivers.link import Link
from drivers.modbus import ModbusClient
from drivers.transport import SerialSettings
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint
from sim_hardware.modbus_device import ModbusRtuSession, ModbusTcpSession, ModbusUnit

MBPOLL = shutil.which("mbpoll")
needs_mbpoll = pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (Debian package mbpoll)")
BUS_SERIAL = SerialSettings(19200, parity="N", stopbits=2)


def lsw_first(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi]


def msw_first(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def build_units() -> dict[int, ModbusUnit]:
    """A Vaisala-style probe (LSW-first floats), a Eurotherm-style controller (MSW-first), a remote I/O."""
    probe = ModbusUnit(240, holding_registers=[range(0, 0x30)])
    probe.set_registers("holding_registers", 0x08, lsw_first(-60.0))
    probe.set_registers("holding_registers", 0x14, lsw_first(10.68))
    controller = ModbusUnit(1, holding_registers=[range(0, 600), range(0x8000, 0x8000 + 1200)])
    controller.set_registers("holding_registers", 1, [18, 22])
    controller.set_registers("holding_registers", 0x8002, msw_first(250.0))
    remote_io = ModbusUnit(
        2,
        coils=[range(0, 32)],
        discrete_inputs=[range(0, 32)],
        holding_registers=[range(0, 16)],
        input_registers=[range(100, 110)],
    )
    remote_io.set_bits("coils", 0, [True, False, True, True, False, False, False, False, True])
    remote_io.set_bits("discrete_inputs", 3, [True, True, False, True])
    remote_io.set_registers("input_registers", 100, [0, 1, 65535, 32768])
    return {u.unit_id: u for u in (probe, controller, remote_io)}


@pytest.fixture
def units() -> dict[int, ModbusUnit]:
    return build_units()


@pytest.fixture
async def tcp_endpoint(units: dict[int, ModbusUnit]) -> AsyncIterator[TcpEndpoint]:
    ep = TcpEndpoint("modbus-tcp", lambda: ModbusTcpSession(units))
    await ep.start()
    try:
        yield ep
    finally:
        await ep.stop()


@pytest.fixture
async def rtu_endpoint(units: dict[int, ModbusUnit]) -> AsyncIterator[PtyEndpoint]:
    ep = PtyEndpoint("rs485", lambda: ModbusRtuSession(units), BUS_SERIAL, scheme="rtu")
    await ep.start()
    try:
        yield ep
    finally:
        await ep.stop()


# --- pymodbus as the master against our simulated units ----------------------------------------------


async def test_pymodbus_tcp_client_reads_and_writes_our_units(
    tcp_endpoint: TcpEndpoint, units: dict[int, ModbusUnit]
) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=tcp_endpoint.port, timeout=2, retries=0)
    try:
        assert await client.connect()
        rr = await client.read_holding_registers(0x14, count=2, device_id=240)
        assert not rr.isError()
        assert rr.registers == lsw_first(10.68)
        value = client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32, word_order="little")
        assert value == pytest.approx(10.68, rel=1e-6)
        rr = await client.read_holding_registers(0x8002, count=2, device_id=1)
        assert client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32, word_order="big") == 250.0
        rr = await client.read_input_registers(100, count=4, device_id=2)
        assert rr.registers == [0, 1, 65535, 32768]
        rr = await client.read_coils(0, count=9, device_id=2)
        assert rr.bits[:9] == [True, False, True, True, False, False, False, False, True]
        rr = await client.read_discrete_inputs(2, count=6, device_id=2)
        assert rr.bits[:6] == [False, True, True, False, True, False]
        # writes: every function code, checked in the data model
        regs = client.convert_to_registers(300.0, client.DATATYPE.FLOAT32, word_order="big")
        assert not (await client.write_registers(0x8004, regs, device_id=1)).isError()
        assert units[1].get_registers("holding_registers", 0x8004, 2) == msw_first(300.0)
        assert not (await client.write_register(2, 3000, device_id=1)).isError()
        assert units[1].get_registers("holding_registers", 2, 1) == [3000]
        assert not (await client.write_coil(20, True, device_id=2)).isError()
        bits = [True, False, False, True, True, False, True, False, False, True, True]
        assert not (await client.write_coils(21, bits, device_id=2)).isError()
        assert units[2].get_bits("coils", 20, 12) == [True, *bits]
        # exceptions: an address the unit lacks, a forced fault, a unit that is not there
        rr = await client.read_holding_registers(700, count=1, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 2
        units[2].forced_exception = 6
        rr = await client.read_coils(0, count=1, device_id=2)
        assert rr.isError()
        assert rr.exception_code == 6
        rr = await client.read_holding_registers(0, count=1, device_id=9)
        assert rr.isError()
        assert rr.exception_code == 0x0A
    finally:
        client.close()


async def test_pymodbus_rtu_client_on_our_pty_bus(
    rtu_endpoint: PtyEndpoint, units: dict[int, ModbusUnit]
) -> None:
    client = AsyncModbusSerialClient(
        rtu_endpoint.path,
        framer=FramerType.RTU,
        baudrate=BUS_SERIAL.baudrate,
        bytesize=8,
        parity="N",
        stopbits=2,
        timeout=1,
        retries=0,
    )
    try:
        assert await client.connect()
        rr = await client.read_holding_registers(0x08, count=2, device_id=240)
        assert not rr.isError()
        assert (
            client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32, word_order="little") == -60.0
        )
        rr = await client.read_holding_registers(1, count=2, device_id=1)
        assert rr.registers == [18, 22]
        rr = await client.read_coils(0, count=4, device_id=2)
        assert rr.bits[:4] == [True, False, True, True]
        assert not (await client.write_registers(0x8004, msw_first(300.0), device_id=1)).isError()
        assert units[1].get_registers("holding_registers", 0x8004, 2) == msw_first(300.0)
        assert not (await client.write_coils(0, [False] * 9, device_id=2)).isError()
        assert units[2].get_bits("coils", 0, 9) == [False] * 9
        rr = await client.read_input_registers(0, count=1, device_id=2)
        assert rr.isError()
        assert rr.exception_code == 2
    finally:
        client.close()
        await asyncio.sleep(0.05)  # let the serial transport release the port


# --- our client against pymodbus's server -----------------------------------------------------------


async def test_our_client_against_pymodbus_server() -> None:
    device = SimDevice(
        id=1,
        simdata=(
            [
                SimData(
                    address=0,
                    values=[True, False, True, True, False, False, False, False, True],
                    datatype=DataType.BITS,
                )
            ],
            [SimData(address=0, values=[False, True, True], datatype=DataType.BITS)],
            [
                SimData(address=0, count=100, values=0, datatype=DataType.REGISTERS),
                SimData(address=100, values=[11, 22, 65535], datatype=DataType.REGISTERS),
            ],
            [SimData(address=0, values=[5, 6, 7], datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    listener = server.transport  # pymodbus types it BaseTransport; a listening server holds an asyncio.Server
    assert isinstance(listener, asyncio.Server)
    port = listener.sockets[0].getsockname()[1]
    link = Link(f"tcp://127.0.0.1:{port}", name="pymodbus")
    client = ModbusClient(link, timeout_s=2.0)
    try:
        assert await client.read_holding_registers(1, 100, 3) == [11, 22, 65535]
        assert await client.read_input_registers(1, 0, 3) == [5, 6, 7]
        assert await client.read_coils(1, 0, 9) == [True, False, True, True, False, False, False, False, True]
        assert await client.read_discrete_inputs(1, 0, 3) == [False, True, True]
        await server.async_setValues(1, 3, 50, [4321, 8765])
        assert await client.read_holding_registers(1, 50, 2) == [4321, 8765]
        await client.write_registers(1, 10, [1, 2, 3])
        assert await server.async_getValues(1, 3, 10, 3) == [1, 2, 3]
        await client.write_register(1, 20, 77)
        assert await server.async_getValues(1, 3, 20, 1) == [77]
        await client.write_coil(1, 1, True)
        await client.write_coils(1, 4, [True, True, False, True])
        assert await client.read_coils(1, 0, 9) == [True, True, True, True, True, True, False, True, True]
        with pytest.raises(DeviceRefused) as refused:
            await client.read_holding_registers(1, 500, 1)
        assert refused.value.code == "02"
    finally:
        await link.close()
        await server.shutdown()  # type: ignore[no-untyped-call]


# --- mbpoll (libmodbus) as the master ---------------------------------------------------------------

_VALUE_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)", re.MULTILINE)


async def mbpoll(*args: str) -> tuple[int, str]:
    """Run mbpoll while our endpoint keeps serving in this event loop."""
    assert MBPOLL is not None
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 15.0)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def polled(output: str) -> dict[int, str]:
    return {int(ref): value for ref, value in _VALUE_LINE.findall(output)}


@needs_mbpoll
async def test_mbpoll_over_modbus_tcp(tcp_endpoint: TcpEndpoint, units: dict[int, ModbusUnit]) -> None:
    tcp = ["-m", "tcp", "-p", str(tcp_endpoint.port), "-0", "-o", "2"]
    rc, out = await mbpoll(*tcp, "-a", "240", "-r", "8", "-c", "2", "-t", "4:hex", "-1", "127.0.0.1")
    assert rc == 0, out
    assert polled(out) == {8: "0x0000", 9: "0xC270"}
    # mbpoll's float default is little-endian word order: the Vaisala layout
    rc, out = await mbpoll(*tcp, "-a", "240", "-r", "8", "-c", "1", "-t", "4:float", "-1", "127.0.0.1")
    assert rc == 0, out
    assert float(polled(out)[8]) == -60.0
    rc, out = await mbpoll(
        *tcp, "-a", "1", "-r", str(0x8002), "-c", "1", "-t", "4:float", "-B", "-1", "127.0.0.1"
    )
    assert rc == 0, out
    assert float(polled(out)[0x8002]) == 250.0
    rc, out = await mbpoll(*tcp, "-a", "2", "-r", "100", "-c", "4", "-t", "3", "-1", "127.0.0.1")
    assert rc == 0, out
    assert [polled(out)[r] for r in range(100, 104)] == ["0", "1", "65535", "32768"]
    rc, out = await mbpoll(*tcp, "-a", "2", "-r", "0", "-c", "9", "-t", "0", "-1", "127.0.0.1")
    assert rc == 0, out
    assert [polled(out)[r] for r in range(9)] == ["1", "0", "1", "1", "0", "0", "0", "0", "1"]
    rc, out = await mbpoll(*tcp, "-a", "2", "-r", "2", "-c", "6", "-t", "1", "-1", "127.0.0.1")
    assert rc == 0, out
    assert [polled(out)[r] for r in range(2, 8)] == ["0", "1", "1", "0", "1", "0"]
    # writes: several values = FC16 / FC15, one value = FC06 / FC05
    rc, out = await mbpoll(*tcp, "-a", "1", "-r", "10", "-t", "4", "127.0.0.1", "7", "65534", "300")
    assert rc == 0, out
    assert units[1].get_registers("holding_registers", 10, 3) == [7, 65534, 300]
    rc, out = await mbpoll(*tcp, "-a", "1", "-r", "20", "-t", "4", "127.0.0.1", "4242")
    assert rc == 0, out
    assert units[1].get_registers("holding_registers", 20, 1) == [4242]
    rc, out = await mbpoll(*tcp, "-a", "2", "-r", "16", "-t", "0", "127.0.0.1", "1", "0", "1", "1")
    assert rc == 0, out
    assert units[2].get_bits("coils", 16, 5) == [True, False, True, True, False]
    rc, out = await mbpoll(*tcp, "-a", "2", "-r", "17", "-t", "0", "127.0.0.1", "1")
    assert rc == 0, out
    assert units[2].get_bits("coils", 17, 1) == [True]
    rc, out = await mbpoll(*tcp, "-a", "1", "-r", "700", "-c", "1", "-t", "4", "-1", "127.0.0.1")
    assert rc != 0
    assert "Illegal data address" in out


@needs_mbpoll
async def test_mbpoll_over_rtu_on_a_pty(rtu_endpoint: PtyEndpoint, units: dict[int, ModbusUnit]) -> None:
    rtu = ["-m", "rtu", "-b", str(BUS_SERIAL.baudrate), "-P", "none", "-s", "2", "-0", "-o", "2"]
    path = rtu_endpoint.path
    rc, out = await mbpoll(*rtu, "-a", "240", "-r", "8", "-c", "2", "-t", "4:float", "-1", path)
    assert rc == 0, out
    values = polled(out)
    assert float(values[8]) == -60.0
    assert float(values[10]) == 0.0
    rc, out = await mbpoll(*rtu, "-a", "240", "-r", str(0x14), "-c", "2", "-t", "4:hex", "-1", path)
    assert rc == 0, out
    assert polled(out) == {0x14: "0xE148", 0x15: "0x412A"}
    rc, out = await mbpoll(*rtu, "-a", "1", "-r", "1", "-c", "2", "-t", "4", "-1", path)
    assert rc == 0, out
    assert polled(out) == {1: "18", 2: "22"}
    rc, out = await mbpoll(*rtu, "-a", "1", "-r", str(0x8004), "-t", "4", path, *map(str, msw_first(300.0)))
    assert rc == 0, out
    assert units[1].get_registers("holding_registers", 0x8004, 2) == msw_first(300.0)
    rc, out = await mbpoll(*rtu, "-a", "1", "-r", str(0x8004), "-c", "1", "-t", "4:float", "-B", "-1", path)
    assert rc == 0, out
    assert float(polled(out)[0x8004]) == 300.0
    rc, out = await mbpoll(*rtu, "-a", "2", "-r", "0", "-c", "4", "-t", "0", "-1", path)
    assert rc == 0, out
    assert [polled(out)[r] for r in range(4)] == ["1", "0", "1", "1"]
    rc, out = await mbpoll(*rtu, "-a", "2", "-r", "4", "-t", "0", path, "1")
    assert rc == 0, out
    assert units[2].get_bits("coils", 4, 1) == [True]
    rc, out = await mbpoll(*rtu, "-a", "1", "-r", "700", "-c", "1", "-t", "4", "-1", path)
    assert rc != 0
    assert "Illegal data address" in out
