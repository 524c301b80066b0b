"""Third-party clients written for our serial instrument families drive `depline sim` through their APIs.

`depline sim` runs as its own process and announces its pseudo-terminals; each client opens the pty
as the serial port it takes it for and does what it is for: open, identify, read, write a setpoint,
read status. None of these libraries was written with this project, so a format both our driver and
our simulator got wrong shows here.

- numat's ``alicat`` (async) on the process MFC: firmware, data frame, gas select, setpoint, lock
  status, tare, valve hold, PID registers;
- ``pfeiffer-turbo`` (a TC 110 / HiPace drive client) on the turbo: name, firmware, speeds, error code
  and history, pumping station on and off, settings written and read back;
- ``pfeiffer-vacuum-protocol`` (a DigiLine gauge client) on the turbo's gauge input and on a TPG 36x
  in Pfeiffer-protocol mode: error code, firmware, pressure, correction factor, and the ``NO_DEF`` a
  parameter the device lacks gets.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
import serial
from alicat.driver import FlowController
from pfeiffer_turbo import TC110
from pfeiffer_vacuum_protocol import pfeiffer_vacuum_protocol as pvp

from drivers.link import Link
from drivers.pfeiffer_vacuum_protocol import PfeifferGauge
from drivers.reading import Quality
from drivers.transport import SerialSettings
from sim_hardware.devices.pfeiffer_vacuum_protocol import PfeifferProtocolSession, tpg36x_bus_devices
from sim_hardware.endpoint import PtyEndpoint

P = ParamSpec("P")
R = TypeVar("R")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def sim_ports() -> Iterator[dict[str, str]]:
    """`depline sim` on the standard line: device name -> the serial URL it announced."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while "sources" not in urls:
            assert time.monotonic() < deadline, "depline sim did not announce its endpoints"
            line = proc.stdout.readline()
            assert line, "depline sim exited before announcing its endpoints"
            record = json.loads(line)
            urls.setdefault(record["device"], record["url"])
        yield urls
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def tty(url: str) -> str:
    return url.split("://", 1)[1].split("?")[0]


# --- numat/alicat on the mass-flow controller --------------------------------------------------------


@pytest.fixture
async def flow_controller(sim_ports: dict[str, str]) -> AsyncIterator[FlowController]:
    fc = FlowController(tty(sim_ports["process_mfc"]), "A", timeout=2.0)
    try:
        yield fc
    finally:
        await fc.close()


async def test_alicat_client_identifies_reads_and_sets_the_mfc(flow_controller: FlowController) -> None:
    fc = flow_controller
    firmware = await fc.get_firmware()
    assert "10v" in firmware  # VE
    state = await fc.get()
    assert state["control_point"] == "mass flow"  # R122 = 37
    assert state["gas"] == "Ar"
    assert 0.0 < state["pressure"] < 100.0  # psia
    await fc.set_gas("N2")  # $$W46= then $$R46
    assert (await fc.get())["gas"] == "N2"
    await fc.set_gas("Ar")
    await fc.set_flow_rate(5.0)  # S5.00: the echoed setpoint must match
    assert (await fc.get())["setpoint"] == pytest.approx(5.0)
    await fc.set_flow_rate(0.0)
    pid = await fc.get_pid()  # $$r85, $$r21-23 (lower case)
    assert pid["loop_type"] in ("PD/PDF", "PD2I")


async def test_alicat_client_lock_hold_and_tare(flow_controller: FlowController) -> None:
    fc = flow_controller
    await fc.lock()
    assert await fc.is_locked()  # LCK in the data frame
    await fc.unlock()
    assert not await fc.is_locked()
    await fc.hold()
    await fc.cancel_hold()
    await fc.tare_volumetric()  # $$V: not refused
    await fc.tare_pressure()  # $$PC
    assert (await fc.get())["pressure"] == pytest.approx(14.70, abs=0.01)


# --- pfeiffer-turbo on the TC 110 --------------------------------------------------------------------


@pytest.fixture
def turbo(sim_ports: dict[str, str]) -> Iterator[Any]:
    """The drive; typed Any because the client builds one property per parameter at run time."""
    pump: Any = TC110.from_serial(tty(sim_ports["turbo"]), address=1, timeout_s=2.0)
    try:
        yield pump
    finally:
        pump.close()


def test_pfeiffer_turbo_client_identifies_and_reads_the_drive(turbo: Any) -> None:
    assert turbo.elec_name == "TC 110"
    assert turbo.fw_version == "010300"
    assert turbo.hw_version == "010100"
    assert turbo.nominal_speed > 0
    assert turbo.actual_spd >= 0
    assert turbo.error_code in ("000000", "Err006", "Err021", "Err073")
    assert turbo.err_hist1[:3] in ("000", "Err", "Wrn")
    assert turbo.op_hrs_pump >= 1520
    assert turbo.drv_voltage > 0
    assert turbo.pump_cycles >= 0
    assert isinstance(turbo.remote_prio, bool)


def test_pfeiffer_turbo_client_writes_settings_and_switches_the_station(turbo: Any) -> None:
    turbo.gas_mode = 1
    assert turbo.gas_mode == 1
    turbo.gas_mode = 0
    turbo.ru_time_sval = 12
    assert turbo.ru_time_sval == 12
    turbo.stby_sval = 70.0  # u_real: 007000
    assert turbo.stby_sval == pytest.approx(70.0)
    turbo.vent_mode = 1
    assert turbo.vent_mode == 1
    turbo.start()
    assert turbo.pumpg_statn is True
    assert isinstance(turbo.pump_accel, bool)
    turbo.stop()
    assert turbo.pumpg_statn is False


# --- pfeiffer-vacuum-protocol: gauge reads on the turbo's input and on a TPG 36x ----------------------


def test_pfeiffer_vacuum_protocol_client_reads_the_gauge_on_the_drive(sim_ports: dict[str, str]) -> None:
    with serial.Serial(tty(sim_ports["turbo"]), 9600, timeout=2.0) as port:
        assert pvp.read_error_code(port, 1) is pvp.ErrorCode.NO_ERROR
        assert pvp.read_software_version(port, 1) == (1, 3, 0)
        pvp.write_correction_value(port, 1, 2.5)
        assert pvp.read_correction_value(port, 1) == pytest.approx(2.5)
        pvp.write_correction_value(port, 1, 1.0)
        bar = pvp.read_pressure(port, 1)
        with pytest.raises(ValueError, match="undefined parameter"):  # P:741 is not a TC 110 parameter
            pvp.write_pressure_setpoint(port, 1, 1)
    assert bar > 0


async def test_both_clients_read_the_same_pressure_from_a_tpg36x_in_pfeiffer_protocol_mode() -> None:
    devices = tpg36x_bus_devices([lambda: 2.5e-4, lambda: 3.0e4])  # 2.5e-6 hPa and 300 hPa
    endpoint = PtyEndpoint("tpg-pvp", lambda: PfeifferProtocolSession(devices), SerialSettings(9600))
    await endpoint.start()
    link = Link(endpoint.url, name="tpg-pvp")
    try:
        ours = [await PfeifferGauge(link, name=f"ch{a}", address=a).read_pressure() for a in (11, 12)]
        await link.close()
        with serial.Serial(endpoint.path, 9600, timeout=2.0) as port:
            theirs = [await _in_thread(pvp.read_pressure, port, a) for a in (11, 12)]
            assert await _in_thread(pvp.read_error_code, port, 11) is pvp.ErrorCode.NO_ERROR
            assert await _in_thread(pvp.read_software_version, port, 10) == (1, 1, 0)
    finally:
        await link.close()
        await endpoint.stop()
    for reading, bar in zip(ours, theirs, strict=True):
        assert reading.quality is Quality.OK
        assert bar * 1e5 == pytest.approx(reading.value, rel=1e-9)  # bar -> Pa
    assert not math.isclose(theirs[0], theirs[1])


async def _in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """A blocking client call while the simulated device answers on this event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
