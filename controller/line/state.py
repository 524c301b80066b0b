"""The line at one instant, as the interlocks see it: a frozen snapshot built from readings.

`LineState` is pure data. `build_line_state` derives it from the latest readings (poller snapshot),
the remote I/O coil readbacks (what is commanded, read from the hardware rather than remembered, so a
restarted controller never assumes) and limit switches, the item inventory and each space's
provenance. Which reading describes which space comes from the configuration's bindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.config.line_config import Limits, LineConfig
from controller.line.actions import VALVES, ValveName
from controller.line.atmosphere import (
    Atmosphere,
    Classification,
    Provenance,
    SpaceActivity,
    SpaceSensors,
    observe,
    usable,
)
from controller.line.items import Inventory, exposed_in
from drivers.deposition_sources import STANDARD_LINE_SOURCES
from drivers.reading import Quality, Reading

Snapshot = Mapping[tuple[str, str], Reading]
IO_VALVE_POINTS: dict[ValveName, str] = {
    "rough": "rough_valve",
    "vent": "vent_valve",
    "gas_fill": "gas_fill_valve",
    "turbo_gate": "turbo_gate_valve",
}
TURBO_AT_SPEED_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class ValveState:
    """Commanded position and limit switches; `None` where a switch is not fitted or not read."""

    commanded_open: bool | None
    open_ls: bool | None = None
    closed_ls: bool | None = None

    @property
    def maybe_open(self) -> bool:
        """Worst case for safety: open if commanded open, reported open, not reported closed, or unknown."""
        if self.commanded_open is None:
            return True
        return self.commanded_open or self.open_ls is True or self.closed_ls is False

    @property
    def confirmed_closed(self) -> bool:
        if self.closed_ls is not None:
            return self.closed_ls and self.commanded_open is False and self.open_ls is not True
        return self.commanded_open is False

    @property
    def confirmed_open(self) -> bool:
        if self.open_ls is not None:
            return self.open_ls and self.commanded_open is True
        return self.commanded_open is True

    @property
    def disagrees(self) -> bool:
        """Commanded one way, switches say the other (after the travel time: the caller judges that)."""
        if self.commanded_open is None:
            return False
        if self.commanded_open:
            return self.closed_ls is True or self.open_ls is False
        return self.open_ls is True or self.closed_ls is False


@dataclass(frozen=True, slots=True)
class SpaceState:
    name: str
    kind: str
    classification: Classification
    provenance: Provenance
    pressure_pa: float | None
    valves: dict[str, ValveState]
    pump_running: bool | None
    turbo_speed_hz: float | None = None
    turbo_commanded: bool | None = None
    substrate_temp_c: float | None = None
    sources_on: frozenset[str] = frozenset()
    gas_flow_sccm: float = 0.0
    base_pressure_reached: bool = False

    @property
    def atmosphere(self) -> Atmosphere:
        return self.classification.atmosphere

    @property
    def safe_for_exposed(self) -> bool:
        return self.classification.safe_for_exposed

    @property
    def turbo_spinning(self) -> bool:
        return self.turbo_speed_hz is None or self.turbo_speed_hz > 1.0  # unknown counts as spinning


@dataclass(frozen=True, slots=True)
class PortState:
    name: str
    kind: str
    between: tuple[str, str]
    valve: ValveState


@dataclass(frozen=True, slots=True)
class LineState:
    spaces: dict[str, SpaceState]
    ports: dict[str, PortState]
    items: Inventory
    limits: Limits
    now_mono: float
    evidence: dict[str, Reading] = field(default_factory=dict)

    def exposed_in(self, space: str) -> list[str]:
        return [item.id for item in exposed_in(space, self.items)]

    def ports_of(self, space: str) -> list[PortState]:
        return [p for p in self.ports.values() if space in p.between]


@dataclass
class SpaceMemory:
    """What the controller carries between snapshots for one space."""

    provenance: Provenance = field(default_factory=Provenance.assumed_air)
    base_pressure_reached: bool = False


def _reading(snapshot: Snapshot, device: str, channel: str) -> Reading | None:
    return snapshot.get((device, channel))


def _flag(snapshot: Snapshot, io_device: str | None, point: str, limits: Limits, now: float) -> bool | None:
    if io_device is None:
        return None
    reading = usable(_reading(snapshot, io_device, point), now, limits)
    return None if reading is None else reading.value >= 0.5


class LineReadings:
    """Where each space's readings come from, worked out once from the configuration's bindings."""

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.io = next((d.name for d in config.devices if d.family == "remote_io"), None)
        self.gauges: dict[str, list[tuple[str, str]]] = {s.name: [] for s in config.spaces}
        self.frost: dict[str, tuple[str, str]] = {}
        self.o2: dict[str, tuple[str, str]] = {}
        self.box_pressure: dict[str, tuple[str, str]] = {}
        self.turbo: dict[str, str] = {}
        self.heater: dict[str, str] = {}
        self.mfc: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        for d in config.devices:
            for channel, space in d.channels.items():
                if d.family == "tpg36x":
                    self.gauges[space].append((d.name, channel))
            if d.space is None:
                continue
            match d.family:
                case "dewpoint_transmitter":
                    self.frost[d.space] = (d.name, "frost_point_atm")
                case "glovebox_controller":
                    self.o2[d.space] = (d.name, "o2")
                    self.box_pressure[d.space] = (d.name, "box_pressure")
                case "pfeiffer_turbo":
                    self.turbo[d.space] = d.name
                case "temperature_controller" if d.params.get("heater", "substrate") == "substrate":
                    self.heater[d.space] = d.name
                case "mass_flow_controller":
                    self.mfc[d.space] = d.name
                case "deposition_sources":
                    self.sources[d.space] = d.name

    def pressure(self, snapshot: Snapshot, space: str, now: float) -> Reading | None:
        """The best pressure for a space: a vacuum gauge in its range, else an atmospheric-range one.

        Pirani/cold-cathode heads are inaccurate near atmosphere and read over-range above 1000 hPa;
        there the glovebox's box pressure (relative to the room) or a capacitance head takes over.
        """
        candidates: list[Reading] = []
        for device, channel in self.gauges[space]:
            reading = usable(_reading(snapshot, device, channel), now, self.limits)
            if reading is not None:
                candidates.append(reading)
        if space in self.box_pressure:
            box = usable(_reading(snapshot, *self.box_pressure[space]), now, self.limits)
            if box is not None and box.quality is Quality.OK:
                absolute = Reading(
                    box.value + self.limits.room_pressure_pa, "Pa", box.quality, box.ts, box.mono
                )
                candidates.append(absolute)
        if not candidates:
            return None
        low = min(candidates, key=lambda r: r.value)
        if low.value < 10_000.0:
            return low  # in the vacuum range the lowest in-range reading is the vacuum gauge's
        return max(candidates, key=lambda r: r.ts)  # near atmosphere all agree to within their accuracy


def build_line_state(
    readings: LineReadings,
    snapshot: Snapshot,
    memory: dict[str, SpaceMemory],
    items: Inventory,
    now_mono: float,
) -> LineState:
    """Derive the snapshot the interlocks judge; updates each space's memory (provenance) in place."""
    config, limits, io = readings.config, readings.limits, readings.io
    _mix_through_open_ports(readings, snapshot, memory, now_mono)
    spaces: dict[str, SpaceState] = {}
    for space in config.spaces:
        name = space.name
        valves: dict[str, ValveState] = {
            v: ValveState(
                _flag(snapshot, io, f"{name}.{IO_VALVE_POINTS[v]}", limits, now_mono),
                _flag(snapshot, io, f"{name}.{IO_VALVE_POINTS[v]}.open", limits, now_mono)
                if v == "turbo_gate"
                else None,
                _flag(snapshot, io, f"{name}.{IO_VALVE_POINTS[v]}.closed", limits, now_mono)
                if v == "turbo_gate"
                else None,
            )
            for v in VALVES
            if v != "turbo_gate" or space.kind == "process_chamber"
        }
        pump_point = f"{name}.rough_pump" if space.rough_pumped else f"{name}.backing_pump"
        pump_running = _flag(snapshot, io, f"{pump_point}.running", limits, now_mono)
        outer_open = any(
            p.kind == "outer_door"
            and name in p.between
            and _port_valve(snapshot, io, p.name, limits, now_mono).maybe_open
            for p in config.ports
        )
        pressure = readings.pressure(snapshot, name, now_mono)
        flow = _value(snapshot, readings.mfc.get(name), "mass_flow", limits, now_mono) or 0.0
        turbo_speed = _value(snapshot, readings.turbo.get(name), "speed", limits, now_mono)
        pumping = (valves["rough"].maybe_open and bool(pump_running)) or (
            "turbo_gate" in valves and valves["turbo_gate"].maybe_open and (turbo_speed or 0.0) > 1.0
        )
        activity = SpaceActivity(
            pumping=pumping,
            gas_filling=valves["gas_fill"].maybe_open,
            open_to_air=valves["vent"].maybe_open or outer_open,
            process_gas=flow > 0.05 and "turbo_gate" in valves and valves["turbo_gate"].maybe_open,
        )
        sensors = SpaceSensors(
            pressure,
            frost_point=_reading(snapshot, *readings.frost[name]) if name in readings.frost else None,
            o2=_reading(snapshot, *readings.o2[name]) if name in readings.o2 else None,
            has_frost_sensor=name in readings.frost,
            has_o2_sensor=name in readings.o2,
        )
        mem = memory.setdefault(name, SpaceMemory())
        mem.provenance, classification = observe(mem.provenance, sensors, activity, limits, now_mono)
        if pressure is not None and pressure.value > limits.turbo_gate_max_pa:
            # gas came in (a transfer through an open gate, an MFC back-fill, a leak): no process runs
            # above the turbo-gate limit, so the base pressure must be reached again before deposition
            mem.base_pressure_reached = False
        if pressure is not None and pressure.value <= limits.deposition_base_pressure_pa:
            mem.base_pressure_reached = True
        if activity.open_to_air or activity.gas_filling:
            mem.base_pressure_reached = False
        spaces[name] = SpaceState(
            name=name,
            kind=space.kind,
            classification=classification,
            provenance=mem.provenance,
            pressure_pa=pressure.value if pressure else None,
            valves=valves,
            pump_running=pump_running,
            turbo_speed_hz=turbo_speed if name in readings.turbo else None,
            turbo_commanded=None,
            substrate_temp_c=_value(snapshot, readings.heater.get(name), "temperature", limits, now_mono),
            sources_on=_sources_on(snapshot, readings.sources.get(name), limits, now_mono),
            gas_flow_sccm=flow,
            base_pressure_reached=mem.base_pressure_reached,
        )
    ports = {
        p.name: PortState(p.name, p.kind, p.between, _port_valve(snapshot, io, p.name, limits, now_mono))
        for p in config.ports
    }
    return LineState(spaces, ports, items, limits, now_mono)


def _mix_through_open_ports(
    readings: LineReadings, snapshot: Snapshot, memory: dict[str, SpaceMemory], now: float
) -> None:
    """Gas crosses an inner port that may be open: under vacuum, carry the worse air share to both sides.

    Two "vacuum" spaces may be joined (invariant 2), but the gas in an antechamber roughed from air to
    50 Pa is air; without this the sensorless process chamber kept its purged history, and a later
    back-fill was credited with dilution it never had (~24 ppm O2 called in spec). Near atmosphere
    both sides are inert-in-spec when a port opens, so their mixture is too, and the antechambers'
    O2 sensors correct their own history once static; there nothing is carried over.
    """
    limits = readings.limits
    for port in readings.config.ports:
        if (
            port.kind == "outer_door"
            or not _port_valve(snapshot, readings.io, port.name, limits, now).maybe_open
        ):
            continue
        pressures = [readings.pressure(snapshot, name, now) for name in port.between]
        if all(p is not None and p.value > limits.vacuum_below_pa for p in pressures):
            continue
        sides = [memory.setdefault(name, SpaceMemory()) for name in port.between]
        worst = max(sides, key=lambda side: side.provenance.air_fraction).provenance
        for side in sides:
            if side.provenance.air_fraction < worst.air_fraction:
                # a fill under way restarts its credit from here; an assumption stays an assumption
                side.provenance = Provenance(worst.air_fraction, assumed=worst.assumed)


def _port_valve(snapshot: Snapshot, io: str | None, port: str, limits: Limits, now: float) -> ValveState:
    point = io_point_of_port(port)
    return ValveState(
        _flag(snapshot, io, point, limits, now),
        _flag(snapshot, io, f"{point}.open", limits, now),
        _flag(snapshot, io, f"{point}.closed", limits, now),
    )


def io_point_of_port(port: str) -> str:
    """Remote I/O names outer doors `<space>.outer_door`; the config names them `<space>.outer`."""
    return f"{port.removesuffix('.outer')}.outer_door" if port.endswith(".outer") else port


def _value(snapshot: Snapshot, device: str | None, channel: str, limits: Limits, now: float) -> float | None:
    if device is None:
        return None
    reading = usable(_reading(snapshot, device, channel), now, limits)
    return None if reading is None else reading.value


def _sources_on(snapshot: Snapshot, device: str | None, limits: Limits, now: float) -> frozenset[str]:
    if device is None:
        return frozenset()
    # a source never read yet (controller just started, link never up) is as unknown as a stale one
    channels = {f"{s.name}.output_on" for s in STANDARD_LINE_SOURCES}
    channels |= {channel for dev, channel in snapshot if dev == device and channel.endswith(".output_on")}
    on = set()
    for channel in channels:
        fresh = usable(snapshot.get((device, channel)), now, limits)
        if fresh is None or fresh.value >= 0.5:  # unknown counts as on: never assume a source is off
            on.add(channel.removesuffix(".output_on"))
    return frozenset(on)
