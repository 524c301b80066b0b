"""Allowed actions turned into driver calls, each followed by a readback of what the device now holds.

The gate calls `apply` only after the interlocks allowed an action. Every write is read back from the
device (the remote I/O coil, the controller setpoint, the source output, the turbo's pumping
station, the thickness monitor's film): a device that accepted a command but holds something else
raises `ReadbackMismatch`, naming what differs.
Whether a door then actually *moved* is judged later from its limit switches (see gate.py).

`SetSource` speaks watts for every source; `source_setpoints` is the one place that turns them into
what each kind of supply takes (devices.md §0): a power setpoint, or pulse energy at a fixed repetition
rate (laser), or beam current at a fixed beam voltage (ion source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from controller.config.line_config import LineConfig
from controller.errors import ControllerError
from controller.line.actions import (
    Action,
    MoveItem,
    SetContainer,
    SetFilm,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetShutter,
    SetSource,
    SetTurbo,
    SetValve,
)
from controller.line.devices import LineDevices
from controller.line.model import LineModel
from controller.line.state import IO_VALVE_POINTS, io_point_of_port
from drivers.deposition_sources import DepositionSources, SourceKind, SourceSpec
from drivers.mass_flow_controller import MassFlowController
from drivers.pfeiffer_vacuum_protocol import TurboPump
from drivers.remote_io import RemoteIo
from drivers.temperature_controller import TemperatureController
from drivers.thickness_monitor import PROGRAMMED_FILM, ThicknessMonitor
from drivers.thickness_monitor_settings import film_differences, film_label

SETPOINT_TOLERANCE_C = 0.5
SOURCE_SETPOINT_REL_TOLERANCE = 1e-5  # float32 on the wire keeps ~7 digits
T = TypeVar("T")


class ReadbackMismatch(ControllerError):
    """The device acknowledged a command but reads back something else."""


class NoActuator(ControllerError):
    """The configuration has no device that can perform this action."""


def io_point(config: LineConfig, action: SetValve | SetPort | SetPump | SetShutter) -> str:
    """The remote I/O output that performs a valve, door, pump or shutter action."""
    match action:
        case SetValve(space=space, valve=valve):
            return f"{space}.{IO_VALVE_POINTS[valve]}"
        case SetPort(port=port):
            return io_point_of_port(port)
        case SetPump(space=space):
            rough = next(s.rough_pumped for s in config.spaces if s.name == space)
            return f"{space}.rough_pump" if rough else f"{space}.backing_pump"
        case SetShutter(space=space, shutter=shutter):
            return f"{space}.substrate_shutter" if shutter == "substrate" else f"{space}.shutter_{shutter}"
    raise NoActuator(f"no remote I/O point for {action}")


class SourcePowerOutOfRange(ControllerError, ValueError):
    """The requested power is beyond what the source's setpoint limits allow; nothing was written."""


@dataclass(frozen=True, slots=True)
class PowerSplit:
    """A kind without a power setpoint: `fixed_slot` runs at `fixed_value` (capped at its limit) and
    the power goes into `power_slot` = P / fixed value, so one number from a recipe sets the source."""

    power_slot: str
    fixed_slot: str
    fixed_value: float


# the laser keeps one repetition rate (film growth per pulse stays comparable between runs; the plant's
# nominal 0.3 J x 10 Hz = 3 W); the ion source one beam voltage inside the usual 300-1500 V of Ar ion
# etch, so 250 W of etch is 0.25 A, within the 0.3 A the supply gives
POWER_SPLITS: dict[SourceKind, PowerSplit] = {
    SourceKind.PULSED_LASER: PowerSplit("pulse_energy_setpoint", "rep_rate_setpoint", 10.0),
    SourceKind.ION_SOURCE: PowerSplit("beam_current_setpoint", "beam_voltage_setpoint", 1000.0),
}
POWER_SLOT = "power_setpoint"


def _limits(spec: SourceSpec) -> dict[str, float]:
    return dict(zip((slot.name for slot in spec.spec.setpoints), spec.limits, strict=True))


def _fixed_value(spec: SourceSpec, split: PowerSplit) -> float:
    return min(split.fixed_value, _limits(spec)[split.fixed_slot])


def max_power_w(spec: SourceSpec) -> float:
    """The highest power `source_setpoints` accepts for this source."""
    split = POWER_SPLITS.get(spec.kind)
    if split is None:
        return _limits(spec)[POWER_SLOT]
    return _limits(spec)[split.power_slot] * _fixed_value(spec, split)


def _limit_text(spec: SourceSpec) -> str:
    """What bounds the power, in the device's terms: "pulse energy limit 0.7 J at rep rate 10 Hz"."""
    split = POWER_SPLITS.get(spec.kind)
    if split is None:
        return "power setpoint limit"
    units = {slot.name: slot.unit for slot in spec.spec.setpoints}

    def said(slot: str) -> str:
        return slot.removesuffix("_setpoint").replace("_", " ")

    return (
        f"{said(split.power_slot)} limit {_limits(spec)[split.power_slot]:g} {units[split.power_slot]} "
        f"at {said(split.fixed_slot)} {_fixed_value(spec, split):g} {units[split.fixed_slot]}"
    )


def source_setpoints(
    spec: SourceSpec, power_w: float, pulse_rate_hz: float | None = None
) -> dict[str, float]:
    """The setpoints (SI, by slot name, in writing order) that make `spec` deliver `power_w`.

    `pulse_rate_hz` replaces a laser's usual repetition rate (the recipe's pulse rate); a rate beyond
    the source's limit, or given to a source that has none, is refused like a power out of range.

    A power outside 0..`max_power_w` (NaN included) raises `SourcePowerOutOfRange` naming the limit,
    before anything reaches the device. A power supply gets its power setpoint only: its ramp rate
    stays whatever it holds.
    """
    split = POWER_SPLITS.get(spec.kind)
    if pulse_rate_hz is not None:
        if spec.kind is not SourceKind.PULSED_LASER or split is None:
            raise SourcePowerOutOfRange(f"{spec.name}: a {spec.kind.value} source takes no pulse rate")
        limits = _limits(spec)
        if not 0.0 < pulse_rate_hz <= limits[split.fixed_slot]:
            raise SourcePowerOutOfRange(
                f"{spec.name}: pulse rate {pulse_rate_hz:g} Hz is outside 0..{limits[split.fixed_slot]:g} Hz"
            )
        energy = power_w / pulse_rate_hz
        if not 0.0 <= energy <= limits[split.power_slot]:  # NaN refused too
            raise SourcePowerOutOfRange(
                f"{spec.name}: {power_w:g} W at {pulse_rate_hz:g} Hz is {energy:g} J a pulse, "
                f"beyond the {limits[split.power_slot]:g} J limit"
            )
        return {split.fixed_slot: pulse_rate_hz, split.power_slot: energy}
    highest = max_power_w(spec)
    if not 0.0 <= power_w <= highest:  # written so that NaN is refused too
        raise SourcePowerOutOfRange(
            f"{spec.name}: {power_w:g} W is outside 0..{highest:g} W ({_limit_text(spec)})"
        )
    if split is None:
        return {POWER_SLOT: power_w}
    fixed = _fixed_value(spec, split)
    return {split.fixed_slot: fixed, split.power_slot: power_w / fixed}


class Actuators:
    def __init__(self, config: LineConfig, devices: LineDevices, model: LineModel) -> None:
        self.config = config
        self.devices = devices
        self.model = model
        self._by_space: dict[tuple[str, str], str] = {}
        self.io = next((d.name for d in config.devices if d.family == "remote_io"), None)
        for d in config.devices:
            if d.space is None:
                continue
            key = (
                d.family
                if d.family != "temperature_controller"
                else f"heater:{d.params.get('heater', 'substrate')}"
            )
            self._by_space.setdefault((d.space, key), d.name)

    def _device(self, space: str, key: str, kind: type[T]) -> T:
        name = self._by_space.get((space, key))
        if name is None:
            raise NoActuator(f"no {key.replace('_', ' ')} configured for {space}")
        return self.devices.get(name, kind)

    async def apply(self, action: Action) -> None:
        match action:
            case SetValve() | SetPort() | SetPump() | SetShutter():
                await self._io(io_point(self.config, action), _on(action))
            case SetTurbo(space=space, running=running):
                turbo = self._device(space, "pfeiffer_turbo", TurboPump)
                await (turbo.start() if running else turbo.stop())
                if await turbo.read_pumping_station() != running:
                    raise ReadbackMismatch(
                        f"{turbo.name}: pumping station did not switch {'on' if running else 'off'}"
                    )
            case SetGasFlow(space=space, flow_sccm=flow):
                mfc = self._device(space, "mass_flow_controller", MassFlowController)
                await mfc.set_flow_sccm(flow)  # the driver verifies the echoed setpoint
            case SetHeater(space=space, heater=heater, setpoint_c=setpoint):
                controller = self._device(space, f"heater:{heater}", TemperatureController)
                await controller.set_setpoint_c(setpoint)
                held = await controller.read_setpoint_c()
                if abs(held - setpoint) > SETPOINT_TOLERANCE_C:
                    raise ReadbackMismatch(
                        f"{controller.name}: setpoint reads {held:g} °C, commanded {setpoint:g} °C"
                    )
            case SetSource():
                await self._source(action)
            case SetFilm():
                await self._film(action)
            case MoveItem(item=item, to=to):
                self.model.move(item, to)
            case SetContainer(container=container, sealed=sealed):
                self.model.set_sealed(container, sealed)

    async def _io(self, point: str, on: bool) -> None:
        if self.io is None:
            raise NoActuator("no remote I/O configured")
        io = self.devices.get(self.io, RemoteIo)
        await io.set_output(point, on)
        held = (await io.read_outputs()).get(point)
        if held != on:
            raise ReadbackMismatch(f"{io.name}: output {point} reads {held}, commanded {on}")

    async def _source(self, action: SetSource) -> None:
        rack = self._device(action.space, "deposition_sources", DepositionSources)
        if action.enabled:
            wanted = source_setpoints(rack.map.source(action.source), action.power_w, action.pulse_rate_hz)
            for slot, value in wanted.items():
                await rack.set_setpoint(action.source, slot, value)
            held = await rack.read_setpoints(action.source)
            for slot, value in wanted.items():
                if not math.isclose(held[slot], value, rel_tol=SOURCE_SETPOINT_REL_TOLERANCE, abs_tol=1e-9):
                    raise ReadbackMismatch(
                        f"{rack.name}: {action.source} {slot} reads {held[slot]:g}, commanded {value:g}"
                    )
            await rack.enable(action.source)
        else:
            await rack.disable(action.source)
        state = await rack.read_source(action.source)
        if state.output_on != action.enabled:
            raise ReadbackMismatch(
                f"{rack.name}: {action.source} output is {'on' if state.output_on else 'off'}"
            )

    async def _film(self, action: SetFilm) -> None:
        """Program the film memory the controller owns, make it the active one, and read both back."""
        qcm = self._device(action.space, "thickness_monitor", ThicknessMonitor)
        wanted = await qcm.set_film(
            action.density_g_cm3,
            z_ratio=action.z_ratio,
            tooling_pct=action.tooling_pct,
            label=film_label(action.material),
            film=PROGRAMMED_FILM,
        )
        wrong = film_differences(await qcm.film_parameters(PROGRAMMED_FILM), wanted)
        active = await qcm.active_film()
        if active != PROGRAMMED_FILM:
            wrong.append(f"active film reads {active}, commanded {PROGRAMMED_FILM}")
        if wrong:
            raise ReadbackMismatch(f"{qcm.name}: {'; '.join(wrong)}")


def _on(action: SetValve | SetPort | SetPump | SetShutter) -> bool:
    match action:
        case SetPump(running=running):
            return running
        case SetValve(open=o) | SetPort(open=o) | SetShutter(open=o):
            return o
    raise NoActuator(f"not an on/off action: {action}")
