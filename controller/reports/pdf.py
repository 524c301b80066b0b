"""The certificate as a PDF (reportlab): the HTML page's sections, the plot as vector graphics.

reportlab is imported inside the functions that draw, never at the top: the CLI and the API import
this module on every start, and only a PDF asked for pays for loading it.
Pure rendering: a function of the gathered `RunReport`, no I/O.
"""

from __future__ import annotations

import html
import io
from typing import Any

from controller.reports.layers import layer_rows
from controller.reports.plot import plot_shapes
from controller.reports.record import Plot, RunReport
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
        para(f"Line {report.line}, records in {report.database}; generated {utc(report.generated_at)}."),
    ]
    if report.production_note:
        story.append(para(report.production_note, styles["Heading3"]))
    if report.batch is not None:
        story.append(para(batch_line(report)))
    for job in report.jobs:
        story += [Spacer(1, 4 * mm), para(f"Job {job.id}: {job.name}", styles["Heading2"])]
        story.append(para(f"Recipe {job.recipe_path}. Outcome {outcome_text(job)}; {job_times(job)}."))
        if job.message:
            story.append(para(f"Message: {job.message}"))
        story.append(para(f"Verdict: {job.verdict}", styles["Heading4"]))
        if job.layers:
            widths = [0.1, 0.09, 0.09, 0.14, 0.07, 0.12, 0.13, 0.13, 0.13]
            story += [para("Layers", styles["Heading4"]), table(layer_rows(job.layers), widths)]
        if job.confirmations:
            rows = [["confirmed", "by", "prompt", "waited"]]
            rows += [
                [
                    utc(c.confirmed_at),
                    confirmed_by(c),
                    c.prompt,
                    duration(c.waited_s) if c.waited_s is not None else "?",
                ]
                for c in job.confirmations
            ]
            story += [
                para("Operator confirmations", styles["Heading4"]),
                table(rows, [0.22, 0.1, 0.56, 0.12]),
            ]
        if job.events:
            rows = [["time", "source", "kind", "detail"]]
            rows += [
                [utc(ev.ts), ev.source, event_mark(ev.first_out) + ev.kind, ev.text] for ev in job.events
            ]
            story += [para("Events", styles["Heading4"]), table(rows, [0.2, 0.09, 0.16, 0.55])]
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
                        f"Time exposed to a non-inert atmosphere: {duration(item.non_inert_s)}; out of a "
                        f"sealed container: {duration(item.exposed_s)}. Path: {path_text(item.path)}."
                    )
                )
                rows = [["time", "event", "space", "atmosphere", "exposed", "evidence"]]
                rows += [
                    [
                        utc(entry.ts, digits=1),
                        entry.event,
                        entry.space,
                        entry.atmosphere,
                        "yes" if entry.exposed else "no",
                        evidence_text(entry.evidence),
                    ]
                    for entry in item.entries
                ]
                story.append(table(rows, [0.2, 0.1, 0.09, 0.14, 0.08, 0.39]))
            if item.handling:
                rows = [["time", "by", "handling"]] + [
                    [utc(h.ts, digits=1), h.user, h.what] for h in item.handling
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


__all__ = ["render_pdf"]
