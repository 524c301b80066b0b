"""`depline db retain`: the sample partitions' upkeep, run as the database's owner role.

Why a command of its own, run by a timer, rather than the line services doing it: making and dropping a
partition of `samples` is DDL, which only the table's owner may do, and a site's services log in as a
runtime role that may touch rows only (deploy/postgresql/roles.sql). Granting the runtime role a
SECURITY DEFINER function that drops tables would hand every line service, and anyone holding its
password, a way to destroy records; a daily oneshot as the owner keeps DDL with the one login that
migrates. The services keep their bounded deletes of their own old rows (`controller.historian.retention`).

What it does, in one transaction: the daily partitions from yesterday to a week ahead, so the timer
may miss six runs before a day's samples fall into the default partition (still stored, and still
deleted by age, just not as a whole partition); and drops the days every line's retention has passed.
On SQLite there is nothing to do: the file is not partitioned and each service deletes its own rows.

The owner's password comes from `--password-file` (a systemd credential in the timer's unit), never
from the command line, where `ps` shows it to every user of the host.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Final

from controller.config.secrets import mask_secrets
from controller.errors import UserError

RETAIN_TIMEOUT_S: Final = 120.0
MAX_PASSWORD_BYTES: Final = 4096


def add_retain_command(db_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = db_sub.add_parser(
        "retain",
        help="make the coming days' sample partitions and drop expired ones (PostgreSQL, as the owner role)",
        description="Make the daily partitions of the samples table for the coming week and drop the days "
        "every line's retention_days has passed. Run as the database's owner role (the runtime role may "
        "not change tables), daily, from deploy/systemd/depline-retain.timer. Exit 0 when done, 2 when "
        "the login may not do it or the database is not a depline historian at this version.",
    )
    parser.add_argument("--config", help="line configuration TOML whose [database] url to use")
    parser.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    parser.add_argument(
        "--password-file", type=Path, help="the database password, read from this file (one line)"
    )
    parser.set_defaults(handler=_cmd_db_retain)


def _cmd_db_retain(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config

    url = args.database if args.database is not None else load_line_config(args.config).database.url
    if "://" not in url:
        raise UserError(
            f"--database {url!r}: an SQLAlchemy URL such as postgresql://owner@host/db is expected"
        )
    if args.password_file is not None:
        url = with_password(url, args.password_file)
    shown = mask_secrets(url)
    outcome = asyncio.run(retain(url, time.time()))
    if outcome is None:
        print(f"{shown}: SQLite keeps one samples table; each line service deletes its old samples itself")
        return 0
    made, dropped = outcome
    print(f"{shown}: partitions made: {', '.join(made) or 'none'}; dropped: {', '.join(dropped) or 'none'}")
    return 0


def with_password(url: str, path: Path) -> str:
    """`url` with the password kept in `path` (one trailing newline is not part of it)."""
    # imported here: `depline --help` and the light commands start without SQLAlchemy
    from sqlalchemy.engine import make_url

    try:
        data = path.read_bytes()[: MAX_PASSWORD_BYTES + 1]
    except OSError as exc:
        raise UserError(f"--password-file {path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise UserError(f"--password-file {path}: larger than {MAX_PASSWORD_BYTES} bytes")
    try:
        password = data.decode("utf-8").removesuffix("\n")
    except UnicodeDecodeError:
        raise UserError(f"--password-file {path}: not UTF-8 text") from None
    if not password or "\n" in password:
        raise UserError(f"--password-file {path}: one line holding the password is expected")
    return make_url(url).set(password=password).render_as_string(hide_password=False)


async def retain(
    url: str, now: float, timeout_s: float = RETAIN_TIMEOUT_S
) -> tuple[list[str], list[str]] | None:
    """Partitions made and dropped; None on SQLite (nothing to do)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from controller.historian.retention import drop_old_partitions, may_change_partitions, prepare_partitions
    from controller.historian.schema import async_url, make_engine
    from controller.historian.upgrade import require_readable

    if async_url(url).get_backend_name() != "postgresql":
        return None
    await require_readable(url, timeout_s=timeout_s)
    engine = make_engine(url, timeout_s=timeout_s, poolclass=NullPool)
    try:
        async with asyncio.timeout(timeout_s), engine.begin() as conn:
            if not await may_change_partitions(conn):
                user = make_url(url).username or "this login"
                raise UserError(
                    f"db retain: {user} may not make or drop the samples table's partitions: run it as "
                    "the database's owner role (depline_owner in deploy/postgresql/roles.sql)"
                )
            made = await prepare_partitions(conn, now)
            dropped = await drop_old_partitions(conn, now)
    finally:
        await asyncio.wait_for(engine.dispose(), timeout_s)
    return made, dropped


__all__ = ["add_retain_command", "retain", "with_password"]
