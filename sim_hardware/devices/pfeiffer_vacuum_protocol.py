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
`drivers.pfeiffer_vacuum_protocol`, with the telegrams and error words of Pfeiffer BG 5510 BEN §2.1-2.3
("TPG 361, TPG 362 Mnemonics and Pfeiffer Vacuum Protocol"): an unknown or unsupported parameter ->
``NO_DEF``, a write to a read-only one (or a read of a write-only one) -> ``_LOGIC``, a value that does
not parse or lies outside the range -> ``_RANGE``.

The TC 110 answers its whole parameter set (control commands 0xx, status requests 3xx, set values 7xx
of its operating instructions' parameter tables; see the table's docstring): status values from the
plant's turbo, settings kept with the factory defaults, error history P:360-369 recorded as the drive
shows errors, a gauge on its input (P:739/740) when the line wires one. Settings the plant model has no
physics for are kept and read back but change nothing: standby and its speed (P:002/717), speed-setting
mode (P:026/707), venting (P:012/030/720/721), backing-pump and accessory configuration, relay and
digital I/O configuration, power limit (P:708). Not implemented: the DCU/display parameters (P:340,
350, 351, 738, 794, 795), which belong to a display unit, not to the drive.

A TPG 36x in Pfeiffer-protocol mode (`tpg36x_bus_devices`) answers BG 5510 BEN §2.4 at ``aa0``
(P:008, 045-048, 303, 312, 314, 349, 354, 797) and ``aa1``/``aa2`` (P:040, 041, 303, 349, 730, 732,
740, 742, 797). Fault hooks on every device: `forced_replies` (parameter -> error word) and
`responding` (one silent device on a live bus); `GaugeDevice.stuck_pa` and `.error_code`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar, Protocol

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
    """Table-driven request handling; subclasses supply `read_value` and `write_value`.

    `limits` narrows the shared table's range for this device (a TC 110 takes P:742 only to 8.0).
    """

    limits: ClassVar[Mapping[int, tuple[float, float]]] = {}

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
        if not p.check_range(value) or not self._within_limits(number, value):
            return "_RANGE"
        return encode_value(p.dtype, self.write_value(number, value))

    def _within_limits(self, number: int, value: Value) -> bool:
        if number not in self.limits or isinstance(value, str | bool):
            return True
        low, high = self.limits[number]
        return low <= value <= high

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


def pressure_data(pressure_hpa: float, min_hpa: float, max_hpa: float) -> str:
    """P:740 data: ``000000`` below the range, ``999999`` above it (BG 5510 BEN §2.4)."""
    if not math.isfinite(pressure_hpa) or pressure_hpa > max_hpa:
        return OVER_RANGE_DATA
    if pressure_hpa < min_hpa:
        return UNDER_RANGE_DATA
    return encode_value(DataType.U_EXPO_NEW, pressure_hpa)


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


TURBO_SETTINGS_DEFAULTS: dict[int, Value] = {
    # control commands (defaults of the TC 110 parameter set)
    1: False,  # heating
    2: False,  # standby
    4: True,  # run-up time control
    12: False,  # enable venting
    17: 0,  # speed switch point configuration
    19: 1,  # DO2: no error
    24: 0,  # DO1: speed switch point reached
    25: 0,  # backing pump: continuous
    26: 0,  # speed setting mode off
    27: 0,  # gas mode: heavy gases
    30: 0,  # vent mode: delayed [U: the sources differ, 0 or 2]
    35: 0,  # accessory A1: fan
    36: 1,  # accessory B1: venting valve
    37: 3,  # accessory A2: backing pump
    38: 2,  # accessory B2: heating
    41: 2,  # HV sensor on at the speed switch point
    50: False,  # sealing gas
    55: 0,  # AO1: actual speed
    60: 1,  # control via interface: remote
    61: False,  # interface selection locked
    62: 1,  # DI1: enable venting
    63: 2,  # DI2: heating
    # set values
    700: 8,  # run-up time limit, min
    701: 80,  # speed switch point 1, %
    707: 65.0,  # speed in speed-setting mode, %
    708: 100,  # power consumption, %
    710: 0,  # backing pump switch-off threshold, W
    711: 0,  # backing pump switch-on threshold, W
    717: 66.7,  # standby speed, %
    719: 20,  # speed switch point 2, %
    720: 50,  # venting speed, %
    721: 3600,  # venting time, s
    730: 1000.0,  # pressure switch point 1, hPa
    732: 1000.0,  # pressure switch point 2, hPa
    742: 1.0,  # gauge 1 correction factor [U: the table gives 0, outside its own 0.1-8.0]
    752: 1.0,
    777: 0,  # nominal speed confirmation, Hz
}
TURBO_STATUS = frozenset(
    {9, 10, 23, 300, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 319}
    | {326, 330, 336, 342, 346, 349, 354, 397, 398, 399, 739, 740, 749, 750, 797}
    | set(range(360, 370))
)
NO_ERROR = "000000"
NO_SENSOR_NAME = "noSENS"  # BG 5510 BEN §2.4's name for a channel without a head [U for a TC 110]
OVER_TEMPERATURE_C = {"electronics": 70.0, "pump": 90.0}  # [U]
_HOUR_S = 3600.0


class TurboPumpDevice(ParameterDevice):
    """A TC 110 drive: pump parameters from the backend, plain settings kept here.

    `gauge_pa` is an ActiveLine gauge on the drive's input (P:739/740); without one the drive names
    ``noSENS`` and reads ``000000`` [U]. Operating hours (P:311/314) and the drive voltage (P:313)
    come from the backend when it models them (`operating_hours`, `drive_voltage_v`), else from
    `clock` and power / current; P:360-369 keep the last ten errors and warnings the drive showed
    (the newest first, ``000000`` where none).
    """

    limits: ClassVar[Mapping[int, tuple[float, float]]] = {742: (0.1, 8.0), 752: (0.1, 8.0)}

    def __init__(
        self,
        backend: TurboBackend,
        *,
        address: int = 1,
        name: str = "TC 110",
        firmware: str = "010300",
        hardware: str = "010100",
        gauge_pa: Callable[[], float] | None = None,
        gauge_name: str = "PKR361",
        operating_hours: float = 1520.0,
        pump_cycles: int = 37,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(address, [*TURBO_STATUS, *TURBO_SETTINGS_DEFAULTS])
        self.backend = backend
        self.name = name
        self.firmware = firmware
        self.hardware = hardware
        self.gauge_pa = gauge_pa
        self.gauge_name = gauge_name
        self.settings = dict(TURBO_SETTINGS_DEFAULTS)
        self.pressure_offset_hpa = 0.0
        self.pump_cycles = pump_cycles
        self.error_history: list[str] = []
        self._clock = clock
        self._started = clock()
        self._operating_hours = operating_hours
        self._last_error = NO_ERROR
        self._last_rpm: tuple[float, float] | None = None

    def handle(self, request: Telegram) -> str | None:
        self._note_error()
        return super().handle(request)

    def read_data(self, number: int) -> str:
        if number == 740:
            if self.gauge_pa is None:
                return UNDER_RANGE_DATA
            return pressure_data(self.gauge_pa() / PA_PER_HPA - self.pressure_offset_hpa, 5e-9, 1e3)
        if number == 750:
            return UNDER_RANGE_DATA
        return super().read_data(number)

    def read_value(self, number: int) -> Value:
        b = self.backend
        readers: dict[int, Callable[[], Value]] = {
            10: lambda: b.pumping_station_on,
            23: lambda: b.motor_on,
            300: lambda: False,
            302: lambda: b.actual_speed_hz >= float(self.settings[701]) / 100 * b.nominal_speed_hz,
            303: lambda: b.error_code,
            304: lambda: b.electronics_temp_c >= OVER_TEMPERATURE_C["electronics"],
            305: lambda: max(b.motor_temp_c, b.bearing_temp_c) >= OVER_TEMPERATURE_C["pump"],
            306: lambda: b.set_speed_reached,
            307: lambda: b.accelerating,
            308: lambda: b.set_speed_hz,
            309: lambda: b.actual_speed_hz,
            310: lambda: b.drive_current_a,
            311: self._hours,
            312: lambda: self.firmware,
            313: self._drive_voltage,
            314: self._hours,
            315: lambda: b.nominal_speed_hz,
            316: lambda: b.drive_power_w,
            319: lambda: self.pump_cycles,
            326: lambda: b.electronics_temp_c,
            330: lambda: b.bottom_temp_c,
            336: self._acceleration_rpm_s,
            342: lambda: b.bearing_temp_c,
            346: lambda: b.motor_temp_c,
            349: lambda: self.name,
            354: lambda: self.hardware,
            397: lambda: b.set_speed_hz * 60,
            398: lambda: b.actual_speed_hz * 60,
            399: lambda: b.nominal_speed_hz * 60,
            739: lambda: self.gauge_name if self.gauge_pa is not None else NO_SENSOR_NAME,
            749: lambda: NO_SENSOR_NAME,
            797: lambda: self.address,
        }
        if 360 <= number <= 369:
            history = self.error_history
            return history[number - 360] if number - 360 < len(history) else NO_ERROR
        return readers[number]() if number in readers else self.settings[number]

    def write_value(self, number: int, value: Value) -> Value:
        if number == 9:
            if value:
                self.backend.acknowledge_error()
        elif number == 10:
            if value:
                if not self.backend.pumping_station_on:
                    self.pump_cycles += 1
                self.backend.acknowledge_error()  # switching the station on acknowledges errors [V]
            self.backend.pumping_station_on = bool(value)
        elif number == 23:
            self.backend.motor_on = bool(value)
        elif number == 740:
            assert isinstance(value, float)
            self.pressure_offset_hpa = value
        elif number == 750:
            pass  # no second gauge: nothing to offset
        elif number in self.settings:
            self.settings[number] = value
        else:
            return super().write_value(number, value)
        return value

    def _hours(self) -> float:
        """The backend's own hours when it counts them (the plant's turbo), else hours on `clock`."""
        counted = getattr(self.backend, "operating_hours", None)
        if counted is not None:
            return self._operating_hours + float(counted)
        return self._operating_hours + (self._clock() - self._started) / _HOUR_S

    def _drive_voltage(self) -> float:
        """The backend's supply voltage if it models one, else power / current (24 V with no load)."""
        supply = getattr(self.backend, "drive_voltage_v", None)
        if supply is not None:
            return float(supply)
        b = self.backend
        return b.drive_power_w / b.drive_current_a if b.drive_current_a > 0.01 else 24.0

    def _acceleration_rpm_s(self) -> float:
        now, rpm = self._clock(), self.backend.actual_speed_hz * 60
        last, self._last_rpm = self._last_rpm, (now, rpm)
        if last is None or now <= last[0]:
            return 0.0
        return abs(rpm - last[1]) / (now - last[0])

    def _note_error(self) -> None:
        code = self.backend.error_code
        if code != self._last_error and code.strip() not in ("", NO_ERROR):
            self.error_history = [code, *self.error_history][:10]
        self._last_error = code


class GaugeDevice(ParameterDevice):
    """A pressure channel answering P:740 in hPa, and the channel parameters of BG 5510 BEN §2.4.

    Below `min_pa` it answers ``000000``, above `max_pa` ``999999`` (the TPG 36x convention). Writing
    P:740 sets an offset that is subtracted; P:742 is the correction factor the value is multiplied
    by [U]. Defaults are a PKR wide-range head [U].
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
        super().__init__(address, [40, 41, 303, 349, 730, 732, 740, 742, 797])
        self.pressure_pa = pressure_pa
        self.name = name
        self.min_pa = min_pa
        self.max_pa = max_pa
        self.stuck_pa: float | None = None
        self.error_code = NO_ERROR
        self.offset_hpa = 0.0
        self.settings: dict[int, Value] = {40: False, 41: 1, 730: 1e-2, 732: 2e-2, 742: 1.0}

    def read_data(self, number: int) -> str:
        if number != 740:
            return super().read_data(number)
        p = self.stuck_pa if self.stuck_pa is not None else self.pressure_pa()
        if not math.isfinite(p) or p > self.max_pa:
            return OVER_RANGE_DATA
        if p < self.min_pa:
            return UNDER_RANGE_DATA
        shown = p / PA_PER_HPA * float(self.settings[742]) - self.offset_hpa
        return encode_value(DataType.U_EXPO_NEW, max(shown, 0.0))

    def read_value(self, number: int) -> Value:
        values: dict[int, Value] = {303: self.error_code, 349: self.name, 797: self.address}
        return values[number] if number in values else self.settings[number]

    def write_value(self, number: int, value: Value) -> Value:
        if number == 740:
            assert isinstance(value, float)
            self.offset_hpa = value
            return value
        if number in self.settings:
            self.settings[number] = value
            return value
        return super().write_value(number, value)


class ControllerDevice(ParameterDevice):
    """A TPG 36x at ``aa0``: its name, versions, hours, key lock and relays (BG 5510 BEN §2.4)."""

    def __init__(self, *, address: int, name: str, firmware: str = "010100", hours: int = 1520) -> None:
        super().__init__(address, [8, 45, 46, 47, 48, 303, 312, 314, 349, 354, 797])
        self.name = name
        self.firmware = firmware
        self.hours = hours
        self.settings: dict[int, Value] = {8: False, 45: 19, 46: 20, 47: 9, 48: 9}

    def read_value(self, number: int) -> Value:
        values: dict[int, Value] = {
            303: NO_ERROR,
            312: self.firmware,
            314: self.hours,
            349: self.name,
            354: self.firmware,
            797: self.address,
        }
        return values[number] if number in values else self.settings[number]

    def _within_limits(self, number: int, value: Value) -> bool:
        if number == 797:  # {010, 020, ... 240}
            return isinstance(value, int) and value % 10 == 0 and 10 <= value <= 240
        return super()._within_limits(number, value)

    def write_value(self, number: int, value: Value) -> Value:
        if number == 797:
            return super().write_value(number, value)
        self.settings[number] = value
        return value


def tpg36x_bus_devices(
    pressures: Sequence[Callable[[], float]],
    *,
    controller: int = 1,
    model: str = "TPG362",
    gauge_names: Sequence[str] = ("PKR361", "PKR361"),
) -> list[ParameterDevice]:
    """A TPG 36x in Pfeiffer-protocol mode: ``aa0`` for the unit, ``aa1``... for its channels."""
    base = 10 * controller
    devices: list[ParameterDevice] = [ControllerDevice(address=base, name=model)]
    for i, pressure in enumerate(pressures, start=1):
        devices.append(GaugeDevice(pressure, address=base + i, name=gauge_names[i - 1]))
    return devices
