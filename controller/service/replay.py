"""`depline replay`: the HMI served read-only on a historian, with a time cursor.

Why it is built this way:

- **Nothing that could write is started.** No controller, poller, device link, recorder or batch
  store: the app (`controller.api.replay`) answers from a historian opened read-only (SQLite through a
  `mode=ro` URI, PostgreSQL in read-only transactions), so a replay never adds a run or any row to the
  database it reads, and the file's checksum is the same after it.
- **Checked before anything is served.** The database must exist, be a depline historian and be at
  this depline's schema revision (`require_readable`, opened read-only too), and the port must be free
  (bound before the server starts): otherwise one line naming what and why, exit 2.
- **The line as it was recorded**, chosen as every flight-recorder command chooses it
  (`database_choice`): with `--database` alone, the configuration the line's newest run there
  recorded, so an export from another site replays as that site's line with nothing but the file;
  `--config` draws it with a file instead; `--line` picks one line of a shared database.
  `--host`/`--port` default to this machine's address (`--config`'s [hmi], else the standard line's),
  never the recording site's.
  The first line on standard error once it serves is `depline: replay of DATABASE on URL (read-only)`,
  so a script can wait for it; SIGINT/SIGTERM stop it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from typing import TYPE_CHECKING, TypeAlias

from controller.config.line_config import load_line_config
from controller.errors import UserError
from controller.flight_recorder.database_choice import add_database_options, chosen_database, shown_database

if TYPE_CHECKING:
    from controller.config.line_config import LineConfig

# The handlers import the server, the app and the historian: `depline --help` and the light commands
# start without the web stack and SQLAlchemy.

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
    add_database_options(replay)
    replay.add_argument("--host", help="address to serve on (default: --config's [hmi] host, else 127.0.0.1)")
    replay.add_argument("--port", type=int, help="port to serve on (default: --config's [hmi] port; 0: any)")
    replay.set_defaults(handler=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    from controller.service.line_service import bind_listener

    local = load_line_config(args.config)  # this machine's address, never the recording site's
    host = local.hmi.host if args.host is None else args.host
    port = local.hmi.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: not a TCP port")
    config, url = chosen_database(args)
    asyncio.run(_require_records(url, config))
    listener = bind_listener(host, port)  # a port in use is a one-line error before anything serves
    return asyncio.run(_serve(url, config, listener))


async def _require_records(url: str, config: LineConfig) -> None:
    """A depline historian at this revision, holding records of this line (a database of another line
    would replay as an empty line, which says nothing of why)."""
    from controller.historian.store import Historian
    from controller.historian.upgrade import require_readable

    await require_readable(url, timeout_s=READ_TIMEOUT_S, read_only=True)
    async with Historian.reader(url, line=config.name, timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        if not await historian.runs(limit=1):
            raise UserError(
                f"{shown_database(url)} holds no record of line {config.name!r}: give that line's "
                "configuration with --config"
            )


async def _serve(url: str, config: LineConfig, listener: socket.socket) -> int:
    from controller.api.replay import ReplayContext, create_replay_app
    from controller.historian.store import Historian
    from controller.service.line_service import HttpServer, stop_on_signals

    stop = asyncio.Event()
    async with Historian.reader(url, line=config.name, timeout_s=READ_TIMEOUT_S, read_only=True) as historian:
        app = create_replay_app(ReplayContext(config, historian, shown_database(url)))
        with stop_on_signals(stop):
            async with HttpServer(app, listener) as server:
                print(
                    f"depline: replay of {shown_database(url)} on {server.url} (read-only)",
                    file=sys.stderr,
                    flush=True,
                )
                while not stop.is_set():
                    server.check()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
    return 0
