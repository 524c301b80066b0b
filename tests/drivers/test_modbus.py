"""Modbus core: golden frames from devices.md, both roles, framing, and the client over real endpoints."""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from drivers.codec import NEED_DATA
from drivers.errors import ChecksumError, DeviceRefused, DeviceTimeout, LinkDown, ProtocolError
from drivers.link import Link
from drivers.modbus import DeviceIdentification, ModbusClient
from drivers.modbus_framing import (
    MbapFrame,
    MbapReplyDecoder,
    MbapRequestDecoder,
    RtuFrame,
    RtuReplyDecoder,
    RtuRequestDecoder,
    crc16_modbus,
    encode_mbap_frame,
    encode_rtu_frame,
)
from drivers.modbus_pdu import (
    DeviceIdReply,
    DeviceIdRequest,
    DiagnosticRequest,
    ExceptionReply,
    ExceptionStatusRequest,
    Request,
    check_diagnostic_reply,
    check_write_reply,
    decode_bits_reply,
    decode_device_id_reply,
    decode_exception_status_reply,
    decode_registers_reply,
    decode_request,
    encode_read_request,
    encode_reply,
    encode_write_coil_request,
    encode_write_coils_request,
    encode_write_register_request,
    encode_write_registers_request,
    pack_bits,
    unpack_bits,
)
from drivers.transport import SerialSettings
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint
from sim_hardware.modbus_device import ModbusRtuSession, ModbusTcpSession, ModbusUnit, Table

H = bytes.fromhex


def float_regs_lsw_first(value: float) -> list[int]:
    """Vaisala float32: bytes big-endian inside each register, least significant word first."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi]


def float_regs_msw_first(value: float) -> list[int]:
    """Eurotherm float32: most significant word first."""
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def vaisala(unit_id: int) -> ModbusUnit:
    unit = ModbusUnit(
        unit_id, coils=[range(0, 8)], holding_registers=[range(0x0000, 0x0030), range(0x0100, 0x0110)]
    )
    unit.set_registers("holding_registers", 0x0008, float_regs_lsw_first(-60.0))
    unit.set_registers("holding_registers", 0x0014, float_regs_lsw_first(10.68))
    return unit


def eurotherm(unit_id: int) -> ModbusUnit:
    """A 3216-style controller: integer region, float region at 0x8000 + 2n; no FC15 (HA026230)."""
    unit = ModbusUnit(
        unit_id,
        coils=[range(0, 16)],
        discrete_inputs=[range(0, 16)],
        holding_registers=[range(0, 600), range(0x8000, 0x8000 + 2 * 600)],
        input_registers=[range(0, 16)],
        functions=frozenset({1, 2, 3, 4, 5, 6, 16}),
    )
    return unit


def bus() -> dict[int, ModbusUnit]:
    units = {240: vaisala(240), 241: vaisala(241), 1: eurotherm(1), 2: eurotherm(2)}
    units[241].set_registers("holding_registers", 0x0014, float_regs_lsw_first(3.5))
    units[2].set_registers("holding_registers", 1, [18, 22])
    units[1].set_registers("holding_registers", 0x8002, float_regs_msw_first(250.0))
    return units


# --- CRC and golden frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "wire_crc"),
    [("01 03 00 00 00 0A", "C5 CD"), ("02 03 00 01 00 02", "95 F8"), ("F0 03 00 08 00 02", "50 E8")],
)
def test_crc16_modbus_vectors(body: str, wire_crc: str) -> None:
    crc = crc16_modbus(H(body))
    assert crc.to_bytes(2, "little") == H(wire_crc)
    assert encode_rtu_frame(H(body)[0], H(body)[1:]) == H(body) + H(wire_crc)


@dataclass(frozen=True)
class ReadGolden:
    name: str
    unit: int
    function: int
    address: int
    count: int
    request: str
    reply: str
    registers: list[int]


READ_GOLDEN = [
    ReadGolden(
        "vaisala Td/f -60.0",
        240,
        3,
        0x0008,
        2,
        "F0 03 00 08 00 02 50 E8",
        "F0 03 04 00 00 C2 70 4A 78",
        float_regs_lsw_first(-60.0),
    ),
    ReadGolden(
        "vaisala H2O 10.68",
        240,
        3,
        0x0014,
        2,
        "F0 03 00 14 00 02 91 2E",
        "F0 03 04 E1 48 41 2A 1D 59",
        float_regs_lsw_first(10.68),
    ),
    ReadGolden(
        "eurotherm PV+SP int", 2, 3, 1, 2, "02 03 00 01 00 02 95 F8", "02 03 04 00 12 00 16 E8 F8", [18, 22]
    ),
    ReadGolden(
        "eurotherm PV float 250.0",
        1,
        3,
        0x8002,
        2,
        "01 03 80 02 00 02 4C 0B",
        "01 03 04 43 7A 00 00 CE 6E",
        float_regs_msw_first(250.0),
    ),
]


@pytest.mark.parametrize("g", READ_GOLDEN, ids=lambda g: g.name)
def test_golden_read_host_role(g: ReadGolden) -> None:
    request = encode_rtu_frame(g.unit, encode_read_request(g.function, g.address, g.count))
    assert request == H(g.request)
    decoder = RtuReplyDecoder(g.unit, g.function, g.count)
    decoder.feed(H(g.reply))
    pdu = decoder.next_frame()
    assert isinstance(pdu, bytes)
    assert decode_registers_reply(pdu, g.count) == g.registers


@pytest.mark.parametrize("g", READ_GOLDEN, ids=lambda g: g.name)
def test_golden_read_device_role(g: ReadGolden) -> None:
    decoder = RtuRequestDecoder()
    decoder.feed(H(g.request))
    frame = decoder.next_frame()
    assert frame == RtuFrame(g.unit, H(g.request)[1:-2])
    assert isinstance(frame, RtuFrame)
    request = decode_request(frame.pdu)
    assert request == Request(g.function, g.address, g.count)
    assert isinstance(request, Request)
    assert encode_rtu_frame(g.unit, encode_reply(request, g.registers)) == H(g.reply)
    # and the simulated bus answers the golden request with exactly the golden reply
    assert ModbusRtuSession(bus()).receive(H(g.request)) == H(g.reply)


def test_golden_eurotherm_writes_and_exception() -> None:
    sp_int = H("01 06 00 02 0B B8 2F 48")
    assert encode_rtu_frame(1, encode_write_register_request(2, 3000)) == sp_int
    sp_float = H("01 10 80 04 00 02 04 43 96 00 00 66 32")
    assert (
        encode_rtu_frame(1, encode_write_registers_request(0x8004, float_regs_msw_first(300.0))) == sp_float
    )
    units = bus()
    session = ModbusRtuSession(units)
    assert session.receive(sp_int) == sp_int  # FC06 reply echoes the request
    assert units[1].get_registers("holding_registers", 2, 1) == [3000]
    assert session.receive(sp_float) == H("01 10 80 04 00 02 29 C9")
    assert units[1].get_registers("holding_registers", 0x8004, 2) == float_regs_msw_first(300.0)
    # host role: the FC16 reply decodes and echoes address and quantity
    decoder = RtuReplyDecoder(1, 0x10)
    decoder.feed(H("01 10 80 04 00 02 29 C9"))
    pdu = decoder.next_frame()
    assert isinstance(pdu, bytes)
    check_write_reply(sp_float[1:-2], pdu)
    # exception 02: an address the unit does not have
    assert session.receive(encode_rtu_frame(1, encode_read_request(3, 0x4000, 1))) == H("01 83 02 C0 F1")
    decoder = RtuReplyDecoder(1, 0x03, 1)
    decoder.feed(H("01 83 02 C0 F1"))
    pdu = decoder.next_frame()
    assert isinstance(pdu, bytes)
    assert ExceptionReply.decode(pdu) == ExceptionReply(3, 2)


# --- PDU round trips and the Modbus spec's own examples --------------------------------------------

ROUND_TRIPS = [
    Request(0x01, 19, 19),
    Request(0x02, 196, 22),
    Request(0x03, 107, 3),
    Request(0x04, 8, 1),
    Request(0x03, 0, 125),
    Request(0x01, 0, 2000),
    Request(0x05, 172, 1, (True,)),
    Request(0x05, 0, 1, (False,)),
    Request(0x06, 1, 1, (3,)),
    Request(0x0F, 19, 10, (True, False, True, True, False, False, True, True, True, False)),
    Request(0x0F, 0, 1968, tuple(i % 3 == 0 for i in range(1968))),
    Request(0x10, 1, 2, (0x000A, 0x0102)),
    Request(0x10, 65535 - 122, 123, tuple(range(123))),
]


@pytest.mark.parametrize("request_", ROUND_TRIPS, ids=lambda r: f"fc{r.function:02d}-{r.count}")
def test_request_round_trip_both_roles(request_: Request) -> None:
    pdu = request_.encode()
    assert decode_request(pdu) == request_
    # through RTU and MBAP framing, in the device role
    rtu = RtuRequestDecoder()
    rtu.feed(encode_rtu_frame(7, pdu))
    assert rtu.next_frame() == RtuFrame(7, pdu)
    mbap = MbapRequestDecoder()
    mbap.feed(encode_mbap_frame(0x1234, 7, pdu))
    assert mbap.next_frame() == MbapFrame(0x1234, 7, pdu)


@pytest.mark.parametrize("request_", ROUND_TRIPS, ids=lambda r: f"fc{r.function:02d}-{r.count}")
def test_reply_round_trip_both_roles(request_: Request) -> None:
    fc, count = request_.function, request_.count
    values = (
        [(i * 7919) & 0xFFFF for i in range(count)] if fc in (3, 4) else [i % 5 == 1 for i in range(count)]
    )
    reply = encode_reply(request_, values)
    rtu = RtuReplyDecoder(9, fc, count)
    rtu.feed(encode_rtu_frame(9, reply))
    assert rtu.next_frame() == reply
    if fc in (3, 4):
        assert decode_registers_reply(reply, count) == values
    elif fc in (1, 2):
        assert decode_bits_reply(reply, count) == values
    else:
        check_write_reply(request_.encode(), reply)


def test_coil_bit_order_follows_the_modbus_spec() -> None:
    # Modbus spec FC01 example: coils 20..38 -> CD 6B 05; coil 20 is the LSB of the first byte
    bits = unpack_bits(H("CD 6B 05"), 19)
    assert bits[:8] == [True, False, True, True, False, False, True, True]
    assert pack_bits(bits) == H("CD 6B 05")
    assert decode_bits_reply(H("01 03 CD 6B 05"), 19) == bits
    # FC15 example: 10 coils from address 19 (coil 20) -> 0F 00 13 00 0A 02 CD 01
    coils = [True, False, True, True, False, False, True, True, True, False]
    assert encode_write_coils_request(19, coils) == H("0F 00 13 00 0A 02 CD 01")
    # FC16 example: 2 registers from address 1
    assert encode_write_registers_request(1, [0x000A, 0x0102]) == H("10 00 01 00 02 04 00 0A 01 02")
    assert encode_write_coil_request(172, True) == H("05 00 AC FF 00")


@pytest.mark.parametrize(
    ("call", "limit"),
    [
        (lambda: encode_read_request(3, 0, 126), "1..125"),
        (lambda: encode_read_request(4, 0, 0), "1..125"),
        (lambda: encode_read_request(1, 0, 2001), "1..2000"),
        (lambda: encode_write_registers_request(0, [0] * 124), "1..123"),
        (lambda: encode_write_registers_request(0, []), "1..123"),
        (lambda: encode_write_coils_request(0, [True] * 1969), "1..1968"),
        (lambda: encode_write_register_request(0, 70000), "0..65535"),
        (lambda: encode_write_registers_request(0, [-1]), "0..65535"),
        (lambda: encode_read_request(3, 65535, 2), "65535"),
        (lambda: encode_read_request(3, -1, 1), "0..65535"),
        (lambda: encode_read_request(7, 0, 1), "01..04"),
    ],
)
def test_host_refuses_out_of_limit_requests(call: Callable[[], object], limit: str) -> None:
    with pytest.raises(ValueError, match=re.escape(limit)):
        call()


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        ("05 00 01 12 34", 3),  # FC05 value neither FF00 nor 0000
        ("03 00 00 00 00", 3),  # zero count
        ("03 00 00 00 7E", 3),  # 126 registers
        ("01 00 00 07 D1", 3),  # 2001 bits
        ("10 00 00 00 02 02 00 01", 3),  # byte count disagrees with quantity
        ("10 00 00 00 7C F8", 3),  # 124 registers
        ("0F 00 00 00 0A 01 FF", 3),  # 10 coils need 2 bytes
        ("03 00 00", 3),  # truncated
        ("03 FF FF 00 02", 2),  # runs past 65535
        ("2B 0D 01 00", 1),  # MEI type 13 (CANopen): only 14, device identification, exists here
        ("2B 0E 05 00", 3),  # read device id code 05: "exception code 03 ... if illegal" (§6.21)
        ("2B 0E 01", 3),  # truncated
        ("07 00", 3),  # FC 07 has no fields
        ("08 00 00 12", 3),  # FC 08 data is whole registers
        ("11", 1),  # report server id: not a function this codec serves
    ],
)
def test_device_refuses_malformed_requests(pdu: str, code: int) -> None:
    reply = decode_request(H(pdu))
    assert reply == ExceptionReply(H(pdu)[0], code)


# --- FC 07, FC 08, FC 43/14: the spec's and the Eurotherm manual's own frames ------------------------

SPEC_DEVICE_ID_REQUEST = H("2B 0E 01 00")
SPEC_DEVICE_ID_REPLY = (
    H("2B 0E 01 01 00 00 03")
    + H("00 16")
    + b"Company identification"
    + H("01 0F")
    + b"Product code XX"
    + H("02 05")
    + b"V2.11"
)
"""Modbus Application Protocol V1.1b3 §6.21, "Basic device identification" example, field by field.

The spec's table gives object 01 the length 0D for the 15-character "Product code XX": an erratum
(0D would cut the value to "Product code "), so the length here is the value's own, 0F.
"""
SPEC_OBJECTS = {0x00: b"Company identification", 0x01: b"Product code XX", 0x02: b"V2.11"}


def identified_unit(objects: dict[int, bytes], conformity: int) -> ModbusUnit:
    return ModbusUnit(5, functions=frozenset({0x03, 0x2B}), identification=objects, conformity=conformity)


def test_device_identification_follows_the_spec_example_in_both_roles() -> None:
    assert DeviceIdRequest(1, 0).encode() == SPEC_DEVICE_ID_REQUEST
    assert decode_request(SPEC_DEVICE_ID_REQUEST) == DeviceIdRequest(1, 0)
    reply = decode_device_id_reply(SPEC_DEVICE_ID_REPLY)
    assert reply == DeviceIdReply(1, 0x01, False, 0, tuple(SPEC_OBJECTS.items()))
    assert reply.encode() == SPEC_DEVICE_ID_REPLY
    unit = identified_unit(SPEC_OBJECTS, conformity=0x01)
    assert unit.handle(SPEC_DEVICE_ID_REQUEST) == SPEC_DEVICE_ID_REPLY
    # over RTU: the host finds the end of a reply that has no length field by walking the objects
    request_frame = encode_rtu_frame(5, SPEC_DEVICE_ID_REQUEST)
    rtu = RtuRequestDecoder()
    rtu.feed(request_frame)
    assert rtu.next_frame() == RtuFrame(5, SPEC_DEVICE_ID_REQUEST)
    reply_frame = ModbusRtuSession({5: unit}).receive(request_frame)
    assert reply_frame == encode_rtu_frame(5, SPEC_DEVICE_ID_REPLY)
    decoder = RtuReplyDecoder(5, 0x2B)
    for byte in reply_frame[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_frame() is NEED_DATA
    decoder.feed(reply_frame[-1:])
    assert decoder.next_frame() == SPEC_DEVICE_ID_REPLY


def test_device_identification_access_rules_of_the_spec() -> None:
    extended = {**SPEC_OBJECTS, 0x03: b"http://www.example.com/", 0x80: b"J1140501"}
    unit = identified_unit(extended, conformity=0x83)

    def ask(code: int, object_id: int) -> DeviceIdReply | ExceptionReply:
        reply = unit.handle(DeviceIdRequest(code, object_id).encode())
        assert reply is not None
        return ExceptionReply.decode(reply) if reply[0] & 0x80 else decode_device_id_reply(reply)

    basic = ask(1, 0)
    assert isinstance(basic, DeviceIdReply)
    assert [oid for oid, _ in basic.objects] == [0, 1, 2]
    full = ask(3, 0)
    assert isinstance(full, DeviceIdReply)
    assert [oid for oid, _ in full.objects] == [0, 1, 2, 3, 0x80]
    # a stream starting at an object the device does not have restarts at object 0
    restarted = ask(2, 0x40)
    assert isinstance(restarted, DeviceIdReply)
    assert restarted.objects[0][0] == 0
    # individual access: the object, or exception 02 for one that does not exist
    assert ask(4, 0x80) == DeviceIdReply(4, 0x83, False, 0, ((0x80, b"J1140501"),))
    assert ask(4, 0x81) == ExceptionReply(0x2B, 0x02)
    # a stream-only basic device answers a higher level at its own level, and refuses single access
    basic_only = identified_unit(SPEC_OBJECTS, conformity=0x01)
    reply = basic_only.handle(DeviceIdRequest(3, 0).encode())
    assert reply is not None
    assert decode_device_id_reply(reply).objects == tuple(SPEC_OBJECTS.items())
    assert basic_only.handle(DeviceIdRequest(4, 0).encode()) == H("AB 03")
    # a unit without identification objects does not implement the function
    assert ModbusUnit(6).handle(SPEC_DEVICE_ID_REQUEST) == H("AB 01")
    with pytest.raises(ValueError, match=r"1\.\.4"):
        DeviceIdRequest(5).encode()


def test_device_identification_longer_than_one_pdu_is_split_and_reassembled() -> None:
    objects = {0: b"V" * 100, 1: b"P" * 100, 2: b"R" * 100, 0x80: b"S" * 60}
    unit = identified_unit(objects, conformity=0x83)
    first = unit.handle(DeviceIdRequest(3, 0).encode())
    assert first is not None
    part = decode_device_id_reply(first)
    assert (part.more_follows, part.next_object_id, [o for o, _ in part.objects]) == (True, 2, [0, 1])
    second = unit.handle(DeviceIdRequest(3, part.next_object_id).encode())
    assert second is not None
    rest = decode_device_id_reply(second)
    assert (rest.more_follows, [o for o, _ in rest.objects]) == (False, [2, 0x80])
    with pytest.raises(ValueError, match="244 bytes"):
        identified_unit({0: b"x" * 245}, conformity=0x81)


def test_serial_line_diagnostics_golden_frames() -> None:
    # Modbus spec §6.8.2: return query data, sub-function 0000, data A5 37, echoed whole
    loopback = H("08 00 00 A5 37")
    assert DiagnosticRequest(0, H("A5 37")).encode() == loopback
    assert decode_request(loopback) == DiagnosticRequest(0, H("A5 37"))
    unit = ModbusUnit(2, functions=frozenset({0x03, 0x07, 0x08}))
    assert unit.handle(loopback) == loopback
    check_diagnostic_reply(loopback, loopback)
    with pytest.raises(ProtocolError, match="does not echo"):
        check_diagnostic_reply(loopback, H("08 00 00 A5 36"))
    assert unit.handle(H("08 00 0B")) == H("88 03")  # a sub-function this unit does not answer
    # Modbus spec §6.7: read exception status -> 6D
    assert ExceptionStatusRequest().encode() == H("07")
    unit.exception_status = lambda: 0x6D
    assert unit.handle(H("07")) == H("07 6D")
    assert decode_exception_status_reply(H("07 6D")) == 0x6D
    # Eurotherm HA026230 §3.17 and §3.18: the same two functions as whole RTU frames, unit 2
    session = ModbusRtuSession({2: unit})
    unit.exception_status = lambda: 0x30  # sensor break + manual
    assert session.receive(H("02 07 41 12")) == H("02 07 30 D2 24")
    assert session.receive(H("02 08 00 00 12 34 ED 4F")) == H("02 08 00 00 12 34 ED 4F")
    decoder = RtuReplyDecoder(2, 0x07)
    decoder.feed(H("02 07 30 D2 24"))
    assert decoder.next_frame() == H("07 30")
    decoder = RtuReplyDecoder(2, 0x08, 2)
    decoder.feed(H("02 08 00 00 12 34 ED 4F"))
    assert decoder.next_frame() == H("08 00 00 12 34")


def test_unit_that_stays_silent_for_functions_it_lacks() -> None:
    """HA026230 §3.12: a 2000-series instrument "will not reply" to an unsupported function code."""
    quiet = ModbusUnit(1, holding_registers=[range(0, 4)], functions=frozenset({3}), unsupported="silent")
    assert quiet.handle(encode_write_coils_request(0, [True])) is None
    assert ModbusRtuSession({1: quiet}).receive(encode_rtu_frame(1, H("11"))) == b""
    assert ModbusTcpSession({1: quiet}).receive(encode_mbap_frame(3, 1, H("11"))) == b""
    gateway = ModbusTcpSession({1: quiet}, gateway=True)
    assert gateway.receive(encode_mbap_frame(3, 1, H("11"))) == encode_mbap_frame(3, 1, H("91 0B"))


# --- framing: streams, garbage, stale replies ------------------------------------------------------


def test_rtu_request_decoder_splits_streams_and_resyncs() -> None:
    a = encode_rtu_frame(1, encode_read_request(3, 0, 2))
    b = encode_rtu_frame(2, encode_write_registers_request(5, [1, 2, 3]))
    c = encode_rtu_frame(3, encode_write_coil_request(9, True))
    decoder = RtuRequestDecoder()
    decoder.feed(b"\x55\x10\xff" + a + b + c[:3])  # garbage, two requests, half of a third
    frames = [decoder.next_frame(), decoder.next_frame(), decoder.next_frame()]
    assert frames == [RtuFrame(1, a[1:-2]), RtuFrame(2, b[1:-2]), NEED_DATA]
    for byte in c[3:]:  # the rest trickles in
        decoder.feed(bytes([byte]))
    assert decoder.next_frame() == RtuFrame(3, c[1:-2])
    assert decoder.discarded_bytes == 3
    corrupted = bytearray(a)
    corrupted[3] ^= 0x01
    decoder.feed(bytes(corrupted) + b)
    assert decoder.next_frame() == RtuFrame(2, b[1:-2])  # the bad-CRC frame is dropped, the next found
    assert decoder.next_frame() is NEED_DATA


def test_mbap_request_decoder_splits_and_drops_bad_headers() -> None:
    a = encode_mbap_frame(1, 1, encode_read_request(3, 0, 2))
    b = encode_mbap_frame(2, 5, encode_write_coil_request(3, False))
    decoder = MbapRequestDecoder()
    decoder.feed(a + b[:4])
    assert decoder.next_frame() == MbapFrame(1, 1, a[7:])
    assert decoder.next_frame() is NEED_DATA
    decoder.feed(b[4:])
    assert decoder.next_frame() == MbapFrame(2, 5, b[7:])
    decoder.feed(H("00 01 12 34 00 06 01 03 00 00 00 01"))  # protocol id 0x1234: not Modbus
    assert decoder.next_frame() is NEED_DATA
    assert decoder.discarded_bytes == 12
    decoder.feed(a)
    assert decoder.next_frame() == MbapFrame(1, 1, a[7:])


def test_rtu_reply_decoder_errors() -> None:
    good = encode_rtu_frame(1, encode_reply(Request(3, 0, 2), [1, 2]))
    decoder = RtuReplyDecoder(1, 3, 2)
    decoder.feed(good[:4])
    assert decoder.next_frame() is NEED_DATA
    decoder.feed(good[4:])
    assert decoder.next_frame() == good[1:-2]
    for i in range(len(good)):  # any corrupted byte is a CRC error, never a wait or a wrong value
        bad = bytearray(good)
        bad[i] ^= 0x10
        decoder = RtuReplyDecoder(1, 3, 2)
        decoder.feed(bytes(bad))
        with pytest.raises(ChecksumError):
            decoder.next_frame()
    decoder = RtuReplyDecoder(2, 3, 2)
    decoder.feed(good)
    with pytest.raises(ProtocolError, match="unit 1"):
        decoder.next_frame()
    decoder = RtuReplyDecoder(1, 4, 2)
    decoder.feed(good)
    with pytest.raises(ProtocolError, match="FC03"):
        decoder.next_frame()
    with pytest.raises(ProtocolError, match="data bytes"):
        decode_registers_reply(good[1:-2], 3)


def test_mbap_reply_decoder_skips_stale_transactions() -> None:
    late = encode_mbap_frame(6, 1, encode_reply(Request(3, 0, 1), [111]))
    mine = encode_mbap_frame(7, 1, encode_reply(Request(3, 0, 1), [222]))
    decoder = MbapReplyDecoder(7, 3)
    decoder.feed(late + mine[:5])
    assert decoder.next_frame() is NEED_DATA
    decoder.feed(mine[5:])
    pdu = decoder.next_frame()
    assert isinstance(pdu, bytes)
    assert decode_registers_reply(pdu, 1) == [222]
    assert decoder.skipped == 1
    decoder = MbapReplyDecoder(8, 3)
    decoder.feed(H("00 08 00 01 00 03 01 83 02"))
    with pytest.raises(ProtocolError, match="protocol id"):
        decoder.next_frame()


# --- the simulated unit ----------------------------------------------------------------------------


def test_unit_data_model_functions_hooks_and_faults() -> None:
    unit = eurotherm(1)
    session = ModbusTcpSession({1: unit})

    def ask(pdu: bytes) -> bytes:
        reply = session.receive(encode_mbap_frame(1, 1, pdu))
        return reply[7:]

    assert ask(encode_write_coils_request(0, [True])) == H("8F 01")  # FC15 not implemented
    assert ask(encode_read_request(3, 598, 3)) == H("83 02")  # spans past the declared range
    assert ask(H("05 00 01 12 34")) == H("85 03")
    reads: list[tuple[Table, int, int]] = []
    writes: list[tuple[Table, int, list[int] | list[bool]]] = []

    def before_read(table: Table, address: int, count: int) -> int | None:
        reads.append((table, address, count))
        unit.set_registers("input_registers", 0, [42])
        return 0x06 if address == 5 else None

    def on_write(table: Table, address: int, values: list[int] | list[bool]) -> int | None:
        writes.append((table, address, values))
        return 0x03 if values == [9999] else None

    unit.before_read = before_read
    unit.on_write = on_write
    assert decode_registers_reply(ask(encode_read_request(4, 0, 1)), 1) == [42]
    assert ask(encode_read_request(4, 5, 1)) == H("84 06")
    assert ask(encode_write_register_request(7, 9999)) == H("86 03")
    assert unit.get_registers("holding_registers", 7, 1) == [0]  # refused writes are not stored
    assert ask(encode_write_coil_request(3, True)) == encode_write_coil_request(3, True)
    assert unit.get_bits("coils", 0, 5) == [False, False, False, True, False]
    assert reads == [("input_registers", 0, 1), ("input_registers", 5, 1)]
    assert writes == [("holding_registers", 7, [9999]), ("coils", 3, [True])]
    unit.forced_exception = 0x04
    assert ask(encode_read_request(3, 0, 1)) == H("83 04")
    unit.forced_exception = None

    def broken(table: Table, address: int, count: int) -> int | None:
        raise RuntimeError("plant model bug")

    unit.before_read = broken
    assert ask(encode_read_request(3, 0, 1)) == H("83 04")  # server device failure, bus survives
    with pytest.raises(ValueError, match="not declared"):
        unit.set_registers("holding_registers", 700, [1])
    with pytest.raises(ValueError, match="holds bits"):
        unit.set_registers("coils", 0, [1])
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        unit.set_registers("holding_registers", 0, [-5])


def test_rtu_bus_silence_rules_and_broadcast() -> None:
    units = bus()
    session = ModbusRtuSession(units)
    request = encode_rtu_frame(99, encode_read_request(3, 0, 1))
    assert session.receive(request) == b""  # nobody at unit 99
    bad = bytearray(encode_rtu_frame(1, encode_read_request(3, 0, 1)))
    bad[-1] ^= 0xFF
    assert session.receive(bytes(bad)) == b""  # CRC error: silence
    assert session.receive(encode_rtu_frame(0, encode_write_register_request(3, 77))) == b""
    assert [u.get_registers("holding_registers", 3, 1) for u in units.values()] == [[77]] * 4
    units[2].silent = True
    assert session.receive(encode_rtu_frame(2, encode_read_request(3, 0, 1))) == b""
    # two requests in one chunk get two replies, in order
    both = encode_rtu_frame(240, encode_read_request(3, 8, 2)) + encode_rtu_frame(
        1, encode_read_request(3, 3, 1)
    )
    assert session.receive(both) == H("F0 03 04 00 00 C2 70 4A 78") + encode_rtu_frame(1, H("03 02 00 4D"))


def test_tcp_session_absent_units() -> None:
    units = bus()
    read = encode_read_request(3, 0, 1)
    assert ModbusTcpSession(units).receive(encode_mbap_frame(5, 77, read)) == encode_mbap_frame(
        5, 77, H("83 0A")
    )
    gateway = ModbusTcpSession(units, gateway=True)
    assert gateway.receive(encode_mbap_frame(5, 77, read)) == encode_mbap_frame(5, 77, H("83 0B"))


# --- the client over real endpoints ----------------------------------------------------------------


@pytest.fixture
def units() -> dict[int, ModbusUnit]:
    return bus()


@pytest.fixture
async def rtu_bus(units: dict[int, ModbusUnit]) -> AsyncIterator[tuple[PtyEndpoint, ModbusClient]]:
    ep = PtyEndpoint("bus", lambda: ModbusRtuSession(units), SerialSettings(19200, stopbits=2), scheme="rtu")
    await ep.start()
    link = Link(ep.url, name="bus1")
    try:
        yield ep, ModbusClient(link, timeout_s=0.5)
    finally:
        await link.close()
        await ep.stop()


@pytest.fixture
async def tcp_device(units: dict[int, ModbusUnit]) -> AsyncIterator[tuple[TcpEndpoint, ModbusClient]]:
    ep = TcpEndpoint("gw", lambda: ModbusTcpSession(units, gateway=True))
    await ep.start()
    link = Link(ep.url, name="gw", backoff_initial_s=0.05)
    try:
        yield ep, ModbusClient(link, timeout_s=0.5)
    finally:
        await link.close()
        await ep.stop()


async def exercise_all_functions(client: ModbusClient, units: dict[int, ModbusUnit]) -> None:
    assert await client.read_holding_registers(240, 0x0008, 2) == float_regs_lsw_first(-60.0)
    assert await client.read_holding_registers(2, 1, 2) == [18, 22]
    await client.write_registers(1, 0x8004, float_regs_msw_first(300.0))
    assert units[1].get_registers("holding_registers", 0x8004, 2) == float_regs_msw_first(300.0)
    await client.write_register(1, 2, 3000)
    assert await client.read_holding_registers(1, 2, 1) == [3000]
    units[1].set_registers("input_registers", 0, [5, 6, 7])
    assert await client.read_input_registers(1, 0, 3) == [5, 6, 7]
    units[1].set_bits("discrete_inputs", 0, [True, False, True] * 3)
    assert await client.read_discrete_inputs(1, 0, 9) == [True, False, True] * 3
    await client.write_coil(1, 10, True)
    assert await client.read_coils(1, 8, 4) == [False, False, True, False]
    await client.write_coils(240, 0, [True, False, True])  # the Vaisala-style unit here takes FC15
    assert units[240].get_bits("coils", 0, 4) == [True, False, True, False]


async def test_client_on_a_pty_rtu_bus_with_several_units(
    rtu_bus: tuple[PtyEndpoint, ModbusClient], units: dict[int, ModbusUnit]
) -> None:
    _ep, client = rtu_bus
    await exercise_all_functions(client, units)
    # concurrent requests to different units on one bus are serialised and each gets its own answer
    reads = [client.read_holding_registers(u, 0x0014, 2) for u in (240, 241) * 10]
    results = await asyncio.gather(*reads)
    assert results == [float_regs_lsw_first(10.68), float_regs_lsw_first(3.5)] * 10
    mixed = await asyncio.gather(
        client.read_holding_registers(2, 1, 2),
        client.read_coils(1, 10, 1),
        client.read_holding_registers(240, 8, 2),
        client.write_register(2, 3, 11),
        client.read_holding_registers(241, 20, 2),
    )
    assert list(mixed) == [[18, 22], [True], float_regs_lsw_first(-60.0), None, float_regs_lsw_first(3.5)]
    assert units[2].get_registers("holding_registers", 3, 1) == [11]
    # broadcast: every unit applies it, none answers
    await client.write_register(0, 4, 1234)
    assert await client.read_holding_registers(241, 4, 1) == [1234]
    assert all(u.get_registers("holding_registers", 4, 1) == [1234] for u in units.values())


async def test_client_on_modbus_tcp(
    tcp_device: tuple[TcpEndpoint, ModbusClient], units: dict[int, ModbusUnit]
) -> None:
    _ep, client = tcp_device
    await exercise_all_functions(client, units)
    results = await asyncio.gather(*(client.read_holding_registers(u, 8, 2) for u in (240, 241) * 5))
    assert results == [float_regs_lsw_first(-60.0)] * 10


async def test_client_identifies_loops_back_and_reads_exception_status(
    rtu_bus: tuple[PtyEndpoint, ModbusClient], units: dict[int, ModbusUnit]
) -> None:
    _ep, client = rtu_bus
    long_objects = {0: b"Vendor " * 20, 1: b"Product " * 20, 2: b"1.4.2", 0x80: b"J1140501" * 10}
    units[240].identification = long_objects
    units[240].functions = units[240].functions | {0x2B}
    identity = await client.read_device_identification(240, read_code=3)
    assert identity == DeviceIdentification(0x83, long_objects)  # two transactions, one answer
    assert identity.revision == "1.4.2"
    single = await client.read_device_identification(240, read_code=4, object_id=0x80)
    assert single.objects == {0x80: long_objects[0x80]}
    units[2].functions = units[2].functions | {0x07, 0x08}
    units[2].exception_status = lambda: 0x21
    assert await client.read_exception_status(2) == 0x21
    await client.loopback(2, H("12 34"))
    with pytest.raises(DeviceRefused) as refused:
        await client.read_device_identification(241)  # this unit has no identification objects
    assert refused.value.code == "01"


async def test_client_on_rtu_over_tcp(units: dict[int, ModbusUnit]) -> None:
    ep = TcpEndpoint("rtu-gw", lambda: ModbusRtuSession(units), scheme="rtu+tcp")
    await ep.start()
    link = Link(ep.url)
    try:
        client = ModbusClient(link)
        assert await client.read_holding_registers(240, 0x14, 2) == float_regs_lsw_first(10.68)
    finally:
        await link.close()
        await ep.stop()


async def test_rtu_faults_then_recovery(
    rtu_bus: tuple[PtyEndpoint, ModbusClient], units: dict[int, ModbusUnit]
) -> None:
    ep, client = rtu_bus
    units[1].forced_exception = 0x06
    with pytest.raises(DeviceRefused) as refused:
        await client.read_holding_registers(1, 0, 1)
    assert (refused.value.device, refused.value.code, refused.value.detail) == (
        "bus1/1",
        "06",
        "server device busy",
    )
    units[1].forced_exception = None
    with pytest.raises(DeviceRefused, match="02"):
        await client.read_holding_registers(1, 0x4000, 1)
    with pytest.raises(DeviceRefused, match="01"):
        await client.write_coils(1, 0, [True, False])  # this controller has no FC15
    ep.faults.corrupt_replies = 3
    for _ in range(3):
        with pytest.raises(ChecksumError):
            await client.read_holding_registers(240, 8, 2)
    assert await client.read_holding_registers(240, 8, 2) == float_regs_lsw_first(-60.0)
    client.timeout_s = 0.1
    ep.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await client.read_holding_registers(240, 8, 2)
    ep.faults.silent = False
    with pytest.raises(DeviceTimeout):
        await client.read_holding_registers(17, 0, 1)  # no such unit on the bus: silence
    units[241].silent = True
    with pytest.raises(DeviceTimeout):
        await client.read_holding_registers(241, 8, 2)
    assert await client.read_holding_registers(240, 8, 2) == float_regs_lsw_first(-60.0)  # the bus lives on
    with pytest.raises(ValueError, match="broadcast"):
        await client.read_holding_registers(0, 0, 1)


async def test_tcp_faults_then_recovery(
    tcp_device: tuple[TcpEndpoint, ModbusClient], units: dict[int, ModbusUnit]
) -> None:
    ep, client = tcp_device
    with pytest.raises(DeviceRefused) as refused:
        await client.read_holding_registers(99, 0, 1)
    assert refused.value.code == "0B"
    units[2].forced_exception = 0x02
    with pytest.raises(DeviceRefused, match="illegal data address"):
        await client.read_holding_registers(2, 1, 2)
    units[2].forced_exception = None
    ep.faults.powered = False
    ep.drop_connections()
    with pytest.raises(LinkDown):
        await client.read_holding_registers(2, 1, 2)
    ep.faults.powered = True
    deadline = time.monotonic() + 3.0
    while True:
        try:
            assert await client.read_holding_registers(2, 1, 2) == [18, 22]
            break
        except (LinkDown, DeviceTimeout):
            assert time.monotonic() < deadline, "Modbus TCP link never came back"
            await asyncio.sleep(0.05)
    assert client.link.stats.connects >= 2
    client.timeout_s = 0.1
    ep.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await client.read_holding_registers(2, 1, 2)
    ep.faults.silent = False
    assert await client.read_holding_registers(2, 1, 2) == [18, 22]
