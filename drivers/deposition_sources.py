"""Deposition sources on Modbus TCP (project-defined map, devices.md §0): one block per source.

The source rack (DC and RF sputter supplies, evaporation supply, pulsed laser, ion source) is one
Modbus TCP unit; the source list is data (`SourceSpec(name, kind, limits)`) and source i owns fixed
blocks, so adding a source appends blocks without moving the others::

    holding  16 i + 0   setpoint A   float32 (MSW first)     16 i + 2  setpoint B   float32
    input    16 i + 0   readback 0..3 float32 (8 registers)   16 i + 8  status word, + 9 fault code,
                                                              16 i + 10 arc count uint32
    coil      8 i + 0   enable (RW)                            8 i + 1  fault reset (write 1)
    discrete  8 i + 0   interlock ok    8 i + 1  output on     8 i + 2  fault active

Reserved registers inside a block read 0, so one request reads every source's readbacks.

What the setpoints and readbacks are depends on the kind (`KINDS`): W and W/s for the power supplies;
pulse energy (J, wire mJ) and repetition rate (Hz) for the laser; beam voltage (V) and beam current
(A, wire mA) for the ion source. Readback 0 is always the delivered power in W.

Safety behaviour of the device: enabling while the interlock input is open, or while a fault is
latched, is refused with exception 04 (server device failure) and the output stays off; an interlock
opening while on trips the output and latches fault 3; a setpoint beyond the source's limit gets
exception 03. A latched fault clears with the fault-reset coil once its cause is gone.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import ConfigError
from drivers.reading import Reading
from drivers.register_map import Access, DataType, Field, MappedDevice, RegisterClient, RegisterMap, Table

DEFAULT_UNIT = 1
REGISTER_STRIDE = 16
BIT_STRIDE = 8


class SourceKind(enum.Enum):
    DC_SPUTTER = "dc_sputter"
    RF_SPUTTER = "rf_sputter"
    EVAPORATION = "evaporation"
    PULSED_LASER = "pulsed_laser"
    ION_SOURCE = "ion_source"


class SourceStatus(enum.IntFlag):
    OUTPUT_ON = 1 << 0
    AT_SETPOINT = 1 << 1
    RAMPING = 1 << 2
    INTERLOCK_OK = 1 << 3
    FAULT = 1 << 4
    ARC_DETECTED = 1 << 5


class FaultCode(enum.IntEnum):
    NONE = 0
    ARC = 1
    OVER_TEMPERATURE = 2
    INTERLOCK_OPEN = 3
    OVER_CURRENT = 4
    OVER_VOLTAGE = 5
    REFLECTED_POWER = 6
    COOLING_WATER = 7
    LASER_ENERGY = 8
    INTERNAL = 9


@dataclass(frozen=True, slots=True)
class Slot:
    """One setpoint or readback of a kind: its name, SI unit, and wire unit / scale if different."""

    name: str
    unit: str
    description: str
    wire_unit: str = ""
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class KindSpec:
    setpoints: tuple[Slot, Slot]
    readbacks: tuple[Slot, Slot, Slot, Slot]


_POWER_SETPOINTS = (
    Slot("power_setpoint", "W", "output power setpoint"),
    Slot("ramp_rate", "W/s", "power ramp rate; 0 = step"),
)
KINDS: dict[SourceKind, KindSpec] = {
    SourceKind.DC_SPUTTER: KindSpec(
        _POWER_SETPOINTS,
        (
            Slot("power", "W", "delivered power"),
            Slot("voltage", "V", "target voltage"),
            Slot("current", "A", "target current"),
            Slot("arc_rate", "Hz", "arcs per second"),
        ),
    ),
    SourceKind.RF_SPUTTER: KindSpec(
        _POWER_SETPOINTS,
        (
            Slot("power", "W", "forward power"),
            Slot("reflected_power", "W", "reflected power"),
            Slot("dc_bias", "V", "target self-bias"),
            Slot("load_power", "W", "forward minus reflected power"),
        ),
    ),
    SourceKind.EVAPORATION: KindSpec(
        _POWER_SETPOINTS,
        (
            Slot("power", "W", "delivered power"),
            Slot("voltage", "V", "boat voltage"),
            Slot("current", "A", "boat current"),
            Slot("output", "%", "output level of full scale"),
        ),
    ),
    SourceKind.PULSED_LASER: KindSpec(
        (
            Slot("pulse_energy_setpoint", "J", "pulse energy setpoint", "mJ", 0.001),
            Slot("rep_rate_setpoint", "Hz", "pulse repetition rate setpoint"),
        ),
        (
            Slot("power", "W", "average power (energy x rate)"),
            Slot("pulse_energy", "J", "measured pulse energy", "mJ", 0.001),
            Slot("rep_rate", "Hz", "measured repetition rate"),
            Slot("hv", "V", "discharge high voltage"),
        ),
    ),
    SourceKind.ION_SOURCE: KindSpec(
        (
            Slot("beam_voltage_setpoint", "V", "beam voltage setpoint"),
            Slot("beam_current_setpoint", "A", "beam current setpoint", "mA", 0.001),
        ),
        (
            Slot("power", "W", "beam power"),
            Slot("beam_voltage", "V", "beam voltage"),
            Slot("beam_current", "A", "beam current", "mA", 0.001),
            Slot("discharge_current", "A", "discharge current"),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source of the rack; `limits` are the highest accepted values of setpoints A and B (SI)."""

    name: str
    kind: SourceKind
    limits: tuple[float, float]

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]


STANDARD_LINE_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("dc_sputter", SourceKind.DC_SPUTTER, (1000.0, 50.0)),
    SourceSpec("rf_sputter", SourceKind.RF_SPUTTER, (600.0, 50.0)),
    SourceSpec("evaporation", SourceKind.EVAPORATION, (1500.0, 100.0)),
    SourceSpec("pulsed_laser", SourceKind.PULSED_LASER, (0.7, 50.0)),
    SourceSpec("ion_source", SourceKind.ION_SOURCE, (1200.0, 0.3)),
)


def _source_fields(i: int, src: SourceSpec) -> list[Field]:
    reg, bit, n = REGISTER_STRIDE * i, BIT_STRIDE * i, src.name
    spec = src.spec
    fields: list[Field] = []
    for k, (slot, limit) in enumerate(zip(spec.setpoints, src.limits, strict=True)):
        fields.append(
            Field(
                f"{n}.{slot.name}",
                Table.HOLDING,
                reg + 2 * k,
                DataType.FLOAT32,
                slot.unit,
                slot.scale,
                Access.RW,
                f"{slot.description} (0..{limit:g} {slot.unit})",
                slot.wire_unit,
            )
        )
    for k, slot in enumerate(spec.readbacks):
        fields.append(
            Field(
                f"{n}.{slot.name}",
                Table.INPUT,
                reg + 2 * k,
                DataType.FLOAT32,
                slot.unit,
                slot.scale,
                description=slot.description,
                wire_unit=slot.wire_unit,
            )
        )
    fields += [
        Field(
            f"{n}.status",
            Table.INPUT,
            reg + 8,
            DataType.UINT16,
            description="bit 0 output on, 1 at setpoint, 2 ramping, 3 interlock ok, 4 fault latched, "
            "5 arc seen",
        ),
        Field(
            f"{n}.fault_code",
            Table.INPUT,
            reg + 9,
            DataType.UINT16,
            description="latched fault: " + ", ".join(f"{c.value} {c.name.lower()}" for c in FaultCode),
        ),
        Field(f"{n}.arc_count", Table.INPUT, reg + 10, DataType.UINT32, description="arcs since power-up"),
        Field(
            f"{n}.enable",
            Table.COIL,
            bit,
            DataType.BOOL,
            "bool",
            access=Access.RW,
            description="output on; refused (exception 04) with the interlock open or a fault latched",
        ),
        Field(
            f"{n}.fault_reset",
            Table.COIL,
            bit + 1,
            DataType.BOOL,
            "bool",
            access=Access.W,
            description="write 1 to clear a latched fault whose cause is gone",
        ),
        Field(
            f"{n}.interlock_ok",
            Table.DISCRETE,
            bit,
            DataType.BOOL,
            "bool",
            description="hard-wired interlock chain closed",
        ),
        Field(
            f"{n}.output_on", Table.DISCRETE, bit + 1, DataType.BOOL, "bool", description="output energised"
        ),
        Field(
            f"{n}.fault_active", Table.DISCRETE, bit + 2, DataType.BOOL, "bool", description="fault latched"
        ),
    ]
    return fields


class SourcesMap:
    """The register map of a source rack with the given sources, in block order."""

    def __init__(self, sources: Sequence[SourceSpec]) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"deposition sources: duplicate source names in {names}")
        self.sources = {s.name: s for s in sources}
        fields = [f for i, s in enumerate(sources) for f in _source_fields(i, s)]
        kinds = "; ".join(f"{s.name} = {s.kind.value}" for s in sources)
        self.regmap = RegisterMap(
            "deposition_sources",
            fields,
            word_order="big",
            max_gap=REGISTER_STRIDE,
            title="Deposition sources (project-defined, Modbus TCP)",
            notes=(
                "Project-defined. Modbus TCP, unit 1. Source i: holding and input registers from 16 i, coils "
                "and discrete inputs from 8 i; reserved addresses in a block read 0. Enable is refused with "
                f"exception 04 while the interlock is open or a fault is latched. Shown: {kinds}."
            ),
        )

    def source(self, name: str) -> SourceSpec:
        try:
            return self.sources[name]
        except KeyError:
            raise ConfigError(f"deposition sources: no source {name!r}") from None


@dataclass(frozen=True, slots=True)
class SourceState:
    output_on: bool
    interlock_ok: bool
    status: SourceStatus
    fault: FaultCode
    readbacks: dict[str, Reading]


class DepositionSources:
    """Setpoints, enable and readbacks of every source in the rack, by source name."""

    def __init__(
        self,
        client: RegisterClient,
        *,
        name: str,
        unit: int = DEFAULT_UNIT,
        sources: Sequence[SourceSpec] = STANDARD_LINE_SOURCES,
    ) -> None:
        self.name = name
        self.map = SourcesMap(sources)
        self.device = MappedDevice(client, self.map.regmap, unit)

    async def set_setpoint(self, source: str, slot: str, value: float) -> None:
        """Write one setpoint by slot name (`power_setpoint`, `pulse_energy_setpoint`, ...) in SI units."""
        spec = self.map.source(source).spec
        if slot not in {s.name for s in spec.setpoints}:
            raise ConfigError(f"{self.name}: {source} has no setpoint {slot!r}")
        await self.device.write(f"{source}.{slot}", value)

    async def read_setpoints(self, source: str) -> dict[str, float]:
        """The setpoints the source holds, by slot name, in SI units: what a write is checked against."""
        slots = self.map.source(source).spec.setpoints
        values = await self.device.read([f"{source}.{s.name}" for s in slots])
        return {s.name: float(values[f"{source}.{s.name}"]) for s in slots}

    async def set_power_w(self, source: str, power_w: float) -> None:
        await self.set_setpoint(source, "power_setpoint", power_w)

    async def enable(self, source: str) -> None:
        """Switch the output on; DeviceRefused (code 04) while the interlock is open or a fault latched."""
        self.map.source(source)
        await self.device.write(f"{source}.enable", True)

    async def disable(self, source: str) -> None:
        self.map.source(source)
        await self.device.write(f"{source}.enable", False)

    async def reset_fault(self, source: str) -> None:
        self.map.source(source)
        await self.device.write(f"{source}.fault_reset", True)

    async def read_source(self, source: str) -> SourceState:
        values = await self.device.read(self._names(self.map.source(source)))
        return self._state(source, values)

    async def poll(self) -> dict[str, Reading]:
        """Per source: each readback, `output_on`, `interlock_ok`, `fault` (latched code): one request."""
        names = [n for src in self.map.sources.values() for n in self._names(src)]
        values = await self.device.read(names)
        out: dict[str, Reading] = {}
        for name in self.map.sources:
            state = self._state(name, values)
            out.update(state.readbacks)
            out[f"{name}.output_on"] = Reading.now(1.0 if state.output_on else 0.0, "bool")
            out[f"{name}.interlock_ok"] = Reading.now(1.0 if state.interlock_ok else 0.0, "bool")
            out[f"{name}.fault"] = Reading.now(float(state.fault), "")
        return out

    @staticmethod
    def _names(src: SourceSpec) -> list[str]:
        return [f"{src.name}.{s.name}" for s in src.spec.readbacks] + [
            f"{src.name}.status",
            f"{src.name}.fault_code",
        ]

    def _state(self, source: str, values: dict[str, float | bool]) -> SourceState:
        spec = self.map.source(source).spec
        status = SourceStatus(int(values[f"{source}.status"]))
        code = int(values[f"{source}.fault_code"])
        fault = FaultCode(code) if code in FaultCode._value2member_map_ else FaultCode.INTERNAL
        readbacks = {
            f"{source}.{s.name}": Reading.now(float(values[f"{source}.{s.name}"]), s.unit)
            for s in spec.readbacks
        }
        return SourceState(
            output_on=bool(status & SourceStatus.OUTPUT_ON),
            interlock_ok=bool(status & SourceStatus.INTERLOCK_OK),
            status=status,
            fault=fault,
            readbacks=readbacks,
        )
