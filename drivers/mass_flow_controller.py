"""Alicat-style mass-flow controller: the ASCII serial protocol (devices.md §6) and its async driver.

Serial 19200 8N1 [V]; every command and every reply ends in CR; there is no checksum, so the
decoders parse strictly: every field must have its shape and the number of numeric fields is exact,
so a bit flipped in transit cannot silently change a value (tested flip by flip). A unit is
addressed by one letter ``A``-``Z`` (default ``A``); several units can share one RS-485 bus.

    host -> device                       device -> host
    A<CR>               poll             A +014.70 +025.00 +002.004 +002.004 +002.004 N2<CR>
    AS10.00<CR>         setpoint         the same data frame, setpoint field updated
    A$$R46<CR>          read register    A 046 = 8<CR>          [U] layout; parsed by token
    A$$W46=8<CR>        write register   A 046 = 8<CR>          [U] the register after the write
    (not understood)                     A ?<CR>                the unit id, then ``?``; a bare ``?``
                                                                 is accepted too (older firmware, DV)

Data frame, space separated (runs of spaces allowed):

    unit  pressure  temp  vol_flow  mass_flow  [setpoint]   [totaliser]  gas   [status ...]
    A     psia      degC  ccm       sccm       controllers  optional     name  MOV VOV POV TOV LCK HLD EXH

Units: the frame fields carry the units of an *SCCM-ranged* unit with factory pressure units, which
is what the line's Ar controller is ordered with: absolute pressure in psia (converted to Pa at the
driver boundary, 1 psi = 6894.757 Pa), temperature in °C, volumetric flow in ccm, mass flow and
setpoint in sccm (standard conditions as set in the unit), totaliser in scc [U]. A unit ordered in
SLPM or with other pressure units needs a different scale; this module does not guess one. The full
scale is per unit (its ordered range) and is a driver option, `full_scale_sccm`.

Numbers may come unsigned (an older manual's example prints the setpoint as ``2.004``). The device
role prints the layout a real MC-series unit declares in its ``??D*`` table and prints in a poll
(hardware captures of a 10v20 MC-500SCCM-D kept in alicatlib's test fixtures): every number ``s
decimal 7/2`` (``+014.62``), the gas right-aligned in 6 characters (``    N2``).

Commands are not case-sensitive on real units, so the device role takes ``a$$r46`` as ``A$$R46``.

Status tokens: ``MOV``/``VOV``/``POV``/``TOV`` mass flow / volumetric flow / pressure / temperature
over range, ``LCK`` front panel locked [V]; ``HLD`` valve hold, ``EXH`` exhaust [U]. Tokens not in
that list are kept in the frame as they came (newer firmware has more).

A poll also reports the tokens as one bit field, the `status` channel (`STATUS_BITS`; a token this
module does not know sets `OTHER_STATUS`), so that an alarm can name the flag.

Gas select: register 46, low 9 bits = index into `GASES` (Ar = 1, N2 = 8) [V].
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Final, TypeVar

from drivers.codec import NEED_DATA, FrameDecoder, NeedData
from drivers.errors import ConfigError, DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.reading import Quality, Reading

PSI_PA: Final = 6894.757
GAS_REGISTER: Final = 46
GAS_INDEX_MASK: Final = 0x1FF
REFUSAL_TEXT: Final = "?"
MAX_LINE: Final = 256
_REPLY_CHARS: Final = 80
STATUS_BITS: Final = {"MOV": 1, "VOV": 2, "POV": 4, "TOV": 8, "LCK": 16, "HLD": 32, "EXH": 64}
OTHER_STATUS: Final = 128
GASES: Final[tuple[str, ...]] = (
    # index order of the Alicat standard gas table [V numat/alicat driver.py]
    "Air", "Ar", "CH4", "CO", "CO2", "C2H6", "H2", "He", "N2", "N2O",
    "Ne", "O2", "C3H8", "n-C4H10", "C2H2", "C2H4", "i-C2H10", "Kr", "Xe", "SF6",
    "C-25", "C-10", "C-8", "C-2", "C-75", "A-75", "A-25", "A1025", "Star29", "P-5",
)  # fmt: skip

_UNIT_IDS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_STATUS = re.compile(r"[A-Z]{2,4}")
_REGISTER_CMD = re.compile(r"(\$\$)?([RW])(\d{1,4})(?:=(-?\d+))?", re.IGNORECASE)
_SETPOINT_CMD = re.compile(r"S\s*([+-]?(?:\d+\.?\d*|\.\d+))")

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True, slots=True)
class DataFrame:
    """One data line; `setpoint_sccm` is None for a meter, `total_scc` None without a totaliser."""

    unit_id: str
    pressure_psia: float
    temperature_c: float
    volumetric_flow_ccm: float
    mass_flow_sccm: float
    setpoint_sccm: float | None
    total_scc: float | None
    gas: str
    status: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterValue:
    unit_id: str
    register: int
    value: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """The ``?`` reply: the unit did not understand or would not do the command."""

    text: str = REFUSAL_TEXT


def gas_index(gas: str) -> int:
    """Index of `gas` in the standard table; ValueError lists the known names."""
    try:
        return GASES.index(gas)
    except ValueError:
        raise ValueError(f"unknown gas {gas!r}; known: {', '.join(GASES)}") from None


def gas_name(index: int) -> str:
    """Name for a gas index; indices past the standard table are mixes (236-255 on FW >= 5v)."""
    return GASES[index] if 0 <= index < len(GASES) else f"MIX{index}"


def check_unit_id(unit_id: str) -> str:
    if unit_id not in _UNIT_IDS:
        raise ConfigError(f"Alicat unit id must be one letter A-Z, got {unit_id!r}")
    return unit_id


# ---------------------------------------------------------------------------------------------------
# Host role: encode commands


def encode_poll(unit_id: str) -> bytes:
    return f"{unit_id}\r".encode("ascii")


def encode_setpoint(unit_id: str, setpoint: float, decimals: int = 2) -> bytes:
    """``AS10.00``; two decimals as the public drivers send, i.e. 0.01 sccm resolution."""
    return f"{unit_id}S{setpoint:.{decimals}f}\r".encode("ascii")


def encode_register_read(unit_id: str, register: int) -> bytes:
    return f"{unit_id}$$R{register}\r".encode("ascii")


def encode_register_write(unit_id: str, register: int, value: int) -> bytes:
    return f"{unit_id}$$W{register}={value}\r".encode("ascii")


# ---------------------------------------------------------------------------------------------------
# Host role: decode replies


class _LineBuffer:
    """CR framing shared by both roles; a stray LF (some gateways add one) is ignored."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_line(self) -> str | None:
        end = self._buf.find(b"\r")
        if end < 0:
            if len(self._buf) > MAX_LINE:
                self._buf.clear()
                raise ProtocolError(f"no CR within {MAX_LINE} bytes")
            return None
        raw = bytes(self._buf[:end]).strip(b"\n")
        del self._buf[: end + 1]
        if not raw.isascii() or any(b < 0x20 for b in raw):
            self._buf.clear()
            raise ProtocolError(f"non-printable bytes in line {raw!r}")
        return raw.decode("ascii")


def _number(token: str, what: str, line: str) -> float:
    if not _NUMBER.fullmatch(token):
        raise ProtocolError(f"{what} field {token!r} is not a number in {line!r}")
    return float(token)


def is_refusal(tokens: list[str], unit_id: str) -> bool:
    """``A ?`` (the unit id, then ``?``) or a bare ``?``: both forms are in use."""
    return tokens in ([REFUSAL_TEXT], [unit_id, REFUSAL_TEXT])


def parse_data_frame(
    line: str, unit_id: str, *, controller: bool = True, totaliser: bool = False
) -> DataFrame | Refusal:
    """Parse one data line (without its CR) addressed from `unit_id`.

    The number of numeric fields must be exact: a unit's setpoint and totaliser options are known
    when it is configured, and counting is what catches a digit turned into a space in transit
    (``+002.004`` -> ``+0 2.004``), since the protocol has no checksum.
    """
    tokens = line.split()
    if is_refusal(tokens, unit_id):
        return Refusal()
    if not tokens or tokens[0] != unit_id:
        got = tokens[0] if tokens else ""
        raise ProtocolError(f"reply from unit {got!r}, expected {unit_id!r}: {line!r}")
    rest = tokens[1:]
    n_numbers = 0
    while n_numbers < len(rest) and _NUMBER.fullmatch(rest[n_numbers]):
        n_numbers += 1
    if n_numbers == len(rest):
        raise ProtocolError(f"data frame has no gas field: {line!r}")
    gas, status = rest[n_numbers], tuple(rest[n_numbers + 1 :])
    if not gas[0].isalpha():
        _number(gas, f"field {n_numbers + 1}", line)  # raises: a number spoilt in transit
    for token in status:
        if not _STATUS.fullmatch(token):
            raise ProtocolError(f"status token {token!r} is not a status in {line!r}")
    base = 5 if controller else 4
    expected = base + 1 if totaliser else base
    if n_numbers != expected:
        raise ProtocolError(f"expected {expected} numbers, got {n_numbers}: {line!r}")
    values = [float(t) for t in rest[:n_numbers]]
    return DataFrame(
        unit_id=unit_id,
        pressure_psia=values[0],
        temperature_c=values[1],
        volumetric_flow_ccm=values[2],
        mass_flow_sccm=values[3],
        setpoint_sccm=values[4] if controller else None,
        total_scc=values[base] if totaliser else None,
        gas=gas,
        status=status,
    )


def parse_register_reply(line: str, unit_id: str) -> RegisterValue | Refusal:
    """``A 046 = 8`` (spacing varies between firmware, so the fields are taken by token)."""
    tokens = line.replace("=", " = ").split()
    if is_refusal(tokens, unit_id):
        return Refusal()
    if not tokens or tokens[0] != unit_id:
        got = tokens[0] if tokens else ""
        raise ProtocolError(f"reply from unit {got!r}, expected {unit_id!r}: {line!r}")
    if len(tokens) != 4 or tokens[2] != "=" or not tokens[1].isdigit():
        raise ProtocolError(f"not a register reply: {line!r}")
    try:
        value = int(tokens[3])
    except ValueError:
        raise ProtocolError(f"register value {tokens[3]!r} is not an integer: {line!r}") from None
    return RegisterValue(unit_id, int(tokens[1]), value)


class DataFrameDecoder:
    """Host-side decoder for the reply to a poll or a setpoint command."""

    def __init__(self, unit_id: str, *, controller: bool = True, totaliser: bool = False) -> None:
        self._lines = _LineBuffer()
        self._unit_id = unit_id
        self._controller = controller
        self._totaliser = totaliser

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> DataFrame | Refusal | NeedData:
        line = self._lines.next_line()
        if line is None:
            return NEED_DATA
        return parse_data_frame(line, self._unit_id, controller=self._controller, totaliser=self._totaliser)


class RegisterDecoder:
    """Host-side decoder for the reply to a register read or write."""

    def __init__(self, unit_id: str) -> None:
        self._lines = _LineBuffer()
        self._unit_id = unit_id

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> RegisterValue | Refusal | NeedData:
        line = self._lines.next_line()
        if line is None:
            return NEED_DATA
        return parse_register_reply(line, self._unit_id)


MANUFACTURING_LINES: Final = 10  # ``??M*`` answers M00 .. M09, one line each
_MANUFACTURING_LINE = re.compile(r"M(\d\d)\s?(.*)")


IDENTITY_LABELS: Final = ("Model Number", "Serial Number", "Software Revision")


def manufacturing_labels(texts: tuple[str, ...]) -> dict[str, str]:
    """The identity lines of a ``??M*`` reply by their printed label (``Model Number MC-500SCCM-D``)."""
    info: dict[str, str] = {}
    for text in texts:
        for label in IDENTITY_LABELS:
            if text.startswith(label):
                info[label] = text.removeprefix(label).strip()
    return info


class ManufacturingInfoDecoder:
    """Host-side decoder for ``??M*``: ten lines ``A M00 <text>`` .. ``A M09 <text>``, collected whole.

    Why a decoder of its own: it is the only reply of several lines, and the identity a commissioning
    engineer writes down (model, serial number, software revision) is only in it.
    """

    def __init__(self, unit_id: str) -> None:
        self._lines = _LineBuffer()
        self._unit_id = unit_id
        self._texts: list[str] = []
        self._first: int | None = None

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> tuple[str, ...] | Refusal | NeedData:
        while (line := self._lines.next_line()) is not None:
            tokens = line.split(maxsplit=1)
            if is_refusal(line.split(), self._unit_id):
                return Refusal()
            if len(tokens) != 2 or tokens[0] != self._unit_id:
                raise ProtocolError(f"not a manufacturing-info line of unit {self._unit_id!r}: {line!r}")
            match = _MANUFACTURING_LINE.fullmatch(tokens[1].strip())
            if self._first is None and match is not None:
                self._first = int(match[1])  # M00 on the units captured; M01 in older documentation
            expected = (self._first or 0) + len(self._texts)
            if match is None or int(match[1]) != expected or self._first not in (0, 1):
                raise ProtocolError(f"manufacturing-info line M{expected:02d} expected: {line!r}")
            self._texts.append(match[2].strip())
            if len(self._texts) == MANUFACTURING_LINES:
                return tuple(self._texts)
        return NEED_DATA


# ---------------------------------------------------------------------------------------------------
# Device role: decode commands, encode replies


@dataclass(frozen=True, slots=True)
class Poll:
    unit_id: str


@dataclass(frozen=True, slots=True)
class SetSetpoint:
    unit_id: str
    setpoint_sccm: float


@dataclass(frozen=True, slots=True)
class ReadRegister:
    unit_id: str
    register: int


@dataclass(frozen=True, slots=True)
class WriteRegister:
    unit_id: str
    register: int
    value: int


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A line a unit does not understand; `unit_id` is "" when it addresses no unit at all."""

    unit_id: str
    text: str


class Verb(enum.Enum):
    """Commands beyond polling, setpoint and registers, by their (upper-case) text."""

    FIRMWARE = "VE"
    DATA_FRAME_FORMAT = "??D*"
    MANUFACTURING_INFO = "??M*"
    GAS_LIST = "??G*"
    LOCK = "$$L"
    UNLOCK = "$$U"
    TARE_FLOW = "$$V"
    TARE_PRESSURE = "$$PC"
    HOLD = "$$H"
    CANCEL_HOLD = "$$C"
    RESET_TOTALISER = "T"
    SELECT_GAS = "G"
    LOOP_SETPOINT = "LS"
    LOOP_VARIABLE = "LV"


_VERB_ALIASES = {"V": Verb.TARE_FLOW, "PC": Verb.TARE_PRESSURE}
_VERB_ARGUMENT = re.compile(r"(\?\?[DMG]\*|\$\$[A-Z]+|[A-Z]+)\s*(.*)")


@dataclass(frozen=True, slots=True)
class Instruction:
    """A command of `Verb` with its argument text ("" when it has none)."""

    unit_id: str
    verb: Verb
    argument: str = ""


Command = Poll | SetSetpoint | ReadRegister | WriteRegister | Instruction | UnknownCommand


def parse_command(line: str) -> Command:
    """Device-side parse of one command line (without its CR); letter case does not matter."""
    line = line.strip()
    if not line or line[0].upper() not in _UNIT_IDS:
        return UnknownCommand("", line)
    unit_id, body = line[0].upper(), line[1:].strip().upper()
    if body == "":
        return Poll(unit_id)
    if (setpoint := _SETPOINT_CMD.fullmatch(body)) is not None:
        return SetSetpoint(unit_id, float(setpoint[1]))
    match = _REGISTER_CMD.fullmatch(body)
    if match is not None:
        _, op, register, value = match.groups()
        if op.upper() == "R" and value is None:
            return ReadRegister(unit_id, int(register))
        if op.upper() == "W" and value is not None:
            return WriteRegister(unit_id, int(register), int(value))
    instruction = _VERB_ARGUMENT.fullmatch(body)
    if instruction is not None:
        word, argument = instruction.groups()
        verb = _VERB_ALIASES.get(word) or next((v for v in Verb if v.value == word), None)
        if verb is not None:
            return Instruction(unit_id, verb, argument.strip())
    return UnknownCommand(unit_id, line[1:])


class CommandDecoder:
    """Device-side decoder: yields one `Command` per CR-terminated line."""

    def __init__(self) -> None:
        self._lines = _LineBuffer()

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_frame(self) -> Command | NeedData:
        line = self._lines.next_line()
        return NEED_DATA if line is None else parse_command(line)


def encode_data_frame(frame: DataFrame) -> bytes:
    """The data line as an MC unit prints it: ``s decimal 7/2`` numbers, the gas in 6 characters."""
    numbers = [frame.pressure_psia, frame.temperature_c, frame.volumetric_flow_ccm, frame.mass_flow_sccm]
    if frame.setpoint_sccm is not None:
        numbers.append(frame.setpoint_sccm)
    fields = [frame.unit_id, *(f"{n:+07.2f}" for n in numbers)]
    if frame.total_scc is not None:
        fields.append(f"{frame.total_scc:+010.1f}")
    fields.append(f"{frame.gas:>6}")
    fields.extend(frame.status)
    return (" ".join(fields) + "\r").encode("ascii")


def encode_register_reply(value: RegisterValue) -> bytes:
    return f"{value.unit_id} {value.register:03d} = {value.value}\r".encode("ascii")


def encode_refusal(unit_id: str = "") -> bytes:
    """``A ?``; without a unit id the bare ``?``."""
    text = f"{unit_id} {REFUSAL_TEXT}" if unit_id else REFUSAL_TEXT
    return f"{text}\r".encode("ascii")


# ---------------------------------------------------------------------------------------------------
# Driver


class MassFlowController:
    """One Alicat controller on a (possibly shared) serial link.

    `full_scale_sccm` is the unit's ordered range (setpoints beyond it are refused before any I/O);
    `totaliser` says whether the unit prints a totaliser field, so frames are counted exactly.
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        unit_id: str = "A",
        full_scale_sccm: float = 100.0,
        totaliser: bool = False,
        timeout_s: float = 0.5,
    ) -> None:
        if not (math.isfinite(full_scale_sccm) and full_scale_sccm > 0):
            raise ConfigError(f"{name}: full_scale_sccm must be > 0, got {full_scale_sccm!r}")
        self.link = link
        self.name = name
        self.unit_id = check_unit_id(unit_id)
        self.full_scale_sccm = full_scale_sccm
        self.totaliser = totaliser
        self.timeout_s = timeout_s

    def _timeout(self, request: bytes) -> float:
        """The reply budget plus the wire time of the request and of a long data line."""
        return self.timeout_s + (len(request) + _REPLY_CHARS) * self.link.char_time_s

    async def _ask(self, request: bytes, decoder: FrameDecoder[T | Refusal]) -> T:
        reply = await self.link.transact(request, decoder, self._timeout(request))
        if isinstance(reply, Refusal):
            raise DeviceRefused(self.name, reply.text, f"command {request.decode('ascii').strip()!r}")
        return reply

    def _frame_decoder(self) -> DataFrameDecoder:
        return DataFrameDecoder(self.unit_id, totaliser=self.totaliser)

    async def read(self) -> DataFrame:
        return await self._ask(encode_poll(self.unit_id), self._frame_decoder())

    async def poll(self) -> dict[str, Reading]:
        return self.readings(await self.read())

    def readings(self, frame: DataFrame) -> dict[str, Reading]:
        """SI readings of one frame; an over-range flag marks only the quantity it names."""
        status = set(frame.status)

        def quality(flag: str) -> Quality:
            return Quality.OVER_RANGE if flag in status else Quality.OK

        setpoint = frame.setpoint_sccm if frame.setpoint_sccm is not None else math.nan
        return {
            "mass_flow": Reading.now(frame.mass_flow_sccm, "sccm", quality("MOV")),
            "setpoint": Reading.now(setpoint, "sccm"),
            "pressure": Reading.now(frame.pressure_psia * PSI_PA, "Pa", quality("POV")),
            "temperature": Reading.now(frame.temperature_c, "degC", quality("TOV")),
            "status": Reading.now(float(status_bits(frame.status)), ""),
        }

    async def set_flow_sccm(self, flow_sccm: float) -> DataFrame:
        """Command a mass-flow setpoint; the unit's echoed setpoint must match what was sent."""
        if not (math.isfinite(flow_sccm) and 0.0 <= flow_sccm <= self.full_scale_sccm):
            raise ValueError(
                f"{self.name}: setpoint {flow_sccm!r} sccm is outside 0..{self.full_scale_sccm:g} sccm "
                "(full scale)"
            )
        request = encode_setpoint(self.unit_id, flow_sccm)
        frame = await self._ask(request, self._frame_decoder())
        sent = round(flow_sccm, 2)
        tolerance = max(0.006, 1e-3 * self.full_scale_sccm)
        if frame.setpoint_sccm is None or abs(frame.setpoint_sccm - sent) > tolerance:
            raise ProtocolError(
                f"{self.name}: sent setpoint {sent:g} sccm, unit reports {frame.setpoint_sccm!r}"
            )
        return frame

    async def read_manufacturing_info(self) -> dict[str, str]:
        """``??M*``: maker, model number, serial number, dates and software revision, by label.

        Each line is ``<label> <value>``; the labels are the ones the unit prints ("Model Number",
        "Serial Number", "Software Revision"), kept as printed so nothing is lost to our naming."""
        request = f"{self.unit_id}{Verb.MANUFACTURING_INFO.value}\r".encode("ascii")
        timeout = self._timeout(request) + MANUFACTURING_LINES * _REPLY_CHARS * self.link.char_time_s
        decoder: FrameDecoder[tuple[str, ...] | Refusal] = ManufacturingInfoDecoder(self.unit_id)
        texts = await self.link.transact(request, decoder, timeout)
        if isinstance(texts, Refusal):
            raise DeviceRefused(self.name, texts.text, "command '??M*'")
        return manufacturing_labels(texts)

    async def read_gas(self) -> str:
        value = await self._ask(
            encode_register_read(self.unit_id, GAS_REGISTER), RegisterDecoder(self.unit_id)
        )
        return gas_name(value.value & GAS_INDEX_MASK)

    async def select_gas(self, gas: str) -> None:
        """Select a gas of the standard table by name, then read register 46 back to confirm."""
        index = gas_index(gas)
        write = encode_register_write(self.unit_id, GAS_REGISTER, index)
        read = encode_register_read(self.unit_id, GAS_REGISTER)
        async with self.link.exclusive() as session:
            for request in (write, read):
                decoder: FrameDecoder[RegisterValue | Refusal] = RegisterDecoder(self.unit_id)
                answer = await session.exchange(request, decoder, self._timeout(request))
                if isinstance(answer, Refusal):
                    raise DeviceRefused(self.name, answer.text, f"command {request.decode().strip()!r}")
                reply: RegisterValue = answer
        if reply.register != GAS_REGISTER or reply.value & GAS_INDEX_MASK != index:
            raise ProtocolError(
                f"{self.name}: selected {gas} (index {index}), unit reports register "
                f"{reply.register} = {reply.value}"
            )


def status_bits(tokens: tuple[str, ...]) -> int:
    """The frame's status tokens as one bit field (`STATUS_BITS`, unknown tokens as `OTHER_STATUS`)."""
    bits = 0
    for token in tokens:
        bits |= STATUS_BITS.get(token, OTHER_STATUS)
    return bits
