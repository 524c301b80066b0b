"""Everything the line does, on record: samples, commands, alarms, the exposure ledger and the run.

The recorder connects a running `LineController` to the `Historian`: a poller subscription for the
samples, subscriptions on the gate, the alarm board and the ledger for the rest, and one run record
(with the configuration's text) from start to stop. The historian never blocks these callers; when it
is unhealthy the recorder raises an alarm, and clears it when it recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from controller.alarms import AlarmDefinition, Severity, UnknownAlarm
from controller.historian import Historian
from controller.line_controller import LineController
from controller.poller import Sample, Subscription

log = logging.getLogger(__name__)
SUBSCRIBER = "historian"
ALARM_ID = "historian.health"


class Recorder:
    def __init__(
        self, controller: LineController, *, url: str, spill_dir: Path, user: str = "service"
    ) -> None:
        self.controller = controller
        self.user = user
        self.historian = Historian(url, spill_dir=spill_dir, on_health=self._on_health)
        self.run_id: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe_alarms: object = None

    async def start(self) -> None:
        ctl = self.controller
        await self.historian.start()
        self.run_id = self.historian.start_run(ctl.config.text, self.user)
        subscription = ctl.poller.subscribe(SUBSCRIBER, maxsize=50_000)
        self._task = asyncio.create_task(self._pump(subscription), name="recorder-samples")
        ctl.gate.subscribe(self.historian.record_command)
        self._unsubscribe_alarms = ctl.alarms.subscribe(self.historian.record_alarm)
        ctl.ledger.subscribers.append(self.historian.record_ledger)

    async def stop(self, status: str = "complete") -> None:
        ctl = self.controller
        ctl.gate.unsubscribe(self.historian.record_command)
        if callable(self._unsubscribe_alarms):
            self._unsubscribe_alarms()
        with contextlib.suppress(ValueError):
            ctl.ledger.subscribers.remove(self.historian.record_ledger)
        ctl.poller.unsubscribe(SUBSCRIBER)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.run_id is not None:
            self.historian.end_run(self.run_id, status)
        await self.historian.stop()

    async def _pump(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, Sample):
                self.historian.record_sample(event)

    def _on_health(self, healthy: bool, detail: str) -> None:
        alarms = self.controller.alarms
        if healthy:
            with contextlib.suppress(UnknownAlarm):
                alarms.clear(ALARM_ID, time.time())
            return
        alarms.define(
            AlarmDefinition(
                ALARM_ID,
                Severity.HIGH,
                "historian degraded: records are buffered, not yet in the database",
                "Check the database server and disk; nothing is lost while the buffer and spill files hold.",
            )
        )
        alarms.raise_alarm(ALARM_ID, time.time(), {"text": detail})
