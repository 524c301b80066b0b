"""Historian ingest: samples through `Historian` into SQLite and PostgreSQL, beside raw baselines.

Two questions, two tables:

1. **Flat-out ingest.** How fast do 100k samples get from `record_sample` into the database, next
   to the fastest plain way of writing the same rows into the same table of the same schema: one
   `sqlite3` `executemany` in WAL mode (synchronous=NORMAL, foreign keys on, as the historian sets
   them), and one asyncpg `copy_records_to_table` on PostgreSQL. Ours is timed from the first
   `record_sample` until `flush()` says everything is committed; the raw writer from the first row to
   its commit. Target: ours >= 50 % of raw on both. While ours runs, a 0.1 s asyncio ticker (a
   stand-in for the control loop) in the same event loop records how late each tick wakes.
2. **Paced ingest.** A steady 20k samples/s for 5 s (some 100x what the line produces) with the same
   ticker: does the control loop keep its period while the historian writes? Beside it, the same
   ticker on an idle loop, for the floor of the machine's timer latency.

Each run gets a fresh database, migrated by the historian's own Alembic migrations; raw and ours
alternate which goes first, and figures are medians over `--runs` runs. PostgreSQL is a throwaway
cluster (tests/pg_server.py) with fsync on; if its binaries are missing, its rows say so. The test
suite only smoke-runs `--quick`: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import aiosqlite
import asyncpg
import sqlalchemy

from bench.postgres_cluster import PgCluster, unavailable_reason
from bench.report import add_output_options, machine, parse_args, percentile, publish, update_section
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.line.poller import Sample
from drivers.reading import Quality, Reading

log = logging.getLogger("bench.historian")

TARGET = 0.50
TICK_S = 0.1
FLUSH_TIMEOUT_S = 600.0
PHASE_TIMEOUT_S = 900.0
SAMPLE_COLUMNS = ("ts", "channel_id", "value", "quality")
SQLITE = "SQLite"
POSTGRES = "PostgreSQL"
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
BEGIN = "<!-- bench.historian figures: begin (rewritten by `python -m bench.historian --write-docs`) -->"
END = "<!-- bench.historian figures: end -->"


class BenchError(RuntimeError):
    """A run did not write what it was given: its figure would mean nothing."""


# --- options and results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchOptions:
    runs: int = 5
    samples: int = 100_000
    channels: int = 20
    chunk: int = 1000  # samples recorded per turn of the event loop when flat out
    paced_rate: float = 20_000.0
    paced_s: float = 5.0
    idle_s: float = 2.0
    quick: bool = False


QUICK = BenchOptions(runs=1, samples=2000, paced_rate=2000.0, paced_s=0.3, idle_s=0.3, quick=True)


@dataclass(frozen=True, slots=True)
class Measurement:
    rates: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def cell(self) -> str:
        if len(self.rates) == 1:
            return _num(self.median)
        return f"{_num(self.median)} ({_num(min(self.rates))}–{_num(max(self.rates))})"


@dataclass(frozen=True, slots=True)
class Lateness:
    """How late the ticker woke, in seconds, over every tick of a phase."""

    values: tuple[float, ...]

    def p(self, q: float) -> float:
        return percentile(self.values, q) if self.values else 0.0

    @property
    def max(self) -> float:
        return max(self.values, default=0.0)

    def cell(self) -> str:
        return f"{1000 * self.p(50):.1f} / {1000 * self.p(99):.1f} / {1000 * self.max:.1f}"


@dataclass(frozen=True, slots=True)
class BackendResult:
    backend: str
    version: str
    raw_label: str
    ours_label: str
    raw: Measurement
    ours: Measurement
    ingest_lateness: Lateness
    paced_rate: float
    paced_lateness: Lateness

    @property
    def ratio(self) -> float:
        return self.ours.median / self.raw.median


@dataclass(frozen=True, slots=True)
class BenchReport:
    options: BenchOptions
    command: str
    started: dt.datetime
    elapsed_s: float
    load_before: float
    load_after: float
    results: tuple[BackendResult, ...]
    skipped: tuple[str, ...]
    idle_lateness: Lateness


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _pct(ratio: float) -> str:
    return f"{100 * ratio:.0f} %"


# --- the control loop stand-in ---------------------------------------------------------------------


class Ticker:
    """A periodic task like the poller's: sleeps to its next deadline and notes how late it woke."""

    def __init__(self, period_s: float = TICK_S) -> None:
        self.period_s = period_s
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.period_s
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            now = loop.time()
            self.lateness.append(max(0.0, now - deadline))
            deadline += self.period_s
            if deadline < now:  # a missed period is not made up in a burst
                deadline = now + self.period_s

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-ticker")

    async def stop(self) -> Lateness:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return Lateness(tuple(self.lateness))


# --- the rows --------------------------------------------------------------------------------------


def make_samples(count: int, channels: int) -> list[Sample]:
    """Readings as the poller hands them over: round-robin over channels, a realistic spread of values."""
    now = time.time()
    mono = time.monotonic()
    out: list[Sample] = []
    for i in range(count):
        reading = Reading(1.0e-3 * (1 + i % 997), "Pa", Quality.OK, now + i * 1e-5, mono + i * 1e-5)
        out.append(Sample(f"device_{i % channels // 4}", f"channel_{i % channels}", reading))
    return out


def raw_rows(samples: Sequence[Sample], channel_ids: dict[tuple[str, str], int]) -> list[tuple[object, ...]]:
    return [
        (s.reading.ts, channel_ids[(s.device, s.channel)], s.reading.value, s.reading.quality.value)
        for s in samples
    ]


def channel_rows(samples: Sequence[Sample]) -> dict[tuple[str, str], int]:
    keys = dict.fromkeys((s.device, s.channel) for s in samples)
    return {key: i + 1 for i, key in enumerate(keys)}


# --- one run each ----------------------------------------------------------------------------------


def _raw_sqlite(path: Path, samples: Sequence[Sample]) -> float:
    """rows/s of one executemany + commit, with the pragmas the historian uses."""
    ids = channel_rows(samples)
    conn = sqlite3.connect(path)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        conn.executemany(
            "INSERT INTO channels (id, line, device, channel, unit) VALUES (?, 'line1', ?, ?, 'Pa')",
            [(cid, d, c) for (d, c), cid in ids.items()],
        )
        conn.commit()
        rows = raw_rows(samples, ids)
        start = time.perf_counter()
        conn.executemany("INSERT INTO samples (ts, channel_id, value, quality) VALUES (?, ?, ?, ?)", rows)
        conn.commit()
        elapsed = time.perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM samples").fetchone()
    finally:
        conn.close()
    _check(count, len(samples), "raw sqlite3")
    return len(samples) / elapsed


async def _raw_postgres(url: str, samples: Sequence[Sample]) -> float:
    """rows/s of one COPY in one transaction, asyncpg straight, no SQLAlchemy."""
    ids = channel_rows(samples)
    conn = await asyncpg.connect(url, timeout=30)
    try:
        await conn.executemany(
            "INSERT INTO channels (id, line, device, channel, unit) VALUES ($1, 'line1', $2, $3, 'Pa')",
            [(cid, d, c) for (d, c), cid in ids.items()],
        )
        rows = raw_rows(samples, ids)
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("samples", records=rows, columns=SAMPLE_COLUMNS)
        elapsed = time.perf_counter() - start
        count = await conn.fetchval("SELECT count(*) FROM samples")
    finally:
        await conn.close(timeout=10)
    _check(count, len(samples), "raw asyncpg")
    return len(samples) / elapsed


async def _ours(url: str, spill_dir: Path, samples: Sequence[Sample], chunk: int) -> tuple[float, Lateness]:
    """rows/s from the first record_sample until flush() has everything committed."""
    historian = Historian(url, line="line1", spill_dir=spill_dir)
    await historian.start()
    ticker = Ticker()
    try:
        ticker.start()
        start = time.perf_counter()
        for first in range(0, len(samples), chunk):
            for sample in samples[first : first + chunk]:
                historian.record_sample(sample)
            await asyncio.sleep(0)
        if not await historian.flush(FLUSH_TIMEOUT_S):
            raise BenchError(f"historian did not flush: {historian.stats}")
        elapsed = time.perf_counter() - start
        lateness = await ticker.stop()
    finally:
        await ticker.stop()
        await historian.stop()
    stats = historian.stats
    _check(stats.written, len(samples), "historian")
    if stats.spilled_total or stats.dropped:
        raise BenchError(f"historian spilled or dropped during the bench: {stats}")
    return len(samples) / elapsed, lateness


async def _paced(url: str, spill_dir: Path, opts: BenchOptions) -> tuple[float, Lateness]:
    """A steady rate in 10 ms steps; the achieved rate counts until everything is committed."""
    total = int(opts.paced_rate * opts.paced_s)
    samples = make_samples(total, opts.channels)
    step_s = 0.01
    per_step = max(1, int(opts.paced_rate * step_s))
    historian = Historian(url, line="line1", spill_dir=spill_dir)
    await historian.start()
    ticker = Ticker()
    loop = asyncio.get_running_loop()
    try:
        ticker.start()
        start = time.perf_counter()
        deadline = loop.time()
        for first in range(0, total, per_step):
            for sample in samples[first : first + per_step]:
                historian.record_sample(sample)
            deadline += step_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        if not await historian.flush(FLUSH_TIMEOUT_S):
            raise BenchError(f"historian did not flush: {historian.stats}")
        elapsed = time.perf_counter() - start
        lateness = await ticker.stop()
    finally:
        await ticker.stop()
        await historian.stop()
    _check(historian.stats.written, total, "historian (paced)")
    return total / elapsed, lateness


def _check(written: int, expected: int, who: str) -> None:
    if written != expected:
        raise BenchError(f"{who} wrote {written} rows, expected {expected}")


# --- per backend -----------------------------------------------------------------------------------

NewDatabase = Callable[[str], Awaitable[str]]


async def _bench_backend(
    backend: str,
    new_database: NewDatabase,
    raw: Callable[[str, Sequence[Sample]], Awaitable[float]],
    workdir: Path,
    opts: BenchOptions,
) -> tuple[Measurement, Measurement, Lateness, float, Lateness]:
    samples = make_samples(opts.samples, opts.channels)
    raw_rates: list[float] = []
    our_rates: list[float] = []
    lateness: list[float] = []
    counter = 0

    async def fresh() -> str:
        nonlocal counter
        counter += 1
        url = await new_database(f"bench_{counter}")
        await upgrade(url)
        return url

    for run in range(opts.runs):
        order = ("raw", "ours") if run % 2 == 0 else ("ours", "raw")
        for who in order:
            url = await fresh()
            if who == "raw":
                rate = await raw(url, samples)
                raw_rates.append(rate)
            else:
                rate, late = await _ours(url, workdir / f"spill_{counter}", samples, opts.chunk)
                our_rates.append(rate)
                lateness.extend(late.values)
            log.info(
                "%s %s run %d: %.0f rows/s",
                backend,
                who,
                run + 1,
                rate,
                extra={"backend": backend, "writer": who, "run": run + 1, "rate": rate},
            )
    paced_rate, paced_lateness = await _paced(await fresh(), workdir / "spill_paced", opts)
    log.info("%s paced: %.0f rows/s", backend, paced_rate, extra={"backend": backend, "rate": paced_rate})
    return (
        Measurement(tuple(raw_rates)),
        Measurement(tuple(our_rates)),
        Lateness(tuple(lateness)),
        paced_rate,
        paced_lateness,
    )


async def bench_sqlite(workdir: Path, opts: BenchOptions) -> BackendResult:
    async def new_database(name: str) -> str:
        return f"sqlite:///{workdir / name}.db"

    async def raw(url: str, samples: Sequence[Sample]) -> float:
        return await asyncio.to_thread(_raw_sqlite, Path(url.removeprefix("sqlite:///")), samples)

    raw_m, ours_m, late, paced_rate, paced_late = await _bench_backend(
        SQLITE, new_database, raw, workdir, opts
    )
    return BackendResult(
        SQLITE,
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL",
        "raw sqlite3 executemany",
        "depline Historian (aiosqlite executemany)",
        raw_m,
        ours_m,
        late,
        paced_rate,
        paced_late,
    )


async def bench_postgres(workdir: Path, opts: BenchOptions) -> BackendResult:
    cluster = PgCluster(fsync=True)
    try:
        await asyncio.to_thread(cluster.start)

        async def new_database(name: str) -> str:
            return await asyncio.to_thread(cluster.create_database, name)

        raw_m, ours_m, late, paced_rate, paced_late = await _bench_backend(
            POSTGRES, new_database, _raw_postgres, workdir, opts
        )
        version = await _server_version(cluster.url())
    finally:
        await asyncio.to_thread(cluster.destroy)
    return BackendResult(
        POSTGRES,
        f"PostgreSQL {version}, local, fsync on",
        "raw asyncpg copy_records_to_table",
        "depline Historian (asyncpg COPY)",
        raw_m,
        ours_m,
        late,
        paced_rate,
        paced_late,
    )


async def _server_version(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close(timeout=10)


async def idle_lateness(opts: BenchOptions) -> Lateness:
    ticker = Ticker()
    ticker.start()
    await asyncio.sleep(opts.idle_s)
    return await ticker.stop()


async def run_bench(opts: BenchOptions, *, command: str = "") -> BenchReport:
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: list[BackendResult] = []
    skipped: list[str] = []
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        idle = await idle_lateness(opts)
        with tempfile.TemporaryDirectory(prefix="depline-bench-historian-") as tmp:
            results.append(await bench_sqlite(Path(tmp), opts))
        reason = unavailable_reason()
        if reason is None:
            with tempfile.TemporaryDirectory(prefix="depline-bench-historian-") as tmp:
                results.append(await bench_postgres(Path(tmp), opts))
        else:
            skipped.append(f"{POSTGRES}: {reason}")
            log.warning("PostgreSQL skipped: %s", reason, extra={"reason": reason})
    return BenchReport(
        opts,
        command,
        started,
        time.perf_counter() - t0,
        load_before,
        os.getloadavg()[0],
        tuple(results),
        tuple(skipped),
        idle,
    )


def _versions() -> str:
    return (
        f"SQLAlchemy {sqlalchemy.__version__}, aiosqlite {aiosqlite.__version__}, "
        f"asyncpg {asyncpg.__version__}"
    )


# --- report ----------------------------------------------------------------------------------------


def _verdict(ratio: float) -> str:
    return f"≥ {_pct(TARGET)}: {'met' if ratio >= TARGET else '**missed**'}"


def render_markdown(report: BenchReport) -> str:
    opts = report.options
    lines = [
        f"## Figures: historian benchmark{' (QUICK smoke run, not real figures)' if opts.quick else ''}",
        "",
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC; whole run {report.elapsed_s:.0f} s",
        f"- machine: {machine(_versions())}",
        f"- 1-minute load average: {report.load_before:.2f} before, {report.load_after:.2f} after "
        "(the bench's own process counts in the second)",
        f"- command: `{report.command or 'python -m bench.historian'}`",
        f"- figures are medians over {opts.runs} run(s), min–max in brackets; raw and ours alternate "
        "which goes first; every run writes into a fresh database made by the historian's migrations",
        "",
        f"### 1. Flat-out ingest ({opts.samples} samples over {opts.channels} channels, "
        f"{opts.chunk} recorded per event-loop turn)",
        "",
        "| database | writer | rows/s median (min–max) | ours / raw | target "
        f"| {TICK_S:g} s ticker lateness during ingest, p50 / p99 / max (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.results:
        lines.append(f"| {r.version} | {r.raw_label} | {r.raw.cell()} |  |  |  |")
        lines.append(
            f"| {r.version} | {r.ours_label} | {r.ours.cell()} | {_pct(r.ratio)} | {_verdict(r.ratio)} "
            f"| {r.ingest_lateness.cell()} ({len(r.ingest_lateness.values)} ticks) |"
        )
    lines += [
        "",
        f"### 2. Paced ingest ({_num(opts.paced_rate)} samples/s for {opts.paced_s:g} s) "
        "and the control loop",
        "",
        f"| database | achieved rows/s | {TICK_S:g} s ticker lateness, p50 / p99 / max (ms) | ticks |",
        "|---|---|---|---|",
        f"| none (idle event loop, {opts.idle_s:g} s) | | {report.idle_lateness.cell()} "
        f"| {len(report.idle_lateness.values)} |",
    ]
    for r in report.results:
        lines.append(
            f"| {r.version} | {_num(r.paced_rate)} | {r.paced_lateness.cell()} "
            f"| {len(r.paced_lateness.values)} |"
        )
    if report.skipped:
        lines += ["", *(f"Not measured: {s}." for s in report.skipped)]
    return "\n".join(lines) + "\n"


INTRO = """\
## Historian ingest

`python -m bench.historian` measures how fast samples go from `Historian.record_sample` into the
database, beside the fastest plain way of writing the same rows into the same table in the same run
(`python -m bench.historian --write-docs` rewrites the section between the markers below).

- **Raw baselines**: SQLite, one `sqlite3` `executemany` and commit in WAL mode with the historian's
  pragmas; PostgreSQL, one asyncpg `copy_records_to_table` in a transaction. Both write tuples they
  were handed, with no buffering, no channel lookup, no event loop in between.
- **Ours** is timed from the first `record_sample` until `flush()` reports every row committed: the
  deque, the writer task's batching (20k rows per transaction), the channel-id lookup, the batch key
  that makes retries exactly-once, and the driver call (aiosqlite's executemany runs in its own
  thread; COPY is asyncpg's). Target: ≥ 50 % of raw.
- **Ticker lateness** is how late a 0.1 s periodic task in the same event loop woke (a stand-in for
  the poller): what the control loop pays for the historian. The idle row is the machine's floor.
  The line itself produces a few hundred samples a second; the paced row is some 100× that.
- Both write into the same `samples` table the migrations make (ts, channel_id, value, quality, an
  index on (channel_id, ts), no foreign key: see `controller/historian/schema.py`), so the raw rates
  are below stack.md §5's, which had neither index nor text column. PostgreSQL is a throwaway local
  cluster with fsync on.
- The ticker's worst case is one chunk of the writer's work on the loop's own thread (tuples built,
  and on PostgreSQL asyncpg's COPY encoding): samples go to the driver 5000 at a time. Converting
  and sending a whole 20k-row batch in one go stalled the ticker by 20–55 ms on the same machine.
  The other outlier is Python's garbage collector: a full (generation 2) collection while the
  bench's 100k samples are alive took about 90 ms (measured with `gc.callbacks`); it falls in some
  runs and not others.

"""


def update_docs(path: Path, figures: str) -> None:
    """Replace this benchmark's marked section of `path`; nothing else is touched."""
    update_section(path, "historian", figures, intro=INTRO)


def _parser() -> argparse.ArgumentParser:
    d = BenchOptions()
    doc = (__doc__ or "").split("\n\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.historian", description=doc)
    p.add_argument("--runs", type=int, default=d.runs, help="runs per figure; medians are reported")
    p.add_argument("--samples", type=int, default=d.samples, help="samples per flat-out run")
    add_output_options(p, DOCS_PATH, quick_help="tiny sizes and one run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parse_args(parser, args_list)
    opts = QUICK if args.quick else replace(BenchOptions(), runs=args.runs, samples=args.samples)
    if min(opts.runs, opts.samples) < 1:
        parser.error("--runs and --samples must be positive")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in (
        "controller.historian.store",
        "controller.historian.recording",
        "controller.historian.commit",
        "controller.historian.spiller",
        "controller.historian.health",
        "controller.historian.upgrade",
        "controller.historian.queries",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    command = " ".join(["python -m bench.historian", *args_list])
    report = asyncio.run(run_bench(opts, command=command))
    figures = render_markdown(report)
    return publish(figures, args, update_docs)


if __name__ == "__main__":
    sys.exit(main())
