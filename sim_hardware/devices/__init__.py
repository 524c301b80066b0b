"""Simulated instruments; `MappedUnit` serves a `drivers.register_map` map in the device role.

A Modbus device simulator here is a `ModbusUnit` whose tables are laid out by the *driver's* map:
values supplied by the plant are encoded with the same fields the driver decodes, and the host's
writes are decoded with them, so host and device can only disagree if the map itself is wrong (and
the golden frames of devices.md pin the map).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

from drivers.errors import ConfigError
from drivers.modbus_pdu import COIL_ON_VALUES
from drivers.register_map import RegisterMap, RejectedWrite, Table, UnitTable, Value
from sim_hardware.modbus_device import ModbusUnit

_TABLE_OF_UNIT: dict[UnitTable, Table] = {t.unit_table: t for t in Table}

ValuesSource = Callable[[], Mapping[str, Value]]
WriteHandler = Callable[[dict[str, Value]], int | None]


class MappedUnit:
    """A `ModbusUnit` whose registers are the fields of a map, refreshed from the plant on each read.

    `values()` returns the current SI values by field name (fields it omits keep what was stored);
    `on_write(decoded)` acts on a host write and returns None to accept it or an exception code.
    Fault hooks: `stuck` (field -> value held whatever the plant says), `unavailable` (fields that
    read NaN / their sentinel, a broken sensor channel) and `unit.forced_exception`. The remaining
    options are the instrument's documented behaviour beyond the tables (see `ModbusUnit`).
    """

    def __init__(
        self,
        regmap: RegisterMap,
        unit_id: int,
        *,
        values: ValuesSource | None = None,
        on_write: WriteHandler | None = None,
        functions: frozenset[int] | None = None,
        unsupported: Literal["exception", "silent"] = "exception",
        read_aliases: Mapping[UnitTable, UnitTable] | None = None,
        coil_on: frozenset[int] = COIL_ON_VALUES,
        identification: Mapping[int, bytes] | None = None,
    ) -> None:
        self.regmap = regmap
        self.values = values
        self.handle_write = on_write
        self.stuck: dict[str, Value] = {}
        self.unavailable: set[str] = set()
        self.unit = ModbusUnit(
            unit_id,
            coils=regmap.declared_ranges(Table.COIL),
            discrete_inputs=regmap.declared_ranges(Table.DISCRETE),
            holding_registers=regmap.declared_ranges(Table.HOLDING),
            input_registers=regmap.declared_ranges(Table.INPUT),
            functions=functions,
            unsupported=unsupported,
            read_aliases=read_aliases,
            coil_on=coil_on,
            identification=identification,
        )
        self.unit.before_read = self._before_read
        self.unit.on_write = self._on_write

    def store(self, values: Mapping[str, Value]) -> None:
        """Encode SI values into the unit's tables (out-of-range values saturate, as a transmitter's do)."""
        merged = {**values, **self.stuck}
        merged.update(dict.fromkeys(self.unavailable, math.nan))
        for name, value in merged.items():
            f = self.regmap[name]
            if f.table.is_bits:
                self.unit.set_bits(f.table.unit_table, f.address, f.to_bits(value))
                continue
            try:
                words = f.to_words(value, saturate=True)
            except ConfigError:  # NaN for an integer without a sentinel: keep the last value
                continue
            self.unit.set_registers(f.table.unit_table, f.address, words)

    def read(self, name: str) -> Value:
        """The value as a host would decode it now (without refreshing from the plant)."""
        f = self.regmap[name]
        table = f.table.unit_table
        if f.table.is_bits:
            return f.from_raw(self.unit.get_bits(table, f.address, 1))
        return f.from_raw(self.unit.get_registers(table, f.address, f.words))

    def stick(self, name: str, value: Value | None = None) -> None:
        """Freeze a field at `value`, or at what the plant makes it read now."""
        if value is None:
            self.refresh()
            value = self.read(name)
        self.stuck[name] = value

    def release(self, name: str) -> None:
        self.stuck.pop(name, None)
        self.unavailable.discard(name)

    def refresh(self) -> None:
        if self.values is not None:
            self.store(self.values())

    def _before_read(self, table: UnitTable, address: int, count: int) -> int | None:
        self.refresh()
        return None

    def _on_write(self, table: UnitTable, address: int, values: list[int] | list[bool]) -> int | None:
        try:
            decoded = self.regmap.decode_write(_TABLE_OF_UNIT[table], address, values)
        except RejectedWrite as exc:
            return exc.code
        return self.handle_write(decoded) if self.handle_write is not None else None
