"""The certificate as plain text, for the terminal (`depline report RUN`).

Pure rendering: a function of the gathered `RunReport`, no I/O, so the CLI decides where it goes.
"""

from __future__ import annotations

from controller.reports.record import ItemReport, JobReport, RunReport
from controller.reports.wording import (
    _batch_line,
    _duration,
    _evidence_text,
    _job_times,
    _outcome,
    _path_text,
    _utc,
    _who,
)


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


__all__ = ["render_text"]
