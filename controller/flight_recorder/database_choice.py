"""Which historian a flight-recorder command reads: the line's (`--config`) or any (`--database URL`).

Every command that reads records after the fact (history, timeline, samples, rejudge, compare, export)
takes the same two options and applies the same checks before it opens anything, so a mistyped SQLite
path is refused the same way everywhere instead of SQLite quietly making an empty file there.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from controller.config.line_config import LineConfig, load_line_config
from controller.errors import UserError
from controller.reports.command import require_database_file

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    parser.add_argument("--database", help="SQLAlchemy URL overriding [database] url")


def require_url(option: str, url: str) -> None:
    """An SQLAlchemy URL, not a bare path: `line.db` alone would be read as a relative URL by nobody."""
    if "://" not in url:
        raise UserError(f"{option} {url!r}: an SQLAlchemy URL such as sqlite:///data/line.db is expected")


def chosen_database(args: argparse.Namespace) -> tuple[LineConfig, str]:
    """The line configuration and the URL of the existing historian the command reads."""
    config = load_line_config(args.config)
    url = config.database.url if args.database is None else args.database
    require_url("--database", url)
    require_database_file(url)
    return config, url
