"""Remote I/O of the line on Modbus TCP (project-defined map, devices.md §0): commands and switches.

Coils are the commands of named outputs (valves, doors, gate valves, pumps, shutters); discrete inputs
are the limit switches (open / closed) and the pump running / fault contacts. The point list is data:
`IoPoints(outputs, inputs)`, and a point's address is its position in its list, so a site appends
points without moving the existing ones, and another topology (one shared antechamber, two process
chambers) is a different list built by `line_points`, not new code.

Besides the points, the module has a status word (input register 0: bit 0 field power missing, bit 1
watchdog tripped) and a communication watchdog (holding register 0, ms, 0 = off): when the host
stays silent longer than that, every output drops to off (fail-safe) and bit 1 is set until the
next output command, as fieldbus couplers do.

Point names: ``<space>.<device>`` for commands, ``<space>.<device>.<contact>`` for inputs, where the
contact is ``open`` / ``closed`` (limit switches) or ``running`` / ``fault`` (pump contacts).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from drivers.deposition_sources import STANDARD_LINE_SOURCES
from drivers.errors import ConfigError
from drivers.reading import Quality, Reading
from drivers.register_map import Access, DataType, Field, MappedDevice, RegisterClient, RegisterMap, Table

DEFAULT_UNIT = 1

_CONTACT_TEXT = {
    "open": "limit switch: fully open",
    "closed": "limit switch: fully closed",
    "running": "pump running contact",
    "fault": "pump fault contact (closed = fault)",
}


class IoPoints(NamedTuple):
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


class ModuleStatus(enum.IntFlag):
    FIELD_POWER_MISSING = 1 << 0
    WATCHDOG_TRIPPED = 1 << 1


def line_points(
    antechambers: Sequence[str] = ("inlet", "outlet"),
    gate_valves: Sequence[str] = ("inlet_gate", "outlet_gate"),
    process_chambers: Mapping[str, Sequence[str]] | None = None,
    transfer_chambers: Sequence[str] = (),
) -> IoPoints:
    """The point list of a line: per antechamber, per gate valve, per process chamber and its sources,
    per transfer chamber (an antechamber's valves and pump, without the outer door)."""
    chambers = process_chambers if process_chambers is not None else {"process": _STANDARD_SOURCE_NAMES}
    outputs: list[str] = []
    inputs: list[str] = []
    for a in antechambers:
        outputs += [f"{a}.rough_valve", f"{a}.vent_valve", f"{a}.gas_fill_valve", f"{a}.rough_pump"]
        outputs.append(f"{a}.outer_door")
        inputs += [f"{a}.rough_pump.running", f"{a}.rough_pump.fault"]
        inputs += [f"{a}.outer_door.open", f"{a}.outer_door.closed"]
    for t in transfer_chambers:
        outputs += [f"{t}.rough_valve", f"{t}.vent_valve", f"{t}.gas_fill_valve", f"{t}.rough_pump"]
        inputs += [f"{t}.rough_pump.running", f"{t}.rough_pump.fault"]
    for g in gate_valves:
        outputs.append(g)
        inputs += [f"{g}.open", f"{g}.closed"]
    for p, sources in chambers.items():
        outputs += [f"{p}.rough_valve", f"{p}.vent_valve", f"{p}.gas_fill_valve", f"{p}.turbo_gate_valve"]
        outputs += [f"{p}.backing_pump", f"{p}.substrate_shutter"]
        outputs += [f"{p}.shutter_{s}" for s in sources]
        inputs += [f"{p}.turbo_gate_valve.open", f"{p}.turbo_gate_valve.closed"]
        inputs += [f"{p}.backing_pump.running", f"{p}.backing_pump.fault", f"{p}.substrate_shutter.open"]
        inputs += [f"{p}.shutter_{s}.open" for s in sources]
    return IoPoints(tuple(outputs), tuple(inputs))


_STANDARD_SOURCE_NAMES = tuple(s.name for s in STANDARD_LINE_SOURCES)
STANDARD_LINE_POINTS = line_points()


def _input_text(name: str) -> str:
    device, _, contact = name.rpartition(".")
    return f"{_CONTACT_TEXT.get(contact, 'input')} of {device}" if device else "input"


class RemoteIoMap:
    """The register map of one remote I/O unit with the given points."""

    def __init__(self, points: IoPoints) -> None:
        clash = set(points.outputs) & set(points.inputs)
        if clash:
            raise ConfigError(f"remote I/O: names used as output and input: {sorted(clash)}")
        self.points = points
        fields = [
            Field(
                n, Table.COIL, i, DataType.BOOL, "bool", access=Access.RW, description=f"command: {n} on/open"
            )
            for i, n in enumerate(points.outputs)
        ]
        fields += [
            Field(n, Table.DISCRETE, i, DataType.BOOL, "bool", description=_input_text(n))
            for i, n in enumerate(points.inputs)
        ]
        fields += [
            Field(
                "watchdog",
                Table.HOLDING,
                0,
                DataType.UINT16,
                "ms",
                access=Access.RW,
                description="outputs drop to off after this long without a request; 0 = off",
            ),
            Field(
                "module_status",
                Table.INPUT,
                0,
                DataType.UINT16,
                description="bit 0 field power missing (inputs invalid, outputs unpowered), bit 1 watchdog "
                "tripped (cleared by the next output command)",
            ),
        ]
        self.regmap = RegisterMap(
            "remote_io",
            fields,
            title="Remote I/O (project-defined, Modbus TCP)",
            notes=(
                "Project-defined. Modbus TCP, unit 1. Coil n = command of output n, discrete input n = "
                "contact n, in the order of the point list (append-only, so addresses stay stable). "
                "Shown: the standard line's point list (`STANDARD_LINE_POINTS`)."
            ),
        )

    @classmethod
    def for_points(cls, outputs: Sequence[str], inputs: Sequence[str]) -> RemoteIoMap:
        return cls(IoPoints(tuple(outputs), tuple(inputs)))


class RemoteIo:
    """Valve, door, pump and shutter commands and their limit switches, by point name."""

    def __init__(
        self,
        client: RegisterClient,
        *,
        name: str,
        unit: int = DEFAULT_UNIT,
        points: IoPoints = STANDARD_LINE_POINTS,
    ) -> None:
        self.name = name
        self.map = RemoteIoMap(points)
        self.device = MappedDevice(client, self.map.regmap, unit)

    @property
    def points(self) -> IoPoints:
        return self.map.points

    async def set_output(self, name: str, on: bool) -> None:
        if name not in self.map.points.outputs:
            raise ConfigError(f"{self.name}: {name!r} is not an output")
        await self.device.write(name, on)

    async def read_outputs(self) -> dict[str, bool]:
        return {n: bool(v) for n, v in (await self.device.read(self.map.points.outputs)).items()}

    async def read_inputs(self) -> dict[str, bool]:
        return {n: bool(v) for n, v in (await self.device.read(self.map.points.inputs)).items()}

    async def read_status(self) -> ModuleStatus:
        return ModuleStatus(int(await self.device.read_value("module_status")))

    async def set_watchdog_ms(self, timeout_ms: int) -> None:
        await self.device.write("watchdog", timeout_ms)

    async def poll(self) -> dict[str, Reading]:
        """Every output and input as a 0/1 reading; all ERROR while the field power is missing."""
        values = await self.device.read((*self.map.points.outputs, *self.map.points.inputs, "module_status"))
        status = ModuleStatus(int(values.pop("module_status")))
        quality = Quality.ERROR if status & ModuleStatus.FIELD_POWER_MISSING else Quality.OK
        return {n: Reading.now(1.0 if v else 0.0, "bool", quality) for n, v in values.items()}
