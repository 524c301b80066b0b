"""HMI live feed cost: do 1, 8 or 32 watching WebSocket clients slow the control loop or the interlocks?

Operators' touch screens and engineers' desktops all hold the controller's `/ws` feed open; the
`ControllerService` pushes a "state" snapshot and the coalesced telemetry every 0.5 s (the shipped
intervals), and only while somebody watches. This bench runs the simulated standard line (`SimLine`)
with a `LineController` (the shipped poll plan) and, per configuration, a measurement window of
`--window` seconds:

- **none**: the line and the controller only, no `ControllerService`, no HTTP server: the baseline;
- **0, 1, 8, 32**: `ControllerService` + `HttpServer` (uvicorn, in the same event loop) on 127.0.0.1
  with that many real WebSocket clients (the `websockets` package) connected to `/ws`.

Every client logs in as a screen would (the feed serves logged-in screens only, at most 8 per user): the
bench issues one session per 8 clients in-process (`bench0`, `bench1`, ... operators; no password check,
so no PBKDF2 in the measured process) and hands the tokens to the child on its stdin, never on its
command line.

The clients run in a child process (`python -m bench.hmi_feed_clients ...`), so the bench process's
`time.process_time()` over the window is the controller's CPU, the simulator's included (it runs in the
same process and loop in every configuration, the baseline too). Each client counts the messages and
bytes it receives per kind; the child reports them with its own CPU time. In the bench process, a 0.1 s
ticker (the historian bench's method: sleep to the next deadline, note how late it woke, never make up
a missed period in a burst) measures event-loop lateness, and at every tick notes the age of each
interlock-class device's newest reading in the poller's latest-value table: what the interlock rules
see when they evaluate. Configurations run in `--rounds` rounds, the order rotated each round; rates
and CPU are medians over rounds, lateness and ages percentiles over every tick of every round.

The test suite only smoke-runs `--quick`: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from websockets.version import version as websockets_version

from bench.acquisition import DOCS_PATH
from bench.hmi_feed_clients import CONNECT_TIMEOUT_S, READY, SETTLE_S, ClientCounts
from bench.report import add_output_options, machine, parse_args, percentile, publish, update_section
from controller.config.line_config import UserConfig, load_line_config
from controller.line.controller import LineController
from controller.line.poller import Poller, Priority
from controller.service.line_service import (
    ControllerService,
    HttpServer,
    bind_listener,
    freeze_startup_objects,
)
from sim_hardware.line import SimLine

log = logging.getLogger("bench.hmi_feed")

TICK_S = 0.1
BASELINE = "none"
REPORT_MARGIN_S = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_PASSWORD_HASH = "pbkdf2_sha256$1$AA==$AA=="  # never checked: the bench issues its sessions itself


class BenchError(RuntimeError):
    """The clients could not watch as asked; the figures would mean nothing."""


# --- options and results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedOptions:
    client_counts: tuple[int, ...] = (0, 1, 8, 32)
    rounds: int = 4
    window_s: float = 6.0
    speed: float = 1.0
    quick: bool = False
    # what the controller does at start-up (controller.service.line_service.freeze_startup_objects)
    gc_freeze: bool = True


QUICK = FeedOptions(rounds=1, window_s=1.5, quick=True)


@dataclass(frozen=True, slots=True)
class Window:
    """One configuration, one round."""

    label: str  # "none" or the number of clients
    elapsed_s: float
    cpu_s: float
    probed: Probed
    counts: ClientCounts | None

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.elapsed_s


@dataclass(frozen=True, slots=True)
class Spread:
    p50_s: float
    p99_s: float
    max_s: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(math.nan, math.nan, math.nan)
        return cls(percentile(values, 50), percentile(values, 99), max(values))

    def cell(self) -> str:
        return f"{_ms(self.p50_s)} / {_ms(self.p99_s)} / {_ms(self.max_s)}"


@dataclass(frozen=True, slots=True)
class ConfigResult:
    """Every round of one configuration."""

    label: str
    windows: tuple[Window, ...]

    def _median(self, values: Sequence[float]) -> float:
        return statistics.median(values) if values else 0.0

    @property
    def cpu_share(self) -> float:
        return self._median([w.cpu_share for w in self.windows])

    @property
    def client_cpu_share(self) -> float:
        return self._median([w.counts.cpu_s / w.elapsed_s for w in self.windows if w.counts])

    def rate(self, kind: str, *, of_bytes: bool = False) -> float:
        """Per client, per second: the median over rounds."""
        return self._median(
            [w.counts.per_client_rate(kind, of_bytes=of_bytes) for w in self.windows if w.counts]
        )

    @property
    def lateness(self) -> Spread:
        return Spread.of([v for w in self.windows for v in w.probed.lateness_s])

    @property
    def ages(self) -> Spread:
        return Spread.of([v for w in self.windows for v in w.probed.ages_s])

    def lateness_p99_by_round(self) -> tuple[float, float, float]:
        """(median, min, max) of each round's own p99: a single host hiccup moves one round, not all."""
        p99s = [percentile(w.probed.lateness_s, 99) for w in self.windows if w.probed.lateness_s]
        if not p99s:
            return math.nan, math.nan, math.nan
        return statistics.median(p99s), min(p99s), max(p99s)

    def gc_pauses_s(self, *, generation: int | None = None) -> tuple[float, ...]:
        pauses = [p for w in self.windows for p in w.probed.gc_pauses]
        return tuple(s for g, s in pauses if generation is None or g == generation)

    def cpu_share_range(self) -> tuple[float, float]:
        shares = [w.cpu_share for w in self.windows]
        return min(shares), max(shares)

    @property
    def ticks(self) -> int:
        return sum(len(w.probed.lateness_s) for w in self.windows)


@dataclass(frozen=True, slots=True)
class FeedReport:
    options: FeedOptions
    command: str
    started: dt.datetime
    elapsed_s: float
    load_before: float
    load_after: float
    interlock_period_s: float
    interlock_devices: int
    results: tuple[ConfigResult, ...]

    @property
    def baseline(self) -> ConfigResult:
        return next(r for r in self.results if r.label == BASELINE)


def _ms(seconds: float) -> str:
    return "n/a" if not math.isfinite(seconds) else f"{1000 * seconds:.1f}"


# --- the control loop's view -----------------------------------------------------------------------


class LoopProbe:
    """The historian bench's 0.1 s ticker, which also notes how old the interlocks' inputs are.

    At each tick, the age of every interlock-class device's newest reading (over its channels) in the
    poller's latest-value table, on the monotonic clock the drivers stamp readings with.
    """

    def __init__(self, poller: Poller, period_s: float = TICK_S) -> None:
        self.poller = poller
        self.period_s = period_s
        self.devices = frozenset(d for d, p in poller.plan.priorities.items() if p is Priority.INTERLOCK)
        self.lateness_s: list[float] = []
        self.ages_s: list[float] = []
        self.gc_pauses: list[tuple[int, float]] = []
        self._gc_started: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        """Every collection's pause: tells a garbage collection from a pause of the host."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))
            self._gc_started = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.period_s
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            now = loop.time()
            self.lateness_s.append(max(0.0, now - deadline))
            self._note_ages()
            deadline += self.period_s
            if deadline < now:  # a missed period is not made up in a burst
                deadline = now + self.period_s

    def _note_ages(self) -> None:
        now_mono = time.monotonic()
        newest: dict[str, float] = {}
        for (device, _), reading in self.poller.snapshot(now_mono=now_mono).items():
            if device in self.devices:
                newest[device] = max(newest.get(device, -math.inf), reading.mono)
        self.ages_s.extend(max(0.0, now_mono - mono) for mono in newest.values())

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run(), name="bench-loop-probe")

    async def stop(self) -> Probed:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        return Probed(tuple(self.lateness_s), tuple(self.ages_s), tuple(self.gc_pauses))


@dataclass(frozen=True, slots=True)
class Probed:
    """One window's ticks, in seconds."""

    lateness_s: tuple[float, ...]
    ages_s: tuple[float, ...]
    gc_pauses: tuple[tuple[int, float], ...]  # (generation, pause in seconds)


# --- the watching clients (a child process: bench.hmi_feed_clients) ------------------------------


async def _read_line(stream: asyncio.StreamReader, timeout_s: float, what: str) -> bytes:
    try:
        async with asyncio.timeout(timeout_s):
            line = await stream.readline()
    except TimeoutError:
        raise BenchError(f"the clients did not report {what} within {timeout_s:g} s") from None
    if not line:
        raise BenchError(f"the clients' process ended before {what}")
    return line


# --- one window --------------------------------------------------------------------------------------


async def _quiet_window(ctl: LineController, label: str, window_s: float) -> Window:
    """Nobody watching: the baseline (no server at all) or a server with no client."""
    probe = LoopProbe(ctl.poller)
    await asyncio.sleep(SETTLE_S)
    cpu0, t0 = time.process_time(), time.monotonic()
    probe.start()
    await asyncio.sleep(window_s)
    probed = await probe.stop()
    return Window(label, time.monotonic() - t0, time.process_time() - cpu0, probed, None)


def _tokens(service: ControllerService, clients: int) -> list[str]:
    """One token per client: a session for every `max_per_user` clients, as that many users would hold."""
    per_user = service.feed.max_per_user
    sessions = [
        service.tokens.issue(UserConfig(f"bench{n}", "operator", BENCH_PASSWORD_HASH))[0]
        for n in range(math.ceil(clients / per_user))
    ]
    return [sessions[i // per_user] for i in range(clients)]


async def _watched_window(ctl: LineController, url: str, tokens: Sequence[str], window_s: float) -> Window:
    """The window opens when the child says its clients are ready and closes when it reports."""
    clients = len(tokens)
    probe = LoopProbe(ctl.poller)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.hmi_feed_clients",
        url,
        str(clients),
        str(window_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    try:
        if child.stdout is None or child.stdin is None:
            raise BenchError("the clients' process has no stdin or stdout")
        child.stdin.write("".join(f"{token}\n" for token in tokens).encode())
        await child.stdin.drain()
        child.stdin.close()
        ready = await _read_line(child.stdout, CONNECT_TIMEOUT_S + SETTLE_S + 10, "being ready")
        if ready.strip().decode() != READY:
            raise BenchError(f"the clients said {ready!r} instead of {READY!r}")
        cpu0, t0 = time.process_time(), time.monotonic()
        probe.start()
        line = await _read_line(child.stdout, window_s + REPORT_MARGIN_S, "their counts")
        cpu_s, elapsed_s = time.process_time() - cpu0, time.monotonic() - t0
        probed = await probe.stop()
        counts = ClientCounts.from_json(line)
        async with asyncio.timeout(REPORT_MARGIN_S):
            await child.wait()
    finally:
        await probe.stop()
        if child.returncode is None:
            child.kill()
            await child.wait()
    return Window(str(clients), elapsed_s, cpu_s, probed, counts)


async def _served_window(ctl: LineController, clients: int, window_s: float) -> Window:
    async with (
        ControllerService(ctl) as service,  # the shipped intervals and client limit
        HttpServer(service.app, bind_listener("127.0.0.1", 0)) as http,
    ):
        url = http.url.replace("http://", "ws://") + "/ws"
        if clients:
            window = await _watched_window(ctl, url, _tokens(service, clients), window_s)
        else:
            window = await _quiet_window(ctl, "0", window_s)
        if service.feed.dropped:
            log.warning("the feed dropped messages to slow clients", extra={"dropped": service.feed.dropped})
    return window


# --- the whole run -----------------------------------------------------------------------------------


async def run_bench(opts: FeedOptions, *, command: str = "") -> FeedReport:
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    labels = [BASELINE, *(str(n) for n in opts.client_counts)]
    windows: dict[str, list[Window]] = {label: [] for label in labels}
    guard_s = 120.0 + opts.rounds * len(labels) * (opts.window_s + CONNECT_TIMEOUT_S + REPORT_MARGIN_S)
    async with (
        asyncio.timeout(guard_s),
        SimLine(load_line_config(), speed=opts.speed) as sim,
        LineController(sim.simulated_config()) as ctl,
    ):
        await asyncio.sleep(2 * SETTLE_S)  # every device polled at least once
        if opts.gc_freeze:
            freeze_startup_objects()
        for round_ in range(opts.rounds):
            shift = round_ % len(labels)
            for label in labels[shift:] + labels[:shift]:
                if label == BASELINE:
                    window = await _quiet_window(ctl, label, opts.window_s)
                else:
                    window = await _served_window(ctl, int(label), opts.window_s)
                windows[label].append(window)
                log.info(
                    "round %d, clients %s: CPU %.1f %%",
                    round_ + 1,
                    label,
                    100 * window.cpu_share,
                    extra={"round": round_ + 1, "clients": label, "cpu_share": window.cpu_share},
                )
        interlock_period_s = ctl.poller.plan.periods_s[Priority.INTERLOCK]
        interlock_devices = len(LoopProbe(ctl.poller).devices)
    return FeedReport(
        options=opts,
        command=command,
        started=started,
        elapsed_s=time.monotonic() - t0,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        interlock_period_s=interlock_period_s,
        interlock_devices=interlock_devices,
        results=tuple(ConfigResult(label, tuple(windows[label])) for label in labels),
    )


def _versions() -> str:
    return f"uvicorn {uvicorn.__version__}, websockets {websockets_version}"


# --- report ------------------------------------------------------------------------------------------


def _ratio(value: float, baseline: float) -> str:
    if not (math.isfinite(value) and math.isfinite(baseline)) or baseline <= 0:
        return "n/a"
    return f"{value / baseline:.2f}×"


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _clients_table(results: Sequence[ConfigResult]) -> list[str]:
    out = [
        "| clients | state msg/s | telemetry msg/s | state kB/s | telemetry kB/s | other msg/s "
        "| clients' own process CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.label in (BASELINE, "0"):
            continue
        out.append(
            f"| {r.label} | {_num(r.rate('state'))} | {_num(r.rate('telemetry'))} "
            f"| {_num(r.rate('state', of_bytes=True) / 1000)} "
            f"| {_num(r.rate('telemetry', of_bytes=True) / 1000)} | {_num(r.rate('other'))} "
            f"| {100 * r.client_cpu_share:.1f} % |"
        )
    return out


def _gc_cell(pauses_s: Sequence[float]) -> str:
    return f"{len(pauses_s)}, {_ms(max(pauses_s, default=0.0))}"


def _cost_table(results: Sequence[ConfigResult], baseline: ConfigResult) -> list[str]:
    out = [
        "| clients | controller process CPU, median (min–max), × none "
        f"| {TICK_S:g} s ticker lateness p50 / p99 / max, ms (p50, p99 × none) "
        "| ticker p99 per round, median (min–max), ms, × none "
        "| interlock input age p50 / p99 / max, ms (p50, p99 × none) | ticks "
        "| garbage collections: count, longest ms; of which generation 2 |",
        "|---|---|---|---|---|---|---|",
    ]
    base_late, base_age = baseline.lateness, baseline.ages
    base_round_p99 = baseline.lateness_p99_by_round()[0]
    for r in results:
        late, age = r.lateness, r.ages
        cpu_low, cpu_high = r.cpu_share_range()
        p99_mid, p99_low, p99_high = r.lateness_p99_by_round()
        name = "none (no HTTP server)" if r.label == BASELINE else r.label
        out.append(
            f"| {name} | {100 * r.cpu_share:.1f} % ({100 * cpu_low:.1f}–{100 * cpu_high:.1f}), "
            f"{_ratio(r.cpu_share, baseline.cpu_share)} "
            f"| {late.cell()} ({_ratio(late.p50_s, base_late.p50_s)}, {_ratio(late.p99_s, base_late.p99_s)}) "
            f"| {_ms(p99_mid)} ({_ms(p99_low)}–{_ms(p99_high)}), {_ratio(p99_mid, base_round_p99)} "
            f"| {age.cell()} ({_ratio(age.p50_s, base_age.p50_s)}, {_ratio(age.p99_s, base_age.p99_s)}) "
            f"| {r.ticks} | {_gc_cell(r.gc_pauses_s())}; {_gc_cell(r.gc_pauses_s(generation=2))} |"
        )
    return out


def render_markdown(report: FeedReport) -> str:
    opts = report.options
    quick = " (QUICK smoke run, not real figures)" if opts.quick else ""
    lines = [
        f"## Figures: HMI live feed benchmark{quick}",
        "",
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC; whole run {report.elapsed_s:.0f} s",
        f"- machine: {machine(_versions())}",
        f"- 1-minute load average: {report.load_before:.2f} before, {report.load_after:.2f} after "
        "(the bench's own processes count in the second)",
        f"- command: `{report.command or 'python -m bench.hmi_feed'}`",
        f"- SimLine (standard line) at speed {opts.speed:g} and a LineController with the shipped poll plan "
        f"(interlock class every {report.interlock_period_s:g} s, {report.interlock_devices} devices), "
        "in one process and event loop; the ControllerService's shipped feed (state and telemetry every "
        "0.5 s, at most 32 clients) and uvicorn on 127.0.0.1; the clients in a child process",
        "- start-up objects frozen out of the garbage collector's reach (`gc.freeze`, as the controller "
        f"does once it is up): {'yes' if opts.gc_freeze else 'NO (--no-gc-freeze)'}",
        f"- {opts.rounds} round(s) of a {opts.window_s:g} s window per configuration, the order rotated "
        "each round; rates and CPU are medians over rounds, percentiles pool every tick of every round",
        "",
        "### What each client receives (per client, per second)",
        "",
        *_clients_table(report.results),
        "",
        "### What the watching costs the controller",
        "",
        *_cost_table(report.results, report.baseline),
        "",
        "How to read this: *controller process CPU* is `time.process_time()` of the process running the "
        "simulated line, the controller and the server, over the window, as a share of one core. *Ticker "
        f"lateness* is how late a {TICK_S:g} s task in the same event loop woke (the historian bench's "
        "method): how long anything else, the poller and the supervisor included, can be held up. "
        "*Interlock input age* is, at every tick, how old each interlock-class device's newest reading was "
        "in the poller's latest-value table: what the interlock rules see; it runs from zero to about one "
        "interlock poll period plus the poll itself, and grows only if polling falls behind. A window holds "
        f"some {opts.window_s / TICK_S:.0f} ticks, so a round's own p99 is close to its worst tick: one "
        "pause of the host (other processes, a garbage collection) moves the pooled p99 and the max of a "
        "row, but only one round's p99, hence the per-round column; the garbage collections "
        "(`gc.callbacks`, all generations) tell a collection from a pause of the host. Ratios are against "
        "the *none* row of the same run.",
    ]
    return "\n".join(lines) + "\n"


def update_docs(path: Path, figures: str) -> None:
    """Replace this benchmark's marked section of `path`; nothing else is touched."""
    update_section(path, "hmi_feed", figures)


# --- command line ------------------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of client counts: {text!r}") from None
    if not counts or not all(0 <= c <= 32 for c in counts):
        raise argparse.ArgumentTypeError(f"client counts must be 0–32 (the feed's limit): {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    d = FeedOptions()
    p = argparse.ArgumentParser(prog="python -m bench.hmi_feed", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--clients", type=_counts, default=d.client_counts, help="client counts (default 0,1,8,32)"
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help="rounds over every configuration")
    p.add_argument("--window", type=float, default=d.window_s, help="measurement window per configuration, s")
    p.add_argument("--speed", type=float, default=d.speed, help="SimLine virtual clock speed")
    p.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="leave the start-up objects to the collector (the controller freezes them: compare)",
    )
    add_output_options(p, DOCS_PATH, quick_help="one round of 1.5 s windows")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parse_args(parser, args_list)
    base = (
        QUICK if args.quick else dataclasses.replace(FeedOptions(), rounds=args.rounds, window_s=args.window)
    )
    opts = dataclasses.replace(base, client_counts=args.clients, speed=args.speed, gc_freeze=args.gc_freeze)
    if opts.rounds < 1 or opts.window_s <= 0 or opts.speed <= 0:
        parser.error("--rounds, --window and --speed must be positive")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("controller").setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    command = " ".join(["python -m bench.hmi_feed", *args_list])
    report = asyncio.run(run_bench(opts, command=command))
    return publish(render_markdown(report), args, update_docs)


if __name__ == "__main__":
    sys.exit(main())
