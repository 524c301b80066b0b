"""The simulated line: the plant a line configuration describes, and its instruments on real endpoints.

The plant carries the operator's items (plant/items.py): containers come in through every outer
door, the production items through the first antechamber's, and outgas where they lie.

Every configured link becomes one endpoint: a pseudo-terminal for a serial link (an RS-485 bus with
several devices is one pty, as it is one cable), a TCP port for a TCP link. A Modbus RTU bus is also
offered through a Modbus TCP gateway, as real sites often do. The controller reaches the simulator
exactly as it reaches the plant: by the URLs of `simulated_config()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from controller.config.line_config import MODBUS_FAMILIES, ROOM, DeviceConfig, LineConfig, LinkConfig
from drivers.link import rtu_turnaround_s
from drivers.transport import Endpoint, parse_url
from sim_hardware.bindings import BUILDERS, BindContext, BindingError, Bound
from sim_hardware.devices.pfeiffer_vacuum_protocol import PfeifferProtocolSession
from sim_hardware.devices.tpg36x import Tpg36xSession
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint
from sim_hardware.modbus_device import ModbusRtuSession, ModbusTcpSession, ModbusUnit
from sim_hardware.plant import (
    LineParts,
    LineSpec,
    Plant,
    PlantRunner,
    VirtualClock,
    antechamber_parts,
    combine,
    gate_between,
    item_traffic_spec,
    process_chamber_parts,
    q_mbar_l_s_cm2,
    transfer_chamber_parts,
)
from sim_hardware.signal_faults import SignalFaults

log = logging.getLogger(__name__)

PROTOCOLS = {
    "tpg36x": "tpg36x-mnemonics",
    "pfeiffer_turbo": "pfeiffer-vacuum-protocol",
    "mass_flow_controller": "alicat-ascii",
    "thickness_monitor": "sqm160",
}
TICK_S = 0.1


def plant_spec(config: LineConfig) -> LineSpec:
    """The plant a configuration describes: its spaces, pumps and the ports between them."""
    parts: list[LineParts] = []
    chambers = config.spaces_of_kind("process_chamber")
    for space in config.spaces:
        common: dict[str, Any] = {
            "volume_m3": space.volume_l / 1000.0,
            "wall_area_m2": space.wall_area_m2,
            "q_1h_pa_m3_s_m2": q_mbar_l_s_cm2(space.outgassing_q1h_mbar_l_s_cm2),
        }
        if space.kind == "antechamber":
            parts.append(antechamber_parts(space.name, rough_pump_m3_h=space.rough_pump_m3_h, **common))
        elif space.kind == "transfer_chamber":
            parts.append(transfer_chamber_parts(space.name, rough_pump_m3_h=space.rough_pump_m3_h, **common))
        else:
            prefix = "" if len(chambers) <= 1 else f"{space.name}."
            parts.append(
                process_chamber_parts(
                    space.name,
                    prefix=prefix,
                    backing_pump_m3_h=space.rough_pump_m3_h,
                    turbo_speed_m3_s=space.turbo_speed_l_s / 1000.0,
                    **common,
                )
            )
    gates = tuple(gate_between(p.name, *p.between) for p in config.ports if p.kind != "outer_door")
    loaded = [s for p in config.ports if p.kind == "outer_door" for s in p.between if s != ROOM]
    entry = next((s for s in config.spaces_of_kind("antechamber") if s in loaded), None)
    spec = combine(*parts, extra_openings=gates)
    return dataclasses.replace(spec, items=item_traffic_spec((entry,) if entry else ()))


@dataclasses.dataclass(frozen=True)
class InitialAtmosphere:
    """How a space starts: filled with a supply's gas (or "air") at a pressure, walls dry for so long.

    The plant starts as the line was left (argon-filled antechambers, a chamber kept under vacuum);
    the controller still has to find that out from its readings, never from this.
    """

    gas: str = "ar"
    pressure_pa: float | None = None
    dry_for_s: float = 0.0


def with_initial(spec: LineSpec, initial: Mapping[str, InitialAtmosphere]) -> LineSpec:
    spaces = tuple(
        dataclasses.replace(
            s,
            initial_gas=initial[s.name].gas,
            initial_pressure_pa=initial[s.name].pressure_pa,
            initial_outgassing_age_s=initial[s.name].dry_for_s,
        )
        if s.name in initial
        else s
        for s in spec.spaces
    )
    return dataclasses.replace(spec, spaces=spaces)


@dataclasses.dataclass
class SimLink:
    """One simulated physical link and the devices on it."""

    name: str
    endpoint: PtyEndpoint | TcpEndpoint
    protocol: str
    devices: list[DeviceConfig]
    units: dict[int, ModbusUnit] = dataclasses.field(default_factory=dict)
    gateway: TcpEndpoint | None = None


class SimLine:
    """The plant on a virtual clock plus every configured instrument on a real endpoint."""

    def __init__(
        self,
        config: LineConfig,
        *,
        speed: float = 1.0,
        pace: bool = False,
        initial: Mapping[str, InitialAtmosphere] | None = None,
        clock: VirtualClock | None = None,
    ) -> None:
        """`clock`: a virtual clock the controller reads too (it is set to `speed`); a new one if None."""
        self.config = config
        self.pace = pace
        self.clock = clock if clock is not None else VirtualClock(speed)
        self.clock.speed = speed
        self.plant = Plant.from_spec(with_initial(plant_spec(config), initial or {}))
        self.runner = PlantRunner(self.plant, self.clock)
        self.signal_faults = SignalFaults(lambda: self.plant.time_s)
        self.bound: dict[str, Bound] = {}
        self.links: dict[str, SimLink] = {}
        self._ticks: list[Callable[[], None]] = []
        self._tick_task: asyncio.Task[None] | None = None
        ctx = BindContext(config, self.plant, self.signal_faults, lambda: self.plant.time_s)
        for device in config.devices:
            try:
                self.bound[device.name] = bound = BUILDERS[device.family](ctx, device)
            except (BindingError, KeyError) as exc:
                raise BindingError(f"{config.path}: {exc}") from None
            self._ticks += bound.ticks
        for name, link in config.links.items():
            devices = config.devices_on(name)
            if devices:
                self.links[name] = self._build_link(name, parse_url(link.url), devices)

    def _build_link(self, name: str, endpoint: Endpoint, devices: list[DeviceConfig]) -> SimLink:
        families = {d.family for d in devices}
        if families <= MODBUS_FAMILIES:
            units = {int(d.address or 1): self._unit(d) for d in devices}
            return self._modbus_link(name, endpoint, devices, units)
        if len(families) > 1:
            raise BindingError(f"{self.config.path}: link {name!r} mixes protocols {sorted(families)}")
        family = families.pop()
        protocol = PROTOCOLS[family]
        factory = self._session_factory(family, devices)
        if endpoint.is_serial:
            assert endpoint.serial is not None
            for device in devices:
                if (state := self.bound[device.name].tpg_state) is not None:
                    state.commission_baudrate(endpoint.serial.baudrate)
            pty = PtyEndpoint(
                name,
                factory,
                endpoint.serial,
                scheme=endpoint.scheme,
                pace=self.pace,
                on_request=self.runner.catch_up,
            )
            return SimLink(name, pty, protocol, devices)
        return SimLink(name, TcpEndpoint(name, factory, on_request=self.runner.catch_up), protocol, devices)

    def _unit(self, device: DeviceConfig) -> ModbusUnit:
        unit = self.bound[device.name].unit
        assert unit is not None, f"{device.family} binds a Modbus unit"
        return unit

    def _modbus_link(
        self, name: str, endpoint: Endpoint, devices: list[DeviceConfig], units: dict[int, ModbusUnit]
    ) -> SimLink:
        if endpoint.rtu_framing:
            if endpoint.is_serial:
                assert endpoint.serial is not None
                gap = rtu_turnaround_s(endpoint.serial)
                ep: PtyEndpoint | TcpEndpoint = PtyEndpoint(
                    name,
                    lambda: ModbusRtuSession(units),
                    endpoint.serial,
                    scheme="rtu",
                    pace=self.pace,
                    reply_gap_s=gap,
                    on_request=self.runner.catch_up,
                )
            else:
                ep = TcpEndpoint(
                    name, lambda: ModbusRtuSession(units), scheme="rtu+tcp", on_request=self.runner.catch_up
                )
            gateway = TcpEndpoint(
                f"{name}-gateway",
                lambda: ModbusTcpSession(units, gateway=True),
                on_request=self.runner.catch_up,
            )
            return SimLink(name, ep, "modbus-rtu", devices, units, gateway)
        tcp = TcpEndpoint(name, lambda: ModbusTcpSession(units), on_request=self.runner.catch_up)
        return SimLink(name, tcp, "modbus-tcp", devices, units)

    def _session_factory(self, family: str, devices: list[DeviceConfig]) -> Callable[[], Any]:
        bound = [self.bound[d.name] for d in devices]
        if family == "tpg36x":
            if len(bound) != 1:
                raise BindingError(f"{self.config.path}: a TPG 36x link serves one controller")
            state = bound[0].tpg_state
            assert state is not None
            return lambda: Tpg36xSession(state)
        if family == "pfeiffer_turbo":
            pumps = [b.turbo for b in bound if b.turbo is not None]
            return lambda: PfeifferProtocolSession(pumps)
        if len(bound) != 1 or bound[0].session_factory is None:
            raise BindingError(f"{self.config.path}: a {family} link serves one device here")
        return bound[0].session_factory

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        started: list[PtyEndpoint | TcpEndpoint] = []
        try:
            for link in self.links.values():
                for ep in (link.endpoint, link.gateway):
                    if ep is not None:
                        await ep.start()
                        started.append(ep)
            await self.runner.start()
        except BaseException:
            for ep in reversed(started):
                await ep.stop()
            raise
        self._tick_task = asyncio.create_task(self._tick_loop(), name="sim-device-ticks")

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        for link in self.links.values():
            for ep in (link.endpoint, link.gateway):
                if ep is not None:
                    await ep.stop()
        await self.runner.stop()

    async def __aenter__(self) -> SimLine:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        """Device-side checks that real instruments do on their own (watchdogs, interlock trips)."""
        while True:
            await asyncio.sleep(TICK_S)
            for tick in self._ticks:
                tick()

    # -- what the outside sees -------------------------------------------------------------------

    def simulated_config(self) -> LineConfig:
        """The same line with every link URL pointing at its simulated endpoint."""
        links = dict(self.config.links)
        for name, link in self.links.items():
            links[name] = LinkConfig(name, link.endpoint.url)
        return dataclasses.replace(self.config, links=links)

    def endpoint_records(self) -> list[dict[str, Any]]:
        """One record per device and endpoint, as `depline sim` prints them."""
        records: list[dict[str, Any]] = []
        for link in self.links.values():
            for device in link.devices:
                unit = device.address if link.units else None
                records.append(
                    {"device": device.name, "protocol": link.protocol, "url": link.endpoint.url, "unit": unit}
                )
                if link.gateway is not None:
                    records.append(
                        {
                            "device": device.name,
                            "protocol": "modbus-tcp-gateway",
                            "url": link.gateway.url,
                            "unit": unit,
                        }
                    )
        return records

    def config_device(self, name: str) -> DeviceConfig:
        return next(d for d in self.config.devices if d.name == name)

    def link_of(self, device: str) -> SimLink:
        for link in self.links.values():
            if any(d.name == device for d in link.devices):
                return link
        raise KeyError(f"no simulated device {device!r}")
