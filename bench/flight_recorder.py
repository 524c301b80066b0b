"""The flight recorder on a long night: timeline, one channel over a day, and rejudge, beside raw SQL.

An 8-hour job recorded at the line's real rate (~400 samples/s) holds ~12 M samples. This builds such
a historian in SQLite (the schema made by the historian's own migrations; the channels are the ones
the standard line's interlocks read (`rejudge.channels_read`), plus filler channels up to the
rate), with a realistic density of commands, job events, alarm events and ledger rows, and times:

1. `timeline` of the whole job (every event table in one order) — target < 2 s; baseline: the same
   six range queries in raw `sqlite3`, rows fetched and sorted, nothing formatted.
2. 24 h of one channel: the trend's bounded envelope (`sample_envelope`, 600 buckets) — target < 1 s;
   and every raw row (`sample_pages`); baseline: one raw `sqlite3` query of the same rows.
3. `rejudge` of the whole job at the interlock poll period (0.25 s) — target < 30 s; no baseline
   (nothing else re-judges), so the figure is given with its instants per second.

Figures are medians over `--runs`; `--hours` scales the night (the smoke test uses a few minutes).
Nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import add_output_options, machine, parse_args, publish, update_section
from controller.config.line_config import load_line_config
from controller.flight_recorder.rejudge import channels_read, rejudge
from controller.flight_recorder.timeline import Window, timeline
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from drivers.reading import Quality

log = logging.getLogger("bench.flight_recorder")

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
NAME = "flight_recorder"
RATE_PER_S = 400.0
POLL_S = 0.25
TARGETS = {"timeline": 2.0, "day_envelope": 1.0, "rejudge": 30.0}
INTRO = "## Flight recorder (issue 12)\n"


@dataclass(frozen=True, slots=True)
class Night:
    path: Path
    since_ts: float
    until_ts: float
    samples: int
    events: int
    day_channel: tuple[str, str]
    build_s: float


def _value(channel: str, t: float) -> float:
    if "pressure" in channel:
        return 1e-3 + 1e5 * (0.5 + 0.5 * math.sin(t / 900.0)) ** 4
    if "frost" in channel:
        return -60.0 + 3.0 * math.sin(t / 600.0)
    if channel.endswith((".open", ".closed", ".running")) or "valve" in channel or "door" in channel:
        return float(int(t / 300.0) % 2)
    return 20.0 + math.sin(t / 120.0)


def build_night(folder: Path, hours: float, seed: int = 12) -> Night:
    """The historian of one job `hours` long, written with raw sqlite3 after the migrations made it."""
    started = time.perf_counter()
    db = folder / "night.db"
    url = f"sqlite:///{db}"
    config = load_line_config()
    line = config.name
    asyncio.run(upgrade(url, line=line))
    keys = channels_read(config)
    fillers = max(0, int(RATE_PER_S * POLL_S) - len(keys))
    keys += [(f"filler{i // 10}", f"ch{i % 10}") for i in range(fillers)]
    rng = random.Random(seed)
    since = 1_796_000_000.0
    until = since + hours * 3600.0
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executemany(
        "INSERT INTO channels (id, line, device, channel, unit) VALUES (?, ?, ?, ?, ?)",
        [(i + 1, line, d, c, "bool" if "." in c else "Pa") for i, (d, c) in enumerate(keys)],
    )
    conn.execute(
        "INSERT INTO batches (id, line, queue_path, queue_hash, queue_text, created_at, ended_at, status, "
        "user) "
        "VALUES ('B-bench', ?, 'bench.toml', '', '', ?, ?, 'complete', 'bench')",
        (line, since, until),
    )
    conn.execute(
        "INSERT INTO jobs (id, line, batch_id, position, name, recipe_path, recipe_text, items, on_failure, "
        "state, "
        "checkpoint, attempts, started_at, ended_at, outcome, message, updated_at) VALUES ('B-bench-J01', ?, "
        "'B-bench', 1, 'bench', 'bench.toml', '', '{}', 'stop', 'complete', '', 1, ?, ?, 'done', '', ?)",
        (line, since, until, until),
    )
    samples = 0
    t = since
    while t <= until:
        rows = [
            (t + 0.001 * i, i + 1, _value(c, t - since), Quality.OK.value) for i, (_d, c) in enumerate(keys)
        ]
        conn.executemany("INSERT INTO samples (ts, channel_id, value, quality) VALUES (?, ?, ?, ?)", rows)
        samples += len(rows)
        t += POLL_S
    events = _write_events(conn, rng, since, until, line)
    conn.commit()
    conn.close()
    return Night(db, since, until, samples, events, keys[0], time.perf_counter() - started)


def _write_events(conn: sqlite3.Connection, rng: random.Random, since: float, until: float, line: str) -> int:
    """Commands every ~20 s, job events every ~30 s, alarm events every ~5 min, ledger rows every ~60 s:
    a busy night's record around its samples."""
    count = 0
    t = since
    while t < until:
        t += rng.expovariate(1 / 20.0)
        if t > until:
            break
        action = json.dumps(
            {"type": "SetValve", "space": "inlet", "valve": "rough", "open": rng.random() < 0.5}
        )
        conn.execute(
            "INSERT INTO commands (ts, line, user, origin, action, outcome, reason, error, duration_s, "
            "request_reason, refusals) "
            "VALUES (?, ?, 'sequence', 'sequence', ?, 'done', '', '', 0.01, '', '[]')",
            (t, line, action),
        )
        count += 1
    for kind, mean in (("job", 30.0), ("alarm", 300.0), ("item", 60.0)):
        t = since
        while t < until:
            t += rng.expovariate(1 / mean)
            if t > until:
                break
            count += 1
            if kind == "job":
                conn.execute(
                    "INSERT INTO job_events (ts, job_id, kind, detail) "
                    "VALUES (?, 'B-bench-J01', 'checkpoint', ?)",
                    (t, json.dumps({"phase": "pump_down_1", "status": "started"})),
                )
            elif kind == "alarm":
                conn.execute(
                    "INSERT INTO alarm_events (ts, line, alarm_id, event, from_state, to_state, severity, "
                    "evidence, condition_active) "
                    "VALUES (?, ?, 'inlet.frost', 'raised', 'normal', 'unacked', 'high', '{}', 1)",
                    (t, line),
                )
            else:
                conn.execute(
                    "INSERT INTO ledger (ts, line, item, event, space, atmosphere, exposed, evidence) "
                    "VALUES (?, ?, 'B-bench-J01-base', 'moved', 'inlet', 'inert_in_spec', 0, '{}')",
                    (t, line),
                )
    return count


def _timed(runs: int, work: Callable[[], Any]) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        out.append(time.perf_counter() - start)
    return out


def _raw_timeline(db: Path, since: float, until: float) -> int:
    with sqlite3.connect(db) as conn:
        rows: list[tuple[Any, ...]] = []
        for table in ("job_events", "alarm_events", "commands", "transitions", "mode_changes", "ledger"):
            rows += conn.execute(
                f"SELECT * FROM {table} WHERE ts BETWEEN ? AND ? ORDER BY ts", (since, until)
            ).fetchall()
    rows.sort(key=lambda r: r[1])
    return len(rows)


def _raw_day(db: Path, channel: tuple[str, str], since: float, until: float) -> int:
    with sqlite3.connect(db) as conn:
        return len(
            conn.execute(
                "SELECT samples.ts, value, quality FROM samples JOIN channels ON channels.id = channel_id "
                "WHERE device = ? AND channel = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                (*channel, since, until),
            ).fetchall()
        )


def _ours(coroutine: Callable[[Historian], Coroutine[Any, Any, Any]], url: str) -> Callable[[], Any]:
    async def run() -> Any:
        async with Historian.reader(url, line=load_line_config().name, timeout_s=600.0) as historian:
            return await coroutine(historian)

    return lambda: asyncio.run(run())


@dataclass(frozen=True, slots=True)
class Figures:
    night: Night
    timeline_s: list[float]
    timeline_raw_s: list[float]
    timeline_rows: int
    day_envelope_s: list[float]
    day_rows_s: list[float]
    day_raw_s: list[float]
    day_rows: int
    rejudge_s: list[float]
    rejudge_instants: int


def run_bench(hours: float, runs: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="bench-flight-") as folder:
        night = build_night(Path(folder), hours)
        url = f"sqlite:///{night.path}"
        window = Window(night.since_ts, night.until_ts, 1.0, "job B-bench-J01")
        config = load_line_config()
        entries: list[Any] = []
        timeline_s = _timed(
            runs, lambda: entries.__setitem__(slice(None), _ours(lambda h: timeline(h, window), url)())
        )
        timeline_raw_s = _timed(runs, lambda: _raw_timeline(night.path, night.since_ts, night.until_ts))
        day = (night.since_ts, night.since_ts + 24 * 3600.0)
        device, channel = night.day_channel
        day_envelope_s = _timed(
            runs, _ours(lambda h: h.sample_envelope(device, channel, *day, buckets=600), url)
        )

        async def every_row(h: Historian) -> int:
            ids = [
                int(r["id"])
                for r in await h.channel_rows()
                if (r["device"], r["channel"]) == night.day_channel
            ]
            return sum([len(page) async for page in h.sample_pages(ids, *day)])

        counted: list[int] = []
        day_rows_s = _timed(runs, lambda: counted.append(_ours(every_row, url)()))
        day_raw_s = _timed(runs, lambda: _raw_day(night.path, night.day_channel, *day))
        judged: list[int] = []
        rejudge_s = _timed(
            max(1, runs // 3),
            lambda: judged.append(_ours(lambda h: rejudge(h, config, window), url)().instants_watched),
        )
        return Figures(
            night, timeline_s, timeline_raw_s, len(entries), day_envelope_s, day_rows_s, day_raw_s,
            counted[-1],
            rejudge_s, judged[-1],
        )  # fmt: skip


def render(f: Figures, command: str) -> str:
    med = statistics.median
    n = f.night
    hours = (n.until_ts - n.since_ts) / 3600.0
    lines = [
        f"`{command}` — {machine()}",
        "",
        f"A synthetic {hours:g} h job: {n.samples:,} samples, {n.events:,} event rows "
        f"(built in {n.build_s:.0f} s).",
        "",
        "| question | ours (median) | raw sqlite3 (median) | ours / raw | target |",
        "|---|---|---|---|---|",
        f"| timeline of the whole job ({f.timeline_rows:,} entries) | {med(f.timeline_s):.2f} s | "
        f"{med(f.timeline_raw_s):.2f} s | {med(f.timeline_s) / med(f.timeline_raw_s):.1f}x | < 2 s |",
        f"| 24 h of one channel, trend envelope (600 buckets) | {med(f.day_envelope_s):.3f} s "
        "| - | - | < 1 s |",
        f"| 24 h of one channel, every row ({f.day_rows:,}) | {med(f.day_rows_s):.2f} s "
        f"| {med(f.day_raw_s):.2f} s | {med(f.day_rows_s) / med(f.day_raw_s):.1f}x | - |",
        f"| rejudge of the whole job ({f.rejudge_instants:,} instants at {POLL_S} s) "
        f"| {med(f.rejudge_s):.1f} s "
        f"({f.rejudge_instants / med(f.rejudge_s):,.0f} instants/s) | - | - | < 30 s |",
    ]
    return "\n".join(lines) + "\n"


def update_docs(path: Path, figures: str) -> None:
    update_section(path, NAME, figures, intro=INTRO)


QUICK_HOURS = 0.02


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flight_recorder", description=__doc__)
    parser.add_argument("--hours", type=float, default=8.0, help="length of the synthetic job (default 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    add_output_options(parser, DOCS_PATH, quick_help=f"a {QUICK_HOURS} h night, one run")
    args = parse_args(parser, argv)
    hours, runs = (QUICK_HOURS, 1) if args.quick else (args.hours, args.runs)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    figures = run_bench(hours, runs)
    command = "python -m bench.flight_recorder" + (
        " --quick" if args.quick else f" --hours {hours:g} --runs {runs}"
    )
    return publish(render(figures, command), args, update_docs)


if __name__ == "__main__":
    raise SystemExit(main())
