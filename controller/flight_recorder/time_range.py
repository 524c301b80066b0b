"""Instants as people type them: ISO 8601 (UTC unless an offset is given) or epoch seconds.

Why UTC by default: the records hold epoch seconds and a line's night shift crosses midnight and, twice
a year, a clock change; an engineer comparing a printout with a log must not depend on the local zone
of the machine running the command.
"""

from __future__ import annotations

import datetime as dt
import math

from controller.errors import UserError


def parse_instant(option: str, text: str) -> float:
    """Epoch seconds for `text`, or a `UserError` naming the option and the accepted forms."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value >= 0:
            return value
        raise UserError(f"{option} {text!r}: epoch seconds must be a finite number >= 0")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected an ISO 8601 time such as 2026-12-06T02:13 (UTC unless an "
            "offset is given) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
