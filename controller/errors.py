"""Typed errors of the controller package."""

from __future__ import annotations

from typing import Any


class ControllerError(Exception):
    """Root of every error raised by `controller`."""


class UserError(ControllerError):
    """Bad input from a person: the CLI prints the message alone and exits 2, never a traceback."""


class ConfigFileError(UserError):
    """A configuration value is missing or outside what is allowed.

    The message names the file, the field (dotted path), the value found and what is allowed, so the
    engineer can fix the file without reading code.
    """

    def __init__(self, path: str, field: str, value: Any, allowed: str) -> None:
        self.path = path
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = "missing" if value is _MISSING else shown_value(value)
        super().__init__(f"{one_line(path)}: {one_line(field)} = {shown}: {one_line(allowed)}")


SHOWN_VALUE_CHARS = 80


def one_line(text: str) -> str:
    """`text` with every non-printable character escaped: a hostile key or file name cannot split the
    one-line message (or forge a second one) in an operator's terminal or a log."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def shown_value(value: Any) -> str:
    """A value as the message quotes it: its repr, cut short, so a megabyte string or an array nested a
    thousand deep still gives one readable line (repr escapes control characters itself)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deep; an int beyond the digit limit
        text = f"<{type(value).__name__} too large to show>"
    text = one_line(text)
    if len(text) > SHOWN_VALUE_CHARS:
        text = text[: SHOWN_VALUE_CHARS - 3] + "..."
    return text


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
MISSING = _MISSING
