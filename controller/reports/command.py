"""`depline report RUN`: the exposure certificate of a production job or batch.

The CLI layer of `controller.reports.gather` and its renderers: it reads the records through a
`Historian.reader` (which never migrates the schema or closes a live controller's run, so a report
can be printed while the line runs), prints the text certificate, and writes the HTML and PDF ones
where asked. User errors (unknown run, missing database, old schema, unwritable file) are one
`UserError` line, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from controller.errors import UserError
from controller.historian.errors import HistorianUnavailable

if TYPE_CHECKING:
    from controller.config.line_config import LineConfig
    from controller.reports.record import RunReport

READ_TIMEOUT_S = 30.0


def add_report_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report",
        help="print a production job's exposure certificate (optionally as HTML and PDF)",
        description="Print, for a job (or every job of a batch), the recipe, outcome, times and operator "
        "confirmations, and for each of its items (electrode, containers, targets) every exposure-ledger "
        "entry with its evidence, the time exposed to a non-inert atmosphere and a one-line verdict. "
        "--html and --pdf also write the certificate with a plot of pressure, frost point and substrate "
        "temperature around the electrode. Reads the records only: safe while the line runs.",
    )
    report.add_argument("run", metavar="RUN", help="a job id (B...-J01) or a batch id (B...: all its jobs)")
    report.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    report.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML certificate")
    report.add_argument("--pdf", metavar="FILE", help="also write a PDF certificate")
    report.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    # imported here: `depline --help` and the light commands start without the historian and renderers
    from controller.config.line_config import load_line_config
    from controller.reports.html_page import render_html
    from controller.reports.pdf import render_pdf
    from controller.reports.text import render_text

    config = load_line_config(args.config)
    url = config.database.url if args.database is None else args.database
    if "://" not in url:
        raise UserError(f"--database {url!r}: an SQLAlchemy URL such as sqlite:///data/line.db is expected")
    require_database_file(url)
    outputs = [(option, Path(name)) for option, name in (("--html", args.html), ("--pdf", args.pdf)) if name]
    for option, path in outputs:
        if not path.parent.is_dir():
            raise UserError(f"{option} {path}: the directory {path.parent} does not exist")
    report = asyncio.run(read_report(url, config, args.run))
    sys.stdout.write(render_text(report))
    sys.stdout.flush()
    for option, path in outputs:
        content = render_html(report).encode("utf-8") if option == "--html" else render_pdf(report)
        try:
            path.write_bytes(content)
        except OSError as exc:
            raise UserError(f"{option} {path}: cannot write: {exc.strerror}") from None
        print(f"depline: wrote {path}", file=sys.stderr)
    return 0


async def read_report(url: str, config: LineConfig, run: str) -> RunReport:
    """The report for `run` from the database at `url`; unreadable records are a `UserError`."""
    from controller.historian.store import Historian
    from controller.reports.gather import gather_report, shown_url

    async with Historian.reader(url, line=config.name, timeout_s=READ_TIMEOUT_S) as historian:
        try:
            return await gather_report(historian, config, run)
        except HistorianUnavailable as exc:
            raise UserError(f"cannot read the records in {shown_url(url)}: {exc}") from None


def require_database_file(url: str) -> None:
    """SQLite would make an empty file for a mistyped path; a report must say it is not there."""
    if not url.startswith("sqlite:///"):
        return
    name = url.removeprefix("sqlite:///").split("?", 1)[0]
    if name in ("", ":memory:"):
        raise UserError(f"--database {url!r}: an in-memory database holds no records to report on")
    if not Path(name).is_file():
        raise UserError(
            f"{url}: no such database file (give the line's database with --database or --config)"
        )
