"""Typed field access over a parsed TOML table, so every bad value is reported the same way.

Each accessor knows the dotted path of the field it reads; a wrong type, a value out of range or an
unknown key raises `ConfigFileError` naming file, field, value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from controller.errors import MISSING, ConfigFileError


class TableReader:
    def __init__(self, path: str, table: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self._seen: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, value: Any, allowed: str) -> ConfigFileError:
        return ConfigFileError(self.path, self.field(key), value, allowed)

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self.table:
            return self.table[key]
        if default is MISSING:
            raise self.fail(key, MISSING, "this field is required")
        return default

    def has(self, key: str) -> bool:
        return key in self.table

    def text(self, key: str, default: Any = MISSING, *, choices: Iterable[str] | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, value, "must be a string")
        options = list(choices) if choices is not None else None
        if options is not None and value not in options:
            raise self.fail(key, value, f"must be one of {', '.join(options)}")
        return value

    def number(
        self, key: str, default: Any = MISSING, *, min: float | None = None, max: float | None = None
    ) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, value, "must be a finite number")
        low = -math.inf if min is None else min
        high = math.inf if max is None else max
        if not low <= value <= high:
            raise self.fail(key, value, f"allowed range is {_range_text(min, max)}")
        return float(value)

    def integer(
        self, key: str, default: Any = MISSING, *, min: int | None = None, max: int | None = None
    ) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, value, "must be an integer")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.fail(key, value, f"allowed range is {_range_text(min, max)}")
        return value

    def flag(self, key: str, default: Any = MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "must be true or false")
        return value

    def text_list(self, key: str, default: Any = MISSING) -> list[str]:
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, value, "must be a list of strings")
        return list(value)

    def number_list(self, key: str, *, length: int, min: float, max: float) -> list[float]:
        """A fixed-length list of finite numbers, each in [min, max] (a size, a window)."""
        value = self._get(key, MISSING)
        ok = (
            isinstance(value, list)
            and len(value) == length
            and all(
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and min <= v <= max
                for v in value
            )
        )
        if not ok:
            raise self.fail(key, value, f"must be {length} numbers, each {_range_text(min, max)}")
        return [float(v) for v in value]

    def table_reader(self, key: str, *, required: bool = False) -> TableReader:
        value = self._get(key, MISSING if required else {})
        if not isinstance(value, dict):
            raise self.fail(key, value, "must be a table")
        return TableReader(self.path, value, self.field(key))

    def table_list(self, key: str) -> list[TableReader]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, value, "must be an array of tables ([[" + self.field(key) + "]])")
        return [TableReader(self.path, v, f"{self.field(key)}[{i}]") for i, v in enumerate(value)]

    def raw_table(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, value, "must be a table")
        return dict(value)

    def finish(self) -> None:
        """Refuse unknown keys: a misspelt limit must never silently fall back to its default."""
        unknown = sorted(set(self.table) - self._seen)
        if unknown:
            key = unknown[0]
            raise self.fail(key, self.table[key], "unknown field (check the spelling)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range_text(low: float | None, high: float | None) -> str:
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g} .. {high:g}"
