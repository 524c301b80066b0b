"""How a batch reads on a terminal: progress bars, one line per finished job, the end-of-run table.

Pure text from plain values, shared by `depline batch` running its own embedded service and by
`depline batch --url` following a batch inside a running service, so both look the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

BAR_WIDTH: Final = 24
OUTCOMES: Final = ("done", "rejected", "failed", "aborted", "not run")


@dataclass(frozen=True, slots=True)
class JobLine:
    position: int
    id: str
    recipe: str
    outcome: str | None
    plant_hours: float | None
    message: str


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def progress_line(
    position: int, total: int, fraction: float, state: str, title: str, plant_h: float | None
) -> str:
    """`plant_h` None: plant time is not known here (a client of the service)."""
    queue_fraction = (position - 1 + fraction) / max(total, 1)
    plant = "" if plant_h is None else f" (plant {plant_h:4.1f} h)"
    return (
        f"job {position}/{total} {bar(fraction)} {fraction:4.0%}  queue {bar(queue_fraction, 12)} "
        f"{queue_fraction:4.0%}  [{state}] {title}{plant}"
    )


def job_end_line(position: int, job_id: str, recipe: str, outcome: str, message: str) -> str:
    text = f"  -> job {position} {job_id} {recipe}: {outcome.upper()}"
    return text + (f" ({message})" if message and outcome != "done" else "")


def summary_lines(
    batch_id: str, status: str, resumed: bool, jobs: Sequence[JobLine], exposures: Sequence[tuple[str, str]]
) -> list[str]:
    """The end-of-run table, the totals, and every electrode's exposure record (id, one line)."""
    lines = ["", f"batch {batch_id}: {status.upper()}" + (" (resumed)" if resumed else "")]
    row = "{:>3}  {:<28} {:<48} {:<8} {:>9}  {}"
    lines.append(row.format("#", "JOB", "RECIPE", "OUTCOME", "PLANT h", "NOTE"))
    for job in jobs:
        hours = "" if job.plant_hours is None else f"{job.plant_hours:.2f}"
        outcome = job.outcome or "not run"
        lines.append(row.format(job.position, job.id, job.recipe[:48], outcome, hours, job.message[:60]))
    counts = {o: sum((j.outcome or "not run") == o for j in jobs) for o in OUTCOMES}
    lines.append("totals: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    lines.append("")
    lines.append("exposure records (every electrode's path; 'never exposed' means only inert or vacuum):")
    lines += [f"  {electrode}: {record}" for electrode, record in exposures]
    return lines
