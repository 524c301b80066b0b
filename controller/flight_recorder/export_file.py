"""Is this file a depline export this depline can load? Answered before anything is written anywhere.

Why these checks, in this order: a file that came by mail or USB stick may be anything. The SQLite
header says whether it is a database at all; its page count against the file's size finds a file cut
short in transfer (SQLite itself would read the pages that are there and fail, or not, only when a
query reaches the missing ones); `quick_check` finds damage inside; the Alembic revision says whether
the depline that wrote it is this one, an older one or a newer one. Each refusal is one line naming
the file and what is wrong with it. The file is opened read-only: checking an export never changes it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

from alembic.script import ScriptDirectory

from controller.errors import UserError
from controller.historian.schema import HISTORIAN_TABLES, batches, runs
from controller.historian.upgrade import alembic_config

SQLITE_MAGIC: Final = b"SQLite format 3\x00"
HEADER_BYTES: Final = 100


def read_only_url(path: Path) -> str:
    """The SQLAlchemy URL that opens `path` read-only (no journal mode change, no -wal made)."""
    return f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"


def check_export_file(path: Path) -> str:
    """The file's schema revision once every check passed; `UserError` naming what is wrong otherwise."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    _check_header(path)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as conn:
            damage = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
            if damage != ["ok"]:
                raise UserError(f"{path}: the database is damaged ({damage[0]}): not a usable depline export")
            tables = {str(n) for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = _revision(conn) if "alembic_version" in tables else None
            if revision is None or not tables >= HISTORIAN_TABLES:
                raise UserError(f"{path}: not a depline export (no depline schema revision in it)")
            _check_revision(path, revision)
            held = sum(conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in (batches, runs))
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a usable depline export ({exc})") from None
    if not held:
        raise UserError(f"{path}: a depline database with no batch and no service run: nothing to import")
    return revision


def _check_header(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(HEADER_BYTES)
    if not header.startswith(SQLITE_MAGIC):
        raise UserError(f"{path}: not a depline export (not an SQLite database)")
    if len(header) < HEADER_BYTES:
        raise UserError(f"{path}: truncated ({size} bytes, shorter than an SQLite header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    expected = page_size * pages
    if size < expected or (page_size and size % page_size):
        raise UserError(f"{path}: truncated (its header says {expected} bytes, the file has {size})")


def _revision(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _check_revision(path: Path, revision: str) -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if revision == head:
        return
    if revision in {r.revision for r in script.walk_revisions()}:
        raise UserError(
            f"{path}: written at schema revision {revision}, this depline loads {head}: run `depline db "
            f"upgrade --database sqlite:///{path}` on a copy of it first"
        )
    raise UserError(
        f"{path}: written at schema revision {revision}, which this depline does not know (its head is "
        f"{head}): it comes from a newer depline"
    )
