"""What the historian raises, in a module of its own.

The writer, the migrations and the queries live in separate modules and all raise these, so the
classes cannot live in any one of them without the others importing it for nothing else; callers
import them from here.
"""

from __future__ import annotations

from controller.errors import ControllerError, UserError


class HistorianError(ControllerError):
    """The historian cannot do what was asked."""


class SchemaOutdated(HistorianError, UserError):
    """The database's schema is not the one this code writes; the message says what to run."""


class HistorianUnavailable(HistorianError):
    """A query could not reach the database (rows being recorded are not affected)."""


def describe_error(exc: BaseException) -> str:
    """An exception's type and first line: what health, logs and `HistorianUnavailable` show."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


__all__ = ["HistorianError", "HistorianUnavailable", "SchemaOutdated", "describe_error"]
