"""The poller against the real simulated line: freshness, staleness, comms faults, fan-out, supervision.

Every device is reached over its real endpoint (pty or TCP). The only stand-ins are two fault-injecting
wrappers around real drivers (a poll that raises a bug, a poll that hangs): the simulator cannot make
our own code misbehave, and those are exactly the cases supervision and the poll guard exist for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest

from controller.config.line_config import FAMILIES, LineConfig, load_line_config
from controller.line.devices import Driver, LineDevices, build_line_devices
from controller.line.poller import (
    FAMILY_PRIORITY,
    DeviceFault,
    DeviceRecovered,
    Poller,
    PollerFailure,
    PollEvent,
    PollPlan,
    Priority,
    Sample,
    Subscription,
    SubscriptionClosed,
)
from drivers.reading import Quality, Reading
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine

STALE_AFTER_S = 1.0


@dataclass
class Line:
    sim: SimLine
    config: LineConfig
    devices: LineDevices


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    async with SimLine(load_line_config(), speed=50.0) as sim:
        simulated = sim.simulated_config()
        config = replace(simulated, limits=replace(simulated.limits, stale_after_s=STALE_AFTER_S))
        devices = build_line_devices(config, modbus_timeout_s=0.2)
        try:
            yield Line(sim, config, devices)
        finally:
            await devices.close()


def fast_plan(
    config: LineConfig,
    *,
    poll_timeout_s: float = 1.0,
    failing_retry_s: float = 0.3,
    overrides: dict[str, Priority] | None = None,
) -> PollPlan:
    """Short periods so a test sees many cycles in little time; process devices ten times slower."""
    return PollPlan.for_line(
        config,
        periods_s={Priority.INTERLOCK: 0.05, Priority.PROCESS: 0.5},
        overrides=overrides,
        poll_timeout_s=poll_timeout_s,
        failing_retry_s=failing_retry_s,
    )


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def next_event(
    sub: Subscription, match: Callable[[PollEvent], bool], timeout_s: float = 5.0
) -> PollEvent:
    """Drain `sub` until an event matches; the other events are not what the test is about."""
    async with asyncio.timeout(timeout_s):
        while True:
            event = await sub.get(timeout_s)
            if match(event):
                return event


def fresh(reading: Reading | None) -> bool:
    return reading is not None and reading.quality is not Quality.STALE


# -- the plan --------------------------------------------------------------------------------------


def test_every_family_has_a_priority_and_the_standard_line_splits_as_intended() -> None:
    assert set(FAMILY_PRIORITY) == set(FAMILIES)
    plan = PollPlan.for_line(load_line_config())
    interlock = {"antechamber_gauges", "process_gauges", "turbo", "inlet_dewpoint", "outlet_dewpoint"}
    interlock |= {"inlet_glovebox", "outlet_glovebox", "remote_io"}
    assert {d for d, p in plan.priorities.items() if p is Priority.INTERLOCK} == interlock
    assert plan.priority("substrate_heater") is Priority.PROCESS
    assert plan.period_s("inlet_dewpoint") == 0.25
    assert plan.period_s("qcm") == 1.0


def test_plan_overrides_and_rejects_nonsense() -> None:
    config = load_line_config()
    plan = PollPlan.for_line(
        config, periods_s={Priority.PROCESS: 2.0}, overrides={"substrate_heater": Priority.INTERLOCK}
    )
    assert plan.priority("substrate_heater") is Priority.INTERLOCK
    assert plan.period_s("qcm") == 2.0
    assert plan.period_s("turbo") == 0.25
    with pytest.raises(ValueError, match="unknown devices: toaster"):
        PollPlan.for_line(config, overrides={"toaster": Priority.PROCESS})
    with pytest.raises(ValueError, match="must be > 0"):
        PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.0})


# -- the subscription queue ---------------------------------------------------------------------------


def _sample(i: int) -> Sample:
    return Sample("dev", "ch", Reading.now(float(i), "Pa"))


async def test_full_queue_drops_its_oldest_and_counts() -> None:
    sub = Subscription("slow", maxsize=3)
    for i in range(5):
        sub.offer(_sample(i))
    assert sub.dropped == 2
    assert len(sub) == 3
    first = await sub.get(0.1)
    assert isinstance(first, Sample)
    assert first.reading.value == 2.0
    with pytest.raises(TimeoutError):
        await Subscription("idle", maxsize=1).get(0.01)


async def test_closed_subscription_drains_then_ends() -> None:
    sub = Subscription("s", maxsize=10)
    sub.offer(_sample(1))
    sub.close()
    sub.offer(_sample(2))  # ignored: nobody will read it
    events = [e async for e in sub]
    assert [e.reading.value for e in events if isinstance(e, Sample)] == [1.0]
    assert len(events) == 1
    with pytest.raises(SubscriptionClosed):
        await sub.get(0.1)


# -- the poller on the simulated line ------------------------------------------------------------


async def test_every_channel_of_every_device_appears_fresh(line: Line) -> None:
    expected = {
        (name, channel)
        for name, driver in line.devices.drivers.items()
        for channel in await asyncio.wait_for(driver.poll(), 5.0)
    }
    poller = Poller(line.config, line.devices)  # the default plan
    sub = poller.subscribe("recorder", maxsize=100_000)
    async with poller:
        await eventually(lambda: expected <= set(poller.snapshot()))
        snapshot = poller.snapshot()
        now = time.time()
        for key in expected:
            reading = snapshot[key]
            assert reading.quality is not Quality.STALE, key
            assert now - STALE_AFTER_S <= reading.ts <= now, key
            assert poller.latest(*key) == reading
        assert poller.latest("turbo", "no_such_channel") is None
        poller.check()
        stats = poller.stats()
        assert set(stats) == set(line.config.links)
        assert all(s.cycles >= 1 and s.last_cycle_s > 0 for s in stats.values())
    samples = {
        (e.device, e.channel) for e in [sub.get_nowait() for _ in range(len(sub))] if isinstance(e, Sample)
    }
    assert expected <= samples
    assert all(not h.faulted and h.last_success_ts is not None for h in poller.health().values())


async def test_a_silent_device_goes_stale_alone_then_recovers(line: Line) -> None:
    poller = Poller(line.config, line.devices, plan=fast_plan(line.config))
    events = poller.subscribe("alarms", maxsize=100_000)
    async with poller:
        await eventually(lambda: fresh(poller.latest("inlet_dewpoint", "frost_point")))
        undo = inject(line.sim, Fault("no_reply", device="inlet_dewpoint"))
        try:
            fault = await next_event(
                events, lambda e: isinstance(e, DeviceFault) and e.device == "inlet_dewpoint"
            )
            assert isinstance(fault, DeviceFault)
            assert fault.error_type == "DeviceTimeout"
            await eventually(lambda: not fresh(poller.latest("inlet_dewpoint", "frost_point")))
            # the other transmitter on the same RS-485 bus keeps being read
            assert fresh(poller.latest("outlet_dewpoint", "frost_point"))
            health = poller.device_health("inlet_dewpoint")
            assert health.faulted
            assert health.consecutive_failures >= 1
            assert health.last_error_type == "DeviceTimeout"
            assert not poller.device_health("outlet_dewpoint").faulted
        finally:
            undo()
        await next_event(events, lambda e: isinstance(e, DeviceRecovered) and e.device == "inlet_dewpoint")
        await eventually(lambda: fresh(poller.latest("inlet_dewpoint", "frost_point")))
        health = poller.device_health("inlet_dewpoint")
        assert not health.faulted
        assert health.consecutive_failures == 0
        assert health.failures_total >= 1
        poller.check()  # a comms fault is not a poller failure


def tcp_part(config: LineConfig) -> LineConfig:
    """The devices on TCP links: a TCP endpoint serves every connection, so two pollers can share it."""
    tcp = {name: link for name, link in config.links.items() if link.url.startswith("tcp://")}
    return replace(config, links=tcp, devices=tuple(d for d in config.devices if d.link in tcp))


async def test_a_subscriber_that_never_reads_does_not_slow_acquisition(line: Line) -> None:
    # Two pollers side by side, one with a stuck subscriber and one without, so that machine load
    # hits both alike: the comparison is between poll counts, never against the clock.
    config = tcp_part(line.config)
    burdened_devices = build_line_devices(config)
    alone_devices = build_line_devices(config)
    try:
        burdened = Poller(config, burdened_devices, plan=fast_plan(config))
        alone = Poller(config, alone_devices, plan=fast_plan(config))
        stuck = burdened.subscribe("stuck_hmi", maxsize=10)
        async with burdened, alone:
            await eventually(lambda: stuck.dropped > 0)
            burdened_from, alone_from = burdened.polls("remote_io"), alone.polls("remote_io")
            await eventually(lambda: alone.polls("remote_io") >= alone_from + 20)
            with_subscriber = burdened.polls("remote_io") - burdened_from
            without_subscriber = alone.polls("remote_io") - alone_from
    finally:
        await burdened_devices.close()
        await alone_devices.close()
    assert with_subscriber >= without_subscriber // 2
    assert len(stuck) == 10
    assert stuck.dropped >= with_subscriber  # remote_io alone offers dozens of samples per poll
    assert stuck.offered == stuck.dropped + len(stuck)


async def test_interlock_devices_are_polled_more_often_than_process_devices_on_a_shared_bus(
    line: Line,
) -> None:
    poller = Poller(line.config, line.devices, plan=fast_plan(line.config))
    async with poller:
        await eventually(lambda: poller.polls("substrate_heater") >= 3)
        stats = poller.stats()["rs485_bus"]
    assert stats.polls["inlet_dewpoint"] > 3 * stats.polls["substrate_heater"]
    assert stats.polls["outlet_dewpoint"] > 3 * stats.polls["source_heater"]
    assert stats.failed_polls == dict.fromkeys(stats.failed_polls, 0)


class HangingDriver:
    """A real driver whose poll sometimes never returns (a driver that waits without a timeout)."""

    def __init__(self, inner: Driver) -> None:
        self.name = inner.name
        self.inner = inner
        self.hang = True

    async def poll(self) -> dict[str, Reading]:
        if self.hang:
            await asyncio.sleep(3600)
        return await self.inner.poll()


async def test_the_poll_guard_cuts_a_hanging_poll_and_the_bus_goes_on(line: Line) -> None:
    hanging = HangingDriver(line.devices.drivers["substrate_heater"])
    line.devices.drivers["substrate_heater"] = hanging
    poller = Poller(line.config, line.devices, plan=fast_plan(line.config, poll_timeout_s=0.2))
    events = poller.subscribe("alarms", maxsize=100_000)
    async with poller:
        fault = await next_event(
            events, lambda e: isinstance(e, DeviceFault) and e.device == "substrate_heater"
        )
        assert isinstance(fault, DeviceFault)
        assert fault.error_type == "DeviceTimeout"
        assert "poll took more than" in fault.text
        polled = poller.polls("inlet_dewpoint")
        await eventually(lambda: poller.polls("inlet_dewpoint") > polled + 3)
        assert fresh(poller.latest("inlet_dewpoint", "frost_point"))
        hanging.hang = False
        await next_event(events, lambda e: isinstance(e, DeviceRecovered) and e.device == "substrate_heater")
        assert fresh(poller.latest("substrate_heater", "temperature"))


class BuggyDriver:
    """A real driver with a bug for its first `bugs` polls: not a DriverError, so not a comms fault."""

    def __init__(self, inner: Driver, bugs: int) -> None:
        self.name = inner.name
        self.inner = inner
        self.bugs = bugs

    async def poll(self) -> dict[str, Reading]:
        if self.bugs > 0:
            self.bugs -= 1
            raise RuntimeError("bug in the driver")
        return await self.inner.poll()


async def test_a_crashing_task_is_logged_restarted_and_surfaces_in_check(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = BuggyDriver(line.devices.drivers["qcm"], bugs=3)
    line.devices.drivers["qcm"] = buggy
    poller = Poller(
        line.config,
        line.devices,
        # polled every cycle and retried at once, so that the three crashes come close together
        plan=fast_plan(line.config, failing_retry_s=0.05, overrides={"qcm": Priority.INTERLOCK}),
        restart_backoff_s=0.01,
        crash_limit=3,
        crash_window_s=1.0,
    )
    events = poller.subscribe("alarms", maxsize=100_000)
    async with poller:
        fault = await next_event(events, lambda e: isinstance(e, DeviceFault) and e.device == "qcm")
        assert isinstance(fault, DeviceFault)
        assert fault.error_type == "RuntimeError"
        await eventually(lambda: len(poller.failures) >= 3)
        with pytest.raises(PollerFailure, match=r"'qcm'.*RuntimeError: bug in the driver"):
            poller.check()
        assert all(f.link == "qcm" and "bug in the driver" in f.traceback for f in poller.failures)
        assert "acquisition task crashed" in caplog.text
        # restarted: the bug is gone after three polls, and the device reads again
        await next_event(events, lambda e: isinstance(e, DeviceRecovered) and e.device == "qcm")
        assert fresh(poller.latest("qcm", "frequency"))
        assert poller.stats()["qcm"].crashes == 3
        # other links never noticed
        assert fresh(poller.latest("antechamber_gauges", "pressure_ch1"))
        await eventually(lambda: _passes(poller.check))


def _passes(check: Callable[[], None]) -> bool:
    try:
        check()
    except PollerFailure:
        return False
    return True


async def test_stop_leaves_no_task_and_ends_subscriptions(line: Line) -> None:
    poller = Poller(line.config, line.devices, plan=fast_plan(line.config))
    sub = poller.subscribe("hmi")
    await poller.start()
    with pytest.raises(RuntimeError, match="already started"):
        await poller.start()
    await eventually(lambda: len(sub) > 0)
    received: list[PollEvent] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event)

    consumer = asyncio.create_task(consume())
    await eventually(lambda: len(received) > 0)
    await poller.stop()
    await asyncio.wait_for(consumer, 1.0)  # the iteration ended by itself
    assert not poller.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("poller:")]
    polls = poller.polls("turbo")
    await asyncio.sleep(0.1)
    assert poller.polls("turbo") == polls
    poller.unsubscribe(sub)
    assert poller.subscriptions() == {}
