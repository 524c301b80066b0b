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
    FC 07 request / reply    | 07 |  /  | 07 | status byte (eight device-specific bits) |
    FC 08 request = reply    | 08 | sub-function(2) | data (N x 2) |   (sub-function 0000: loopback)
    FC 43/14 request         | 2B | 0E | read code | object id |
    FC 43/14 reply           | 2B | 0E | read code | conformity | more follows | next id | count |
                             |    object id | length | value ... | (count times)
    exception reply          | FC | 0x80 | exception code |

Limits (devices.md §9): reads 1..125 registers, FC16 1..123 registers, reads 1..2000 bits, FC15 1..1968
coils; a PDU is at most 253 bytes, which is what splits a long device identification into several
transactions ("more follows", Modbus Application Protocol V1.1b3 §6.21).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from drivers.errors import ProtocolError

__all__ = [
    "COIL_ON_VALUES",
    "DIAGNOSTIC_RETURN_QUERY_DATA",
    "EXCEPTION_TEXT",
    "MAX_PDU",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_BITS",
    "MAX_WRITE_REGISTERS",
    "MEI_DEVICE_IDENTIFICATION",
    "AnyRequest",
    "DeviceIdReply",
    "DeviceIdRequest",
    "DiagnosticRequest",
    "ExceptionReply",
    "ExceptionStatusRequest",
    "Function",
    "ReadDeviceIdCode",
    "Request",
    "check_diagnostic_reply",
    "check_write_reply",
    "decode_bits_reply",
    "decode_device_id_reply",
    "decode_exception_status_reply",
    "decode_registers_reply",
    "decode_request",
    "device_id_reply_length",
    "encode_bits_reply",
    "encode_device_id_reply",
    "encode_exception_status_reply",
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
    READ_EXCEPTION_STATUS = 0x07
    DIAGNOSTICS = 0x08
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10
    ENCAPSULATED_INTERFACE = 0x2B


class ReadDeviceIdCode(enum.IntEnum):
    """FC 43/14 access types: three stream levels, or one object by id (individual access)."""

    BASIC = 0x01
    REGULAR = 0x02
    EXTENDED = 0x03
    SPECIFIC = 0x04


MEI_DEVICE_IDENTIFICATION = 0x0E
DIAGNOSTIC_RETURN_QUERY_DATA = 0x0000
MAX_PDU = 253
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
_SERIAL_LINE = frozenset({0x07, 0x08})
_SUPPORTED = READ_FUNCTIONS | WRITE_FUNCTIONS | _SERIAL_LINE | {0x2B}
_COIL_ON = 0xFF00
COIL_ON_VALUES = frozenset({_COIL_ON})
"""What the Modbus spec accepts as "on" in FC 05; a Eurotherm also takes 0100 (HA026230 §3.15)."""

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


def decode_exception_status_reply(pdu: bytes) -> int:
    """The eight exception-status bits of an FC 07 reply (their meaning is the device's own)."""
    if len(pdu) != 2:
        raise ProtocolError(f"FC07 reply {pdu.hex(' ')} is not one status byte")
    return pdu[1]


def check_diagnostic_reply(request_pdu: bytes, reply_pdu: bytes) -> None:
    """FC 08 echoes the sub-function; "return query data" (0000) echoes the whole request."""
    same_sub = reply_pdu[:3] == request_pdu[:3]
    loopback = request_pdu[1:3] == b"\x00\x00"
    if not same_sub or (loopback and reply_pdu != request_pdu):
        raise ProtocolError(f"diagnostic reply {reply_pdu.hex(' ')} does not echo {request_pdu.hex(' ')}")


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
    """Length of the normal reply PDU to a request: what the host can expect before any byte arrives.

    `count` is the registers or bits read, or for FC 08 the data bytes sent; an FC 43/14 reply carries
    its own object lengths, so only its upper bound is known (`device_id_reply_length` reads the rest).
    """
    if function in _REGISTER_READS:
        return 2 + 2 * count
    if function in _BIT_READS:
        return 2 + (count + 7) // 8
    if function == 0x07:
        return 2
    if function == 0x08:
        return 3 + count
    if function == 0x2B:
        return MAX_PDU
    return 5


def device_id_reply_length(pdu: bytes | bytearray | memoryview) -> int | None:
    """Length of the FC 43/14 reply PDU that `pdu` begins, or None until its object headers are in.

    RTU frames carry no length: a host finds the CRC only by walking the objects' length bytes. The
    result may exceed what has arrived (then wait for the rest); it is never checked against 253 here.
    """
    if len(pdu) < 7:
        return None
    end = 7
    for _ in range(pdu[6]):
        if len(pdu) < end + 2:
            return None
        end += 2 + pdu[end + 1]
    return end


@dataclass(frozen=True, slots=True)
class DeviceIdReply:
    """An FC 43/14 reply: some identification objects, and where to continue if they did not all fit."""

    read_code: int
    conformity: int
    more_follows: bool
    next_object_id: int
    objects: tuple[tuple[int, bytes], ...]

    def encode(self) -> bytes:
        head = bytes(
            (
                0x2B,
                MEI_DEVICE_IDENTIFICATION,
                self.read_code,
                self.conformity,
                0xFF if self.more_follows else 0x00,
                self.next_object_id,
                len(self.objects),
            )
        )
        return head + b"".join(bytes((oid, len(value))) + value for oid, value in self.objects)


def decode_device_id_reply(pdu: bytes) -> DeviceIdReply:
    """Parse an FC 43/14 reply PDU; anything the spec does not allow is a ProtocolError."""
    if len(pdu) < 7 or pdu[0] != 0x2B or pdu[1] != MEI_DEVICE_IDENTIFICATION:
        raise ProtocolError(f"not a read-device-identification reply: {pdu.hex(' ')}")
    if device_id_reply_length(pdu) != len(pdu) or pdu[4] not in (0x00, 0xFF):
        raise ProtocolError(f"malformed read-device-identification reply: {pdu.hex(' ')}")
    objects: list[tuple[int, bytes]] = []
    at = 7
    for _ in range(pdu[6]):
        length = pdu[at + 1]
        objects.append((pdu[at], pdu[at + 2 : at + 2 + length]))
        at += 2 + length
    return DeviceIdReply(pdu[2], pdu[3], pdu[4] == 0xFF, pdu[5], tuple(objects))


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
    echo: bytes = field(default=b"", compare=False)
    """FC 05/06: the request PDU as received, which the reply repeats byte for byte."""

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


@dataclass(frozen=True, slots=True)
class ExceptionStatusRequest:
    """FC 07, read exception status: no fields; the device answers one byte of its own status bits."""

    function = 0x07

    def encode(self) -> bytes:
        return bytes((self.function,))


@dataclass(frozen=True, slots=True)
class DiagnosticRequest:
    """FC 08: a sub-function and its data (whole registers); sub-function 0 is the loopback."""

    subfunction: int
    data: bytes = b""
    function = 0x08

    def encode(self) -> bytes:
        if not 0 <= self.subfunction <= 0xFFFF:
            raise ValueError(f"diagnostic sub-function {self.subfunction} outside 0..65535")
        if len(self.data) % 2 or len(self.data) > MAX_PDU - 3:
            raise ValueError(f"diagnostic data of {len(self.data)} bytes: whole registers, at most 250 bytes")
        return struct.pack(">BH", self.function, self.subfunction) + self.data


@dataclass(frozen=True, slots=True)
class DeviceIdRequest:
    """FC 43/14: a stream of objects from `object_id` (read codes 1..3), or that one object (code 4)."""

    read_code: int
    object_id: int = 0
    function = 0x2B

    def encode(self) -> bytes:
        if self.read_code not in tuple(ReadDeviceIdCode):
            raise ValueError(f"read device id code {self.read_code} is not 1..4")
        if not 0 <= self.object_id <= 0xFF:
            raise ValueError(f"device identification object id {self.object_id} outside 0..255")
        return bytes((self.function, MEI_DEVICE_IDENTIFICATION, self.read_code, self.object_id))


AnyRequest = Request | ExceptionStatusRequest | DiagnosticRequest | DeviceIdRequest


def _illegal_value(fc: int) -> ExceptionReply:
    return ExceptionReply(fc, 0x03)


def decode_request(pdu: bytes, *, coil_on: frozenset[int] = COIL_ON_VALUES) -> AnyRequest | ExceptionReply:
    """Parse a request PDU; what a device must refuse comes back as the `ExceptionReply` to send.

    Checks follow the order of the Modbus spec: function (01), then quantity/value/length (03),
    then the address space (02). Whether an address exists is the data model's business. `coil_on`
    is what this device takes as "on" in FC 05 (0000 is always "off").
    """
    if not pdu:
        return ExceptionReply(0, 0x01)
    fc = pdu[0]
    if fc not in _SUPPORTED:
        return ExceptionReply(fc & 0x7F, 0x01)
    if fc in READ_FUNCTIONS or fc in _ECHO_WRITES:
        return _decode_addressed(pdu, coil_on)
    if fc == 0x07:
        return ExceptionStatusRequest() if len(pdu) == 1 else _illegal_value(fc)
    if fc == 0x08:
        if len(pdu) < 3 or (len(pdu) - 3) % 2:
            return _illegal_value(fc)
        return DiagnosticRequest(struct.unpack_from(">H", pdu, 1)[0], pdu[3:])
    if fc == 0x2B:
        return _decode_device_id(pdu)
    return _decode_multi_write(pdu)


def _decode_addressed(pdu: bytes, coil_on: frozenset[int]) -> Request | ExceptionReply:
    """FC 01..06: address and one more field (quantity, coil state or register value)."""
    fc = pdu[0]
    if len(pdu) != 5:
        return _illegal_value(fc)
    _, address, value = _ADDR_QTY.unpack(pdu)
    if fc == 0x05:
        if value != 0 and value not in coil_on:
            return _illegal_value(fc)
        return Request(fc, address, 1, (value != 0,), echo=pdu)
    if fc == 0x06:
        return Request(fc, address, 1, (value,), echo=pdu)
    limit = MAX_READ_REGISTERS if fc in _REGISTER_READS else MAX_READ_BITS
    if not 1 <= value <= limit:
        return _illegal_value(fc)
    if address + value > 0x10000:
        return ExceptionReply(fc, 0x02)
    return Request(fc, address, value)


def _decode_device_id(pdu: bytes) -> DeviceIdRequest | ExceptionReply:
    """FC 43: only MEI type 14 (device identification) exists here; a bad read code is 03 (§6.21)."""
    if len(pdu) >= 2 and pdu[1] != MEI_DEVICE_IDENTIFICATION:
        return ExceptionReply(0x2B, 0x01)
    if len(pdu) != 4 or pdu[2] not in tuple(ReadDeviceIdCode):
        return _illegal_value(0x2B)
    return DeviceIdRequest(pdu[2], pdu[3])


def _decode_multi_write(pdu: bytes) -> Request | ExceptionReply:
    fc = pdu[0]
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


def encode_exception_status_reply(status: int) -> bytes:
    """FC 07 reply PDU: the device's eight exception-status bits."""
    return bytes((0x07, status & 0xFF))


def encode_bits_reply(function: int, values: Sequence[bool]) -> bytes:
    """FC 01/02 reply PDU."""
    data = pack_bits(values)
    return bytes((function, len(data))) + data


def encode_write_reply(request: Request) -> bytes:
    """FC 05/06 echo the request; FC 15/16 answer address and quantity."""
    fc = request.function
    if fc in _ECHO_WRITES and request.echo:
        return request.echo
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


# --- FC 43/14, device role --------------------------------------------------------------------------

_STREAM_LAST_ID = {
    ReadDeviceIdCode.BASIC: 0x02,
    ReadDeviceIdCode.REGULAR: 0x7F,
    ReadDeviceIdCode.EXTENDED: 0xFF,
}


def encode_device_id_reply(request: DeviceIdRequest, objects: Mapping[int, bytes], conformity: int) -> bytes:
    """What a device with these identification objects answers (Modbus Application Protocol §6.21).

    `conformity` is 01/02/03 (basic/regular/extended, stream access) plus 0x80 when single objects
    may be read too. A stream asked above the device's level gets the device's level; a stream
    starting at an unknown object restarts at object 0; a single unknown object is exception 02 and
    single access on a stream-only device is 03. Objects that do not fit one 253-byte PDU are left
    for the next transaction ("more follows" and the next object id).
    """
    if request.read_code == ReadDeviceIdCode.SPECIFIC:
        if not conformity & 0x80:
            return ExceptionReply(0x2B, 0x03).encode()
        if request.object_id not in objects or request.object_id > _STREAM_LAST_ID[_level(conformity)]:
            return ExceptionReply(0x2B, 0x02).encode()
        single = ((request.object_id, objects[request.object_id]),)
        return DeviceIdReply(request.read_code, conformity, False, 0, single).encode()
    level = min(ReadDeviceIdCode(request.read_code), _level(conformity))
    ids = sorted(i for i in objects if i <= _STREAM_LAST_ID[level])
    start = ids.index(request.object_id) if request.object_id in ids else 0
    sent: list[tuple[int, bytes]] = []
    size = 7
    for oid in ids[start:]:
        if size + 2 + len(objects[oid]) > MAX_PDU:
            return DeviceIdReply(request.read_code, conformity, True, oid, tuple(sent)).encode()
        sent.append((oid, objects[oid]))
        size += 2 + len(objects[oid])
    return DeviceIdReply(request.read_code, conformity, False, 0, tuple(sent)).encode()


def _level(conformity: int) -> ReadDeviceIdCode:
    return ReadDeviceIdCode(conformity & 0x7F)
