"""The `depline` command line.

User errors (bad files, bad values, bad options) print one line naming what is wrong and exit 2;
tracebacks are for bugs only. This module is the wiring layer: it is the one place in `controller`
allowed to start the embedded simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from controller.errors import UserError
from drivers.errors import ConfigError

log = logging.getLogger("depline")

Handler = Callable[[argparse.Namespace], int]


def _positive_speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed {text!r} is not a number") from None
    if not 0.1 <= value <= 10000.0:
        raise argparse.ArgumentTypeError(f"--speed {value:g} outside the allowed range 0.1 .. 10000")
    return value


def _cmd_sim(args: argparse.Namespace) -> int:
    from controller.config import load_line_config
    from sim_hardware.serve import serve_line

    config = load_line_config(args.config)
    asyncio.run(serve_line(config, speed=args.speed, pace=args.pace, scenario=args.scenario))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from controller.config import load_line_config
    from controller.demo import run_demo

    config = load_line_config(args.config)
    return asyncio.run(run_demo(config, speed=args.speed, cycles=args.cycles))


def _cmd_config_check(args: argparse.Namespace) -> int:
    from controller.config import load_line_config

    for path in args.files:
        config = load_line_config(path)
        print(
            f"{path}: ok: line {config.name!r}, {len(config.spaces)} spaces, {len(config.ports)} ports, "
            f"{len(config.links)} links, {len(config.devices)} devices"
        )
    return 0


def _cmd_user_hash(args: argparse.Namespace) -> int:
    import getpass

    from controller.users import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("password: ")
    if len(password) < 8:
        raise UserError("user hash: the password must have at least 8 characters")
    print(hash_password(password))
    return 0


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the simulated line through a scripted pump/purge cycle and print what happened",
        description="Start the simulated standard line and purge the inlet antechamber through the real "
        "drivers: evacuate, back-fill with argon, repeat, reading pressure, frost point and O2 each cycle.",
    )
    demo.add_argument("--config", help="line configuration TOML (default: the embedded standard line)")
    demo.add_argument(
        "--speed", type=_positive_speed, default=40.0, help="virtual-clock speed factor (default 40)"
    )
    demo.add_argument(
        "--cycles", type=int, choices=range(1, 11), default=3, metavar="N", help="purge cycles, 1..10"
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

    config = sub.add_parser(
        "config", help="line configuration tools", description="Line configuration tools."
    )
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check", help="validate line configuration files", description="Validate line configuration files."
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=_cmd_config_check)

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
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UserError, ConfigError) as exc:
        print(f"depline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
