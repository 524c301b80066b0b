"""The Modbus PDU in both roles: function codes, requests, replies, exception replies, bit packing.

The host role (``encode_*_request`` / ``decode_*_reply``) builds requests and checks replies; the
device role (`decode_request`, ``encode_*_reply``) is what `sim_hardware.modbus_device` serves, so
both sides share one definition of the wire. Pure codec: no I/O, no framing (modbus_framing.py wraps
the PDU for RTU or TCP, modbus.py is the client that sends it).

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

Limits (devices.md §9): reads 1..125 registers, FC16 1..123 registers, reads 1..2000 bits, FC15 1..1968
coils.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import ProtocolError

__all__ = [
    "EXCEPTION_TEXT",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_BITS",
    "MAX_WRITE_REGISTERS",
    "ExceptionReply",
    "Function",
    "Request",
    "check_write_reply",
    "decode_bits_reply",
    "decode_registers_reply",
    "decode_request",
    "encode_bits_reply",
    "encode_read_request",
    "encode_registers_reply",
    "encode_reply",
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
READ_FUNCTIONS = _BIT_READS | _REGISTER_READS
_ECHO_WRITES = frozenset({0x05, 0x06})
_MULTI_WRITES = frozenset({0x0F, 0x10})
WRITE_FUNCTIONS = _ECHO_WRITES | _MULTI_WRITES
_SUPPORTED = READ_FUNCTIONS | WRITE_FUNCTIONS
_COIL_ON = 0xFF00

_ADDR_QTY = struct.Struct(">BHH")  # FC, address, quantity (or value)
_MULTI_HEAD = struct.Struct(">BHHB")  # FC, address, quantity, byte count


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


def reply_pdu_length(function: int, count: int) -> int:
    """Length of the normal reply PDU to a request: what the host can expect before any byte arrives."""
    if function in _REGISTER_READS:
        return 2 + 2 * count
    if function in _BIT_READS:
        return 2 + (count + 7) // 8
    return 5


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
        return self.function in WRITE_FUNCTIONS

    def encode(self) -> bytes:
        """The host-role PDU for this request (validated as the client validates)."""
        fc = self.function
        if fc in READ_FUNCTIONS:
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
    if fc in READ_FUNCTIONS or fc in _ECHO_WRITES:
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
