"""One migration at a time per database, across processes: two services started at the same instant
on an empty database must not both create the schema.

Each service runs the migrations itself on an empty database (`upgrade.ensure_schema`). Without a lock
two of them race: both find no revision, both create tables, and the second fails on a table or an
Alembic version row the first has just made (or, on SQLite, on a lock it cannot upgrade). With the
lock the second waits, then finds the schema at head and has nothing to do.

- **PostgreSQL: a transaction-level advisory lock** on a fixed key, taken inside the transaction that
  runs the migrations (PostgreSQL's DDL is transactional, so the other service sees all of the schema
  or none of it) and released by its commit or rollback: nothing to forget on any exit path. Taken
  before Alembic reads the current revision, so the waiter reads the winner's.
- **SQLite: an exclusive `flock`** on a file next to the database, held around the whole Alembic
  command. A `BEGIN IMMEDIATE` would not do: Python's sqlite3 runs DDL outside a transaction, so
  Alembic's migrations there are a series of statements, not one write transaction to serialise.
  Kept beside the database because that folder is the one the service must be able to write anyway
  (WAL and journal files live there).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, text

from controller.historian.schema import async_url

# a fixed key every depline agrees on ("dplnmigr" in ASCII, a positive bigint); no other advisory
# lock of depline's uses it (the line lease is a row, `controller.historian.lease`)
MIGRATION_LOCK_KEY: Final = 0x64706C6E6D696772
LOCK_FILE_SUFFIX: Final = ".migrate.lock"


def hold_for_transaction(conn: Connection) -> None:
    """Wait for, and hold until this transaction ends, the database's migration lock (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


@contextlib.contextmanager
def held_around_command(url: str) -> Iterator[None]:
    """The migration lock of an SQLite database file, for the whole Alembic command; nothing for the
    others (PostgreSQL takes its lock in the migration's transaction, `hold_for_transaction`)."""
    target = async_url(url)
    if target.get_backend_name() != "sqlite" or not target.database or target.database == ":memory:":
        yield
        return
    lock_path = Path(target.database + LOCK_FILE_SUFFIX)
    with open(lock_path, "a+b") as lock_file:  # never truncated, never removed: a lock, not a flag
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def wait_for_running_migration(url: str) -> None:
    """Return once no migration of this SQLite file is running. On SQLite another process's migration
    is seen half done (tables made, no revision yet), which is not a foreign database; on PostgreSQL it
    is seen whole or not at all, so there is nothing to wait for."""
    with held_around_command(url):
        pass


__all__ = [
    "LOCK_FILE_SUFFIX",
    "MIGRATION_LOCK_KEY",
    "held_around_command",
    "hold_for_transaction",
    "wait_for_running_migration",
]
