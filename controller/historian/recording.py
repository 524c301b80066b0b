"""The historian's write side as its callers see it: `record_*`, `start_run` and `end_run`.

`Historian` inherits these (as it inherits `HistorianQueries`); `controller.historian.recorder` is
what calls them from a running line. Why they are built this way:

- **Callers never wait.** The poller, the gate and the alarm board call `record_*` from the control
  loop; those methods only append to an in-memory deque (O(1), no await). A database that is slow,
  locked or gone must never slow the plant down, so nothing the control loop calls touches it.
- **Run ids are made here.** A run, its commands and its transitions are linked by a run id the
  historian makes itself, so a run can start while the database is down. Run ids sort by start time.
- **Some rows do not wait for `batch_s`.** Registrations, moves, seal changes, coatings and run
  starts and ends are written at once rather than after `batch_s`, so a crash just after an item
  moved does not lose the move.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import time
from typing import Any

from controller.historian.health import HistorianHealth
from controller.historian.recovery import COAT_ITEM, INVENTORY_ACTIONS, REGISTER_ITEM
from controller.historian.spill import (
    K_ALARM,
    K_COMMAND,
    K_ITEM,
    K_LEDGER,
    K_MODE,
    K_RUN,
    K_RUN_END,
    K_TRANSITION,
    Entry,
    to_json,
)
from controller.line.alarms import AlarmRecord
from controller.line.gate import GateRecord
from controller.line.items import Item
from controller.line.ledger import LedgerEntry
from controller.line.modes import ModeChange
from controller.line.poller import Sample

log = logging.getLogger(__name__)


class HistorianRecording:
    """The `record_*` methods of a historian; the subclass provides the buffer and its signals.

    `record_*` must be called on the event loop's thread (they set asyncio events).
    """

    current_run: str | None
    _memory: collections.deque[Entry]
    _removed: int  # entries ever taken from the front of memory (`Historian.flush` waits on it)
    _own_runs: set[str]  # runs this process started (never closed as interrupted)
    _batch_rows: int
    _max_buffer: int
    _hard_cap: int
    _closed: bool
    _urgent: bool  # a row that must not wait for `batch_s` is in memory
    _wake: asyncio.Event  # the writer
    _overflow: asyncio.Event  # the spiller
    _health: HistorianHealth

    def record_sample(self, sample: Sample) -> None:
        memory = self._memory
        memory.append(sample)
        size = len(memory)
        if size >= self._batch_rows or size > self._max_buffer or self._closed:
            self._after_append(size)

    def record_command(self, record: GateRecord) -> None:
        """Every command the gate judged, allowed or refused (a `CommandGate.subscribe` callback)."""
        cmd = record.command
        action: dict[str, object] = {"type": type(cmd.action).__name__, **dataclasses.asdict(cmd.action)}
        if cmd.meta:
            action["meta"] = dict(cmd.meta)
        refusals = record.verdict.refusals
        outcome = record.outcome
        if record.verdict.allowed and not record.executed and not record.error:
            outcome = "allowed"
        invariants = ",".join(dict.fromkeys(r.invariant for r in refusals)) or None
        refusal_list = [
            {"invariant": r.invariant, "rule": r.rule, "reason": r.reason, "evidence": dict(r.evidence)}
            for r in refusals
        ]
        changes_inventory = outcome == "done" and action["type"] in INVENTORY_ACTIONS
        self._append(
            K_COMMAND,
            (
                record.ts,
                self.current_run,
                cmd.user,
                cmd.origin,
                to_json(action),
                outcome,
                record.verdict.reason,
                invariants,
                record.error,
                record.duration_s,
                cmd.reason,
                to_json(refusal_list),
            ),
            urgent=changes_inventory,
        )

    def record_alarm(self, record: AlarmRecord) -> None:
        """Every alarm journal record (an `AlarmBoard.subscribe` callback)."""
        self._append(
            K_ALARM,
            (
                record.ts,
                record.alarm_id,
                record.event.value,
                record.from_state.value,
                record.to_state.value,
                record.user,
                record.reason,
                record.severity.value,
                to_json(dict(record.evidence)),
                record.trip,
                record.until_s,
                record.condition_active,
                record.first_out,
                record.follows,
            ),
        )

    def record_mode_change(self, change: ModeChange) -> None:
        """Who switched the line's mode (or took a device out of service), when and why: at once, like
        the inventory, because a crash must not lose who had the line."""
        self._append(
            K_MODE,
            (
                change.ts,
                self.current_run,
                change.mode.value,
                change.previous.value,
                change.user,
                change.reason,
                change.owner,
                change.device,
                change.in_service,
            ),
            urgent=True,
        )

    def record_ledger(self, entry: LedgerEntry) -> None:
        self._append(
            K_LEDGER,
            (
                entry.ts,
                entry.item,
                entry.event,
                entry.space,
                entry.atmosphere,
                entry.exposed,
                to_json(entry.evidence),
            ),
        )

    def record_item(self, item: Item, ts: float | None = None) -> None:
        """An item put on the line; recording the same id again keeps the first registration."""
        registered = time.time() if ts is None else ts
        self._append(K_ITEM, (item.id, item.kind.value, item.material, registered))

    def record_registration(self, item: Item, user: str, origin: str, ts: float | None = None) -> None:
        """An item registered (a `LineModel.on_register` hook): its `items` row, and a done
        "RegisterItem" command with where it was put and whether sealed, which `inventory()` starts
        from (the items table has no location: it says what an item is, not where)."""
        when = time.time() if ts is None else ts
        self.record_item(item, when)
        action = {
            "type": REGISTER_ITEM,
            "id": item.id,
            "kind": item.kind.value,
            "material": item.material,
            "location": item.location,
            "sealed": item.sealed,
        }
        values = (
            when,
            self.current_run,
            user,
            origin,
            to_json(action),
            "done",
            "registered",
            None,
            "",
            0.0,
            "",
            "[]",
        )
        self._append(K_COMMAND, values, urgent=True)

    def record_coating(self, item: Item, user: str, origin: str, ts: float | None = None) -> None:
        """A layer deposited on an item (a `LineModel.on_coat` hook): a done "CoatItem" command, which
        `inventory()` replays so a restarted controller judges the electrode by what is on it."""
        when = time.time() if ts is None else ts
        action = {"type": COAT_ITEM, "item": item.id, "material": item.material}
        values = (
            when,
            self.current_run,
            user,
            origin,
            to_json(action),
            "done",
            "coated",
            None,
            "",
            0.0,
            "",
            "[]",
        )
        self._append(K_COMMAND, values, urgent=True)

    def record_transition(
        self, station: str, source: str, dest: str, trigger: str, *, reason: str = "", ts: float | None = None
    ) -> None:
        """A station state machine changed state (tagged with the current run, if any)."""
        when = time.time() if ts is None else ts
        self._append(K_TRANSITION, (when, self.current_run, station, source, dest, trigger, reason))

    def start_run(self, config_text: str, user: str, recipe_text: str | None = None) -> str:
        """Open a run and return its id; commands and transitions recorded from now on carry it.

        Synchronous like every `record_*`: the row is queued, not awaited, so a run can start while
        the database is down. The id is made here (sortable UTC time plus random suffix).
        """
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        recipe_hash = _sha256(recipe_text) if recipe_text is not None else None
        self._append(
            K_RUN,
            (run_id, now, "running", _sha256(config_text), config_text, recipe_hash, recipe_text, user),
            urgent=True,
        )
        self.current_run = run_id
        self._own_runs.add(run_id)
        log.info("run started", extra={"run_id": run_id, "user": user})
        return run_id

    def end_run(self, run_id: str, status: str = "complete") -> None:
        if status not in ("complete", "incomplete"):
            raise ValueError(f"run status must be 'complete' or 'incomplete', not {status!r}")
        self._append(K_RUN_END, (run_id, time.time(), status), urgent=True)
        if self.current_run == run_id:
            self.current_run = None
        log.info("run ended", extra={"run_id": run_id, "status": status})

    def _append(self, kind: str, values: tuple[Any, ...], *, urgent: bool = False) -> None:
        """Queue a row; an `urgent` one (the inventory, a run's start and end) wakes the writer now."""
        memory = self._memory
        memory.append((kind, values))
        self._after_append(len(memory))
        if urgent and not self._closed:
            self._urgent = True
            self._wake.set()

    def _after_append(self, size: int) -> None:
        """The rare paths of recording: wake the writer, trigger a spill, refuse after stop."""
        if self._closed or size > self._hard_cap:
            self._memory.pop()
            self._health.drop(1, "recorded after stop" if self._closed else "memory buffer at its hard cap")
            return
        if size >= self._batch_rows and not self._wake.is_set():
            self._wake.set()
        if size > self._max_buffer and not self._overflow.is_set():
            self._overflow.set()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["HistorianRecording"]
