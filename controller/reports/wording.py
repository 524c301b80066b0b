"""How a certificate words times, durations and sensor evidence.

One set of phrases for the verdicts (`controller.reports.gather`) and the text, HTML and PDF
certificates, so the same evidence reads the same wherever it is printed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from controller.line.ledger import Stay
from controller.reports.record import Confirmation, JobReport, RunReport


def as_number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def utc(ts: float | None, *, digits: int = 0) -> str:
    if ts is None:
        return "-"
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        text += f".{when.microsecond // 10 ** (6 - digits):0{digits}d}"  # truncated: 15.96 s is second 15
    return text + " UTC"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {seconds - 60 * minutes:02.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def pressure(pa: float) -> str:
    return f"{pa / 1000:.1f} kPa" if pa >= 1000 else f"{pa:.3g} Pa"


def evidence_text(evidence: dict[str, float | str]) -> str:
    parts: list[str] = []
    for key, value in evidence.items():
        number = as_number(value)
        if key == "o2_basis":
            parts.append(str(value))  # an assumption in words, never dressed as a reading
        elif key == "air_fraction_bound" and "o2_basis" in evidence:
            continue  # "air share <= 1" says nothing the assumption does not
        elif number is None or not math.isfinite(number):
            parts.append(f"{key} {value}")
        elif key == "pressure_pa":
            parts.append(f"p {pressure(number)}")
        elif key == "frost_point_c":
            parts.append(f"frost point {number:.1f} °C")
        elif key == "o2_ppmv":
            parts.append(f"O2 {number:.2g} ppmv")
        elif key == "o2_estimate_ppmv":
            parts.append(f"O2 bound {number:.2g} ppmv")
        elif key == "air_fraction_bound":
            parts.append(f"air share <= {number:.2g}")
        elif key == "unwatched_since_ts":
            parts.append(f"unwatched since {utc(number)}")
        else:
            parts.append(f"{key} {number:g}")
    return ", ".join(parts)


def path_text(path: Iterable[Stay]) -> str:
    return " -> ".join(f"{s.space} ({utc(s.since_ts)[11:19]})" for s in path)


def confirmed_by(c: Confirmation) -> str:
    return (c.user or "?") + (f" via {c.via}" if c.via else "")


def outcome_text(job: JobReport) -> str:
    return job.outcome or f"not finished (state {job.state})"


def job_times(job: JobReport) -> str:
    text = f"started {utc(job.started_at)}, ended {utc(job.ended_at)}"
    if job.started_at is not None and job.ended_at is not None:
        text += f" ({duration(job.ended_at - job.started_at)})"
    return text


def batch_line(report: RunReport) -> str:
    batch = report.batch
    if batch is None:
        return ""
    return (
        f"batch {batch['id']} from {batch['queue_path']}, by {batch['user']}, created "
        f"{utc(batch['created_at'])}, {batch['status']}"
    )


def event_mark(first_out: bool) -> str:
    """What flags the first alarm of a cascade on every form of the certificate, as on the timeline."""
    return "FIRST-OUT " if first_out else ""
