"""`depline export`: one run's records in one small SQLite file that another site can read as a historian.

Why it is built this way:

- **The same schema, made by the same migrations.** The file is an ordinary depline historian at the
  current revision (created by Alembic, not by a copy of `MetaData`), so `depline replay --database
  FILE`, `history`, `timeline`, `samples`, `rejudge` and `compare` open it like any other, and
  `depline import` loads it into another historian. Rows keep their source ids: an engineer can quote
  a command's id from the export and find it at the source.
- **What a run's answers need, not a sample more.** A run (batch, job or service run) covers a window;
  the file holds its batch and jobs with their events, every event row of its line in the window
  (commands, alarms, transitions, mode changes, item moves), every sample of the line's channels in
  the window, the service runs that overlap it, the configuration and recipe texts as stored, the
  touched items with their whole ledger up to the window's end (a certificate's exposure verdict is
  folded from it), and every done registration, move and seal change before the end (where each item
  was at any instant is folded from those). The window opens with a lead-in: from the start of the
  service run that was running when the run began (`with_lead_in`), since that is where `rejudge`
  and a replay begin folding the line's state. Certificates are not stored (they are rendered from these
  rows), so none is exported: `depline report --database FILE` renders it.
- **Whole or absent.** It is written to `FILE.partial` and renamed when complete, in SQLite's rollback
  journal mode (one file, no -wal beside it); an existing FILE is kept unless `--force`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import ColumnElement, Table, and_, func, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from controller.errors import UserError
from controller.flight_recorder.rejudge import PRELOAD_S
from controller.historian.migration_lock import LOCK_FILE_SUFFIX
from controller.historian.queries import IN_CHUNK
from controller.historian.record_search import item_ids_of_job
from controller.historian.recovery import INVENTORY_ACTIONS
from controller.historian.schema import (
    alarm_events,
    batches,
    channels,
    commands,
    items,
    job_events,
    jobs,
    ledger,
    lines,
    make_engine,
    mode_changes,
    runs,
    samples,
    transitions,
)
from controller.historian.upgrade import upgrade
from controller.reports.gather import shown_url

EXPORT_TIMEOUT_S: Final = 600.0
COPY_CHUNK: Final = 5000
MAX_LEAD_IN_S: Final = 86_400.0
# the order rows are written in: every table after the ones its foreign keys name
EXPORT_TABLES: Final = (
    lines,
    runs,
    items,
    channels,
    batches,
    jobs,
    job_events,
    transitions,
    mode_changes,
    alarm_events,
    ledger,
    commands,
    samples,
)
WINDOW_TABLES: Final = (transitions, mode_changes, alarm_events, commands)


@dataclass(frozen=True, slots=True)
class RunScope:
    """What an export covers: a line, a window (`until_ts` None: not ended yet), batches and jobs."""

    line: str
    what: str  # "batch B…", "job B…-J01", "service run 2026…"
    since_ts: float  # with `with_lead_in`, earlier than the run itself
    until_ts: float | None
    batch_ids: tuple[str, ...]
    job_ids: tuple[str, ...]


@dataclass(slots=True)
class ExportSummary:
    scope: RunScope
    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0

    def render(self) -> str:
        width = max(len(name) for name in self.rows)
        lines_ = [f"depline: exported {self.scope.what} (line {self.scope.line}) to {self.path}"]
        lines_ += [f"  {name:<{width}}  {count:>9}" for name, count in self.rows.items()]
        lines_.append(f"  {'size':<{width}}  {self.size_bytes:>9} bytes")
        return "\n".join(lines_) + "\n"


async def export_run(source_url: str, run: str, output: Path, *, force: bool = False) -> ExportSummary:
    """Write `run`'s records from the historian at `source_url` to the SQLite file `output`."""
    partial = output.with_name(output.name + ".partial")
    remove_sqlite_file(partial)
    engine = make_engine(source_url, timeout_s=EXPORT_TIMEOUT_S, poolclass=NullPool)
    try:
        async with engine.connect() as source:
            scope = await with_lead_in(source, await scope_of_run(source, run, shown_url(source_url)))
            await upgrade(f"sqlite:///{partial}")  # the schema is the migrations', at their head
            summary = ExportSummary(scope, output)
            target_engine = make_engine(
                f"sqlite:///{partial}", timeout_s=EXPORT_TIMEOUT_S, poolclass=NullPool
            )
            try:
                async with target_engine.begin() as target:
                    summary.rows = await _copy_scope(source, target, scope)
            finally:
                await target_engine.dispose()
        summary.size_bytes = await asyncio.to_thread(_publish, partial, output, force)
    finally:  # a failed export leaves nothing; a published one leaves no lock file of its partial beside it
        remove_sqlite_file(partial)
        await engine.dispose()
    return summary


async def scope_of_run(conn: AsyncConnection, run: str, shown: str) -> RunScope:
    """The batch, job or service run with id `run` (ids are unique over the lines of a database), or a
    `UserError` naming the database."""
    batch = (await conn.execute(select(batches).where(batches.c.id == run))).mappings().first()
    if batch is not None:
        found = (await conn.execute(select(jobs).where(jobs.c.batch_id == run))).mappings().all()
        since = min([float(batch["created_at"])] + [float(j["started_at"]) for j in found if j["started_at"]])
        ends = [batch["ended_at"]] + [j["ended_at"] for j in found if j["started_at"] is not None]
        until = None if any(e is None for e in ends) else max(float(e) for e in ends)
        return RunScope(
            str(batch["line"]), f"batch {run}", since, until, (run,), tuple(j["id"] for j in found)
        )
    job = (await conn.execute(select(jobs).where(jobs.c.id == run))).mappings().first()
    if job is not None:
        owner = (await conn.execute(select(batches).where(batches.c.id == job["batch_id"]))).mappings().one()
        since = float(job["started_at"] if job["started_at"] is not None else owner["created_at"])
        until = None if job["ended_at"] is None else float(job["ended_at"])
        return RunScope(str(job["line"]), f"job {run}", since, until, (str(job["batch_id"]),), (run,))
    service = (await conn.execute(select(runs).where(runs.c.id == run))).mappings().first()
    if service is not None:
        since = float(service["started_at"])
        until = None if service["ended_at"] is None else float(service["ended_at"])
        overlapping = (
            await conn.execute(
                select(jobs.c.id, jobs.c.batch_id).where(
                    jobs.c.line == service["line"],
                    jobs.c.started_at.is_not(None),
                    true() if until is None else jobs.c.started_at <= until,
                    or_(jobs.c.ended_at.is_(None), jobs.c.ended_at >= since),
                )
            )
        ).all()
        batch_ids = tuple(dict.fromkeys(str(b) for _j, b in overlapping))
        return RunScope(
            str(service["line"]),
            f"service run {run}",
            since,
            until,
            batch_ids,
            tuple(j for j, _b in overlapping),
        )
    raise UserError(f"export: {shown} has no batch, job or service run {run!r}")


async def with_lead_in(conn: AsyncConnection, scope: RunScope) -> RunScope:
    """The scope begun where `depline rejudge` and a replay begin folding state: at the start of the
    service run that was running when the window opened (the atmosphere memory the live supervisor
    judged with), `PRELOAD_S` earlier still for the readings held at that instant; at most
    `MAX_LEAD_IN_S` before the window (a service that ran for weeks before the batch would otherwise
    export weeks of samples; re-judging such an export starts from less than the live one had)."""
    containing = (
        await conn.execute(
            select(func.max(runs.c.started_at)).where(
                runs.c.line == scope.line,
                runs.c.started_at <= scope.since_ts,
                or_(runs.c.ended_at.is_(None), runs.c.ended_at >= scope.since_ts),
            )
        )
    ).scalar_one_or_none()
    start = scope.since_ts if containing is None else min(scope.since_ts, float(containing))
    since = max(start - PRELOAD_S, scope.since_ts - MAX_LEAD_IN_S)
    return dataclasses.replace(scope, since_ts=since)


def _in_window(table: Table, scope: RunScope) -> ColumnElement[bool]:
    after = table.c.ts >= scope.since_ts
    return after if scope.until_ts is None else and_(after, table.c.ts <= scope.until_ts)


def _before_end(table: Table, scope: RunScope) -> ColumnElement[bool]:
    return true() if scope.until_ts is None else table.c.ts <= scope.until_ts


async def _copy_scope(source: AsyncConnection, target: AsyncConnection, scope: RunScope) -> dict[str, int]:
    rows = await _records(source, scope)
    counts: dict[str, int] = {}
    for table in EXPORT_TABLES:
        if table is samples:
            channel_ids = [int(c["id"]) for c in rows["channels"]]
            counts["samples"] = await _copy_samples(source, target, channel_ids, scope)
        else:
            await insert_rows(target, table, rows[table.name])
            counts[table.name] = len(rows[table.name])
    return counts


async def _records(source: AsyncConnection, scope: RunScope) -> dict[str, list[dict[str, Any]]]:
    """Every row of the scope but its samples, by table (see the module docstring for what and why)."""
    line = scope.line
    rows: dict[str, list[dict[str, Any]]] = {}
    rows["lines"] = [
        {**r, "holder": None, "heartbeat_at": None}  # the lease is the source service's, not the file's
        for r in await all_rows(source, select(lines).where(lines.c.name == line))
    ]
    rows["batches"] = await all_rows(source, select(batches).where(batches.c.id.in_(scope.batch_ids)))
    rows["jobs"] = await all_rows(source, select(jobs).where(jobs.c.id.in_(scope.job_ids)))
    rows["job_events"] = await all_rows(
        source, select(job_events).where(job_events.c.job_id.in_(scope.job_ids)).order_by(job_events.c.id)
    )
    for table in WINDOW_TABLES:
        rows[table.name] = await all_rows(
            source, select(table).where(table.c.line == line, _in_window(table, scope)).order_by(table.c.id)
        )
    handling = await all_rows(source, _inventory_handling(line, scope))
    rows["commands"] = _merged(rows["commands"], handling)
    rows["items"], rows["ledger"] = await _item_records(source, scope, rows["jobs"], handling)
    named_runs = {r["run_id"] for t in WINDOW_TABLES if "run_id" in t.c for r in rows[t.name]} - {None}
    overlapping = and_(
        runs.c.line == line,
        or_(runs.c.ended_at.is_(None), runs.c.ended_at >= scope.since_ts),
        true() if scope.until_ts is None else runs.c.started_at <= scope.until_ts,
    )
    rows["runs"] = await all_rows(source, select(runs).where(or_(overlapping, runs.c.id.in_(named_runs))))
    rows["channels"] = await all_rows(
        source, select(channels).where(channels.c.line == line).order_by(channels.c.id)
    )
    return rows


async def _item_records(
    source: AsyncConnection, scope: RunScope, job_rows: list[dict[str, Any]], handling: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The touched items (the jobs', the handled ones, the ones moved in the window) and their ledger up
    to the window's end; ids go to the database `IN_CHUNK` at a time (a year of handling names many)."""
    line = scope.line
    in_window = await all_rows(source, select(ledger).where(ledger.c.line == line, _in_window(ledger, scope)))
    touched = sorted(_touched_items(job_rows, handling) | {str(r["item"]) for r in in_window})
    item_rows: list[dict[str, Any]] = []
    ledger_rows: list[dict[str, Any]] = list(in_window)
    for start in range(0, len(touched), IN_CHUNK):
        chunk = touched[start : start + IN_CHUNK]
        item_rows += await all_rows(source, select(items).where(items.c.line == line, items.c.id.in_(chunk)))
        ledger_rows += await all_rows(
            source,
            select(ledger).where(ledger.c.line == line, ledger.c.item.in_(chunk), _before_end(ledger, scope)),
        )
    return item_rows, _merged(ledger_rows, [])


def _inventory_handling(line: str, scope: RunScope) -> Any:
    """Every done registration, move, seal change and coating of the line up to the window's end."""
    kinds = or_(*(commands.c.action.like(f'{{"type":"{name}",%') for name in INVENTORY_ACTIONS))
    return (
        select(commands)
        .where(commands.c.line == line, commands.c.outcome == "done", kinds, _before_end(commands, scope))
        .order_by(commands.c.id)
    )


def _touched_items(job_rows: Iterable[dict[str, Any]], handling: Iterable[dict[str, Any]]) -> set[str]:
    touched: set[str] = set()
    for job in job_rows:
        touched |= item_ids_of_job(json.loads(job["items"]))
    for command in handling:
        action = json.loads(command["action"])
        touched |= {str(action[key]) for key in ("id", "item", "container", "to") if action.get(key)}
    return touched


def _merged(first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one table found by two selections, once each, in id (journal) order."""
    by_id = {int(r["id"]): r for r in (*first, *second)}
    return [by_id[i] for i in sorted(by_id)]


async def all_rows(conn: AsyncConnection, statement: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(statement)).mappings().all()]


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), COPY_CHUNK):
        await conn.execute(insert(table), list(rows[start : start + COPY_CHUNK]))


async def _copy_samples(
    source: AsyncConnection, target: AsyncConnection, channel_ids: list[int], scope: RunScope
) -> int:
    """Streamed page by page: a night of samples never sits in memory whole."""
    if not channel_ids:
        return 0
    statement = (
        select(samples)
        .where(samples.c.channel_id.in_(channel_ids), _in_window(samples, scope))
        .order_by(samples.c.id)
    )
    count = 0
    result = await source.stream(statement)
    async for page in result.mappings().partitions(COPY_CHUNK):
        await target.execute(insert(samples), [dict(r) for r in page])
        count += len(page)
    return count


def _publish(partial: Path, output: Path, force: bool) -> int:
    """The finished file under its name; its size.

    One self-contained file first: the write-ahead log folded in and rollback-journal mode, so the
    export is a single file to mail and a reader that opens it read-only needs no -wal or -shm."""
    with contextlib.closing(sqlite3.connect(partial)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    if output.exists() and not force:
        raise UserError(f"-o {output}: the file exists (give --force to replace it)")
    partial.replace(output)
    return output.stat().st_size


def remove_sqlite_file(path: Path) -> None:
    """The file and what SQLite and the migrations keep beside it (journals, the migration lock)."""
    for suffix in ("", "-wal", "-shm", "-journal", LOCK_FILE_SUFFIX):
        Path(str(path) + suffix).unlink(missing_ok=True)
