"""The controller as a service: a running `LineController`, its API and live feed, served over HTTP.

`serve_line` is what `depline run` does once the configuration is loaded (and, with ``--sim``, once the
CLI has started the simulated line: this module never imports the simulator). Pieces, innermost first:

- `ControllerService` wires a started `LineController` to the API's live parts: a poller subscription
  feeds the telemetry ring buffer and the WebSocket feed; gate and alarm records go to the feed as they
  happen; a ticker pushes state snapshots and coalesced telemetry at a bounded rate, and only while
  someone watches; a separate sampler keeps the HMI's two-hour trend history (`controller.api.trend_history`)
  whether or not anyone watches, so a page opened now starts with it.
- `HttpServer` runs uvicorn in this process and event loop (stack.md §6) on a socket bound *before*
  anything starts, so "address already in use" is a one-line user error instead of uvicorn's
  `sys.exit` inside a task. Signals are not uvicorn's business here: uvicorn's own handlers would
  re-raise SIGTERM after shutdown and the process would die by the signal instead of exiting 0.
- `stop_on_signals` turns SIGINT/SIGTERM into an event the caller waits on; every wait is bounded.
- The recorder starts *before* the controller: after a crash it restores the item inventory from the
  records before the poller, the supervisor or any client can act (see `controller.historian.recorder`). Its
  historian is the MQTT bridge's archive and the API's source for runs and earlier ledgers.
- A `BatchHost` (production batches started and steered from the HMI) and `SpaceOperations` (one-button
  antechamber operations) live as long as the controller: each refuses to start while the other runs,
  and on the way out both stop safe while the controller can still command the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

import uvicorn
from fastapi import FastAPI

from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.api.live_feed import LiveFeed, TelemetryHistory
from controller.api.trend_history import TrendHistory, sample_line
from controller.api.views import alarm_record_view, command_view, state_view
from controller.config.line_config import LineConfig
from controller.errors import ControllerError, UserError
from controller.historian.recorder import Recorder
from controller.historian.store import Historian
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition, AlarmRecord, UnknownAlarm
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.poller import (
    PollerFailure,
    PollEvent,
    PollPlan,
    Sample,
    Subscription,
    SubscriptionClosed,
)
from controller.mqtt.bridge import MqttBridge
from controller.service.systemd_notify import SystemdNotifier
from controller.users.auth import DEFAULT_TTL_S, TokenStore
from controller.users.login_throttle import LoginThrottle
from sequences.batch_host import BatchHost
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.space_operations import SpaceOperations

log = logging.getLogger(__name__)

SUBSCRIBER: Final = "api"
PUMP_WAKE_S: Final = 1.0
HEALTH_CHECK_S: Final = 1.0
HTTP_START_TIMEOUT_S: Final = 10.0
HTTP_STOP_TIMEOUT_S: Final = 10.0
WS_MAX_MESSAGE_BYTES: Final = 64 * 1024  # a live client sends only its token (uvicorn would take 16 MiB)


class ServiceError(ControllerError):
    """The HTTP server could not start or died: the controller is running but nobody can see it."""


class ControllerService:
    """The API's live parts around a `LineController` the caller starts and stops."""

    def __init__(
        self,
        controller: LineController,
        *,
        historian: Historian | None = None,
        desk: OperatorDesk | None = None,
        batches: BatchHost | None = None,
        operations: SpaceOperations | None = None,
        trends: TrendHistory | None = None,
        token_ttl_s: float = DEFAULT_TTL_S,
        state_interval_s: float = 0.5,
        telemetry_interval_s: float = 0.5,
        history_points: int = 2400,
        client_queue: int = 256,
        max_clients: int = 32,
        login_throttle: LoginThrottle | None = None,
    ) -> None:
        if not (state_interval_s > 0 and telemetry_interval_s > 0):
            raise ValueError("state_interval_s and telemetry_interval_s must be > 0 s")
        self.controller = controller
        self.tokens = TokenStore(ttl_s=token_ttl_s)
        self.history = TelemetryHistory(points_per_channel=history_points)
        self.feed = LiveFeed(client_queue=client_queue, max_clients=max_clients)
        self.context = ApiContext(
            controller, self.tokens, self.history, self.feed, historian, desk, batches=batches
        )
        self.context.operations = operations
        if login_throttle is not None:
            self.context.login_throttle = login_throttle
        self.trends = trends if trends is not None else TrendHistory()
        self.context.trends = self.trends
        self.app: FastAPI = create_app(self.context)
        self.state_interval_s = state_interval_s
        self.telemetry_interval_s = telemetry_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe_alarms: Callable[[], None] | None = None
        self._running = False
        controller.gate.subscribe(self._on_command)  # the gate has no unsubscribe: `_running` gates it

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("service already started")
        subscription = self.controller.poller.subscribe(SUBSCRIBER, maxsize=10_000)
        self._unsubscribe_alarms = self.controller.alarms.subscribe(self._on_alarm)
        self._running = True
        self._tasks = [
            asyncio.create_task(self._pump(subscription), name="api-telemetry"),
            asyncio.create_task(self._tick(), name="api-live-ticker"),
            asyncio.create_task(sample_line(self.trends, self.controller), name="trend-sampler"),
        ]

    async def stop(self) -> None:
        self._running = False
        self.feed.close()  # WebSocket senders end and close their sockets
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.controller.poller.unsubscribe(SUBSCRIBER)
        if self._unsubscribe_alarms is not None:
            self._unsubscribe_alarms()
            self._unsubscribe_alarms = None

    async def __aenter__(self) -> ControllerService:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- record fan-out (called synchronously by the gate and the alarm board) ----------------------

    def _on_command(self, record: GateRecord) -> None:
        if self._running:
            self.feed.publish("command", command_view(record))

    def _on_alarm(self, record: AlarmRecord) -> None:
        if self._running:
            self.feed.publish("alarm", alarm_record_view(record))

    # -- tasks ---------------------------------------------------------------------------------------

    async def _pump(self, subscription: Subscription) -> None:
        """Samples into the ring buffer and the feed's coalescing table; faults are the alarms' business."""
        while True:
            try:
                event: PollEvent | None = await subscription.get(PUMP_WAKE_S)
            except TimeoutError:
                continue
            except SubscriptionClosed:
                return
            while event is not None:
                if isinstance(event, Sample):
                    self.history.add(event.device, event.channel, event.reading)
                    self.feed.offer_sample(event.device, event.channel, event.reading)
                event = subscription.get_nowait()

    async def _tick(self) -> None:
        """State snapshots and telemetry at a bounded rate, built only while somebody watches."""
        next_state = next_telemetry = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, min(next_state, next_telemetry) - time.monotonic()))
            now = time.monotonic()
            try:
                if now >= next_state:
                    next_state = now + self.state_interval_s
                    if self.feed.clients:
                        self.feed.publish("state", state_view(self.controller))
                if now >= next_telemetry:
                    next_telemetry = now + self.telemetry_interval_s
                    self.feed.flush_telemetry(now)
            except Exception:  # a bug in a view must be loud, but must not end the live feed
                log.exception("live feed tick failed")


# =====================================================================================================
# HTTP


class PortInUse(UserError):
    """The API's port is taken (another controller, or another program)."""


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket for the API, bound now so a busy port fails before anything starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        return socket.create_server(address[:2], family=family)
    except OSError as exc:
        error = PortInUse if exc.errno == errno.EADDRINUSE else UserError
        raise error(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from None


def url_of(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the service owns SIGINT/SIGTERM (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """uvicorn serving `app` on an already bound `listener`, in the running event loop."""

    def __init__(self, app: FastAPI, listener: socket.socket, *, graceful_s: int = 3) -> None:
        self.listener = listener
        self.url = url_of(listener)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # the process's logging stays as the CLI set it up
            access_log=False,
            timeout_graceful_shutdown=graceful_s,
            ws_max_size=WS_MAX_MESSAGE_BYTES,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    async def start(self, timeout_s: float = HTTP_START_TIMEOUT_S) -> None:
        task = self._task = asyncio.create_task(self._serve(), name="http-server")
        deadline = time.monotonic() + timeout_s
        try:
            while not self._server.started:
                if task.done():
                    await task  # raises why it ended
                    raise ServiceError(f"HTTP server on {self.url} ended during start-up")
                if time.monotonic() > deadline:
                    raise ServiceError(f"HTTP server on {self.url} did not start within {timeout_s:g} s")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()  # `async with` will not call __aexit__ for us: the task and socket go here
            raise

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self.listener])
        except SystemExit:  # uvicorn's start-up failure path; a SystemExit in a task would end the loop
            raise ServiceError(f"HTTP server on {self.url} failed to start (see the log)") from None

    def check(self) -> None:
        """Raise if the server ended on its own (it only ends when asked)."""
        if self._task is not None and self._task.done() and not self._server.should_exit:
            exc = self._task.exception() if not self._task.cancelled() else None
            raise ServiceError(f"HTTP server on {self.url} stopped: {exc!r}")

    async def stop(self, timeout_s: float = HTTP_STOP_TIMEOUT_S) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            done, _ = await asyncio.wait([task], timeout=timeout_s)
            if not done:
                log.error("HTTP server did not stop in time; cancelling it", extra={"url": self.url})
                self._server.force_exit = True
                task.cancel()
                await asyncio.wait([task], timeout=timeout_s)
            elif not task.cancelled() and task.exception() is not None:
                log.error("HTTP server had failed", exc_info=task.exception())
        self.listener.close()

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


# =====================================================================================================
# the whole service


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (a clean shutdown, exit 0) while the block runs."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def serve_line(
    config: LineConfig,
    listener: socket.socket,
    stop: asyncio.Event,
    *,
    announce: Callable[[str], None],
    plan: PollPlan | None = None,
    clock: PlantClock | None = None,
) -> None:
    """Run the controller for `config` and serve its API on `listener` until `stop` is set.

    `announce(url)` is called once, when both the controller and the HTTP server are up. The listener is
    closed on the way out whatever happens. Production batches are started from the HMI; their glove-work
    prompts are answered there; `clock` converts recipe (plant) seconds for a simulated line.
    """
    clock = clock or PlantClock(1.0)
    desk = OperatorDesk(clock=clock)
    notifier = SystemdNotifier()  # inert unless systemd started us (Type=notify, WatchdogSec)
    watchdog = asyncio.create_task(notifier.keep_watchdog(), name="systemd-watchdog")  # start-up and stop too
    try:
        spill_dir = await asyncio.to_thread(prepare_data_dirs, config)
        ctl = LineController(config, plan=plan)  # builds drivers only; nothing is opened or polled yet
        async with (
            _Recording(ctl, config, spill_dir) as recorder,  # restores the inventory: before anything runs
            ctl,
            MqttBridge(config, ctl, archive=recorder.historian, on_health=_mqtt_alarm(ctl)),
            BatchHost(
                ctl,
                config.database.url,
                clock=clock,
                desk=desk,
                queue_folders=_queue_folders(config),
                durable=recorder.historian.flush,
            ) as batches,
            # cancelled and made safe on the way out, while the controller still runs
            contextlib.aclosing(SpaceOperations(ctl, clock, busy=batches.busy)) as operations,
            ControllerService(
                ctl, historian=recorder.historian, desk=desk, batches=batches, operations=operations
            ) as service,
            HttpServer(service.app, listener) as http,
        ):
            batches.blocked_by = operations.running_reason  # each side refuses while the other runs
            freeze_startup_objects()
            announce(http.url)
            log.info("serving", extra={"url": http.url, "line": config.name})
            await _watch(ctl, http, stop, notifier)
            notifier.stopping()
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        listener.close()


def freeze_startup_objects() -> None:
    """Take everything built at start-up (drivers, codecs, FastAPI's routes and models, the config) out of
    the collector's reach. Without it, a full (generation 2) collection walked all of it every few tens of
    seconds under a busy feed and held the event loop — the poller and the interlocks with it — for
    ~120-150 ms (bench.hmi_feed, 32 clients); with it the longest collection measured was 2 ms. Objects
    made later are collected as usual. Called once, when the controller is up."""
    gc.collect()
    gc.freeze()


def _queue_folders(config: LineConfig) -> tuple[Path, ...]:
    return (Path(config.sequence.queue_dir),) if config.sequence.queue_dir else ()


def prepare_data_dirs(config: LineConfig) -> Path:
    """Directories the historian needs (SQLite does not create its own); returns the spill directory."""
    url = config.database.url
    base = Path("data")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        base = Path(url.removeprefix("sqlite:///")).parent
    spill = base / f"spill-{config.name}"
    spill.mkdir(parents=True, exist_ok=True)
    return spill


class _Recording:
    """The recorder as an async context manager; a run that ends by exception is marked incomplete."""

    def __init__(self, ctl: LineController, config: LineConfig, spill_dir: Path) -> None:
        self.recorder = Recorder(ctl, url=config.database.url, spill_dir=spill_dir)

    async def __aenter__(self) -> Recorder:
        await self.recorder.start()
        return self.recorder

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.recorder.stop("complete" if exc_type is None else "incomplete")


def _mqtt_alarm(ctl: LineController) -> Callable[[bool, str], None]:
    def on_health(ok: bool, detail: str) -> None:
        alarm_id = "mqtt.broker"
        if ok:
            with contextlib.suppress(UnknownAlarm):
                ctl.alarms.clear(alarm_id, time.time())
            return
        ctl.alarms.define(
            AlarmDefinition(
                alarm_id,
                Severity.MEDIUM,
                "MQTT broker unreachable: the plant sees no telemetry",
                "Control goes on; messages are buffered and published when the broker is back.",
            )
        )
        ctl.alarms.raise_alarm(alarm_id, time.time(), {"text": detail})

    return on_health


async def _watch(
    ctl: LineController, http: HttpServer, stop: asyncio.Event, notifier: SystemdNotifier
) -> None:
    """Wait for `stop`; meanwhile report (once per change) an acquisition that keeps crashing, and tell
    systemd the service is ready once every device has answered or is faulted (the first complete poll)."""
    reported = ""
    while not stop.is_set():
        if not notifier.ready_sent and ctl.supervisor.ready():
            notifier.ready(f"line {ctl.config.name!r}: every device polled once; serving {http.url}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_CHECK_S)
        http.check()
        try:
            ctl.poller.check()
            problem = ""
        except PollerFailure as exc:
            problem = str(exc)
        if problem != reported:
            if problem:
                log.error("acquisition failing", extra={"problem": problem})
            else:
                log.info("acquisition recovered")
            reported = problem
