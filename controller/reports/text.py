"""The certificate as plain text, for the terminal (`depline report RUN`).

Pure rendering: a function of the gathered `RunReport`, no I/O, so the CLI decides where it goes.
"""

from __future__ import annotations

from controller.reports.layers import layer_text
from controller.reports.record import ItemReport, JobReport, RunReport
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


def render_text(report: RunReport) -> str:
    """The certificate as plain text, for the terminal (`depline report RUN`)."""
    lines = [
        f"depline exposure report for {report.run} (line {report.line}, {report.database})",
        f"generated {utc(report.generated_at)}; {len(report.jobs)} job(s)",
    ]
    if report.production_note:
        lines.append(report.production_note)
    if report.batch is not None:
        lines.append(batch_line(report))
    for job in report.jobs:
        lines += ["", *_job_text(job)]
    return "\n".join(lines) + "\n"


def _job_text(job: JobReport) -> list[str]:
    lines = [
        f"== job {job.id}: {job.name}",
        f"   recipe {job.recipe_path}",
        f"   outcome {outcome_text(job)}; {job_times(job)}",
    ]
    if job.message:
        lines.append(f"   message: {job.message}")
    lines.append(f"   verdict: {job.verdict}")
    lines += layer_text(job.layers)
    lines.append("   operator confirmations:" + ("" if job.confirmations else " none"))
    for c in job.confirmations:
        waited = f"waited {duration(c.waited_s)}" if c.waited_s is not None else "wait unknown"
        lines.append(f"     {utc(c.confirmed_at)}  {confirmed_by(c)}: {c.prompt!r} ({waited})")
    if job.events:
        lines.append("   events:")
        lines += [
            f"     {utc(e.ts, digits=1)}  {e.source:<7} {event_mark(e.first_out)}"
            f"{e.kind + ': ' if e.source == 'job' else ''}{e.text}"
            for e in job.events
        ]
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
            f"      time exposed to a non-inert atmosphere: {duration(item.non_inert_s)}; "
            f"out of a sealed container: {duration(item.exposed_s)}"
        )
        lines.append(f"      path: {path_text(item.path)}")
        lines.append("      ledger:")
        row = "        {:<25} {:<11} {:<8} {:<17} {:<7} {}"
        lines.append(row.format("TIME", "EVENT", "SPACE", "ATMOSPHERE", "EXPOSED", "EVIDENCE"))
        for e in item.entries:
            lines.append(
                row.format(
                    utc(e.ts, digits=1),
                    e.event,
                    e.space,
                    e.atmosphere,
                    "yes" if e.exposed else "no",
                    evidence_text(e.evidence),
                ).rstrip()
            )
    if item.handling:
        lines.append("      handling:")
        lines += [f"        {utc(h.ts, digits=1)}  {h.user}: {h.what}" for h in item.handling]
    return lines


__all__ = ["render_text"]
