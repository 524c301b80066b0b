"""Acquisition: every channel of every device, polled link by link, into one fanned-out stream.

Why it is shaped this way:

- **One task per link.** A link (a serial line, an RS-485 bus, a TCP connection) carries one request
  at a time whatever the number of devices on it, so the devices of one link are polled one after the
  other by that link's task; different links run concurrently. A dead link costs its own task time,
  never another link's.
- **Priorities inside a link.** Interlock-relevant devices (pressure, dew point, glovebox atmosphere,
  remote I/O inputs, turbo) are polled every cycle; process devices (heaters, MFC, QCM, sources) only
  when their longer period is due, and interlock devices get another turn between two process devices
  whenever they fall due again. A slow process device therefore delays interlock channels by at most
  one poll of its own, and every poll is bounded by `PollPlan.poll_timeout_s`. The class of a device
  comes from its family (`FAMILY_PRIORITY`, one table), overridable per device.
- **Staleness is computed when a value is read, not when it is written.** The latest-value table keeps
  what the driver returned (timestamped by the driver at decode time); `latest()` and `snapshot()`
  age it against `Limits.stale_after_s` on the monotonic clock, so a dead link shows STALE although
  nobody writes anything (DESIGN.md §4.7: stale is unknown, and unknown is never in spec).
- **Comms faults are values.** A `DriverError` from a poll is recorded in the device's health and
  published as `DeviceFault`; the device's old values just age to stale. The first good poll after
  that publishes `DeviceRecovered`. The alarm layer turns these into "comms lost" alarms.
- **Fan-out never blocks acquisition** (STYLE.md point 7). Each subscriber owns a bounded queue;
  publishing is synchronous and, when a queue is full, drops that queue's *oldest* item and counts it.
  A subscriber that falls behind loses history, never stalls the poller. Health is also readable from
  `Poller.health()`, so a `DeviceFault` lost to an overflowing queue can still be recovered.
- **Bugs surface.** Anything other than a `DriverError` escaping a poll is a bug: the link's task
  logs it with its traceback, records it in `Poller.failures`, and restarts after a back-off; `check()`
  raises while a link keeps crashing, so a supervisor (the CLI, a health endpoint) can report it.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, TracebackType
from typing import Final

from controller.config.line_config import LineConfig
from controller.errors import ControllerError
from controller.line.devices import Driver, LineDevices
from drivers.errors import DeviceTimeout, DriverError
from drivers.reading import Reading

log = logging.getLogger(__name__)


class Priority(enum.StrEnum):
    """How urgently a device's channels must be fresh."""

    INTERLOCK = "interlock"
    PROCESS = "process"


# Interlock inputs (DESIGN.md §4): pressures, dew points, glovebox atmosphere, door/valve positions and
# the turbo. Process readbacks are watched by the recipe, which tolerates a second of age.
FAMILY_PRIORITY: Final[Mapping[str, Priority]] = MappingProxyType(
    {
        "tpg36x": Priority.INTERLOCK,
        "pfeiffer_turbo": Priority.INTERLOCK,
        "dewpoint_transmitter": Priority.INTERLOCK,
        "glovebox_controller": Priority.INTERLOCK,
        "remote_io": Priority.INTERLOCK,
        "temperature_controller": Priority.PROCESS,
        "mass_flow_controller": Priority.PROCESS,
        "thickness_monitor": Priority.PROCESS,
        "deposition_sources": Priority.PROCESS,
    }
)

DEFAULT_PERIODS_S: Final[Mapping[Priority, float]] = MappingProxyType(
    {Priority.INTERLOCK: 0.25, Priority.PROCESS: 1.0}
)


class PollerFailure(ControllerError):
    """An acquisition task keeps crashing: its link is not being polled, whatever the values say."""


class SubscriptionClosed(ControllerError):
    """The subscription was cancelled or the poller stopped, and no event is left in its queue."""


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollPlan:
    """Which devices are interlock-relevant, how often each class is polled, and the poll guards.

    `poll_timeout_s` bounds one whole `poll()` above the drivers' own per-request timeouts (a driver
    that loops over many requests can otherwise hold its link for their sum). `failing_retry_s` is how
    often a device that keeps failing is retried, so a dead device on a shared bus does not spend a
    reply timeout of bus time every cycle. `fault_after_failures` consecutive failures publish a
    `DeviceFault` (1: at once; debouncing is the alarm layer's business).
    """

    priorities: Mapping[str, Priority]
    periods_s: Mapping[Priority, float] = field(default_factory=lambda: dict(DEFAULT_PERIODS_S))
    poll_timeout_s: float = 2.0
    failing_retry_s: float = 1.0
    fault_after_failures: int = 1

    def __post_init__(self) -> None:
        for priority in Priority:
            period = self.periods_s.get(priority)
            if period is None or not period > 0:
                raise ValueError(f"poll period of {priority.value!r} devices must be > 0 s, got {period!r}")
        if not self.poll_timeout_s > 0 or not self.failing_retry_s > 0:
            raise ValueError("poll_timeout_s and failing_retry_s must be > 0 s")
        if self.fault_after_failures < 1:
            raise ValueError("fault_after_failures must be >= 1")

    @classmethod
    def for_line(
        cls,
        config: LineConfig,
        *,
        periods_s: Mapping[Priority, float] | None = None,
        overrides: Mapping[str, Priority] | None = None,
        poll_timeout_s: float = 2.0,
        failing_retry_s: float = 1.0,
        fault_after_failures: int = 1,
    ) -> PollPlan:
        """The plan the device families imply; `overrides` moves single devices to another class."""
        names = {d.name for d in config.devices}
        unknown = sorted(set(overrides or {}) - names)
        if unknown:
            raise ValueError(f"poll priority given for unknown devices: {', '.join(unknown)}")
        missing = sorted({d.family for d in config.devices} - set(FAMILY_PRIORITY))
        if missing:
            raise ValueError(f"no poll priority for device families: {', '.join(missing)}")
        priorities = {d.name: FAMILY_PRIORITY[d.family] for d in config.devices}
        priorities.update({name: Priority(p) for name, p in (overrides or {}).items()})
        return cls(
            priorities=priorities,
            periods_s={**DEFAULT_PERIODS_S, **(periods_s or {})},
            poll_timeout_s=poll_timeout_s,
            failing_retry_s=failing_retry_s,
            fault_after_failures=fault_after_failures,
        )

    def priority(self, device: str) -> Priority:
        return self.priorities[device]

    def period_s(self, device: str) -> float:
        return self.periods_s[self.priorities[device]]


# -- what subscribers receive ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One acquired channel, keyed as the driver returns it (``pressure_ch1``, ``frost_point`` ...)."""

    device: str
    channel: str
    reading: Reading


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """A device stopped answering properly.

    `error_type` is the exception's class name: a driver error (``DeviceTimeout``, ``LinkDown``,
    ``ProtocolError``, ``DeviceRefused`` ...) for a comms fault, anything else for a bug in its driver.
    """

    device: str
    error_type: str
    text: str
    ts: float


@dataclass(frozen=True, slots=True)
class DeviceRecovered:
    """A faulted device answered a whole poll again."""

    device: str
    ts: float


PollEvent = Sample | DeviceFault | DeviceRecovered


class Subscription:
    """One subscriber's bounded queue: the poller offers without waiting, the subscriber drains it.

    Iterating (`async for event in subscription`) ends when the subscription is closed (unsubscribed
    or the poller stopped) and drained; `get(timeout_s)` is the bounded alternative.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"subscription {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self.offered = 0
        self._items: collections.deque[PollEvent] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: PollEvent) -> None:
        """Queue `event` now; a full queue loses its oldest item rather than make the poller wait."""
        if self._closed:
            return
        self.offered += 1
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
            if self.dropped == 1:
                log.warning(
                    "subscriber falls behind; dropping its oldest events",
                    extra={"subscriber": self.name, "maxsize": self.maxsize},
                )
        self._items.append(event)
        self._ready.set()

    def get_nowait(self) -> PollEvent | None:
        return self._items.popleft() if self._items else None

    async def get(self, timeout_s: float) -> PollEvent:
        """The oldest queued event; `TimeoutError` if none comes within `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            return await self._next()

    async def _next(self) -> PollEvent:
        while not self._items:
            if self._closed:
                raise SubscriptionClosed(f"subscription {self.name!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[PollEvent]:
        return self

    async def __anext__(self) -> PollEvent:
        try:
            return await self._next()
        except SubscriptionClosed:
            raise StopAsyncIteration from None


# -- health and statistics -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Communication health of one device.

    `consecutive_failures` and `faulted` reset on the first good poll; the `last_error_*` fields are
    kept as history for the engineer. Times are wall-clock epoch seconds, `None` until it happened.
    """

    device: str
    link: str
    consecutive_failures: int = 0
    failures_total: int = 0
    faulted: bool = False
    last_error_type: str = ""
    last_error: str = ""
    last_error_ts: float | None = None
    last_success_ts: float | None = None


@dataclass(slots=True)
class LinkPollStats:
    """Counters of one link's acquisition task."""

    link: str
    cycles: int = 0
    polls: dict[str, int] = field(default_factory=dict)
    failed_polls: dict[str, int] = field(default_factory=dict)
    last_cycle_s: float = 0.0
    crashes: int = 0
    recent_crashes: int = 0


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """An acquisition task crashed on an unexpected exception (a bug): what and where."""

    link: str
    error_type: str
    text: str
    traceback: str
    ts: float


@dataclass(slots=True)
class _DeviceRun:
    name: str
    driver: Driver
    priority: Priority
    next_due_mono: float = 0.0


@dataclass(slots=True)
class _LinkRun:
    name: str
    interlock: list[_DeviceRun]
    process: list[_DeviceRun]
    stats: LinkPollStats
    crash_mono: collections.deque[float] = field(default_factory=collections.deque)
    task: asyncio.Task[None] | None = None

    @property
    def devices(self) -> list[_DeviceRun]:
        return [*self.interlock, *self.process]


# -- the poller ------------------------------------------------------------------------------------


class Poller:
    """Acquires every configured device and fans the results out; see the module docstring."""

    def __init__(
        self,
        config: LineConfig,
        devices: LineDevices,
        *,
        plan: PollPlan | None = None,
        restart_backoff_s: float = 0.5,
        restart_backoff_max_s: float = 10.0,
        crash_limit: int = 3,
        crash_window_s: float = 60.0,
        failure_history: int = 100,
    ) -> None:
        self.plan = plan if plan is not None else PollPlan.for_line(config)
        self.stale_after_s = config.limits.stale_after_s
        self.failures: collections.deque[TaskFailure] = collections.deque(maxlen=failure_history)
        self._restart_backoff_s = restart_backoff_s
        self._restart_backoff_max_s = restart_backoff_max_s
        self._crash_limit = crash_limit
        self._crash_window_s = crash_window_s
        self._latest: dict[tuple[str, str], Reading] = {}
        self._health: dict[str, DeviceHealth] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._runs: dict[str, _LinkRun] = {}
        self._running = False
        for device in config.devices:
            if device.name not in devices.drivers:
                raise ValueError(f"device {device.name!r} is configured but has no driver")
            if device.name not in self.plan.priorities:
                raise ValueError(f"device {device.name!r} has no poll priority in the plan")
            run = self._runs.get(device.link)
            if run is None:
                run = self._runs[device.link] = _LinkRun(device.link, [], [], LinkPollStats(device.link))
            entry = _DeviceRun(device.name, devices.drivers[device.name], self.plan.priority(device.name))
            (run.interlock if entry.priority is Priority.INTERLOCK else run.process).append(entry)
            run.stats.polls[device.name] = 0
            run.stats.failed_polls[device.name] = 0
            self._health[device.name] = DeviceHealth(device.name, device.link)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("poller already started")
        self._running = True
        for run in self._runs.values():
            run.task = asyncio.create_task(self._supervise(run), name=f"poller:{run.name}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel every acquisition task and close every subscription (their iterators end)."""
        self._running = False
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                log.error("acquisition task ignored cancellation", extra={"task": task.get_name()})
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("acquisition task had ended", exc_info=task.exception())
        for run in self._runs.values():
            run.task = None
        for subscription in self._subscriptions.values():
            subscription.close()

    async def __aenter__(self) -> Poller:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def check(self) -> None:
        """Raise `PollerFailure` while any link's task keeps crashing or is gone; else return.

        "Keeps crashing" is `crash_limit` crashes within `crash_window_s`, counted in time rather than
        in a row, so that a bug in a device polled only every few cycles is caught too.
        """
        for run in self._runs.values():
            recent = self._recent_crashes(run)
            if recent >= self._crash_limit:
                last = next((f for f in reversed(self.failures) if f.link == run.name), None)
                cause = f": {last.error_type}: {last.text}" if last else ""
                raise PollerFailure(
                    f"link {run.name!r}: acquisition crashed {recent} times "
                    f"in {self._crash_window_s:g} s{cause}"
                )
            if self._running and (run.task is None or run.task.done()):
                raise PollerFailure(f"link {run.name!r}: acquisition task is not running")

    # -- reading the results -------------------------------------------------------------------------

    def latest(self, device: str, channel: str, *, now_mono: float | None = None) -> Reading | None:
        """The last value of a channel, marked STALE if older than `stale_after_s`; None if never read."""
        reading = self._latest.get((device, channel))
        return None if reading is None else reading.aged(self.stale_after_s, now_mono)

    def snapshot(self, *, now_mono: float | None = None) -> dict[tuple[str, str], Reading]:
        """Every channel's last value, aged against one instant."""
        now = time.monotonic() if now_mono is None else now_mono
        return {key: r.aged(self.stale_after_s, now) for key, r in self._latest.items()}

    def health(self) -> dict[str, DeviceHealth]:
        return dict(self._health)

    def device_health(self, device: str) -> DeviceHealth:
        return self._health[device]

    def stats(self) -> dict[str, LinkPollStats]:
        """A copy of every link's counters."""
        return {
            name: replace(
                run.stats,
                polls=dict(run.stats.polls),
                failed_polls=dict(run.stats.failed_polls),
                recent_crashes=self._recent_crashes(run),
            )
            for name, run in self._runs.items()
        }

    def _recent_crashes(self, run: _LinkRun) -> int:
        horizon = time.monotonic() - self._crash_window_s
        while run.crash_mono and run.crash_mono[0] < horizon:
            run.crash_mono.popleft()
        return len(run.crash_mono)

    def polls(self, device: str) -> int:
        """How many polls of `device` were started (failed ones included)."""
        for run in self._runs.values():
            if device in run.stats.polls:
                return run.stats.polls[device]
        raise KeyError(f"no polled device {device!r}")

    # -- fan-out ------------------------------------------------------------------------------------

    def subscribe(self, name: str, maxsize: int = 1000) -> Subscription:
        if name in self._subscriptions:
            raise ValueError(f"a subscriber named {name!r} already exists")
        subscription = self._subscriptions[name] = Subscription(name, maxsize)
        return subscription

    def unsubscribe(self, subscription: Subscription | str) -> None:
        name = subscription if isinstance(subscription, str) else subscription.name
        removed = self._subscriptions.pop(name, None)
        if removed is not None:
            removed.close()

    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subscriptions)

    def _publish(self, event: PollEvent) -> None:
        for subscription in self._subscriptions.values():
            subscription.offer(event)

    # -- acquisition --------------------------------------------------------------------------------

    async def _supervise(self, run: _LinkRun) -> None:
        """Keep the link's acquisition alive across bugs, with a growing back-off between restarts."""
        while True:
            try:
                await self._acquire(run)
            except Exception as exc:  # a bug: DriverErrors never get here
                run.stats.crashes += 1
                run.crash_mono.append(time.monotonic())
                recent = self._recent_crashes(run)
                self.failures.append(
                    TaskFailure(run.name, type(exc).__name__, str(exc), traceback.format_exc(), time.time())
                )
                backoff_s = min(self._restart_backoff_s * 2 ** (recent - 1), self._restart_backoff_max_s)
                log.exception(
                    "acquisition task crashed; restarting",
                    extra={"link": run.name, "recent_crashes": recent, "backoff_s": backoff_s},
                )
                await asyncio.sleep(backoff_s)

    async def _acquire(self, run: _LinkRun) -> None:
        while True:
            started = time.monotonic()
            await self._cycle(run)
            run.stats.cycles += 1
            run.stats.last_cycle_s = time.monotonic() - started
            next_due = min(d.next_due_mono for d in run.devices)
            await asyncio.sleep(max(0.0, next_due - time.monotonic()))

    async def _cycle(self, run: _LinkRun) -> None:
        """Due interlock devices first, and again before each due process device if they fell due."""
        await self._poll_due_interlock(run)
        for device in run.process:
            if device.next_due_mono <= time.monotonic():
                await self._poll_due_interlock(run)
                await self._poll(run, device)

    async def _poll_due_interlock(self, run: _LinkRun) -> None:
        for device in run.interlock:
            if device.next_due_mono <= time.monotonic():
                await self._poll(run, device)

    async def _poll(self, run: _LinkRun, device: _DeviceRun) -> None:
        started = time.monotonic()
        run.stats.polls[device.name] += 1
        guard = asyncio.timeout(self.plan.poll_timeout_s)
        try:
            async with guard:
                readings = await device.driver.poll()
        except DriverError as exc:
            self._failed(run, device, exc, started)
        except TimeoutError as exc:
            if not guard.expired():
                self._failed(run, device, exc, started)
                raise  # a bare TimeoutError from inside a driver is a bug, not a device fault
            guarded = DeviceTimeout(f"{device.name}: poll took more than {self.plan.poll_timeout_s:.3g} s")
            self._failed(run, device, guarded, started)
        except Exception as exc:
            self._failed(run, device, exc, started)
            raise
        else:
            self._succeeded(device, readings, started)

    def _succeeded(self, device: _DeviceRun, readings: dict[str, Reading], started: float) -> None:
        device.next_due_mono = started + self.plan.period_s(device.name)
        health = self._health[device.name]
        if health.faulted:
            self._publish(DeviceRecovered(device.name, time.time()))
            log.info("device answers again", extra={"device": device.name, "link": health.link})
        self._health[device.name] = replace(
            health, consecutive_failures=0, faulted=False, last_success_ts=time.time()
        )
        for channel, reading in readings.items():
            self._latest[(device.name, channel)] = reading
            self._publish(Sample(device.name, channel, reading))

    def _failed(self, run: _LinkRun, device: _DeviceRun, exc: Exception, started: float) -> None:
        retry_s = max(self.plan.period_s(device.name), self.plan.failing_retry_s)
        device.next_due_mono = started + retry_s
        run.stats.failed_polls[device.name] += 1
        now = time.time()
        health = self._health[device.name]
        health = replace(
            health,
            consecutive_failures=health.consecutive_failures + 1,
            failures_total=health.failures_total + 1,
            last_error_type=type(exc).__name__,
            last_error=str(exc),
            last_error_ts=now,
        )
        if not health.faulted and health.consecutive_failures >= self.plan.fault_after_failures:
            health = replace(health, faulted=True)
            self._publish(DeviceFault(device.name, type(exc).__name__, str(exc), now))
            log.warning(
                "device not answering",
                extra={
                    "device": device.name,
                    "link": run.name,
                    "error_type": type(exc).__name__,
                    "error": str(exc),
                },
            )
        self._health[device.name] = health
