"""Simulated Pfeiffer Vacuum Protocol devices on one RS-485 bus, through the driver codec's device role.

One `PfeifferProtocolSession` is the bus: it hears every telegram and lets the addressed device answer;
telegrams for nobody, for a group (9xx) or for everybody (000) get no reply [U: the group/global rule is
from a third-party README; group/global writes are not applied either]. Corrupt telegrams are ignored
like a real slave ignores them. Build it with the devices on the bus::

    turbo = TurboPumpDevice(plant.turbo, address=1)            # plant.turbo implements TurboBackend
    gauge = GaugeDevice(lambda: plant.chamber_pa, address=11, name="PKR361")
    PtyEndpoint("rs485-turbo", lambda: PfeifferProtocolSession([turbo, gauge]), SerialSettings(9600))

Devices keep their state outside the session, so a power cycle of the endpoint keeps settings (they are
in the drive's EEPROM). Every device answers from the shared parameter table of
`drivers.pfeiffer_vacuum_protocol`: an unknown or unsupported parameter -> ``NO_DEF``, a write to a
read-only one (or a read of a write-only one) -> ``_LOGIC``, a value that does not parse or lies outside
the table's range -> ``_RANGE``. Fault hooks on every device: `forced_replies` (parameter -> error
word) and `responding` (one silent device on a live bus); `GaugeDevice.stuck_pa` and `.error_code`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from drivers.codec import NEED_DATA
from drivers.errors import ProtocolError
from drivers.pfeiffer_vacuum_protocol import (
    OVER_RANGE_DATA,
    PA_PER_HPA,
    PARAMETERS,
    READ_QUERY,
    UNDER_RANGE_DATA,
    Access,
    DataType,
    Telegram,
    TelegramDecoder,
    Value,
    decode_value,
    encode_reply,
    encode_value,
)

log = logging.getLogger(__name__)


class BusDevice(Protocol):
    address: int

    def handle(self, request: Telegram) -> str | None:
        """Reply data (a value, the accepted write, an error word), or None for no reply."""
        ...


class PfeifferProtocolSession:
    """The bus: one request at a time, answered by the device it is addressed to."""

    def __init__(self, devices: Iterable[BusDevice]) -> None:
        self.devices = list(devices)
        self._decoder = TelegramDecoder()

    def receive(self, data: bytes) -> bytes:
        self._decoder.feed(data)
        out = bytearray()
        while True:
            try:
                telegram = self._decoder.next_frame()
            except ProtocolError as exc:
                log.debug("pfeiffer telegram ignored", extra={"reason": str(exc)})
                continue
            if telegram is NEED_DATA:
                return bytes(out)
            out += self._answer(telegram)

    def _answer(self, request: Telegram) -> bytes:
        if request.address == 0 or request.address >= 900:
            return b""
        device = next((d for d in self.devices if d.address == request.address), None)
        if device is None:
            return b""
        data = device.handle(request)
        return b"" if data is None else encode_reply(request, data)


class ParameterDevice:
    """Table-driven request handling; subclasses supply `read_value` and `write_value`."""

    def __init__(self, address: int, parameters: Iterable[int]) -> None:
        self.address = address
        self.supported = frozenset(parameters) & PARAMETERS.keys()
        self.forced_replies: dict[int, str] = {}
        self.responding = True

    def handle(self, request: Telegram) -> str | None:
        number = request.parameter
        if not self.responding:
            return None
        if number in self.forced_replies:
            return self.forced_replies[number]
        if number not in self.supported:
            return "NO_DEF"
        p = PARAMETERS[number]
        if request.is_read:
            if request.data != READ_QUERY:
                return None  # not a telegram this device understands [U]
            return "_LOGIC" if p.access is Access.W else self.read_data(number)
        if p.access is Access.R:
            return "_LOGIC"
        try:
            value = decode_value(p.dtype, request.data)
        except ProtocolError:
            return "_RANGE"
        if not p.check_range(value):
            return "_RANGE"
        return encode_value(p.dtype, self.write_value(number, value))

    def read_data(self, number: int) -> str:
        p = PARAMETERS[number]
        return encode_value(p.dtype, _fit(p.dtype, self.read_value(number)))

    def read_value(self, number: int) -> Value:
        raise NotImplementedError

    def write_value(self, number: int, value: Value) -> Value:
        """Apply a write; returns the value accepted."""
        if number == 797:
            self.address = int(value)
            return value
        raise NotImplementedError


def _fit(dtype: DataType, value: Value) -> Value:
    """Physics may go below zero or past the field; the device shows what its field can hold."""
    if dtype in (DataType.U_INTEGER, DataType.U_SHORT_INT) and not isinstance(value, bool | str):
        top = 999999 if dtype is DataType.U_INTEGER else 999
        return min(max(round(value), 0), top)
    if dtype is DataType.U_REAL and not isinstance(value, bool | str):
        return min(max(float(value), 0.0), 9999.99)
    return value


class TurboBackend(Protocol):
    """The physics of a turbo pump and its drive, supplied by the plant model."""

    @property
    def actual_speed_hz(self) -> float: ...
    @property
    def set_speed_hz(self) -> float: ...
    @property
    def nominal_speed_hz(self) -> float: ...
    @property
    def drive_power_w(self) -> float: ...
    @property
    def drive_current_a(self) -> float: ...
    @property
    def electronics_temp_c(self) -> float: ...
    @property
    def bottom_temp_c(self) -> float: ...
    @property
    def bearing_temp_c(self) -> float: ...
    @property
    def motor_temp_c(self) -> float: ...
    @property
    def error_code(self) -> str:
        """``000000`` when fine, else ``ErrXXX`` / ``WrnXXX``."""
        ...

    @property
    def set_speed_reached(self) -> bool: ...
    @property
    def accelerating(self) -> bool: ...

    pumping_station_on: bool
    motor_on: bool

    def acknowledge_error(self) -> None: ...


TURBO_PARAMETERS = frozenset(
    {9, 10, 23, 303, 306, 307, 308, 309, 310, 312, 315, 316, 326, 330, 342, 346, 349, 397, 398, 399, 797}
)
TURBO_SETTINGS_DEFAULTS: dict[int, Value] = {
    1: False,  # heating
    2: False,  # standby
    12: False,  # enable venting
    27: 0,  # gas mode: heavy gases
    30: 0,  # vent mode: delayed
    700: 8,  # run-up time limit, min
    701: 80,  # speed switch point, %
    707: 75.0,  # speed in speed-setting mode, % [U]
    720: 50,  # venting speed, % [U]
    721: 3600,  # venting time, s [U]
}


class TurboPumpDevice(ParameterDevice):
    """A TC 110 drive: pump parameters from the backend, plain settings kept here."""

    def __init__(
        self, backend: TurboBackend, *, address: int = 1, name: str = "TC 110", firmware: str = "010300"
    ) -> None:
        super().__init__(address, [*TURBO_PARAMETERS, *TURBO_SETTINGS_DEFAULTS])
        self.backend = backend
        self.name = name
        self.firmware = firmware
        self.settings = dict(TURBO_SETTINGS_DEFAULTS)

    def read_value(self, number: int) -> Value:
        b = self.backend
        readers: dict[int, Callable[[], Value]] = {
            10: lambda: b.pumping_station_on,
            23: lambda: b.motor_on,
            303: lambda: b.error_code,
            306: lambda: b.set_speed_reached,
            307: lambda: b.accelerating,
            308: lambda: b.set_speed_hz,
            309: lambda: b.actual_speed_hz,
            310: lambda: b.drive_current_a,
            312: lambda: self.firmware,
            315: lambda: b.nominal_speed_hz,
            316: lambda: b.drive_power_w,
            326: lambda: b.electronics_temp_c,
            330: lambda: b.bottom_temp_c,
            342: lambda: b.bearing_temp_c,
            346: lambda: b.motor_temp_c,
            349: lambda: self.name,
            397: lambda: b.set_speed_hz * 60,
            398: lambda: b.actual_speed_hz * 60,
            399: lambda: b.nominal_speed_hz * 60,
            797: lambda: self.address,
        }
        return readers[number]() if number in readers else self.settings[number]

    def write_value(self, number: int, value: Value) -> Value:
        if number == 9:
            if value:
                self.backend.acknowledge_error()
        elif number == 10:
            if value:
                self.backend.acknowledge_error()  # switching the station on acknowledges errors [V]
            self.backend.pumping_station_on = bool(value)
        elif number == 23:
            self.backend.motor_on = bool(value)
        elif number in self.settings:
            self.settings[number] = value
        else:
            return super().write_value(number, value)
        return value


class GaugeDevice(ParameterDevice):
    """A pressure channel answering P:740 in hPa (and its name, error code and address).

    Below `min_pa` it answers ``000000``, above `max_pa` ``999999`` (the TPG 36x convention).
    Defaults are a PKR wide-range head [U].
    """

    def __init__(
        self,
        pressure_pa: Callable[[], float],
        *,
        address: int = 1,
        name: str = "PKR361",
        min_pa: float = 5e-7,
        max_pa: float = 1e5,
    ) -> None:
        super().__init__(address, [303, 349, 740, 797])
        self.pressure_pa = pressure_pa
        self.name = name
        self.min_pa = min_pa
        self.max_pa = max_pa
        self.stuck_pa: float | None = None
        self.error_code = "000000"

    def read_data(self, number: int) -> str:
        if number != 740:
            return super().read_data(number)
        p = self.stuck_pa if self.stuck_pa is not None else self.pressure_pa()
        if not math.isfinite(p) or p > self.max_pa:
            return OVER_RANGE_DATA
        if p < self.min_pa:
            return UNDER_RANGE_DATA
        return encode_value(DataType.U_EXPO_NEW, p / PA_PER_HPA)

    def read_value(self, number: int) -> Value:
        values: dict[int, Value] = {303: self.error_code, 349: self.name, 797: self.address}
        return values[number]


class NamedDevice(ParameterDevice):
    """A controller-level address that only names itself (TPG 36x at ``aa0``: ``TPG362``)."""

    def __init__(self, *, address: int, name: str) -> None:
        super().__init__(address, [349])
        self.name = name

    def read_value(self, number: int) -> Value:
        return self.name


def tpg36x_bus_devices(
    pressures: Sequence[Callable[[], float]],
    *,
    controller: int = 1,
    model: str = "TPG362",
    gauge_names: Sequence[str] = ("PKR361", "PKR361"),
) -> list[ParameterDevice]:
    """A TPG 36x in Pfeiffer-protocol mode: ``aa0`` for the unit, ``aa1``... for its channels."""
    base = 10 * controller
    devices: list[ParameterDevice] = [NamedDevice(address=base, name=model)]
    for i, pressure in enumerate(pressures, start=1):
        devices.append(GaugeDevice(pressure, address=base + i, name=gauge_names[i - 1]))
    return devices
