"""The flight recorder's command line: `depline history` and `depline samples`.

Both read a historian database (the line's, from `--config`, or any with `--database`) and change
nothing in it; bad input (unknown item, range with no data, a database that is not a depline historian
or is from a newer depline) is one line naming what and why, exit 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from controller.errors import UserError
from controller.flight_recorder.choices import FORMATS, JOB_OUTCOMES
from controller.flight_recorder.database_choice import (
    READ_TIMEOUT_S,
    Subparsers,
    add_database_options,
    chosen_database,
)
from controller.flight_recorder.time_range import parse_instant
from controller.historian.errors import HistorianUnavailable

if TYPE_CHECKING:
    from controller.flight_recorder.compare import Comparison
    from controller.flight_recorder.rejudge import Rejudgement
    from controller.flight_recorder.timeline import Entry, Window
    from controller.historian.store import Historian

# The handlers import what they compute with: `depline --help` and the light commands start without
# the historian (SQLAlchemy and its drivers) and the flight recorder's computations.

T = TypeVar("T")


def add_flight_recorder_commands(sub: Subparsers) -> None:
    _add_history(sub)
    _add_timeline(sub)
    _add_samples(sub)
    _add_rejudge(sub)
    _add_compare(sub)


def _add_history(sub: Subparsers) -> None:
    history = sub.add_parser(
        "history",
        help="list the batches and jobs that ran, newest first, with each electrode's verdict",
        description="List batches and their jobs, newest first: recipe, start and end, outcome, wall and "
        "plant time, the electrode and its certificate verdict, and the service runs that executed the job. "
        "Times are ISO 8601 (UTC unless an offset is given) or epoch seconds. Reads the records only.",
    )
    add_database_options(history)
    history.add_argument("--since", help="batches created at or after this time")
    history.add_argument("--until", help="batches created at or before this time")
    history.add_argument("--outcome", choices=JOB_OUTCOMES, help="only jobs that ended so")
    history.add_argument("--recipe", help="only jobs whose recipe path contains this text")
    history.add_argument(
        "--item", help="every job and batch this item (electrode, container, target) went through"
    )
    history.add_argument("--limit", type=int, default=50, help="at most this many batches (default 50)")
    history.add_argument("--json", action="store_true", help="JSON for scripts instead of the table")
    history.set_defaults(handler=_cmd_history)


def _add_timeline(sub: Subparsers) -> None:
    timeline = sub.add_parser(
        "timeline",
        help="every recorded event of a job, batch or service run (or a time range) in one time order",
        description="Merge, in one time order with wall and plant time, the job and phase events, alarms "
        "(raised, acknowledged, shelved, cleared, with who; first-out marked), every command (origin, user, "
        "verdict, the refusal's invariant and reason), station transitions, mode changes and item moves of "
        "RUN (a job, batch or service-run id) or of [--from, --to].",
    )
    add_database_options(timeline)
    timeline.add_argument("run", metavar="RUN", nargs="?", help="a job, batch or service-run id")
    timeline.add_argument("--from", dest="since", help="start of the range (instead of RUN)")
    timeline.add_argument("--to", dest="until", help="end of the range (instead of RUN)")
    timeline.add_argument("--space", help="only the events that name this space")
    timeline.add_argument("--json", action="store_true", help="JSON lines for scripts instead of the table")
    timeline.set_defaults(handler=_cmd_timeline)


def _add_samples(sub: Subparsers) -> None:
    samples = sub.add_parser(
        "samples",
        help="export every recorded reading of a space or a channel over a time range (CSV or JSON lines)",
        description="Write every recorded reading in [--from, --to] of a space (all its instruments) or of "
        "one channel (DEVICE.CHANNEL), oldest first, with its unit and quality, to standard output or -o "
        "FILE. Times are ISO 8601 (UTC unless an offset is given) or epoch seconds.",
    )
    add_database_options(samples)
    samples.add_argument("--from", dest="since", required=True, help="start of the range")
    samples.add_argument("--to", dest="until", required=True, help="end of the range")
    which = samples.add_mutually_exclusive_group(required=True)
    which.add_argument("--space", help="a space of the line: all its instruments")
    which.add_argument("--channel", help="one channel, as DEVICE.CHANNEL (e.g. pc_gauge.pressure_ch1)")
    samples.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or jsonl")
    samples.add_argument(
        "--max-points",
        type=int,
        metavar="N",
        help="a trend instead of every row: each channel in N/2 time buckets, one record each with the "
        "bucket's min and max (a spike survives); default: every recorded row",
    )
    samples.add_argument("-o", "--output", help="write to this file instead of standard output")
    samples.set_defaults(handler=_cmd_samples)


def _add_rejudge(sub: Subparsers) -> None:
    rejudge = sub.add_parser(
        "rejudge",
        help="judge a recorded job, batch or run again with today's interlocks and list the disagreements",
        description="Replay the recorded samples and commands of RUN through today's pure atmosphere "
        "classification and interlocks (with --config's line and limits) and list every instant where they "
        "disagree with the record: a command allowed then and refused now or the reverse, a safe action the "
        "supervisor would have sent earlier, later, or not at all. Exit 0 when all agree, 1 when some "
        "disagree, 2 for bad input. Reads the records only.",
    )
    add_database_options(rejudge)
    rejudge.add_argument("run", metavar="RUN", help="a job, batch or service-run id")
    rejudge.add_argument(
        "--step",
        type=float,
        default=0.25,
        help="wall seconds between watched instants (default 0.25: the interlock poll period)",
    )
    rejudge.add_argument("--json", action="store_true", help="JSON for scripts instead of the listing")
    rejudge.set_defaults(handler=_cmd_rejudge)


def _add_compare(sub: Subparsers) -> None:
    compare = sub.add_parser(
        "compare",
        help="two jobs side by side: phase durations, step figures, one phase's curves overlaid",
        description="List JOB_A's and JOB_B's phase durations in plant time with the difference, their step "
        "reports figure by figure, and with --html overlay the pressure and frost point of --space over "
        "--phase (default: the first pump-down both ran) on one plant-time axis.",
    )
    add_database_options(compare)
    compare.add_argument("job_a", metavar="JOB_A")
    compare.add_argument("job_b", metavar="JOB_B")
    compare.add_argument("--phase", help="the phase whose curves are overlaid (e.g. pump_down_1)")
    compare.add_argument(
        "--space", default="process", help="the space whose curves are overlaid (default process)"
    )
    compare.add_argument("--html", metavar="FILE", help="also write the comparison with the overlay plot")
    compare.set_defaults(handler=_cmd_compare)


def _cmd_history(args: argparse.Namespace) -> int:
    from controller.flight_recorder.history import HistoryFilter, find_history, render_history

    config, url = chosen_database(args)
    if args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    wanted = HistoryFilter(
        since_ts=None if args.since is None else parse_instant("--since", args.since),
        until_ts=None if args.until is None else parse_instant("--until", args.until),
        outcome=args.outcome,
        recipe=args.recipe,
        item=args.item,
        limit=args.limit,
    )
    found = asyncio.run(_read(url, config.name, lambda h: find_history(h, config, wanted)))
    if args.json:
        json.dump([b.as_json() for b in found], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_history(found))
    return 0


def _cmd_timeline(args: argparse.Namespace) -> int:
    from controller.flight_recorder.timeline import Window, render_timeline, timeline, window_of_run

    config, url = chosen_database(args)
    if (args.run is None) == (args.since is None or args.until is None):
        raise UserError("timeline: give either RUN or both --from and --to")
    if args.space is not None and args.space not in [s.name for s in config.spaces]:
        names = ", ".join(s.name for s in config.spaces)
        raise UserError(f"--space {args.space!r}: not a space of line {config.name!r} (spaces: {names})")

    async def read(historian: Historian) -> tuple[Window, list[Entry]]:
        if args.run is not None:
            window = await window_of_run(historian, args.run)
        else:
            since, until = parse_instant("--from", args.since), parse_instant("--to", args.until)
            if until <= since:
                raise UserError(f"--to {args.until}: must be after --from {args.since}")
            window = Window(since, until, 1.0, "range")
        return window, await timeline(historian, window, space=args.space)

    window, entries = asyncio.run(_read(url, config.name, read))
    if args.json:
        sys.stdout.write("".join(json.dumps(e.as_json()) + "\n" for e in entries))
    else:
        sys.stdout.write(render_timeline(window, entries))
    return 0


def _cmd_rejudge(args: argparse.Namespace) -> int:
    from controller.flight_recorder.rejudge import rejudge, render_rejudgement
    from controller.flight_recorder.timeline import window_of_run

    config, url = chosen_database(args)
    if not 0.05 <= args.step <= 60.0:
        raise UserError(f"--step {args.step}: must be between 0.05 and 60 seconds")

    async def read(historian: Historian) -> Rejudgement:
        window = await window_of_run(historian, args.run)
        return await rejudge(historian, config, window, step_s=args.step)

    result = asyncio.run(_read(url, config.name, read))
    if args.json:
        body = {
            "run": args.run,
            "commands_judged": result.commands_judged,
            "instants_watched": result.instants_watched,
            "samples_replayed": result.samples_replayed,
            "disagreements": [dataclasses.asdict(d) for d in result.disagreements],
        }
        json.dump(body, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_rejudgement(result))
    return 1 if result.disagreements else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from controller.flight_recorder.compare import compare, render_comparison, render_comparison_html

    config, url = chosen_database(args)
    if args.space not in [s.name for s in config.spaces]:
        names = ", ".join(s.name for s in config.spaces)
        raise UserError(f"--space {args.space!r}: not a space of line {config.name!r} (spaces: {names})")
    output = None if args.html is None else Path(args.html)
    if output is not None and not output.parent.is_dir():
        raise UserError(f"--html {output}: the directory {output.parent} does not exist")

    async def read(historian: Historian) -> Comparison:
        return await compare(historian, config, args.job_a, args.job_b, phase=args.phase, space=args.space)

    result = asyncio.run(_read(url, config.name, read))
    sys.stdout.write(render_comparison(result))
    if output is not None:
        try:
            output.write_text(render_comparison_html(result), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--html {output}: cannot write: {exc.strerror}") from None
        print(f"depline: wrote {output}", file=sys.stderr)
    return 0


def _cmd_samples(args: argparse.Namespace) -> int:
    from controller.flight_recorder.sample_export import (
        MIN_POINTS,
        select_channels,
        write_sample_buckets,
        write_samples,
    )
    from controller.reports.gather import shown_url

    config, url = chosen_database(args)
    since = parse_instant("--from", args.since)
    until = parse_instant("--to", args.until)
    if until <= since:
        raise UserError(f"--to {args.until}: must be after --from {args.since}")
    if args.max_points is not None and args.max_points < MIN_POINTS:
        raise UserError(f"--max-points {args.max_points}: at least {MIN_POINTS} (two buckets of min and max)")
    output = None if args.output is None else Path(args.output)
    if output is not None and not output.parent.is_dir():
        raise UserError(f"-o {output}: the directory {output.parent} does not exist")

    async def export(historian: Historian) -> int:
        chosen = await select_channels(historian, config, space=args.space, channel=args.channel)

        async def write(out: TextIO) -> int:
            if args.max_points is None:
                return await write_samples(historian, chosen, since, until, args.format, out)
            return await write_sample_buckets(
                historian, chosen, since, until, args.format, out, max_points=args.max_points
            )

        if output is None:
            return await write(sys.stdout)
        return await _export_to_file(write, output)

    count = asyncio.run(_read(url, config.name, export))
    if count == 0:
        raise UserError(
            f"samples: {shown_url(url)} holds no reading of "
            f"{'space ' + args.space if args.space else 'channel ' + args.channel} "
            f"between {args.since} and {args.until}"
        )
    print(
        f"depline: {count} samples{'' if output is None else ' written to ' + str(output)}", file=sys.stderr
    )
    return 0


async def _export_to_file(write: Callable[[TextIO], Awaitable[int]], output: Path) -> int:
    """Written beside the target and renamed when complete: an interrupted or empty export leaves no
    file that looks whole."""
    partial = output.with_name(output.name + ".partial")
    out = await asyncio.to_thread(partial.open, "w", encoding="utf-8", newline="")
    try:
        count = await write(out)
    except BaseException:
        await asyncio.to_thread(out.close)
        partial.unlink(missing_ok=True)
        raise
    await asyncio.to_thread(out.close)
    if count:
        partial.replace(output)
    else:
        partial.unlink(missing_ok=True)
    return count


async def _read(url: str, line: str, query: Callable[[Historian], Awaitable[T]]) -> T:
    from controller.historian.store import Historian
    from controller.historian.upgrade import require_readable
    from controller.reports.gather import shown_url

    await require_readable(url, timeout_s=READ_TIMEOUT_S)
    async with Historian.reader(url, line=line, timeout_s=READ_TIMEOUT_S) as historian:
        try:
            return await query(historian)
        except HistorianUnavailable as exc:
            raise UserError(f"cannot read the records in {shown_url(url)}: {exc}") from None
