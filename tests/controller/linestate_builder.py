"""Realistic `LineState`s for interlock tests, built THROUGH the real `build_line_state`.

Why not hand-construct `SpaceState`s: the interlocks only ever see states that `build_line_state`
derives from a poller snapshot, so a test that invents a state can pass while the real derivation
(gauge choice, coil readbacks, limit switches, staleness, provenance) lets the unsafe case through.
Here a test describes the line the way an operator would read it off the instruments -

    spec = LineSpec(
        spaces={"inlet": Space(p_pa=101_825, frost_c=-62, o2_ppmv=2), "process": Space(p_pa=1e-4)},
        outputs_open={"inlet.rough_pump", "inlet_gate"},
    )
    state = build(spec)

- and the builder turns that into the snapshot the drivers would produce, keyed exactly as they name
their channels: ``(device, "pressure_chN")`` of each TPG 36x, ``frost_point_atm`` of the dew-point
transmitters, ``o2`` and ``box_pressure`` (Pa gauge, relative to the room) of the glovebox
controllers, the turbo's ``speed``, the temperature controllers' ``temperature``, the MFC's
``mass_flow``, ``<source>.output_on`` of the deposition sources, and every remote I/O point as a 0/1
reading. Limit switches and pump "running" contacts follow the coils unless a test overrides them
(a stuck door, a pump that tripped).

Gauge heads read like the real ones (ranges as in the simulator, sim_hardware/devices/tpg36x.py):
below their range a head reports UNDER_RANGE with its lower limit, above it OVER_RANGE with its upper
limit, so a Pirani/cold-cathode head is useless at atmosphere and the glovebox box pressure or the
capacitance head has to carry the space there - exactly the case `LineReadings.pressure` handles.

A space's `air_fraction` and `base_reached` seed the controller's memory (`SpaceMemory`): what the
controller knows from history, which no single snapshot can show. Pass the same `memory` dict to
successive `build` calls to follow a space through time (pump/purge cycles).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.config.line_config import LineConfig, load_line_config
from controller.line.atmosphere import Provenance
from controller.line.items import Item, ItemKind
from controller.line.state import LineReadings, LineState, SpaceMemory, build_line_state
from drivers.deposition_sources import STANDARD_LINE_SOURCES
from drivers.reading import Quality, Reading

Key = tuple[str, str]
ALL_CHANNELS = "*"  # as the channel of a key: every channel of that device (a link that went down)

ROOM_PA = 101_325.0
GLOVEBOX_PA = ROOM_PA + 500.0  # antechambers and boxes run a few mbar above the room
EPOCH = 1_700_000_000.0  # wall-clock `ts` = EPOCH + mono, so records look like real ones
DEFAULT_NOW = 1_000.0

# measuring ranges of the heads, (min_pa, max_pa): the simulator's typical data-sheet values
GAUGE_RANGES_PA: dict[str, tuple[float, float]] = {
    "PKR": (5e-7, 1e5),
    "TPR": (5e-2, 1e5),
    "CMR10": (1e-1, 1.1e3),
    "CMR1000": (1e1, 1.33e5),
}
SOURCE_NAMES = tuple(s.name for s in STANDARD_LINE_SOURCES)


@dataclass(frozen=True, slots=True)
class Space:
    """What one space's instruments read, and what the controller remembers about it.

    `None` for a measured quantity means the instrument gives no reading at all (never polled).
    Values for instruments a space does not have (frost point of the process chamber) are ignored.
    The defaults describe a purged, resting space: dry argon a few mbar above the room.
    """

    p_pa: float | None = GLOVEBOX_PA
    frost_c: float | None = -70.0
    o2_ppmv: float | None = 0.5
    air_fraction: float = 1e-9
    base_reached: bool = False
    turbo_hz: float | None = 0.0
    substrate_c: float | None = 22.0
    flow_sccm: float | None = 0.0


# presets a test can name instead of spelling out numbers
INERT = Space()
VACUUM = Space(p_pa=1e-4, frost_c=-90.0, o2_ppmv=0.1, base_reached=True)
AIR = Space(p_pa=ROOM_PA, frost_c=-5.0, o2_ppmv=209_000.0, air_fraction=1.0)


@dataclass(frozen=True)
class LineSpec:
    """A whole line as its instruments show it; spaces not named are `INERT`.

    `outputs_open`: remote I/O coils read back as on (valves and doors commanded open, pumps on).
    `inputs`: override a derived remote I/O input (``{"inlet_gate.closed": True}`` for a door that
    stuck closed); `None` drops the point from the snapshot.
    `stale` / `missing`: keys whose reading is too old / absent; `quality`: keys read with that
    quality flag (ERROR, OVER_RANGE ...). A key's channel may be `ALL_CHANNELS`.
    """

    spaces: Mapping[str, Space] = field(default_factory=dict)
    outputs_open: Iterable[str] = ()
    inputs: Mapping[str, bool | None] = field(default_factory=dict)
    sources_on: Iterable[str] = ()
    stale: Iterable[Key] = ()
    missing: Iterable[Key] = ()
    quality: Mapping[Key, Quality] = field(default_factory=dict)
    items: Iterable[Item] = ()
    now: float = DEFAULT_NOW

    def space(self, name: str) -> Space:
        return self.spaces.get(name, INERT)


@functools.cache
def standard_config() -> LineConfig:
    return load_line_config()


_READINGS: dict[int, tuple[LineConfig, LineReadings]] = {}


def _readings(config: LineConfig) -> LineReadings:
    """One `LineReadings` per config object (configs hold dicts, so they cannot be cache keys)."""
    cached = _READINGS.get(id(config))
    if cached is None or cached[0] is not config:
        cached = _READINGS[id(config)] = (config, LineReadings(config))
    return cached[1]


def build(
    spec: LineSpec, memory: dict[str, SpaceMemory] | None = None, config: LineConfig | None = None
) -> LineState:
    """The state `build_line_state` derives from the spec's snapshot (memory seeded from the spec if None)."""
    config = config or standard_config()
    mem = memory_for(spec, config) if memory is None else memory
    return build_line_state(
        _readings(config), snapshot(spec, config), mem, {i.id: i for i in spec.items}, spec.now
    )


def line_state(**spec: object) -> LineState:
    """Shortcut: `build(LineSpec(**spec))` for one-off states."""
    return build(LineSpec(**spec))  # type: ignore[arg-type]


def memory_for(spec: LineSpec, config: LineConfig | None = None) -> dict[str, SpaceMemory]:
    config = config or standard_config()
    _check_spaces(spec, config)
    return {
        s.name: SpaceMemory(Provenance(spec.space(s.name).air_fraction), spec.space(s.name).base_reached)
        for s in config.spaces
    }


def keys(space: str, what: str, config: LineConfig | None = None) -> tuple[Key, ...]:
    """The snapshot keys of one of a space's instruments: "gauges", "frost", "o2", "box_pressure",
    "turbo", "heater", "mfc" - so a test can say `stale=keys("inlet", "o2")` without device names."""
    r = _readings(config or standard_config())
    found: dict[str, tuple[Key, ...]] = {
        "gauges": tuple(r.gauges.get(space, ())),
        "frost": (r.frost[space],) if space in r.frost else (),
        "o2": (r.o2[space],) if space in r.o2 else (),
        "box_pressure": (r.box_pressure[space],) if space in r.box_pressure else (),
        "turbo": ((r.turbo[space], "speed"),) if space in r.turbo else (),
        "heater": ((r.heater[space], "temperature"),) if space in r.heater else (),
        "mfc": ((r.mfc[space], "mass_flow"),) if space in r.mfc else (),
    }
    if what not in found:
        raise ValueError(f"unknown instrument {what!r}: one of {sorted(found)}")
    if not found[what]:
        raise ValueError(f"{space!r} has no {what} instrument on this line")
    return found[what]


def io_key(point: str, config: LineConfig | None = None) -> Key:
    """The snapshot key of a remote I/O point."""
    return (_io_device(config or standard_config()), point)


# -- the snapshot -------------------------------------------------------------------------------


def snapshot(spec: LineSpec, config: LineConfig | None = None) -> dict[Key, Reading]:
    config = config or standard_config()
    _check_spaces(spec, config)
    return _finish(spec, config, _raw(spec, config))


def _raw(spec: LineSpec, config: LineConfig) -> dict[Key, tuple[float, str, Quality]]:
    raw: dict[Key, tuple[float, str, Quality]] = {}
    for device in config.devices:
        raw.update(_device_values(spec, config, device.name, device.family))
    raw.update(_io_values(spec, config))
    return raw


def _device_values(
    spec: LineSpec, config: LineConfig, name: str, family: str
) -> dict[Key, tuple[float, str, Quality]]:
    device = next(d for d in config.devices if d.name == name)
    space = spec.space(device.space) if device.space else None
    out: dict[Key, tuple[float, str, Quality]] = {}
    match family:
        case "tpg36x":
            types = list(device.params.get("gauge_types", []))
            for channel, bound in device.channels.items():
                index = int(channel.removeprefix("pressure_ch")) - 1
                head = types[index] if index < len(types) else "PKR"
                p = spec.space(bound).p_pa
                if p is not None:
                    out[(name, channel)] = _gauge(p, GAUGE_RANGES_PA[head])
        case "dewpoint_transmitter" if space is not None and space.frost_c is not None:
            out[(name, "frost_point_atm")] = (space.frost_c, "degC", Quality.OK)
        case "glovebox_controller" if space is not None:
            if space.o2_ppmv is not None:
                out[(name, "o2")] = (space.o2_ppmv, "ppmv", Quality.OK)
            if space.p_pa is not None:
                out[(name, "box_pressure")] = (space.p_pa - config.limits.room_pressure_pa, "Pa", Quality.OK)
        case "pfeiffer_turbo" if space is not None and space.turbo_hz is not None:
            out[(name, "speed")] = (space.turbo_hz, "Hz", Quality.OK)
        case "temperature_controller" if space is not None:
            is_substrate = device.params.get("heater", "substrate") == "substrate"
            temp_c = space.substrate_c if is_substrate else 25.0
            if temp_c is not None:
                out[(name, "temperature")] = (temp_c, "degC", Quality.OK)
        case "mass_flow_controller" if space is not None and space.flow_sccm is not None:
            out[(name, "mass_flow")] = (space.flow_sccm, "sccm", Quality.OK)
        case "deposition_sources":
            on = set(spec.sources_on)
            unknown = on - set(SOURCE_NAMES)
            if unknown:
                raise ValueError(f"no deposition source {sorted(unknown)}: one of {SOURCE_NAMES}")
            for source in SOURCE_NAMES:
                out[(name, f"{source}.output_on")] = (float(source in on), "bool", Quality.OK)
    return out


def _gauge(p_pa: float, head_range: tuple[float, float]) -> tuple[float, str, Quality]:
    low, high = head_range
    if p_pa < low:
        return low, "Pa", Quality.UNDER_RANGE
    if p_pa > high:
        return high, "Pa", Quality.OVER_RANGE
    return p_pa, "Pa", Quality.OK


def _io_device(config: LineConfig) -> str:
    return next(d.name for d in config.devices if d.family == "remote_io")


def _io_values(spec: LineSpec, config: LineConfig) -> dict[Key, tuple[float, str, Quality]]:
    """Coils as commanded; inputs follow them (switches, running contacts) unless overridden."""
    points = config.remote_io_points()
    device = _io_device(config)
    on = set(spec.outputs_open)
    unknown = on - set(points.outputs)
    if unknown:
        raise ValueError(f"not remote I/O outputs: {sorted(unknown)}")
    bad_inputs = set(spec.inputs) - set(points.inputs)
    if bad_inputs:
        raise ValueError(f"not remote I/O inputs: {sorted(bad_inputs)}")
    values: dict[str, bool | None] = {point: point in on for point in points.outputs}
    for point in points.inputs:
        owner, _, contact = point.rpartition(".")
        if contact == "fault":
            values[point] = False
        elif contact == "closed":
            values[point] = owner not in on
        else:  # open, running: follow the coil
            values[point] = owner in on
    values.update(spec.inputs)
    return {(device, p): (float(v), "bool", Quality.OK) for p, v in values.items() if v is not None}


def _finish(
    spec: LineSpec, config: LineConfig, raw: dict[Key, tuple[float, str, Quality]]
) -> dict[Key, Reading]:
    """Apply missing / stale / quality and stamp the readings."""
    missing, stale, quality = set(spec.missing), set(spec.stale), dict(spec.quality)
    known = raw.keys() | _raw(LineSpec(), config).keys()  # a key this spec left out is still no typo
    for wanted in (*missing, *stale, *quality):
        if not any(_matches(wanted, key) for key in known):
            raise ValueError(f"no reading {wanted} on this line")
    old = spec.now - config.limits.stale_after_s - 1.0
    out: dict[Key, Reading] = {}
    for key, (value, unit, q) in raw.items():
        if any(_matches(m, key) for m in missing):
            continue
        for wanted, forced in quality.items():
            if _matches(wanted, key):
                q = forced
        mono = old if any(_matches(s, key) for s in stale) else spec.now
        out[key] = Reading(value, unit, q, EPOCH + mono, mono)
    return out


def _matches(wanted: Key, key: Key) -> bool:
    return wanted[0] == key[0] and wanted[1] in (key[1], ALL_CHANNELS)


def _check_spaces(spec: LineSpec, config: LineConfig) -> None:
    unknown = set(spec.spaces) - {s.name for s in config.spaces}
    if unknown:
        raise ValueError(f"no space {sorted(unknown)} on this line")


# -- items --------------------------------------------------------------------------------------


def li_foil(item_id: str, location: str) -> Item:
    """Base material: lithium on copper foil (air-sensitive, 179 °C)."""
    return Item(item_id, ItemKind.BASE_MATERIAL, "Li/Cu", location)


def sulfide_target(item_id: str, location: str) -> Item:
    return Item(item_id, ItemKind.TARGET, "57Li2S-38SiS2-5Li3PO4", location)


def copper_foil(item_id: str, location: str) -> Item:
    """A bare current collector: not air-sensitive."""
    return Item(item_id, ItemKind.BASE_MATERIAL, "Cu", location)


def container(item_id: str, location: str, *, sealed: bool = True) -> Item:
    return Item(item_id, ItemKind.CONTAINER, "SUS", location, sealed)
