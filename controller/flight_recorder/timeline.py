"""`depline timeline`: one time-ordered sequence of events from every record the line keeps.

Why it is built this way:

- **One order for everything.** Job and phase events, alarms (raised, acknowledged, shelved, cleared,
  with who), every command (origin, user, verdict, the refusal's invariant), station transitions, mode
  changes and item moves live in six tables; an engineer asking "what happened first" needs them
  interleaved by time, each line saying where it came from.
- **Plant time beside wall time.** On the simulated line the plant runs faster than the wall clock;
  a job's `attempt` events record the speed, and the timeline shows plant seconds since the start of
  the window at that speed (1.0 when nothing says otherwise: a real line).
- **First-out stays visible.** An alarm row that the recorder marked first-out keeps the mark.
- **A space filter by name.** An entry concerns space S when S names its space, station or item
  location, or appears in its command target or alarm id: a word match on the record's own fields,
  so nothing is inferred that the record does not say.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.errors import UserError
from controller.historian.store import Historian
from controller.reports.events import event_words
from controller.reports.gather import shown_url
from controller.reports.wording import utc


@dataclass(frozen=True, slots=True)
class Entry:
    ts: float
    plant_s: float  # plant seconds since the start of the window
    source: str  # job, alarm, command, station, mode, item
    kind: str
    text: str
    first_out: bool
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Window:
    since_ts: float
    until_ts: float
    plant_speed: float
    what: str  # "job B…-J01", "batch B…", or "range"


async def window_of_run(historian: Historian, run: str) -> Window:
    """The window of a job or batch id (its start to its end, or to now if it has not ended), or of a
    service run id; anything else is a `UserError` naming the database."""
    rows = await historian.production_jobs(run)
    started = [float(r["started_at"]) for r in rows if r["started_at"] is not None]
    if rows and started:
        ended = [float(r["ended_at"]) for r in rows if r["ended_at"] is not None]
        until = max(ended) if len(ended) == len(rows) else float("inf")
        speed = await plant_speed_of(historian, [str(r["id"]) for r in rows])
        what = f"job {run}" if len(rows) == 1 and rows[0]["id"] == run else f"batch {run}"
        return Window(min(started), until, speed, what)
    if rows:
        raise UserError(f"timeline: {run} in {shown_url(historian.url)} has not started: nothing to show")
    service = await historian.run(run)
    if service is not None:
        end = service["ended_at"]
        return Window(
            float(service["started_at"]), float("inf") if end is None else float(end), 1.0, f"run {run}"
        )
    raise UserError(f"timeline: {shown_url(historian.url)} has no job, batch or service run {run!r}")


async def plant_speed_of(historian: Historian, job_ids: Sequence[str]) -> float:
    for job_id in job_ids:
        for event in reversed(await historian.job_events(job_id)):
            speed = event["detail"].get("plant_speed") if isinstance(event["detail"], dict) else None
            if event["kind"] == "attempt" and isinstance(speed, int | float) and speed > 0:
                return float(speed)
    return 1.0


async def timeline(historian: Historian, window: Window, *, space: str | None = None) -> list[Entry]:
    rows = await historian.timeline_rows(window.since_ts, window.until_ts)
    entries = [
        _entry(source, row, window)
        for source, found in rows.items()
        for row in found
        if _concerns(row, space)
    ]
    return sorted(entries, key=lambda e: (e.ts, e.source))


def _concerns(row: dict[str, Any], space: str | None) -> bool:
    if space is None:
        return True
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(space)}(?![A-Za-z0-9_])")
    return any(isinstance(v, str | dict | list) and pattern.search(json.dumps(v)) for v in row.values())


def _entry(source: str, row: dict[str, Any], window: Window) -> Entry:
    ts = float(row["ts"])
    kind, text = event_words(source, row)
    detail = {k: v for k, v in row.items() if k not in ("id", "ts")}
    return Entry(
        ts,
        (ts - window.since_ts) * window.plant_speed,
        source,
        kind,
        text,
        bool(row.get("first_out")),
        detail,
    )


def render_timeline(window: Window, entries: Sequence[Entry]) -> str:
    until = utc(window.until_ts) if window.until_ts != float("inf") else "now"
    head = f"timeline of {window.what}: {utc(window.since_ts)} .. {until}"
    if window.plant_speed != 1.0:
        head += f" (plant time at {window.plant_speed:g}x)"
    lines = [head, f"{'WALL (UTC)':<23} {'PLANT':>10}  {'SOURCE':<8} TEXT"]
    for e in entries:
        mark = "FIRST-OUT " if e.first_out else ""
        lines.append(
            f"{utc(e.ts, digits=1).removesuffix(' UTC'):<23} {_plant(e.plant_s):>10}  "
            f"{e.source:<8} {mark}{e.text}"
        )
    if not entries:
        lines.append("(no events in this window)")
    return "\n".join(lines) + "\n"


def _plant(seconds: float) -> str:
    if seconds < 3600:
        return f"+{seconds:.1f} s"
    return f"+{seconds / 3600:.2f} h"
