"""Declarative Modbus register maps: one definition serves the host role and the device role.

A map is a list of `Field`s (name, table, address, type, word order, scale, SI unit, access). The
driver decodes reads and encodes writes with it; the simulator encodes its values and decodes the
host's writes with the *same* fields, so the two roles cannot drift apart, and the documentation
(docs/register_maps.md) is rendered from it too (``python -m drivers.register_map_docs``).

Register layout of a 32-bit value (bytes inside one register are always big-endian on Modbus; only
the order of the two registers varies, per device, never globally)::

    300.0 as float32 = 0x4396_0000
    word order "big"    (MSW first, Eurotherm):  reg n = 0x4396   reg n+1 = 0x0000
    word order "little" (LSW first, Vaisala):    reg n = 0x0000   reg n+1 = 0x4396

Scaling: the SI value = raw wire number x `scale` (an int16 "x100" register has scale 0.01; a float
in mbar exposed in Pa has scale 100). "Unavailable" is NaN for floats and a per-field raw sentinel
for integers (0x8000 for a Vaisala int16); both decode to NaN so the driver can flag the quality.

Reads are planned as blocks: fields of one table whose addresses lie in one readable span are read
with a single request (at most 125 registers or 2000 bits), so a poll costs a few requests.

The module is sans-I/O except `MappedDevice`, the thin async host shell over any client with the
`drivers.modbus.ModbusClient` methods (`RegisterClient`).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from drivers.errors import ConfigError, ProtocolError

WordOrder = Literal["big", "little"]
UnitTable = Literal["coils", "discrete_inputs", "holding_registers", "input_registers"]
Value = float | bool
"""A decoded field: a bool for bit fields and BOOL registers, a number otherwise (NaN = unavailable)."""

MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000

EXC_ILLEGAL_ADDRESS = 0x02
EXC_ILLEGAL_VALUE = 0x03


class Table(enum.Enum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def unit_table(self) -> UnitTable:
        """The table's name in `sim_hardware.modbus_device.ModbusUnit`."""
        return _UNIT_TABLES[self]

    @property
    def read_function(self) -> int:
        return _READ_FC[self]

    @property
    def max_read(self) -> int:
        return MAX_READ_BITS if self.is_bits else MAX_READ_REGISTERS


_UNIT_TABLES: dict[Table, UnitTable] = {
    Table.COIL: "coils",
    Table.DISCRETE: "discrete_inputs",
    Table.HOLDING: "holding_registers",
    Table.INPUT: "input_registers",
}
_READ_FC = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}
_TABLE_ORDER = {Table.HOLDING: 0, Table.INPUT: 1, Table.COIL: 2, Table.DISCRETE: 3}


class DataType(enum.Enum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"
    BOOL = "bool"

    @property
    def words(self) -> int:
        return 2 if self in (DataType.UINT32, DataType.INT32, DataType.FLOAT32) else 1

    @property
    def int_range(self) -> tuple[int, int]:
        return _INT_RANGES[self]


_INT_RANGES = {
    DataType.UINT16: (0, 0xFFFF),
    DataType.INT16: (-0x8000, 0x7FFF),
    DataType.UINT32: (0, 0xFFFF_FFFF),
    DataType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
    DataType.BOOL: (0, 1),
    DataType.FLOAT32: (0, 0),
}
_FLOAT32_MAX = 3.4028234663852886e38


class Access(enum.Enum):
    R = "R"
    RW = "RW"
    W = "W"

    @property
    def readable(self) -> bool:
        return self is not Access.W

    @property
    def writable(self) -> bool:
        return self is not Access.R


@dataclass(frozen=True, slots=True)
class Field:
    """One named value at a fixed place in a device's data tables."""

    name: str
    table: Table
    address: int
    type: DataType
    unit: str = ""
    scale: float = 1.0
    access: Access = Access.R
    description: str = ""
    wire_unit: str = ""
    """The unit of the raw wire number when it differs from `unit` (``mbar`` for a value shown in Pa)."""
    word_order: WordOrder | None = None
    """None: the map's word order."""
    unavailable: int | None = None
    """Raw (unsigned) integer meaning "no value", e.g. 0x8000 for a Vaisala int16; floats use NaN."""

    def __post_init__(self) -> None:
        if self.table.is_bits and self.type is not DataType.BOOL:
            raise ConfigError(f"{self.name}: a {self.table.value} field must be bool, not {self.type.value}")
        if not 0 <= self.address <= 0xFFFF or self.address + self.words > 0x10000:
            raise ConfigError(f"{self.name}: address {self.address} outside 0..65535")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ConfigError(f"{self.name}: scale must be finite and non-zero")

    @property
    def words(self) -> int:
        """Registers (or bits) the field occupies."""
        return 1 if self.table.is_bits else self.type.words

    @property
    def end(self) -> int:
        return self.address + self.words

    @property
    def resolved_word_order(self) -> WordOrder:
        return self.word_order or "big"

    # -- encoding: host writes, device replies ------------------------------------------------------

    def to_words(self, value: Value, *, saturate: bool = False) -> list[int]:
        """Register words for `value` in SI units.

        The host encodes strictly (an out-of-range setpoint raises `ConfigError` before any I/O); a
        simulated device passes `saturate=True` and pins an out-of-range plant value at the limit,
        as a real transmitter's output does.
        """
        if self.table.is_bits:
            raise ConfigError(f"{self.name}: a bit field has no register words")
        if self.type is DataType.FLOAT32:
            raw_bytes = self._float_bytes(float(value), saturate)
            hi, lo = (raw_bytes[0] << 8) | raw_bytes[1], (raw_bytes[2] << 8) | raw_bytes[3]
        else:
            raw = self._raw_int(value, saturate)
            if self.words == 1:
                return [raw]
            hi, lo = raw >> 16, raw & 0xFFFF
        return [hi, lo] if self.resolved_word_order == "big" else [lo, hi]

    def to_bits(self, value: Value) -> list[bool]:
        if not self.table.is_bits:
            raise ConfigError(f"{self.name}: a register field has no bits")
        return [bool(value)]

    def _float_bytes(self, value: float, saturate: bool) -> bytes:
        wire = value / self.scale
        if math.isfinite(wire) and abs(wire) > _FLOAT32_MAX:
            if not saturate:
                raise ConfigError(f"{self.name}: {value} does not fit a float32")
            wire = math.copysign(_FLOAT32_MAX, wire)
        return struct.pack(">f", wire)

    def _raw_int(self, value: Value, saturate: bool) -> int:
        lo, hi = self.type.int_range
        if isinstance(value, bool) or self.type is DataType.BOOL:
            raw = 1 if value else 0
        elif math.isnan(value):
            if self.unavailable is None:
                raise ConfigError(f"{self.name}: NaN has no encoding (no 'unavailable' sentinel)")
            return self.unavailable
        elif math.isinf(value):
            if not saturate:
                raise ConfigError(f"{self.name}: {value} is outside {lo}..{hi} raw")
            raw = hi if value > 0 else lo
        else:
            raw = round(value / self.scale)
        if not lo <= raw <= hi:
            if not saturate:
                raise ConfigError(f"{self.name}: {value} {self.unit} is outside {lo}..{hi} raw")
            raw = min(max(raw, lo), hi)
        bits = 16 * self.words
        return raw & ((1 << bits) - 1)

    # -- decoding: host reads, device writes -------------------------------------------------------

    def from_raw(self, raw: Sequence[int]) -> Value:
        """The SI value of this field's registers (or bit); NaN when the device says "unavailable"."""
        if len(raw) != self.words:
            raise ProtocolError(f"{self.name}: expected {self.words} word(s), got {len(raw)}")
        if self.table.is_bits:
            return bool(raw[0])
        words = list(raw)
        if self.words == 2 and self.resolved_word_order == "little":
            words.reverse()
        if self.type is DataType.FLOAT32:
            wire = struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]
            return float(wire) * self.scale
        unsigned = words[0] if self.words == 1 else (words[0] << 16) | words[1]
        if self.unavailable is not None and unsigned == self.unavailable:
            return math.nan
        if self.type is DataType.BOOL:
            return unsigned != 0
        bits = 16 * self.words
        signed = unsigned - (1 << bits) if self.type.int_range[0] < 0 and unsigned >> (bits - 1) else unsigned
        return signed if self.scale == 1 else signed * self.scale


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: a span of one table and the wanted fields inside it."""

    table: Table
    address: int
    count: int
    fields: tuple[Field, ...]

    def decode(self, raw: Sequence[int]) -> dict[str, Value]:
        if len(raw) < self.count:
            raise ProtocolError(f"block at {self.address}: expected {self.count} values, got {len(raw)}")
        out: dict[str, Value] = {}
        for f in self.fields:
            offset = f.address - self.address
            out[f.name] = f.from_raw(raw[offset : offset + f.words])
        return out


class RejectedWrite(ValueError):
    """A write the device role refuses; `code` is the Modbus exception code to answer with."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        super().__init__(detail)


class RegisterMap:
    """A device's fields, validated (unique names, no overlaps) with one word order per map.

    `max_gap` lets block reads bridge unused addresses: a project-defined device declares whole
    blocks (reserved registers read 0), a vendor map (max_gap 0) only bridges over its own fields.
    `blocks` are address spans the vendor documents as readable whole (a status block with an unused
    register inside); reads may span them and a simulated device answers all of them.
    `single_register_writes` False: the device has no FC 06, so one-register fields go out as FC 16.
    """

    def __init__(
        self,
        name: str,
        fields: Iterable[Field],
        *,
        word_order: WordOrder = "big",
        title: str = "",
        notes: str = "",
        max_gap: int = 0,
        blocks: Mapping[Table, Iterable[range]] | None = None,
        single_register_writes: bool = True,
    ) -> None:
        self.name = name
        self.title = title or name
        self.notes = notes
        self.word_order: WordOrder = word_order
        self.max_gap = max_gap
        self.blocks = {table: tuple(spans) for table, spans in (blocks or {}).items()}
        self.single_register_writes = single_register_writes
        resolved = [f if f.word_order else replace(f, word_order=word_order) for f in fields]
        self.fields: tuple[Field, ...] = tuple(
            sorted(resolved, key=lambda f: (_TABLE_ORDER[f.table], f.address))
        )
        self._by_name: dict[str, Field] = {}
        for f in self.fields:
            if f.name in self._by_name:
                raise ConfigError(f"{name}: field name {f.name!r} used twice")
            self._by_name[f.name] = f
        for a, b in zip(self.fields, self.fields[1:], strict=False):
            if a.table is b.table and b.address < a.end:
                raise ConfigError(f"{name}: {a.name} and {b.name} overlap in the {a.table.value} table")
        self._ranges = {table: self._merge(table) for table in Table}
        self._plans: dict[tuple[str, ...] | None, list[Block]] = {}

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"{self.name}: no field {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def in_table(self, table: Table) -> list[Field]:
        return [f for f in self.fields if f.table is table]

    def declared_ranges(self, table: Table) -> list[range]:
        """The addresses a device with this map answers (fields, plus bridged gaps ≤ `max_gap`)."""
        return list(self._ranges[table])

    def _merge(self, table: Table) -> list[range]:
        pieces = [(f.address, f.end) for f in self.in_table(table)]
        pieces += [(r.start, r.stop) for r in self.blocks.get(table, ()) if len(r)]
        spans: list[list[int]] = []
        for start, end in sorted(pieces):
            if spans and start - spans[-1][1] <= self.max_gap:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        return [range(a, b) for a, b in spans]

    def _readable_span(self, table: Table, start: int, stop: int) -> bool:
        return any(r.start <= start and stop <= r.stop for r in self._ranges[table])

    # -- host role ----------------------------------------------------------------------------------

    def plan(self, names: Iterable[str] | None = None) -> list[Block]:
        """Block reads covering `names` (default: every readable field), as few as the limits allow."""
        key = None if names is None else tuple(names)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        wanted = [f for f in self.fields if f.access.readable] if key is None else [self[n] for n in key]
        wanted.sort(key=lambda f: (_TABLE_ORDER[f.table], f.address))
        blocks: list[Block] = []
        for f in wanted:
            last = blocks[-1] if blocks else None
            if (
                last is not None
                and last.table is f.table
                and f.end - last.address <= f.table.max_read
                and self._readable_span(f.table, last.address, f.end)
            ):
                count = max(last.count, f.end - last.address)
                blocks[-1] = Block(f.table, last.address, count, (*last.fields, f))
            else:
                blocks.append(Block(f.table, f.address, f.words, (f,)))
        self._plans[key] = blocks
        return blocks

    # -- device role --------------------------------------------------------------------------------

    def fields_at(self, table: Table, address: int, count: int) -> list[Field]:
        """Fields overlapping `count` registers (bits) from `address`."""
        stop = address + count
        return [f for f in self.fields if f.table is table and f.address < stop and address < f.end]

    def decode_write(self, table: Table, address: int, raw: Sequence[int]) -> dict[str, Value]:
        """Decode a host's write; a write that splits a field or hits a read-only one is refused.

        A single-register write (FC06) into a float pair splits it: exception 03, which is how a
        Eurotherm refuses FC06 into its IEEE region.
        """
        stop = address + len(raw)
        out: dict[str, Value] = {}
        for f in self.fields_at(table, address, len(raw)):
            if f.address < address or f.end > stop:
                raise RejectedWrite(
                    EXC_ILLEGAL_VALUE, f"{f.name}: write covers part of a {f.words}-word value"
                )
            if not f.access.writable:
                raise RejectedWrite(EXC_ILLEGAL_ADDRESS, f"{f.name} is read-only")
            offset = f.address - address
            out[f.name] = f.from_raw(raw[offset : offset + f.words])
        return out

    # -- documentation ------------------------------------------------------------------------------

    def render_markdown(self) -> str:
        order = "MSW first (big)" if self.word_order == "big" else "LSW first (little)"
        lines = [f"## {self.title}", ""]
        if self.notes:
            lines += [self.notes.strip(), ""]
        lines += [
            f"Map `{self.name}`; 32-bit values: two registers, bytes big-endian, words {order}.",
            "Value in SI unit = raw x scale.",
            "",
            "| table | address | hex | name | type | scale | unit | access | description |",
            "|---|---:|---:|---|---|---:|---|---|---|",
        ]
        for f in self.fields:
            lines.append(
                f"| {f.table.value} (FC{f.table.read_function:02d}) | {f.address} | 0x{f.address:04X} "
                f"| `{f.name}` | {_type_text(f, self.word_order)} | {_scale_text(f)} | {f.unit or '-'} "
                f"| {f.access.value} | {_description_text(f)} |"
            )
        return "\n".join(lines) + "\n"


def _type_text(f: Field, map_order: WordOrder) -> str:
    if f.words == 2 and f.word_order != map_order:
        return f"{f.type.value} ({'MSW' if f.word_order == 'big' else 'LSW'} first)"
    return f.type.value


def _scale_text(f: Field) -> str:
    if f.type is DataType.BOOL:
        return "-"
    text = f"{f.scale:g}"
    return f"{text} (wire {f.wire_unit})" if f.wire_unit else text


def _description_text(f: Field) -> str:
    text = f.description.replace("|", "/")
    if f.type is DataType.FLOAT32 and f.access is Access.R:
        return f"{text}; NaN = unavailable"
    if f.unavailable is not None:
        return f"{text}; 0x{f.unavailable:04X} = unavailable"
    return text


# -- host I/O shell -----------------------------------------------------------------------------------


class RegisterClient(Protocol):
    """What `MappedDevice` needs of a Modbus client (`drivers.modbus.ModbusClient` has it all)."""

    async def read_holding_registers(self, unit: int, address: int, count: int) -> list[int]: ...
    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]: ...
    async def read_coils(self, unit: int, address: int, count: int) -> list[bool]: ...
    async def read_discrete_inputs(self, unit: int, address: int, count: int) -> list[bool]: ...
    async def write_register(self, unit: int, address: int, value: int) -> None: ...
    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None: ...
    async def write_coil(self, unit: int, address: int, value: bool) -> None: ...
    async def write_coils(self, unit: int, address: int, values: Sequence[bool]) -> None: ...


class MappedDevice:
    """Reads and writes one unit's fields by name through a shared client.

    Single-register fields are written with FC06 (FC16 on a map without it), wider ones always with
    FC16 (a Eurotherm refuses FC06 into its float region), coils with FC05.
    """

    def __init__(self, client: RegisterClient, regmap: RegisterMap, unit: int) -> None:
        if not 0 <= unit <= 255:
            raise ConfigError(f"{regmap.name}: unit id {unit} outside 0..255")
        self.client = client
        self.regmap = regmap
        self.unit = unit

    async def read_raw(self, table: Table, address: int, count: int) -> list[int] | list[bool]:
        c, u = self.client, self.unit
        if table is Table.HOLDING:
            return await c.read_holding_registers(u, address, count)
        if table is Table.INPUT:
            return await c.read_input_registers(u, address, count)
        if table is Table.COIL:
            return await c.read_coils(u, address, count)
        return await c.read_discrete_inputs(u, address, count)

    async def read(self, names: Iterable[str] | None = None) -> dict[str, Value]:
        """The named fields (default all readable ones), in as few requests as the map allows."""
        values: dict[str, Value] = {}
        for block in self.regmap.plan(names):
            values.update(block.decode(await self.read_raw(block.table, block.address, block.count)))
        return values

    async def read_value(self, name: str) -> Value:
        return (await self.read((name,)))[name]

    async def write(self, name: str, value: Value) -> None:
        f = self.regmap[name]
        if not f.access.writable:
            raise ConfigError(f"{self.regmap.name}: {name} is read-only")
        if f.table is Table.COIL:
            await self.client.write_coil(self.unit, f.address, bool(value))
        elif f.table is not Table.HOLDING:
            raise ConfigError(f"{self.regmap.name}: {name} sits in a read-only table")
        elif f.words == 1 and self.regmap.single_register_writes:
            await self.client.write_register(self.unit, f.address, f.to_words(value)[0])
        else:
            await self.client.write_registers(self.unit, f.address, f.to_words(value))
