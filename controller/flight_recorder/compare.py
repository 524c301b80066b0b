"""`depline compare`: two jobs side by side — phase durations, step figures, one phase's curves overlaid.

Why it is built this way:

- **Plant time, not wall time.** Two jobs may have run at different speeds (a simulated rehearsal
  against a real night); each phase's duration and each curve's time axis are converted with the
  plant speed the job's attempt recorded, so "the pump-down took 40 % longer" means the plant's.
- **Figures by step and occurrence.** Step reports (pump-downs, purges, layers, anneals) are matched
  by their step name and their order of occurrence, figure by figure, with the difference; a figure
  only one job has is shown against a dash.
- **The overlay is the certificate's drawing.** The curves come from the same bounded envelope query
  and are laid out by the same plot code, so a comparison and a certificate cannot draw one reading
  two ways.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.flight_recorder.timeline import plant_speed_of
from controller.historian.store import Historian
from controller.line.state import LineReadings
from controller.reports.gather import shown_url
from controller.reports.html_page import plot_svg
from controller.reports.record import Plot, Quantity, Series
from controller.reports.wording import duration

OVERLAY_POINTS: Final = 400


@dataclass(frozen=True, slots=True)
class PhaseTimes:
    name: str
    started_ts: float
    ended_ts: float | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    recipe: str
    outcome: str | None
    plant_speed: float
    phases: tuple[PhaseTimes, ...]
    steps: tuple[tuple[str, dict[str, Any]], ...]  # (step name, its report), in order

    def plant_s(self, phase: PhaseTimes) -> float | None:
        return None if phase.ended_ts is None else (phase.ended_ts - phase.started_ts) * self.plant_speed


@dataclass(frozen=True, slots=True)
class Comparison:
    a: JobRecord
    b: JobRecord
    phase_rows: tuple[tuple[str, float | None, float | None], ...]
    figure_rows: tuple[tuple[str, str, Any, Any], ...]  # (step #n, figure, a, b)
    overlay: Plot | None


async def read_job(historian: Historian, job_id: str) -> JobRecord:
    rows = await historian.production_jobs(job_id)
    row = next((r for r in rows if r["id"] == job_id), None)
    if row is None:
        raise UserError(f"compare: {shown_url(historian.url)} has no production job {job_id!r}")
    events = await historian.job_events(job_id)
    return JobRecord(
        id=job_id,
        recipe=str(row["recipe_path"]),
        outcome=row["outcome"],
        plant_speed=await plant_speed_of(historian, [job_id]),
        phases=tuple(_phases(events)),
        steps=tuple(
            (str(e["detail"].get("step", "?")), e["detail"])
            for e in events
            if e["kind"] == "step_report" and isinstance(e["detail"], dict)
        ),
    )


def _phases(events: Sequence[dict[str, Any]]) -> list[PhaseTimes]:
    """Each phase's last start and the end that followed it (a resumed phase counts from its restart)."""
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    order: list[str] = []
    for e in events:
        detail = e["detail"] if isinstance(e["detail"], dict) else {}
        if e["kind"] != "checkpoint" or "phase" not in detail:
            continue
        name = str(detail["phase"])
        if detail.get("status") == "started":
            started[name] = float(e["ts"])
            ended.pop(name, None)
            if name not in order:
                order.append(name)
        elif detail.get("status") == "done" and name in started:
            ended[name] = float(e["ts"])
    return [PhaseTimes(n, started[n], ended.get(n)) for n in order]


async def compare(
    historian: Historian, config: LineConfig, job_a: str, job_b: str, *, phase: str | None, space: str
) -> Comparison:
    a, b = await read_job(historian, job_a), await read_job(historian, job_b)
    names = list(dict.fromkeys([p.name for p in a.phases] + [p.name for p in b.phases]))
    by_a, by_b = {p.name: p for p in a.phases}, {p.name: p for p in b.phases}
    phase_rows = tuple(
        (n, a.plant_s(by_a[n]) if n in by_a else None, b.plant_s(by_b[n]) if n in by_b else None)
        for n in names
    )
    overlay_phase = phase or next(
        (n for n in names if n.startswith("pump_down") and n in by_a and n in by_b), None
    )
    overlay = None
    if overlay_phase is not None:
        if overlay_phase not in by_a or overlay_phase not in by_b:
            shared = ", ".join(n for n in names if n in by_a and n in by_b) or "none"
            raise UserError(f"--phase {overlay_phase}: not a phase both jobs ran (they share: {shared})")
        overlay = await _overlay(
            historian, config, space, overlay_phase, (a, by_a[overlay_phase]), (b, by_b[overlay_phase])
        )
    return Comparison(a, b, phase_rows, tuple(_figure_rows(a.steps, b.steps)), overlay)


def _figure_rows(
    a: Sequence[tuple[str, dict[str, Any]]], b: Sequence[tuple[str, dict[str, Any]]]
) -> list[tuple[str, str, Any, Any]]:
    def numbered(steps: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        seen: dict[str, int] = defaultdict(int)
        out = {}
        for name, report in steps:
            seen[name] += 1
            out[f"{name} #{seen[name]}"] = report
        return out

    na, nb = numbered(a), numbered(b)
    rows = []
    for key in dict.fromkeys([*na, *nb]):
        ra, rb = na.get(key, {}), nb.get(key, {})
        for figure in dict.fromkeys([*ra, *rb]):
            if figure == "step":
                continue
            rows.append((key, figure, ra.get(figure), rb.get(figure)))
    return rows


async def _overlay(
    historian: Historian,
    config: LineConfig,
    space: str,
    phase: str,
    *jobs: tuple[JobRecord, PhaseTimes],
) -> Plot:
    readings = LineReadings(config)
    channels: list[tuple[Quantity, str, str]] = [
        ("pressure", d, c) for d, c in readings.gauges.get(space, [])
    ]
    if space in readings.frost:
        channels.append(("frost_point", *readings.frost[space]))
    series: list[Series] = []
    longest = 1.0
    labels = []
    for letter, (job, times) in zip("AB", jobs, strict=False):
        end = times.ended_ts if times.ended_ts is not None else times.started_ts
        longest = max(longest, (end - times.started_ts) * job.plant_speed)
        label = f"{letter} {job.id}"
        labels.append(label)
        for quantity, device, channel in channels:
            points = await historian.sample_envelope(
                device, channel, times.started_ts, end, buckets=OVERLAY_POINTS
            )
            shifted = tuple(((t - times.started_ts) * job.plant_speed, lo, hi) for t, lo, hi in points)
            if shifted:
                series.append(Series(label, quantity, f"{label} {device}.{channel}", shifted))
    caption = f"plant time since {phase} began (h:m:s); {space}: one colour per job"
    return Plot(f"{space} in {phase}", 0.0, longest, tuple(labels), tuple(series), (), caption)


def render_comparison(c: Comparison) -> str:
    lines = [
        f"A: {c.a.id}  {c.a.recipe}  {c.a.outcome or 'not ended'}  (plant speed {c.a.plant_speed:g}x)",
        f"B: {c.b.id}  {c.b.recipe}  {c.b.outcome or 'not ended'}  (plant speed {c.b.plant_speed:g}x)",
        "",
        f"{'PHASE':<22} {'A (plant)':>14} {'B (plant)':>14} {'B - A':>14}",
    ]
    for name, a, b in c.phase_rows:
        diff = "-" if a is None or b is None else _signed(b - a)
        lines.append(f"{name:<22} {_dur(a):>14} {_dur(b):>14} {diff:>14}")
    lines += ["", f"{'STEP':<28} {'FIGURE':<22} {'A':>14} {'B':>14} {'B - A':>12}"]
    for step, figure, a, b in c.figure_rows:
        diff = f"{b - a:+.4g}" if _number(a) and _number(b) else "-"
        lines.append(f"{step:<28} {figure:<22} {_fig(a):>14} {_fig(b):>14} {diff:>12}")
    return "\n".join(lines) + "\n"


def render_comparison_html(c: Comparison) -> str:
    text = html.escape(render_comparison(c))
    plot = plot_svg(c.overlay) if c.overlay is not None and c.overlay.series else "<p>(no overlay)</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>depline compare "
        f"{html.escape(c.a.id)} / {html.escape(c.b.id)}</title></head><body>"
        f"<h1>{html.escape(c.a.id)} against {html.escape(c.b.id)}</h1><pre>{text}</pre>{plot}</body></html>\n"
    )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fig(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if _number(v) else str(v)


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else duration(seconds)


def _signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + duration(abs(seconds))
