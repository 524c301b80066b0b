"""Which historian a flight-recorder command reads, and as which line: the line's own database
(`--config`) or any (`--database URL`).

Every command that reads records after the fact (history, timeline, samples, rejudge, compare, export,
replay) takes the same options and applies the same checks before it opens anything, so a mistyped
SQLite path is refused the same way everywhere instead of SQLite quietly making an empty file there.

Given `--database` without `--config`, the line is the one the records were made on: the configuration
its newest run in that database recorded (`runs.config_text`, its [database] and [mqtt] left out: they
name the recording site's files). An export from a site with another line then answers with nothing but
the file; `--line` picks one line of a database several share.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, TypeAlias

from controller.config.line_config import load_line_config, recorded_line_config
from controller.errors import UserError
from controller.historian.errors import HistorianUnavailable
from controller.reports.command import require_database_file

if TYPE_CHECKING:
    from controller.config.line_config import LineConfig

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


READ_TIMEOUT_S = 60.0


def add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="line configuration TOML (default: with --database, the one the line's newest run there "
        "recorded; else the embedded standard line)",
    )
    parser.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    parser.add_argument(
        "--line", help="with --database: the line to read of a database several share (default: the only one)"
    )


def require_url(option: str, url: str) -> None:
    """An SQLAlchemy URL, not a bare path: `line.db` alone would be read as a relative URL by nobody."""
    if "://" not in url:
        raise UserError(f"{option} {url!r}: an SQLAlchemy URL such as sqlite:///data/line.db is expected")


def chosen_database(args: argparse.Namespace, *, recorded: bool = True) -> tuple[LineConfig, str]:
    """The line configuration and the URL of the existing historian the command reads (`recorded`:
    with --database alone, the line as its records were made; off for a command that reads by run id)."""
    config = load_line_config(args.config)
    if args.config is not None and args.line is not None and args.line != config.name:
        raise UserError(f"--line {args.line!r}: {args.config} configures line {config.name!r}")
    url = config.database.url if args.database is None else args.database
    require_url("--database", url)
    require_database_file(url)
    if recorded and args.config is None and args.database is not None:
        config = asyncio.run(recorded_config(url, args.line)) or config
    return config, url


async def recorded_config(url: str, line: str | None) -> LineConfig | None:
    """The configuration the line's newest run recorded in the historian at `url`; None when it holds no
    run of any line (rows written by other means, a database just made: read as the standard line)."""
    # imported here: the commands that only declare these options start without the historian
    from controller.historian.store import Historian
    from controller.historian.upgrade import require_readable, shown_url

    await require_readable(url, timeout_s=READ_TIMEOUT_S, read_only=True)
    async with Historian.reader(url, line=line or "", timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        try:
            lines = await historian.recorded_lines()
        except HistorianUnavailable as exc:
            raise UserError(f"cannot read the records in {shown_url(url)}: {exc}") from None
    shown = shown_database(url)
    names = ", ".join(repr(r["line"]) for r in lines) or "none"
    chosen = [r for r in lines if line is None or r["line"] == line]
    if not lines and line is None:
        return None
    if not chosen:
        raise UserError(f"{shown} holds no record of line {line!r} (lines recorded: {names})")
    if len(chosen) > 1:
        raise UserError(f"{shown} holds records of lines {names}: choose one with --line")
    run = chosen[0]
    try:
        return recorded_line_config(str(run["config_text"]), f"{shown} (run {run['id']}'s configuration)")
    except UserError as exc:
        raise UserError(f"{exc}; give the line's configuration with --config") from None


def shown_database(url: str) -> str:
    """A file by its path (what the engineer typed), any other database by its URL without password."""
    from controller.historian.upgrade import shown_url

    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else shown_url(url)
