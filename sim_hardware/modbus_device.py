"""Simulated Modbus slaves: a data model per unit, served on an RS-485 bus (RTU) or over Modbus TCP.

The wire format is `drivers.modbus_pdu` and `drivers.modbus_framing` in the device role; this module
only holds the data and decides what a real slave would answer. Behaviour on the bus follows
devices.md §9: a request with a bad CRC, for an absent unit, or a broadcast (unit 0) gets no reply at
all; a function the unit does not implement gets exception 01 (or silence, for instruments whose
manual says so), an address outside its declared ranges 02, a malformed quantity or value 03. The
plant model plugs in through `before_read` (refresh values just before they are read) and `on_write`
(act on, or refuse, what the host writes). Per unit, as its manual documents: FC 02/04 may read the
coil/holding tables (`read_aliases`), FC 07 answers `exception_status()`, FC 08 answers the
sub-functions in `diagnostics`, FC 43/14 serves `identification`.

Build a bus and serve it::

    vaisala = ModbusUnit(240, holding_registers=[range(0x0000, 0x0030)])
    eurotherm = ModbusUnit(1, holding_registers=[range(0, 600), range(0x8000, 0x8500)],
                           functions=frozenset({1, 2, 3, 4, 5, 6, 7, 8, 16}), unsupported="silent",
                           read_aliases={"input_registers": "holding_registers"})
    units = {u.unit_id: u for u in (vaisala, eurotherm)}
    PtyEndpoint("bus1", lambda: ModbusRtuSession(units), SerialSettings(19200, stopbits=2), scheme="rtu")
    TcpEndpoint("gw1", lambda: ModbusTcpSession(units, gateway=True))
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from drivers.modbus_framing import MbapRequestDecoder, RtuRequestDecoder, encode_mbap_frame, encode_rtu_frame
from drivers.modbus_pdu import (
    COIL_ON_VALUES,
    DIAGNOSTIC_RETURN_QUERY_DATA,
    AnyRequest,
    DeviceIdRequest,
    DiagnosticRequest,
    ExceptionReply,
    ExceptionStatusRequest,
    Request,
    decode_request,
    encode_bits_reply,
    encode_device_id_reply,
    encode_exception_status_reply,
    encode_registers_reply,
    encode_write_reply,
)

log = logging.getLogger(__name__)

Table = Literal["coils", "discrete_inputs", "holding_registers", "input_registers"]
ReadHook = Callable[[Table, int, int], int | None]
WriteHook = Callable[[Table, int, list[int] | list[bool]], int | None]

ALL_FUNCTIONS = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10})
_TABLE_OF: dict[int, Table] = {
    0x01: "coils",
    0x02: "discrete_inputs",
    0x03: "holding_registers",
    0x04: "input_registers",
    0x05: "coils",
    0x06: "holding_registers",
    0x0F: "coils",
    0x10: "holding_registers",
}
_BIT_TABLES = frozenset({"coils", "discrete_inputs"})
_SERVER_DEVICE_FAILURE = 0x04
_EXTENDED_STREAM_AND_SINGLE = 0x83


class _Space:
    """One table: disjoint blocks of consecutive addresses, each a plain list of values."""

    __slots__ = ("blocks", "starts")

    def __init__(self, ranges: Iterable[range], fill: int | bool) -> None:
        spans: list[tuple[int, int]] = []
        for r in sorted((r for r in ranges if len(r)), key=lambda r: r.start):
            if r.step != 1 or r.start < 0 or r.stop > 0x10000:
                raise ValueError(f"Modbus range {r} must be consecutive addresses inside 0..65535")
            if spans and r.start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], r.stop))
            else:
                spans.append((r.start, r.stop))
        self.starts = [start for start, _ in spans]
        self.blocks: list[list[int | bool]] = [[fill] * (stop - start) for start, stop in spans]

    def locate(self, address: int, count: int) -> tuple[list[int | bool], int] | None:
        """The block holding all of address..address+count-1 and the offset into it, or None."""
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0:
            return None
        block = self.blocks[i]
        offset = address - self.starts[i]
        if offset + count > len(block):
            return None
        return block, offset


class ModbusUnit:
    """One Modbus slave's data model: only addresses inside the declared ranges exist (others -> 02).

    `forced_exception` answers every request with that exception code (fault injection); `silent`
    makes the unit ignore the bus, as a powered-off device on a shared RS-485 line does.

    What the instrument's manual documents beyond the data tables: `unsupported` is how it meets a
    function it lacks ("exception" 01, or "silent": no reply at all); `read_aliases` lets FC 02 / 04
    read the coil / holding table where the manual makes them one ("01 or 02", "03 or 04");
    `coil_on` is what FC 05 takes as "on"; `exception_status` gives the FC 07 byte; `diagnostics`
    the FC 08 sub-functions it answers (others: 03); `identification` the FC 43/14 objects, served at
    `conformity` (0x83: extended, stream and single access).
    """

    def __init__(
        self,
        unit_id: int,
        *,
        coils: Iterable[range] = (),
        discrete_inputs: Iterable[range] = (),
        holding_registers: Iterable[range] = (),
        input_registers: Iterable[range] = (),
        functions: frozenset[int] | None = None,
        unsupported: Literal["exception", "silent"] = "exception",
        read_aliases: Mapping[Table, Table] | None = None,
        coil_on: frozenset[int] = COIL_ON_VALUES,
        identification: Mapping[int, bytes] | None = None,
        conformity: int = _EXTENDED_STREAM_AND_SINGLE,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"Modbus unit id {unit_id} outside 0..255")
        self.unit_id = unit_id
        self.functions = ALL_FUNCTIONS if functions is None else functions
        self.unsupported = unsupported
        self.read_aliases: dict[Table, Table] = dict(read_aliases or {})
        self.coil_on = coil_on
        self.identification = _checked_objects(identification)
        self.conformity = conformity
        self.exception_status: Callable[[], int] | None = None
        self.diagnostics: frozenset[int] = frozenset({DIAGNOSTIC_RETURN_QUERY_DATA})
        self.forced_exception: int | None = None
        self.silent = False
        self.before_read: ReadHook | None = None
        self.on_write: WriteHook | None = None
        self.requests = 0
        # every write the host sent (table, address, values), accepted or not: what a read-only tool
        # (`depline commission`) is held to leave empty
        self.writes: list[tuple[Table, int, list[int] | list[bool]]] = []
        self._spaces: dict[Table, _Space] = {
            "coils": _Space(coils, False),
            "discrete_inputs": _Space(discrete_inputs, False),
            "holding_registers": _Space(holding_registers, 0),
            "input_registers": _Space(input_registers, 0),
        }

    # --- the plant's side ------------------------------------------------------------------------

    def set_registers(self, table: Table, address: int, values: Sequence[int]) -> None:
        self._check_kind(table, bits=False)
        for value in values:
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"unit {self.unit_id} {table}[{address}]: {value} outside 0..65535")
        block, offset = self._locate(table, address, len(values))
        block[offset : offset + len(values)] = values

    def get_registers(self, table: Table, address: int, count: int) -> list[int]:
        self._check_kind(table, bits=False)
        block, offset = self._locate(table, address, count)
        return [int(v) for v in block[offset : offset + count]]

    def set_bits(self, table: Table, address: int, values: Sequence[bool]) -> None:
        self._check_kind(table, bits=True)
        block, offset = self._locate(table, address, len(values))
        block[offset : offset + len(values)] = [bool(v) for v in values]

    def get_bits(self, table: Table, address: int, count: int) -> list[bool]:
        self._check_kind(table, bits=True)
        block, offset = self._locate(table, address, count)
        return [bool(v) for v in block[offset : offset + count]]

    def _check_kind(self, table: Table, *, bits: bool) -> None:
        if (table in _BIT_TABLES) != bits:
            kind = "bits" if table in _BIT_TABLES else "registers"
            raise ValueError(f"unit {self.unit_id}: {table} holds {kind}")

    def _locate(self, table: Table, address: int, count: int) -> tuple[list[int | bool], int]:
        found = self._spaces[table].locate(address, count)
        if found is None:
            raise ValueError(f"unit {self.unit_id}: {table} {address}..{address + count - 1} not declared")
        return found

    # --- the bus's side --------------------------------------------------------------------------

    def handle(self, pdu: bytes) -> bytes | None:
        """Answer one request PDU with the reply PDU a real slave would send; None: it stays silent."""
        self.requests += 1
        fc = pdu[0] & 0x7F if pdu else 0
        if self.forced_exception is not None:
            return ExceptionReply(fc, self.forced_exception).encode()
        if fc not in self.functions:
            return None if self.unsupported == "silent" else ExceptionReply(fc, 0x01).encode()
        request = decode_request(pdu, coil_on=self.coil_on)
        if isinstance(request, ExceptionReply):
            return request.encode()
        try:
            return self._execute(request)
        except Exception:  # a plant hook failed: the device reports a failure, the bus lives on
            log.exception("modbus hook failed", extra={"unit": self.unit_id, "function": fc})
            return ExceptionReply(fc, _SERVER_DEVICE_FAILURE).encode()

    def _execute(self, request: AnyRequest) -> bytes:
        if isinstance(request, Request):
            return self._access(request)
        if isinstance(request, ExceptionStatusRequest):
            status = self.exception_status() if self.exception_status is not None else 0
            return encode_exception_status_reply(status)
        if isinstance(request, DiagnosticRequest):
            if request.subfunction not in self.diagnostics:
                return ExceptionReply(request.function, 0x03).encode()
            return request.encode()  # return query data: the request comes back unchanged
        return self._identify(request)

    def _identify(self, request: DeviceIdRequest) -> bytes:
        if self.identification is None:
            return ExceptionReply(request.function, 0x01).encode()
        return encode_device_id_reply(request, self.identification, self.conformity)

    def _access(self, request: Request) -> bytes:
        fc = request.function
        table = _TABLE_OF[fc]
        if not request.is_write:
            table = self.read_aliases.get(table, table)
        found = self._spaces[table].locate(request.address, request.count)
        if found is None:
            return ExceptionReply(fc, 0x02).encode()
        block, offset = found
        if request.is_write:
            values: list[int] | list[bool] = (
                [bool(v) for v in request.values] if table in _BIT_TABLES else list(request.values)
            )
            self.writes.append((table, request.address, values))
            code = self.on_write(table, request.address, values) if self.on_write else None
            if code:
                return ExceptionReply(fc, code).encode()
            block[offset : offset + request.count] = values
            return encode_write_reply(request)
        code = self.before_read(table, request.address, request.count) if self.before_read else None
        if code:
            return ExceptionReply(fc, code).encode()
        data = block[offset : offset + request.count]
        if table in _BIT_TABLES:
            return encode_bits_reply(fc, [bool(v) for v in data])
        return encode_registers_reply(fc, data)


def _checked_objects(objects: Mapping[int, bytes] | None) -> dict[int, bytes] | None:
    """Identification objects as served: ids 0..255, each short enough to fit one reply PDU."""
    if objects is None:
        return None
    for oid, value in objects.items():
        if not 0 <= oid <= 0xFF or len(value) > 244:
            raise ValueError(f"identification object {oid:#04x}: id 0..255 and at most 244 bytes")
    return dict(objects)


class ModbusRtuSession:
    """An RS-485 bus of Modbus RTU slaves, for `PtyEndpoint(..., scheme="rtu")`.

    A partial frame left over after `frame_gap_s` of quiet is dropped, as the RTU inter-frame
    silence resets a real slave's receiver (the gap is generous: a pty has no baud timing).
    """

    def __init__(self, units: Mapping[int, ModbusUnit], *, frame_gap_s: float = 0.5) -> None:
        self.units = units
        self.frame_gap_s = frame_gap_s
        self.decoder = RtuRequestDecoder()
        self._last_rx = 0.0

    def receive(self, data: bytes) -> bytes:
        now = time.monotonic()
        if self.decoder.pending and now - self._last_rx > self.frame_gap_s:
            self.decoder.clear()
        self._last_rx = now
        self.decoder.feed(data)
        replies = b""
        while True:
            frame = self.decoder.next_frame()
            if not isinstance(frame, tuple):
                return replies
            if frame.unit == 0:
                self._broadcast(frame.pdu)
                continue
            unit = self.units.get(frame.unit)
            if unit is None or unit.silent:
                continue
            reply = unit.handle(frame.pdu)
            if reply is not None:
                replies += encode_rtu_frame(frame.unit, reply)

    def _broadcast(self, pdu: bytes) -> None:
        if not pdu or pdu[0] not in (0x05, 0x06, 0x0F, 0x10):
            return
        for unit in self.units.values():
            if not unit.silent:
                unit.handle(pdu)


class ModbusTcpSession:
    """Modbus TCP (MBAP) in front of some units: a native TCP device, or a gateway to an RTU bus.

    An absent unit gets exception 0x0B (gateway target failed to respond) when `gateway` is set,
    else 0x0A (gateway path unavailable); a silent unit behind a gateway also gets 0x0B.
    """

    def __init__(self, units: Mapping[int, ModbusUnit], *, gateway: bool = False) -> None:
        self.units = units
        self.gateway = gateway
        self.decoder = MbapRequestDecoder()

    def receive(self, data: bytes) -> bytes:
        self.decoder.feed(data)
        replies = b""
        while True:
            frame = self.decoder.next_frame()
            if not isinstance(frame, tuple):
                return replies
            replies += self._answer(frame.tid, frame.unit, frame.pdu)

    def _answer(self, tid: int, unit_id: int, pdu: bytes) -> bytes:
        unit = self.units.get(unit_id)
        reply = None if unit is None or unit.silent else unit.handle(pdu)
        if reply is None:
            if unit is not None and not self.gateway:
                return b""  # a hung (or unanswering) native TCP device: the host times out
            refusal = ExceptionReply(pdu[0] & 0x7F if pdu else 0, 0x0B if self.gateway else 0x0A)
            return encode_mbap_frame(tid, unit_id, refusal.encode())
        return encode_mbap_frame(tid, unit_id, reply)
