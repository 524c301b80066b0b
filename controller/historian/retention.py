"""Raw samples leave after the line's `retention_days`; nothing else does.

Events, alarms, commands, the ledger, runs, batches and jobs are small and are what a certificate and an
investigation read years later: they are kept. Samples are ~all of the volume (even deadbanded,
`controller.historian.deadband`), and old ones are read only as plots.

- **PostgreSQL: whole partitions.** `samples` is partitioned by day of `ts` (migration 0006). The
  historian makes the partitions for the days ahead (`prepare_partitions`, before it writes a sample
  and again at each retention pass), and drops a day's partition once it is older than the retention
  of *every* line on the database (`lines.retention_s`; a line that keeps samples for ever keeps them
  all): a DROP is instant and leaves no bloat, where deleting millions of rows would not.
- **Partitions are the owner role's.** Making or dropping a partition is DDL on `samples`, which only
  its owner may do; a site's services log in as a runtime role that may only read and write rows
  (deploy/postgresql/roles.sql). A service that may not change partitions (`may_change_partitions`)
  leaves them to `depline db retain`, run as the owner from a daily timer
  (deploy/systemd/depline-retain.timer; `controller.service.db_retain`), and keeps only its bounded
  deletes. A DROP attempted by the runtime role would fail the whole pass, deletes included.
- **Both: bounded deletes.** What partitions cannot remove (SQLite; on PostgreSQL a line whose
  retention is shorter than another's, and the default partition) goes by deletes of at most
  `DELETE_CHUNK_ROWS` rows of this line's channels, one chunk per turn of the writer, between its
  batches: never a long transaction, never on the control loop's path (the writer is the historian's
  own task, and SQLite allows one writer anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.historian.schema import SAMPLE_PARTITION_PREFIX, channels, lines, samples

log = logging.getLogger(__name__)

RETENTION_EVERY_S: Final = 600.0
DELETE_CHUNK_ROWS: Final = 5000
DAY_S: Final = 86_400.0
DAYS_AHEAD: Final = 7


def partition_name(day: dt.date) -> str:
    return f"{SAMPLE_PARTITION_PREFIX}{day:%Y%m%d}"


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


async def prepare_partitions(conn: AsyncConnection, now: float, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Make the daily partitions from yesterday to `days_ahead` days on (PostgreSQL only); the ones made.

    A day whose rows are already in the default partition (a database migrated that day) keeps using
    it: PostgreSQL refuses such a partition, and the bounded deletes clear the default in time.
    """
    if conn.dialect.name != "postgresql":
        return []
    existing = await _partitions(conn)
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    made: list[str] = []
    for offset in range(-1, days_ahead + 1):
        day = today + dt.timedelta(days=offset)
        name = partition_name(day)
        if name in existing:
            continue
        start = _day_start(day)
        try:
            async with conn.begin_nested():
                await conn.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF samples "
                        f"FOR VALUES FROM ({start!r}) TO ({start + DAY_S!r})"
                    )
                )
        except Exception as exc:  # rows of that day in the default partition, or another line made it
            log.info("sample partition not made", extra={"partition": name, "error": str(exc)[:200]})
            continue
        made.append(name)
    return made


async def may_change_partitions(conn: AsyncConnection) -> bool:
    """Whether this login may make and drop `samples` partitions: PostgreSQL, and a member of the role
    that owns `samples` with CREATE on its schema (the owner role, or a superuser)."""
    if conn.dialect.name != "postgresql":
        return False
    allowed = await conn.scalar(
        text(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE') "
            "AND has_schema_privilege(current_user, c.relnamespace, 'CREATE') "
            "FROM pg_class c WHERE c.oid = 'samples'::regclass"
        )
    )
    return bool(allowed)


async def _partitions(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'samples'"
        )
    )
    return {str(name) for (name,) in rows}


async def record_retention(conn: AsyncConnection, line: str, retention_s: float | None) -> None:
    """Say how long this line keeps its samples: partitions are dropped by the longest of the lines'."""
    await conn.execute(update(lines).where(lines.c.name == line).values(retention_s=retention_s))


async def drop_old_partitions(conn: AsyncConnection, now: float) -> list[str]:
    """Drop the daily partitions every line's retention has passed (PostgreSQL only); the ones dropped."""
    if conn.dialect.name != "postgresql":
        return []
    kept = (await conn.execute(select(lines.c.retention_s))).scalars().all()
    if not kept or any(r is None for r in kept):
        return []
    before = now - max(float(r) for r in kept if r is not None)
    dropped: list[str] = []
    for name in sorted(await _partitions(conn)):
        day_text = name.removeprefix(SAMPLE_PARTITION_PREFIX)
        if not (name.startswith(SAMPLE_PARTITION_PREFIX) and day_text.isdigit() and len(day_text) == 8):
            continue
        day = dt.datetime.strptime(day_text, "%Y%m%d").replace(tzinfo=dt.UTC).date()
        if _day_start(day) + DAY_S <= before:
            await conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped


async def delete_old_samples(
    conn: AsyncConnection, line: str, before: float, limit: int = DELETE_CHUNK_ROWS
) -> int:
    """Delete at most `limit` of this line's samples older than `before`; how many went."""
    own = select(channels.c.id).where(channels.c.line == line)
    oldest = select(samples.c.id).where(samples.c.channel_id.in_(own), samples.c.ts < before).limit(limit)
    result = await conn.execute(samples.delete().where(samples.c.id.in_(oldest), samples.c.ts < before))
    return int(result.rowcount or 0)


async def oldest_sample_ts(conn: AsyncConnection, line: str) -> float | None:
    own = select(channels.c.id).where(channels.c.line == line)
    found = await conn.scalar(select(func.min(samples.c.ts)).where(samples.c.channel_id.in_(own)))
    return None if found is None else float(found)


__all__ = [
    "DELETE_CHUNK_ROWS",
    "RETENTION_EVERY_S",
    "delete_old_samples",
    "drop_old_partitions",
    "may_change_partitions",
    "oldest_sample_ts",
    "partition_name",
    "prepare_partitions",
    "record_retention",
]
