"""Pfeiffer Vacuum Protocol: ASCII telegrams on RS-485 (TC 110 / HiPace, DCU, DigiLine gauges, TPG 36x).

One telegram, all printable ASCII, ending in CR (devices.md §2)::

    a a a   A A   n n n   l l   d a t a . . .   c c c   CR
    address action param  len   data (len chars) checksum
    001-255 00 read       02..  "=?" for a read  sum of every character before it, mod 256,
            10 write/reply                       as 3 decimal digits

A slave answers a read with action 10 and the value, a write by echoing it with the data it accepted,
and an unusable request with one of the error words ``NO_DEF`` (no such parameter), ``_RANGE`` (value
out of range) or ``_LOGIC`` (access violation). Group (9xx) and global (000) addresses get no reply.
A reply must echo the address and parameter of its request, or the bus is out of step.

Data types (width in characters): 0 boolean_old (6, ``000000``/``111111``), 1 u_integer (6),
2 u_real (6, ×100), 4 string (6), 6 boolean_new (1), 7 u_short_int (3), 10 u_expo_new (6,
``mmmmee`` = mmmm · 10^(ee − 23)), 11 string16 (16).

Pressure (P:740) is always hPa on the wire; a TPG 36x channel reports ``000000`` below its range and
``999999`` above it. Choices where the sources are silent [U]: strings shorter than their width are
padded with spaces; P:303 also accepts ``no Err`` for "no error".
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.reading import Quality, Reading

PA_PER_HPA = 100.0
READ_QUERY = "=?"
ERROR_WORDS = frozenset({"NO_DEF", "_RANGE", "_LOGIC"})
UNDER_RANGE_DATA = "000000"
OVER_RANGE_DATA = "999999"
_HEADER = 10  # aaa AA nnn ll
_MAX_TELEGRAM = _HEADER + 99 + 3


class Action(enum.IntEnum):
    READ = 0
    WRITE = 10  # also every slave reply


# --- telegram -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Telegram:
    address: int
    action: Action
    parameter: int
    data: str

    @property
    def is_read(self) -> bool:
        return self.action is Action.READ

    @property
    def is_error(self) -> bool:
        return self.action is Action.WRITE and self.data in ERROR_WORDS


def checksum(body: bytes) -> int:
    return sum(body) % 256


def encode_telegram(telegram: Telegram) -> bytes:
    t = telegram
    if not 0 <= t.address <= 999 or not 0 <= t.parameter <= 999:
        raise ConfigError(f"Pfeiffer: address {t.address} / parameter {t.parameter} must be 0..999")
    if len(t.data) > 99 or not all(32 <= ord(c) <= 127 for c in t.data):
        raise ConfigError(f"Pfeiffer: data {t.data!r} must be at most 99 printable ASCII characters")
    body = f"{t.address:03d}{int(t.action):02d}{t.parameter:03d}{len(t.data):02d}{t.data}".encode("ascii")
    return body + f"{checksum(body):03d}\r".encode("ascii")


def encode_read(address: int, parameter: int) -> bytes:
    return encode_telegram(Telegram(address, Action.READ, parameter, READ_QUERY))


def encode_write(address: int, parameter: int, data: str) -> bytes:
    return encode_telegram(Telegram(address, Action.WRITE, parameter, data))


def encode_reply(request: Telegram, data: str) -> bytes:
    """Device role: the answer to `request` (a value, the accepted write data, or an error word)."""
    return encode_telegram(Telegram(request.address, Action.WRITE, request.parameter, data))


def decode_telegram(line: bytes) -> Telegram:
    """One telegram without its CR."""
    if len(line) < _HEADER + 3 or not line[:_HEADER].isdigit() or not all(32 <= b <= 127 for b in line):
        raise ProtocolError(f"Pfeiffer: {line!r} is not a telegram")
    length = int(line[8:10])
    if len(line) != _HEADER + length + 3:
        raise ProtocolError(f"Pfeiffer: {line!r} does not hold the {length} data characters it announces")
    body, check = line[:-3], line[-3:]
    if not check.isdigit() or int(check) != checksum(body):
        raise ChecksumError(f"Pfeiffer: {line!r} has checksum {check!r}, expected {checksum(body):03d}")
    try:
        action = Action(int(line[3:5]))
    except ValueError:
        raise ProtocolError(f"Pfeiffer: {line!r} has action {line[3:5]!r}, not 00 or 10") from None
    return Telegram(int(line[0:3]), action, int(line[5:8]), line[_HEADER:-3].decode("ascii"))


class TelegramDecoder:
    """CR-terminated telegrams, for both roles. A bad telegram is dropped up to its CR, then raised."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_to_cr = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Telegram | NeedData:
        if self._skip_to_cr:
            cr = self._buf.find(b"\r")
            if cr < 0:
                self._buf.clear()
                return NEED_DATA
            del self._buf[: cr + 1]
            self._skip_to_cr = False
        end = self._buf.find(b"\r")
        scan = self._buf if end < 0 else self._buf[:end]
        bad = next((b for b in scan if not 32 <= b <= 127), None)
        if bad is not None or (end < 0 and len(self._buf) > _MAX_TELEGRAM):
            snippet = bytes(scan[:24])
            self._drop_line(end)
            what = f"byte 0x{bad:02x}" if bad is not None else "no CR"
            raise ProtocolError(f"Pfeiffer: {what} in {snippet!r}")
        if end < 0:
            return NEED_DATA
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return decode_telegram(line)

    def _drop_line(self, end: int) -> None:
        if end < 0:
            self._buf.clear()
            self._skip_to_cr = True
        else:
            del self._buf[: end + 1]


def check_reply(request: Telegram, reply: Telegram) -> str:
    """Host role: the reply's data, after checking it answers `request`."""
    if reply.address != request.address or reply.parameter != request.parameter:
        raise ProtocolError(
            f"Pfeiffer: reply {reply.address:03d}/P:{reply.parameter:03d} "
            f"does not answer {request.address:03d}/P:{request.parameter:03d}"
        )
    if reply.action is not Action.WRITE:
        raise ProtocolError(f"Pfeiffer: reply to P:{request.parameter:03d} has action 00")
    return reply.data


# --- data types ---------------------------------------------------------------------------------


class DataType(enum.IntEnum):
    BOOLEAN_OLD = 0
    U_INTEGER = 1
    U_REAL = 2
    STRING = 4
    BOOLEAN_NEW = 6
    U_SHORT_INT = 7
    U_EXPO_NEW = 10
    STRING16 = 11


Value = bool | int | float | str
_WIDTH = {
    DataType.BOOLEAN_OLD: 6,
    DataType.U_INTEGER: 6,
    DataType.U_REAL: 6,
    DataType.STRING: 6,
    DataType.BOOLEAN_NEW: 1,
    DataType.U_SHORT_INT: 3,
    DataType.U_EXPO_NEW: 6,
    DataType.STRING16: 16,
}
_DIGITS = re.compile(r"\d+")


def encode_value(dtype: DataType, value: Value) -> str:
    """Value -> data field; `ValueError` when it cannot be represented."""
    width = _WIDTH[dtype]
    if dtype is DataType.BOOLEAN_OLD:
        return "111111" if _as_bool(value) else "000000"
    if dtype is DataType.BOOLEAN_NEW:
        return "1" if _as_bool(value) else "0"
    if dtype in (DataType.STRING, DataType.STRING16):
        text = str(value)
        if len(text) > width or not all(32 <= ord(c) <= 127 for c in text):
            raise ValueError(f"{text!r} is not {width} printable characters")
        return text.ljust(width)
    if dtype is DataType.U_EXPO_NEW:
        return encode_expo(float(value))
    number = round(float(value) * 100) if dtype is DataType.U_REAL else _as_int(value)
    if not 0 <= number < 10**width:
        raise ValueError(f"{value!r} does not fit {dtype.name} ({width} digits)")
    return f"{number:0{width}d}"


def decode_value(dtype: DataType, data: str) -> Value:
    """Data field -> value; `ProtocolError` when the field is not of that type."""
    width = _WIDTH[dtype]
    if len(data) != width:
        raise ProtocolError(f"Pfeiffer: {data!r} is not {width} characters of {dtype.name}")
    if dtype in (DataType.STRING, DataType.STRING16):
        return data.rstrip()
    if dtype is DataType.BOOLEAN_OLD:
        if data not in ("000000", "111111"):
            raise ProtocolError(f"Pfeiffer: {data!r} is not a boolean_old")
        return data == "111111"
    if dtype is DataType.BOOLEAN_NEW:
        if data not in ("0", "1"):
            raise ProtocolError(f"Pfeiffer: {data!r} is not a boolean_new")
        return data == "1"
    if not _DIGITS.fullmatch(data):
        raise ProtocolError(f"Pfeiffer: {data!r} is not a {dtype.name}")
    if dtype is DataType.U_EXPO_NEW:
        return decode_expo(data)
    if dtype is DataType.U_REAL:
        return int(data) / 100
    return int(data)


def encode_expo(value: float) -> str:
    """u_expo_new: ``%.3e``, 4 mantissa digits, exponent + 20 (2.5e-6 -> ``250014``)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative finite number")
    if value == 0:
        return "000000"
    mantissa, exponent = f"{value:.3e}".split("e")
    field = int(exponent) + 20
    if not 0 <= field <= 99:
        raise ValueError(f"{value!r} is outside the u_expo_new range")
    return f"{mantissa.replace('.', '')}{field:02d}"


def decode_expo(data: str) -> float:
    """``mmmmee`` -> mmmm · 10^(ee − 23), divided exactly so 456711 gives 4.567e-9 to the last bit."""
    mantissa, power = int(data[:4]), int(data[4:6]) - 23
    return float(mantissa * 10**power) if power >= 0 else mantissa / 10**-power


def _as_bool(value: Value) -> bool:
    if isinstance(value, str):
        raise ValueError(f"{value!r} is not a boolean")
    return bool(value)


def _as_int(value: Value) -> int:
    if isinstance(value, bool | str) or not math.isfinite(value) or int(value) != value:
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


# --- parameters ---------------------------------------------------------------------------------


class Access(enum.Enum):
    R = "R"
    W = "W"
    RW = "RW"


@dataclass(frozen=True, slots=True)
class Parameter:
    number: int
    name: str
    dtype: DataType
    access: Access
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def check_range(self, value: Value) -> bool:
        if isinstance(value, str | bool):
            return True
        low_ok = self.minimum is None or value >= self.minimum
        return low_ok and (self.maximum is None or value <= self.maximum)


_P = Parameter
_BOOL, _UINT, _UREAL, _STR, _BOOL1, _SHORT, _EXPO = (
    DataType.BOOLEAN_OLD,
    DataType.U_INTEGER,
    DataType.U_REAL,
    DataType.STRING,
    DataType.BOOLEAN_NEW,
    DataType.U_SHORT_INT,
    DataType.U_EXPO_NEW,
)
_R, _W, _RW = Access.R, Access.W, Access.RW
PARAMETERS: dict[int, Parameter] = {
    p.number: p
    for p in (
        # control commands 0xx (TC 110) and the TPG 36x controller/channel settings
        _P(1, "Heating", _BOOL, _RW),
        _P(2, "Standby", _BOOL, _RW),
        _P(4, "RUTimeCtrl", _BOOL, _RW),
        _P(8, "KeysLocked", _BOOL, _RW),  # TPG 36x
        _P(9, "ErrorAckn", _BOOL, _W),
        _P(10, "PumpgStatn", _BOOL, _RW),
        _P(12, "EnableVent", _BOOL, _RW),
        _P(17, "CfgSpdSwPt", _SHORT, _RW, minimum=0, maximum=1),
        _P(19, "Cfg DO2", _SHORT, _RW, minimum=0, maximum=22),
        _P(23, "MotorPump", _BOOL, _RW),
        _P(24, "Cfg DO1", _SHORT, _RW, minimum=0, maximum=22),
        _P(25, "OpMode BKP", _SHORT, _RW, minimum=0, maximum=3),
        _P(26, "SpdSetMode", _SHORT, _RW, minimum=0, maximum=1),
        _P(27, "GasMode", _SHORT, _RW, minimum=0, maximum=2),
        _P(30, "VentMode", _SHORT, _RW, minimum=0, maximum=2),
        _P(35, "Cfg Acc A1", _SHORT, _RW, minimum=0, maximum=13),
        _P(36, "Cfg Acc B1", _SHORT, _RW, minimum=0, maximum=13),
        _P(37, "Cfg Acc A2", _SHORT, _RW, minimum=0, maximum=13),
        _P(38, "Cfg Acc B2", _SHORT, _RW, minimum=0, maximum=13),
        _P(40, "DeGas", _BOOL1, _RW),  # TPG 36x channel
        _P(41, "Press1HVen", _SHORT, _RW, minimum=0, maximum=3),  # TPG 36x channel: SensEnable
        _P(45, "Cfg Rel R1", _SHORT, _RW, minimum=9, maximum=20),  # TPG 36x
        _P(46, "Cfg Rel R2", _SHORT, _RW, minimum=9, maximum=20),
        _P(47, "Cfg Rel R3", _SHORT, _RW, minimum=9, maximum=20),
        _P(48, "Cfg Rel R4", _SHORT, _RW, minimum=9, maximum=20),
        _P(50, "SealingGas", _BOOL, _RW),
        _P(55, "Cfg AO1", _SHORT, _RW, minimum=0, maximum=8),
        _P(60, "CtrlViaInt", _SHORT, _RW, minimum=1, maximum=255),
        _P(61, "IntSelLckd", _BOOL, _RW),
        _P(62, "Cfg DI1", _SHORT, _RW, minimum=0, maximum=7),
        _P(63, "Cfg DI2", _SHORT, _RW, minimum=0, maximum=7),
        # status requests 3xx
        _P(300, "RemotePrio", _BOOL, _R),
        _P(302, "SpdSwPtAtt", _BOOL, _R),
        _P(303, "Error code", _STR, _R),
        _P(304, "OvTempElec", _BOOL, _R),
        _P(305, "OvTempPump", _BOOL, _R),
        _P(306, "SetSpdAtt", _BOOL, _R),
        _P(307, "PumpAccel", _BOOL, _R),
        _P(308, "SetRotSpd", _UINT, _R, "Hz"),
        _P(309, "ActualSpd", _UINT, _R, "Hz"),
        _P(310, "DrvCurrent", _UREAL, _R, "A"),
        _P(311, "OpHrsPump", _UINT, _R, "h"),
        _P(312, "Fw version", _STR, _R),
        _P(313, "DrvVoltage", _UREAL, _R, "V"),
        _P(314, "OpHrsElec", _UINT, _R, "h"),
        _P(315, "Nominal Spd", _UINT, _R, "Hz"),
        _P(316, "DrvPower", _UINT, _R, "W"),
        _P(319, "PumpCycles", _UINT, _R),
        _P(326, "TempElec", _UINT, _R, "degC"),
        _P(330, "TempPmpBot", _UINT, _R, "degC"),
        _P(336, "AccelDecel", _UINT, _R, "rpm/s"),
        _P(342, "TempBearng", _UINT, _R, "degC"),
        _P(346, "TempMotor", _UINT, _R, "degC"),
        _P(349, "ElecName", _STR, _R),
        _P(354, "HW Version", _STR, _R),
        *(_P(360 + i, f"ErrHist{i + 1}", _STR, _R) for i in range(10)),
        _P(397, "SetRotSpd", _UINT, _R, "rpm"),
        _P(398, "ActualSpd", _UINT, _R, "rpm"),
        _P(399, "NominalSpd", _UINT, _R, "rpm"),
        # set values 7xx
        _P(700, "RUTimeSVal", _UINT, _RW, "min", 1, 120),
        _P(701, "SpdSwPt1", _UINT, _RW, "%", 50, 97),
        _P(707, "SpdSVal", _UREAL, _RW, "%", 20, 100),
        _P(708, "PwrSVal", _SHORT, _RW, "%", 10, 100),
        _P(710, "Swoff BKP", _UINT, _RW, "W", 0, 1000),
        _P(711, "SwOn BKP", _UINT, _RW, "W", 0, 1000),
        _P(717, "StdbySVal", _UREAL, _RW, "%", 20, 100),
        _P(719, "SpdSwPt2", _UINT, _RW, "%", 5, 97),
        _P(720, "VentSpd", _SHORT, _RW, "%", 40, 98),
        _P(721, "VentTime", _UINT, _RW, "s", 6, 3600),
        _P(730, "PrsSwPt 1", _EXPO, _RW, "hPa"),
        _P(732, "PrsSwPt 2", _EXPO, _RW, "hPa"),
        _P(739, "PrsSn1Name", _STR, _R),
        _P(740, "Pressure", _EXPO, _RW, "hPa"),
        _P(742, "PrsCorrPi", _UREAL, _RW, "", 0.1, 10.0),
        _P(749, "PrsSn2Name", _STR, _R),
        _P(750, "Pressure 2", _EXPO, _RW, "hPa"),
        _P(752, "PrsCorrPi 2", _UREAL, _RW, "", 0.1, 10.0),
        _P(777, "NomSpdConf", _UINT, _RW, "Hz", 0, 1500),
        _P(797, "RS485Adr", _UINT, _RW, "", 1, 255),
    )
}
"""The TC 110 parameter set (its operating instructions' "Parameter set" tables: control commands,
status requests, set values; a public transcription and a public parameter dict agree on numbers,
types and access) plus the TPG 36x parameters of BG 5510 BEN §2.4 (008, 040, 041, 045-048). Ranges
are the TC 110's, except P:742/752, which take the TPG 36x range 0.10-10.00 (a TC 110 stops at 8.0:
its simulator narrows it). Writing P:740 sets an offset (BG 5510 BEN §2.4)."""


def parameter(number: int) -> Parameter:
    try:
        return PARAMETERS[number]
    except KeyError:
        raise ConfigError(f"Pfeiffer: P:{number:03d} is not in the parameter table") from None


class ErrorKind(enum.Enum):
    NONE = "none"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """P:303: ``000000``, ``ErrXXX`` or ``WrnXXX``."""

    kind: ErrorKind
    number: int
    text: str

    @property
    def is_error(self) -> bool:
        return self.kind is ErrorKind.ERROR


NO_ERROR = ErrorCode(ErrorKind.NONE, 0, "000000")
_ERROR_CODE = re.compile(r"(Err|Wrn)(\d{3})", re.IGNORECASE)


def parse_error_code(text: str) -> ErrorCode:
    stripped = text.strip()
    if stripped in ("000000", "") or stripped.lower() in ("no err", "noerr"):
        return NO_ERROR
    match = _ERROR_CODE.fullmatch(stripped)
    if match is None:
        raise ProtocolError(f"Pfeiffer: {text!r} is not an error code")
    kind = ErrorKind.ERROR if match[1].lower() == "err" else ErrorKind.WARNING
    return ErrorCode(kind, int(match[2]), stripped)


# --- drivers ------------------------------------------------------------------------------------


class PfeifferDevice:
    """Any device on a Pfeiffer protocol bus: raw and typed parameter access by number."""

    def __init__(self, link: Link, *, name: str, address: int = 1, timeout_s: float = 0.5) -> None:
        if not 1 <= address <= 255:
            raise ConfigError(f"{name}: RS-485 address {address} outside 1..255 (9xx/000 never reply)")
        self._link = link
        self.name = name
        self.address = address
        self._timeout_s = timeout_s

    async def exchange(self, request: Telegram) -> str:
        """One request; returns the reply data; error words raise `DeviceRefused`."""
        frame = encode_telegram(request)
        timeout = self._timeout_s + (len(frame) + _HEADER + 3 + 16) * self._link.char_time_s
        reply = await self._link.transact(frame, TelegramDecoder(), timeout)
        data = check_reply(request, reply)
        if data in ERROR_WORDS:
            raise DeviceRefused(self.name, data, f"P:{request.parameter:03d} at address {self.address:03d}")
        return data

    async def read_raw(self, number: int) -> str:
        return await self.exchange(Telegram(self.address, Action.READ, number, READ_QUERY))

    async def write_raw(self, number: int, data: str) -> str:
        return await self.exchange(Telegram(self.address, Action.WRITE, number, data))

    async def read_parameter(self, number: int) -> Value:
        p = parameter(number)
        return decode_value(p.dtype, await self.read_raw(number))

    async def write_parameter(self, number: int, value: Value) -> Value:
        p = parameter(number)
        try:
            data = encode_value(p.dtype, value)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: P:{number:03d} {p.name}: {exc}") from None
        return decode_value(p.dtype, await self.write_raw(number, data))

    async def read_name(self) -> str:
        return str(await self.read_parameter(349))

    async def read_error_code(self) -> ErrorCode:
        return parse_error_code(await self.read_raw(303))

    async def _read_number(self, number: int, unit: str) -> Reading:
        value = await self.read_parameter(number)
        assert isinstance(value, int | float)
        return Reading.now(float(value), unit)

    async def _read_flag(self, number: int) -> bool:
        return bool(await self.read_parameter(number))


class TurboPump(PfeifferDevice):
    """A turbo pump on a TC 110 / HiPace drive (default address 001)."""

    async def start(self) -> None:
        """Motor enabled (P:023, already 1 by default), then the pumping station on (P:010)."""
        await self.write_parameter(23, True)
        await self.write_parameter(10, True)

    async def stop(self) -> None:
        await self.write_parameter(10, False)

    async def acknowledge_error(self) -> None:
        await self.write_parameter(9, True)

    async def read_pumping_station(self) -> bool:
        return await self._read_flag(10)

    async def read_motor(self) -> bool:
        return await self._read_flag(23)

    async def read_speed(self) -> Reading:
        return await self._read_number(309, "Hz")

    async def read_set_speed(self) -> Reading:
        return await self._read_number(308, "Hz")

    async def read_nominal_speed(self) -> Reading:
        return await self._read_number(315, "Hz")

    async def read_set_speed_reached(self) -> bool:
        return await self._read_flag(306)

    async def read_accelerating(self) -> bool:
        return await self._read_flag(307)

    async def read_drive_power(self) -> Reading:
        return await self._read_number(316, "W")

    async def read_drive_current(self) -> Reading:
        return await self._read_number(310, "A")

    async def read_temperatures(self) -> dict[str, Reading]:
        return {key: await self._read_number(number, "degC") for key, number in TEMPERATURES.items()}

    async def poll(self) -> dict[str, Reading]:
        """Everything an operator watches; an ``Err`` is an ERROR-quality reading, never an exception."""
        code = await self.read_error_code()
        error_quality = Quality.ERROR if code.is_error else Quality.OK
        # stamped now, when P:303 was read, not after the dozen reads below: a command on the same bus
        # can land between them, and a code read before it must not look newer than the command
        error = Reading.now(float(code.number if code.is_error else 0), "", error_quality)
        warning = Reading.now(float(code.number if code.kind is ErrorKind.WARNING else 0), "")
        return {
            "speed": await self.read_speed(),
            "set_speed_reached": _flag(await self.read_set_speed_reached()),
            "accelerating": _flag(await self.read_accelerating()),
            "drive_power": await self.read_drive_power(),
            "drive_current": await self.read_drive_current(),
            **await self.read_temperatures(),
            "error_code": error,
            "warning_code": warning,
        }


TEMPERATURES = {"temp_electronics": 326, "temp_pump_bottom": 330, "temp_bearing": 342, "temp_motor": 346}


class PfeifferGauge(PfeifferDevice):
    """A pressure channel read through P:740: a DigiLine gauge, a DCU input or a TPG 36x channel.

    On a TPG 36x the address is ``aab``: controller aa, channel b (``011``, ``012``).
    """

    async def read_pressure(self) -> Reading:
        """Below range reads 0 Pa and above range +inf Pa, flagged; only OK values are pressures."""
        data = await self.read_raw(740)
        if data == UNDER_RANGE_DATA:
            return Reading.now(0.0, "Pa", Quality.UNDER_RANGE)
        if data == OVER_RANGE_DATA:
            return Reading.now(math.inf, "Pa", Quality.OVER_RANGE)
        value = decode_value(DataType.U_EXPO_NEW, data)
        assert isinstance(value, float)
        return Reading.now(value * PA_PER_HPA, "Pa")

    async def poll(self) -> dict[str, Reading]:
        return {"pressure": await self.read_pressure()}


def _flag(value: bool) -> Reading:
    return Reading.now(1.0 if value else 0.0, "bool")
