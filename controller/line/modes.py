"""The line's unit mode (ISA-88 / PackML unit modes): who may act on the actuators now.

| mode | who acts | notes |
|---|---|---|
| production | the batch that owns the line, the supervisor's safe actions | manual commands refused |
| manual | operators, through the gate | batches start from here (and take the line) |
| maintenance | engineers, through the gate | devices can be taken out of service |

Why it is built this way:

- **The gate judges the mode, not the buttons.** `mode_refusal` is a pure function of the mode and
  the command, called by the gate before the interlocks, so a command from the HMI, the CLI or MQTT
  is refused with the same reason whatever sent it. It never relaxes an interlock: a command the mode
  allows is still judged by I1-I7 in every mode.
- **Manual means an origin, not a person.** Commands from the HMI, the CLI and MQTT are manual; the
  batch's sequence, the operator prompts it asks (their moves are the sequence's) and the
  supervisor's safe actions are not. A manual antechamber operation runs only in manual mode (the
  batch host and the operations exclude each other), so it never meets a batch.
- **The batch rules live with the batch.** Leaving production needs the owning batch held, stopped or
  ended, which only the batch host knows: it registers a `guard` here; this module stays below the
  sequences that run batches.
- **Every change is recorded** with who, when and why (`ModeChange`), handed to the subscribers
  (the historian keeps them), so a night's record says who had the line.
- **Out of service is a maintenance act.** A device taken out of service has its readings marked
  (`Quality.OUT_OF_SERVICE`: never usable, so the spaces it serves are unknown, never in spec) and
  stays so until an engineer puts it back; leaving maintenance with a device out of service is
  refused, so production never starts blind.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from controller.errors import UserError
from controller.line.actions import Command
from controller.line.interlocks import Refusal

log = logging.getLogger(__name__)

MANUAL_ORIGINS: Final = frozenset({"hmi", "cli", "mqtt"})
ENGINEERING_ROLES: Final = frozenset({"engineer", "maintenance"})
JOURNAL_LIMIT: Final = 1000


class UnitMode(enum.StrEnum):
    PRODUCTION = "production"
    MANUAL = "manual"
    MAINTENANCE = "maintenance"


# from -> the modes it may change to; production and maintenance only ever through manual
TRANSITIONS: Final = {
    UnitMode.MANUAL: frozenset({UnitMode.PRODUCTION, UnitMode.MAINTENANCE}),
    UnitMode.PRODUCTION: frozenset({UnitMode.MANUAL}),
    UnitMode.MAINTENANCE: frozenset({UnitMode.MANUAL}),
}


@dataclass(frozen=True, slots=True)
class ModeState:
    mode: UnitMode
    since_ts: float
    user: str
    reason: str
    owner: str | None = None  # the batch that owns the line in production
    out_of_service: frozenset[str] = frozenset()  # devices an engineer took out (maintenance)

    def words(self) -> str:
        owned = f" (batch {self.owner})" if self.owner else ""
        return f"{self.mode.value}{owned}"


@dataclass(frozen=True, slots=True)
class ModeChange:
    """One audited change: the mode or a device's service state, who, when and why."""

    ts: float
    mode: UnitMode
    previous: UnitMode
    user: str
    reason: str
    owner: str | None = None
    device: str | None = None  # set when a device was taken out of or put back into service
    in_service: bool | None = None


class ModeRefused(UserError):
    """A mode change that is not allowed now, with the reason."""


def mode_refusal(state: ModeState, command: Command) -> Refusal | None:
    """Whether the line's mode forbids this command (None: the mode allows it; the interlocks judge)."""
    if command.origin not in MANUAL_ORIGINS:
        return None
    if state.mode is UnitMode.PRODUCTION:
        owner = state.owner or "a batch"
        return Refusal(
            "MODE",
            "production",
            f"batch {owner} owns the line: hold it and switch to manual",
            {"mode": state.mode.value, "batch": owner},
        )
    role = command.meta.get("role", "")
    if state.mode is UnitMode.MAINTENANCE and role not in ENGINEERING_ROLES:
        return Refusal(
            "MODE",
            "maintenance",
            "the line is in maintenance: engineers only",
            {"mode": state.mode.value, "role": role or "unknown"},
        )
    return None


Guard = Callable[[ModeState, UnitMode, str | None], str | None]  # (now, to, owner) -> why not, or None


@dataclass
class ModeBoard:
    """The line's current mode, its audited changes and their subscribers."""

    current: ModeState = field(
        default_factory=lambda: ModeState(UnitMode.MANUAL, time.time(), "controller", "start-up")
    )
    guards: list[Guard] = field(default_factory=list)
    subscribers: list[Callable[[ModeChange], None]] = field(default_factory=list)
    journal: collections.deque[ModeChange] = field(
        default_factory=lambda: collections.deque(maxlen=JOURNAL_LIMIT)
    )

    def change(self, to: UnitMode, user: str, reason: str, *, owner: str | None = None) -> ModeState:
        """Change the mode; `ModeRefused` with the reason when the change is not allowed now."""
        now = self.current
        if not reason.strip():
            raise ModeRefused("a mode change needs a reason (it is recorded)")
        if to is now.mode and owner == now.owner:
            return now
        if to is not now.mode and to not in TRANSITIONS[now.mode]:
            via = " through manual" if now.mode is not UnitMode.MANUAL else ""
            raise ModeRefused(f"the line is in {now.words()}: {to.value} only{via}")
        if to is UnitMode.PRODUCTION and not owner:
            raise ModeRefused("production is taken by a batch: start one")
        if now.mode is UnitMode.MAINTENANCE and now.out_of_service:
            devices = ", ".join(sorted(now.out_of_service))
            raise ModeRefused(f"put {devices} back into service before leaving maintenance")
        for guard in self.guards:
            why = guard(now, to, owner)
            if why:
                raise ModeRefused(why)
        self.current = ModeState(to, time.time(), user, reason, owner if to is UnitMode.PRODUCTION else None)
        self._record(ModeChange(self.current.since_ts, to, now.mode, user, reason, self.current.owner))
        log.info("unit mode", extra={"mode": to.value, "user": user, "reason": reason, "owner": owner})
        return self.current

    def set_in_service(self, device: str, in_service: bool, user: str, reason: str) -> ModeState:
        """Take a device out of service or put it back: maintenance only, always with a reason."""
        now = self.current
        if now.mode is not UnitMode.MAINTENANCE:
            raise ModeRefused(
                f"devices are taken out of service in maintenance; the line is in {now.words()}"
            )
        if not reason.strip():
            raise ModeRefused("taking a device out of or into service needs a reason (it is recorded)")
        out = now.out_of_service - {device} if in_service else now.out_of_service | {device}
        self.current = replace(now, out_of_service=frozenset(out))
        self._record(ModeChange(time.time(), now.mode, now.mode, user, reason, None, device, in_service))
        return self.current

    def _record(self, change: ModeChange) -> None:
        self.journal.append(change)
        for callback in self.subscribers:
            try:
                callback(change)
            except Exception:  # a failing recorder must not stop a mode change already made
                log.exception("mode subscriber failed")
