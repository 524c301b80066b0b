"""Modbus RTU and Modbus TCP on a `Link`: the async client (host role).

The wire is pure codec, shared with the device role that `sim_hardware.modbus_device` serves: the
PDU in modbus_pdu.py, its RTU and MBAP framing in modbus_framing.py. The client chooses the framing
from the link's endpoint, refuses a unit the framing cannot address, sends an RTU write to unit 0 as
a broadcast nobody answers, and turns a device's exception reply into `DeviceRefused`.

Beyond the data tables it speaks the functions real instruments document for commissioning: FC 07
(exception status byte), FC 08 sub-function 0 (loopback) and FC 43/14 (device identification).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.modbus_framing import (
    MAX_RTU_UNIT,
    MAX_TCP_UNIT,
    MbapReplyDecoder,
    RtuReplyDecoder,
    encode_mbap_frame,
    encode_rtu_frame,
)
from drivers.modbus_pdu import (
    DIAGNOSTIC_RETURN_QUERY_DATA,
    EXCEPTION_TEXT,
    DeviceIdRequest,
    DiagnosticRequest,
    ExceptionStatusRequest,
    ReadDeviceIdCode,
    check_diagnostic_reply,
    check_write_reply,
    decode_bits_reply,
    decode_device_id_reply,
    decode_exception_status_reply,
    decode_registers_reply,
    encode_read_request,
    encode_write_coil_request,
    encode_write_coils_request,
    encode_write_register_request,
    encode_write_registers_request,
    reply_pdu_length,
)

__all__ = ["DeviceIdentification", "ModbusClient"]

OBJECT_NAMES = {
    0x00: "VendorName",
    0x01: "ProductCode",
    0x02: "MajorMinorRevision",
    0x03: "VendorUrl",
    0x04: "ProductName",
    0x05: "ModelName",
    0x06: "UserApplicationName",
}
"""The standard objects of FC 43/14 (Modbus Application Protocol V1.1b3 §6.21); 0x80.. are the vendor's."""


@dataclass(frozen=True, slots=True)
class DeviceIdentification:
    """What a device says it is: its conformity level and its objects as sent (ASCII by the spec)."""

    conformity: int
    objects: dict[int, bytes]

    def text(self, object_id: int) -> str:
        """An object as text ("" when the device has no such object)."""
        return self.objects.get(object_id, b"").decode("ascii", errors="replace")

    @property
    def vendor_name(self) -> str:
        return self.text(0x00)

    @property
    def product_code(self) -> str:
        return self.text(0x01)

    @property
    def revision(self) -> str:
        return self.text(0x02)


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

    async def read_exception_status(self, unit: int) -> int:
        """FC 07 (serial line): eight status bits, whose meaning is the device's own."""
        pdu = await self._request(unit, ExceptionStatusRequest().encode(), 0)
        return decode_exception_status_reply(pdu)

    async def loopback(self, unit: int, data: bytes) -> None:
        """FC 08 sub-function 0: the device returns the request unchanged, or the link is not sound."""
        request = DiagnosticRequest(DIAGNOSTIC_RETURN_QUERY_DATA, data).encode()
        check_diagnostic_reply(request, await self._request(unit, request, len(data)))

    async def read_device_identification(
        self, unit: int, read_code: int = ReadDeviceIdCode.BASIC, object_id: int = 0
    ) -> DeviceIdentification:
        """FC 43/14: the whole stream of objects (one transaction per PDU-full), or one object (code 4)."""
        objects: dict[int, bytes] = {}
        next_id = object_id
        while True:
            request = DeviceIdRequest(read_code, next_id).encode()
            reply = decode_device_id_reply(await self._request(unit, request, 0))
            if reply.read_code != read_code:
                raise ProtocolError(
                    f"{self.link.name}/{unit}: identification reply for code {reply.read_code}"
                )
            objects.update(reply.objects)
            if not reply.more_follows:
                return DeviceIdentification(reply.conformity, objects)
            if reply.next_object_id in objects or not reply.objects:
                raise ProtocolError(f"{self.link.name}/{unit}: identification stream does not advance")
            next_id = reply.next_object_id

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
