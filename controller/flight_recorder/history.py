"""`depline history`: which batches and jobs ran, how they ended, and what each electrode's verdict is.

Why it is built this way:

- **The verdict is the certificate's.** Each job's verdict comes from `gather_report` (without its
  plot), so a listing can never call an electrode good that its certificate withholds.
- **Plant hours from the record.** A job records the plant speed of each attempt (`attempt` events):
  on a real line plant and wall hours agree; on the simulated line they differ by the speed, and a
  listing that showed only wall time would make a night's batch look like minutes.
- **Service runs by overlap.** A job names the service runs whose lifetime overlaps its own (a resumed
  job has several); the records need no extra link for that, and the run list names the jobs back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.historian.store import Historian
from controller.reports.gather import gather_report, shown_url
from controller.reports.record import JobReport
from controller.reports.wording import duration, utc


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    since_ts: float | None = None
    until_ts: float | None = None
    outcome: str | None = None
    recipe: str | None = None  # a substring of the recipe's path
    item: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class JobLine:
    id: str
    position: int
    name: str
    recipe: str
    state: str
    outcome: str | None
    started_at: float | None
    ended_at: float | None
    wall_s: float | None
    plant_s: float | None
    electrode: str
    items: tuple[str, ...]
    certified: bool
    verdict: str
    service_runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchLine:
    id: str
    queue: str
    user: str
    status: str
    created_at: float
    ended_at: float | None
    jobs: tuple[JobLine, ...]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def find_history(historian: Historian, config: LineConfig, wanted: HistoryFilter) -> list[BatchLine]:
    """Batches newest first, each with the jobs the filter keeps; a batch with none kept is left out."""
    if wanted.item is not None:
        ids = await historian.batches_naming_item(wanted.item)
        if not ids:
            raise UserError(f"history: {shown_url(historian.url)} has no job that used item {wanted.item!r}")
        rows = await historian.batch_rows_by_id(ids)
        rows = [b for b in rows if _in_window(b["created_at"], wanted)][: wanted.limit]
    else:
        rows = await historian.batch_rows(wanted.since_ts, wanted.until_ts, wanted.limit)
    service_runs = await historian.runs(limit=10_000)
    found = []
    for batch in rows:
        report = await gather_report(historian, config, str(batch["id"]), plot_points=0, line_events=False)
        events = {job.id: await historian.job_events(job.id) for job in report.jobs}
        lines = [_job_line(job, events[job.id], service_runs) for job in report.jobs]
        kept = tuple(line for line in lines if _keeps(line, wanted))
        if kept:
            found.append(_batch_line(batch, kept))
    return found


def _in_window(ts: float, wanted: HistoryFilter) -> bool:
    return (wanted.since_ts is None or ts >= wanted.since_ts) and (
        wanted.until_ts is None or ts <= wanted.until_ts
    )


def _keeps(line: JobLine, wanted: HistoryFilter) -> bool:
    if wanted.outcome is not None and (line.outcome or "running") != wanted.outcome:
        return False
    if wanted.recipe is not None and wanted.recipe not in line.recipe:
        return False
    return wanted.item is None or wanted.item in line.items


def _batch_line(row: dict[str, Any], jobs: tuple[JobLine, ...]) -> BatchLine:
    return BatchLine(
        id=str(row["id"]),
        queue=str(row["queue_path"]),
        user=str(row["user"]),
        status=str(row["status"]),
        created_at=float(row["created_at"]),
        ended_at=row["ended_at"],
        jobs=jobs,
    )


def _job_line(
    job: JobReport, events: Sequence[dict[str, Any]], service_runs: Sequence[dict[str, Any]]
) -> JobLine:
    wall_s = None
    if job.started_at is not None and job.ended_at is not None:
        wall_s = max(0.0, job.ended_at - job.started_at)
    speeds = [e["detail"].get("plant_speed") for e in events if e["kind"] == "attempt"]
    speed = next((float(s) for s in reversed(speeds) if isinstance(s, int | float)), None)
    return JobLine(
        id=job.id,
        position=job.position,
        name=job.name,
        recipe=job.recipe_path,
        state=job.state,
        outcome=job.outcome,
        started_at=job.started_at,
        ended_at=job.ended_at,
        wall_s=wall_s,
        plant_s=None if wall_s is None or speed is None else wall_s * speed,
        electrode=job.items[0].item if job.items else "",
        items=tuple(dict.fromkeys(i.item for i in job.items)),
        certified=job.good,
        verdict=job.verdict,
        service_runs=_overlapping_runs(job, service_runs),
    )


def _overlapping_runs(job: JobReport, service_runs: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    if job.started_at is None:
        return ()
    end = job.ended_at if job.ended_at is not None else float("inf")
    return tuple(
        str(r["id"])
        for r in sorted(service_runs, key=lambda r: float(r["started_at"]))
        if float(r["started_at"]) <= end and (r["ended_at"] is None or float(r["ended_at"]) >= job.started_at)
    )


def render_history(found: Sequence[BatchLine]) -> str:
    """The listing as an engineer reads it at a terminal: one block per batch, one line per job."""
    if not found:
        return "no batch matches\n"
    out = []
    row = "  {:<24} {:<22} {:<9} {:<20} {:>10} {:>10}  {:<18} {}"
    for batch in found:
        out.append(
            f"batch {batch.id}  {batch.queue}  by {batch.user}  {batch.status}  "
            f"{utc(batch.created_at)} .. {utc(batch.ended_at)}"
        )
        out.append(row.format("JOB", "RECIPE", "OUTCOME", "STARTED", "WALL", "PLANT", "ELECTRODE", "VERDICT"))
        for job in batch.jobs:
            out.append(
                row.format(
                    job.id,
                    _short(job.recipe, 22),
                    job.outcome or job.state,
                    utc(job.started_at).removesuffix(" UTC"),
                    "-" if job.wall_s is None else duration(job.wall_s),
                    "-" if job.plant_s is None else duration(job.plant_s),
                    job.electrode,
                    "certified" if job.certified else job.verdict,
                )
            )
        out.append("")
    return "\n".join(out)


def _short(text: str, width: int) -> str:
    name = text.rsplit("/", 1)[-1]
    return name if len(name) <= width else name[: width - 1] + "…"
