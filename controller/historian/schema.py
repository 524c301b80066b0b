"""The historian's tables (one SQLAlchemy Core `MetaData`) and how to reach the database.

Why Core and not the ORM: every row here is written once, in bulk, by one writer task and read back
as plain records for the API; identity maps, lazy loading (which raises `MissingGreenlet` under
asyncio) and unit-of-work flushing would only cost time on the hot sample path (stack.md §5).

Column conventions:
- times are epoch seconds as double precision (`ts`), the same clock as `Reading.ts`, so a sample and
  the command it caused sort together;
- anything with an open shape (action, evidence, refusals) is JSON *text*, not a JSON column type, so
  SQLite and PostgreSQL store and return the same thing and a spill file can carry it unchanged;
- every event table has an integer `id` that grows in write order: the historian writes in the order
  things happened, so `ORDER BY id` is the order of the journal even when two rows share a `ts`;
- run ids are text (``20261121T210645Z-3fa2c1``) made by the historian itself, so a run can start and
  collect commands while the database is down and still be written, in order, when it comes back.

Many lines may share one database (a site's PostgreSQL): every line-scoped row carries its `line`
(the `[line] name` of the configuration that wrote it) and every read asks for one line. Samples carry
theirs through their channel (`channels.line`; a text column on each of a few hundred rows a second
would cost more than the rest of the row), job events through their job. The `lines` table records
the lines the database holds and which running service holds each (`controller.historian.lease`).

The schema is created and changed only by the Alembic migrations in `controller/historian/migrations`; a test
checks that the migrated database and this `MetaData` describe the same tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from controller.config.secrets import mask_secrets
from drivers.errors import ConfigError

RUN_STATUSES: Final = ("running", "complete", "incomplete")
COMMAND_OUTCOMES: Final = ("allowed", "refused", "failed", "done")

# SQLite makes only `INTEGER PRIMARY KEY` an alias of the rowid (autoincrementing); BIGINT would not be.
# PostgreSQL gets BIGINT: at a few hundred samples a second a 32-bit id runs out within a year.
RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row per line the database holds; `holder`/`heartbeat_at` are the running service's lease on it.
lines = Table(
    "lines",
    metadata,
    Column("name", Text, primary_key=True),
    Column("registered_at", Double, nullable=False),
    Column("holder", Text),  # "host:pid:token" of the service that holds the line, NULL when none
    Column("heartbeat_at", Double),
    Column("retention_s", Double),  # how long the line keeps raw samples; NULL: for ever
)

runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("status", Text, nullable=False),
    Column("config_hash", Text, nullable=False),
    Column("config_text", Text, nullable=False),
    Column("recipe_hash", Text),
    Column("recipe_text", Text),
    Column("user", Text, nullable=False),
    CheckConstraint("status IN ('running', 'complete', 'incomplete')", name="status"),
)
Index(None, runs.c.started_at)
Index(None, runs.c.line, runs.c.status)

channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("line", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("unit", Text, nullable=False),
    UniqueConstraint("line", "device", "channel"),
)

samples = Table(
    "samples",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("ts", Double, nullable=False),
    # the line is the channel's (channels.line), not a column here: see the module docstring
    # no foreign key: only the writer makes channel ids, in the same transaction as the samples that
    # use them, and PostgreSQL's per-row FK trigger would cost more than half of COPY's rate
    Column("channel_id", Integer, nullable=False),
    # NULL where the reading was not a number (SQLite stores NaN as NULL anyway); quality says why
    Column("value", Double),
    Column("quality", Text, nullable=False),
)
# covering (0007): a trend, an export or a replay cursor reads one channel from the index alone
Index(None, samples.c.channel_id, samples.c.ts, samples.c.value, samples.c.quality)

# On PostgreSQL `samples` is partitioned by range of `ts`, one partition a day (`samples_pYYYYMMDD`)
# and a default one, so old samples leave as whole partitions (`controller.historian.retention`); its
# primary key there is (id, ts), as PostgreSQL requires of a partitioned table. SQLite keeps one table.
SAMPLE_PARTITION_PREFIX: Final = "samples_p"
SAMPLE_DEFAULT_PARTITION: Final = "samples_default"


def is_sample_partition(name: str | None) -> bool:
    """A partition of `samples`: made and dropped by the historian, not part of the declared schema."""
    return name is not None and (name.startswith(SAMPLE_PARTITION_PREFIX) or name == SAMPLE_DEFAULT_PARTITION)


transitions = Table(
    "transitions",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", Double, nullable=False),
    Column("run_id", Text, ForeignKey("runs.id")),
    Column("station", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("dest", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("reason", Text, nullable=False),
)
Index(None, transitions.c.run_id)
Index(None, transitions.c.ts)
Index(None, transitions.c.line, transitions.c.ts)  # the flight recorder's ranges (0007)

mode_changes = Table(
    "mode_changes",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", Double, nullable=False),
    Column("run_id", Text, ForeignKey("runs.id")),
    Column("mode", Text, nullable=False),
    Column("previous", Text, nullable=False),
    Column("user", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("owner", Text),  # the batch that took the line in production
    Column("device", Text),  # set when a device was taken out of or put back into service
    Column("in_service", Boolean),
)
Index(None, mode_changes.c.ts)
Index(None, mode_changes.c.line, mode_changes.c.ts)

alarm_events = Table(
    "alarm_events",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", Double, nullable=False),
    Column("alarm_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("from_state", Text, nullable=False),
    Column("to_state", Text, nullable=False),
    Column("user", Text),
    Column("reason", Text),
    Column("severity", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("trip", Text),
    Column("until_s", Double),
    Column("condition_active", Boolean, nullable=False),
    Column("first_out", Boolean),
    Column("follows", Text),
)
Index(None, alarm_events.c.ts)
Index(None, alarm_events.c.alarm_id, alarm_events.c.ts)
Index(None, alarm_events.c.line, alarm_events.c.ts)

items = Table(
    "items",
    metadata,
    Column("line", Text, primary_key=True),
    Column("id", Text, primary_key=True),  # unique on its line: two lines may both have an "E1"
    Column("kind", Text, nullable=False),
    Column("material", Text, nullable=False),
    Column("registered_at", Double, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", Double, nullable=False),
    Column("item", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("space", Text, nullable=False),
    Column("atmosphere", Text, nullable=False),
    Column("exposed", Boolean, nullable=False),
    Column("evidence", Text, nullable=False),
)
Index(None, ledger.c.line, ledger.c.item, ledger.c.ts)
Index(None, ledger.c.line, ledger.c.ts)

commands = Table(
    "commands",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("line", Text, nullable=False),
    Column("ts", Double, nullable=False),
    Column("run_id", Text, ForeignKey("runs.id")),
    Column("user", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("invariant", Text),
    Column("error", Text, nullable=False),
    Column("duration_s", Double, nullable=False),
    Column("request_reason", Text, nullable=False),
    Column("refusals", Text, nullable=False),
    CheckConstraint("outcome IN ('allowed', 'refused', 'failed', 'done')", name="outcome"),
)
Index(None, commands.c.run_id)
Index(None, commands.c.ts)
Index(None, commands.c.line, commands.c.ts)

# One row per committed batch, written in the batch's own transaction. When a commit's fate is unknown
# (the connection died during COMMIT), the retry looks its key up first: rows are written exactly once.
write_batches = Table(
    "write_batches",
    metadata,
    Column("id", Text, primary_key=True),
    Column("written_at", Double, nullable=False),
)
Index(None, write_batches.c.written_at)

# --- production: batches of jobs, each job one recipe run on a set of items ---------------------------
# Written by `sequences.batch_store` directly (awaited, one small transaction each), not through the
# buffered writer: a checkpoint must be durable before the job moves past it, so that a restart after
# kill -9 resumes from the last step that is safe to repeat.
BATCH_STATUSES: Final = ("running", "complete", "failed", "stopped")

batches = Table(
    "batches",
    metadata,
    Column("id", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("queue_path", Text, nullable=False),
    Column("queue_hash", Text, nullable=False),
    Column("queue_text", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("status", Text, nullable=False),
    Column("user", Text, nullable=False),
    CheckConstraint("status IN ('running', 'complete', 'failed', 'stopped')", name="status"),
)
Index(None, batches.c.line, batches.c.queue_hash, batches.c.status)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("batch_id", Text, ForeignKey("batches.id")),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("recipe_path", Text, nullable=False),
    Column("recipe_text", Text, nullable=False),
    Column("items", Text, nullable=False),
    Column("on_failure", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("checkpoint", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", Double),
    Column("ended_at", Double),
    Column("outcome", Text),
    Column("message", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("batch_id", "position"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("ts", Double, nullable=False),
    Column("job_id", Text, ForeignKey("jobs.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("detail", Text, nullable=False),
)
Index(None, job_events.c.job_id, job_events.c.ts)

HISTORIAN_TABLES: Final = frozenset(metadata.tables)


# --- reaching the database -------------------------------------------------------------------------


def async_url(url: str) -> URL:
    """The async driver for a configured URL: the config speaks plain `sqlite:///` and `postgresql://`.

    asyncpg is imposed for PostgreSQL because the sample path uses its COPY protocol.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, but a bad port raises ValueError
        # the parser's message quotes the URL: masked whole, and not chained (a traceback would show it)
        raise ConfigError(mask_secrets(f"database url {url!r} is not an SQLAlchemy URL: {exc}")) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        mask_secrets(f"database url {url!r}: the historian supports sqlite:/// and postgresql:// only")
    )


def sqlite_busy_timeout_ms(timeout_s: float) -> int:
    """SQLite must give up on a lock before our own per-operation timeout would cancel the call."""
    return max(50, min(5000, int(timeout_s * 500)))


def make_engine(url: str, *, timeout_s: float = 10.0, read_only: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine with the settings stack.md §5 measured (WAL, synchronous=NORMAL ...).

    The drivers' own timeouts (SQLite busy_timeout, asyncpg connect/command timeouts) are set below
    the historian's asyncio timeout, so a stuck database ends in a clean driver error rather than a
    cancelled call in the middle of a transaction.

    `read_only` is for the tools that must leave a database as they found it (a replay, a check):
    SQLite opens the file read-only (a `mode=ro` or `immutable` URI, so not even a journal-mode change is
    written), PostgreSQL runs every transaction read-only.
    """
    if read_only:
        return _read_only_engine(url, timeout_s, **kwargs)
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, **kwargs)
        busy_ms = sqlite_busy_timeout_ms(timeout_s)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
                f"PRAGMA busy_timeout={busy_ms}",
            ):
                cursor.execute(pragma)
            cursor.close()

        return engine
    connect_args = {"timeout": timeout_s * 0.8, "command_timeout": timeout_s * 0.8}
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(target, connect_args=connect_args, **kwargs)


def _read_only_engine(url: str, timeout_s: float, **kwargs: Any) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        path = Path(target.database or "").resolve()
        # No -wal file beside it: no writer has the database open (a clean close removes it), so it is
        # opened immutable: SQLite then creates no -wal or -shm file either, and nothing at all is written
        # in the folder. With one, a writer may be live: read-only, through its shared memory.
        live = path.with_name(path.name + "-wal").exists()
        uri = f"{path.as_uri()}?{'mode=ro' if live else 'immutable=1'}"
        engine = create_async_engine(target.set(database=uri, query={"uri": "true"}), **kwargs)
        busy_ms = sqlite_busy_timeout_ms(timeout_s)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            for pragma in ("PRAGMA query_only=ON", f"PRAGMA busy_timeout={busy_ms}"):
                cursor.execute(pragma)
            cursor.close()

        return engine
    connect_args = {
        "timeout": timeout_s * 0.8,
        "command_timeout": timeout_s * 0.8,
        "server_settings": {"default_transaction_read_only": "on"},
    }
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(target, connect_args=connect_args, **kwargs)
