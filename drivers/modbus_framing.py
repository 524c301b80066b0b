"""Modbus framing: RTU frames with their CRC-16, MBAP frames for Modbus TCP, and the frame decoders
of both roles (host: one reply to a known request; device: requests out of a byte stream).

Pure codec, sans I/O: feed bytes, pull a frame or `NEED_DATA`. The PDU inside is modbus_pdu.py's.

RTU frame (serial line, frames delimited by >= 3.5 characters of silence)::

    | unit(1) | PDU (1..253) | CRC-16/MODBUS(2), low byte first |

MBAP frame (Modbus TCP, no CRC: TCP already checks)::

    | transaction id(2) | protocol id(2) = 0 | length(2) = 1 + len(PDU) | unit(1) | PDU |

Unit 0 on RTU is the broadcast address (writes only, never answered); 1..247 are devices.

Choices where devices.md is [U]: on Modbus TCP the transaction id identifies a reply and the unit
byte of a reply is not checked (some TCP servers answer with unit 0 or 255); an RTU request with a
function code whose length is not known is accepted only when it is the whole buffered chunk.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ChecksumError, ProtocolError
from drivers.modbus_pdu import READ_FUNCTIONS, WRITE_FUNCTIONS, device_id_reply_length, reply_pdu_length

__all__ = [
    "MbapFrame",
    "MbapReplyDecoder",
    "MbapRequestDecoder",
    "RtuFrame",
    "RtuReplyDecoder",
    "RtuRequestDecoder",
    "crc16_modbus",
    "encode_mbap_frame",
    "encode_rtu_frame",
]

MAX_RTU_UNIT = 247
MAX_TCP_UNIT = 255

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


# --- frames ----------------------------------------------------------------------------------------


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


def _check_reply_function(expected: int, got: int) -> None:
    if got != expected and got != expected | 0x80:
        raise ProtocolError(f"reply to FC{expected:02X} carries FC{got:02X}")


class RtuReplyDecoder:
    """Host role: one RTU reply to a known request (`unit`, `function`, `count`).

    The frame length comes from the reply's own header (exception: 5 bytes; reads: 5 + byte count;
    writes: 8; device identification: its objects' lengths) but never exceeds what our request can
    get back, so a corrupted header ends in a CRC error rather than a wait for bytes that never come.
    The CRC is checked before the unit and function, because nothing in a frame with a bad CRC can be
    trusted. `count` is what `reply_pdu_length` takes (registers, bits, or FC 08 data bytes).
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
        n = self._frame_length(buf)
        if n is None or len(buf) < n:
            return NEED_DATA
        frame = bytes(buf[:n])
        buf.clear()
        if crc16_modbus(frame[:-2]) != _CRC.unpack_from(frame, n - 2)[0]:
            raise ChecksumError(f"RTU reply {frame.hex(' ')}: CRC mismatch")
        if frame[0] != self.unit:
            raise ProtocolError(f"RTU reply from unit {frame[0]}, expected unit {self.unit}")
        _check_reply_function(self.function, frame[1])
        return frame[1:-2]

    def _frame_length(self, buf: bytearray) -> int | None:
        fc = buf[1]
        if fc & 0x80:
            return 5
        if fc in READ_FUNCTIONS:
            return min(5 + buf[2], self._expected_len)
        if fc in WRITE_FUNCTIONS:
            return 8
        if fc == 0x2B and self.function == 0x2B:
            pdu_len = device_id_reply_length(buf[1:])
            return None if pdu_len is None else min(pdu_len + 3, self._expected_len)
        return self._expected_len


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
