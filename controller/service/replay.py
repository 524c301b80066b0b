"""`depline replay`: the HMI served read-only on a historian, with a time cursor.

Why it is built this way:

- **Nothing that could write is started.** No controller, poller, device link, recorder or batch
  store: the app (`controller.api.replay`) answers from a historian opened read-only (SQLite through a
  `mode=ro` URI, PostgreSQL in read-only transactions), so a replay never adds a run or any row to the
  database it reads, and the file's checksum is the same after it.
- **Checked before anything is served.** The database must exist, be a depline historian and be at
  this depline's schema revision (`require_readable`, opened read-only too), and the port must be free
  (bound before the server starts): otherwise one line naming what and why, exit 2.
- **The line as it was recorded.** Without `--config` the line drawn is the one the records were made
  on: the configuration its newest run in the database recorded (`runs.config_text`, its [database]
  and [mqtt] left out), so an export from another site replays as that site's line, transfer chamber
  and all, with nothing but the file. `--config` draws it with a file instead (today's, say);
  `--line` picks one line of a database several share. `--host`/`--port` default to this machine's
  address (`--config`'s [hmi], else the standard line's), never to the recording site's.
  The first line on standard error once it serves is `depline: replay of DATABASE on URL (read-only)`,
  so a script can wait for it; SIGINT/SIGTERM stop it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from typing import TypeAlias

from controller.api.replay import ReplayContext, create_replay_app
from controller.config.line_config import LineConfig, load_line_config, recorded_line_config
from controller.errors import UserError
from controller.historian.store import Historian
from controller.historian.upgrade import require_readable, shown_url
from controller.reports.command import require_database_file
from controller.service.line_service import HttpServer, bind_listener, stop_on_signals

READ_TIMEOUT_S = 30.0
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_replay_command(sub: Subparsers) -> None:
    replay = sub.add_parser(
        "replay",
        help="serve the HMI read-only on a historian, with a time cursor through any job or range",
        description="Serve the operator HMI on recorded data: pick a job or a range, move the cursor and "
        "the process picture shows the line as it was then (readings, atmosphere classes recomputed with "
        "today's rules, port positions, where every item was, the alarms on the board), with the timeline "
        "and trends beside it. Nothing is polled, commanded or written; the database is opened read-only.",
    )
    replay.add_argument(
        "--config", help="line configuration TOML (default: the one the line's newest recorded run ran with)"
    )
    replay.add_argument(
        "--line", help="the line to replay when the database holds several (default: the only one)"
    )
    replay.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    replay.add_argument("--host", help="address to serve on (default: the line's [hmi] host)")
    replay.add_argument("--port", type=int, help="port to serve on (default: the line's [hmi] port; 0: any)")
    replay.set_defaults(handler=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    given = None if args.config is None else load_line_config(args.config)
    local = given or load_line_config()  # this machine's address and default database
    if given is not None and args.line is not None and args.line != given.name:
        raise UserError(f"--line {args.line!r}: {args.config} configures line {given.name!r}")
    url = local.database.url if args.database is None else args.database
    if "://" not in url:
        raise UserError(f"--database {url!r}: an SQLAlchemy URL such as sqlite:///data/line.db is expected")
    require_database_file(url)
    host = local.hmi.host if args.host is None else args.host
    port = local.hmi.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: not a TCP port")
    config = given or asyncio.run(_recorded_config(url, args.line))
    asyncio.run(_require_records(url, config))
    listener = bind_listener(host, port)  # a port in use is a one-line error before anything serves
    return asyncio.run(_serve(url, config, listener))


async def _require_records(url: str, config: LineConfig) -> None:
    """A depline historian at this revision, holding records of this line (a database of another line
    would replay as an empty line, which says nothing of why)."""
    await require_readable(url, timeout_s=READ_TIMEOUT_S, read_only=True)
    async with Historian.reader(url, line=config.name, timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        if not await historian.runs(limit=1):
            raise UserError(
                f"{_shown(url)} holds no record of line {config.name!r}: give that line's configuration "
                "with --config"
            )


async def _recorded_config(url: str, line: str | None) -> LineConfig:
    """The configuration the line's newest run recorded: the line the records were made on."""
    await require_readable(url, timeout_s=READ_TIMEOUT_S, read_only=True)
    async with Historian.reader(url, line=line or "", timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        lines = await historian.recorded_lines()
    names = ", ".join(repr(r["line"]) for r in lines) or "none"
    chosen = [r for r in lines if line is None or r["line"] == line]
    if not lines:
        raise UserError(f"{_shown(url)} holds no recorded run of any line: nothing to replay")
    if not chosen:
        raise UserError(f"{_shown(url)} holds no record of line {line!r} (lines recorded: {names})")
    if len(chosen) > 1:
        raise UserError(f"{_shown(url)} holds records of lines {names}: choose one with --line")
    run = chosen[0]
    try:
        return recorded_line_config(
            str(run["config_text"]), f"{_shown(url)} (run {run['id']}'s configuration)"
        )
    except UserError as exc:
        raise UserError(f"{exc}; give the line's configuration with --config") from None


def _shown(url: str) -> str:
    """A file by its path (what the engineer typed), any other database by its URL without password."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else shown_url(url)


async def _serve(url: str, config: LineConfig, listener: socket.socket) -> int:
    stop = asyncio.Event()
    async with Historian.reader(url, line=config.name, timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        app = create_replay_app(ReplayContext(config, historian, _shown(url)))
        with stop_on_signals(stop):
            async with HttpServer(app, listener) as server:
                print(
                    f"depline: replay of {_shown(url)} on {server.url} (read-only)",
                    file=sys.stderr,
                    flush=True,
                )
                while not stop.is_set():
                    server.check()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
    return 0
