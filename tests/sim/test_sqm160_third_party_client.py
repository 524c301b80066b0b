"""pymeasure's SQM160 instrument class, a client nobody here wrote, drives the simulated line's thickness
monitor through its public API over pyvisa-py, on the pty `depline sim` exposes as a serial port.

pymeasure reads and frames on its own (its own checksum, its own status handling), so this catches a
simulator that only agrees with our driver. It has no film-parameter API, so the film is set through
our driver on the same port and pymeasure's thickness shows the new conversion. (pymeasure's docstring
calls its thickness Å; the simulator sends the kÅ of the front panel, the unit question that
drivers/thickness_monitor.py leaves [U].)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from pymeasure.instruments.inficon.sqm160 import SQM160  # type: ignore[import-untyped]

from controller.config.line_config import load_line_config
from controller.line.devices import build_line_devices
from controller.line.materials import film_properties
from drivers.thickness_monitor import ThicknessMonitor
from sim_hardware.endpoint import PtyEndpoint
from sim_hardware.line import SimLine

T = TypeVar("T")
LI_TRUE_KG_M3 = 534.0


@pytest.fixture
async def sim() -> AsyncIterator[SimLine]:
    async with SimLine(load_line_config(), speed=1.0) as line:
        yield line


async def in_thread(client: Any, call: Callable[[Any], T]) -> T:
    """pyvisa blocks: run the client in a thread while the simulator's loop serves the pty."""
    return await asyncio.to_thread(call, client)


async def test_pymeasure_reads_identity_and_every_sensor_value(sim: SimLine) -> None:
    endpoint = sim.link_of("qcm").endpoint
    assert isinstance(endpoint, PtyEndpoint)  # a real serial port for pyvisa
    path = endpoint.path
    client = await asyncio.to_thread(SQM160, f"ASRL{path}::INSTR", visa_library="@py")
    try:
        assert await in_thread(client, lambda c: c.firmware_version) == "MON Ver 4.13"
        assert await in_thread(client, lambda c: c.number_of_channels) == 2
        assert await in_thread(client, lambda c: c.reset_flag) is True  # first read after power-up
        assert await in_thread(client, lambda c: c.reset_flag) is False
        assert await in_thread(client, lambda c: c.sensor_1.frequency) == pytest.approx(6.0e6)
        assert await in_thread(client, lambda c: c.sensor_2.crystal_life) == pytest.approx(100.0)
        assert await in_thread(client, lambda c: c.sensor_1.rate) == 0.0
        assert await in_thread(client, lambda c: c.sensor_1.thickness) == 0.0
        assert await in_thread(client, lambda c: c.average_rate) == 0.0
        # W: pymeasure skips the first five characters and splits the rest on commas; the SQM-160
        # separates with spaces, so the public API hands back the text of the sensor groups
        values = await in_thread(client, lambda c: c.all_values)
        assert values.split() == ["00.00", "0.000", "6000000.000", "00.00", "0.000", "6000000.000"]

        # lithium lands on the crystals: frequency and thickness move as pymeasure reads them
        crystal = sim.plant.qcm.channel(1)
        crystal.deposit(100e-9 * LI_TRUE_KG_M3 * crystal.geometry_ratio, 1.0, LI_TRUE_KG_M3, 4.2e9)
        assert await in_thread(client, lambda c: c.sensor_1.frequency) < 6.0e6
        factory_reading = await in_thread(client, lambda c: c.sensor_1.thickness)
        assert factory_reading == pytest.approx(1.000 * 0.534, abs=0.001)  # kÅ, at 1.0 g/cm³

        # the film is set by our driver on the same port (pymeasure has no film API), read by pymeasure
        devices = build_line_devices(sim.simulated_config())
        try:
            lithium = film_properties("Li")
            await devices.get("qcm", ThicknessMonitor).set_film(
                lithium.density_g_cm3, z_ratio=lithium.z_ratio
            )
        finally:
            await devices.close()
        reading = await in_thread(client, lambda c: c.sensor_1.thickness)
        assert reading == pytest.approx(1.000 * 0.534 / 0.53, abs=0.001)  # 100 nm = 1 kÅ

        await in_thread(client, lambda c: c.reset_thickness_rate())
        await in_thread(client, lambda c: c.reset_time())
        assert await in_thread(client, lambda c: c.sensor_1.thickness) == 0.0
        await in_thread(client, lambda c: c.reset_system_parameters())  # Z: back to the factory film
        assert sim.bound["qcm"].sim.films == {}
    finally:
        await asyncio.to_thread(client.adapter.close)
