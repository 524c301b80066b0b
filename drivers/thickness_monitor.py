"""Inficon SQM-160 quartz-crystal thickness monitor: binary-safe framing, 14-bit CRC, async driver.

Serial 19200 8N1 (devices.md §7). No terminator: the length byte frames every message, so nothing
here reads lines.

    command   '!'  LEN  CMD ...          CRC0 CRC1      LEN = len(CMD) + 34
    response  '!'  LEN  STATUS DATA ...  CRC0 CRC1      LEN = len(STATUS + DATA) + 35

    STATUS  'A' ok, 'C' invalid command, 'D' problem with the data in the command
    CRC     14 bits over LEN + payload (not the '!'): init 0x3FFF; per byte XOR it in, then 8 times
            shift right, XOR 0x2001 when the bit shifted out was 1; mask 0x3FFF.
            CRC0 = (crc & 0x7F) + 34, CRC1 = ((crc >> 7) & 0x7F) + 34   (so never '!', may be > 0x7F)

    example   !#@O7  ->  !0AMON Ver 4.13Uw            firmware
              !$P1Z\\x91  ->  !/A5875830.230:X        frequency of sensor 1, Hz

Commands: ``@`` firmware, ``J`` channel count, ``M`` average rate, ``O`` average thickness,
``L<ch>?`` rate (PyExpLabSys sends ``L<ch>``; `rate_query_mark` picks), ``N<ch>`` thickness,
``P<ch>`` frequency, ``R<ch>`` crystal life, ``W`` rate, thickness and frequency of every sensor at
once, ``S`` zero rate and thickness, ``T`` zero the timer, ``Y`` power-up reset flag, ``Z`` reset the
film and system parameters; films (``A``, ``D``) and system parameters (``B``, ``C``) are in
thickness_monitor_settings.py. The golden frames ``!#J(79)(56)``, ``!#@(79)(55)``, ``!#W(143)(53)``
and ``!%L1?(133)(123)`` are the manual's [V, quoted by a client written from it].

``W`` reply [U, layout from the two clients that parse it]: a first field the clients skip ("00.00";
taken here to be the timer ``T`` zeroes, minutes.seconds), then rate (Å/s, two decimals, padded to
two integer digits), thickness and frequency (Hz) for each installed sensor, separated by spaces.

The monitor never knows what it measures: it converts the crystal's frequency shift with the film
parameters it was given (density, Z-ratio, tooling). `ThicknessMonitor.set_film` programs them and
`poll` reads the active film's back with every cycle, so the record shows what each thickness was
computed with.

Units on the wire: rate in Å/s [V, both public drivers] -> nm/s (÷10); frequency in Hz [V];
crystal life in % [V]. Thickness is the uncertain one [U]: pymeasure reads it as Å, while the
front panel shows kÅ and the pinned reply " 0.000 " has the three decimals of a kÅ display. The
default here is kÅ (1 kÅ = 100 nm); pass ``thickness_unit="A"`` to read Å. The simulated monitor
(`Sqm160`) takes the same option, so both ends agree by construction.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Final, Literal

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.reading import Quality, Reading
from drivers.thickness_monitor_settings import (
    FilmParameters,
    active_film_command,
    check_film,
    check_label,
    film_query_command,
    film_write_command,
    parse_film_parameters,
)

SYNC: Final = 0x21  # '!'
COMMAND_LEN_OFFSET: Final = 34
REPLY_LEN_OFFSET: Final = 35
MAX_CHANNELS: Final = 6
NM_PER_UNIT: Final[dict[str, float]] = {"kA": 100.0, "A": 0.1}
MIN_OSCILLATING_HZ: Final = 1.0e6  # [U] below this no 5/6 MHz crystal is oscillating: sensor failed
PROGRAMMED_FILM: Final = 1  # the film memory the controller programs and selects for every layer

ThicknessUnit = Literal["kA", "A"]


class Status(enum.Enum):
    OK = "A"
    INVALID_COMMAND = "C"
    BAD_DATA = "D"


REFUSAL_DETAIL: Final = {
    Status.INVALID_COMMAND: "invalid command",
    Status.BAD_DATA: "problem with the data in the command",
}


def crc14(payload: bytes) -> bytes:
    """The SQM-160 CRC of LEN + message, as its two transmitted bytes."""
    crc = 0x3FFF
    for byte in payload:
        crc ^= byte
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0x2001
        crc &= 0x3FFF
    return bytes(((crc & 0x7F) + 34, ((crc >> 7) & 0x7F) + 34))


def _frame(body: bytes, offset: int) -> bytes:
    length = len(body) + offset
    if length > 0xFF:
        raise ValueError(f"message of {len(body)} bytes does not fit the length byte")
    head = bytes((length,)) + body
    return bytes((SYNC,)) + head + crc14(head)


# ---------------------------------------------------------------------------------------------------
# Frames and framing


@dataclass(frozen=True, slots=True)
class Reply:
    status: Status
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("ascii", errors="replace")


def encode_command(command: bytes) -> bytes:
    """Host role: ``!`` LEN CMD CRC."""
    if not command:
        raise ValueError("an SQM-160 command has at least one byte")
    return _frame(command, COMMAND_LEN_OFFSET)


def encode_reply(status: Status, data: bytes = b"") -> bytes:
    """Device role: ``!`` LEN STATUS DATA CRC."""
    return _frame(status.value.encode("ascii") + data, REPLY_LEN_OFFSET)


class _LengthFramer:
    """Cuts ``!`` LEN body CRC frames out of a byte stream and checks their CRC."""

    def __init__(self, offset: int) -> None:
        self._buf = bytearray()
        self._offset = offset

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_body(self) -> bytes | None:
        buf = self._buf
        if not buf:
            return None
        if buf[0] != SYNC:
            raise self._fail(ProtocolError(f"frame starts with {bytes(buf[:1])!r}, not '!'"))
        if len(buf) < 2:
            return None
        size = buf[1] - self._offset
        if size < 1:
            raise self._fail(ProtocolError(f"length byte {buf[1]:#04x} leaves no message"))
        end = 2 + size
        if len(buf) < end + 2:
            return None
        head, crc = bytes(buf[1:end]), bytes(buf[end : end + 2])
        del buf[: end + 2]
        expected = crc14(head)
        if crc != expected:
            raise self._fail(ChecksumError(f"CRC {crc!r} != {expected!r} over {head!r}"))
        return head[1:]

    def _fail(self, error: ProtocolError) -> ProtocolError:
        """Drop everything buffered: the next exchange starts on a clean frame boundary."""
        self._buf.clear()
        return error


class ReplyDecoder:
    """Host role: one `Reply` per response frame. A refusal (C, D) is a value, not an exception."""

    def __init__(self) -> None:
        self._framer = _LengthFramer(REPLY_LEN_OFFSET)

    def feed(self, data: bytes) -> None:
        self._framer.feed(data)

    def next_frame(self) -> Reply | NeedData:
        body = self._framer.next_body()
        if body is None:
            return NEED_DATA
        try:
            status = Status(chr(body[0]))
        except ValueError:
            raise ProtocolError(f"unknown status byte {body[:1]!r}") from None
        return Reply(status, body[1:])


class CommandDecoder:
    """Device role: yields the CMD bytes of each command frame whose CRC holds."""

    def __init__(self) -> None:
        self._framer = _LengthFramer(COMMAND_LEN_OFFSET)

    def feed(self, data: bytes) -> None:
        self._framer.feed(data)

    def next_frame(self) -> bytes | NeedData:
        body = self._framer.next_body()
        return NEED_DATA if body is None else body


# ---------------------------------------------------------------------------------------------------
# Data fields: formatted (device role) and parsed (host role) in one place


def format_rate(rate_a_s: float) -> bytes:
    """`` 0.01 `` as in the pinned reply: Å/s, two decimals, padded."""
    return f"{rate_a_s:5.2f} ".encode("ascii")


def format_thickness(thickness: float, unit: ThicknessUnit = "kA") -> bytes:
    """`` 0.000 `` in kÅ (1 Å resolution); one decimal in Å."""
    return (f"{thickness:6.3f} " if unit == "kA" else f"{thickness:6.1f} ").encode("ascii")


def format_frequency(frequency_hz: float) -> bytes:
    return f"{frequency_hz:.3f}".encode("ascii")


def format_life(life_pct: float) -> bytes:
    """Two decimals [U]: the public drivers only cast the reply to float."""
    return f"{life_pct:.2f}".encode("ascii")


def parse_number(data: bytes) -> float:
    try:
        value = float(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"reply data {data!r} is not a number") from None
    if not math.isfinite(value):
        raise ProtocolError(f"reply data {data!r} is not a finite number")
    return value


@dataclass(frozen=True, slots=True)
class SensorValues:
    """One sensor's group of a ``W`` reply, in the units on the wire."""

    rate_a_s: float
    thickness: float  # kÅ or Å, as `ThicknessUnit`
    frequency_hz: float


def format_timer(elapsed_s: float) -> bytes:
    """The first field of a ``W`` reply [U]: minutes.seconds since ``T``, "00.00" after a zero."""
    minutes, seconds = divmod(int(max(0.0, elapsed_s)), 60)
    return f"{min(minutes, 99):02d}.{seconds:02d}".encode("ascii")


def format_all_sensors(elapsed_s: float, sensors: list[SensorValues], unit: ThicknessUnit = "kA") -> bytes:
    """Device role: the data of a ``W`` reply."""
    words = [format_timer(elapsed_s)]
    for s in sensors:
        thickness = f"{s.thickness:.3f}" if unit == "kA" else f"{s.thickness:.1f}"
        words += [f"{s.rate_a_s:05.2f}".encode(), thickness.encode(), format_frequency(s.frequency_hz)]
    return b" ".join(words)


def parse_all_sensors(data: bytes) -> list[SensorValues]:
    """Host role: the per-sensor groups of a ``W`` reply (the leading timer field is skipped)."""
    words = data.split()
    if not words or (len(words) - 1) % 3:
        raise ProtocolError(f"W reply {data!r} is not a timer then rate, thickness, frequency per sensor")
    values = [parse_number(w) for w in words[1:]]
    return [SensorValues(*values[i : i + 3]) for i in range(0, len(values), 3)]


def check_channel(channel: int) -> int:
    if not 1 <= channel <= MAX_CHANNELS:
        raise ConfigError(f"SQM-160 sensor channel must be 1..{MAX_CHANNELS}, got {channel!r}")
    return channel


def check_thickness_unit(unit: str) -> ThicknessUnit:
    if unit == "kA":
        return "kA"
    if unit == "A":
        return "A"
    raise ConfigError(f"thickness wire unit must be 'kA' or 'A', got {unit!r}")


# ---------------------------------------------------------------------------------------------------
# Driver


class ThicknessMonitor:
    """One sensor channel of an SQM-160 on its serial link (the monitor is its own port)."""

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        channel: int = 1,
        timeout_s: float = 0.5,
        thickness_unit: str = "kA",
        rate_query_mark: bool = True,
    ) -> None:
        self.link = link
        self.name = name
        self.channel = check_channel(channel)
        self.timeout_s = timeout_s
        self.thickness_unit = check_thickness_unit(thickness_unit)
        self.rate_query_mark = rate_query_mark

    async def _ask(self, command: str) -> bytes:
        request = encode_command(command.encode("ascii"))
        timeout = self.timeout_s + (len(request) + 32) * self.link.char_time_s
        reply = await self.link.transact(request, ReplyDecoder(), timeout)
        if reply.status is not Status.OK:
            raise DeviceRefused(
                self.name, reply.status.value, f"{REFUSAL_DETAIL[reply.status]} ({command!r})"
            )
        return reply.data

    async def _number(self, command: str) -> float:
        return parse_number(await self._ask(command))

    async def firmware(self) -> str:
        return (await self._ask("@")).decode("ascii", errors="replace").strip()

    async def channel_count(self) -> int:
        return int(await self._number("J"))

    async def read_rate(self) -> Reading:
        command = f"L{self.channel}?" if self.rate_query_mark else f"L{self.channel}"
        return Reading.now(await self._number(command) / 10.0, "nm/s")

    async def read_thickness(self) -> Reading:
        wire = await self._number(f"N{self.channel}")
        return Reading.now(wire * NM_PER_UNIT[self.thickness_unit], "nm")

    async def read_frequency(self) -> Reading:
        frequency_hz = await self._number(f"P{self.channel}")
        quality = Quality.OK if frequency_hz >= MIN_OSCILLATING_HZ else Quality.ERROR
        return Reading.now(frequency_hz, "Hz", quality)

    async def crystal_life(self) -> Reading:
        return Reading.now(await self._number(f"R{self.channel}"), "%")

    async def read_average_rate(self) -> Reading:
        return Reading.now(await self._number("M") / 10.0, "nm/s")

    async def read_average_thickness(self) -> Reading:
        return Reading.now(await self._number("O") * NM_PER_UNIT[self.thickness_unit], "nm")

    async def read_all_sensors(self) -> list[SensorValues]:
        """Rate, thickness and frequency of every installed sensor in one exchange (``W``)."""
        return parse_all_sensors(await self._ask("W"))

    async def film_parameters(self, film: int = PROGRAMMED_FILM) -> FilmParameters:
        """A film memory as the instrument holds it (``A<film>?``)."""
        return parse_film_parameters(await self._ask(film_query_command(film).decode("ascii")))

    async def active_film(self) -> int:
        """The film the monitor converts every sensor with now (``D?``)."""
        return int(await self._number(active_film_command().decode("ascii")))

    async def set_film(
        self,
        density_g_cm3: float,
        *,
        z_ratio: float,
        tooling_pct: float = 100.0,
        label: str | None = None,
        film: int = PROGRAMMED_FILM,
    ) -> FilmParameters:
        """Program a film's density, Z-ratio and tooling and make it the active film.

        A film write carries every field of the memory, so the rest (final thickness, set points,
        sensors averaged) is read first and written back as it was. Out-of-range values raise
        `ConfigError` before anything is sent; a refusal raises `DeviceRefused`. Returns what was
        written; reading it back is the caller's business (`film_parameters`, or `poll`)."""
        check_film(film)
        wanted = dataclasses.replace(
            await self.film_parameters(film),
            density_g_cm3=density_g_cm3,
            z_ratio=z_ratio,
            tooling_pct=tooling_pct,
            label=check_label(label if label is not None else f"FILM{film}"),
        )
        command = film_write_command(film, wanted)  # range checks before anything is written
        await self._ask(command.decode("ascii"))
        await self._ask(active_film_command(film).decode("ascii"))
        return wanted

    async def zero(self) -> None:
        """Zero rate and thickness (``S``), as at the start of a layer."""
        await self._ask("S")

    async def zero_timer(self) -> None:
        await self._ask("T")

    async def poll(self) -> dict[str, Reading]:
        """All values of this channel and the film they are computed with; a crystal that stopped
        oscillating spoils rate and thickness too."""
        frequency = await self.read_frequency()
        rate = await self.read_rate()
        thickness = await self.read_thickness()
        life = await self.crystal_life()
        if not frequency.ok:
            rate = Reading.now(rate.value, rate.unit, Quality.ERROR)
            thickness = Reading.now(thickness.value, thickness.unit, Quality.ERROR)
        active = await self.active_film()
        film = await self.film_parameters(active)
        return {
            "rate": rate,
            "thickness": thickness,
            "frequency": frequency,
            "crystal_life": life,
            "active_film": Reading.now(float(active), "1"),
            "film_density": Reading.now(film.density_g_cm3, "g/cm3"),
            "film_z_ratio": Reading.now(film.z_ratio, "1"),
            "film_tooling": Reading.now(film.tooling_pct, "%"),
        }
