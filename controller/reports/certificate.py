"""Production certificates: the exposure record of every item of a job, as text, HTML and PDF.

The line's promise (DESIGN.md, top) is that no air-sensitive item ever met a non-inert atmosphere,
*with the sensor evidence that proves it*. A certificate is that proof for one job: the recipe, who
confirmed what and after how long, and for the electrode, its containers and its targets every ledger
entry with its readings, the time each spent exposed to something not inert (zero for a good
electrode) and a one-line verdict; with a plot of the pressure, frost point and substrate temperature
of the spaces the electrode was in, its moves marked.

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
- **One drawing, two outputs.** The plot is laid out once as plain shapes; the HTML gets them as
  inline SVG (no dependency, one self-contained file), the PDF (reportlab) as vector graphics.
- **Pure rendering.** `render_text`, `render_html` and `render_pdf` are functions of the gathered
  `RunReport`: no I/O, so the CLI decides where things go.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from controller.config.line_config import ROOM, LineConfig
from controller.errors import UserError
from controller.historian.schema import async_url
from controller.historian.store import Historian
from controller.line.ledger import LedgerEntry, Stay, exposure_from_entries
from controller.line.materials import MaterialError, material
from controller.line.state import LineReadings

SAFE_ATMOSPHERES: Final = frozenset({"inert_in_spec", "vacuum", "process"})
JUDGED_LIVE: Final = frozenset({"evacuating", "back_filling"})  # safe or not by provenance: the ledger says
REQUIRED_TABLES: Final = frozenset(
    {"jobs", "job_events", "batches", "ledger", "items", "commands", "samples"}
)
ATMOSPHERIC_RANGE_PA: Final = 10_000.0  # LineReadings.pressure: above this the vacuum heads give way
PLOT_POINTS: Final = 600  # per curve: about one per horizontal pixel of the HTML plot
SPACE_COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
Quantity = Literal["pressure", "frost_point", "substrate_temp"]
QUANTITIES: Final[tuple[tuple[Quantity, str, str], ...]] = (
    ("pressure", "Pressure", "Pa"),
    ("frost_point", "Frost point", "°C"),
    ("substrate_temp", "Substrate temperature", "°C"),
)


# --- the gathered record ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confirmation:
    """An operator confirmation the job waited for (a "confirm" job event)."""

    prompt: str
    user: str
    via: str  # where it was confirmed: "terminal", "hmi", ...
    asked_at: float | None
    confirmed_at: float | None
    waited_s: float | None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A checkpoint or state change of the job, shown as one line."""

    ts: float
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Handling:
    """A done registration, move or seal change naming the item (what a container's record is)."""

    ts: float
    user: str
    what: str


@dataclass(frozen=True, slots=True)
class Episode:
    """A time the item was out of a sealed container in an atmosphere not shown to be inert."""

    since_ts: float
    until_ts: float
    space: str
    atmosphere: str
    evidence: dict[str, float | str]
    open_at_end: bool  # still so at the item's last entry: counted to the end of the report's window

    @property
    def duration_s(self) -> float:
        return max(0.0, self.until_ts - self.since_ts)


@dataclass(frozen=True, slots=True)
class ItemReport:
    role: str  # "electrode (base)", "container in", "container out", "target T1"
    item: str
    kind: str | None  # None: the item was never registered
    material: str | None
    air_sensitive: bool
    entries: tuple[LedgerEntry, ...]
    handling: tuple[Handling, ...]
    path: tuple[Stay, ...]
    exposed_s: float  # out of a sealed container, wherever
    worst_frost_point_c: float | None
    worst_o2_ppmv: float | None
    episodes: tuple[Episode, ...]
    verdict: str
    good: bool

    @property
    def non_inert_s(self) -> float:
        return sum(e.duration_s for e in self.episodes)


@dataclass(frozen=True, slots=True)
class Series:
    """One channel's curve: (time, min, max) per bucket, oldest first."""

    space: str
    quantity: Quantity
    label: str
    points: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True, slots=True)
class Move:
    ts: float
    space: str  # where the item went


@dataclass(frozen=True, slots=True)
class Plot:
    item: str
    since_ts: float
    until_ts: float
    spaces: tuple[str, ...]
    series: tuple[Series, ...]
    moves: tuple[Move, ...]


@dataclass(frozen=True, slots=True)
class JobReport:
    id: str
    batch_id: str | None
    position: int
    name: str
    recipe_path: str
    state: str
    outcome: str | None
    message: str
    started_at: float | None
    ended_at: float | None
    confirmations: tuple[Confirmation, ...]
    events: tuple[JobEvent, ...]
    items: tuple[ItemReport, ...]
    plot: Plot | None

    @property
    def good(self) -> bool:
        return self.outcome == "done" and all(i.good for i in self.items)

    @property
    def verdict(self) -> str:
        bad = [i for i in self.items if not i.good]
        if bad:
            return "NOT CERTIFIED: " + "; ".join(f"{i.item}: {i.verdict}" for i in bad)
        if self.outcome != "done":
            return f"NOT CERTIFIED: the job is {self.outcome or 'not finished'} (no item was exposed to air)"
        return "certified: no air-sensitive item of this job was exposed to a non-inert atmosphere"


@dataclass(frozen=True, slots=True)
class RunReport:
    run: str
    line: str
    database: str
    generated_at: float
    batch: dict[str, Any] | None
    jobs: tuple[JobReport, ...] = field(default=())


# --- gathering --------------------------------------------------------------------------------------


async def gather_report(
    historian: Historian,
    config: LineConfig,
    run: str,
    *,
    now_ts: float | None = None,
    plot_points: int = PLOT_POINTS,
) -> RunReport:
    """Everything a certificate shows for `run` (a job id, or a batch id: all its jobs).

    Raises `UserError` for a run the database does not know and for a database whose schema predates
    the production tables. `now_ts` ends the window of a job that has not ended.
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
    jobs = [await _job_report(historian, readings, row, now, plot_points) for row in rows]
    return RunReport(run, config.name, shown, now, batch, tuple(jobs))


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
    historian: Historian, readings: LineReadings, row: dict[str, Any], now: float, plot_points: int
) -> JobReport:
    roles = _roles(row["items"])
    ids = list(dict.fromkeys(item for _role, item in roles))
    entries = await historian.ledger_entries(ids)
    known = await historian.items_by_id(ids)
    started, ended = row["started_at"], row["ended_at"]
    end_ts = ended if ended is not None else now
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
    plot = await _plot(historian, readings, base, entries[base], started, ended, now, plot_points)
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
        events=tuple(
            JobEvent(float(e["ts"]), str(e["kind"]), _event_text(e["kind"], e["detail"]))
            for e in events
            if e["kind"] != "confirm"
        ),
        items=tuple(reports),
        plot=plot,
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _confirmation(detail: Any) -> Confirmation:
    d = detail if isinstance(detail, dict) else {}
    return Confirmation(
        str(d.get("prompt", "")),
        str(d.get("user", "")),
        str(d.get("via", "")),
        _number(d.get("asked_at")),
        _number(d.get("confirmed_at")),
        _number(d.get("waited_s")),
    )


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
                _number(entry.evidence.get("unwatched_since_ts")) if entry.event == "restored" else None
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
        found = "; ".join(t for t in (atmosphere, _evidence_text(first.evidence)) if t)
        still = ", still exposed at its last record" if episodes[-1].open_at_end else ""
        return (
            f"EXPOSED to a non-inert atmosphere for {_duration(total)} in {len(episodes)} episode(s): "
            f"first at {_utc(first.since_ts)} in {first.space} ({found}){still}",
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
        f"never exposed to air: {_duration(exposed_s)} out of a sealed container, always in inert gas or "
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
    """The electrode's time in the line (its ledger's span and the job's), its spaces' curves; None
    when its record puts it in none of the line's spaces (never loaded, or no record)."""
    spaces = list(dict.fromkeys(e.space for e in entries if e.space in readings.gauges))
    if not spaces:
        return None
    times = [e.ts for e in entries] + [t for t in (started, ended) if t is not None]
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


# --- formatting -------------------------------------------------------------------------------------


def _utc(ts: float | None, *, digits: int = 0) -> str:
    if ts is None:
        return "-"
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        text += f"{when.microsecond / 1e6:.{digits}f}"[1:]
    return text + " UTC"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {seconds - 60 * minutes:02.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _pressure(pa: float) -> str:
    return f"{pa / 1000:.1f} kPa" if pa >= 1000 else f"{pa:.3g} Pa"


def _evidence_text(evidence: dict[str, float | str]) -> str:
    parts: list[str] = []
    for key, value in evidence.items():
        number = _number(value)
        if number is None or not math.isfinite(number):
            parts.append(f"{key} {value}")
        elif key == "pressure_pa":
            parts.append(f"p {_pressure(number)}")
        elif key == "frost_point_c":
            parts.append(f"frost point {number:.1f} °C")
        elif key == "o2_ppmv":
            parts.append(f"O2 {number:.2g} ppmv")
        elif key == "o2_estimate_ppmv":
            parts.append(f"O2 bound {number:.2g} ppmv")
        elif key == "air_fraction_bound":
            parts.append(f"air share <= {number:.2g}")
        elif key == "unwatched_since_ts":
            parts.append(f"unwatched since {_utc(number)}")
        else:
            parts.append(f"{key} {number:g}")
    return ", ".join(parts)


def _path_text(path: Iterable[Stay]) -> str:
    return " -> ".join(f"{s.space} ({_utc(s.since_ts)[11:19]})" for s in path)


def _who(c: Confirmation) -> str:
    return (c.user or "?") + (f" via {c.via}" if c.via else "")


def _outcome(job: JobReport) -> str:
    return job.outcome or f"not finished (state {job.state})"


def _job_times(job: JobReport) -> str:
    text = f"started {_utc(job.started_at)}, ended {_utc(job.ended_at)}"
    if job.started_at is not None and job.ended_at is not None:
        text += f" ({_duration(job.ended_at - job.started_at)})"
    return text


def _batch_line(report: RunReport) -> str:
    batch = report.batch
    if batch is None:
        return ""
    return (
        f"batch {batch['id']} from {batch['queue_path']}, by {batch['user']}, created "
        f"{_utc(batch['created_at'])}, {batch['status']}"
    )


# --- text -------------------------------------------------------------------------------------------


def render_text(report: RunReport) -> str:
    """The certificate as plain text, for the terminal (`depline report RUN`)."""
    lines = [
        f"depline exposure report for {report.run} (line {report.line}, {report.database})",
        f"generated {_utc(report.generated_at)}; {len(report.jobs)} job(s)",
    ]
    if report.batch is not None:
        lines.append(_batch_line(report))
    for job in report.jobs:
        lines += ["", *_job_text(job)]
    return "\n".join(lines) + "\n"


def _job_text(job: JobReport) -> list[str]:
    lines = [
        f"== job {job.id}: {job.name}",
        f"   recipe {job.recipe_path}",
        f"   outcome {_outcome(job)}; {_job_times(job)}",
    ]
    if job.message:
        lines.append(f"   message: {job.message}")
    lines.append(f"   verdict: {job.verdict}")
    lines.append("   operator confirmations:" + ("" if job.confirmations else " none"))
    for c in job.confirmations:
        waited = f"waited {_duration(c.waited_s)}" if c.waited_s is not None else "wait unknown"
        lines.append(f"     {_utc(c.confirmed_at)}  {_who(c)}: {c.prompt!r} ({waited})")
    if job.events:
        lines.append("   job events:")
        lines += [f"     {_utc(e.ts)}  {e.kind}: {e.text}" for e in job.events]
    for item in job.items:
        lines += ["", *_item_text(item)]
    return lines


def _item_text(item: ItemReport) -> list[str]:
    what = f"{item.kind}, {item.material}" if item.kind is not None else "not registered"
    lines = [
        f"   -- {item.role}: {item.item} ({what})",
        f"      verdict: {item.verdict}",
    ]
    if item.entries:
        lines.append(
            f"      time exposed to a non-inert atmosphere: {_duration(item.non_inert_s)}; "
            f"out of a sealed container: {_duration(item.exposed_s)}"
        )
        lines.append(f"      path: {_path_text(item.path)}")
        lines.append("      ledger:")
        row = "        {:<25} {:<11} {:<8} {:<17} {:<7} {}"
        lines.append(row.format("TIME", "EVENT", "SPACE", "ATMOSPHERE", "EXPOSED", "EVIDENCE"))
        for e in item.entries:
            lines.append(
                row.format(
                    _utc(e.ts, digits=1),
                    e.event,
                    e.space,
                    e.atmosphere,
                    "yes" if e.exposed else "no",
                    _evidence_text(e.evidence),
                ).rstrip()
            )
    if item.handling:
        lines.append("      handling:")
        lines += [f"        {_utc(h.ts, digits=1)}  {h.user}: {h.what}" for h in item.handling]
    return lines


# --- the plot as shapes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """One drawing primitive, in a box whose origin is the top left corner (as in SVG)."""

    kind: Literal["polyline", "line", "text", "rect"]
    points: tuple[tuple[float, float], ...]
    color: str = "#000000"
    role: str = ""  # the SVG class: trace, move, move-label, axis, grid, tick, legend
    text: str = ""
    size: float = 10.0
    anchor: Literal["start", "middle", "end"] = "start"
    dashed: bool = False
    width: float = 1.0
    data: str = ""  # the SVG data-space attribute of a trace or move


_LEFT, _RIGHT, _TOP, _GAP, _BOTTOM = 62.0, 16.0, 34.0, 26.0, 40.0


def plot_shapes(plot: Plot, width: float, panel_height: float) -> tuple[list[Shape], float]:
    """The plot laid out once for every output: panels per quantity, curves, moves; and its height."""
    panels = [q for q in QUANTITIES if any(s.quantity == q[0] for s in plot.series)]
    height = _TOP + len(panels) * (panel_height + _GAP) + _BOTTOM
    shapes: list[Shape] = []
    x0, x1 = _LEFT, width - _RIGHT
    span = plot.until_ts - plot.since_ts

    def x_of(ts: float) -> float:
        return x0 + (ts - plot.since_ts) / span * (x1 - x0)

    colors = {space: SPACE_COLORS[i % len(SPACE_COLORS)] for i, space in enumerate(plot.spaces)}
    for index, (quantity, title, unit) in enumerate(panels):
        top = _TOP + index * (panel_height + _GAP)
        series = [s for s in plot.series if s.quantity == quantity]
        shapes += _panel(series, quantity, f"{title} ({unit})", x0, x1, top, panel_height, x_of, colors)
    bottom = _TOP + len(panels) * (panel_height + _GAP) - _GAP
    shapes += _time_axis(plot, x0, x1, bottom, x_of)
    for i, move in enumerate(plot.moves):
        x = x_of(move.ts)
        shapes.append(
            Shape("line", ((x, _TOP - 4), (x, bottom)), "#444444", "move", dashed=True, data=move.space)
        )
        label_y = 12.0 if i % 2 == 0 else 24.0  # staggered, so two close moves stay readable
        shapes.append(
            Shape("text", ((x, label_y),), "#222222", "move-label", move.space, 10, "middle", data=move.space)
        )
    return shapes, height


def _panel(
    series: Sequence[Series],
    quantity: Quantity,
    title: str,
    x0: float,
    x1: float,
    top: float,
    height: float,
    x_of: Any,
    colors: dict[str, str],
) -> list[Shape]:
    """One quantity's box: its legend in a strip along the top (never under a curve), then the curves."""
    log_scale = quantity == "pressure"
    values = [v for s in series for _t, lo, hi in s.points for v in (lo, hi) if _plottable(v, log_scale)]
    shapes = [
        Shape("rect", ((x0, top), (x1, top + height)), "#888888", "axis"),
        Shape("text", ((x0, top - 4),), "#000000", "axis", title, 10),
    ]
    legend_x, legend_y = x0 + 6, top + 11
    for s in series:
        label_width = 4.7 * len(s.label)  # 8-point sans serif, about
        if legend_x + label_width > x1 and legend_x > x0 + 6:
            legend_x, legend_y = x0 + 6, legend_y + 10
        color = colors.get(s.space, "#000000")
        shapes.append(Shape("text", ((legend_x, legend_y),), color, "legend", s.label, 8))
        legend_x += 8 + label_width
    data_top = legend_y + 6
    if not values:
        mid = ((x0 + x1) / 2, (data_top + top + height) / 2)
        return [*shapes, Shape("text", (mid,), "#666666", "axis", "no samples recorded", 10, "middle")]
    low, high, ticks = _scale(values, log_scale)
    data_height = top + height - data_top

    def y_of(value: float) -> float:
        v = math.log10(value) if log_scale else value
        return data_top + data_height - (v - low) / (high - low) * data_height

    for tick in ticks:
        y = y_of(10**tick if log_scale else tick)
        shapes.append(Shape("line", ((x0, y), (x1, y)), "#dddddd", "grid", width=0.5))
        label = f"1e{tick:.0f}" if log_scale else f"{tick:g}"
        shapes.append(Shape("text", ((x0 - 4, y + 3),), "#000000", "tick", label, 8, "end"))
    for s in series:
        for line in _trace(s.points, log_scale, x_of, y_of):
            shapes.append(
                Shape("polyline", line, colors.get(s.space, "#000000"), "trace", width=1.2, data=s.space)
            )
    return shapes


def _plottable(value: float, log_scale: bool) -> bool:
    return math.isfinite(value) and (value > 0 or not log_scale)


def _scale(values: Sequence[float], log_scale: bool) -> tuple[float, float, list[float]]:
    """Axis range and ticks: whole decades for a log axis, 1-2-5 steps for a linear one."""
    if log_scale:
        decade_low = math.floor(math.log10(min(values)))
        decade_high = max(decade_low + 1, math.ceil(math.log10(max(values))))
        every = max(1, math.ceil((decade_high - decade_low) / 8))
        decades = [float(d) for d in range(decade_low, decade_high + 1, every)]
        return float(decade_low), float(decade_high), decades
    low_v, high_v = min(values), max(values)
    if high_v - low_v < 1e-9:
        low_v, high_v = low_v - 1, high_v + 1
    step = _nice_step((high_v - low_v) / 5)
    low = math.floor(low_v / step) * step
    high = math.ceil(high_v / step) * step
    ticks = [low + i * step for i in range(round((high - low) / step) + 1)]
    return low, high, ticks


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _trace(
    points: Sequence[tuple[float, float, float]], log_scale: bool, x_of: Any, y_of: Any
) -> list[tuple[tuple[float, float], ...]]:
    """Polylines through each bucket's extremes (nearer one first); broken at gaps and unplottable values."""
    lines: list[tuple[tuple[float, float], ...]] = []
    current: list[tuple[float, float]] = []
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    gap_limit = 5 * sorted(gaps)[len(gaps) // 2] if gaps else math.inf
    previous_ts: float | None = None
    for ts, lo, hi in points:
        if not (_plottable(lo, log_scale) and _plottable(hi, log_scale)) or (
            previous_ts is not None and ts - previous_ts > gap_limit
        ):
            if len(current) > 1:
                lines.append(tuple(current))
            current = []
        previous_ts = ts
        if not (_plottable(lo, log_scale) and _plottable(hi, log_scale)):
            continue
        x, y_lo, y_hi = x_of(ts), y_of(lo), y_of(hi)
        last_y = current[-1][1] if current else y_lo
        pair = [(x, y_lo), (x, y_hi)] if abs(last_y - y_lo) <= abs(last_y - y_hi) else [(x, y_hi), (x, y_lo)]
        current += pair if y_lo != y_hi else pair[:1]
    if len(current) > 1:
        lines.append(tuple(current))
    elif len(current) == 1:  # a single reading: a short tick, so it shows
        (x, y) = current[0]
        lines.append(((x - 1, y), (x + 1, y)))
    return lines


def _time_axis(plot: Plot, x0: float, x1: float, bottom: float, x_of: Any) -> list[Shape]:
    span = plot.until_ts - plot.since_ts
    step = next(
        (
            s
            for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
            if span / s <= 8
        ),
        86400 * math.ceil(span / 86400 / 8),
    )
    shapes: list[Shape] = []
    first = math.ceil(plot.since_ts / step) * step
    ts = first
    while ts <= plot.until_ts:
        x = x_of(ts)
        shapes.append(Shape("line", ((x, bottom), (x, bottom + 4)), "#000000", "tick"))
        label = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S" if step < 86400 else "%m-%d")
        shapes.append(Shape("text", ((x, bottom + 14),), "#000000", "tick", label, 8, "middle"))
        ts += step
    day = dt.datetime.fromtimestamp(plot.since_ts, dt.UTC).strftime("%Y-%m-%d")
    caption = f"time (UTC, from {day}); dashed lines: {plot.item} moved to the space named above"
    shapes.append(Shape("text", (((x0 + x1) / 2, bottom + 30),), "#000000", "axis", caption, 9, "middle"))
    return shapes


# --- HTML -------------------------------------------------------------------------------------------


def plot_svg(plot: Plot, width: float = 860.0, panel_height: float = 170.0) -> str:
    shapes, height = plot_shapes(plot, width, panel_height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{html.escape(f"pressure, frost point and substrate temperature around {plot.item}")}">'
    ]
    parts += [_svg(shape) for shape in shapes]
    parts.append("</svg>")
    return "\n".join(parts)


def _svg(shape: Shape) -> str:
    data = f' data-space="{html.escape(shape.data)}"' if shape.data else ""
    cls = f' class="{shape.role}"' if shape.role else ""
    dash = ' stroke-dasharray="4 3"' if shape.dashed else ""
    if shape.kind == "polyline":
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shape.points)
        return (
            f'<polyline{cls}{data} points="{points}" fill="none" stroke="{shape.color}" '
            f'stroke-width="{shape.width:g}"{dash}/>'
        )
    if shape.kind == "line":
        (ax, ay), (bx, by) = shape.points
        return (
            f'<line{cls}{data} x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}" '
            f'stroke="{shape.color}" stroke-width="{shape.width:g}"{dash}/>'
        )
    if shape.kind == "rect":
        (ax, ay), (bx, by) = shape.points
        return (
            f'<rect{cls} x="{ax:.1f}" y="{ay:.1f}" width="{bx - ax:.1f}" height="{by - ay:.1f}" '
            f'fill="none" stroke="{shape.color}" stroke-width="{shape.width:g}"/>'
        )
    (x, y) = shape.points[0]
    return (
        f'<text{cls}{data} x="{x:.1f}" y="{y:.1f}" font-size="{shape.size:g}" text-anchor="{shape.anchor}" '
        f'fill="{shape.color}" font-family="sans-serif">{html.escape(shape.text)}</text>'
    )


_CSS: Final = """
body { font-family: sans-serif; margin: 2em; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.good { color: #116611; font-weight: bold; }
.bad { color: #b00000; font-weight: bold; }
.exposed { background: #fff0f0; }
section.job { border-top: 2px solid #333; margin-top: 2em; }
"""


def render_html(report: RunReport) -> str:
    """A self-contained HTML certificate (inline CSS and SVG: one file to archive or mail)."""
    e = html.escape
    body = [
        f"<h1>Exposure certificate: {e(report.run)}</h1>",
        f"<p>Line {e(report.line)}, records in {e(report.database)}; "
        f"generated {e(_utc(report.generated_at))}."
        f"{(' ' + e(_batch_line(report)).capitalize() + '.') if report.batch else ''}</p>",
    ]
    body += [_job_html(job) for job in report.jobs]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>depline certificate {e(report.run)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _verdict_html(text: str, good: bool) -> str:
    return f'<span class="{"good" if good else "bad"}">{html.escape(text)}</span>'


def _job_html(job: JobReport) -> str:
    e = html.escape
    parts = [
        f'<section class="job" id="{e(job.id)}">',
        f"<h2>Job {e(job.id)}: {e(job.name)}</h2>",
        "<table>",
        f"<tr><th>recipe</th><td>{e(job.recipe_path)}</td></tr>",
        f"<tr><th>outcome</th><td>{e(_outcome(job))}</td></tr>",
        f"<tr><th>times</th><td>{e(_job_times(job))}</td></tr>",
        *([f"<tr><th>message</th><td>{e(job.message)}</td></tr>"] if job.message else []),
        f"<tr><th>verdict</th><td>{_verdict_html(job.verdict, job.good)}</td></tr>",
        "</table>",
        "<h3>Operator confirmations</h3>",
    ]
    if job.confirmations:
        parts.append("<table><tr><th>confirmed</th><th>by</th><th>prompt</th><th>waited</th></tr>")
        for c in job.confirmations:
            waited = _duration(c.waited_s) if c.waited_s is not None else "?"
            parts.append(
                f"<tr><td>{e(_utc(c.confirmed_at))}</td><td>{e(_who(c))}</td><td>{e(c.prompt)}</td>"
                f"<td>{e(waited)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>none</p>")
    if job.events:
        parts.append("<h3>Job events</h3><table><tr><th>time</th><th>kind</th><th>detail</th></tr>")
        parts += [
            f"<tr><td>{e(_utc(ev.ts))}</td><td>{e(ev.kind)}</td><td>{e(ev.text)}</td></tr>"
            for ev in job.events
        ]
        parts.append("</table>")
    if job.plot is not None:
        parts += [f"<h3>Around {e(job.plot.item)}</h3>", plot_svg(job.plot)]
    parts += [_item_html(item) for item in job.items]
    parts.append("</section>")
    return "\n".join(parts)


def _item_html(item: ItemReport) -> str:
    e = html.escape
    what = f"{item.kind}, {item.material}" if item.kind is not None else "not registered"
    parts = [
        f'<h3 id="item-{e(item.item)}">{e(item.role)}: {e(item.item)} <small>({e(what)})</small></h3>',
        f"<p>{_verdict_html(item.verdict, item.good)}</p>",
    ]
    if item.entries:
        parts.append(
            f"<p>Time exposed to a non-inert atmosphere: <b>{e(_duration(item.non_inert_s))}</b>; out of a "
            f"sealed container: {e(_duration(item.exposed_s))}. Path: {e(_path_text(item.path))}.</p>"
        )
        parts.append(
            "<table><tr><th>time</th><th>event</th><th>space</th><th>atmosphere</th><th>exposed</th>"
            "<th>evidence</th></tr>"
        )
        for entry in item.entries:
            cls = ' class="exposed"' if entry.exposed else ""
            parts.append(
                f"<tr{cls}><td>{e(_utc(entry.ts, digits=1))}</td><td>{e(entry.event)}</td>"
                f"<td>{e(entry.space)}</td>"
                f"<td>{e(entry.atmosphere)}</td><td>{'yes' if entry.exposed else 'no'}</td>"
                f"<td>{e(_evidence_text(entry.evidence))}</td></tr>"
            )
        parts.append("</table>")
    if item.handling:
        parts.append("<table><tr><th>time</th><th>by</th><th>handling</th></tr>")
        parts += [
            f"<tr><td>{e(_utc(h.ts, digits=1))}</td><td>{e(h.user)}</td><td>{e(h.what)}</td></tr>"
            for h in item.handling
        ]
        parts.append("</table>")
    return "\n".join(parts)


# --- PDF --------------------------------------------------------------------------------------------


def render_pdf(report: RunReport) -> bytes:
    """The certificate as a PDF (reportlab): the same sections as the HTML, the plot as vector graphics."""
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    buffer = io.BytesIO()
    items = sorted({i.item for job in report.jobs for i in job.items})
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"depline certificate {report.run}",
        subject="items: " + ", ".join(items),
        author=f"depline, line {report.line}",
    )
    width = A4[0] - 30 * mm

    def para(text: str, style: Any = None) -> Any:
        return Paragraph(html.escape(_pdf_text(text)), style or styles["BodyText"])

    def table(rows: list[list[str]], widths: list[float]) -> Any:
        cells = [[para(cell, small) for cell in row] for row in rows]
        t = Table(cells, colWidths=[w * width for w in widths], repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    story: list[Any] = [
        para(f"Exposure certificate: {report.run}", styles["Title"]),
        para(f"Line {report.line}, records in {report.database}; generated {_utc(report.generated_at)}."),
    ]
    if report.batch is not None:
        story.append(para(_batch_line(report)))
    for job in report.jobs:
        story += [Spacer(1, 4 * mm), para(f"Job {job.id}: {job.name}", styles["Heading2"])]
        story.append(para(f"Recipe {job.recipe_path}. Outcome {_outcome(job)}; {_job_times(job)}."))
        if job.message:
            story.append(para(f"Message: {job.message}"))
        story.append(para(f"Verdict: {job.verdict}", styles["Heading4"]))
        if job.confirmations:
            rows = [["confirmed", "by", "prompt", "waited"]]
            rows += [
                [
                    _utc(c.confirmed_at),
                    _who(c),
                    c.prompt,
                    _duration(c.waited_s) if c.waited_s is not None else "?",
                ]
                for c in job.confirmations
            ]
            story += [
                para("Operator confirmations", styles["Heading4"]),
                table(rows, [0.22, 0.1, 0.56, 0.12]),
            ]
        if job.events:
            rows = [["time", "kind", "detail"]] + [[_utc(ev.ts), ev.kind, ev.text] for ev in job.events]
            story += [para("Job events", styles["Heading4"]), table(rows, [0.25, 0.12, 0.63])]
        if job.plot is not None:
            story.append(_pdf_drawing(job.plot, width))
        for item in job.items:
            what = f"{item.kind}, {item.material}" if item.kind is not None else "not registered"
            story += [
                para(f"{item.role}: {item.item} ({what})", styles["Heading3"]),
                para(f"Verdict: {item.verdict}"),
            ]
            if item.entries:
                story.append(
                    para(
                        f"Time exposed to a non-inert atmosphere: {_duration(item.non_inert_s)}; out of a "
                        f"sealed container: {_duration(item.exposed_s)}. Path: {_path_text(item.path)}."
                    )
                )
                rows = [["time", "event", "space", "atmosphere", "exposed", "evidence"]]
                rows += [
                    [
                        _utc(entry.ts, digits=1),
                        entry.event,
                        entry.space,
                        entry.atmosphere,
                        "yes" if entry.exposed else "no",
                        _evidence_text(entry.evidence),
                    ]
                    for entry in item.entries
                ]
                story.append(table(rows, [0.2, 0.1, 0.09, 0.14, 0.08, 0.39]))
            if item.handling:
                rows = [["time", "by", "handling"]] + [
                    [_utc(h.ts, digits=1), h.user, h.what] for h in item.handling
                ]
                story.append(table(rows, [0.25, 0.12, 0.63]))
    doc.build(story)
    return buffer.getvalue()


def _pdf_text(text: str) -> str:
    """The standard PDF fonts have no arrows or comparison signs; ° and µ they have."""
    return text.replace("→", "->").replace("≤", "<=").replace("≥", ">=")


def _pdf_drawing(plot: Plot, width: float) -> Any:
    from reportlab.graphics.shapes import Drawing, Line, PolyLine, Rect, String  # type: ignore[import-untyped]
    from reportlab.lib import colors

    shapes, height = plot_shapes(plot, width, 120.0)
    drawing = Drawing(width, height)
    for shape in shapes:
        color = colors.HexColor(shape.color)
        flipped = [(x, height - y) for x, y in shape.points]  # reportlab's origin is the bottom left
        dash = [4, 3] if shape.dashed else None
        if shape.kind == "polyline":
            flat = [v for point in flipped for v in point]
            drawing.add(PolyLine(flat, strokeColor=color, strokeWidth=shape.width * 0.8))
        elif shape.kind == "line":
            (ax, ay), (bx, by) = flipped
            drawing.add(
                Line(ax, ay, bx, by, strokeColor=color, strokeWidth=shape.width * 0.8, strokeDashArray=dash)
            )
        elif shape.kind == "rect":
            (ax, ay), (bx, by) = flipped
            drawing.add(Rect(ax, by, bx - ax, ay - by, fillColor=None, strokeColor=color, strokeWidth=0.5))
        else:
            (x, y) = flipped[0]
            drawing.add(
                String(
                    x,
                    y,
                    _pdf_text(shape.text),
                    fontSize=shape.size,
                    fillColor=color,
                    textAnchor=shape.anchor,
                )
            )
    return drawing


__all__ = [
    "PLOT_POINTS",
    "Confirmation",
    "Episode",
    "ItemReport",
    "JobReport",
    "Plot",
    "RunReport",
    "Series",
    "gather_report",
    "non_inert_episodes",
    "plot_shapes",
    "plot_svg",
    "render_html",
    "render_pdf",
    "render_text",
    "shown_url",
]
