"""`depline commission`: a read-only probe of every configured device, as a site is commissioned.

Why it exists beside `config check` and `run`: the first never opens a port, and the second sends
safe-state commands at start. Commissioning asks the opposite question: on each link, who answers,
what it says it is (model, serial number, firmware, where its protocol offers that), the state of its
I/O points and its readings with their units, without changing anything on the line. So this module
calls only the drivers' read methods: `poll()` and the identity reads listed in `IDENTITY`, never a
setter; a test holds the simulator's record of writes to empty.

Links are probed concurrently, the devices of one link one after the other (one request at a time on
a cable, as the poller does). A device that does not answer its poll within `PROBE_TIMEOUT_S` is
named; identity that a device refuses or lacks is noted, not a failure (it still answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.errors import DriverError

if TYPE_CHECKING:
    from controller.config.line_config import DeviceConfig, LineConfig
    from controller.line.devices import Driver

# The line's devices and drivers are imported where a probe uses them: `depline --help` and the other
# commands start without them.

PROBE_TIMEOUT_S = 3.0  # one device's poll or identity read, over the drivers' own reply timeouts
BOOL_UNIT = "bool"  # readings in this unit are I/O points (valves, doors, alarms), shown as on/off

Identity = dict[str, str]


async def _tpg_identity(driver: Driver) -> Identity:
    """AYT (TPG 36x manual, mnemonic list): model, part number, serial number, firmware, hardware."""
    from drivers.tpg36x import Tpg36x

    assert isinstance(driver, Tpg36x)
    fields = (await driver.query("AYT")).split(",")
    names = ("model", "part_number", "serial_number", "firmware", "hardware")
    return {name: value.strip() for name, value in zip(names, fields, strict=False)}


async def _turbo_identity(driver: Driver) -> Identity:
    """Pfeiffer Vacuum Protocol parameters 349 (electronics name) and 312 (firmware version)."""
    from drivers.pfeiffer_vacuum_protocol import TurboPump

    assert isinstance(driver, TurboPump)
    return {"model": await driver.read_name(), "firmware": str(await driver.read_parameter(312))}


async def _dewpoint_identity(driver: Driver) -> Identity:
    """Modbus FC 43/14 device identification, extended stream."""
    from drivers.dewpoint_transmitter import DewPointTransmitter

    assert isinstance(driver, DewPointTransmitter)
    ident = await driver.identify()
    return {
        "vendor": ident.vendor,
        "model": ident.model or ident.product_name,
        "serial_number": ident.serial_number,
        "firmware": ident.firmware,
        "calibration_date": ident.calibration_date,
    }


async def _mfc_identity(driver: Driver) -> Identity:
    """Alicat ``??M*`` manufacturing information."""
    from drivers.mass_flow_controller import MassFlowController

    assert isinstance(driver, MassFlowController)
    info = await driver.read_manufacturing_info()
    labels = {"Model Number": "model", "Serial Number": "serial_number", "Software Revision": "firmware"}
    return {labels[label]: value for label, value in info.items()}


async def _qcm_identity(driver: Driver) -> Identity:
    """SQM-160 ``@``: model and firmware version in one text."""
    from drivers.thickness_monitor import ThicknessMonitor

    assert isinstance(driver, ThicknessMonitor)
    return {"firmware": await driver.firmware()}


IDENTITY: dict[str, Callable[[Driver], Awaitable[Identity]]] = {
    "tpg36x": _tpg_identity,
    "pfeiffer_turbo": _turbo_identity,
    "dewpoint_transmitter": _dewpoint_identity,
    "mass_flow_controller": _mfc_identity,
    "thickness_monitor": _qcm_identity,
}
# why the others have none: their register maps (Eurotherm 3216, glovebox controller, remote I/O
# coupler, source supplies) as configured here carry no identity registers, and FC 43/14 is not
# answered by them (a 3216 stays silent on it)
NO_IDENTITY = "its protocol offers none here"


@dataclass(frozen=True, slots=True)
class Value:
    value: float | None  # None: not a finite number (JSON has no NaN)
    unit: str
    quality: str


@dataclass(frozen=True, slots=True)
class DeviceProbe:
    """What one device answered, or why it did not."""

    device: str
    family: str
    link: str
    url: str
    address: str
    answers: bool
    error: str = ""
    identity: Identity = field(default_factory=dict)
    identity_note: str = ""
    points: dict[str, bool | None] = field(default_factory=dict)
    readings: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Commissioning:
    line: str
    devices: tuple[DeviceProbe, ...]

    @property
    def silent(self) -> list[str]:
        return [d.device for d in self.devices if not d.answers]

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "ok": not self.silent, "silent": self.silent,
                "devices": [asdict(d) for d in self.devices]}  # fmt: skip


async def commission(config: LineConfig, *, timeout_s: float = PROBE_TIMEOUT_S) -> Commissioning:
    """Probe every configured device once; nothing is written to any of them."""
    from controller.line.devices import build_line_devices

    devices = build_line_devices(config)
    try:
        per_link = [
            _probe_link(config, [d for d in config.devices if d.link == link], devices.drivers, timeout_s)
            for link in config.links
        ]
        found = {p.device: p for probes in await asyncio.gather(*per_link) for p in probes}
    finally:
        await devices.close()
    return Commissioning(config.name, tuple(found[d.name] for d in config.devices))


async def _probe_link(
    config: LineConfig, on_link: list[DeviceConfig], drivers: dict[str, Driver], timeout_s: float
) -> list[DeviceProbe]:
    return [await _probe(config, d, drivers[d.name], timeout_s) for d in on_link]


async def _probe(config: LineConfig, device: DeviceConfig, driver: Driver, timeout_s: float) -> DeviceProbe:
    address = "-" if device.address is None else str(device.address)
    where = (device.name, device.family, device.link, config.links[device.link].url, address)
    try:
        readings = await asyncio.wait_for(driver.poll(), timeout_s)
    except (DriverError, TimeoutError) as exc:
        return DeviceProbe(*where, answers=False, error=_why(exc, timeout_s))
    points = {n: (None if not r.ok else r.value != 0.0) for n, r in readings.items() if r.unit == BOOL_UNIT}
    values = {
        n: Value(r.value if math.isfinite(r.value) else None, r.unit, r.quality.value)
        for n, r in readings.items()
        if r.unit != BOOL_UNIT
    }
    identity: Identity = {}
    note = NO_IDENTITY
    if (read_identity := IDENTITY.get(device.family)) is not None:
        try:
            identity = await asyncio.wait_for(read_identity(driver), timeout_s)
            note = ""
        except (DriverError, TimeoutError) as exc:
            note = f"identity not read: {_why(exc, timeout_s)}"
    return DeviceProbe(*where, answers=True, identity=identity, identity_note=note, points=points,
                       readings=values)  # fmt: skip


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:g} s"
    return f"{type(exc).__name__}: {exc}"


# -- output -----------------------------------------------------------------------------------------


def render_table(result: Commissioning) -> str:
    """One row per device, then its identity, I/O points and readings indented beneath it."""
    row = "{:<22} {:<22} {:<20} {:<5} {:<7} {}"
    lines = [f"line {result.line!r}: commissioning probe (read-only)"]
    lines.append(row.format("DEVICE", "FAMILY", "LINK", "ADDR", "ANSWERS", "IDENTITY"))
    for d in result.devices:
        identity = ", ".join(f"{k} {v}" for k, v in d.identity.items() if v) or d.identity_note
        lines.append(
            row.format(d.device, d.family, d.link, d.address, "yes" if d.answers else "NO",
                       identity if d.answers else d.error)
        )  # fmt: skip
        if d.points:
            shown = ", ".join(
                f"{n} {'?' if on is None else ('on' if on else 'off')}" for n, on in d.points.items()
            )
            lines.append(f"    points: {shown}")
        for name, v in d.readings.items():
            number = "nan" if v.value is None else f"{v.value:.6g}"
            quality = "" if v.quality == "ok" else f" ({v.quality})"
            lines.append(f"    {name} = {number} {v.unit}{quality}".rstrip())
    answering = sum(d.answers for d in result.devices)
    lines.append(f"{answering} of {len(result.devices)} devices answer")
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------------


def add_commission_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "commission",
        help="probe every configured device read-only: who answers, identity, I/O points, readings",
        description="Open every configured link and ask each device, read-only, for its readings (with "
        "units), the state of its I/O points and, where its protocol offers it, its identity (model, serial "
        "number, firmware). Nothing is ever written: no output, no setpoint. Exit 0 when every device "
        "answers, 1 naming those that do not, 2 for bad input.",
    )
    parser.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument(
        "--timeout",
        type=float,
        default=PROBE_TIMEOUT_S,
        help=f"seconds per device (default {PROBE_TIMEOUT_S:g})",
    )
    parser.add_argument("--sim", action="store_true", help="probe the simulated line started in-process")
    parser.add_argument("--scenario", help="with --sim: the simulator's fault-scenario TOML")
    parser.set_defaults(handler=_cmd_commission)


def _cmd_commission(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config
    from controller.errors import UserError

    if args.scenario is not None and not args.sim:
        raise UserError("commission: --scenario injects faults into the simulated line; it needs --sim")
    if not 0.1 <= args.timeout <= 60.0:
        raise UserError(f"commission: --timeout {args.timeout:g} outside 0.1 .. 60 s")
    config = load_line_config(args.config)
    result = asyncio.run(
        _commission_line(config, sim=args.sim, scenario=args.scenario, timeout_s=args.timeout)
    )
    print(json.dumps(result.as_json(), indent=2) if args.json else render_table(result))
    if result.silent:
        print(f"depline commission: not answering: {', '.join(result.silent)}", file=sys.stderr)
        return 1
    return 0


async def _commission_line(
    config: LineConfig, *, sim: bool, scenario: str | None, timeout_s: float
) -> Commissioning:
    async with _line(config, sim, scenario) as line:
        return await commission(line, timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def _line(config: LineConfig, sim: bool, scenario: str | None) -> AsyncIterator[LineConfig]:
    if not sim:
        yield config
        return
    from controller.service.demo import SimulatedLine

    async with SimulatedLine(config, 1.0, scenario)() as simulated:
        await asyncio.sleep(0.2)  # a scenario's faults at 0 s are in force before the first question
        yield simulated
