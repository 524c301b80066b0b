"""Pfeiffer TPG 361/362/366 (and TPG 261/262) gauge controllers: the "mnemonics" ASCII protocol.

Every read is two exchanges on the wire (devices.md §1)::

    host -> device   M N E [ , param ]* CR [LF]      e.g. "PR1\\r\\n", "UNI,2\\r\\n"
    device -> host   ACK CR LF   (06 0D 0A)           the line parsed
                     NAK CR LF   (15 0D 0A)           it did not; ERR now holds the reason
    host -> device   ENQ         (05)                 "send me the data"
    device -> host   data CR LF                       e.g. "0,1.0000E-03"; after a NAK, the ERR word

Numbers are ``sx.xxxxEsxx``. Whether a positive mantissa carries a ``+`` is not confirmed [U], so the
parser takes both. Measurement lines are ``status,value`` pairs; the status (0-6) becomes a `Quality`.
``ETX`` (03) makes the device drop its partial input line.

A TPG 36x streams measurement lines every second after power-up until it receives its first character
[V]. The driver sends ``ETX`` once per new connection to stop the stream, the link discards stale input
before each request, and the ACK decoder skips any complete text line that arrives before the ACK or
NAK (the only unsolicited output a TPG produces), so a stream line can never pass as a reply.

Choices where the sources are silent [U]: mnemonics are matched case-insensitively by the device role;
pressures read while the gauge displays Volt (``UNI,5``) come back as `Quality.ERROR`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import re
import time
from dataclasses import dataclass

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ConfigError, DeviceRefused, ProtocolError
from drivers.link import Link, LinkSession
from drivers.reading import Quality, Reading

log = logging.getLogger(__name__)

ACK = b"\x06"
NAK = b"\x15"
ENQ = b"\x05"
ETX = b"\x03"
EOL = b"\r\n"

_MNEMONIC = re.compile(r"[A-Z][A-Z0-9]{2}")
_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?[Ee][+-]?\d{1,3}")
_REPLY_BYTES = frozenset(range(0x20, 0x7F)) | {0x06, 0x15, 0x0D, 0x0A}
_MAX_LINE = 256


# --- values -------------------------------------------------------------------------------------


class Handshake(enum.Enum):
    ACK = "ACK"
    NAK = "NAK"


class MeasurementStatus(enum.IntEnum):
    OK = 0
    UNDER_RANGE = 1
    OVER_RANGE = 2
    SENSOR_ERROR = 3
    SENSOR_OFF = 4
    NO_SENSOR = 5
    IDENTIFICATION_ERROR = 6


STATUS_QUALITY: dict[MeasurementStatus, Quality] = {
    MeasurementStatus.OK: Quality.OK,
    MeasurementStatus.UNDER_RANGE: Quality.UNDER_RANGE,
    MeasurementStatus.OVER_RANGE: Quality.OVER_RANGE,
    MeasurementStatus.SENSOR_ERROR: Quality.ERROR,
    MeasurementStatus.SENSOR_OFF: Quality.SENSOR_OFF,
    MeasurementStatus.NO_SENSOR: Quality.SENSOR_OFF,
    MeasurementStatus.IDENTIFICATION_ERROR: Quality.ERROR,
}


class PressureUnit(enum.IntEnum):
    """``UNI`` codes of the TPG 36x (the TPG 26x knows 0-2 only)."""

    MBAR = 0
    TORR = 1
    PA = 2
    MICRON = 3
    HPA = 4
    VOLT = 5


_PA_PER_TORR = 101325.0 / 760.0
PA_PER_UNIT: dict[PressureUnit, float] = {
    PressureUnit.MBAR: 100.0,
    PressureUnit.TORR: _PA_PER_TORR,
    PressureUnit.PA: 1.0,
    PressureUnit.MICRON: _PA_PER_TORR / 1000.0,
    PressureUnit.HPA: 100.0,
}


class SensorState(enum.IntEnum):
    """``SEN`` reply per channel."""

    CANNOT_SWITCH = 0
    OFF = 1
    ON = 2


ERR_CONTROLLER = 0b1000
ERR_NO_HARDWARE = 0b0100
ERR_PARAMETER = 0b0010
ERR_SYNTAX = 0b0001
ERROR_WORD_MEANINGS: dict[str, str] = {
    "0000": "no error",
    "1000": "controller error (see display)",
    "0100": "no hardware",
    "0010": "inadmissible parameter",
    "0001": "syntax error",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    status: MeasurementStatus
    value: float  # in the gauge's display unit

    @property
    def quality(self) -> Quality:
        return STATUS_QUALITY[self.status]


# --- numbers ------------------------------------------------------------------------------------


def format_number(value: float, *, plus_sign: bool = False, logarithmic: bool = False) -> str:
    """``sx.xxxxEsxx``; log gauges only resolve two decimals, so the third and fourth are 0 [V]."""
    text = f"{value:.2E}".replace("E", "00E", 1) if logarithmic else f"{value:.4E}"
    if plus_sign and not text.startswith("-"):
        text = "+" + text
    return text


def parse_number(text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ProtocolError(f"TPG: {text!r} is not a number of the form sx.xxxxEsxx")
    return float(text)


def format_error_word(bits: int) -> str:
    return format(bits & 0b1111, "04b")


def parse_error_word(line: str) -> str:
    word = line.strip()
    if len(word) != 4 or set(word) - {"0", "1"}:
        raise ProtocolError(f"TPG: {line!r} is not an ERR word")
    return word


def describe_error_word(word: str) -> str:
    bits = int(word, 2)
    parts = [text for flag, text in ERROR_WORD_MEANINGS.items() if int(flag, 2) & bits]
    return " + ".join(parts) or ERROR_WORD_MEANINGS["0000"]


# --- host role ----------------------------------------------------------------------------------


def encode_command(mnemonic: str, *params: str | int | float) -> bytes:
    """One mnemonic line; floats go out in the gauge's own number format."""
    if not _MNEMONIC.fullmatch(mnemonic):
        raise ConfigError(f"TPG: {mnemonic!r} is not a 3-character mnemonic")
    fields = [mnemonic]
    for p in params:
        text = format_number(p) if isinstance(p, float) else str(p)
        if not text.isascii() or any(c in text for c in ",\r\n") or not text.isprintable():
            raise ConfigError(f"TPG: parameter {text!r} cannot be sent")
        fields.append(text)
    return ",".join(fields).encode("ascii") + EOL


def parse_measurements(line: str) -> list[Measurement]:
    """``status,value[,status,value...]`` (PRx, PRX and the COM stream)."""
    fields = line.split(",")
    if len(fields) % 2 or not fields[0]:
        raise ProtocolError(f"TPG: {line!r} is not a list of status,value pairs")
    out = []
    for status_text, value_text in zip(fields[::2], fields[1::2], strict=True):
        try:
            status = MeasurementStatus(int(status_text))
        except ValueError:
            raise ProtocolError(f"TPG: measurement status {status_text!r} is not 0-6") from None
        out.append(Measurement(status, parse_number(value_text)))
    return out


def parse_int_list(line: str) -> list[int]:
    try:
        return [int(f) for f in line.split(",")]
    except ValueError:
        raise ProtocolError(f"TPG: {line!r} is not a list of integers") from None


class _Lines:
    """Splits reply bytes into LF-terminated lines, rejecting bytes a TPG never sends."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_line(self) -> bytes | None:
        bad = next((b for b in self._buf if b not in _REPLY_BYTES), None)
        if bad is not None:
            snippet = bytes(self._buf[:32])
            self._buf.clear()
            raise ProtocolError(f"TPG: byte 0x{bad:02x} cannot occur in a reply ({snippet!r})")
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > _MAX_LINE:
                self._buf.clear()
                raise ProtocolError(f"TPG: no line end within {_MAX_LINE} bytes")
            return None
        line = bytes(self._buf[:end]).rstrip(b"\r")
        del self._buf[: end + 1]
        return line


class HandshakeDecoder:
    """Yields the ACK or NAK; complete text lines before it (power-up stream, a late reply) are skipped."""

    def __init__(self) -> None:
        self._lines = _Lines()
        self.skipped: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> Handshake | NeedData:
        while (line := self._lines.next_line()) is not None:
            if line == ACK:
                return Handshake.ACK
            if line == NAK:
                return Handshake.NAK
            if ACK in line or NAK in line:
                raise ProtocolError(f"TPG: malformed handshake {line!r}")
            self.skipped.append(line)
        return NEED_DATA


class LineDecoder:
    """Yields the data line that answers ENQ."""

    def __init__(self) -> None:
        self._lines = _Lines()

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> str | NeedData:
        while (line := self._lines.next_line()) is not None:
            if ACK in line or NAK in line:
                raise ProtocolError(f"TPG: handshake {line!r} where data was due")
            if line:
                return line.decode("ascii")
        return NEED_DATA


# --- device role --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A mnemonic line as the device parsed it; `mnemonic` is empty for an unparseable line."""

    mnemonic: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Enquiry:
    """The host's ENQ."""


class RequestDecoder:
    """Device side: host bytes -> `Command` / `Enquiry`. Never raises: a device answers junk with NAK."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._events: list[Command | Enquiry] = []

    def feed(self, data: bytes) -> None:
        for byte in data:
            if byte == ETX[0]:
                self._buf.clear()
            elif byte == ENQ[0]:
                self._events.append(Enquiry())
            elif byte == 0x0D:
                self._events.append(self._parse(bytes(self._buf)))
                self._buf.clear()
            elif byte in (0x0A, 0x20):
                continue  # optional LF after CR; spaces are ignored [V]
            elif len(self._buf) < _MAX_LINE:
                self._buf.append(byte)

    def next_frame(self) -> Command | Enquiry | NeedData:
        return self._events.pop(0) if self._events else NEED_DATA

    @staticmethod
    def _parse(line: bytes) -> Command:
        try:
            text = line.decode("ascii").upper()
        except UnicodeDecodeError:
            return Command("", ())
        fields = text.split(",")
        if not _MNEMONIC.fullmatch(fields[0]):
            return Command("", ())
        return Command(fields[0], tuple(fields[1:]))


def encode_handshake(handshake: Handshake) -> bytes:
    return (ACK if handshake is Handshake.ACK else NAK) + EOL


def encode_line(text: str) -> bytes:
    return text.encode("ascii") + EOL


# --- driver -------------------------------------------------------------------------------------


class Tpg36x:
    """A TPG 36x/26x on its own serial line (or its TCP port 8000)."""

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        channels: int = 2,
        timeout_s: float = 1.0,
        unit_refresh_s: float = 60.0,
    ) -> None:
        if not 1 <= channels <= 6:
            raise ConfigError(f"{name}: channels={channels} outside 1..6")
        self._link = link
        self.name = name
        self.channels = channels
        self._timeout_s = timeout_s
        self._unit_refresh_s = unit_refresh_s
        self._unit: PressureUnit | None = None
        self._unit_mono = -math.inf
        self._seen_connects = -1

    # generic exchange

    async def query(self, mnemonic: str, *params: str | int | float) -> str:
        """Mnemonic, then ENQ, under one hold of the link; a NAK raises `DeviceRefused` with the ERR word."""
        request = encode_command(mnemonic, *params)
        async with self._link.exclusive() as session:
            await self._stop_power_up_stream(session)
            # a stream line may precede the ACK: allow its wire time too
            ack_timeout = self._timeout_s + (len(request) + 16 * 6 + 3) * self._link.char_time_s
            handshake = await session.exchange(request, HandshakeDecoder(), ack_timeout)
            data_timeout = self._timeout_s + (1 + 16 * 6) * self._link.char_time_s
            line = await session.exchange(ENQ, LineDecoder(), data_timeout)
        if handshake is Handshake.NAK:
            word = parse_error_word(line)
            raise DeviceRefused(self.name, word, f"{mnemonic}: {describe_error_word(word)}")
        return line

    async def _stop_power_up_stream(self, session: LinkSession) -> None:
        """On a fresh connection the gauge may be streaming; one ETX stops it and clears its input."""
        connects = self._link.stats.connects
        if connects == self._seen_connects:
            return
        session.send(ETX)
        await asyncio.sleep(max(0.02, 16 * self.channels * self._link.char_time_s))
        self._seen_connects = connects
        self._unit_mono = -math.inf  # a reconnect may mean another gauge or a changed unit
        log.debug("tpg stream flushed", extra={"device": self.name, "connects": connects})

    # pressures

    async def read_pressure(self, channel: int) -> Reading:
        self._check_channel(channel)
        factor = await self._pa_per_unit()
        line = await self.query(f"PR{channel}")
        measurements = parse_measurements(line)
        if len(measurements) != 1:  # e.g. a stream line after a power cycle between ACK and ENQ
            raise ProtocolError(f"{self.name}: PR{channel} reply {line!r} is not one status,value pair")
        return self._to_reading(measurements[0], factor)

    async def read_all(self) -> list[Reading]:
        factor = await self._pa_per_unit()
        line = await self.query("PRX")
        measurements = parse_measurements(line)
        if len(measurements) < self.channels:
            raise ProtocolError(f"{self.name}: {line!r} has fewer than {self.channels} channel(s)")
        return [self._to_reading(m, factor) for m in measurements[: self.channels]]

    async def poll(self) -> dict[str, Reading]:
        readings = await self.read_all()
        return {f"pressure_ch{i}": r for i, r in enumerate(readings, start=1)}

    # settings and diagnostics

    async def read_unit(self) -> PressureUnit:
        line = await self.query("UNI")
        try:
            unit = PressureUnit(int(line))
        except ValueError:
            raise ProtocolError(f"{self.name}: unit {line!r} is not a UNI code") from None
        self._unit, self._unit_mono = unit, time.monotonic()
        return unit

    async def set_unit(self, unit: PressureUnit) -> PressureUnit:
        line = await self.query("UNI", int(unit))
        self._unit, self._unit_mono = PressureUnit(int(line)), time.monotonic()
        return self._unit

    async def read_gauge_ids(self) -> list[str]:
        return (await self.query("TID")).split(",")

    async def read_sensor_states(self) -> list[SensorState]:
        return self._sensor_states(await self.query("SEN"))

    async def set_sensor(self, channel: int, on: bool) -> list[SensorState]:
        """Switch one gauge on or off (only PKR/IKR/IMR/PBR can be switched)."""
        self._check_channel(channel)
        params = [0] * self.channels
        params[channel - 1] = SensorState.ON if on else SensorState.OFF
        return self._sensor_states(await self.query("SEN", *params))

    async def read_error_word(self) -> str:
        """The ERR word; reading it clears it (it comes back at once while the cause persists)."""
        return parse_error_word(await self.query("ERR"))

    async def read_errors(self) -> list[int]:
        """``RES``: current controller/gauge error numbers, empty when there are none."""
        return [c for c in parse_int_list(await self.query("RES")) if c != 0]

    async def acknowledge_errors(self) -> list[int]:
        return [c for c in parse_int_list(await self.query("RES", 1)) if c != 0]

    # helpers

    async def _pa_per_unit(self) -> float:
        if self._unit is None or time.monotonic() - self._unit_mono > self._unit_refresh_s:
            await self.read_unit()
        assert self._unit is not None
        return PA_PER_UNIT.get(self._unit, math.nan)

    def _to_reading(self, measurement: Measurement, pa_per_unit: float) -> Reading:
        if math.isnan(pa_per_unit):
            log.warning("tpg displays volts, not pressure", extra={"device": self.name})
            return Reading.now(math.nan, "Pa", Quality.ERROR)
        return Reading.now(measurement.value * pa_per_unit, "Pa", measurement.quality)

    def _sensor_states(self, line: str) -> list[SensorState]:
        try:
            return [SensorState(v) for v in parse_int_list(line)]
        except ValueError:
            raise ProtocolError(f"{self.name}: {line!r} is not a SEN reply") from None

    def _check_channel(self, channel: int) -> None:
        if not 1 <= channel <= self.channels:
            raise ConfigError(f"{self.name}: channel {channel} outside 1..{self.channels}")
