"""The `depline` command line.

User errors (bad files, bad values, bad options) print one line naming what is wrong and exit 2;
tracebacks are for bugs only. This module is the wiring layer: it is the one place in `controller`
allowed to start the embedded simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config.line_config import DatabaseConfig, LineConfig
from controller.config.secrets import mask_secrets
from controller.errors import UserError
from controller.service.client import DEFAULT_URL
from controller.service.log_lines import FORMATS, configure_logging
from controller.service.recipe_check import add_recipe_check
from drivers.errors import ConfigError

if TYPE_CHECKING:
    from controller.config.line_config import LineConfig
    from controller.service.demo import SimulatedLine

log = logging.getLogger("depline")
LOG_FORMAT_HELP = "stderr log lines: text with key=value fields, or one JSON object per line"

Handler = Callable[[argparse.Namespace], int]
DEMO_SPEED = 600.0


def _positive_speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed {text!r} is not a number") from None
    if not 0.1 <= value <= 10000.0:
        raise argparse.ArgumentTypeError(f"--speed {value:g} outside the allowed range 0.1 .. 10000")
    return value


def _cmd_sim(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config
    from sim_hardware.serve import serve_line

    config = load_line_config(args.config)
    asyncio.run(serve_line(config, speed=args.speed, pace=args.pace, scenario=args.scenario))
    return 0


def _vetted(config: LineConfig, serve_on: str | None, field: str = "hmi.host") -> LineConfig:
    """What start-up checks beyond the file's own rules: the HMI about to serve on `serve_on` (None: no
    HMI) while a published demo password is in force is refused; spaces whose atmosphere the configured
    sensors can never judge are warned about (stderr, through logging; the exit code does not change)."""
    from controller.line.sensor_coverage import atmosphere_blind_spots
    from controller.users.demo_passwords import refuse_demo_passwords_beyond_loopback

    if serve_on is not None:
        refuse_demo_passwords_beyond_loopback(config, serve_on, field)
    for warning in atmosphere_blind_spots(config):
        log.warning(warning, extra={"config": config.path})
    return config


def _cmd_demo(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config
    from controller.service.demo import run_demo, serve_demo

    config = _with_database(load_line_config(args.config), args.database)
    _vetted(config, config.hmi.host)  # both ways the demo serves the API on [hmi] host
    if args.operator == "hmi":
        if args.queue:
            raise UserError("demo: --queue is not used with --operator hmi (the operator picks the queue)")
        return asyncio.run(serve_demo(config, speed=args.speed, scenario=args.scenario))
    queue = Path(args.queue) if args.queue else None
    return asyncio.run(run_demo(config, speed=args.speed, queue_path=queue, scenario=args.scenario))


def _cmd_config_check(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config

    for path in args.files:
        config = load_line_config(path)
        _vetted(config, config.hmi.host)  # what `depline run` would refuse or warn about
        print(
            f"{path}: ok: line {config.name!r}, {len(config.spaces)} spaces, {len(config.ports)} ports, "
            f"{len(config.links)} links, {len(config.devices)} devices"
        )
    return 0


def _cmd_user_hash(args: argparse.Namespace) -> int:
    import getpass

    from controller.users.passwords import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("password: ")
    if len(password) < 8:
        raise UserError("user hash: the password must have at least 8 characters")
    print(hash_password(password))
    return 0


def _port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port {text!r} is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port {value} outside 0 .. 65535 (0: any free port)")
    return value


def _with_database(config: LineConfig, url: str | None) -> LineConfig:
    if url is None:
        return config
    if "://" not in url:
        raise UserError(f"--database {url!r}: an SQLAlchemy URL such as sqlite:///data/line.db is expected")
    return dataclasses.replace(config, database=DatabaseConfig(url))


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config
    from controller.historian.upgrade import current_revision, upgrade

    config = _with_database(load_line_config(args.config), args.database)
    url = config.database.url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    async def run() -> str | None:
        await upgrade(url, line=config.name)
        return await current_revision(url)

    print(f"{mask_secrets(url)}: schema at revision {asyncio.run(run())}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config

    if args.speed is not None and not args.sim:
        raise UserError("run: --speed sets the simulated plant's clock; it needs --sim")
    if args.scenario is not None and not args.sim:
        raise UserError("run: --scenario injects faults into the simulated line; it needs --sim")
    config = _with_database(load_line_config(args.config), args.database)
    host = args.host if args.host is not None else config.hmi.host
    port = args.port if args.port is not None else config.hmi.port
    _vetted(config, host, "hmi.host" if args.host is None else "--host")
    from controller.service.line_service import ServiceError

    try:
        asyncio.run(
            _run_line(config, host, port, sim=args.sim, speed=args.speed or 1.0, scenario=args.scenario)
        )
    except ServiceError as exc:  # not the user's fault, but one line says more than a traceback here
        log.error("the HMI server failed", exc_info=exc)
        print(f"depline: {mask_secrets(str(exc))}", file=sys.stderr)
        return 1
    return 0


async def _run_line(
    config: LineConfig, host: str, port: int, *, sim: bool, speed: float, scenario: str | None
) -> None:
    """The wiring `depline run` needs: signals first, the port bound, the simulator if asked, then serve."""
    from controller.service.line_service import bind_listener, serve_line, stop_on_signals
    from sequences.plant_clock import PlantClock

    stop = asyncio.Event()
    with stop_on_signals(stop):
        listener = bind_listener(host, port)
        try:
            async with contextlib.AsyncExitStack() as stack:
                line = config
                clock = PlantClock(1.0)
                if sim:  # the same simulated line as the demo's: a glovebox line kept inert and dry
                    from controller.service.demo import SimulatedLine

                    simulated = SimulatedLine(config, speed, scenario)
                    clock = simulated.clock
                    line = await stack.enter_async_context(simulated())
                if stop.is_set():
                    return
                what = f"line {config.name!r}" + (f", simulated at {speed:g}x" if sim else "")

                def announce(url: str) -> None:
                    print(f"depline: serving {url} ({what})", flush=True)

                await serve_line(line, listener, stop, announce=announce, clock=clock)
        finally:
            listener.close()


def _cmd_batch(args: argparse.Namespace) -> int:
    from controller.config.line_config import load_line_config
    from sequences.batch_queue import load_queue

    if args.url is not None and args.sim:
        raise UserError("batch: --sim runs its own simulated line; --url submits to a running line service")
    if args.attach or (args.queue is None):
        if not args.attach:
            raise UserError("batch: give a QUEUE file to run, or --attach to follow the running batch")
        return _follow_service_batch(args, load_line_config(args.config), None)
    if args.speed is not None and not args.sim:
        raise UserError("batch: --speed sets the simulated plant's clock; it needs --sim")
    if args.scenario is not None and not args.sim:
        raise UserError("batch: --scenario injects faults into the simulated line; it needs --sim")
    config = _with_database(load_line_config(args.config), args.database)
    spaces = [s.name for s in config.spaces]
    queue = load_queue(
        args.queue, spaces=spaces, line=config
    )  # every recipe and item id validated before anything moves
    operator = args.operator or ("simulated" if args.sim else "terminal")
    _vetted(config, config.hmi.host if operator == "hmi" else None)
    if args.check:
        recipes = ", ".join(dict.fromkeys(job.recipe.name for job in queue.jobs))
        print(f"{args.queue}: ok: {len(queue.jobs)} jobs on line {config.name!r} ({recipes})")
        return 0
    if operator == "simulated" and not args.sim:
        raise UserError("batch: --operator simulated answers glove-work prompts by itself; it needs --sim")
    if not args.sim:  # the real line belongs to its line service: the batch runs there
        return _follow_service_batch(args, config, Path(args.queue))
    if operator == "terminal" and not sys.stdin.isatty():
        raise UserError("batch: --operator terminal needs an interactive terminal on stdin")
    from controller.service.demo import SimulatedLine
    from sequences.batch_store import BatchStoreUnavailable

    line = SimulatedLine(config, args.speed or 1.0, args.scenario)
    try:
        return asyncio.run(_run_batch(config, queue, line, operator=operator))
    except BatchStoreUnavailable as exc:  # the database's fault, not the user's: one line, exit 1
        print(f"depline: the batch stopped: {exc}; run the same command again to resume it", file=sys.stderr)
        return 1


def _follow_service_batch(args: argparse.Namespace, config: LineConfig, queue: Path | None) -> int:
    """Submit (or attach to) a batch in the running line service and follow it to its end."""
    from controller.service.batch_client import follow, submit
    from controller.service.client import ServiceClient

    url = args.url or f"http://{config.hmi.host}:{config.hmi.port}"
    client = ServiceClient(url)
    if not client.reachable():
        raise UserError(
            f"batch: no line service answers at {url}: start it with `depline run"
            f"{' --config ' + args.config if args.config else ''}` (the service owns the line), "
            "or give its address with --url; `depline batch QUEUE --sim` runs on a simulated line instead"
        )
    terminal = sys.stdin.isatty() and args.operator in (None, "terminal")
    if queue is not None or terminal:
        client.log_in(Path(args.credentials) if args.credentials else None)
    if queue is not None:
        batch = submit(client, queue)
        print(f"depline batch: submitted {queue} to the line service at {url}: batch {batch}", flush=True)
    return follow(client, answer_prompts=terminal)


async def _run_batch(config: LineConfig, queue: Any, line: SimulatedLine, *, operator: str) -> int:
    from controller.service.batch_run import run_batch, simulated_plan
    from controller.service.demo import SIMULATED_GLOVE_WORK_S
    from controller.service.line_service import bind_listener
    from sequences.operator_desk import OperatorDesk

    clock = line.clock
    glove_work_s = SIMULATED_GLOVE_WORK_S if operator == "simulated" else None
    desk = OperatorDesk(clock=clock, simulated_glove_work_s=glove_work_s)
    result = await run_batch(
        config,
        queue,
        line,
        clock=clock,
        desk=desk,
        terminal=operator == "terminal",
        plan=simulated_plan(config),
        api_listener=bind_listener(config.hmi.host, config.hmi.port) if operator == "hmi" else None,
    )
    return result.exit_code


def _api_get(url: str, path: str) -> Any:
    """GET a JSON document from a running line service; every failure is one UserError line."""
    from controller.service.client import ServiceClient

    return ServiceClient(url).get(path)


def _pressure_text(pa: float | None) -> str:
    if pa is None:
        return "unknown"
    return f"{pa / 1000:.1f} kPa" if pa >= 1000 else f"{pa:.3g} Pa"


def _sensor_text(sensor: dict[str, Any] | None, fmt: str) -> str:
    if sensor is None:
        return "-"
    value = sensor.get("value")
    shown = format(value, fmt) if isinstance(value, int | float) else "?"
    return shown if sensor.get("quality") == "ok" else f"{shown} ({sensor.get('quality')})"


def _unexpected_answer(url: str, exc: Exception) -> UserError:
    return UserError(f"{url} did not answer like a depline controller ({type(exc).__name__}: {exc})")


def _cmd_status(args: argparse.Namespace) -> int:
    state = _api_get(args.url, "/api/state")
    alarms = _api_get(args.url, "/api/alarms")
    try:
        _print_status(state, alarms)
    except (KeyError, TypeError, ValueError) as exc:
        raise _unexpected_answer(args.url, exc) from None
    return 0


def _print_status(state: Any, alarms: Any) -> None:
    stations = {s["name"]: s["state"] for s in state["stations"]}
    print(f"line {state['line']!r} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['ts']))}")
    row = "{:<10} {:<14} {:<18} {:>11} {:>14} {:>11}  {:<4}  {}"
    print(row.format("SPACE", "STATION", "ATMOSPHERE", "PRESSURE", "FROST PT degC", "O2 ppmv", "SAFE", "WHY"))
    for space in state["spaces"]:
        print(
            row.format(
                space["name"],
                stations.get(space["name"], "-"),
                space["atmosphere"],
                _pressure_text(space["pressure_pa"]),
                _sensor_text(space["frost_point"], ".1f"),
                _sensor_text(space["o2"], ".1f"),
                "yes" if space["safe_for_exposed"] else "no",
                space["reason"],
            )
        )
    ports = ", ".join(f"{p['name']} {_position(p['valve'])}" for p in state["ports"])
    print(f"ports: {ports or 'none'}")
    items = [
        f"{i['id']} ({i['kind']}, {i['material']}) in {i['location']}{', EXPOSED' if i['exposed'] else ''}"
        for i in state["items"]
    ]
    print(f"items: {'; '.join(items) or 'none'}")
    unacked = sum(1 for a in alarms["active"] if a["unacknowledged"])
    print(
        f"alarms: {len(alarms['active'])} active ({unacked} unacknowledged), {len(alarms['shelved'])} shelved"
    )


def _position(valve: dict[str, Any]) -> str:
    if valve["confirmed_closed"]:
        return "closed"
    if valve["confirmed_open"]:
        return "open"
    commanded = valve["commanded_open"]
    return "unknown" if commanded is None else f"moving {'open' if commanded else 'closed'}"


def _cmd_alarms(args: argparse.Namespace) -> int:
    alarms = _api_get(args.url, "/api/alarms")
    try:
        _print_alarms(alarms)
    except (KeyError, TypeError, ValueError) as exc:
        raise _unexpected_answer(args.url, exc) from None
    return 0


def _print_alarms(alarms: Any) -> None:
    if not alarms["active"] and not alarms["shelved"]:
        print("no active alarms")
        return
    row = "{:<9} {:<16} {:<32} {}"
    print(row.format("SEVERITY", "STATE", "ALARM", "TEXT"))
    for alarm in [*alarms["active"], *alarms["shelved"]]:
        text = alarm["detail"] or alarm["text"]
        if alarm["acked_by"]:
            text += f" (acknowledged by {alarm['acked_by']})"
        if alarm["shelf"]:
            text += f" (shelved by {alarm['shelf']['user']}: {alarm['shelf']['reason']})"
        print(row.format(alarm["severity"], alarm["state"], alarm["id"], text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depline",
        description="Control software for a glovebox-coupled thin-film deposition line.",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    parser.add_argument("--log-format", choices=FORMATS, default="text", help=LOG_FORMAT_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a three-job production batch on the simulated line and print the records",
        description="The main job on the embedded defaults: start the simulated standard line at high speed, "
        "the controller with its SQLite historian and the API on 127.0.0.1, and run the shipped demo queue "
        "(three recipes) through the production sequence with a simulated operator; print progress, the "
        "batch summary and every electrode's exposure record. An interrupted demo resumes when run again.",
    )
    demo.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    demo.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    demo.add_argument(
        "--speed",
        type=_positive_speed,
        default=DEMO_SPEED,
        help=f"plant clock speed factor (default {DEMO_SPEED:g})",
    )
    demo.add_argument("--queue", help="a queue TOML to run instead of the shipped demo queue")
    demo.add_argument(
        "--operator",
        choices=["simulated", "hmi"],
        default="simulated",
        help="simulated (default): the batch runs by itself; hmi: serve the HMI and wait for a person to "
        "log in, start the demo queue and answer the glove-work prompts in the browser",
    )
    demo.add_argument(
        "--scenario",
        help="The simulator's fault-scenario TOML (times in plant seconds from the start)",
    )
    demo.set_defaults(handler=_cmd_demo)

    sim = sub.add_parser(
        "sim",
        help="serve the simulated line on pseudo-terminals and TCP ports",
        description="Start the plant model and every device simulator; print one JSON object per endpoint "
        '({"device", "protocol", "url", "unit"}) on stdout, then serve until interrupted.',
    )
    sim.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    sim.add_argument(
        "--speed", type=_positive_speed, default=1.0, help="virtual-clock speed factor (default 1)"
    )
    sim.add_argument("--pace", action="store_true", help="pace serial bytes at the configured baud rate")
    sim.add_argument("--scenario", help="fault-injection scenario TOML (timed leaks, silent devices, ...)")
    sim.set_defaults(handler=_cmd_sim)

    run = sub.add_parser(
        "run",
        help="run the controller and serve its HMI API (optionally on the simulated line)",
        description="Start the controller on the configured devices (or, with --sim, on the simulated line "
        "started in this process), serve the JSON API and WebSocket on the [hmi] address, print one line "
        "with the URL once ready, and run until SIGINT/SIGTERM.",
    )
    run.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    run.add_argument("--sim", action="store_true", help="start the simulated line in-process and use it")
    run.add_argument("--host", help="bind address (default: [hmi] host of the configuration)")
    run.add_argument("--port", type=_port_number, help="TCP port (default: [hmi] port; 0 picks a free port)")
    run.add_argument(
        "--speed", type=_positive_speed, help="simulated plant clock speed factor (with --sim; default 1)"
    )
    run.add_argument(
        "--database", help="SQLAlchemy URL overriding [database] url (e.g. sqlite:///tmp/line.db)"
    )
    run.add_argument(
        "--scenario",
        help="with --sim: the simulator's fault-scenario TOML (times in plant seconds from the start)",
    )
    run.add_argument("--log-format", choices=FORMATS, default=argparse.SUPPRESS, help=LOG_FORMAT_HELP)
    run.set_defaults(handler=_cmd_run)

    batch = sub.add_parser(
        "batch",
        help="run a queue of production jobs unattended (resumes an interrupted queue)",
        description="Run the jobs of a queue TOML file one after the other through the production sequence "
        "(load, purge, transfer, etch, layers, anneal, transfer out, seal, unload), with progress on the "
        "terminal and a summary with every electrode's exposure record at the end. The batch is kept in the "
        "historian database: running the same queue file again resumes it. Without --sim the batch runs "
        "inside the running line service (`depline run`), which owns the line: the queue is submitted and "
        "followed; Ctrl-C detaches and leaves it running. Exit 0 when every job is done, 1 when some failed "
        "safe or the queue stopped, 2 for bad input.",
    )
    batch.add_argument("queue", metavar="QUEUE", nargs="?", help="queue TOML file")
    batch.add_argument(
        "--url",
        help="the running line service to run the batch in (default: the configured [hmi] address); "
        "credentials from DEPLINE_USER/DEPLINE_PASSWORD, --credentials FILE or a prompt",
    )
    batch.add_argument("--attach", action="store_true", help="follow the batch running in the line service")
    batch.add_argument("--credentials", help="TOML file with `user` and `password` for the line service")
    batch.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    batch.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    batch.add_argument("--sim", action="store_true", help="run on the simulated line started in-process")
    batch.add_argument(
        "--check",
        action="store_true",
        help="only validate: the queue, its recipes and item ids against the configured line; nothing moves",
    )
    batch.add_argument(
        "--speed", type=_positive_speed, help="simulated plant clock speed factor (with --sim; default 1)"
    )
    batch.add_argument(
        "--operator",
        choices=["terminal", "hmi", "simulated"],
        help="who answers glove-work prompts: a person at this terminal (default), a logged-in operator "
        "through the API served on the [hmi] address (GET /api/prompts, POST /api/prompts/KEY/confirm), "
        "or, with --sim, a simulated operator (recorded as such)",
    )
    batch.add_argument(
        "--scenario",
        help="with --sim: the simulator's fault-scenario TOML (times in plant seconds from the start)",
    )
    batch.set_defaults(handler=_cmd_batch)

    from controller.flight_recorder.commands import add_flight_recorder_commands
    from controller.flight_recorder.export_commands import add_export_commands
    from controller.reports.command import add_report_command

    add_report_command(sub)
    add_flight_recorder_commands(sub)
    add_export_commands(sub)

    from controller.service.commission import add_commission_command
    from controller.service.replay import add_replay_command

    add_commission_command(sub)
    add_replay_command(sub)

    db = sub.add_parser("db", help="database tools", description="Historian database tools.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade",
        help="create or migrate the historian schema to the current version",
        description="Run the Alembic migrations on the configured database (or --database).",
    )
    upgrade.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    upgrade.add_argument("--database", help="SQLAlchemy URL overriding [database] url")
    upgrade.set_defaults(handler=_cmd_db_upgrade)

    from controller.service.db_retain import add_retain_command

    add_retain_command(db_sub)

    status = sub.add_parser(
        "status",
        help="print the line's state from a running controller",
        description="Read /api/state and /api/alarms of a running controller and print spaces, ports, items.",
    )
    status.add_argument("--url", default=DEFAULT_URL, help=f"line service address (default {DEFAULT_URL})")
    status.set_defaults(handler=_cmd_status)

    alarms = sub.add_parser(
        "alarms",
        help="print the active and shelved alarms of a running controller",
        description="Read /api/alarms of a running controller and print one line per alarm.",
    )
    alarms.add_argument("--url", default=DEFAULT_URL, help=f"line service address (default {DEFAULT_URL})")
    alarms.set_defaults(handler=_cmd_alarms)

    config = sub.add_parser(
        "config", help="line configuration tools", description="Line configuration tools."
    )
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check", help="validate line configuration files", description="Validate line configuration files."
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=_cmd_config_check)

    recipe = sub.add_parser("recipe", help="recipe tools", description="Recipe tools.")
    recipe_sub = recipe.add_subparsers(dest="recipe_command", required=True, metavar="ACTION")
    add_recipe_check(recipe_sub)

    user = sub.add_parser("user", help="user account tools", description="User account tools.")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    hasher = user_sub.add_parser(
        "hash",
        help="print the password hash for a [[users]] entry",
        description="Read a password (prompted, or one line on stdin) and print its pbkdf2_sha256 hash.",
    )
    hasher.add_argument("--stdin", action="store_true", help="read the password from standard input")
    hasher.set_defaults(handler=_cmd_user_hash)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UserError, ConfigError) as exc:
        print(f"depline: {mask_secrets(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`depline alarms | head`): not a failure of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception:  # a bug or an unreadable database: the traceback, through the masking formatter
        log.critical("depline stopped by an unexpected error", exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
