"""Modbus RTU and Modbus TCP on a `Link`: the async client (host role).

The wire is pure codec, shared with the device role that `sim_hardware.modbus_device` serves: the
PDU in modbus_pdu.py, its RTU and MBAP framing in modbus_framing.py. The client chooses the framing
from the link's endpoint, refuses a unit the framing cannot address, sends an RTU write to unit 0 as
a broadcast nobody answers, and turns a device's exception reply into `DeviceRefused`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from drivers.errors import DeviceRefused
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
    EXCEPTION_TEXT,
    check_write_reply,
    decode_bits_reply,
    decode_registers_reply,
    encode_read_request,
    encode_write_coil_request,
    encode_write_coils_request,
    encode_write_register_request,
    encode_write_registers_request,
    reply_pdu_length,
)

__all__ = ["ModbusClient"]


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
