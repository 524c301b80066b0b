"""The certificate as one self-contained HTML page: inline CSS, the plot as inline SVG.

One file to archive or mail, and what the HMI's end-of-run record opens (GET /api/reports/{run}.html).
Pure rendering: a function of the gathered `RunReport`, no I/O.
"""

from __future__ import annotations

import html
from typing import Final

from controller.reports.layers import layer_rows
from controller.reports.plot import Shape, plot_shapes
from controller.reports.record import ItemReport, JobReport, Plot, RunReport
from controller.reports.wording import (
    batch_line,
    confirmed_by,
    duration,
    event_mark,
    evidence_text,
    job_times,
    outcome_text,
    path_text,
    utc,
)


def plot_svg(plot: Plot, width: float = 860.0, panel_height: float = 170.0) -> str:
    shapes, height = plot_shapes(plot, width, panel_height)
    label = f"pressure, frost point and substrate temperature of {', '.join(plot.spaces)}; {plot.item}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{html.escape(label)}">'
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
tr.first-out td { color: #b00000; font-weight: bold; }
table.events td:first-child { white-space: nowrap; }
.exposed { background: #fff0f0; }
section.job { border-top: 2px solid #333; margin-top: 2em; }
"""


def render_html(report: RunReport) -> str:
    """A self-contained HTML certificate (inline CSS and SVG: one file to archive or mail)."""
    e = html.escape
    body = [
        f"<h1>Exposure certificate: {e(report.run)}</h1>",
        f"<p>Line {e(report.line)}, records in {e(report.database)}; "
        f"generated {e(utc(report.generated_at))}."
        f"{(' ' + e(batch_line(report)).capitalize() + '.') if report.batch else ''}</p>",
    ]
    if report.production_note:
        body.append(f'<p class="verdict bad"><strong>{e(report.production_note)}</strong></p>')
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
        f"<tr><th>outcome</th><td>{e(outcome_text(job))}</td></tr>",
        f"<tr><th>times</th><td>{e(job_times(job))}</td></tr>",
        *([f"<tr><th>message</th><td>{e(job.message)}</td></tr>"] if job.message else []),
        f"<tr><th>verdict</th><td>{_verdict_html(job.verdict, job.good)}</td></tr>",
        "</table>",
        *_layers_html(job),
        "<h3>Operator confirmations</h3>",
    ]
    if job.confirmations:
        parts.append("<table><tr><th>confirmed</th><th>by</th><th>prompt</th><th>waited</th></tr>")
        for c in job.confirmations:
            waited = duration(c.waited_s) if c.waited_s is not None else "?"
            parts.append(
                f"<tr><td>{e(utc(c.confirmed_at))}</td><td>{e(confirmed_by(c))}</td><td>{e(c.prompt)}</td>"
                f"<td>{e(waited)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>none</p>")
    if job.events:
        parts.append(
            '<h3>Events</h3><table class="events">'
            "<tr><th>time</th><th>source</th><th>kind</th><th>detail</th></tr>"
        )
        parts += [
            f'<tr class="event{" first-out" if ev.first_out else ""}" data-source="{e(ev.source)}">'
            f"<td>{e(utc(ev.ts))}</td><td>{e(ev.source)}</td>"
            f"<td>{e(event_mark(ev.first_out))}{e(ev.kind)}</td><td>{e(ev.text)}</td></tr>"
            for ev in job.events
        ]
        parts.append("</table>")
    if job.plot is not None:
        parts += [
            f"<h3>Every space of the line over the job (dashed: {e(job.plot.item)} moved)</h3>",
            plot_svg(job.plot),
        ]
    parts += [_item_html(item) for item in job.items]
    parts.append("</section>")
    return "\n".join(parts)


def _layers_html(job: JobReport) -> list[str]:
    """The layer table (controller.reports.layers), after the verdict: what the electrode carries."""
    if not job.layers:
        return []
    e = html.escape
    header, *rows = layer_rows(job.layers)
    parts = [
        '<h3>Layers</h3><table class="layers">',
        "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>",
    ]
    parts += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    parts.append("</table>")
    return parts


def _item_html(item: ItemReport) -> str:
    e = html.escape
    what = f"{item.kind}, {item.material}" if item.kind is not None else "not registered"
    parts = [
        f'<h3 id="item-{e(item.item)}">{e(item.role)}: {e(item.item)} <small>({e(what)})</small></h3>',
        f"<p>{_verdict_html(item.verdict, item.good)}</p>",
    ]
    if item.entries:
        parts.append(
            f"<p>Time exposed to a non-inert atmosphere: <b>{e(duration(item.non_inert_s))}</b>; out of a "
            f"sealed container: {e(duration(item.exposed_s))}. Path: {e(path_text(item.path))}.</p>"
        )
        parts.append(
            "<table><tr><th>time</th><th>event</th><th>space</th><th>atmosphere</th><th>exposed</th>"
            "<th>evidence</th></tr>"
        )
        for entry in item.entries:
            cls = ' class="exposed"' if entry.exposed else ""
            parts.append(
                f"<tr{cls}><td>{e(utc(entry.ts, digits=1))}</td><td>{e(entry.event)}</td>"
                f"<td>{e(entry.space)}</td>"
                f"<td>{e(entry.atmosphere)}</td><td>{'yes' if entry.exposed else 'no'}</td>"
                f"<td>{e(evidence_text(entry.evidence))}</td></tr>"
            )
        parts.append("</table>")
    if item.handling:
        parts.append("<table><tr><th>time</th><th>by</th><th>handling</th></tr>")
        parts += [
            f"<tr><td>{e(utc(h.ts, digits=1))}</td><td>{e(h.user)}</td><td>{e(h.what)}</td></tr>"
            for h in item.handling
        ]
        parts.append("</table>")
    return "\n".join(parts)


__all__ = ["plot_svg", "render_html"]
