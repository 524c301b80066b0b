"""The historian's schema is Alembic's: migrations callable from code, and the check at start.

Why it is built this way:

- **No alembic.ini at run time.** The configuration is built in code (`alembic_config`), so
  `depline db upgrade`, the historian and the batch store find the migrations wherever depline is
  installed.
- **Never on the caller's loop.** Alembic's commands are synchronous and read the revision scripts
  from disk; they run in a worker thread (with its own event loop, see migrations/env.py), under a
  timeout.
- **Serialised.** Alembic's command context lives in module globals: two upgrades in one process
  (the historian and the batch store opening the same database) must not run at the same time. Across
  processes (two services starting at once on an empty database) the database's migration lock
  serialises them: `controller.historian.migration_lock`.
- **Created, or refused, never guessed.** `ensure_schema` (the historian's `start()`) runs the
  migrations on an empty database; a database behind the code's head revision is refused with the
  instruction to run `depline db upgrade`, one ahead of it (a newer depline) or with historian tables
  but no revision (not made by these migrations) is refused as well: `SchemaOutdated`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from controller.historian.errors import HistorianError, SchemaOutdated
from controller.historian.migration_lock import held_around_command, wait_for_running_migration
from controller.historian.schema import HISTORIAN_TABLES, async_url, make_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
MIGRATION_TIMEOUT_S: Final = 120.0


def alembic_config(url: str, *, line: str | None = None) -> Config:
    """The Alembic configuration, built in code: no alembic.ini has to exist at run time.

    `line` is the line the upgrade is run for: revision 0006 labels the rows already in the database
    with it (see that revision for how it is checked)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    if line is not None:
        config.attributes["line"] = line
    return config


def _script_revisions(url: str) -> tuple[str, frozenset[str]]:
    """Head and all known revisions; reads the versions directory, so it runs in a thread."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    if head is None:
        raise HistorianError(f"no migrations found in {MIGRATIONS_DIR}")
    return head, frozenset(r.revision for r in script.walk_revisions())


def prepare_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its directory (the default is data/line.db)."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite" and target.database and target.database != ":memory:":
        Path(target.database).parent.mkdir(parents=True, exist_ok=True)


_ALEMBIC_LOCK = threading.Lock()


def _upgrade_serialised(url: str, revision: str, line: str | None) -> None:
    """Alembic's command context lives in module globals: two upgrades in one process (the historian
    and the batch store opening the same database) must not run at the same time."""
    with _ALEMBIC_LOCK, held_around_command(url):
        command.upgrade(alembic_config(url, line=line), revision)


async def upgrade(
    url: str, revision: str = "head", *, line: str | None = None, timeout_s: float = MIGRATION_TIMEOUT_S
) -> None:
    """Bring the database to `revision` (what `depline db upgrade` runs).

    The Alembic command runs in a worker thread with its own event loop (see migrations/env.py), so
    reading the revision scripts and the migration's own I/O never stall the caller's loop.
    """
    await asyncio.wait_for(asyncio.to_thread(prepare_sqlite_dir, url), timeout_s)
    await asyncio.wait_for(asyncio.to_thread(_upgrade_serialised, url, revision, line), timeout_s)
    log.info("database upgraded", extra={"url": shown_url(url), "revision": revision})


async def head_revision() -> str:
    head, _known = await asyncio.to_thread(_script_revisions, "sqlite://")
    return head


async def current_revision(url: str, *, timeout_s: float = 30.0) -> str | None:
    """The database's Alembic revision, None for a database migrations never touched."""
    await asyncio.wait_for(asyncio.to_thread(prepare_sqlite_dir, url), timeout_s)
    engine = make_engine(url, timeout_s=timeout_s, poolclass=NullPool)
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            return await conn.run_sync(_revision_of)
    finally:
        await asyncio.wait_for(engine.dispose(), timeout_s)


async def ensure_schema(engine: AsyncEngine, url: str, timeout_s: float, *, line: str | None = None) -> None:
    """Create the schema on an empty database; raise `SchemaOutdated` for one that is not this code's.

    Any other failure (the database cannot be reached) is raised as it is, for the caller to retry.
    """
    shown = shown_url(url)
    head, known = await asyncio.wait_for(asyncio.to_thread(_script_revisions, url), timeout_s)
    async with asyncio.timeout(timeout_s), engine.connect() as conn:
        current, tables = await conn.run_sync(_revision_and_tables)
    if current is None and HISTORIAN_TABLES & tables:  # another service's migration, half done?
        await asyncio.wait_for(asyncio.to_thread(wait_for_running_migration, url), timeout_s)
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            current, tables = await conn.run_sync(_revision_and_tables)
    if current is None:
        ours = sorted(HISTORIAN_TABLES & tables)
        if ours:
            raise SchemaOutdated(
                f"database {shown} has historian tables ({', '.join(ours)}) but no Alembic "
                "revision: it was not made by depline's migrations; point the config at an empty database"
            )
        log.info("empty database: creating the schema", extra={"url": shown, "revision": head})
        await upgrade(url, line=line)
    elif current != head:
        if current in known:
            raise SchemaOutdated(
                f"database {shown} is at schema revision {current}, this depline writes "
                f"{head}: run `depline db upgrade` first"
            )
        raise SchemaOutdated(
            f"database {shown} is at schema revision {current}, which this depline does not "
            f"know (its head is {head}): it was upgraded by a newer depline"
        )


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _revision_and_tables(conn: Connection) -> tuple[str | None, frozenset[str]]:
    return _revision_of(conn), frozenset(inspect(conn).get_table_names())


def shown_url(url: str) -> str:
    """The database URL as logs and messages show it: without its password."""
    return async_url(url).render_as_string(hide_password=True)


__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_TIMEOUT_S",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "prepare_sqlite_dir",
    "shown_url",
    "upgrade",
]


async def require_readable(url: str, *, timeout_s: float = 30.0, read_only: bool = False) -> None:
    """Refuse, with what to do, a database the read-only tools cannot trust their queries on: one that
    is not a depline historian, one at an older revision (upgrade it), one from a newer depline.

    Unlike `ensure_schema` this never creates or migrates anything: a replay or an export must leave the
    database it reads as it found it (`read_only` opens it so that nothing can be written at all)."""
    shown = shown_url(url)
    head, known = await asyncio.wait_for(asyncio.to_thread(_script_revisions, url), timeout_s)
    engine = make_engine(url, timeout_s=timeout_s, read_only=read_only, poolclass=NullPool)
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            current, tables = await conn.run_sync(_revision_and_tables)
    except DatabaseError as exc:
        if isinstance(exc, OperationalError):  # cannot be reached or is locked: not a verdict on the file
            raise
        raise SchemaOutdated(f"{shown} is not a depline historian ({exc.orig})") from None
    finally:
        await asyncio.wait_for(engine.dispose(), timeout_s)
    if current is None or not HISTORIAN_TABLES & tables:
        raise SchemaOutdated(f"{shown} is not a depline historian (no depline schema revision in it)")
    if current not in known:
        raise SchemaOutdated(
            f"{shown} is at schema revision {current}, which this depline does not know (its head is "
            f"{head}): it was written by a newer depline"
        )
    if current != head:
        raise SchemaOutdated(
            f"{shown} is at schema revision {current}, this depline reads {head}: run `depline db upgrade "
            "--database URL` on it (or on a copy) first"
        )
