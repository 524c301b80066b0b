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

Commands used: ``@`` firmware, ``J`` channel count, ``M`` average rate, ``O`` average thickness,
``L<ch>?`` rate (PyExpLabSys sends ``L<ch>``; `rate_query_mark` picks), ``N<ch>`` thickness,
``P<ch>`` frequency, ``R<ch>`` crystal life, ``S`` zero rate and thickness, ``T`` zero the timer,
``Y`` power-up reset flag, ``A`` film parameters.

Film parameters: the monitor turns crystal mass into thickness with the density, tooling and Z-ratio
programmed for the film, so a wrong density scales every thickness and rate it reports (Li at the
2.0 g/cm³ of another film reads 0.267x). That ``A<film>?`` reads a film's parameters is [V] (PyExpLabSys
``show_film_parameters`` sends ``A1?``; devices.md §7 lists only ``Z``, which resets them). The
argument layout is [U], from memory of the SQM-160 manual, not checked:

    A<film>?                                   ->  A <label> <density> <tooling> <z-ratio> [more ...]
    A<film> <label> <density> <tooling> <z>    ->  A

density in g/cm³ (3 decimals), tooling in % (1 decimal), Z-ratio (3 decimals), separated by spaces;
a real unit may send further fields (final thickness, set points, sensor average), which are ignored,
and may want them on a write: it then answers ``D`` and `ThicknessMonitor.set_film` raises. Film 1 is
taken to be the active film [U]; choosing another is not implemented. Confirm this layout against the
manual before programming a real unit.

Units on the wire: rate in Å/s [V, both public drivers] -> nm/s (÷10); frequency in Hz [V];
crystal life in % [V]. Thickness is the uncertain one [U]: pymeasure reads it as Å, while the
front panel shows kÅ and the pinned reply " 0.000 " has the three decimals of a kÅ display. The
default here is kÅ (1 kÅ = 100 nm); pass ``thickness_unit="A"`` to read Å. The simulator session
takes the same option, so both ends agree by construction.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final, Literal

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.reading import Quality, Reading

SYNC: Final = 0x21  # '!'
COMMAND_LEN_OFFSET: Final = 34
REPLY_LEN_OFFSET: Final = 35
MAX_CHANNELS: Final = 6
NM_PER_UNIT: Final[dict[str, float]] = {"kA": 100.0, "A": 0.1}
MIN_OSCILLATING_HZ: Final = 1.0e6  # [U] below this no 5/6 MHz crystal is oscillating: sensor failed
MAX_FILMS: Final = 99  # [U] film memories of an SQM-160
ACTIVE_FILM: Final = 1  # [U] the film the simulator measures with; choosing another is not implemented
DENSITY_RANGE_G_CM3: Final = (0.5, 99.99)  # [U] front-panel limits
TOOLING_RANGE_PCT: Final = (10.0, 399.0)  # [U]
Z_RATIO_RANGE: Final = (0.1, 10.0)  # [U]
MAX_LABEL_CHARS: Final = 8  # [U]

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
class FilmParameters:
    """What the monitor needs to turn crystal mass into the film's thickness. Ranges are checked by
    `check_film_parameters`, so a value can be parsed from a reply before it is judged."""

    density_g_cm3: float
    tooling_pct: float = 100.0
    z_ratio: float = 1.0
    label: str = "FILM1"


def check_film(film: int) -> int:
    if not 1 <= film <= MAX_FILMS:
        raise ConfigError(f"SQM-160 film number must be 1..{MAX_FILMS}, got {film!r}")
    return film


def _check_range(name: str, value: float, limits: tuple[float, float]) -> None:
    low, high = limits
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"film {name} must be {low:g}..{high:g}, got {value!r}")


def check_film_parameters(params: FilmParameters) -> FilmParameters:
    """Refuse what the instrument would refuse, before it goes on the wire (or, in the simulator,
    before it is honoured)."""
    _check_range("density (g/cm³)", params.density_g_cm3, DENSITY_RANGE_G_CM3)
    _check_range("tooling (%)", params.tooling_pct, TOOLING_RANGE_PCT)
    _check_range("Z-ratio", params.z_ratio, Z_RATIO_RANGE)
    label = params.label
    printable = label.isascii() and label.isprintable() and " " not in label
    if not (printable and 1 <= len(label) <= MAX_LABEL_CHARS):
        raise ConfigError(f"film label must be 1..{MAX_LABEL_CHARS} ASCII characters, no spaces: {label!r}")
    return params


def format_film_parameters(params: FilmParameters) -> bytes:
    """The data of an ``A<film>?`` reply and the tail of an ``A<film> ...`` write [U]."""
    return (
        f"{params.label} {params.density_g_cm3:.3f} {params.tooling_pct:.1f} {params.z_ratio:.3f}"
    ).encode("ascii")


def parse_film_parameters(data: bytes) -> FilmParameters:
    """Label, density, tooling, Z-ratio; further fields a real unit may send are ignored [U]."""
    fields = data.split()
    if len(fields) < 4:
        raise ProtocolError(f"film parameters {data!r} need label, density, tooling and Z-ratio")
    label = fields[0].decode("ascii", errors="replace")
    density, tooling, z_ratio = (parse_number(f) for f in fields[1:4])
    return FilmParameters(density, tooling, z_ratio, label)


def film_query_command(film: int) -> bytes:
    return f"A{check_film(film)}?".encode("ascii")


def film_write_command(film: int, params: FilmParameters) -> bytes:
    return f"A{check_film(film)} ".encode("ascii") + format_film_parameters(check_film_parameters(params))


def parse_film_command(argument: bytes) -> tuple[int, FilmParameters | None]:
    """Device role: the bytes after ``A`` as (film, None) for a query or (film, parameters) for a
    write. Malformed or out-of-range input raises `ProtocolError` or `ConfigError` (status ``D``)."""
    if argument.endswith(b"?"):
        number, params = argument[:-1], None
    else:
        number, _, tail = argument.partition(b" ")
        params = check_film_parameters(parse_film_parameters(tail))
    if not number.isdigit():
        raise ProtocolError(f"film number {number!r} is not a number")
    return check_film(int(number)), params


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

    async def set_film(
        self,
        density_g_cm3: float,
        *,
        tooling_pct: float = 100.0,
        z_ratio: float = 1.0,
        film: int = ACTIVE_FILM,
        label: str | None = None,
    ) -> None:
        """Program a film's density, tooling and Z-ratio (``A<film> ...``, layout [U]).

        This is the instrument's setting, not this channel's: every sensor converts with it. Do it
        for each film before it is deposited, or the thickness is off by the ratio of densities.
        Out-of-range values raise `ConfigError` before anything is sent; a refusal raises
        `DeviceRefused`."""
        params = FilmParameters(density_g_cm3, tooling_pct, z_ratio, label or f"FILM{film}")
        await self._ask(film_write_command(film, params).decode("ascii"))

    async def film_parameters(self, film: int = ACTIVE_FILM) -> FilmParameters:
        """The film's parameters as the instrument holds them (``A<film>?``)."""
        return parse_film_parameters(await self._ask(film_query_command(film).decode("ascii")))

    async def zero(self) -> None:
        """Zero rate and thickness (``S``), as at the start of a layer."""
        await self._ask("S")

    async def zero_timer(self) -> None:
        await self._ask("T")

    async def poll(self) -> dict[str, Reading]:
        """All values of this channel; a crystal that stopped oscillating spoils rate and thickness too."""
        frequency = await self.read_frequency()
        rate = await self.read_rate()
        thickness = await self.read_thickness()
        life = await self.crystal_life()
        if not frequency.ok:
            rate = Reading.now(rate.value, rate.unit, Quality.ERROR)
            thickness = Reading.now(thickness.value, thickness.unit, Quality.ERROR)
        return {"rate": rate, "thickness": thickness, "frequency": frequency, "crystal_life": life}
