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
        shown = "missing" if value is _MISSING else repr(value)
        super().__init__(f"{path}: {field} = {shown}: {allowed}")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
MISSING = _MISSING
