"""The plot of a certificate laid out as plain shapes: a panel per quantity, scales, the time axis, moves.

One drawing, two outputs: the plot is laid out once here; the HTML page gets the shapes as inline
SVG (no dependency, one self-contained file), the PDF (reportlab) as vector graphics, so both show
the same curves, ticks and moves.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from controller.reports.record import Plot, Quantity, Series

SPACE_COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
QUANTITIES: Final[tuple[tuple[Quantity, str, str], ...]] = (
    ("pressure", "Pressure", "Pa"),
    ("frost_point", "Frost point", "°C"),
    ("substrate_temp", "Substrate temperature", "°C"),
)


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
    caption = (
        plot.time_caption
        or f"time (UTC, from {day}); dashed lines: {plot.item} moved to the space named above"
    )
    shapes.append(Shape("text", (((x0 + x1) / 2, bottom + 30),), "#000000", "axis", caption, 9, "middle"))
    return shapes


__all__ = ["Shape", "plot_shapes"]
