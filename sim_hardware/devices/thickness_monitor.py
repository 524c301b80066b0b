"""An INFICON SQM-160 rate/thickness monitor: its memory, its arithmetic, and its serial command set.

Follows the SQM-160 Multi-Film Rate/Thickness Monitor operating manual (INFICON PN 074-511-P1D),
chapter 8 (computer interface; its §8.4 command list, pp. 70-83 as the clients cite them), as far as it
could be checked: the manual itself could not be read here, so framing, CRC, status codes and the
example frames come from clients written against it (pymeasure's ``sqm160`` and its tests, PyExpLabSys
``inficon_sqm160``, a USB client that follows §8.4 command by command, and one that quotes the
manual's example frames); every field layout they do not fix is [U] and named in the drivers' codec
(drivers/thickness_monitor.py, drivers/thickness_monitor_settings.py).

Implemented, every command letter those clients use: ``@`` model and version, ``A`` film parameters
(get/set), ``B`` system 1 parameters (get/set), ``C`` system 2 parameters (get/set), ``D`` active film
(get/select), ``J`` number of channels, ``L`` sensor rate, ``M`` average rate, ``N`` sensor thickness,
``O`` average thickness, ``P`` sensor frequency, ``R`` crystal life, ``S`` zero rate and thickness,
``T`` zero the timer, ``U`` shutter relay (``U1`` open, ``U0`` close, ``U?``), ``W`` every sensor's
rate, thickness and frequency, ``Y`` power-up reset flag, ``Z`` default film and system parameters.
Any other letter answers status ``C`` (invalid command), as the manual says the instrument does; a
known letter with unusable data answers ``D``. Not implemented: whatever else the manual's list may
hold could not be checked without the manual, so it answers ``C``; the shutter relay switches no
simulated shutter (the line's shutters are remote I/O outputs). A frame whose CRC fails gets no
reply (the host times out) [U].

The monitor never knows what is deposited. It reads each crystal's frequency (and its rate of change)
from a `CrystalBackend` and converts with the active film's density, Z-ratio and tooling and the
sensor's crystal tooling, by the Z-match equation (Lu & Lewis 1972; INFICON's Z-match technique) [U:
the SQM-160 manual's own statement of it was not read]:

    areal mass  m(f) = Zq / (2π·z·f) · arctan(z·tan(π·(F0 − f)/F0))        Zq = 8.834e5 g cm⁻² s⁻¹
    thickness   T = (m(f) − m(f_zero)) / ρ · film tooling · crystal tooling

F0 is system 1's "frequency max" (the new crystal), f_zero the frequency at the last ``S``; the rate is
dm/df · df/dt over ρ, with the same toolings. A crystal life is the share of system 1's frequency span
left. So a wrong density shows as a wrong thickness, as on a real monitor.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from drivers.codec import NEED_DATA
from drivers.errors import ConfigError, ProtocolError
from drivers.thickness_monitor import (
    NM_PER_UNIT,
    CommandDecoder,
    SensorValues,
    Status,
    ThicknessUnit,
    check_thickness_unit,
    encode_reply,
    format_all_sensors,
    format_frequency,
    format_life,
    format_rate,
    format_thickness,
)
from drivers.thickness_monitor_settings import (
    FilmParameters,
    SensorParameters,
    SystemParameters,
    format_film_parameters,
    format_sensor_parameters,
    format_system_parameters,
    parse_active_film_command,
    parse_film_command,
    parse_sensor_parameters,
    parse_system_parameters,
)

log = logging.getLogger(__name__)

DEFAULT_FIRMWARE = "MON Ver 4.13"
QUARTZ_IMPEDANCE_CGS = 8.834e5  # g cm⁻² s⁻¹
NM_PER_CM = 1e7


class CrystalBackend(Protocol):
    """The crystals as the monitor's oscillator sees them; channels are numbered from 1. A crystal that
    does not oscillate reads 0 Hz."""

    @property
    def channel_count(self) -> int: ...

    def frequency_hz(self, channel: int) -> float: ...

    def frequency_slope_hz_s(self, channel: int) -> float: ...


def default_film(number: int) -> FilmParameters:
    """A film memory after ``Z`` [U]: unit density, no correction, labelled by its number."""
    return FilmParameters(1.0, 100.0, 1.0, f"FILM{number}")


@dataclass(frozen=True, slots=True)
class _ChannelValues:
    rate_nm_s: float
    thickness_nm: float
    frequency_hz: float
    life_pct: float


class Sqm160:
    """The instrument, shared by every connection: film memories, the active film, the system
    parameters, each sensor's zero point, the timer, the shutter relay and the power-up flag.

    `thickness_unit` is the display unit thickness travels in; `clock` is the instrument's time (the
    plant's, in the simulated line)."""

    def __init__(
        self,
        crystals: CrystalBackend,
        *,
        sensors: SensorParameters | None = None,
        thickness_unit: str = "kA",
        firmware: str = DEFAULT_FIRMWARE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crystals = crystals
        self.thickness_unit: ThicknessUnit = check_thickness_unit(thickness_unit)
        self.firmware = firmware
        self.clock = clock
        self.commissioned_sensors = sensors or SensorParameters()
        self.films: dict[int, FilmParameters] = {}
        self.active = 1
        self.system = SystemParameters()
        self.sensors = self.commissioned_sensors
        self.shutter_open = False
        self.reset_flag = True
        self.timer_zero_s = clock()
        self._zero_hz = {ch: crystals.frequency_hz(ch) for ch in self.channels}
        self._last_good_hz = dict(self._zero_hz)

    @property
    def channels(self) -> range:
        return range(1, self.crystals.channel_count + 1)

    def film(self, number: int) -> FilmParameters:
        return self.films.get(number, default_film(number))

    @property
    def active_film(self) -> FilmParameters:
        return self.film(self.active)

    def zero(self) -> None:
        """``S``: every sensor's thickness starts again from its present frequency."""
        for ch in self.channels:
            self._zero_hz[ch] = self._oscillating_hz(ch)

    def defaults(self) -> None:
        """``Z``: film and system parameters back to the factory's; the crystal tooling found at
        commissioning is lost with them, as on the instrument."""
        self.films.clear()
        self.active = 1
        self.system = SystemParameters()
        self.sensors = SensorParameters()

    def values(self, channel: int) -> _ChannelValues:
        frequency = self.crystals.frequency_hz(channel)
        f = self._oscillating_hz(channel)
        scale = self._tooling(channel) / self.active_film.density_g_cm3 * NM_PER_CM
        thickness = (self._areal_mass(f) - self._areal_mass(self._zero_hz[channel])) * scale
        slope = self.crystals.frequency_slope_hz_s(channel) if frequency > 0.0 else 0.0
        rate = self._mass_slope(f) * slope * scale + 0.0  # no "-0.00" for a still crystal
        span = self.system.frequency_max_hz - self.system.frequency_min_hz
        life = 100.0 * (frequency - self.system.frequency_min_hz) / span if frequency > 0.0 else 0.0
        return _ChannelValues(rate, thickness, frequency, min(100.0, max(0.0, life)))

    def _oscillating_hz(self, channel: int) -> float:
        """The frequency the sums use: the last one read from an oscillating crystal."""
        frequency = self.crystals.frequency_hz(channel)
        if frequency > 0.0:
            self._last_good_hz[channel] = frequency
        return self._last_good_hz[channel]

    def _tooling(self, channel: int) -> float:
        return self.active_film.tooling_pct / 100.0 * self.sensors.crystal_tooling_pct[channel - 1] / 100.0

    def _areal_mass(self, f: float) -> float:
        """g/cm² on the crystal by the Z-match equation, with the active film's Z-ratio."""
        z, f0 = self.active_film.z_ratio, self.system.frequency_max_hz
        return (
            QUARTZ_IMPEDANCE_CGS / (2.0 * math.pi * z * f) * math.atan(z * math.tan(math.pi * (f0 - f) / f0))
        )

    def _mass_slope(self, f: float) -> float:
        """dm/df of `_areal_mass` (g cm⁻² Hz⁻¹): negative, as mass lowers the frequency."""
        z, f0 = self.active_film.z_ratio, self.system.frequency_max_hz
        u = math.pi * (f0 - f) / f0
        angle = math.atan(z * math.tan(u))
        d_angle = z / math.cos(u) ** 2 / (1.0 + (z * math.tan(u)) ** 2) * (-math.pi / f0)
        return QUARTZ_IMPEDANCE_CGS / (2.0 * math.pi * z) * (d_angle / f - angle / f**2)


class ThicknessMonitorSession:
    """One connection to a `Sqm160`: ``lambda: ThicknessMonitorSession(instrument)``.

    Fault hooks: `refuse_next` answers that many commands with `refuse_status` (``C`` or ``D``);
    `hold_readings()` freezes every channel at its present values (a hung measurement board).
    """

    def __init__(self, instrument: Sqm160) -> None:
        self.instrument = instrument
        self.refuse_next = 0
        self.refuse_status = Status.INVALID_COMMAND
        self._held: dict[int, _ChannelValues] | None = None
        self._decoder = CommandDecoder()

    def hold_readings(self) -> None:
        self._held = {ch: self.instrument.values(ch) for ch in self.instrument.channels}

    def release_readings(self) -> None:
        self._held = None

    def receive(self, data: bytes) -> bytes:
        self._decoder.feed(data)
        replies = bytearray()
        while True:
            try:
                command = self._decoder.next_frame()
            except ProtocolError as exc:
                log.info("sqm ignored a frame", extra={"error": str(exc)})
                continue
            if command is NEED_DATA:
                return bytes(replies)
            replies += self.answer(command)

    def answer(self, command: bytes) -> bytes:
        """The reply frame to one command's CMD bytes."""
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return encode_reply(self.refuse_status)
        letter, argument = chr(command[0]), command[1:]
        handler = _HANDLERS.get(letter)
        if handler is None:
            return encode_reply(Status.INVALID_COMMAND)
        try:
            data = handler(self, argument)
        except (ProtocolError, ConfigError, ValueError) as exc:
            log.info("sqm refused the data of a command", extra={"command": letter, "error": str(exc)})
            return encode_reply(Status.BAD_DATA)
        return encode_reply(Status.OK, data)

    # -- readings ---------------------------------------------------------------------------------

    def _values(self, channel: int) -> _ChannelValues:
        if self._held is not None and channel in self._held:
            return self._held[channel]
        return self.instrument.values(channel)

    def _channel(self, argument: bytes) -> int:
        if len(argument) != 1 or not argument.isdigit() or int(argument) not in self.instrument.channels:
            raise ProtocolError(f"no sensor {argument!r}")
        return int(argument)

    def _thickness(self, thickness_nm: float) -> bytes:
        unit = self.instrument.thickness_unit
        return format_thickness(thickness_nm / NM_PER_UNIT[unit], unit)

    def _averaged(self) -> list[_ChannelValues]:
        """The sensors the active film averages (its sensor-average bits; none set: every sensor)."""
        bits = self.instrument.active_film.sensor_average
        chosen = [ch for ch in self.instrument.channels if bits & (1 << (ch - 1))]
        return [self._values(ch) for ch in chosen or self.instrument.channels]

    def _rate(self, argument: bytes) -> bytes:
        return format_rate(10.0 * self._values(self._channel(argument.removesuffix(b"?"))).rate_nm_s)

    def _sensor_thickness(self, argument: bytes) -> bytes:
        return self._thickness(self._values(self._channel(argument)).thickness_nm)

    def _frequency(self, argument: bytes) -> bytes:
        return format_frequency(self._values(self._channel(argument)).frequency_hz)

    def _life(self, argument: bytes) -> bytes:
        return format_life(self._values(self._channel(argument)).life_pct)

    def _average_rate(self, argument: bytes) -> bytes:
        rates = [v.rate_nm_s for v in self._averaged()]
        return format_rate(10.0 * sum(rates) / len(rates))

    def _average_thickness(self, argument: bytes) -> bytes:
        thicknesses = [v.thickness_nm for v in self._averaged()]
        return self._thickness(sum(thicknesses) / len(thicknesses))

    def _all_sensors(self, argument: bytes) -> bytes:
        unit = self.instrument.thickness_unit
        sensors = [
            SensorValues(10.0 * v.rate_nm_s, v.thickness_nm / NM_PER_UNIT[unit], v.frequency_hz)
            for v in map(self._values, self.instrument.channels)
        ]
        elapsed = self.instrument.clock() - self.instrument.timer_zero_s
        return format_all_sensors(elapsed, sensors, unit)

    # -- identity, actions ------------------------------------------------------------------------

    def _model(self, argument: bytes) -> bytes:
        return self.instrument.firmware.encode("ascii")

    def _channel_count(self, argument: bytes) -> bytes:
        return str(self.instrument.crystals.channel_count).encode("ascii")

    def _zero(self, argument: bytes) -> bytes:
        self.instrument.zero()
        return b""

    def _zero_timer(self, argument: bytes) -> bytes:
        self.instrument.timer_zero_s = self.instrument.clock()
        return b""

    def _defaults(self, argument: bytes) -> bytes:
        self.instrument.defaults()
        return b""

    def _reset_flag(self, argument: bytes) -> bytes:
        flag, self.instrument.reset_flag = self.instrument.reset_flag, False
        return b"1" if flag else b"0"

    def _shutter(self, argument: bytes) -> bytes:
        if argument == b"?":
            return b"1" if self.instrument.shutter_open else b"0"
        if argument not in (b"0", b"1"):
            raise ProtocolError(f"shutter state {argument!r} is not 0 or 1")
        self.instrument.shutter_open = argument == b"1"
        return b""

    # -- settings ---------------------------------------------------------------------------------

    def _film(self, argument: bytes) -> bytes:
        film, params = parse_film_command(argument)
        if params is None:
            return format_film_parameters(self.instrument.film(film))
        self.instrument.films[film] = params
        return b""

    def _active_film(self, argument: bytes) -> bytes:
        film = parse_active_film_command(argument)
        if film is None:
            return str(self.instrument.active).encode("ascii")
        self.instrument.active = film
        return b""

    def _system(self, argument: bytes) -> bytes:
        if argument == b"?":
            return format_system_parameters(self.instrument.system)
        system = parse_system_parameters(_block(argument))
        if not system.frequency_min_hz < system.frequency_max_hz:
            raise ConfigError("frequency min must be below frequency max")
        self.instrument.system = system
        return b""

    def _sensor_settings(self, argument: bytes) -> bytes:
        if argument == b"?":
            return format_sensor_parameters(self.instrument.sensors)
        self.instrument.sensors = parse_sensor_parameters(_block(argument))
        return b""


Handler = Callable[[ThicknessMonitorSession, bytes], bytes]


def _no_argument(handler: Handler) -> Handler:
    def checked(session: ThicknessMonitorSession, argument: bytes) -> bytes:
        if argument:
            raise ProtocolError(f"no data expected, got {argument!r}")
        return handler(session, argument)

    return checked


def _block(argument: bytes) -> bytes:
    """The fields of a ``B``/``C`` write: a space after the letter, then the values."""
    if not argument.startswith(b" "):
        raise ProtocolError(f"parameters {argument!r} must follow a space")
    return argument[1:]


# the manual's command letters; any other is an invalid command (status C)
_HANDLERS: dict[str, Handler] = {
    "@": _no_argument(ThicknessMonitorSession._model),
    "A": ThicknessMonitorSession._film,
    "B": ThicknessMonitorSession._system,
    "C": ThicknessMonitorSession._sensor_settings,
    "D": ThicknessMonitorSession._active_film,
    "J": _no_argument(ThicknessMonitorSession._channel_count),
    "L": ThicknessMonitorSession._rate,
    "M": _no_argument(ThicknessMonitorSession._average_rate),
    "N": ThicknessMonitorSession._sensor_thickness,
    "O": _no_argument(ThicknessMonitorSession._average_thickness),
    "P": ThicknessMonitorSession._frequency,
    "R": ThicknessMonitorSession._life,
    "S": _no_argument(ThicknessMonitorSession._zero),
    "T": _no_argument(ThicknessMonitorSession._zero_timer),
    "U": ThicknessMonitorSession._shutter,
    "W": _no_argument(ThicknessMonitorSession._all_sensors),
    "Y": _no_argument(ThicknessMonitorSession._reset_flag),
    "Z": _no_argument(ThicknessMonitorSession._defaults),
}


def with_crystal_tooling(sensors: SensorParameters, tooling_pct: list[float]) -> SensorParameters:
    """System 2 with the crystal tooling found at commissioning for the first sensors."""
    padded = (*tooling_pct, *sensors.crystal_tooling_pct[len(tooling_pct) :])
    return replace(sensors, crystal_tooling_pct=tuple(padded))
