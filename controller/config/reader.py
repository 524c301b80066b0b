"""Typed field access over a parsed TOML table, so every bad value is reported the same way.

Each accessor knows the dotted path of the field it reads; a wrong type, a value out of range or an
unknown key raises `ConfigFileError` naming file, field, value and what is allowed. `read_toml` is the
one way the line configuration, recipes, queues and scenarios are read, so a file that is not text,
not UTF-8, not TOML, nested too deep or holding an unreadable number fails the same one-line way.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.errors import MISSING, ConfigFileError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_FILE_BYTES = 1_000_000  # the largest shipped file is ~10 kB; a bigger one is a mistake (or /dev/zero)


def file_text(path: str | Path, shown: str | None = None) -> str:
    """The file as UTF-8 text; unreadable, too large or not UTF-8 is a ConfigFileError naming the file."""
    shown = str(path) if shown is None else shown
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(shown, "(file)", shown, f"cannot be read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise ConfigFileError(shown, "(file)", shown, "cannot be read: not a valid path") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigFileError(shown, "(file)", shown, f"larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"byte 0x{data[exc.start]:02x} on line {line}"
        raise ConfigFileError(shown, "(file)", shown, f"is not UTF-8 text ({where})") from None


def toml_table(text: str, shown: str) -> dict[str, Any]:
    """The parsed document; every way `tomllib` can refuse it is a ConfigFileError, never a traceback."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(shown, "(syntax)", "", f"is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of [[...]] or {...}
        raise ConfigFileError(shown, "(syntax)", "", "arrays or inline tables nested too deeply") from None
    except ValueError:  # an integer beyond Python's digit limit (4300 digits)
        raise ConfigFileError(shown, "(syntax)", "", "a number too long to read") from None


def read_toml(path: str | Path, shown: str | None = None) -> tuple[str, dict[str, Any]]:
    """The file's text (runs record it) and its parsed document."""
    shown = str(path) if shown is None else shown
    text = file_text(path, shown)
    return text, toml_table(text, shown)


class TableReader:
    def __init__(self, path: str, table: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self._seen: set[str] = set()

    def field(self, key: str) -> str:
        shown = key if _BARE_KEY.fullmatch(key) else f'"{key}"'  # as TOML spells it: "" or "a.b" quoted
        return f"{self.prefix}.{shown}" if self.prefix else shown

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
