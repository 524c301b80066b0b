"""One line of words for each recorded event, whatever table it came from: the timeline's and the
certificate's wording.

Why it is here: `depline timeline` (the flight recorder) and the certificate's "events" section show
the same records, and a reader comparing them must find the same words; the reports layer sits below
the flight recorder, so the wording lives here and both use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

Wording = Callable[[dict[str, Any]], tuple[str, str]]


def event_words(source: str, row: dict[str, Any]) -> tuple[str, str]:
    """(kind, text) of one row of a `source` table: job, alarm, command, station, mode or item."""
    return WORDING[source](row)


def _job(row: dict[str, Any]) -> tuple[str, str]:
    detail = row["detail"] if isinstance(row["detail"], dict) else {}
    pairs = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))
    return str(row["kind"]), f"{row['job_id']}: {row['kind']} {pairs}".rstrip()


def _alarm(row: dict[str, Any]) -> tuple[str, str]:
    who = f" by {row['user']}" if row.get("user") else ""
    why = f" ({row['reason']})" if row.get("reason") else ""
    follows = f" (follows {row['follows']})" if row.get("follows") else ""
    return str(row["event"]), (
        f"{row['severity']} {row['alarm_id']} {row['event']}{who}{why}{follows}: "
        f"{row['from_state']} -> {row['to_state']}; {row['evidence']}"
    )


def _command(row: dict[str, Any]) -> tuple[str, str]:
    action = row["action"] if isinstance(row["action"], dict) else {"action": row["action"]}
    what = " ".join(str(v) for v in action.values())
    verdict = str(row["outcome"])
    why = ""
    if verdict != "done":
        parts = [str(row.get("invariant") or ""), str(row.get("reason") or ""), str(row.get("error") or "")]
        why = ": " + "; ".join(p for p in parts if p)
    return verdict, f"{row['origin']} {row['user']} {what} -> {verdict}{why}"


def _station(row: dict[str, Any]) -> tuple[str, str]:
    return str(
        row["trigger"]
    ), f"{row['station']} {row['source']} -> {row['dest']} ({row['trigger']}: {row['reason']})"


def _mode(row: dict[str, Any]) -> tuple[str, str]:
    device = (
        f" device {row['device']} {'in' if row.get('in_service') else 'out of'} service"
        if row.get("device")
        else ""
    )
    return str(row["mode"]), f"{row['previous']} -> {row['mode']}{device} by {row['user']} ({row['reason']})"


def _item(row: dict[str, Any]) -> tuple[str, str]:
    exposed = " unsealed" if row["exposed"] else ""
    return str(row["event"]), f"{row['item']} {row['event']} in {row['space']} ({row['atmosphere']}{exposed})"


WORDING: Final[dict[str, Wording]] = {
    "job": _job,
    "alarm": _alarm,
    "command": _command,
    "station": _station,
    "mode": _mode,
    "item": _item,
}

__all__ = ["WORDING", "event_words"]
