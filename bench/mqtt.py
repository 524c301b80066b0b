"""MQTT benchmark: telemetry through the bridge to mosquitto, next to a raw aiomqtt publisher, same run.

The question (issue "MQTT (aiomqtt)"): how many messages per second does `MqttBridge` get to the
broker, and how long does one take from being produced to reaching a plant subscriber (p50/p99),
compared with the plainest aiomqtt publisher on the same broker, client library and event loop?

Procedure: Debian's mosquitto on a free port (tests/mqtt_broker.py: password file, ACL, no
persistence); one subscriber (aiomqtt, QoS 1) in the same process stamps every message with
`time.monotonic()` as it is read. Payloads are the bridge's telemetry JSON for the same readings in
every case, so sizes and encoding cost match.

- *raw aiomqtt, awaited*: one client publishing QoS 1, awaiting each PUBACK before the next (stack.md
  §2 measured this shape).
- *raw aiomqtt, window N*: the same, with N publications in flight (`asyncio.gather` of N); the bridge
  publishes in batches of the same N, so this is its fair baseline.
- *MqttBridge*: a `LineController` built (not started, so no plant traffic) on the standard line with
  an `[mqtt]` table; the bench plays the poller, offering `Sample`s into the bridge's own poller
  subscription, so every message goes the production way: subscription -> pacing (interval set to
  ~0 here, every sample is a change) -> JSON -> outbox -> batched QoS 1 publication.

Throughput: N messages over `--channels` channels offered as fast as the path takes them; the rate is
N / (last message received - first offered), i.e. delivered to the subscriber, not only handed to a
socket. Latency: `--latency-messages` messages at a paced `--latency-rate`, each timed from the moment
it was produced (raw: before `publish()` is called; bridge: when the sample is offered) to its receipt.
Phases alternate which goes first across repetitions. The test suite only smoke-runs `--quick`:
nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import aiomqtt

from bench.acquisition import DOCS_PATH
from bench.mosquitto_broker import MosquittoBroker, line_acl, mosquitto_binary
from bench.report import add_output_options, machine, parse_args, percentile, publish, update_section
from controller.config.line_config import MqttConfig, load_line_config
from controller.line.controller import LineController
from controller.line.poller import Sample, Subscription
from controller.mqtt.bridge import QOS, MqttBridge
from controller.mqtt.options import BridgeOptions
from controller.mqtt.payloads import encode, telemetry_payload
from controller.mqtt.topics import Topics
from drivers.reading import Quality, Reading

log = logging.getLogger("bench.mqtt")

BEGIN = "<!-- bench.mqtt figures: begin (rewritten by `python -m bench.mqtt --write-docs`) -->"
END = "<!-- bench.mqtt figures: end -->"
PREFIX = "depline"
USERS = {"bridge": "bench-bridge", "raw": "bench-raw", "plant": "bench-plant"}
DEVICE = "bench"
PHASE_TIMEOUT_S = 300.0
OFFER_CHUNK = 200
SUBSCRIPTION_HIGH_WATER = 2_000  # the bridge's poller subscription holds 10 000; never make it drop

# Debian's mosquitto.conf leaves Nagle on towards the clients; plant brokers should not (see the report)
BROKER_SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Debian defaults (Nagle on)", ()),
    ("set_tcp_nodelay true", ("set_tcp_nodelay true",)),
)
RAW_AWAITED = "raw aiomqtt, each PUBACK awaited"
BRIDGE = "depline MqttBridge"


def raw_window_name(window: int) -> str:
    return f"raw aiomqtt, window {window}"


class BenchError(RuntimeError):
    """A phase lost messages or did not finish: its figures would mean nothing."""


@dataclass(frozen=True, slots=True)
class MqttBenchOptions:
    messages: int = 10_000
    repetitions: int = 3
    latency_messages: int = 1_000
    latency_rate_hz: float = 200.0
    channels: int = 100
    window: int = 20  # the bridge's publish batch (paho's default in-flight window)
    quick: bool = False


QUICK = MqttBenchOptions(messages=500, repetitions=1, latency_messages=100, quick=True)


@dataclass(frozen=True, slots=True)
class Spread:
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return percentile(self.values, 50)

    def cell(self) -> str:
        if len(self.values) == 1:
            return f"{self.values[0]:.0f}"
        return f"{self.median:.0f} ({min(self.values):.0f}–{max(self.values):.0f})"


@dataclass(frozen=True, slots=True)
class Latency:
    seconds: tuple[float, ...]

    @property
    def p50_s(self) -> float:
        return percentile(self.seconds, 50)

    @property
    def p99_s(self) -> float:
        return percentile(self.seconds, 99)

    def cell(self) -> str:
        return f"{_ms(self.p50_s)} / {_ms(self.p99_s)} / {_ms(max(self.seconds))}"


@dataclass(frozen=True, slots=True)
class Row:
    publisher: str
    rates: Spread  # messages/s delivered, one per repetition
    latency: Latency | None  # only for the awaited raw publisher and the bridge


@dataclass(frozen=True, slots=True)
class BrokerTable:
    setting: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class MqttReport:
    options: MqttBenchOptions
    command: str
    started: dt.datetime
    elapsed_s: float
    load_before: float
    load_after: float
    tables: tuple[BrokerTable, ...]


# --- the plant subscriber -----------------------------------------------------------------------------------


class Collector:
    """The plant side: every message with its arrival time; `expect(n)` arms the next phase."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[tuple[bytes, float]] = []
        self._target = 0
        self._done = asyncio.Event()

    async def run(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.received.append((payload, time.monotonic()))
            if len(self.received) >= self._target:
                self._done.set()

    def expect(self, count: int) -> None:
        self.received = []
        self._target = count
        self._done.clear()

    async def wait(self, what: str) -> list[tuple[bytes, float]]:
        try:
            async with asyncio.timeout(PHASE_TIMEOUT_S):
                await self._done.wait()
        except TimeoutError:
            raise BenchError(f"{what}: {len(self.received)} of {self._target} messages arrived") from None
        return self.received


def _reading(index: int) -> Reading:
    """Every message carries its index as the value: a change each time, and the key for latency."""
    return Reading(float(index), "Pa", Quality.OK, time.time(), time.monotonic())


def _index(payload: bytes) -> int:
    body = json.loads(payload)
    return int(body["value"])


def _latencies(received: Sequence[tuple[bytes, float]], produced: Sequence[float]) -> tuple[float, ...]:
    return tuple(t - produced[_index(p)] for p, t in received)


async def _paced(count: int, rate_hz: float, send: Callable[[int], Awaitable[None]]) -> None:
    start = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate_hz - time.monotonic()))
        await send(i)


# --- raw aiomqtt --------------------------------------------------------------------------------------------


class RawPublisher:
    def __init__(self, client: aiomqtt.Client, root: str, channels: int) -> None:
        self.client = client
        self.topics = [f"{root}/raw/{DEVICE}/ch{k}" for k in range(channels)]

    async def publish(self, index: int) -> None:
        payload = encode(telemetry_payload(_reading(index), index))
        await self.client.publish(self.topics[index % len(self.topics)], payload, qos=QOS)

    async def throughput(self, collector: Collector, count: int, window: int) -> float:
        collector.expect(count)
        start = time.monotonic()
        for first in range(0, count, window):
            await asyncio.gather(*(self.publish(i) for i in range(first, min(first + window, count))))
        received = await collector.wait(f"raw, window {window}")
        return count / (received[-1][1] - start)

    async def latency(self, collector: Collector, count: int, rate_hz: float) -> tuple[float, ...]:
        produced = [math.nan] * count
        collector.expect(count)

        async def send(i: int) -> None:
            produced[i] = time.monotonic()
            await self.publish(i)

        await _paced(count, rate_hz, send)
        return _latencies(await collector.wait("raw latency"), produced)


# --- through the bridge -------------------------------------------------------------------------------------


class BridgeRun:
    """One bridge on a built, unstarted controller; the bench offers samples as the poller would."""

    def __init__(self, ctl: LineController, opts: MqttBenchOptions) -> None:
        self.ctl = ctl
        self.opts = opts
        self.options = BridgeOptions(
            telemetry_min_interval_s=1e-9,  # every sample is a change: publish each one
            telemetry_heartbeat_s=1e9,
            telemetry_buffer=max(2 * opts.messages, 20_000),
            publish_batch=opts.window,
            client_id="depline-bench-bridge",
        )

    async def __aenter__(self) -> BridgeRun:
        self.bridge = MqttBridge(self.ctl.config, self.ctl, options=self.options)
        await self.bridge.start()
        subscription = self.ctl.poller.subscriptions().get("mqtt")
        assert subscription is not None
        self.subscription: Subscription = subscription
        deadline = time.monotonic() + 30.0
        while not (self.bridge.health[0] is True and self.bridge.buffered == 0):  # online, states sent
            if time.monotonic() > deadline:
                raise BenchError(f"the bridge did not come online: {self.bridge.health[1]}")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.bridge.stop()

    def offer(self, index: int) -> None:
        self.subscription.offer(Sample(DEVICE, f"ch{index % self.opts.channels}", _reading(index)))

    async def throughput(self, collector: Collector, count: int) -> float:
        collector.expect(count)
        start = time.monotonic()
        for first in range(0, count, OFFER_CHUNK):
            while len(self.subscription) > SUBSCRIPTION_HIGH_WATER:  # noqa: ASYNC110 (nothing to wait on)
                await asyncio.sleep(0.001)
            for i in range(first, min(first + OFFER_CHUNK, count)):
                self.offer(i)
            await asyncio.sleep(0)
        received = await collector.wait("bridge")
        return count / (received[-1][1] - start)

    async def latency(self, collector: Collector, count: int, rate_hz: float) -> tuple[float, ...]:
        produced = [math.nan] * count
        collector.expect(count)

        async def send(i: int) -> None:
            produced[i] = time.monotonic()
            self.offer(i)

        await _paced(count, rate_hz, send)
        return _latencies(await collector.wait("bridge latency"), produced)

    @property
    def dropped(self) -> int:
        return self.bridge.stats.dropped_telemetry + self.subscription.dropped


# --- the run ------------------------------------------------------------------------------------------------


async def run_bench(opts: MqttBenchOptions, *, command: str = "") -> MqttReport:
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    base = load_line_config()
    root = f"{PREFIX}/{base.name}"
    acl = line_acl(PREFIX, base.name, bridge="bridge", commanders=[], viewers=["plant"])
    acl += f"\nuser raw\ntopic write {root}/raw/#\n"
    tables: list[BrokerTable] = []
    for setting, extra in BROKER_SETTINGS:
        with tempfile.TemporaryDirectory(prefix="depline-bench-mqtt-") as workdir:
            async with MosquittoBroker(Path(workdir), users=USERS, acl=acl, extra_config=extra) as broker:
                mqtt = MqttConfig(broker.host, broker.port, "bridge", USERS["bridge"], PREFIX, (), ())
                config = dataclasses.replace(base, mqtt=mqtt)
                assert Topics.for_line(config, mqtt).root == root
                ctl = LineController(config)
                try:
                    log.info("broker: %s", setting)
                    tables.append(BrokerTable(setting, await _measure(opts, ctl, broker, root)))
                finally:
                    await ctl.devices.close()
    return MqttReport(
        options=opts,
        command=command,
        started=started,
        elapsed_s=time.monotonic() - t0,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        tables=tuple(tables),
    )


def _client(broker: MosquittoBroker, user: str, window: int) -> aiomqtt.Client:
    client = aiomqtt.Client(
        broker.host, broker.port, username=user, password=USERS[user], identifier=f"bench-{user}", timeout=30
    )
    client.pending_calls_threshold = 2 * window  # as the bridge does: a full window is no warning
    return client


async def _measure(
    opts: MqttBenchOptions, ctl: LineController, broker: MosquittoBroker, root: str
) -> tuple[Row, ...]:
    window = raw_window_name(opts.window)
    rates: dict[str, list[float]] = {RAW_AWAITED: [], window: [], BRIDGE: []}
    latencies: dict[str, list[float]] = {RAW_AWAITED: [], BRIDGE: []}
    dropped = 0
    async with (
        _client(broker, "plant", opts.window) as plant,
        _client(broker, "raw", opts.window) as raw_client,
    ):
        await plant.subscribe(f"{root}/raw/#", qos=QOS)
        await plant.subscribe(f"{root}/telemetry/#", qos=QOS)
        collector = Collector(plant)
        collecting = asyncio.create_task(collector.run(), name="bench.mqtt:collector")
        raw = RawPublisher(raw_client, root, opts.channels)

        async def raw_phases() -> None:
            rates[RAW_AWAITED].append(await raw.throughput(collector, opts.messages, 1))
            rates[window].append(await raw.throughput(collector, opts.messages, opts.window))
            latencies[RAW_AWAITED].extend(
                await raw.latency(collector, opts.latency_messages, opts.latency_rate_hz)
            )

        async def bridge_phases() -> None:
            nonlocal dropped
            async with BridgeRun(ctl, opts) as run:  # connected only while it is measured
                rates[BRIDGE].append(await run.throughput(collector, opts.messages))
                latencies[BRIDGE].extend(
                    await run.latency(collector, opts.latency_messages, opts.latency_rate_hz)
                )
                dropped += run.dropped

        try:
            for rep in range(opts.repetitions):
                order = (bridge_phases, raw_phases) if rep % 2 == 0 else (raw_phases, bridge_phases)
                for phases in order:
                    await phases()
                log.info(
                    "repetition %d: %s",
                    rep + 1,
                    ", ".join(f"{name} {values[-1]:.0f} msg/s" for name, values in rates.items()),
                )
        finally:
            collecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await collecting
    if dropped:
        raise BenchError(f"the bridge dropped {dropped} messages: the figures would not be comparable")
    return tuple(
        Row(name, Spread(tuple(values)), Latency(tuple(latencies[name])) if name in latencies else None)
        for name, values in rates.items()
    )


# --- report -------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}" if seconds < 0.01 else f"{1000 * seconds:.1f}"


def _versions() -> str:
    try:
        banner = subprocess.run(
            [mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        banner = "mosquitto (version unknown)"
    return f"{banner}; aiomqtt {metadata.version('aiomqtt')}; paho-mqtt {metadata.version('paho-mqtt')}"


def _table(table: BrokerTable, window: str) -> list[str]:
    baseline = next(row for row in table.rows if row.publisher == window).rates.median
    lines = [
        f"### Broker: {table.setting}",
        "",
        "| publisher | delivered msg/s, median (min–max) | / raw window | produced → received, "
        "p50 / p99 / max (ms) |",
        "|---|---|---|---|",
    ]
    for row in table.rows:
        ratio = f"{100 * row.rates.median / baseline:.0f} %"
        latency = row.latency.cell() if row.latency is not None else "—"
        lines.append(f"| {row.publisher} | {row.rates.cell()} | {ratio} | {latency} |")
    return lines


def render_markdown(report: MqttReport) -> str:
    opts = report.options
    quick = " (QUICK smoke run, not real figures)" if opts.quick else ""
    window = raw_window_name(opts.window)
    lines = [
        f"## Figures: MQTT benchmark{quick}",
        "",
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC; whole run {report.elapsed_s:.0f} s",
        f"- machine: {machine()}",
        f"- broker and client: {_versions()}; broker, publishers and subscriber on 127.0.0.1, "
        "clients in one process and one event loop",
        f"- 1-minute load average: {report.load_before:.2f} before, {report.load_after:.2f} after "
        "(the bench's own process counts in the second)",
        f"- command: `{report.command or 'python -m bench.mqtt'}`",
        f"- QoS 1 throughout; {opts.messages} messages per throughput run over {opts.channels} channels, "
        f"{opts.repetitions} run(s), median (min–max); latency: {opts.latency_messages} messages per run "
        f"at {opts.latency_rate_hz:g} msg/s, all runs pooled",
    ]
    for table in report.tables:
        lines += ["", *_table(table, window)]
    lines += [
        "",
        "How to read this: *delivered* counts a message when the subscriber has read it, so broker "
        "forwarding is in every figure. The raw awaited publisher waits a whole PUBACK round trip per "
        f"message; the window publisher keeps {opts.window} in flight, as the bridge does with its batches, "
        "so it is the bridge's baseline: what is missing to 100 % is the bridge's own work per message "
        "(the poller subscription, pacing, JSON encoding, the outbox and its bookkeeping) in the same "
        "event loop. The raw publishers use aiomqtt's defaults; the bridge sets TCP_NODELAY on its own "
        "socket. Latency is measured at a modest steady rate, far below saturation, so it shows the "
        "path, not queueing: raw is `publish()` called → received; the bridge is sample offered → "
        "received, which adds the producer task's and the publisher task's wake-ups to the broker round "
        "trip. With Debian's default mosquitto.conf the broker leaves Nagle's algorithm on towards its "
        "clients, so a message that follows another closely can wait for a delayed TCP ACK (40 ms on "
        "Linux): in the first table that makes keeping a window in flight slower than awaiting each "
        "PUBACK, and in some runs it puts 20–45 ms steps into the latencies as well (seen in `--quick` "
        "runs while this bench was written). A plant broker should set `set_tcp_nodelay true`. "
        "The line's real telemetry is paced to about one "
        "message per channel per second (`telemetry_min_interval_s`), a few hundred messages per second "
        "for the standard line.",
    ]
    return "\n".join(lines) + "\n"


def update_docs(path: Path, figures: str) -> None:
    """Replace this benchmark's marked section of `path`; nothing else is touched."""
    update_section(path, "mqtt", figures)


# --- command line -------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    d = MqttBenchOptions()
    p = argparse.ArgumentParser(prog="python -m bench.mqtt", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=d.messages, help="messages per throughput run")
    p.add_argument("--repetitions", type=int, default=d.repetitions, help="runs of every phase")
    p.add_argument(
        "--latency-messages", type=int, default=d.latency_messages, help="messages per latency run"
    )
    p.add_argument("--latency-rate", type=float, default=d.latency_rate_hz, help="latency phase rate, msg/s")
    p.add_argument(
        "--channels", type=int, default=d.channels, help="telemetry channels the messages spread over"
    )
    add_output_options(p, DOCS_PATH, quick_help="a few messages")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parse_args(parser, args_list)
    opts = (
        QUICK
        if args.quick
        else MqttBenchOptions(
            messages=args.messages,
            repetitions=args.repetitions,
            latency_messages=args.latency_messages,
            latency_rate_hz=args.latency_rate,
            channels=args.channels,
        )
    )
    if (
        min(opts.messages, opts.repetitions, opts.latency_messages, opts.channels) < 1
        or not opts.latency_rate_hz > 0
    ):
        parser.error(
            "--messages, --repetitions, --latency-messages, --channels and --latency-rate must be positive"
        )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    command = " ".join(["python -m bench.mqtt", *args_list])
    report = asyncio.run(run_bench(opts, command=command))
    figures = render_markdown(report)
    return publish(figures, args, update_docs)


if __name__ == "__main__":
    sys.exit(main())
