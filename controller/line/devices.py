"""Build the driver objects of a line from its configuration.

One `Link` per configured link, shared by every device on it (an RS-485 bus is one link whatever the
number of devices), and one `ModbusClient` per Modbus link. Family-specific settings in
``[devices.params]`` and the addresses were checked when the configuration was read
(`controller.config.device_params`), defaults filled in: the builders take them as given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from controller.config.line_config import MODBUS_FAMILIES, DeviceConfig, LineConfig
from drivers.deposition_sources import DepositionSources
from drivers.dewpoint_transmitter import DewPointTransmitter
from drivers.glovebox_controller import GloveboxController
from drivers.link import Link
from drivers.mass_flow_controller import MassFlowController
from drivers.modbus import ModbusClient
from drivers.pfeiffer_vacuum_protocol import TurboPump
from drivers.reading import Reading
from drivers.remote_io import RemoteIo
from drivers.temperature_controller import TemperatureController
from drivers.thickness_monitor import ThicknessMonitor
from drivers.tpg36x import Tpg36x

T = TypeVar("T")


class Driver(Protocol):
    """What the poller, the benchmark and the demo need from any instrument driver."""

    name: str

    async def poll(self) -> dict[str, Reading]: ...


@dataclass
class LineDevices:
    """The open links and the driver of every configured device, by device name."""

    links: dict[str, Link] = field(default_factory=dict)
    drivers: dict[str, Driver] = field(default_factory=dict)

    def get(self, name: str, kind: type[T]) -> T:
        """The driver of device `name`, checked to be a `kind` (a wrong family is a config error)."""
        driver = self.drivers[name]
        if not isinstance(driver, kind):
            raise TypeError(f"device {name!r} is a {type(driver).__name__}, not a {kind.__name__}")
        return driver

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()


def build_line_devices(config: LineConfig, *, modbus_timeout_s: float = 0.5) -> LineDevices:
    """Create links and drivers (nothing is opened until the first request)."""
    devices = LineDevices()
    clients: dict[str, ModbusClient] = {}
    for name, link_config in config.links.items():
        devices.links[name] = Link(link_config.url, name=name)
    for device in config.devices:
        link = devices.links[device.link]
        if device.family in MODBUS_FAMILIES and device.link not in clients:
            clients[device.link] = ModbusClient(link, timeout_s=modbus_timeout_s)
        builder = _BUILDERS[device.family]
        devices.drivers[device.name] = builder(config, device, link, clients.get(device.link))
    return devices


def _unit(device: DeviceConfig, default: int) -> int:
    return device.address if isinstance(device.address, int) else default


def _modbus(client: ModbusClient | None) -> ModbusClient:
    assert client is not None, "Modbus families always get a client"
    return client


def _tpg(config: LineConfig, device: DeviceConfig, link: Link, _: ModbusClient | None) -> Driver:
    gauge_types = device.params["gauge_types"]
    return Tpg36x(link, name=device.name, channels=max(len(gauge_types), len(device.channels), 1))


def _turbo(config: LineConfig, device: DeviceConfig, link: Link, _: ModbusClient | None) -> Driver:
    address = device.address if isinstance(device.address, int) else 1
    return TurboPump(link, name=device.name, address=address)


def _dewpoint(config: LineConfig, device: DeviceConfig, link: Link, client: ModbusClient | None) -> Driver:
    word_order: Any = device.params["word_order"]
    return DewPointTransmitter(
        _modbus(client), name=device.name, unit=_unit(device, 240), word_order=word_order
    )


def _heater(config: LineConfig, device: DeviceConfig, link: Link, client: ModbusClient | None) -> Driver:
    order = device.params.get("rate_units_order")
    return TemperatureController(
        _modbus(client), name=device.name, unit=_unit(device, 1), rate_units_order=order
    )


def _mfc(config: LineConfig, device: DeviceConfig, link: Link, _: ModbusClient | None) -> Driver:
    unit_id = device.address if isinstance(device.address, str) else "A"
    full_scale = device.params["full_scale_sccm"]
    return MassFlowController(link, name=device.name, unit_id=unit_id, full_scale_sccm=full_scale)


def _qcm(config: LineConfig, device: DeviceConfig, link: Link, _: ModbusClient | None) -> Driver:
    return ThicknessMonitor(link, name=device.name, channel=device.params["channel"])


def _glovebox(config: LineConfig, device: DeviceConfig, link: Link, client: ModbusClient | None) -> Driver:
    return GloveboxController(_modbus(client), name=device.name, unit=_unit(device, 1))


def _remote_io(config: LineConfig, device: DeviceConfig, link: Link, client: ModbusClient | None) -> Driver:
    return RemoteIo(
        _modbus(client), name=device.name, unit=_unit(device, 1), points=config.remote_io_points()
    )


def _sources(config: LineConfig, device: DeviceConfig, link: Link, client: ModbusClient | None) -> Driver:
    return DepositionSources(_modbus(client), name=device.name, unit=_unit(device, 1))


_BUILDERS: dict[str, Callable[[LineConfig, DeviceConfig, Link, ModbusClient | None], Driver]] = {
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
