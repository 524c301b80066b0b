"""Gathering a certificate from the historian's records: each item's ledger, its verdict, the plot data.

Why it is built this way:

- **From the records only.** `gather_report` reads the historian (a `Historian.reader`, which never
  migrates or closes runs), never a live controller: a certificate printed a year later must say
  what one printed at the end of the job said.
- **The verdict errs on the safe side.** Time counts as not inert from a `non_inert` ledger entry,
  or an exposed entry in air, an out-of-spec inert gas or an unknown atmosphere, until the item is
  sealed or its space is inert in spec, vacuum or process gas again. An evacuating or back-filling
  space is judged by the live ledger (it wrote `non_inert` when that was unsafe) and neither starts
  nor ends such a time. A restart's `restored` entry counts the time nobody watched as not proven
  inert. An air-sensitive item with no ledger entry at all has no proof and fails.
- **Plots are bounded.** Each curve is at most `PLOT_POINTS` points however long the job: the
  database groups the samples into buckets and returns each bucket's minimum and maximum, so a burst
  or an excursion still shows (`Historian.sample_envelope`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from controller.config.line_config import ROOM, LineConfig
from controller.errors import UserError
from controller.historian.schema import async_url
from controller.historian.store import Historian
from controller.line.ledger import LedgerEntry, exposure_from_entries
from controller.line.materials import MaterialError, material
from controller.line.state import LineReadings
from controller.reports.events import event_words
from controller.reports.layers import layers_of
from controller.reports.record import (
    Confirmation,
    Episode,
    Handling,
    ItemReport,
    JobEvent,
    JobReport,
    Move,
    Plot,
    Quantity,
    RunReport,
    Series,
)
from controller.reports.wording import as_number, duration, evidence_text, utc
from sequences.job_record import record_findings

SAFE_ATMOSPHERES: Final = frozenset({"inert_in_spec", "vacuum", "process"})
JUDGED_LIVE: Final = frozenset({"evacuating", "back_filling"})  # safe or not by provenance: the ledger says
REQUIRED_TABLES: Final = frozenset(
    {"jobs", "job_events", "batches", "ledger", "items", "commands", "samples"}
)
ATMOSPHERIC_RANGE_PA: Final = 10_000.0  # LineReadings.pressure: above this the vacuum heads give way
ALARM_ANSWERS: Final = frozenset({"acknowledge", "shelve", "unshelve"})
ALARM_ANSWER_WINDOW_S: Final = 24 * 3600.0  # how long after a job its alarms' answers are its own
PLOT_POINTS: Final = 600  # per curve: about one per horizontal pixel of the HTML plot


async def gather_report(
    historian: Historian,
    config: LineConfig,
    run: str,
    *,
    now_ts: float | None = None,
    plot_points: int = PLOT_POINTS,
    line_events: bool = True,
) -> RunReport:
    """Everything a certificate shows for `run` (a job id, or a batch id: all its jobs).

    Raises `UserError` for a run the database does not know and for a database whose schema predates
    the production tables. `now_ts` ends the window of a job that has not ended. Without
    `line_events` a job's events are its own only (a listing of many jobs reads their verdicts).
    """
    shown = shown_url(historian.url)
    missing = REQUIRED_TABLES - await historian.table_names()
    if missing:
        raise UserError(
            f"{shown} has no production records (tables {', '.join(sorted(missing))} missing): its schema "
            "is older than this depline; run `depline db upgrade` on it first"
        )
    rows = await historian.production_jobs(run)
    if not rows:
        raise UserError(f"report: {shown} has no production job or batch {run!r}")
    now = time.time() if now_ts is None else now_ts
    batch_id = rows[0]["batch_id"]
    batch = await historian.production_batch(batch_id) if batch_id else None
    readings = LineReadings(config)
    jobs = [await _job_report(historian, readings, row, now, plot_points, line_events) for row in rows]
    return RunReport(run, config.name, shown, now, batch, tuple(jobs), config.not_for_production)


def shown_url(url: str) -> str:
    """A database URL as shown to people: without its password."""
    target = async_url(url)
    return target.set(drivername=target.get_backend_name()).render_as_string(hide_password=True)


def _roles(items: dict[str, Any]) -> list[tuple[str, str]]:
    roles = [
        ("electrode (base)", str(items["base"])),
        ("container in", str(items["container"])),
        ("container out", str(items["out_container"])),
    ]
    targets = items.get("targets") or {}
    roles += [(f"target {target}", str(item)) for target, item in sorted(targets.items())]
    return roles


async def _job_report(
    historian: Historian,
    readings: LineReadings,
    row: dict[str, Any],
    now: float,
    plot_points: int,
    line_events: bool,
) -> JobReport:
    roles = _roles(row["items"])
    ids = list(dict.fromkeys(item for _role, item in roles))
    started, ended = row["started_at"], row["ended_at"]
    end_ts = ended if ended is not None else now
    entries = await historian.ledger_entries(ids)
    if ended is not None:  # what happened to a target left in the line after the job is not this job's:
        # a certificate printed a year later must say what it said at the end of the job
        entries = {item: [e for e in found if e.ts <= ended] for item, found in entries.items()}
    known = await historian.items_by_id(ids)
    times = [t for t in (started, ended) if t is not None]
    times += [e.ts for found in entries.values() for e in found]
    times += [float(r["registered_at"]) for r in known.values()]
    handling = (
        await historian.inventory_commands(ids, since=min(times), until=max([*times, end_ts]))
        if times
        else []
    )
    events = await historian.job_events(row["id"])
    reports = [
        _item_report(role, item, known.get(item), entries[item], _handling(item, handling), end_ts)
        for role, item in roles
    ]
    base = roles[0][1]
    plot = (
        await _plot(historian, readings, base, entries[base], started, ended, now, plot_points)
        if plot_points > 0  # a listing of many jobs wants their verdicts, not their curves
        else None
    )
    return JobReport(
        id=str(row["id"]),
        batch_id=row["batch_id"],
        position=int(row["position"]),
        name=str(row["name"]),
        recipe_path=str(row["recipe_path"]),
        state=str(row["state"]),
        outcome=row["outcome"],
        message=str(row["message"]),
        started_at=started,
        ended_at=ended,
        confirmations=tuple(_confirmation(e["detail"]) for e in events if e["kind"] == "confirm"),
        # a listing of many jobs wants their verdicts, not the line's events around each
        events=await _merged_events(
            historian, events, (started, end_ts) if line_events and started is not None else None
        ),
        items=tuple(reports),
        plot=plot,
        findings=tuple(record_findings(events)),
        layers=layers_of(events),
    )


def _confirmation(detail: Any) -> Confirmation:
    d = detail if isinstance(detail, dict) else {}
    return Confirmation(
        str(d.get("prompt", "")),
        str(d.get("user", "")),
        str(d.get("via", "")),
        as_number(d.get("asked_at")),
        as_number(d.get("confirmed_at")),
        as_number(d.get("waited_s")),
    )


async def _merged_events(
    historian: Historian, events: Sequence[dict[str, Any]], window: tuple[float, float] | None
) -> tuple[JobEvent, ...]:
    """The job's own events (confirmations have their own section) and, over its window, the line's
    alarms, mode changes, station transitions and the commands that were not routine: refused or
    failed ones, forced ones, the supervisor's safe actions and a person's. The sequence's own done
    moves and the item ledger are left to the timeline and the items' sections: they would bury these."""
    merged = [
        JobEvent(float(e["ts"]), str(e["kind"]), _event_text(e["kind"], e["detail"]))
        for e in events
        if e["kind"] != "confirm"
    ]
    if window is not None:
        rows = await historian.timeline_rows(*window)
        rows["alarm"] += await _answers_after(historian, rows["alarm"], window[1])
        for source in ("alarm", "command", "station", "mode"):
            for row in rows[source]:
                if source == "command" and not _notable(row):
                    continue
                kind, text = event_words(source, row)
                merged.append(JobEvent(float(row["ts"]), kind, text, source, bool(row.get("first_out"))))
    return tuple(sorted(merged, key=lambda e: e.ts))


async def _answers_after(
    historian: Historian, alarms: Sequence[dict[str, Any]], end_ts: float
) -> list[dict[str, Any]]:
    """Who acknowledged or shelved the job's alarms after it had ended (an abort ends a job within a
    second of its trip; the person answers after), up to each alarm's next raising."""
    ids = list(dict.fromkeys(str(a["alarm_id"]) for a in alarms))
    later = await historian.alarm_rows_of(ids, end_ts, end_ts + ALARM_ANSWER_WINDOW_S) if ids else []
    answered: list[dict[str, Any]] = []
    raised_again: set[str] = set()
    for row in later:
        if row["event"] == "condition_raised":
            raised_again.add(str(row["alarm_id"]))
        elif row["alarm_id"] not in raised_again and row["event"] in ALARM_ANSWERS:
            answered.append(row)
    return answered


def _notable(command: dict[str, Any]) -> bool:
    action = command["action"] if isinstance(command["action"], dict) else {}
    return command["outcome"] != "done" or bool(action.get("force")) or command["origin"] not in ("sequence",)


def _event_text(kind: str, detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    if kind == "checkpoint" and "phase" in detail:
        rest = {k: v for k, v in detail.items() if k != "phase"}
        return str(detail["phase"]) + (f" ({_pairs(rest)})" if rest else "")
    if kind == "state" and ("to" in detail or "state" in detail):
        to = detail.get("to", detail.get("state"))
        rest = {k: v for k, v in detail.items() if k not in ("from", "to", "state")}
        shown = f"{detail['from']} -> {to}" if "from" in detail else str(to)
        return shown + (f" ({_pairs(rest)})" if rest else "")
    return _pairs(detail)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _handling(item: str, commands: Sequence[dict[str, Any]]) -> tuple[Handling, ...]:
    out: list[Handling] = []
    for command in commands:
        action = command["action"]
        kind = action.get("type")
        what = ""
        if kind == "RegisterItem" and action.get("id") == item:
            seal = (
                (" (sealed)" if action.get("sealed") else " (open)")
                if action.get("kind") == "container"
                else ""
            )
            what = f"registered in {action.get('location')}{seal}"
        elif kind == "MoveItem" and action.get("item") == item:
            what = f"moved to {action.get('to')}"
        elif kind == "MoveItem" and action.get("to") == item:
            what = f"{action.get('item')} put in"
        elif kind == "SetContainer" and action.get("container") == item:
            what = "sealed" if action.get("sealed") else "opened"
        if what:
            out.append(Handling(float(command["ts"]), str(command["user"]), what))
    return tuple(out)


def _is_air_sensitive(role: str, row: dict[str, Any] | None) -> bool:
    """From the registered material; an unregistered item counts as sensitive unless it is a container."""
    if row is None:
        return not role.startswith("container")
    if row["kind"] == "container":
        return False
    try:
        return material(str(row["material"])).air_sensitive
    except MaterialError:
        return True  # unknown to this depline's table: the safe assumption


def non_inert_episodes(entries: Sequence[LedgerEntry], end_ts: float) -> list[Episode]:
    """The times an item was exposed in an atmosphere not shown to be inert (module docstring)."""
    episodes: list[Episode] = []
    start: LedgerEntry | None = None
    since = 0.0
    for entry in entries:
        unsafe = entry.exposed and (
            entry.event == "non_inert"
            or (entry.atmosphere not in SAFE_ATMOSPHERES and entry.atmosphere not in JUDGED_LIVE)
        )
        ends = not entry.exposed or (entry.atmosphere in SAFE_ATMOSPHERES and entry.event != "non_inert")
        if start is None and unsafe:
            start = entry
            unwatched = (
                as_number(entry.evidence.get("unwatched_since_ts")) if entry.event == "restored" else None
            )
            since = min(entry.ts, unwatched) if unwatched is not None else entry.ts
        elif start is not None and ends:
            episodes.append(Episode(since, entry.ts, start.space, start.atmosphere, start.evidence, False))
            start = None
    if start is not None:
        last = entries[-1].ts
        episodes.append(
            Episode(since, max(end_ts, last), start.space, start.atmosphere, start.evidence, True)
        )
    return episodes


def _item_report(
    role: str,
    item: str,
    row: dict[str, Any] | None,
    entries: Sequence[LedgerEntry],
    handling: tuple[Handling, ...],
    end_ts: float,
) -> ItemReport:
    sensitive = _is_air_sensitive(role, row)
    record = exposure_from_entries(item, entries)
    episodes = tuple(non_inert_episodes(entries, end_ts)) if entries else ()
    exposed_s = record.exposed_seconds(max(end_ts, entries[-1].ts)) if entries else 0.0
    verdict, good = _verdict(
        role, row, sensitive, entries, episodes, exposed_s, record.worst_frost_point_c, record.worst_o2_ppmv
    )
    return ItemReport(
        role=role,
        item=item,
        kind=None if row is None else str(row["kind"]),
        material=None if row is None else str(row["material"]),
        air_sensitive=sensitive,
        entries=tuple(entries),
        handling=handling,
        path=tuple(record.path),
        exposed_s=exposed_s,
        worst_frost_point_c=record.worst_frost_point_c,
        worst_o2_ppmv=record.worst_o2_ppmv,
        episodes=episodes,
        verdict=verdict,
        good=good,
    )


def _verdict(
    role: str,
    row: dict[str, Any] | None,
    sensitive: bool,
    entries: Sequence[LedgerEntry],
    episodes: Sequence[Episode],
    exposed_s: float,
    worst_frost_c: float | None,
    worst_o2_ppmv: float | None,
) -> tuple[str, bool]:
    if (row["kind"] == "container") if row is not None else role.startswith("container"):
        if row is None:
            return "container: not on record (never registered)", True
        return "container: not air-sensitive itself; protects its contents while sealed", True
    if not sensitive:
        return f"not air-sensitive ({row['material'] if row else '?'}): no exposure limit applies", True
    if not entries:
        return "NO RECORD: the ledger has no entry for this item, so its exposure cannot be shown", False
    if episodes:
        first = episodes[0]
        total = sum(e.duration_s for e in episodes)
        atmosphere = (
            "air" if first.atmosphere == ROOM else first.atmosphere
        )  # the ledger's name for the room's
        found = "; ".join(t for t in (atmosphere, evidence_text(first.evidence)) if t)
        still = ", still exposed at its last record" if episodes[-1].open_at_end else ""
        return (
            f"EXPOSED to a non-inert atmosphere for {duration(total)} in {len(episodes)} episode(s): "
            f"first at {utc(first.since_ts)} in {first.space} ({found}){still}",
            False,
        )
    if exposed_s <= 0.0:
        return "never exposed to air: sealed in its container throughout", True
    worst = [
        f"worst frost point {worst_frost_c:.1f} °C" if worst_frost_c is not None else "",
        f"worst O2 {worst_o2_ppmv:.2g} ppmv" if worst_o2_ppmv is not None else "",
    ]
    shown = ", ".join(w for w in worst if w)
    return (
        f"never exposed to air: {duration(exposed_s)} out of a sealed container, always in inert gas or "
        f"vacuum{f' ({shown})' if shown else ''}",
        True,
    )


async def _plot(
    historian: Historian,
    readings: LineReadings,
    base: str,
    entries: Sequence[LedgerEntry],
    started: float | None,
    ended: float | None,
    now: float,
    plot_points: int,
) -> Plot | None:
    """Every space of the line over the job (and the electrode's time in the line, if longer), with
    the electrode's moves marked: a leak or a pump failure in a space the electrode never entered is
    part of what happened to the job. None when the job never started and its electrode never
    entered the line."""
    spaces = list(readings.gauges)
    inside = [e.ts for e in entries if e.space in readings.gauges]
    if started is None and not inside:
        return None
    times = ([e.ts for e in entries] if inside else []) + [t for t in (started, ended) if t is not None]
    since, until = min(times), max(times)
    if started is not None and ended is None:
        until = max(until, now)
    if until - since < 60.0:  # a few seconds of record still get a readable axis
        pad = (60.0 - (until - since)) / 2
        since, until = since - pad, until + pad
    buckets = max(1, plot_points // 2)  # two points (min, max) per bucket
    series: list[Series] = []
    for space in spaces:
        for quantity, device, channel in _plotted_channels(readings, space):
            points = await historian.sample_envelope(device, channel, since, until, buckets=buckets)
            if (device, channel) == readings.box_pressure.get(space):
                points = _absolute_box_pressure(points, readings.limits.room_pressure_pa)
            series.append(Series(space, quantity, f"{space} {device}.{channel}", tuple(points)))
    return Plot(base, since, until, tuple(spaces), tuple(series), _moves(entries))


def _plotted_channels(readings: LineReadings, space: str) -> list[tuple[Quantity, str, str]]:
    channels: list[tuple[Quantity, str, str]] = [("pressure", d, c) for d, c in readings.gauges[space]]
    if space in readings.box_pressure:
        channels.append(("pressure", *readings.box_pressure[space]))
    if space in readings.frost:
        channels.append(("frost_point", *readings.frost[space]))
    if space in readings.heater:
        channels.append(("substrate_temp", readings.heater[space], "temperature"))
    return channels


def _absolute_box_pressure(
    points: Iterable[tuple[float, float, float]], room_pa: float
) -> list[tuple[float, float, float]]:
    """A glovebox reads its antechamber relative to the room; the line takes it as the pressure only in
    the atmospheric range (`LineReadings.pressure`), where vacuum heads read over range, so only that
    part is drawn."""
    out = []
    for ts, lo, hi in points:
        if hi + room_pa >= ATMOSPHERIC_RANGE_PA:
            out.append((ts, max(lo + room_pa, ATMOSPHERIC_RANGE_PA), hi + room_pa))
    return out


def _moves(entries: Sequence[LedgerEntry]) -> tuple[Move, ...]:
    """Where the item changed space (into a box in the same space is a move, not a change)."""
    moves: list[Move] = []
    for before, after in itertools.pairwise(entries):
        if after.event == "moved" and after.space != before.space:
            moves.append(Move(after.ts, after.space))
    return tuple(moves)


__all__ = ["PLOT_POINTS", "gather_report", "non_inert_episodes", "shown_url"]
