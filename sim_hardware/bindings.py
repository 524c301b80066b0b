"""Device simulators bound to the plant: what each configured instrument measures and drives.

One builder per family turns a `DeviceConfig` into a device simulator whose values come from the
plant (through `SignalFaults`, so any channel can be stuck or drift) and whose commands go into it.
The adapters here are the only place that knows both a device's backend protocol and the plant's
object names, so neither side has to know the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from controller.config.line_config import DeviceConfig, LineConfig
from controller.errors import UserError
from drivers.deposition_sources import STANDARD_LINE_SOURCES, SourceKind
from drivers.mass_flow_controller import PSI_PA, gas_index
from drivers.thickness_monitor_settings import SensorParameters
from sim_hardware.devices.deposition_sources import DepositionSourcesSim, IdealSourceBackend
from sim_hardware.devices.dewpoint_transmitter import DewPointTransmitterSim
from sim_hardware.devices.glovebox_controller import GloveboxControllerSim
from sim_hardware.devices.mass_flow_controller import MassFlowControllerSession
from sim_hardware.devices.pfeiffer_vacuum_protocol import TurboPumpDevice
from sim_hardware.devices.remote_io import RemoteIoSim
from sim_hardware.devices.temperature_controller import TemperatureControllerSim
from sim_hardware.devices.thickness_monitor import Sqm160, ThicknessMonitorSession, with_crystal_tooling
from sim_hardware.devices.tpg36x import CMR_10MBAR, CMR_1000TORR, PKR, TPR, GaugeType, Tpg36xState, TpgChannel
from sim_hardware.modbus_device import ModbusUnit
from sim_hardware.plant import Mfc, Plant, Qcm
from sim_hardware.signal_faults import SignalFaults

GAUGE_TYPES: dict[str, GaugeType] = {"PKR": PKR, "TPR": TPR, "CMR": CMR_10MBAR, "CMR1000": CMR_1000TORR}


def _reader(obj: Any, attribute: str) -> Callable[[], float]:
    """Read a plant attribute at every device reply, never a copy taken at build time."""
    return lambda: float(getattr(obj, attribute))


class BindingError(UserError, ValueError):
    """A device names something the simulated plant does not have: the configuration's fault, so the
    CLI reports it in one line and exits 2."""


@dataclass
class Bound:
    """What a builder produced for one device: a Modbus unit, or a session part, plus tick hooks."""

    unit: ModbusUnit | None = None
    tpg_state: Tpg36xState | None = None
    turbo: TurboPumpDevice | None = None
    session_factory: Callable[[], Any] | None = None
    ticks: list[Callable[[], None]] = field(default_factory=list)
    sim: Any = None
    plant_name: str = ""


@dataclass
class BindContext:
    config: LineConfig
    plant: Plant
    faults: SignalFaults
    now_s: Callable[[], float]

    def chamber_prefix(self, space: str) -> str:
        """Heater, source and QCM names carry the chamber name once a line has two chambers."""
        return "" if len(self.config.spaces_of_kind("process_chamber")) <= 1 else f"{space}."

    def space_of(self, device: DeviceConfig) -> str:
        if device.space is not None:
            return device.space
        chambers = self.config.spaces_of_kind("process_chamber")
        if len(chambers) == 1:
            return chambers[0]
        raise BindingError(f"device {device.name!r} needs a `space` on a line with {len(chambers)} chambers")

    def signal(self, device: DeviceConfig, channel: str, source: Callable[[], float]) -> Callable[[], float]:
        return self.faults.wrap(f"{device.name}.{channel}", source)

    def lookup(self, table: Mapping[str, Any], key: str, what: str, device: DeviceConfig) -> Any:
        if key not in table:
            raise BindingError(
                f"device {device.name!r}: the plant has no {what} {key!r} (has {sorted(table)})"
            )
        return table[key]


def _tpg(ctx: BindContext, device: DeviceConfig) -> Bound:
    types = list(device.params.get("gauge_types", ["PKR", "PKR"]))
    channels: list[TpgChannel] = []
    for index, type_name in enumerate(types, start=1):
        gauge = GAUGE_TYPES.get(str(type_name))
        if gauge is None:
            raise BindingError(
                f"device {device.name!r}: gauge type {type_name!r} not one of {sorted(GAUGE_TYPES)}"
            )
        space_name = device.channels.get(f"pressure_ch{index}")
        if space_name is None:
            channels.append(TpgChannel(gauge, lambda: math.nan, connected=False))
            continue
        space = ctx.lookup(ctx.plant.spaces, space_name, "space", device)
        source = ctx.signal(device, f"pressure_ch{index}", _reader(space, "pressure_pa"))
        channels.append(TpgChannel(gauge, source))
    return Bound(tpg_state=Tpg36xState(channels, clock=ctx.now_s))


def _turbo(ctx: BindContext, device: DeviceConfig) -> Bound:
    space = ctx.space_of(device)
    turbo = ctx.lookup(ctx.plant.turbos, f"{space}.turbo", "turbo", device)
    address = device.address if isinstance(device.address, int) else 1
    chamber = ctx.plant.spaces[space]
    gauge = ctx.signal(device, "pressure", _reader(chamber, "pressure_pa"))  # the PKR on the drive's input
    return Bound(turbo=TurboPumpDevice(turbo, address=address, gauge_pa=gauge, clock=ctx.now_s))


def _dewpoint(ctx: BindContext, device: DeviceConfig) -> Bound:
    space = ctx.lookup(ctx.plant.spaces, ctx.space_of(device), "space", device)
    sim = DewPointTransmitterSim(
        int(device.address or 240),
        frost_point_c=ctx.signal(device, "frost_point", lambda: space.dew_frost_point_c),
        h2o_ppmv=ctx.signal(device, "h2o", lambda: space.h2o_ppmv),
        temperature_c=ctx.signal(device, "temperature", lambda: space.temp_c),
        word_order=device.params.get("word_order", "little"),
    )
    return Bound(unit=sim.unit, sim=sim)


def _heater(ctx: BindContext, device: DeviceConfig) -> Bound:
    space = ctx.space_of(device)
    name = ctx.chamber_prefix(space) + str(device.params.get("heater", "substrate"))
    heater = ctx.lookup(ctx.plant.heaters, name, "heater", device)

    def follow(sim: TemperatureControllerSim) -> None:
        heater.setpoint_c = sim.target_sp_c
        heater.setpoint_rate_c_per_min = sim.rate_limit_c_per_min()
        heater.manual = sim.manual
        heater.manual_output_pct = sim.manual_output_pct

    sim = TemperatureControllerSim(
        int(device.address or 1),
        pv_c=ctx.signal(device, "temperature", lambda: heater.temp_c),
        output_pct=lambda _sp, _pv: float(heater.output_pct),
        clock=ctx.now_s,
        setpoint_c=float(heater.setpoint_c),
        sp_high_c=float(heater.over_temp_limit_c),
        rate_units_order=device.params.get("rate_units_order") or "s-min-h",
        on_change=follow,
    )
    return Bound(unit=sim.unit, sim=sim, plant_name=name)


class _MfcBackend:
    """The plant's MFC seen through an Alicat: psia, sccm, and status tokens."""

    def __init__(self, mfc: Mfc, chamber_pressure_pa: Callable[[], float]) -> None:
        self.mfc = mfc
        self._chamber_pressure_pa = chamber_pressure_pa
        self.gas_index = gas_index(mfc.gas) if mfc.gas else 1

    @property
    def setpoint_sccm(self) -> float:
        return float(self.mfc.setpoint_sccm)

    @setpoint_sccm.setter
    def setpoint_sccm(self, value: float) -> None:
        self.mfc.setpoint_sccm = value

    @property
    def mass_flow_sccm(self) -> float:
        return float(self.mfc.flow_sccm)

    @property
    def pressure_psia(self) -> float:
        return float(self.mfc.inlet_pressure_pa) / PSI_PA

    @property
    def temperature_c(self) -> float:
        return float(self.mfc.temp_c)

    @property
    def volumetric_flow(self) -> float:
        """ccm at the inlet: standard flow scaled by pressure (ideal gas, same temperature)."""
        inlet = max(float(self.mfc.inlet_pressure_pa), 1.0)
        return self.mass_flow_sccm * 101325.0 / inlet

    @property
    def full_scale_sccm(self) -> float:
        return float(self.mfc.full_scale_sccm)

    @property
    def flags(self) -> Set[str]:
        return {"MOV"} if self.mass_flow_sccm > 1.1 * self.full_scale_sccm else set()


def _mfc(ctx: BindContext, device: DeviceConfig) -> Bound:
    space = ctx.space_of(device)
    mfc = ctx.lookup(ctx.plant.mfcs, f"{space}.mfc", "mass-flow controller", device)
    chamber = ctx.plant.spaces[space]
    backend = _MfcBackend(mfc, lambda: chamber.pressure_pa)
    unit_id = device.address if isinstance(device.address, str) else "A"
    return Bound(session_factory=lambda: MassFlowControllerSession(unit_id, backend), sim=backend)


class _PlantCrystals:
    """The plant's crystals as the monitor's oscillator sees them: a frequency (through `SignalFaults`,
    so it can be stuck or drift), 0 Hz once a crystal stops oscillating, and its rate of change."""

    def __init__(self, qcm: Qcm, ctx: BindContext, device: DeviceConfig) -> None:
        self.qcm = qcm
        self._frequency = [
            ctx.signal(device, f"frequency_ch{n}", _reader(c, "frequency_hz"))
            for n, c in enumerate(qcm.channels, 1)
        ]

    @property
    def channel_count(self) -> int:
        return len(self.qcm.channels)

    def frequency_hz(self, channel: int) -> float:
        return 0.0 if self.qcm.channel(channel).failed else self._frequency[channel - 1]()

    def frequency_slope_hz_s(self, channel: int) -> float:
        return float(self.qcm.channel(channel).frequency_slope_hz_s)


def _qcm(ctx: BindContext, device: DeviceConfig) -> Bound:
    """The SQM-160 as commissioned: each sensor's crystal tooling makes up for its crystal's place
    (100 / geometry ratio); no film is programmed (the controller does that for each layer)."""
    space = ctx.space_of(device)
    qcm = ctx.lookup(ctx.plant.qcms, ctx.chamber_prefix(space) + "qcm", "thickness monitor", device)
    sensors = with_crystal_tooling(SensorParameters(), [100.0 / c.geometry_ratio for c in qcm.channels])
    instrument = Sqm160(_PlantCrystals(qcm, ctx, device), sensors=sensors, clock=ctx.now_s)
    return Bound(session_factory=lambda: ThicknessMonitorSession(instrument), sim=instrument)


def _glovebox(ctx: BindContext, device: DeviceConfig) -> Bound:
    box = ctx.lookup(ctx.plant.gloveboxes, ctx.space_of(device), "glovebox", device)

    def circulate(on: bool) -> None:
        box.circulation_on = on

    sim = GloveboxControllerSim(
        int(device.address or 1),
        o2_ppmv=ctx.signal(device, "o2", lambda: box.o2_ppmv),
        h2o_ppmv=ctx.signal(device, "h2o", lambda: box.h2o_ppmv),
        box_pressure_pa=ctx.signal(device, "box_pressure", lambda: box.box_pressure_pa),
        on_circulation=circulate,
        clock=ctx.now_s,
        gas_supply_ok=lambda: not any(s.empty for s in ctx.plant.supplies.values()),
    )
    return Bound(unit=sim.unit, sim=sim)


class _IoWiring:
    """Remote I/O point names (``inlet.rough_valve``, ``inlet_gate.closed``) onto plant objects."""

    def __init__(self, ctx: BindContext) -> None:
        self.plant = ctx.plant
        self.ctx = ctx
        self.outer_doors = {
            f"{next(s for s in p.between if s != 'room')}.outer_door": self._outer_door_name(p.between)
            for p in ctx.config.ports
            if p.kind == "outer_door"
        }

    @staticmethod
    def _outer_door_name(between: tuple[str, str]) -> str:
        return f"{next(s for s in between if s != 'room')}.outer"

    def _actuator(self, point: str) -> Any:
        plant = self.plant
        if point in self.outer_doors:
            return plant.doors[self.outer_doors[point]]
        if point in plant.doors:
            return plant.doors[point]
        space, _, what = point.partition(".")
        valve = {"rough_valve": "rough", "vent_valve": "vent", "gas_fill_valve": "gas_fill"}.get(what)
        if valve is not None:
            return plant.valves[f"{space}.{valve}"]
        if what == "turbo_gate_valve":
            return plant.valves[f"{space}.turbo_gate"]
        if what == "rough_pump":
            return plant.pumps[f"{space}.rough"]
        if what == "backing_pump":
            return plant.pumps[f"{space}.backing"]
        if what.startswith("shutter_"):
            return plant.sources[self.ctx.chamber_prefix(space) + what.removeprefix("shutter_")]
        if what == "substrate_shutter":
            return plant.substrates[space]
        raise BindingError(f"remote I/O point {point!r} has no counterpart in the plant")

    def command(self, point: str, on: bool) -> None:
        target = self._actuator(point)
        if hasattr(target, "shutter_open"):
            target.shutter_open = on
        elif hasattr(target, "running"):
            target.running = on
        elif hasattr(target, "open"):
            target.open = on
        else:  # the substrate shutter is a mechanical flag on the substrate holder
            target.shutter_open = on

    def status(self, point: str) -> bool:
        base, _, contact = point.rpartition(".")
        target = self._actuator(base)
        if contact == "open":
            return bool(getattr(target, "is_open", getattr(target, "shutter_open", False)))
        if contact == "closed":
            return bool(target.is_closed)
        if contact == "running":
            return bool(target.pumping)
        if contact == "fault":
            return bool(target.failed)
        raise BindingError(f"remote I/O input {point!r}: unknown contact {contact!r}")


def _remote_io(ctx: BindContext, device: DeviceConfig) -> Bound:
    wiring = _IoWiring(ctx)
    points = ctx.config.remote_io_points()
    for name in (*points.outputs, *points.inputs):  # fail at start-up, not at the first poll
        (wiring.status if name in points.inputs else wiring._actuator)(name)
    sim = RemoteIoSim(
        points, on_output=wiring.command, read_input=wiring.status, unit_id=int(device.address or 1)
    )
    return Bound(unit=sim.unit, sim=sim, ticks=[sim.check_watchdog])


class _SourceBackend:
    """The source rack's outputs drive the plant's sources; the hard-wired interlock is the chamber seal."""

    def __init__(self, ctx: BindContext, space: str) -> None:
        self.plant = ctx.plant
        self.prefix = ctx.chamber_prefix(space)
        self.space = space
        self.electrical = IdealSourceBackend()
        self.kinds = {s.name: s.kind for s in STANDARD_LINE_SOURCES}
        self.doors = [
            door
            for name, door in ctx.plant.doors.items()
            if name in {p.name for p in ctx.config.ports if space in p.between} or name in {f"{space}.outer"}
        ]

    def interlock_ok(self, source: str) -> bool:
        return (
            all(door.is_closed for door in self.doors) and not self.plant.sources[self.prefix + source].fault
        )

    def apply(self, source: str, on: bool, setpoints: Mapping[str, float]) -> None:
        self.electrical.apply(source, on, setpoints)
        target = self.plant.sources[self.prefix + source]
        kind = self.kinds[source]
        if kind is SourceKind.PULSED_LASER:
            energy_j = setpoints.get("pulse_energy_setpoint", 0.0)
            rate_hz = setpoints.get("rep_rate_setpoint", 0.0)
            target.rep_rate_hz = rate_hz
            target.power_setpoint_w = energy_j * rate_hz
        elif kind is SourceKind.ION_SOURCE:
            voltage_v = setpoints.get("beam_voltage_setpoint", 0.0)
            target.power_setpoint_w = voltage_v * setpoints.get("beam_current_setpoint", 0.0)
        else:
            target.power_setpoint_w = setpoints.get("power_setpoint", 0.0)
        target.enabled = on
        if kind is SourceKind.EVAPORATION:
            self._ion_source_mode(plating=on)

    def _ion_source_mode(self, *, plating: bool) -> None:
        """The rack has no mode register: an ion source running while the evaporation supply is on is
        taken as the ion-plating bias (it ionises the vapour instead of etching the substrate)."""
        for name, kind in self.kinds.items():
            source = self.plant.sources.get(self.prefix + name)
            if kind is SourceKind.ION_SOURCE and source is not None:
                source.mode = "plating" if plating else "etch"

    def readbacks(self, source: str) -> Mapping[str, float]:
        values = dict(self.electrical.readbacks(source))
        if not self.plant.sources[self.prefix + source].emitting:  # no plasma: no load, no power
            return dict.fromkeys(values, 0.0)
        return values


def _sources(ctx: BindContext, device: DeviceConfig) -> Bound:
    backend = _SourceBackend(ctx, ctx.space_of(device))
    sim = DepositionSourcesSim(backend=backend, unit_id=int(device.address or 1), clock=ctx.now_s)
    return Bound(unit=sim.unit, sim=sim, ticks=[sim.check])


BUILDERS: dict[str, Callable[[BindContext, DeviceConfig], Bound]] = {
    "tpg36x": _tpg,
    "pfeiffer_turbo": _turbo,
    "dewpoint_transmitter": _dewpoint,
    "temperature_controller": _heater,
    "mass_flow_controller": _mfc,
    "thickness_monitor": _qcm,
    "glovebox_controller": _glovebox,
    "remote_io": _remote_io,
    "deposition_sources": _sources,
}
