"""The command line of `depline export` and `depline import`.

Bad input (an unknown run id, a file that is not a depline export or is cut short or from a newer
depline, a target that is not a depline historian, a record the target holds differently) is one line
naming what and why, exit 2, and nothing written: the export's file appears only whole, the import is
one transaction checked before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.errors import UserError
from controller.flight_recorder.database_choice import (
    Subparsers,
    add_database_options,
    chosen_database,
    require_url,
)
from controller.historian.errors import describe_error


def add_export_commands(sub: Subparsers) -> None:
    export = sub.add_parser(
        "export",
        help="write one batch, job or service run's records to a self-contained SQLite file",
        description="Write RUN (a batch, job or service-run id, as `depline history` lists them) to FILE: "
        "a depline historian of its own holding the run's batch and jobs, every command, alarm, transition, "
        "mode change and item move of its line in its window, every sample of the line's channels in it, "
        "the service runs, configuration and recipe texts, and the touched items with their ledger. "
        "`depline replay`, `history`, `timeline`, `samples`, `rejudge` and `report` read FILE with "
        "--database sqlite:///FILE; `depline import` loads it into another historian.",
    )
    add_database_options(export)
    export.add_argument("run", metavar="RUN", help="a batch, job or service-run id")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the SQLite file to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(handler=_cmd_export)

    load = sub.add_parser(
        "import",
        help="load a `depline export` file into another historian (SQLite or PostgreSQL)",
        description="Load FILE (made by `depline export`) into the historian at --database, in one "
        "transaction: new ids for event rows and samples, records the target already holds identically "
        "kept once (importing a file twice is a no-op), a batch, job, run or item id the target holds "
        "differently refused. An empty database gets the schema first. The SQLite to PostgreSQL path.",
    )
    load.add_argument("file", metavar="FILE", help="a file written by `depline export`")
    load.add_argument("--database", required=True, help="SQLAlchemy URL of the historian to load it into")
    load.set_defaults(handler=_cmd_import)


def _cmd_export(args: argparse.Namespace) -> int:
    # imported here: `depline --help` and the light commands start without SQLAlchemy
    from controller.flight_recorder.export import EXPORT_TIMEOUT_S, export_run
    from controller.historian.upgrade import require_readable

    _config, url = chosen_database(args, recorded=False)  # the run id says which line
    output = Path(args.output)
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: the directory {output.parent} does not exist")
    if output.exists() and not args.force:
        raise UserError(f"-o {output}: the file exists (give --force to replace it)")
    if url.startswith("sqlite:///") and output.resolve() == Path(url.removeprefix("sqlite:///")).resolve():
        raise UserError(f"-o {output}: that is the database being exported")

    async def export() -> str:
        await require_readable(url, timeout_s=EXPORT_TIMEOUT_S)
        return (await export_run(url, args.run, output, force=args.force)).render()

    sys.stdout.write(_reaching(url, "nothing exported", export))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from controller.flight_recorder.importing import import_export

    require_url("--database", args.database)

    async def load() -> str:
        return (await import_export(Path(args.file), args.database)).render()

    sys.stdout.write(_reaching(args.database, "nothing imported", load))
    return 0


def _reaching(url: str, outcome: str, work: Callable[[], Coroutine[Any, Any, str]]) -> str:
    """A database that cannot be reached, or fails midway, is one line naming it (the export's file
    and the import's transaction are then absent and rolled back: `outcome` says so)."""
    from sqlalchemy.exc import DBAPIError

    from controller.reports.gather import shown_url

    try:
        return asyncio.run(work())
    except (DBAPIError, OSError) as exc:
        reason = describe_error(exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc)
        raise UserError(f"{shown_url(url)}: {reason}: {outcome}") from None
