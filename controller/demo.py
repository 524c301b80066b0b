"""`depline demo`: the simulated line purges the inlet antechamber, driven through the real drivers.

Everything goes over the wire: remote I/O coils (Modbus TCP) open valves and start the pump, the TPG
(mnemonics on a pseudo-terminal) reports pressure, the dew-point transmitter (Modbus RTU on the shared
RS-485 bus) the frost point, and the glovebox controller (Modbus TCP) the O2. This is the foundation
demo: the command gate and station machines (the next layer) will drive the same cycle through
interlocks; until then the script checks its own preconditions (doors closed) before acting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.config import LineConfig
from controller.devices import LineDevices, build_line_devices
from controller.errors import UserError
from drivers.dewpoint_transmitter import DewPointTransmitter
from drivers.errors import DriverError
from drivers.glovebox_controller import GloveboxController
from drivers.reading import Quality, Reading
from drivers.remote_io import RemoteIo
from drivers.tpg36x import Tpg36x
from sim_hardware.line import SimLine

EVACUATE_TO_PA = 20.0
REFILL_TO_PA = 99_000.0
STEP_TIMEOUT_VIRTUAL_S = 1800.0


@dataclass
class Instruments:
    """The drivers that watch one antechamber."""

    space: str
    gauge: Tpg36x
    gauge_channel: int
    dewpoint: DewPointTransmitter
    glovebox: GloveboxController
    io: RemoteIo


def _instruments(config: LineConfig, devices: LineDevices, space: str) -> Instruments:
    def one(family: str) -> str:
        names = [
            d.name for d in config.devices if d.family == family and (d.space == space or d.space is None)
        ]
        if not names:
            raise UserError(f"{config.path}: the demo needs a {family} device for space {space!r}")
        return names[0]

    gauge = next(
        (
            (d.name, int(key.removeprefix("pressure_ch")))
            for d in config.devices
            if d.family == "tpg36x"
            for key, bound in d.channels.items()
            if bound == space
        ),
        None,
    )
    if gauge is None:
        raise UserError(f"{config.path}: the demo needs a tpg36x channel bound to space {space!r}")
    return Instruments(
        space=space,
        gauge=devices.get(gauge[0], Tpg36x),
        gauge_channel=gauge[1],
        dewpoint=devices.get(one("dewpoint_transmitter"), DewPointTransmitter),
        glovebox=devices.get(one("glovebox_controller"), GloveboxController),
        io=devices.get(one("remote_io"), RemoteIo),
    )


async def _wait_for(
    read: Callable[[], Awaitable[Reading]], done: Callable[[Reading], bool], speed: float, what: str
) -> tuple[float, Reading]:
    """Poll until `done(reading)`; returns the virtual seconds it took and the last reading."""
    start = time.monotonic()
    deadline = start + STEP_TIMEOUT_VIRTUAL_S / speed
    while True:
        reading = await read()
        if done(reading):
            return (time.monotonic() - start) * speed, reading
        if time.monotonic() > deadline:
            raise UserError(f"demo: {what} did not finish within {STEP_TIMEOUT_VIRTUAL_S:.0f} s (virtual)")
        await asyncio.sleep(0.05)


def _at_atmosphere(reading: Reading) -> bool:
    return reading.quality is Quality.OVER_RANGE or (reading.ok and reading.value >= REFILL_TO_PA)


def _fmt_pa(value: float) -> str:
    return f"{value / 1000:7.1f} kPa" if value >= 1000 else f"{value:7.3g} Pa "


async def _purge_cycle(inst: Instruments, cycle: int, speed: float) -> None:
    io, space = inst.io, inst.space
    read_p = lambda: inst.gauge.read_pressure(inst.gauge_channel)  # noqa: E731
    await io.set_output(f"{space}.rough_pump", True)
    await io.set_output(f"{space}.rough_valve", True)
    t_evac, p_min = await _wait_for(read_p, lambda r: r.ok and r.value <= EVACUATE_TO_PA, speed, "evacuation")
    await io.set_output(f"{space}.rough_valve", False)
    await io.set_output(f"{space}.gas_fill_valve", True)
    # a Pirani/cold-cathode head reads over-range just above 1000 hPa: that counts as "filled"
    t_fill, p_fill = await _wait_for(read_p, _at_atmosphere, speed, "argon back-fill")
    await io.set_output(f"{space}.gas_fill_valve", False)
    await asyncio.sleep(2.0 / speed * 10)  # let the transmitter settle (~20 s virtual)
    frost = (await inst.dewpoint.poll())["frost_point_atm"]
    o2 = (await inst.glovebox.poll())["o2"]
    print(
        f"  cycle {cycle}: evacuated to {_fmt_pa(p_min.value)} in {t_evac:6.0f} s, "
        f"back-filled to {_fmt_pa(p_fill.value)}{'+' if p_fill.quality is Quality.OVER_RANGE else ' '} "
        f"in {t_fill:4.0f} s; "
        f"frost point {frost.value:7.1f} °C, O2 {o2.value:9.1f} ppmv"
    )


async def run_demo(config: LineConfig, *, speed: float, cycles: int) -> int:
    """Start the simulated line, purge the first antechamber `cycles` times, print what happened."""
    antechambers = [s.name for s in config.spaces if s.kind == "antechamber"]
    if not antechambers:
        raise UserError(f"{config.path}: the demo purges an antechamber, and this line has none")
    space = antechambers[0]
    async with SimLine(config, speed=speed) as sim:
        line = sim.simulated_config()
        devices = build_line_devices(line)
        try:
            inst = _instruments(line, devices, space)
            print(f"depline demo: simulated line {config.name!r} at {speed:g}x speed; endpoints:")
            for record in sim.endpoint_records():
                unit = f" unit {record['unit']}" if record.get("unit") is not None else ""
                print(f"  {record['device']:<20} {record['protocol']:<26} {record['url']}{unit}")
            doors = await inst.io.read_inputs()
            if not doors.get(f"{space}.outer_door.closed", False):
                raise UserError(f"demo: the {space} outer door is not reported closed; refusing to pump")
            p0 = await inst.gauge.read_pressure(inst.gauge_channel)
            f0 = (await inst.dewpoint.poll())["frost_point_atm"]
            o0 = (await inst.glovebox.poll())["o2"]
            print(
                f"\n{space} antechamber at start: {_fmt_pa(p0.value)}, frost point {f0.value:.1f} °C, "
                f"O2 {o0.value:.0f} ppmv (room air)"
            )
            print(
                f"purging {space}: evacuate to {EVACUATE_TO_PA:g} Pa, back-fill with argon, {cycles} cycles"
            )
            for cycle in range(1, cycles + 1):
                await _purge_cycle(inst, cycle, speed)
            await inst.io.set_output(f"{space}.rough_pump", False)
            frost = (await inst.dewpoint.poll())["frost_point_atm"].value
            limit = config.limits.max_frost_point_c
            verdict = "in spec: inert" if frost <= limit else "NOT in spec"
            print(
                f"\nresult: {space} frost point {frost:.1f} °C against the limit {limit:.0f} °C -> {verdict}"
            )
            used = [f"{n} {lk.stats.exchanges}" for n, lk in devices.links.items() if lk.stats.exchanges]
            print(f"exchanges per link: {', '.join(used)}")
        except DriverError as exc:
            raise UserError(f"demo: a device failed: {exc}") from exc
        finally:
            await devices.close()
    return 0
