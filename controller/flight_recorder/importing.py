"""`depline import`: an export's records loaded into another historian (SQLite or PostgreSQL).

Why it is built this way:

- **Surrogate ids are the target's.** Event rows and samples get new ids from the target (inserted in
  the export's id order, so `ORDER BY id` is still the journal's order); a sample's channel is found
  by its natural key (line, device, channel) and takes the target's id for it. Nothing else refers to
  a surrogate id.
- **Natural ids are never silently merged.** Batch, job, run and item ids, lines and channels are
  what people quote. One the target already holds *as the export has it* is the same record (two
  exports of one night share the service run that executed both batches, and the items they moved)
  and is kept once; one the target holds *differently* (another line's batch of that id, another
  story of a job) is refused, naming the id and the columns that differ.
- **A record only moves forward.** A run, batch or job exported while it was running is an earlier
  state of the record a later export holds: the same in everything but the columns its progress
  changes (status, end; a job's state, checkpoint, outcome... with its `updated_at`). Imported after
  it, the later state replaces the earlier one; imported before it, the earlier one is kept out.
- **Event rows are kept once.** A command, alarm, transition, mode change, ledger entry or job event
  equal in every column (its id aside) to one already in the target is that row, not a second one;
  so is a sample of the same channel at the same instant with the same value and quality. So
  importing the same file twice changes nothing the second time and says so, and two overlapping
  exports (a batch and the service run around it) load to their union.
- **All or nothing.** Everything is written in one transaction; the file and the target are checked
  before it begins (`controller.flight_recorder.export_file`), and an SQLite target made for this
  import is removed again if the import fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, and_, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from controller.errors import UserError
from controller.flight_recorder.export import (
    COPY_CHUNK,
    EXPORT_TIMEOUT_S,
    all_rows,
    insert_rows,
    remove_sqlite_file,
)
from controller.flight_recorder.export_file import check_export_file, read_only_url
from controller.historian.errors import describe_error
from controller.historian.queries import IN_CHUNK
from controller.historian.schema import (
    HISTORIAN_TABLES,
    alarm_events,
    async_url,
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
from controller.historian.upgrade import require_readable, upgrade
from controller.reports.gather import shown_url

CHANNEL_KEY: Final = ("line", "device", "channel")
# natural key of each table whose rows people name, in foreign-key order
NAMED_TABLES: Final = (
    (lines, ("name",)),
    (runs, ("id",)),
    (items, ("line", "id")),
    (channels, CHANNEL_KEY),
    (batches, ("id",)),
    (jobs, ("id",)),
)
# columns that are not the record's identity: the lease of whoever serves the line, the surrogate id
NOT_COMPARED: Final = {
    "lines": {"registered_at", "holder", "heartbeat_at", "retention_s"},
    "channels": {"id"},
}
# the columns a record's progress changes: a live export holds an earlier state of the record
PROGRESS: Final = {
    "runs": frozenset({"status", "ended_at"}),
    "batches": frozenset({"status", "ended_at"}),
    "jobs": frozenset(
        {"state", "checkpoint", "attempts", "started_at", "ended_at", "outcome", "message", "updated_at"}
    ),
}
EVENT_TABLES: Final = (job_events, transitions, mode_changes, alarm_events, ledger, commands)


@dataclass(slots=True)
class ImportSummary:
    path: Path
    target: str
    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    advanced: dict[str, int] = field(default_factory=dict)  # records brought to the export's later state

    def count(self, table: str, added: int, total: int, advanced: int = 0) -> None:
        self.added[table] = added
        self.present[table] = total - added
        if advanced:
            self.advanced[table] = advanced

    @property
    def nothing_new(self) -> bool:
        return not any(self.added.values()) and not self.advanced

    def render(self) -> str:
        if self.nothing_new:
            return f"depline: {self.target} already holds everything in {self.path}: nothing imported\n"
        width = max(len(name) for name in self.added)
        out = [f"depline: imported {self.path} into {self.target}"]
        out += [
            f"  {name:<{width}}  {count:>9} added  {self.present.get(name, 0):>7} already there"
            + (f" ({self.advanced[name]} brought to a later state)" if name in self.advanced else "")
            for name, count in self.added.items()
        ]
        return "\n".join(out) + "\n"


async def import_export(path: Path, target_url: str) -> ImportSummary:
    """Load the export at `path` into the historian at `target_url`; see the module docstring."""
    check_export_file(path)
    shown = shown_url(target_url)
    made = await prepare_target(target_url)
    source_engine = create_async_engine(async_url(read_only_url(path)), poolclass=NullPool)
    target_engine = make_engine(target_url, timeout_s=EXPORT_TIMEOUT_S, poolclass=NullPool)
    try:
        async with source_engine.connect() as source, target_engine.begin() as target:
            summary = ImportSummary(path, shown)
            await _load(source, target, summary)
    except BaseException:
        if made is not None:
            remove_sqlite_file(made)
        raise
    finally:
        await source_engine.dispose()
        await target_engine.dispose()
    return summary


async def prepare_target(url: str) -> Path | None:
    """Refuse a target that is not a depline historian at this revision; give an empty one the schema.

    Returns the SQLite file made for this import (to remove again if it fails), else None. An SQLite
    target is looked at read-only first: a file refused here must come out of it unchanged."""
    shown = shown_url(url)
    sqlite_file = _sqlite_file(url) if async_url(url).get_backend_name() == "sqlite" else None
    if sqlite_file is not None and not await asyncio.to_thread(sqlite_file.exists):
        await upgrade(url)
        return sqlite_file
    if sqlite_file is not None:
        engine = create_async_engine(async_url(read_only_url(sqlite_file)), poolclass=NullPool)
    else:
        engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            revision, tables = await conn.run_sync(_revision_and_tables)
    except DBAPIError as exc:
        reason = describe_error(exc.orig or exc)
        raise UserError(f"{shown}: cannot be opened as a historian ({reason})") from None
    finally:
        await engine.dispose()
    if not tables and revision is None:
        await upgrade(url)
    elif revision is None or not HISTORIAN_TABLES & set(tables):
        raise UserError(
            f"{shown} is not a depline historian (no depline schema revision in it): nothing imported"
        )
    else:
        await require_readable(url)
    return None


def _sqlite_file(url: str) -> Path:
    """The SQLite file of the target; refused where it cannot be made."""
    name = async_url(url).database or ""
    if name in ("", ":memory:"):
        raise UserError(f"--database {url!r}: an in-memory database would be gone when the import ends")
    file = Path(name)
    if not file.parent.is_dir():
        raise UserError(f"--database {url}: the directory {file.parent} does not exist")
    return file


def _revision_and_tables(conn: Connection) -> tuple[str | None, list[str]]:
    return MigrationContext.configure(conn).get_current_revision(), inspect(conn).get_table_names()


async def _load(source: AsyncConnection, target: AsyncConnection, summary: ImportSummary) -> None:
    channel_ids: dict[int, int] = {}  # the export's channel id -> the target's
    fresh_channels: set[int] = set()  # export channel ids the target did not have: no sample to compare
    for table, key in NAMED_TABLES:
        rows = await all_rows(source, select(table))
        there = await _named_rows(target, table, key, rows)
        advanced = 0
        for row in rows:
            held = there.get(_key(row, key))
            if held is not None and _brings_forward(table, key, row, held, summary.target):
                await _advance(target, table, key, row)
                advanced += 1
        new = [r for r in rows if _key(r, key) not in there]
        if table is channels:
            channel_ids, fresh_channels = await _load_channels(target, rows, new, there)
        else:
            if table is lines:  # the lease is the source service's; the target's line is served by its own
                new = [{**r, "holder": None, "heartbeat_at": None} for r in new]
            await insert_rows(target, table, new)
        summary.count(table.name, len(new), len(rows), advanced)
    for table in EVENT_TABLES:
        rows = await all_rows(source, select(table).order_by(table.c.id))
        held_keys = await _event_keys(target, table, rows)
        new = [r for r in rows if _event_key(table, r) not in held_keys]
        await insert_rows(target, table, [{k: v for k, v in r.items() if k != "id"} for r in new])
        summary.count(table.name, len(new), len(rows))
    added, present = await _load_samples(source, target, channel_ids, fresh_channels)
    summary.count("samples", added, added + present)


async def _load_channels(
    target: AsyncConnection,
    rows: Sequence[dict[str, Any]],
    new: Sequence[dict[str, Any]],
    there: dict[tuple[Any, ...], dict[str, Any]],
) -> tuple[dict[int, int], set[int]]:
    """The target's id for each of the export's channels (made where it has none), and the export ids
    of the channels made here."""
    ids = {
        int(r["id"]): int(there[_key(r, CHANNEL_KEY)]["id"]) for r in rows if _key(r, CHANNEL_KEY) in there
    }
    for row in new:
        values = {k: v for k, v in row.items() if k != "id"}
        made = await target.execute(insert(channels).returning(channels.c.id), values)
        ids[int(row["id"])] = int(made.scalar_one())
    return ids, {int(r["id"]) for r in new}


def _key(row: dict[str, Any], key: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[c] for c in key)


async def _named_rows(
    target: AsyncConnection, table: Table, key: Sequence[str], rows: Sequence[dict[str, Any]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The target's rows with the natural keys of `rows`, by key."""
    keys = {_key(r, key) for r in rows}
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    last = table.c[key[-1]]
    wanted = sorted({str(r[key[-1]]) for r in rows})
    for start in range(0, len(wanted), IN_CHUNK):
        for row in await all_rows(target, select(table).where(last.in_(wanted[start : start + IN_CHUNK]))):
            if _key(row, key) in keys:
                out[_key(row, key)] = row
    return out


def _brings_forward(
    table: Table, key: Sequence[str], row: dict[str, Any], held: dict[str, Any], shown: str
) -> bool:
    """Whether the export's `row` is a later state of the record the target holds as `held` (to be
    brought forward); False when it is that record or an earlier state of it; refused otherwise."""
    ignored = NOT_COMPARED.get(table.name, set())
    differs = {c for c in row if c not in ignored and row[c] != held[c]}
    if not differs:
        return False
    later = _later_state(table, row, held, differs)
    if later is not None:
        return later
    what = {"runs": "service run", "batches": "batch", "jobs": "job", "items": "item"}.get(
        table.name, table.name.rstrip("s")
    )
    name = "/".join(str(row[c]) for c in key)
    raise UserError(
        f"import: {shown} already holds {what} {name} and it is not the export's (differs in "
        f"{', '.join(c for c in row if c in differs)}): nothing imported"
    )


def _later_state(table: Table, row: dict[str, Any], held: dict[str, Any], differs: set[str]) -> bool | None:
    """True: `row` is a later state of `held`; False: an earlier one; None: another record."""
    if not differs <= PROGRESS.get(table.name, frozenset()):
        return None
    if table is jobs:  # a job's every change stamps it
        if row["updated_at"] == held["updated_at"]:
            return None
        return bool(row["updated_at"] > held["updated_at"])
    if (row["ended_at"] is None) == (held["ended_at"] is None):
        return None  # both running or both ended, and differently: two stories
    return held["ended_at"] is None


async def _advance(target: AsyncConnection, table: Table, key: Sequence[str], row: dict[str, Any]) -> None:
    where = and_(*(table.c[c] == row[c] for c in key))
    await target.execute(update(table).where(where).values({c: row[c] for c in PROGRESS[table.name]}))


def _event_key(table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.c if c.name != "id")


async def _event_keys(
    target: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]
) -> set[tuple[Any, ...]]:
    """The target's rows that could equal one of `rows` (same line, within their time span)."""
    if not rows:
        return set()
    if table is job_events:
        condition = table.c.job_id.in_(sorted({str(r["job_id"]) for r in rows}))
    else:
        condition = table.c.line.in_(sorted({str(r["line"]) for r in rows}))
    span = and_(
        table.c.ts >= min(float(r["ts"]) for r in rows), table.c.ts <= max(float(r["ts"]) for r in rows)
    )
    return {_event_key(table, r) for r in await all_rows(target, select(table).where(condition, span))}


async def _load_samples(
    source: AsyncConnection, target: AsyncConnection, channel_ids: dict[int, int], fresh: set[int]
) -> tuple[int, int]:
    """Streamed page by page; a sample is compared only on a channel the target already had."""
    spans = (
        await source.execute(
            select(samples.c.channel_id, func.min(samples.c.ts), func.max(samples.c.ts)).group_by(
                samples.c.channel_id
            )
        )
    ).all()
    held: set[tuple[int, float, float | None, str]] = set()
    for channel_id, since, until in spans:
        if channel_id in fresh or channel_id not in channel_ids:
            continue
        mine = channel_ids[channel_id]
        statement = select(samples.c.ts, samples.c.value, samples.c.quality).where(
            samples.c.channel_id == mine, samples.c.ts >= since, samples.c.ts <= until
        )
        held |= {
            (mine, float(ts), value, str(quality)) for ts, value, quality in (await target.execute(statement))
        }
    added = present = 0
    result = await source.stream(select(samples).order_by(samples.c.id))
    async for page in result.mappings().partitions(COPY_CHUNK):
        new = []
        for row in page:
            if int(row["channel_id"]) not in channel_ids:
                raise UserError(
                    f"export sample {row['id']} names channel {row['channel_id']}, which it does not hold"
                )
            mine = channel_ids[int(row["channel_id"])]
            if (mine, float(row["ts"]), row["value"], str(row["quality"])) in held:
                present += 1
                continue
            new.append(
                {"ts": row["ts"], "channel_id": mine, "value": row["value"], "quality": row["quality"]}
            )
        if new:
            await target.execute(insert(samples), new)
        added += len(new)
    return added, present
