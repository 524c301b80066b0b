"""Everything the line does, on record: samples, commands, alarms, the exposure ledger and the run.

The recorder connects a `LineController` to the `Historian`: a poller subscription for the samples,
subscriptions on the gate, the alarm board and the ledger for the rest, the model's registration hook
for new items, and one run record (with the configuration's text) from start to stop. The historian
never blocks these callers; when it is unhealthy the recorder raises an alarm, and clears it when it
recovers.

It is also where a restart begins, so it is started *before* the controller (see `service.serve_line`):

1. the historian starts; it replays the spill files a dead process left and closes the runs that
   process left 'running' as 'incomplete' (`Historian.interrupted_runs`);
2. the recorder waits (bounded) until that is written, then rebuilds the item inventory from the
   records and puts it into the `LineModel`, with each item's exposure record replayed from its
   ledger, so the interlocks know which items are exposed where before the first command or the
   supervisor's first evaluation. Without the records the start fails (`RecoveryError`): a
   controller that does not know where an exposed item is must not run the line;
3. the stations of spaces that hold exposed items, or that an interrupted run worked, are queued for
   the supervisor's fault path (closing and switching off only, never venting or opening), which it
   runs once every device has reported: nothing is commanded on an assumed state;
4. every restored item still on the line gets a "restored" ledger entry marking the time nobody
   watched it; this process's run starts; an alarm tells the operator what the restart found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from controller.config.line_config import ROOM, LineConfig
from controller.config.secrets import mask_secrets
from controller.errors import UserError
from controller.historian.deadband import Deadband
from controller.historian.errors import HistorianUnavailable
from controller.historian.recovery import InterruptedRun, RecoveredInventory
from controller.historian.store import Historian
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition, UnknownAlarm
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.items import is_exposed, space_of
from controller.line.ledger import ExposureRecord, LedgerEntry, Stay, exposure_from_entries
from controller.line.poller import Sample, Subscription

log = logging.getLogger(__name__)
SUBSCRIBER: Final = "historian"
ALARM_ID: Final = "historian.health"
RECOVERY_ALARM_ID: Final = "recovery.restart"
RECOVERY_TIMEOUT_S: Final = 30.0


class RecoveryError(UserError):
    """The records could not be read at start: the line's inventory is unknown, so nothing starts."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a start found in the records and did about it."""

    interrupted_runs: tuple[InterruptedRun, ...]
    inventory: RecoveredInventory
    safe_spaces: tuple[str, ...]  # stations queued for their safe state once the line is known


class Recorder:
    def __init__(
        self,
        controller: LineController,
        *,
        url: str,
        spill_dir: Path,
        user: str = "service",
        recovery_timeout_s: float = RECOVERY_TIMEOUT_S,
    ) -> None:
        self.controller = controller
        self.user = user
        self.recovery_timeout_s = recovery_timeout_s
        self.historian = Historian(
            url, line=controller.config.name, spill_dir=spill_dir, on_health=self._on_health
        )
        self.deadband = Deadband(controller.config.recording)
        self._decided_ts = -math.inf  # the newest gate decision's instant
        self.run_id: str | None = None
        self.recovery: Recovery | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe_alarms: object = None

    async def start(self) -> None:
        """Start recording, after restoring what the records say (see the module docstring).

        Call before the controller starts: the inventory must be in the model before anything judges.
        """
        ctl = self.controller
        await self.historian.start()
        try:
            self.recovery = recovery = await self._recover()
        except BaseException:
            await self.historian.stop()
            raise
        self.run_id = self.historian.start_run(ctl.config.text, self.user)
        subscription = ctl.poller.subscribe(SUBSCRIBER, maxsize=50_000)
        self._task = asyncio.create_task(self._pump(subscription), name="recorder-samples")
        ctl.gate.subscribe(self._on_command)
        self._unsubscribe_alarms = ctl.alarms.subscribe(self.historian.record_alarm)
        ctl.ledger.subscribers.append(self.historian.record_ledger)
        ctl.modes.subscribers.append(self.historian.record_mode_change)
        for station in ctl.supervisor.stations.values():
            station.listeners.append(self._on_transition)
        ctl.model.on_register.append(self.historian.record_registration)
        ctl.model.on_coat.append(self.historian.record_coating)
        self._announce(recovery)

    async def stop(self, status: str = "complete") -> None:
        ctl = self.controller
        with contextlib.suppress(ValueError):
            ctl.model.on_register.remove(self.historian.record_registration)
        with contextlib.suppress(ValueError):
            ctl.model.on_coat.remove(self.historian.record_coating)
        ctl.gate.unsubscribe(self._on_command)
        if callable(self._unsubscribe_alarms):
            self._unsubscribe_alarms()
        with contextlib.suppress(ValueError):
            ctl.ledger.subscribers.remove(self.historian.record_ledger)
        with contextlib.suppress(ValueError):
            ctl.modes.subscribers.remove(self.historian.record_mode_change)
        for station in ctl.supervisor.stations.values():
            with contextlib.suppress(ValueError):
                station.listeners.remove(self._on_transition)
        ctl.poller.unsubscribe(SUBSCRIBER)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sample in self.deadband.release():
            self.historian.record_sample(sample)
        if self.run_id is not None:
            self.historian.end_run(self.run_id, status)
        await self.historian.stop()

    # -- recovery ------------------------------------------------------------------------------------

    async def _recover(self) -> Recovery:
        ctl = self.controller
        historian = self.historian
        if not await historian.flush(self.recovery_timeout_s):
            if historian.refused is not None:
                raise historian.refused
            raise RecoveryError(
                f"cannot read the line's records from {mask_secrets(historian.url)} "
                f"within {self.recovery_timeout_s:g} s "
                f"({historian.stats.detail}); the controller does not start without knowing where every "
                "item is: make the database reachable and start again"
            )
        interrupted = historian.interrupted_runs
        try:
            inventory = await historian.inventory()
            tracked = [i.id for i in inventory.items if not i.is_container]  # the ledger's items
            entries = await historian.ledger_entries(tracked)
            worked = [action for run in interrupted for action in await historian.run_actions(run.id)]
        except HistorianUnavailable as exc:
            raise RecoveryError(f"cannot read the line's records: {exc}") from exc
        ctl.model.restore(inventory.items)
        items = dict(ctl.model.items)
        now = time.time()
        for item_id in tracked:
            found = entries.get(item_id, [])
            space = space_of(item_id, items)
            if space != ROOM:  # the proof has a gap from the last entry to now, and says so
                unwatched = LedgerEntry(
                    now,
                    item_id,
                    "restored",
                    space,
                    Atmosphere.UNKNOWN.value,  # not read yet: the supervisor's first look records it
                    is_exposed(item_id, items),
                    {"unwatched_since_ts": found[-1].ts if found else now},
                )
                found = [*found, unwatched]
                ctl.ledger.entries.append(unwatched)
                historian.record_ledger(unwatched)
            ctl.ledger.records[item_id] = (
                exposure_from_entries(item_id, found)
                if found
                else ExposureRecord(item_id, [Stay(space, now, None)])
            )
        exposed = {space_of(i, items) for i in items if is_exposed(i, items)}
        spaces = sorted((exposed | _spaces_worked(ctl.config, worked)) & set(ctl.model.spaces))
        runs = ", ".join(r.id for r in interrupted) or "none"
        for space in spaces:
            why = "holds exposed items" if space in exposed else "worked by the interrupted run"
            ctl.supervisor.fault_on_arming(space, f"restart: {space} {why} (interrupted runs: {runs})")
        log.info(
            "recovered from the records",
            extra={
                "interrupted_runs": [r.id for r in interrupted],
                "items": len(inventory.items),
                "safe_spaces": spaces,
            },
        )
        return Recovery(interrupted, inventory, tuple(spaces))

    def _announce(self, recovery: Recovery) -> None:
        """One alarm when a restart found something the operator must look at."""
        inventory = recovery.inventory
        if not (
            recovery.interrupted_runs or recovery.safe_spaces or inventory.unlocated or inventory.approximate
        ):
            return
        parts = []
        if recovery.interrupted_runs:
            parts.append("run " + ", ".join(r.id for r in recovery.interrupted_runs) + " was interrupted")
        if recovery.safe_spaces:
            parts.append("safe state for " + ", ".join(recovery.safe_spaces))
        if inventory.approximate:
            parts.append("placed by their ledger only: " + ", ".join(inventory.approximate))
        if inventory.unlocated:
            parts.append("not located: " + ", ".join(inventory.unlocated))
        alarms = self.controller.alarms
        alarms.define(
            AlarmDefinition(
                RECOVERY_ALARM_ID,
                Severity.HIGH,
                "controller restarted: what it found needs checking",
                "Check the stations in their safe state and the items' places, then reset the stations; "
                "items not located must be found and registered again.",
            )
        )
        now = time.time()
        evidence = {
            "text": "; ".join(parts),
            "interrupted_runs": ",".join(r.id for r in recovery.interrupted_runs),
            "safe_spaces": ",".join(recovery.safe_spaces),
        }
        alarms.raise_alarm(RECOVERY_ALARM_ID, now, evidence)
        alarms.clear(RECOVERY_ALARM_ID, now)  # an event, not a condition: latched until acknowledged

    # -- recording -----------------------------------------------------------------------------------

    async def _pump(self, subscription: Subscription) -> None:
        """Every reading through the deadband (`controller.historian.deadband`) into the historian."""
        admit = self.deadband.admit
        record = self.historian.record_sample
        async for event in subscription:
            if isinstance(event, Sample):
                # a reading still queued when the gate decided may be one the decision was taken on
                for sample in admit(event, keep=event.reading.ts <= self._decided_ts):
                    record(sample)

    def _on_command(self, record: GateRecord) -> None:
        """A decision's inputs go on record before it: the readings the deadband held back are stored,
        so that a rejudge sees what the gate saw, not the last value that broke the band (a fill judged
        done a fraction of the band above the last stored, still-below-spec reading, say)."""
        self._decided_ts = max(self._decided_ts, record.ts)
        for sample in self.deadband.release():
            self.historian.record_sample(sample)
        self.historian.record_command(record)

    def _on_transition(self, station: str, source: str, dest: str, trigger: str) -> None:
        self.historian.record_transition(station, source, dest, trigger)

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


def _spaces_worked(config: LineConfig, actions: list[dict[str, Any]]) -> set[str]:
    """Spaces whose hardware these actions set (a port counts for both its sides, the room excepted)."""
    ports = {p.name: p.between for p in config.ports}
    spaces: set[str] = set()
    for action in actions:
        if isinstance(action.get("space"), str):
            spaces.add(action["space"])
        elif isinstance(action.get("port"), str):
            spaces.update(s for s in ports.get(action["port"], ()) if s != ROOM)
    return spaces
