"""Modbus RTU and Modbus TCP: the pure codec in both roles, and the async client on a `Link`.

The host role (`ModbusClient`, or the ``encode_*_request`` / ``decode_*_reply`` functions) builds
requests and checks replies; the device role (`decode_request`, ``encode_*_reply``, the request
decoders) is what `sim_hardware.modbus_device` serves, so both sides share one definition of the wire.

PDU (function code + data), the same inside both framings; all fields big-endian::

    FC 01/02/03/04 request   | FC | address(2) | quantity(2) |
    FC 01/02 reply           | FC | byte count | bits, LSB of the first byte = first bit ... |
    FC 03/04 reply           | FC | byte count = 2N | register 1 (2) | ... | register N (2) |
    FC 05 request = reply    | 05 | address(2) | FF00 = on, 0000 = off |
    FC 06 request = reply    | 06 | address(2) | value(2) |
    FC 15 request            | 0F | address(2) | quantity(2) | byte count | bits (as FC 01) |
    FC 16 request            | 10 | address(2) | quantity(2) | byte count = 2N | registers |
    FC 15/16 reply           | FC | address(2) | quantity(2) |
    exception reply          | FC | 0x80 | exception code |

RTU frame (serial line, frames delimited by >= 3.5 characters of silence)::

    | unit(1) | PDU (1..253) | CRC-16/MODBUS(2), low byte first |

MBAP frame (Modbus TCP, no CRC: TCP already checks)::

    | transaction id(2) | protocol id(2) = 0 | length(2) = 1 + len(PDU) | unit(1) | PDU |

Limits (devices.md §9): reads 1..125 registers, FC16 1..123 registers, reads 1..2000 bits, FC15 1..1968
coils. Unit 0 on RTU is the broadcast address (writes only, never answered); 1..247 are devices.

Choices where devices.md is [U]: on Modbus TCP the transaction id identifies a reply and the unit
byte of a reply is not checked (some TCP servers answer with unit 0 or 255); an RTU request with a
function code whose length is not known is accepted only when it is the whole buffered chunk.
"""

from __future__ import annotations

import enum
import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ChecksumError, DeviceRefused, ProtocolError
from drivers.link import Link

__all__ = [
    "EXCEPTION_TEXT",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_BITS",
    "MAX_WRITE_REGISTERS",
    "ExceptionReply",
    "Function",
    "MbapFrame",
    "MbapReplyDecoder",
    "MbapRequestDecoder",
    "ModbusClient",
    "Request",
    "RtuFrame",
    "RtuReplyDecoder",
    "RtuRequestDecoder",
    "check_write_reply",
    "crc16_modbus",
    "decode_bits_reply",
    "decode_registers_reply",
    "decode_request",
    "encode_bits_reply",
    "encode_mbap_frame",
    "encode_read_request",
    "encode_registers_reply",
    "encode_reply",
    "encode_rtu_frame",
    "encode_write_coil_request",
    "encode_write_coils_request",
    "encode_write_register_request",
    "encode_write_registers_request",
    "encode_write_reply",
    "pack_bits",
    "reply_pdu_length",
    "unpack_bits",
]


class Function(enum.IntEnum):
    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10


MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_READ_BITS = 2000
MAX_WRITE_BITS = 1968
MAX_RTU_UNIT = 247
MAX_TCP_UNIT = 255

EXCEPTION_TEXT: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

_BIT_READS = frozenset({0x01, 0x02})
_REGISTER_READS = frozenset({0x03, 0x04})
_READS = _BIT_READS | _REGISTER_READS
_ECHO_WRITES = frozenset({0x05, 0x06})
_MULTI_WRITES = frozenset({0x0F, 0x10})
_WRITES = _ECHO_WRITES | _MULTI_WRITES
_SUPPORTED = _READS | _WRITES
_COIL_ON = 0xFF00

_ADDR_QTY = struct.Struct(">BHH")  # FC, address, quantity (or value)
_MULTI_HEAD = struct.Struct(">BHHB")  # FC, address, quantity, byte count
_MBAP = struct.Struct(">HHHB")  # tid, protocol id, length, unit
_CRC = struct.Struct("<H")


# --- CRC -------------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF); it goes on the wire low byte first."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


# --- bits ------------------------------------------------------------------------------------------


def pack_bits(values: Sequence[bool]) -> bytes:
    """Coils into bytes the Modbus way: the first coil is the least significant bit of the first byte."""
    packed = 0
    for i, value in enumerate(values):
        if value:
            packed |= 1 << i
    return packed.to_bytes((len(values) + 7) // 8, "little")


def unpack_bits(data: bytes | bytearray | memoryview, count: int) -> list[bool]:
    packed = int.from_bytes(data, "little")
    return [bool(packed >> i & 1) for i in range(count)]


# --- validation (host role: refuse before anything reaches the wire) -------------------------------


def _check_address(address: int, count: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"Modbus address {address} outside 0..65535")
    if address + count > 0x10000:
        raise ValueError(f"Modbus address {address} + count {count} runs past 65535")


def _check_count(count: int, limit: int, what: str) -> None:
    if not 1 <= count <= limit:
        raise ValueError(f"{what} count {count} outside 1..{limit}")


def _check_register(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} outside 0..65535 (convert signed values first)")


# --- PDU, host role --------------------------------------------------------------------------------


def encode_read_request(function: int, address: int, count: int) -> bytes:
    """FC 01..04 request PDU."""
    if function in _REGISTER_READS:
        _check_count(count, MAX_READ_REGISTERS, "register read")
    elif function in _BIT_READS:
        _check_count(count, MAX_READ_BITS, "bit read")
    else:
        raise ValueError(f"function {function} is not a Modbus read (01..04)")
    _check_address(address, count)
    return _ADDR_QTY.pack(function, address, count)


def encode_write_coil_request(address: int, value: bool) -> bytes:
    _check_address(address, 1)
    return _ADDR_QTY.pack(0x05, address, _COIL_ON if value else 0)


def encode_write_register_request(address: int, value: int) -> bytes:
    _check_address(address, 1)
    _check_register(value)
    return _ADDR_QTY.pack(0x06, address, value)


def encode_write_coils_request(address: int, values: Sequence[bool]) -> bytes:
    count = len(values)
    _check_count(count, MAX_WRITE_BITS, "coil write")
    _check_address(address, count)
    data = pack_bits(values)
    return _MULTI_HEAD.pack(0x0F, address, count, len(data)) + data


def encode_write_registers_request(address: int, values: Sequence[int]) -> bytes:
    count = len(values)
    _check_count(count, MAX_WRITE_REGISTERS, "register write")
    _check_address(address, count)
    for value in values:
        _check_register(value)
    return _MULTI_HEAD.pack(0x10, address, count, 2 * count) + struct.pack(f">{count}H", *values)


def decode_registers_reply(pdu: bytes, count: int) -> list[int]:
    """Registers of an FC 03/04 reply PDU; a byte count that disagrees with `count` is a ProtocolError."""
    if len(pdu) != 2 + 2 * count or pdu[1] != 2 * count:
        raise ProtocolError(f"FC{pdu[0]:02X} reply has {len(pdu) - 2} data bytes, expected {2 * count}")
    return list(struct.unpack_from(f">{count}H", pdu, 2))


def decode_bits_reply(pdu: bytes, count: int) -> list[bool]:
    """Bits of an FC 01/02 reply PDU; bits past `count` in the last byte are padding."""
    nbytes = (count + 7) // 8
    if len(pdu) != 2 + nbytes or pdu[1] != nbytes:
        raise ProtocolError(f"FC{pdu[0]:02X} reply has {len(pdu) - 2} data bytes, expected {nbytes}")
    return unpack_bits(pdu[2:], count)


def check_write_reply(request_pdu: bytes, reply_pdu: bytes) -> None:
    """FC 05/06 echo the whole request; FC 15/16 echo its address and quantity."""
    expected = request_pdu if request_pdu[0] in _ECHO_WRITES else request_pdu[:5]
    if reply_pdu != expected:
        raise ProtocolError(f"write reply {reply_pdu.hex(' ')} does not echo {expected.hex(' ')}")


# --- PDU, device role ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """A Modbus exception: the device's well-formed "no" (`function` is the request's FC, < 0x80)."""

    function: int
    code: int

    @property
    def text(self) -> str:
        return EXCEPTION_TEXT.get(self.code, "unknown exception")

    def encode(self) -> bytes:
        return bytes((self.function | 0x80, self.code))

    @classmethod
    def decode(cls, pdu: bytes) -> ExceptionReply:
        if len(pdu) != 2 or not pdu[0] & 0x80:
            raise ProtocolError(f"not an exception reply: {pdu.hex(' ')}")
        return cls(pdu[0] & 0x7F, pdu[1])


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request as a device sees it.

    `count` is 1 for the single writes; `values` holds the registers (FC 06/16) or the coils as
    bools (FC 05/15), and is empty for reads.
    """

    function: int
    address: int
    count: int = 1
    values: tuple[int, ...] = ()

    @property
    def is_write(self) -> bool:
        return self.function in _WRITES

    def encode(self) -> bytes:
        """The host-role PDU for this request (validated as the client validates)."""
        fc = self.function
        if fc in _READS:
            return encode_read_request(fc, self.address, self.count)
        if fc == 0x05:
            return encode_write_coil_request(self.address, bool(self.values[0]))
        if fc == 0x06:
            return encode_write_register_request(self.address, self.values[0])
        if fc == 0x0F:
            return encode_write_coils_request(self.address, [bool(v) for v in self.values])
        if fc == 0x10:
            return encode_write_registers_request(self.address, self.values)
        raise ValueError(f"function {fc} is not supported")


def _illegal_value(fc: int) -> ExceptionReply:
    return ExceptionReply(fc, 0x03)


def decode_request(pdu: bytes) -> Request | ExceptionReply:
    """Parse a request PDU; what a device must refuse comes back as the `ExceptionReply` to send.

    Checks follow the order of the Modbus spec: function (01), then quantity/value/length (03),
    then the address space (02). Whether an address exists is the data model's business.
    """
    if not pdu:
        return ExceptionReply(0, 0x01)
    fc = pdu[0]
    if fc not in _SUPPORTED:
        return ExceptionReply(fc & 0x7F, 0x01)
    if fc in _READS or fc in _ECHO_WRITES:
        if len(pdu) != 5:
            return _illegal_value(fc)
        _, address, field = _ADDR_QTY.unpack(pdu)
        if fc == 0x05:
            if field not in (_COIL_ON, 0):
                return _illegal_value(fc)
            return Request(fc, address, 1, (field == _COIL_ON,))
        if fc == 0x06:
            return Request(fc, address, 1, (field,))
        limit = MAX_READ_REGISTERS if fc in _REGISTER_READS else MAX_READ_BITS
        if not 1 <= field <= limit:
            return _illegal_value(fc)
        if address + field > 0x10000:
            return ExceptionReply(fc, 0x02)
        return Request(fc, address, field)
    if len(pdu) < 6:
        return _illegal_value(fc)
    _, address, count, nbytes = _MULTI_HEAD.unpack_from(pdu)
    if fc == 0x0F:
        ok = 1 <= count <= MAX_WRITE_BITS and nbytes == (count + 7) // 8
    else:
        ok = 1 <= count <= MAX_WRITE_REGISTERS and nbytes == 2 * count
    if not ok or len(pdu) != 6 + nbytes:
        return _illegal_value(fc)
    if address + count > 0x10000:
        return ExceptionReply(fc, 0x02)
    if fc == 0x0F:
        return Request(fc, address, count, tuple(unpack_bits(pdu[6:], count)))
    return Request(fc, address, count, struct.unpack_from(f">{count}H", pdu, 6))


def encode_registers_reply(function: int, values: Sequence[int]) -> bytes:
    """FC 03/04 reply PDU."""
    n = len(values)
    return struct.pack(f">BB{n}H", function, 2 * n, *values)


def encode_bits_reply(function: int, values: Sequence[bool]) -> bytes:
    """FC 01/02 reply PDU."""
    data = pack_bits(values)
    return bytes((function, len(data))) + data


def encode_write_reply(request: Request) -> bytes:
    """FC 05/06 echo the request; FC 15/16 answer address and quantity."""
    fc = request.function
    if fc == 0x05:
        return _ADDR_QTY.pack(fc, request.address, _COIL_ON if request.values[0] else 0)
    if fc == 0x06:
        return _ADDR_QTY.pack(fc, request.address, request.values[0])
    return _ADDR_QTY.pack(fc, request.address, request.count)


def encode_reply(request: Request, values: Sequence[int] = ()) -> bytes:
    """The device's reply PDU: `values` are the registers or bits read (unused for writes)."""
    fc = request.function
    if fc in _REGISTER_READS:
        return encode_registers_reply(fc, values)
    if fc in _BIT_READS:
        return encode_bits_reply(fc, [bool(v) for v in values])
    return encode_write_reply(request)


# --- framing ---------------------------------------------------------------------------------------


class RtuFrame(NamedTuple):
    unit: int
    pdu: bytes


class MbapFrame(NamedTuple):
    tid: int
    unit: int
    pdu: bytes


def encode_rtu_frame(unit: int, pdu: bytes) -> bytes:
    body = bytes((unit,)) + pdu
    return body + _CRC.pack(crc16_modbus(body))


def encode_mbap_frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return _MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu


def reply_pdu_length(function: int, count: int) -> int:
    """Length of the normal reply PDU to a request: what the host can expect before any byte arrives."""
    if function in _REGISTER_READS:
        return 2 + 2 * count
    if function in _BIT_READS:
        return 2 + (count + 7) // 8
    return 5


def _check_reply_function(expected: int, got: int) -> None:
    if got != expected and got != expected | 0x80:
        raise ProtocolError(f"reply to FC{expected:02X} carries FC{got:02X}")


class RtuReplyDecoder:
    """Host role: one RTU reply to a known request (`unit`, `function`, `count`).

    The frame length comes from the reply's own header (exception: 5 bytes; reads: 5 + byte count;
    writes: 8) but never exceeds what our request can get back, so a corrupted header ends in a CRC
    error rather than a wait for bytes that never come. The CRC is checked before the unit and
    function, because nothing in a frame with a bad CRC can be trusted.
    """

    __slots__ = ("_buf", "_expected_len", "function", "unit")

    def __init__(self, unit: int, function: int, count: int = 1) -> None:
        self.unit = unit
        self.function = function
        self._expected_len = reply_pdu_length(function, count) + 3
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | NeedData:
        buf = self._buf
        if len(buf) < 5:  # the shortest reply: unit, FC|0x80, code, CRC
            return NEED_DATA
        fc = buf[1]
        if fc & 0x80:
            n = 5
        elif fc in _READS:
            n = min(5 + buf[2], self._expected_len)
        else:
            n = 8 if fc in _WRITES else self._expected_len
        if len(buf) < n:
            return NEED_DATA
        frame = bytes(buf[:n])
        buf.clear()
        if crc16_modbus(frame[:-2]) != _CRC.unpack_from(frame, n - 2)[0]:
            raise ChecksumError(f"RTU reply {frame.hex(' ')}: CRC mismatch")
        if frame[0] != self.unit:
            raise ProtocolError(f"RTU reply from unit {frame[0]}, expected unit {self.unit}")
        _check_reply_function(self.function, fc)
        return frame[1:-2]


class MbapReplyDecoder:
    """Host role: the MBAP reply with transaction id `tid`; late replies to earlier ids are skipped."""

    __slots__ = ("_buf", "function", "skipped", "tid")

    def __init__(self, tid: int, function: int) -> None:
        self.tid = tid
        self.function = function
        self.skipped = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | NeedData:
        buf = self._buf
        while len(buf) >= 7:
            tid, pid, length, _unit = _MBAP.unpack_from(buf)
            if pid != 0 or not 2 <= length <= 254:
                header = bytes(buf[:7])
                buf.clear()
                raise ProtocolError(f"MBAP header {header.hex(' ')}: protocol id {pid}, length {length}")
            end = 6 + length
            if len(buf) < end:
                return NEED_DATA
            pdu = bytes(buf[7:end])
            del buf[:end]
            if tid != self.tid:
                self.skipped += 1
                continue
            _check_reply_function(self.function, pdu[0])
            if pdu[0] & 0x80 and len(pdu) != 2:
                raise ProtocolError(f"MBAP exception reply {pdu.hex(' ')} is not 2 bytes")
            return pdu
        return NEED_DATA


# Device role: RTU has no length field, so the request length follows from the function code.
_RTU_REQUEST_LEN = {0x01: 8, 0x02: 8, 0x03: 8, 0x04: 8, 0x05: 8, 0x06: 8, 0x07: 4, 0x08: 8}
_RTU_REQUEST_LEN |= {0x0B: 4, 0x0C: 4, 0x11: 4, 0x16: 10, 0x18: 6, 0x2B: 7}
# FC: (offset of the byte count, frame length without the counted bytes)
_RTU_COUNTED_REQUEST = {0x0F: (6, 9), 0x10: (6, 9), 0x14: (2, 5), 0x15: (2, 5), 0x17: (10, 13)}


class RtuRequestDecoder:
    """Device role: requests out of a serial byte stream that may hold several, or garbage.

    A candidate frame whose CRC fails costs one byte and the scan starts again one byte later, so
    the decoder falls back into step with the host after line noise. A real device delimits frames
    by silence; its owner calls `clear` when the line has been quiet with a partial frame buffered.
    Frames for every unit are returned: deciding which unit answers is the bus's business.
    """

    __slots__ = ("_buf", "discarded_bytes")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        return len(self._buf)

    def clear(self) -> None:
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    def next_frame(self) -> RtuFrame | NeedData:
        buf = self._buf
        while len(buf) >= 4:  # the shortest request: unit, FC, CRC
            n = self._candidate_length(buf)
            if n is None:
                return NEED_DATA
            if len(buf) >= n and crc16_modbus(memoryview(buf)[: n - 2]) == _CRC.unpack_from(buf, n - 2)[0]:
                frame = RtuFrame(buf[0], bytes(buf[1 : n - 2]))
                del buf[:n]
                return frame
            del buf[0]
            self.discarded_bytes += 1
        return NEED_DATA

    @staticmethod
    def _candidate_length(buf: bytearray) -> int | None:
        """Frame length implied by the header; None when more bytes are needed to tell."""
        fc = buf[1]
        n = _RTU_REQUEST_LEN.get(fc)
        if n is not None:
            return n if len(buf) >= n else None
        counted = _RTU_COUNTED_REQUEST.get(fc)
        if counted is not None:
            offset, base = counted
            if len(buf) <= offset:
                return None
            n = base + buf[offset]
            return n if len(buf) >= n else None
        return len(buf)  # unknown function: only a whole chunk with a good CRC counts as a frame


class MbapRequestDecoder:
    """Device role: MBAP requests from a TCP stream; a bad header drops everything buffered."""

    __slots__ = ("_buf", "discarded_bytes")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> MbapFrame | NeedData:
        buf = self._buf
        if len(buf) < 7:
            return NEED_DATA
        tid, pid, length, unit = _MBAP.unpack_from(buf)
        if pid != 0 or not 2 <= length <= 254:
            self.discarded_bytes += len(buf)
            buf.clear()
            return NEED_DATA
        end = 6 + length
        if len(buf) < end:
            return NEED_DATA
        frame = MbapFrame(tid, unit, bytes(buf[7:end]))
        del buf[:end]
        return frame


# --- async client ----------------------------------------------------------------------------------


class ModbusClient:
    """Modbus master on a `Link`: RTU framing for rtu:// and rtu+tcp://, MBAP for tcp://.

    Several devices on one RS-485 bus share one Link (and may share one client); the link
    serialises their requests. `timeout_s` is the device's own answer time; the wire time of
    request and reply is added on serial links.
    """

    def __init__(self, link: Link, *, timeout_s: float = 1.0) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self._rtu = link.endpoint.rtu_framing
        self._tids = itertools.count(1)

    async def read_holding_registers(self, unit: int, address: int, count: int) -> list[int]:
        pdu = await self._request(unit, encode_read_request(0x03, address, count), count)
        return decode_registers_reply(pdu, count)

    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        pdu = await self._request(unit, encode_read_request(0x04, address, count), count)
        return decode_registers_reply(pdu, count)

    async def read_coils(self, unit: int, address: int, count: int) -> list[bool]:
        pdu = await self._request(unit, encode_read_request(0x01, address, count), count)
        return decode_bits_reply(pdu, count)

    async def read_discrete_inputs(self, unit: int, address: int, count: int) -> list[bool]:
        pdu = await self._request(unit, encode_read_request(0x02, address, count), count)
        return decode_bits_reply(pdu, count)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        await self._write(unit, encode_write_register_request(address, value))

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        await self._write(unit, encode_write_registers_request(address, values))

    async def write_coil(self, unit: int, address: int, value: bool) -> None:
        await self._write(unit, encode_write_coil_request(address, value))

    async def write_coils(self, unit: int, address: int, values: Sequence[bool]) -> None:
        await self._write(unit, encode_write_coils_request(address, values))

    async def _write(self, unit: int, request: bytes) -> None:
        if unit == 0 and self._rtu:  # broadcast: every device obeys, none answers
            await self.link.send_only(encode_rtu_frame(0, request))
            return
        check_write_reply(request, await self._request(unit, request, 1))

    async def _request(self, unit: int, request: bytes, count: int) -> bytes:
        link = self.link
        fc = request[0]
        if self._rtu:
            if not 1 <= unit <= MAX_RTU_UNIT:
                raise ValueError(f"RTU unit {unit} outside 1..{MAX_RTU_UNIT} (0 is broadcast, writes only)")
            frame = encode_rtu_frame(unit, request)
            decoder: RtuReplyDecoder | MbapReplyDecoder = RtuReplyDecoder(unit, fc, count)
            wire_chars = len(frame) + reply_pdu_length(fc, count) + 3 + 7  # + two t3.5 silences
            timeout_s = self.timeout_s + wire_chars * link.char_time_s
        else:
            if not 0 <= unit <= MAX_TCP_UNIT:
                raise ValueError(f"Modbus TCP unit {unit} outside 0..{MAX_TCP_UNIT}")
            tid = next(self._tids) & 0xFFFF
            frame = encode_mbap_frame(tid, unit, request)
            decoder = MbapReplyDecoder(tid, fc)
            timeout_s = self.timeout_s
        reply = await link.transact(frame, decoder, timeout_s)
        if reply[0] & 0x80:
            code = reply[1]
            raise DeviceRefused(f"{link.name}/{unit}", f"{code:02X}", EXCEPTION_TEXT.get(code, "unknown"))
        return reply
