"""Interlock latency: a limit crossing injected in the simulator, timed to the safe command that answers it.

The question (issue: "report p50/p99 next to the poll period; target p99 ≤ one poll period + 50 ms"):
how long after the inlet's frost point leaves spec does the supervisor command the inlet gate closed?

Procedure, once per interlock poll period: `SimLine` (standard line, virtual clock at `--speed`) and a
`LineController` on it; the inlet and the process chamber are pump/purged to inert-in-spec through the
gate, and the inlet gate is opened through the gate. Then, `--repetitions` times: wait a random fraction
of a poll period (so the crossing lands at a random phase of the poll cycle), stamp t0, step the inlet
dew-point transmitter's frost point by `--frost-step` K (a sensor offset: the transmitter derives its
1-atm frost point, the channel the atmosphere classification reads, from the same Td/f, so both move),
and wait for the supervisor's `SetPort(inlet_gate, open=False)` with origin "interlock". Undo the step,
wait for the inlet to be in spec again and the gate closed, reopen it, repeat.

Every stamp is `time.monotonic()`. The gate hands each record to its subscribers synchronously as the
command finishes; the bench's subscriber stamps that moment ("completed": written and read back) and
subtracts the record's `duration_s` (measured by the gate on the monotonic clock from the moment
`submit` was entered) for "issued". To say where the time goes, the bench also keeps its own poller
subscription: the first out-of-spec frost reading after t0 carries the driver's decode stamp
(`Reading.mono`, taken when the transmitter's poll completed), which splits the latency into
poll wait + poll, fan-out + supervisor evaluation, and gate execution.

Alarm latency (issue 11: "alarm latency, device status change → alarm raised, reported beside it"):
after the crossings, `--repetitions` times per configuration, wait a random fraction of a poll period,
stamp t0, empty the simulated gas supply (the glovebox controller's fault code turns to "gas supply
low" at once) and stamp the moment the alarm board publishes the new occurrence of
`device.inlet_glovebox.gas_supply_low` (its subscribers are called synchronously in `raise_alarm`);
refill, wait for the condition to clear, repeat. The glovebox controller is an interlock-class device
on its own Modbus TCP link, so the figure holds one wait for its poll, the poll, the fan-out and one
supervisor evaluation.

The test suite only smoke-runs `--quick`: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pymodbus

from bench.acquisition import DOCS_PATH
from bench.report import add_output_options, machine, parse_args, percentile, publish, update_section
from controller.config.line_config import load_line_config
from controller.line.actions import Action, SetPort
from controller.line.alarm_states import AlarmEvent
from controller.line.alarms import AlarmRecord
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.poller import PollPlan, Priority, Sample, Subscription
from controller.line.state import LineState
from drivers.reading import Reading
from sequences.steps import pump_purge, submit, wait_for
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine

log = logging.getLogger("bench.interlock_latency")

PORT = "inlet_gate"
SPACE = "inlet"
NEIGHBOUR = "process"
DEWPOINT = "inlet_dewpoint"
FAULTED_CHANNEL = "frost_point"  # what the transmitter measures (Td/f at the line pressure)
JUDGED_CHANNEL = "frost_point_atm"  # what the atmosphere classification reads
TARGET_MARGIN_S = 0.050
MIN_OVERSHOOT_C = 5.0  # the step must land clearly above the limit, not graze it
REPURGE_MARGIN_K = 2.0
TRIP_TIMEOUT_S = 5.0
STATE_TIMEOUT_S = 60.0
SUBSCRIBER = "bench.interlock_latency"
ALARM_ID = "device.inlet_glovebox.gas_supply_low"
BEGIN = (
    "<!-- bench.interlock_latency figures: begin "
    "(rewritten by `python -m bench.interlock_latency --write-docs`) -->"
)
END = "<!-- bench.interlock_latency figures: end -->"


class BenchError(RuntimeError):
    """The line did not do what the procedure needs; the figures would mean nothing."""


# --- options and results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyOptions:
    repetitions: int = 50
    interlock_periods_s: tuple[float, ...] = (0.1, 0.25)
    process_period_s: float = 1.0  # the shipped default: only the interlock period varies
    speed: float = 200.0
    frost_step_c: float = 40.0
    seed: int = 1
    quick: bool = False


QUICK = LatencyOptions(repetitions=3, quick=True)


@dataclass(frozen=True, slots=True)
class Spread:
    p50_s: float
    p99_s: float
    max_s: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(percentile(values, 50), percentile(values, 99), max(values))

    def cell(self) -> str:
        return f"{_ms(self.p50_s)} / {_ms(self.p99_s)} / {_ms(self.max_s)}"


@dataclass(frozen=True, slots=True)
class Trip:
    """One injected crossing; every figure in seconds after it, on the monotonic clock."""

    read_s: float  # the transmitter's poll that saw the step completed (Reading.mono)
    issued_s: float  # the supervisor entered gate.submit with the safe command
    completed_s: float  # the output was written and read back
    frost_before_c: float  # the last 1-atm frost point read before the step
    frost_c: float  # the one that reading showed

    @property
    def supervisor_s(self) -> float:
        return self.issued_s - self.read_s

    @property
    def gate_s(self) -> float:
        return self.completed_s - self.issued_s


@dataclass(frozen=True, slots=True)
class ConfigResult:
    interlock_period_s: float
    process_period_s: float
    crossings: int
    trips: tuple[Trip, ...]
    spurious_closures: int  # interlock closures of the gate with no step injected
    repurges: int  # the inlet's true frost point crept near the limit and it was purged again
    frost_baseline_c: float
    frost_limit_c: float
    sample_intervals_s: tuple[float, ...]  # between successive inlet frost readings, whole run
    dropped_samples: int
    alarm_latencies_s: tuple[float, ...] = ()  # device status change → alarm raised
    alarm_changes: int = 0  # status changes injected (a missing alarm is one fewer latency)

    @property
    def target_s(self) -> float:
        return self.interlock_period_s + TARGET_MARGIN_S

    @property
    def missed_crossings(self) -> int:
        return self.crossings - len(self.trips)

    def spread(self, stage: Callable[[Trip], float]) -> Spread:
        return Spread.of([stage(t) for t in self.trips])

    @property
    def issued(self) -> Spread:
        return self.spread(lambda t: t.issued_s)

    @property
    def completed(self) -> Spread:
        return self.spread(lambda t: t.completed_s)

    @property
    def target_met(self) -> bool:
        return self.missed_crossings == 0 and self.issued.p99_s <= self.target_s


@dataclass(frozen=True, slots=True)
class LatencyReport:
    options: LatencyOptions
    command: str
    started: dt.datetime
    elapsed_s: float
    load_before: float
    load_after: float
    results: tuple[ConfigResult, ...]


# --- watching the gate and the frost point -----------------------------------------------------------


class GateCloseWatch:
    """Gate subscriber: stamps the interlock's closing of the port the moment the gate reports it."""

    def __init__(self, port: str) -> None:
        self.closing = SetPort(port, False)
        self.spurious = 0
        self._armed = False
        self._hit: tuple[float, GateRecord] | None = None
        self._event = asyncio.Event()

    def __call__(self, record: GateRecord) -> None:
        now = time.monotonic()
        if record.command.origin != "interlock" or record.command.action != self.closing:
            return
        if not self._armed:
            self.spurious += 1
            log.warning(
                "interlock closed the gate with no step injected", extra={"reason": record.command.reason}
            )
        elif self._hit is None:
            self._hit = (now, record)
            self._event.set()

    def arm(self) -> None:
        self._armed, self._hit = True, None
        self._event.clear()

    def disarm(self) -> None:
        self._armed = False

    async def wait(self, timeout_s: float) -> tuple[float, GateRecord] | None:
        """(monotonic stamp at completion, record), or None if no closing came in time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        return self._hit


class FrostTrace:
    """The inlet frost readings from a poller subscription of our own, drained without a task of its own."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.intervals_s: list[float] = []
        self._last_mono: float | None = None

    def drain(self) -> list[Reading]:
        readings: list[Reading] = []
        while (event := self.subscription.get_nowait()) is not None:
            if isinstance(event, Sample) and (event.device, event.channel) == (DEWPOINT, JUDGED_CHANNEL):
                if self._last_mono is not None:
                    self.intervals_s.append(event.reading.mono - self._last_mono)
                self._last_mono = event.reading.mono
                readings.append(event.reading)
        return readings


# --- driving the line through the gate ---------------------------------------------------------------


async def _do(ctl: LineController, action: Action) -> GateRecord:
    return await submit(ctl.gate, action, "bench", "interlock latency bench")


async def _until(
    ctl: LineController, what: str, predicate: Callable[[LineState], bool], timeout_s: float = STATE_TIMEOUT_S
) -> LineState:
    return await wait_for(ctl.gate, predicate, timeout_s, what)


async def purge(ctl: LineController, space: str, *, cycles: int, to_pa: float) -> None:
    """Pump/purge cycles through the gate, with the sequences' own step."""
    await pump_purge(
        ctl.gate, space, cycles=cycles, evacuate_to_pa=to_pa, timeout_s=STATE_TIMEOUT_S, user="bench"
    )


def _both_inert(state: LineState) -> bool:
    return all(state.spaces[s].atmosphere is Atmosphere.INERT_IN_SPEC for s in (SPACE, NEIGHBOUR))


async def _open_port(ctl: LineController) -> None:
    await _do(ctl, SetPort(PORT, True))
    await _until(ctl, f"{PORT} confirmed open", lambda s: s.ports[PORT].valve.confirmed_open)


# --- one configuration -------------------------------------------------------------------------------


async def measure(opts: LatencyOptions, interlock_period_s: float, rng: random.Random) -> ConfigResult:
    base = load_line_config()
    async with SimLine(base, speed=opts.speed) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(
            config,
            periods_s={Priority.INTERLOCK: interlock_period_s, Priority.PROCESS: opts.process_period_s},
        )
        async with LineController(config, plan=plan, travel_timeout_s=5.0) as ctl:
            await purge(ctl, SPACE, cycles=3, to_pa=20.0)
            await purge(ctl, NEIGHBOUR, cycles=2, to_pa=10.0)
            state = await _until(ctl, "inlet and process inert-in-spec", _both_inert)
            watch = GateCloseWatch(PORT)  # from here on, every closing by the interlock is ours to explain
            ctl.gate.subscribe(watch)
            limit_c = state.limits.max_frost_point_c
            baseline_c = _frost_c(state)
            if baseline_c + opts.frost_step_c < limit_c + MIN_OVERSHOOT_C:
                raise BenchError(
                    f"a {opts.frost_step_c:g} K step from {baseline_c:.1f} °C does not cross the "
                    f"{limit_c:g} °C limit clearly: use a larger --frost-step"
                )
            await _open_port(ctl)
            trace = FrostTrace(ctl.poller.subscribe(SUBSCRIBER, maxsize=1_000_000))
            try:
                trips: list[Trip] = []
                repurges = 0
                for i in range(opts.repetitions):
                    trip = await _one_crossing(sim, ctl, watch, trace, opts, limit_c, rng, i)
                    if trip is not None:
                        trips.append(trip)
                    repurges += int(await _restore(ctl, limit_c))
                trace.drain()
                dropped = trace.subscription.dropped
            finally:
                ctl.poller.unsubscribe(SUBSCRIBER)
            alarms = await _alarm_latencies(sim, ctl, opts, rng)
            return ConfigResult(
                interlock_period_s=interlock_period_s,
                process_period_s=opts.process_period_s,
                crossings=opts.repetitions,
                trips=tuple(trips),
                spurious_closures=watch.spurious,
                repurges=repurges,
                frost_baseline_c=baseline_c,
                frost_limit_c=limit_c,
                sample_intervals_s=tuple(trace.intervals_s),
                dropped_samples=dropped,
                alarm_latencies_s=tuple(alarms),
                alarm_changes=opts.repetitions,
            )


class AlarmWatch:
    """Stamps (monotonic) the first new occurrence of one alarm after `arm`."""

    def __init__(self, alarm_id: str) -> None:
        self.alarm_id = alarm_id
        self.raised = asyncio.Event()
        self.stamp: float | None = None
        self.armed = False

    def __call__(self, record: AlarmRecord) -> None:
        if self.armed and record.alarm_id == self.alarm_id and record.event is AlarmEvent.CONDITION_RAISED:
            self.stamp = time.monotonic()
            self.armed = False
            self.raised.set()

    def arm(self) -> None:
        self.stamp, self.armed = None, True
        self.raised.clear()


async def _alarm_latencies(
    sim: SimLine, ctl: LineController, opts: LatencyOptions, rng: random.Random
) -> list[float]:
    watch = AlarmWatch(ALARM_ID)
    unsubscribe = ctl.alarms.subscribe(watch)
    latencies: list[float] = []
    try:
        for i in range(opts.repetitions):
            await asyncio.sleep(rng.uniform(0.0, ctl.poller.plan.periods_s[Priority.INTERLOCK]))
            watch.arm()
            t0 = time.monotonic()
            refill = inject(sim, Fault("gas_supply_empty"))
            try:
                await asyncio.wait_for(watch.raised.wait(), TRIP_TIMEOUT_S)
            except TimeoutError:
                log.error(
                    "no alarm within %g s of the status change", TRIP_TIMEOUT_S, extra={"change": i + 1}
                )
            finally:
                refill()
            if watch.stamp is not None:
                latencies.append(watch.stamp - t0)
            deadline = time.monotonic() + STATE_TIMEOUT_S
            while ctl.alarms.get(ALARM_ID).condition_active:
                if time.monotonic() > deadline:
                    raise BenchError(f"{ALARM_ID} did not clear after the supply was refilled")
                await asyncio.sleep(0.01)
    finally:
        unsubscribe()
    return latencies


def _frost_c(state: LineState) -> float:
    frost = state.spaces[SPACE].classification.evidence.get("frost_point_c")
    if not isinstance(frost, float):
        raise BenchError(f"no usable {SPACE} frost point: {state.spaces[SPACE].classification.reason}")
    return frost


async def _one_crossing(
    sim: SimLine,
    ctl: LineController,
    watch: GateCloseWatch,
    trace: FrostTrace,
    opts: LatencyOptions,
    limit_c: float,
    rng: random.Random,
    index: int,
) -> Trip | None:
    await asyncio.sleep(rng.uniform(0.0, ctl.poller.plan.periods_s[Priority.INTERLOCK]))
    before = trace.drain()  # what was read before the crossing only counts for the sample intervals
    before_c = before[-1].value if before else math.nan
    watch.arm()
    t0 = time.monotonic()
    undo = inject(
        sim, Fault("offset_sensor", device=DEWPOINT, channel=FAULTED_CHANNEL, offset=opts.frost_step_c)
    )
    try:
        hit = await watch.wait(TRIP_TIMEOUT_S)
    finally:
        undo()
        watch.disarm()
    trip = None
    if hit is None:
        log.error(
            "no safe command within %g s of the crossing", TRIP_TIMEOUT_S, extra={"crossing": index + 1}
        )
    else:
        done, record = hit
        seen = next((r for r in trace.drain() if r.mono >= t0 and r.value > limit_c), None)
        if seen is None:
            raise BenchError(
                f"{PORT} closed with no out-of-spec frost reading after the step: {record.command}"
            )
        trip = Trip(seen.mono - t0, done - record.duration_s - t0, done - t0, before_c, seen.value)
        log.info(
            "crossing %d: issued %.1f ms, completed %.1f ms",
            index + 1,
            1000 * trip.issued_s,
            1000 * trip.completed_s,
            extra={"crossing": index + 1, "issued_s": trip.issued_s, "completed_s": trip.completed_s},
        )
    return trip


async def _restore(ctl: LineController, limit_c: float) -> bool:
    """Back to the starting point after a crossing: gate closed, inlet in spec, gate open again.

    At the default speed 200 the inlet's walls outgas water for a virtual hour every 18 s, so its true
    frost point creeps towards the limit during a run; once it comes within `REPURGE_MARGIN_K` the
    inlet is purged again (the gate is closed anyway). Returns whether it was.
    """
    undone = time.monotonic()

    def settled(state: LineState) -> bool:
        latest = ctl.poller.latest(DEWPOINT, JUDGED_CHANNEL)
        return state.ports[PORT].valve.confirmed_closed and latest is not None and latest.mono > undone

    state = await _until(ctl, f"{PORT} closed and the {SPACE} frost point read again", settled)
    frost_c = state.spaces[SPACE].classification.evidence.get("frost_point_c")
    drifted = not (
        state.spaces[SPACE].atmosphere is Atmosphere.INERT_IN_SPEC
        and isinstance(frost_c, float)
        and frost_c <= limit_c - REPURGE_MARGIN_K
    )
    if drifted:
        log.info(
            "%s drifted towards the limit (%s, frost point %s °C); purging it again",
            SPACE,
            state.spaces[SPACE].atmosphere.value,
            frost_c,
            extra={"frost_point_c": frost_c, "atmosphere": state.spaces[SPACE].atmosphere.value},
        )
        await purge(ctl, SPACE, cycles=2, to_pa=20.0)
    await _until(ctl, f"{SPACE} and {NEIGHBOUR} inert-in-spec", _both_inert)
    await _open_port(ctl)
    return drifted


# --- the whole run -----------------------------------------------------------------------------------


async def run_bench(opts: LatencyOptions, *, command: str = "") -> LatencyReport:
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    rng = random.Random(opts.seed)
    results: list[ConfigResult] = []
    for period_s in opts.interlock_periods_s:
        guard_s = 300.0 + opts.repetitions * (TRIP_TIMEOUT_S + 3 * STATE_TIMEOUT_S)
        async with asyncio.timeout(guard_s):
            results.append(await measure(opts, period_s, rng))
        log.info("interlock period %g s done", period_s, extra={"interlock_period_s": period_s})
    return LatencyReport(
        options=opts,
        command=command,
        started=started,
        elapsed_s=time.monotonic() - t0,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        results=tuple(results),
    )


def _versions() -> str:
    return f"pymodbus {pymodbus.__version__}"


# --- report ------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}" if seconds >= 0.1 else f"{1000 * seconds:.1f}"


def _verdict(result: ConfigResult) -> str:
    target = f"≤ {_ms(result.target_s)} ms"
    if not result.trips:
        return f"{target}: **missed** (no safe command at all)"
    if result.missed_crossings:
        return f"{target}: **missed** ({result.missed_crossings} crossing(s) got no safe command)"
    return f"{target}: {'met' if result.target_met else '**missed**'}"


def _summary_table(results: Sequence[ConfigResult]) -> list[str]:
    out = [
        "| interlock poll period | process poll period | crossings | safe commands "
        "| crossing → safe command issued, p50 / p99 / max (ms) "
        "| crossing → closed and read back, p50 / p99 / max (ms) | target: p99 issued ≤ period + 50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        issued = r.issued.cell() if r.trips else "n/a"
        completed = r.completed.cell() if r.trips else "n/a"
        periods = f"| {_ms(r.interlock_period_s)} ms | {_ms(r.process_period_s)} ms"
        out.append(f"{periods} | {r.crossings} | {len(r.trips)} | {issued} | {completed} | {_verdict(r)} |")
    return out


def _alarm_table(results: Sequence[ConfigResult]) -> list[str]:
    out = [
        "| interlock poll period | status changes | alarms raised "
        "| device status change → alarm raised, p50 / p99 / max (ms) |",
        "|---|---|---|---|",
    ]
    for r in results:
        cell = Spread.of(r.alarm_latencies_s).cell() if r.alarm_latencies_s else "n/a"
        out.append(
            f"| {_ms(r.interlock_period_s)} ms | {r.alarm_changes} | {len(r.alarm_latencies_s)} | {cell} |"
        )
    return out


def _breakdown_table(results: Sequence[ConfigResult]) -> list[str]:
    out = [
        "| interlock poll period | crossing → step read (poll wait + the transmitter's poll) "
        "| read → safe command issued (fan-out + supervisor) "
        "| issued → read back (gate: I/O write + readback) "
        f"| interval between {DEWPOINT} readings |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if not r.trips:
            continue
        intervals = Spread.of(r.sample_intervals_s).cell() if r.sample_intervals_s else "n/a"
        out.append(
            f"| {_ms(r.interlock_period_s)} ms | {r.spread(lambda t: t.read_s).cell()} "
            f"| {r.spread(lambda t: t.supervisor_s).cell()} | {r.spread(lambda t: t.gate_s).cell()} "
            f"| {intervals} |"
        )
    return out


def _checks(results: Sequence[ConfigResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        steps = [t.frost_c - t.frost_before_c for t in r.trips if math.isfinite(t.frost_before_c)]
        stepped = (
            f"{statistics.median(t.frost_c for t in r.trips):.1f} °C, a step of "
            f"{statistics.median(steps):.1f} K (medians)"
            if steps
            else "n/a"
        )
        out.append(
            f"- {_ms(r.interlock_period_s)} ms: `{DEWPOINT}.{JUDGED_CHANNEL}` {r.frost_baseline_c:.1f} °C "
            f"after the purge; first reading after a step {stepped}; limit {r.frost_limit_c:g} °C. "
            f"Interlock closures with no step injected: {r.spurious_closures}; "
            f"inlet purged again between crossings (outgassing drift): {r.repurges} time(s); "
            f"poller samples the bench's subscription dropped: {r.dropped_samples}"
        )
    return out


def render_markdown(report: LatencyReport) -> str:
    opts = report.options
    quick = " (QUICK smoke run, not real figures)" if opts.quick else ""
    lines = [
        f"## Figures: interlock latency benchmark{quick}",
        "",
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC; whole run {report.elapsed_s:.0f} s",
        f"- machine: {machine(_versions())}",
        f"- 1-minute load average: {report.load_before:.2f} before, {report.load_after:.2f} after "
        "(the bench's own process counts in the second)",
        f"- command: `{report.command or 'python -m bench.interlock_latency'}`",
        f"- SimLine (standard line) at speed {opts.speed:g}, serial links unpaced; {opts.repetitions} "
        f"crossings per configuration, each a +{opts.frost_step_c:g} K step of "
        f"`{DEWPOINT}.{FAULTED_CHANNEL}` injected after a random wait of 0–1 interlock poll period; "
        f"seed {opts.seed}",
        "- percentiles interpolate linearly between closest ranks: with 50 crossings p99 lies between "
        "the two largest values",
        "",
        f"### {SPACE} frost point leaves spec → the supervisor closes {PORT}",
        "",
        *_summary_table(report.results),
        "",
        f"### Alarm latency: the glovebox reports gas supply low → `{ALARM_ID}` raised",
        "",
        *_alarm_table(report.results),
        "",
        "### Where the time goes (p50 / p99 / max, ms)",
        "",
        *_breakdown_table(report.results),
        "",
        *_checks(report.results),
        "",
        "How to read this: *issued* is when the supervisor entered `gate.submit` with the safe command, "
        "*read back* when the gate reported the remote I/O output written and read back (the valve's travel "
        "is not included). The first stage ends when the transmitter's poll that saw the step completed "
        "(the driver stamps its readings then), so it holds the wait for the next poll of the dew-point "
        "transmitter plus that poll; it is bounded by the interval between its readings, which is the "
        "interlock poll period unless the RS-485 bus it shares with the heaters is busy. The supervisor "
        "stage holds the poller's fan-out, the supervisor's wake-up and one evaluation of the whole line "
        "state. Figures are host timings of the software on a simulated plant: a real bus adds wire time "
        "and device latency to the first stage.",
    ]
    return "\n".join(lines) + "\n"


def update_docs(path: Path, figures: str) -> None:
    """Replace this benchmark's marked section of `path`; nothing else is touched."""
    update_section(path, "interlock_latency", figures)


# --- command line ------------------------------------------------------------------------------------


def _periods(text: str) -> tuple[float, ...]:
    try:
        periods = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of seconds: {text!r}") from None
    if not periods or not all(p > 0 for p in periods):
        raise argparse.ArgumentTypeError(f"poll periods must be > 0 s: {text!r}")
    return periods


def _parser() -> argparse.ArgumentParser:
    d = LatencyOptions()
    p = argparse.ArgumentParser(
        prog="python -m bench.interlock_latency", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--repetitions", type=int, default=d.repetitions, help="crossings per configuration")
    p.add_argument(
        "--periods",
        type=_periods,
        default=d.interlock_periods_s,
        help="interlock poll periods to measure, comma-separated seconds (default 0.1,0.25)",
    )
    p.add_argument("--process-period", type=float, default=d.process_period_s, help="process poll period, s")
    p.add_argument("--speed", type=float, default=d.speed, help="SimLine virtual clock speed")
    p.add_argument("--frost-step", type=float, default=d.frost_step_c, help="frost point step, K")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random injection phase")
    add_output_options(p, DOCS_PATH, quick_help="three crossings per period")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parse_args(parser, args_list)
    opts = dataclasses.replace(
        QUICK if args.quick else LatencyOptions(),
        interlock_periods_s=args.periods,
        process_period_s=args.process_period,
        speed=args.speed,
        frost_step_c=args.frost_step,
        seed=args.seed,
    )
    if not args.quick:
        opts = dataclasses.replace(opts, repetitions=args.repetitions)
    if opts.repetitions < 1 or opts.process_period_s <= 0 or opts.speed <= 0:
        parser.error("--repetitions, --process-period and --speed must be positive")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    command = " ".join(["python -m bench.interlock_latency", *args_list])
    report = asyncio.run(run_bench(opts, command=command))
    figures = render_markdown(report)
    return publish(figures, args, update_docs)


if __name__ == "__main__":
    sys.exit(main())
