"""Allowed actions turned into driver calls, each followed by a readback of what the device now holds.

The gate calls `apply` only after the interlocks allowed an action. Every write is read back from the
device (the remote I/O coil, the controller setpoint, the source output, the turbo's pumping
station): a device that accepted a command but holds something else raises `ReadbackMismatch`.
Whether a door then actually *moved* is judged later from its limit switches (see gate.py).
"""

from __future__ import annotations

from typing import TypeVar

from controller.actions import (
    Action,
    MoveItem,
    SetContainer,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetShutter,
    SetSource,
    SetTurbo,
    SetValve,
)
from controller.config import LineConfig
from controller.devices import LineDevices
from controller.errors import ControllerError
from controller.line_model import LineModel
from controller.line_state import IO_VALVE_POINTS, io_point_of_port
from drivers.deposition_sources import DepositionSources
from drivers.mass_flow_controller import MassFlowController
from drivers.pfeiffer_vacuum_protocol import TurboPump
from drivers.remote_io import RemoteIo
from drivers.temperature_controller import TemperatureController

SETPOINT_TOLERANCE_C = 0.5
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
            kind = next(s.kind for s in config.spaces if s.name == space)
            return f"{space}.rough_pump" if kind == "antechamber" else f"{space}.backing_pump"
        case SetShutter(space=space, shutter=shutter):
            return f"{space}.substrate_shutter" if shutter == "substrate" else f"{space}.shutter_{shutter}"
    raise NoActuator(f"no remote I/O point for {action}")


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
            await rack.set_power_w(action.source, action.power_w)
            await rack.enable(action.source)
        else:
            await rack.disable(action.source)
        state = await rack.read_source(action.source)
        if state.output_on != action.enabled:
            raise ReadbackMismatch(
                f"{rack.name}: {action.source} output is {'on' if state.output_on else 'off'}"
            )


def _on(action: SetValve | SetPort | SetPump | SetShutter) -> bool:
    match action:
        case SetPump(running=running):
            return running
        case SetValve(open=o) | SetPort(open=o) | SetShutter(open=o):
            return o
    raise NoActuator(f"not an on/off action: {action}")
