"""The command gate: the one door every actuator command passes, whatever its origin.

HMI, CLI, MQTT, sequences and the interlock supervisor itself all call `submit`. Commands are judged
and executed one at a time (two commands can never both pass against the same state and then both
run), against a state built from the latest readings *plus* what the gate itself just wrote and read
back, so a second command sees the first one's effect before the next poll. Every command, allowed or
refused, becomes a `GateRecord` handed to the subscribers (historian, HMI, alarms).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.errors import ControllerError
from controller.line.actions import Action, Command
from controller.line.actuators import Actuators
from controller.line.interlocks import Verdict, check
from controller.line.model import LineModel
from controller.line.modes import ModeBoard, mode_refusal
from controller.line.state import LineState, Snapshot
from controller.line.written_outputs import written_outputs
from drivers.errors import DeviceTimeout, DriverError, LinkDown
from drivers.reading import Quality, Reading

log = logging.getLogger(__name__)

EXECUTE_TIMEOUT_S = 15.0
APPLY_ATTEMPTS = 3  # a command whose reply was lost is said again, within EXECUTE_TIMEOUT_S in all
LOCK_TIMEOUT_S = 20.0
RECENT_RECORDS = 1000  # for the HMI; the historian keeps them all


@dataclass(frozen=True, slots=True)
class GateRecord:
    ts: float
    command: Command
    verdict: Verdict
    executed: bool
    error: str = ""
    duration_s: float = 0.0

    @property
    def outcome(self) -> str:
        if not self.verdict.allowed:
            return "refused"
        return "done" if self.executed and not self.error else "failed"


class CommandGate:
    def __init__(
        self,
        model: LineModel,
        actuators: Actuators,
        snapshot: Callable[[], Snapshot],
        modes: ModeBoard | None = None,
    ) -> None:
        self.model = model
        self.actuators = actuators
        self.modes = modes or ModeBoard()
        self._snapshot = snapshot
        self._lock = asyncio.Lock()
        self._overlay: dict[tuple[str, str], Reading] = {}
        self._subscribers: list[Callable[[GateRecord], None]] = []
        self.records: collections.deque[GateRecord] = collections.deque(maxlen=RECENT_RECORDS)

    def subscribe(self, callback: Callable[[GateRecord], None]) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[GateRecord], None]) -> None:
        """Stop handing records to `callback` (a service or bridge that stopped); unknown ones are ignored."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def snapshot(self) -> dict[tuple[str, str], Reading]:
        """The latest readings, overlaid with outputs the gate wrote after they were taken."""
        merged = dict(self._snapshot())
        for key, written in self._overlay.items():
            polled = merged.get(key)
            if polled is None or polled.mono < written.mono:
                merged[key] = written
        out = self.modes.current.out_of_service
        if out:  # never usable: what such a device reads is not evidence of anything
            for key, reading in merged.items():
                if key[0] in out:
                    merged[key] = replace(reading, quality=Quality.OUT_OF_SERVICE)
        return merged

    def state(self) -> LineState:
        return self.model.state(self.snapshot())

    def judge(self, command: Command, state: LineState | None = None) -> Verdict:
        """The gate's verdict on `command` now, with nothing done and nothing recorded: what `submit`
        judges, so a screen can grey out a button with the very reason the gate would give. A dry run is
        no promise (the line moves before the command is sent): `submit` judges every command again."""
        by_mode = mode_refusal(self.modes.current, command)  # before the interlocks, in every mode
        if by_mode:
            return Verdict(False, (by_mode,))
        return check(state if state is not None else self.state(), command.action)

    async def submit(self, command: Command) -> GateRecord:
        start = time.monotonic()
        try:
            async with asyncio.timeout(LOCK_TIMEOUT_S):
                await self._lock.acquire()
        except TimeoutError:
            verdict = Verdict(False)
            return self._record(command, verdict, False, "gate busy: another command did not finish", start)
        try:
            verdict = self.judge(command)
            if not verdict.allowed:
                log.info("command refused", extra={"command": str(command.action), "reason": verdict.reason})
                return self._record(command, verdict, False, "", start)
            try:
                async with asyncio.timeout(EXECUTE_TIMEOUT_S):
                    await self._apply(command.action)
            except (DriverError, ControllerError, TimeoutError) as exc:
                text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.warning("command failed", extra={"command": str(command.action), "error": text})
                return self._record(command, verdict, False, text, start)
            self._remember(command.action)
            return self._record(command, verdict, True, "", start)
        finally:
            self._lock.release()

    async def _apply(self, action: Action) -> None:
        """Apply, saying it again when the device did not answer: one lost reply on a serial line (a
        loaded host, a noisy cable) must not fail a job's step. Every action sets a state (a valve
        open, a setpoint, a film), so saying it twice leaves the device as saying it once would; the
        judgement stands, since nothing else can act while the gate's lock is held."""
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            try:
                await self.actuators.apply(action)
                return
            except (DeviceTimeout, LinkDown) as exc:
                if attempt == APPLY_ATTEMPTS:
                    raise
                log.warning(
                    "device did not answer a command: saying it again",
                    extra={
                        "command": str(action),
                        "error": f"{type(exc).__name__}: {exc}",
                        "attempt": attempt,
                    },
                )

    def _remember(self, action: Action) -> None:
        """Outputs just written and read back count until a newer poll shows them."""
        written = written_outputs(self.model, self.actuators.io, action, time.time(), time.monotonic())
        self._overlay.update(written)

    def _record(
        self, command: Command, verdict: Verdict, executed: bool, error: str, start: float
    ) -> GateRecord:
        record = GateRecord(time.time(), command, verdict, executed, error, time.monotonic() - start)
        self.records.append(record)
        for callback in self._subscribers:
            try:
                callback(record)
            except Exception:  # a broken subscriber must not break the gate
                log.exception("gate subscriber failed")
        return record
