"""Alarms: the ISA-18.2 life of every alarm on the line, as pure logic.

Nothing here reads a clock, sleeps or does I/O: every call carries `now_s` (epoch seconds), so the
controller, the replay tool and the tests reach the same states and the same journal from the same calls.

The lifecycle (states, events, the `TRANSITIONS` table, and why latching and shelving work as they do)
is `controller.line.alarm_states`; this module is the board that applies it to the line's alarms:
their definitions, what each has been through, shelving, the journal and its subscribers.

Why each rule is what it is:
- *Trip*: an alarm may name a safe action ("close_door:inlet_gate"). The record of every new occurrence
  of such an alarm carries it in `AlarmRecord.trip`; `raise_alarm` returns that record, so the controller
  acts on the return value (or as a subscriber). There is no separate pending-trip queue. An alarm that
  trips is never shelvable: hiding it would hide why the plant moved.
- *Records*: every change of state or of the tracked condition, and every operator action, appends an
  `AlarmRecord` (who, when, why, evidence) to the journal and fans it out to subscribers (historian, MQTT,
  HMI). A raise while the condition is already active only refreshes the evidence and records nothing,
  because the poller re-asserts live conditions every cycle and the journal must not fill with repeats.
  Refused operator actions raise `AlarmActionRefused` and leave no trace on the board.
- *First-out*: alarms come in cascades (a turbo fails, then the chamber pressure trips the interlock).
  The first new occurrence while no cascade is open starts one and is marked `first_out`; every new
  occurrence while it is open follows it (`follows` names the first-out alarm), so the operator starts
  with the cause, not with the loudest consequence. A cascade stays open while one of its alarms'
  conditions is still active, and at most `cascade_window_s` after it began: an alarm that stands
  for hours (a transmitter out for repair) must not make the whole night's alarms "follow" it. LOW
  alarms (advisories such as a gauge under its range) neither open nor join a cascade.
- *Time*: if a caller's clock steps backwards, the record is stamped with the last journal time (and a
  warning logged), so the journal stays time-ordered for replay.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from controller.errors import ControllerError, UserError
from controller.line.alarm_states import (
    DISPLAYED_STATES,
    OPERATOR_EVENTS,
    TRANSITIONS,
    UNACKED_STATES,
    AlarmEvent,
    AlarmState,
    Branch,
    Guard,
    Severity,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHELVE_S: Final = 8 * 3600.0
DEFAULT_JOURNAL_LIMIT: Final = 10_000
DEFAULT_CASCADE_WINDOW_S: Final = 600.0
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})
# ids become one MQTT topic level (depline/<line>/alarm/<id>): no '/', '+', '#' or spaces
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")


class AlarmDefinitionError(ControllerError, ValueError):
    """An alarm definition is malformed or contradicts one already on the board."""


class UnknownAlarm(ControllerError, KeyError):
    """An alarm id that was never defined: a typo here would silently hide a real alarm, so it is loud."""

    def __init__(self, alarm_id: str) -> None:
        self.alarm_id = alarm_id
        super().__init__(
            f"alarm {alarm_id!r} is not defined; "
            "add it to the alarm definitions or AlarmBoard.define() it first"
        )

    def __str__(self) -> str:
        # KeyError would show the repr of the message; operators and logs need the sentence
        return str(self.args[0])


class AlarmActionRefused(UserError, ValueError):
    """An operator's alarm action that is not allowed; the message tells the operator why."""

    def __init__(self, alarm_id: str | None, action: AlarmEvent, why: str) -> None:
        self.alarm_id = alarm_id
        self.action = action
        self.why = why
        target = f"alarm {alarm_id!r}" if alarm_id is not None else "alarms"
        super().__init__(f"cannot {action.value} {target}: {why}")


@dataclass(frozen=True, slots=True)
class AlarmDefinition:
    """What an alarm means and what to do about it; `trip` names a safe action the controller performs."""

    id: str
    severity: Severity
    text: str
    guidance: str
    latching: bool = True
    trip: str | None = None
    shelvable: bool = True

    def __post_init__(self) -> None:
        if not _ID_PATTERN.fullmatch(self.id):
            raise AlarmDefinitionError(
                f"alarm id {self.id!r} must be letters, digits, '_', '.', ':' or '-' "
                "(it is an MQTT topic level)"
            )
        severity: object = self.severity  # definitions are often built from config text
        if not isinstance(severity, Severity):
            raise AlarmDefinitionError(f"alarm {self.id!r}: severity must be a Severity, not {severity!r}")
        if not self.text.strip():
            raise AlarmDefinitionError(f"alarm {self.id!r}: the operator needs a text")
        if self.trip is not None:
            if not self.trip.strip():
                raise AlarmDefinitionError(f"alarm {self.id!r}: trip must name an action or be None")
            # an alarm that moves the plant must never be hidden, whatever `shelvable` was given
            object.__setattr__(self, "shelvable", False)


@dataclass(frozen=True, slots=True)
class Shelf:
    user: str
    reason: str
    since_s: float
    until_s: float


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One line of the alarm journal: the historian and MQTT store these as they are."""

    ts: float
    alarm_id: str
    event: AlarmEvent
    from_state: AlarmState
    to_state: AlarmState
    user: str | None
    reason: str | None
    evidence: Mapping[str, object]
    severity: Severity
    trip: str | None = None
    """Set only on a new occurrence of an alarm that trips: the controller must perform this action."""
    until_s: float | None = None
    """The shelf expiry, on shelve and shelve_expired records."""
    condition_active: bool = False
    """The tracked condition after the event (it differs from the state while shelved)."""
    first_out: bool = False
    """Set on the new occurrence that opened a cascade: the likely cause of what follows."""
    follows: str | None = None
    """On a new occurrence inside an open cascade: the id of the cascade's first-out alarm."""

    @property
    def is_operator_action(self) -> bool:
        return self.event in OPERATOR_EVENTS

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON (MQTT payload, historian row); evidence values are passed through."""
        return {
            "ts": self.ts,
            "alarm_id": self.alarm_id,
            "event": self.event.value,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "user": self.user,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "severity": self.severity.value,
            "trip": self.trip,
            "until_s": self.until_s,
            "condition_active": self.condition_active,
            "first_out": self.first_out,
            "follows": self.follows,
        }


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """A snapshot of one alarm for the HMI and queries; the board's own state is never handed out."""

    definition: AlarmDefinition
    state: AlarmState
    condition_active: bool
    evidence: Mapping[str, object]
    raised_at_s: float | None
    changed_at_s: float | None
    acked_by: str | None
    acked_at_s: float | None
    shelf: Shelf | None
    occurrences: int
    first_out: bool = False
    """This occurrence opened its cascade."""
    follows: str | None = None
    """This occurrence came inside the cascade that this alarm id opened."""

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def unacknowledged(self) -> bool:
        return self.state in UNACKED_STATES


@dataclass(slots=True)
class _Alarm:
    definition: AlarmDefinition
    state: AlarmState = AlarmState.NORMAL
    condition_active: bool = False
    unacked: bool = False
    evidence: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    raised_at_s: float | None = None
    changed_at_s: float | None = None
    acked_by: str | None = None
    acked_at_s: float | None = None
    shelf: Shelf | None = None
    occurrences: int = 0
    first_out: bool = False
    follows: str | None = None

    def holds(self, guard: Guard) -> bool:
        if guard is Guard.ALWAYS:
            return True
        if guard is Guard.LATCHING:
            return self.definition.latching
        if guard is Guard.CONDITION_ACTIVE:
            return self.condition_active
        return self.definition.latching and self.unacked

    def snapshot(self) -> AlarmStatus:
        return AlarmStatus(
            definition=self.definition,
            state=self.state,
            condition_active=self.condition_active,
            evidence=self.evidence,
            raised_at_s=self.raised_at_s,
            changed_at_s=self.changed_at_s,
            acked_by=self.acked_by,
            acked_at_s=self.acked_at_s,
            shelf=self.shelf,
            occurrences=self.occurrences,
            first_out=self.first_out,
            follows=self.follows,
        )


AlarmSubscriber = Callable[[AlarmRecord], None]


@dataclass(slots=True)
class _Cascade:
    first: str
    started_s: float
    members: list[str]


class AlarmBoard:
    """All alarms of a line: their states, the operator actions on them and the journal of both."""

    def __init__(
        self,
        definitions: Iterable[AlarmDefinition],
        *,
        max_shelve_s: float = DEFAULT_MAX_SHELVE_S,
        journal_limit: int = DEFAULT_JOURNAL_LIMIT,
        cascade_window_s: float = DEFAULT_CASCADE_WINDOW_S,
    ) -> None:
        if not (math.isfinite(max_shelve_s) and max_shelve_s > 0):
            raise ValueError(f"max_shelve_s must be a positive number of seconds, not {max_shelve_s!r}")
        if journal_limit < 1:
            raise ValueError(f"journal_limit must be at least 1, not {journal_limit!r}")
        if not (math.isfinite(cascade_window_s) and cascade_window_s >= 0):
            raise ValueError(f"cascade_window_s must be >= 0 seconds, not {cascade_window_s!r}")
        self._max_shelve_s = float(max_shelve_s)
        self.cascade_window_s = float(cascade_window_s)
        self._cascade: _Cascade | None = None
        self._alarms: dict[str, _Alarm] = {}
        # bounded: the historian (a subscriber) is the durable record; this is the recent history in memory
        self._journal: deque[AlarmRecord] = deque(maxlen=journal_limit)
        self._last_ts = -math.inf
        self._subscribers: list[AlarmSubscriber] = []
        self._outbox: deque[AlarmRecord] = deque()
        self._publishing = False
        for definition in definitions:
            if definition.id in self._alarms:
                raise AlarmDefinitionError(f"alarm {definition.id!r} is defined twice")
            self._alarms[definition.id] = _Alarm(definition)

    # ---- definitions and subscribers

    @property
    def max_shelve_s(self) -> float:
        return self._max_shelve_s

    @property
    def definitions(self) -> tuple[AlarmDefinition, ...]:
        return tuple(alarm.definition for alarm in self._alarms.values())

    def define(self, definition: AlarmDefinition) -> None:
        """Add an alarm found at run time (e.g. "comms lost" per device); defining it again is harmless."""
        existing = self._alarms.get(definition.id)
        if existing is None:
            self._alarms[definition.id] = _Alarm(definition)
        elif existing.definition != definition:
            raise AlarmDefinitionError(
                f"alarm {definition.id!r} is already defined differently ({existing.definition!r}); "
                "an alarm's meaning cannot change while the line runs"
            )

    def subscribe(self, callback: AlarmSubscriber) -> Callable[[], None]:
        """Fan every new record out to `callback`; returns a function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # ---- the condition, as the controller sees it

    def raise_alarm(self, alarm_id: str, now_s: float, evidence: Mapping[str, object]) -> AlarmRecord | None:
        """The condition is present. Returns the record (act on `.trip`), or None for an evidence refresh."""
        alarm = self._alarm(alarm_id)
        return self._apply(alarm, AlarmEvent.CONDITION_RAISED, self._stamp(now_s), evidence=_frozen(evidence))

    def clear(
        self, alarm_id: str, now_s: float, evidence: Mapping[str, object] | None = None
    ) -> AlarmRecord | None:
        """The condition is gone; returns None when it already was (safe to call every poll cycle)."""
        alarm = self._alarm(alarm_id)
        frozen = _frozen(evidence) if evidence is not None else _EMPTY
        return self._apply(alarm, AlarmEvent.CONDITION_CLEARED, self._stamp(now_s), evidence=frozen)

    def tick(self, now_s: float) -> list[AlarmRecord]:
        """End every shelf whose expiry has come; call it at least as often as shelves should end."""
        ts = self._stamp(now_s)
        records: list[AlarmRecord] = []
        for alarm in list(self._alarms.values()):  # a subscriber may define() alarms meanwhile
            if alarm.state is AlarmState.SHELVED and alarm.shelf is not None and alarm.shelf.until_s <= ts:
                record = self._apply(alarm, AlarmEvent.SHELVE_EXPIRED, ts, until_s=alarm.shelf.until_s)
                if record is not None:
                    records.append(record)
        return records

    # ---- operator actions: each needs a user, and each refusal says why

    def acknowledge(self, alarm_id: str, user: str, now_s: float) -> AlarmRecord:
        alarm = self._alarm(alarm_id)
        who = _require_user(alarm_id, AlarmEvent.ACKNOWLEDGE, user)
        return self._operator_action(alarm, AlarmEvent.ACKNOWLEDGE, self._stamp(now_s), user=who)

    def acknowledge_all(self, user: str, now_s: float) -> list[AlarmRecord]:
        """Acknowledge every visible unacknowledged alarm; shelved ones stay as they are (nobody saw them)."""
        who = _require_user(None, AlarmEvent.ACKNOWLEDGE, user)
        ts = self._stamp(now_s)
        return [
            self._operator_action(alarm, AlarmEvent.ACKNOWLEDGE, ts, user=who)
            for alarm in list(self._alarms.values())  # a subscriber may define() alarms meanwhile
            if alarm.state in UNACKED_STATES
        ]

    def shelve(self, alarm_id: str, user: str, reason: str, until_s: float, now_s: float) -> AlarmRecord:
        """Hide a nuisance alarm until `until_s`; shelving a shelved alarm replaces its reason and expiry."""
        alarm = self._alarm(alarm_id)
        action = AlarmEvent.SHELVE
        who = _require_user(alarm_id, action, user)
        why = reason.strip()
        if not why:
            raise AlarmActionRefused(alarm_id, action, "a reason is required to shelve an alarm")
        if not alarm.definition.shelvable:
            because = (
                f"it trips {alarm.definition.trip!r} and must stay visible"
                if alarm.definition.trip is not None
                else "this alarm is configured as not shelvable"
            )
            raise AlarmActionRefused(alarm_id, action, because)
        ts = self._stamp(now_s)
        if not math.isfinite(until_s):
            raise AlarmActionRefused(alarm_id, action, f"the expiry must be a time, not {until_s!r}")
        if until_s <= ts:
            raise AlarmActionRefused(alarm_id, action, "the expiry must be in the future")
        if until_s - ts > self._max_shelve_s:
            raise AlarmActionRefused(
                alarm_id,
                action,
                f"an alarm may be shelved for at most {self._max_shelve_s:g} s "
                f"({self._max_shelve_s / 3600:g} h); {until_s - ts:g} s was asked",
            )
        return self._operator_action(alarm, action, ts, user=who, reason=why, until_s=until_s)

    def unshelve(self, alarm_id: str, user: str, now_s: float) -> AlarmRecord:
        alarm = self._alarm(alarm_id)
        who = _require_user(alarm_id, AlarmEvent.UNSHELVE, user)
        return self._operator_action(alarm, AlarmEvent.UNSHELVE, self._stamp(now_s), user=who)

    # ---- queries

    def get(self, alarm_id: str) -> AlarmStatus:
        return self._alarm(alarm_id).snapshot()

    def active(self) -> list[AlarmStatus]:
        """Alarms on display: most severe first, then oldest first (first-out alarm: likely the cause)."""
        shown = [alarm.snapshot() for alarm in self._alarms.values() if alarm.state in DISPLAYED_STATES]
        return sorted(shown, key=_display_order)

    def shelved(self) -> list[AlarmStatus]:
        shelved = [alarm.snapshot() for alarm in self._alarms.values() if alarm.state is AlarmState.SHELVED]
        return sorted(shelved, key=_display_order)

    def has_unacknowledged(self) -> bool:
        """Whether the horn should sound: a visible alarm waits for an acknowledgement."""
        return any(alarm.state in UNACKED_STATES for alarm in self._alarms.values())

    @property
    def journal(self) -> tuple[AlarmRecord, ...]:
        return tuple(self._journal)

    # ---- the one place a state changes

    def _alarm(self, alarm_id: str) -> _Alarm:
        try:
            return self._alarms[alarm_id]
        except KeyError:
            raise UnknownAlarm(alarm_id) from None

    def _stamp(self, now_s: float) -> float:
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be a finite epoch time, not {now_s!r}")
        if now_s < self._last_ts:
            logger.warning(
                "alarm clock went backwards; stamping with the last journal time",
                extra={"now_s": now_s, "last_ts": self._last_ts},
            )
            return self._last_ts
        return now_s

    def _operator_action(
        self,
        alarm: _Alarm,
        event: AlarmEvent,
        ts: float,
        *,
        user: str,
        reason: str | None = None,
        until_s: float | None = None,
    ) -> AlarmRecord:
        record = self._apply(alarm, event, ts, user=user, reason=reason, until_s=until_s)
        assert record is not None, "operator actions are always recorded"
        return record

    def _apply(
        self,
        alarm: _Alarm,
        event: AlarmEvent,
        ts: float,
        *,
        user: str | None = None,
        reason: str | None = None,
        evidence: Mapping[str, object] = _EMPTY,
        until_s: float | None = None,
    ) -> AlarmRecord | None:
        branch = _choose(alarm, event)
        from_state = alarm.state
        was_active = alarm.condition_active
        if event is AlarmEvent.CONDITION_RAISED:
            alarm.condition_active = True
            alarm.evidence = evidence
        elif event is AlarmEvent.CONDITION_CLEARED:
            alarm.condition_active = False
            if evidence:
                alarm.evidence = evidence
        elif event is AlarmEvent.ACKNOWLEDGE:
            alarm.acked_by, alarm.acked_at_s = user, ts
        elif event is AlarmEvent.SHELVE:
            assert user is not None
            assert reason is not None
            assert until_s is not None
            alarm.shelf = Shelf(user=user, reason=reason, since_s=ts, until_s=until_s)
        if branch.new_occurrence:
            alarm.occurrences += 1
            alarm.raised_at_s = ts
            alarm.unacked = True
            alarm.acked_by = alarm.acked_at_s = None
            if alarm.definition.severity is Severity.LOW:  # an advisory is nobody's cause or consequence
                alarm.follows, alarm.first_out = None, False
            else:
                alarm.follows = self._join_cascade(alarm.definition.id, ts)
                alarm.first_out = alarm.follows is None
        _enter(alarm, branch.target)
        changed = from_state is not branch.target
        if changed:
            alarm.changed_at_s = ts
        if not (changed or was_active != alarm.condition_active or event not in _CONDITION_EVENTS):
            return None
        record = AlarmRecord(
            ts=ts,
            alarm_id=alarm.definition.id,
            event=event,
            from_state=from_state,
            to_state=branch.target,
            user=user,
            reason=reason,
            evidence=evidence,
            severity=alarm.definition.severity,
            trip=alarm.definition.trip if branch.new_occurrence else None,
            until_s=until_s,
            condition_active=alarm.condition_active,
            first_out=alarm.first_out if branch.new_occurrence else False,
            follows=alarm.follows if branch.new_occurrence else None,
        )
        self._publish(record)
        return record

    def _join_cascade(self, alarm_id: str, ts: float) -> str | None:
        """The first-out alarm this new occurrence follows, or None when it opens a cascade itself."""
        cascade = self._cascade
        if (
            cascade is not None
            and ts - cascade.started_s <= self.cascade_window_s
            and any(self._alarms[m].condition_active for m in cascade.members if m != alarm_id)
        ):
            cascade.members.append(alarm_id)
            return cascade.first
        self._cascade = _Cascade(alarm_id, ts, [alarm_id])
        return None

    def _publish(self, record: AlarmRecord) -> None:
        """Journal the record, then fan it out in journal order even if a subscriber acts on the board."""
        self._journal.append(record)
        self._last_ts = record.ts
        logger.info(
            "alarm %s %s: %s -> %s",
            record.alarm_id,
            record.event.value,
            record.from_state.value,
            record.to_state.value,
            extra={
                "alarm_id": record.alarm_id,
                "alarm_event": record.event.value,
                "to_state": record.to_state.value,
                "user": record.user,
                "trip": record.trip,
            },
        )
        self._outbox.append(record)
        if self._publishing:
            return  # a subscriber called back into the board; the outer loop delivers this one next
        self._publishing = True
        try:
            while self._outbox:
                pending = self._outbox.popleft()
                for subscriber in tuple(self._subscribers):
                    try:
                        subscriber(pending)
                    except Exception:
                        # a broken historian or MQTT link must never stop alarm handling
                        logger.exception(
                            "alarm subscriber failed; the board carries on",
                            extra={"alarm_id": pending.alarm_id, "subscriber": repr(subscriber)},
                        )
        finally:
            self._publishing = False


_CONDITION_EVENTS: Final = frozenset({AlarmEvent.CONDITION_RAISED, AlarmEvent.CONDITION_CLEARED})


def _choose(alarm: _Alarm, event: AlarmEvent) -> Branch:
    branches = TRANSITIONS.get((alarm.state, event))
    if branches is None:
        raise AlarmActionRefused(alarm.definition.id, event, _why_not(alarm.state, event))
    for branch in branches:
        if alarm.holds(branch.guard):
            return branch
    raise AssertionError(f"no branch of {(alarm.state, event)} applies; the table needs an ALWAYS branch")


def _why_not(state: AlarmState, event: AlarmEvent) -> str:
    if event is AlarmEvent.ACKNOWLEDGE and state is AlarmState.SHELVED:
        return "it is shelved; unshelve it first"
    if event is AlarmEvent.ACKNOWLEDGE:
        return f"it is {state.value}, there is nothing to acknowledge"
    if event in (AlarmEvent.UNSHELVE, AlarmEvent.SHELVE_EXPIRED):
        return f"it is not shelved (it is {state.value})"
    return f"{event.value} does not apply when it is {state.value}"


def _enter(alarm: _Alarm, target: AlarmState) -> None:
    """State entry effects: what being in `target` implies about acknowledgement and the shelf."""
    if target is AlarmState.SHELVED:
        alarm.state = target
        return
    alarm.shelf = None
    if target in UNACKED_STATES and not alarm.unacked:
        alarm.acked_by = alarm.acked_at_s = None  # e.g. re-annunciated after a shelf: the old ack is void
    alarm.state = target
    alarm.unacked = target in UNACKED_STATES


def _require_user(alarm_id: str | None, action: AlarmEvent, user: str) -> str:
    who = user.strip()
    if not who:
        raise AlarmActionRefused(alarm_id, action, "the operator must be named (log in first)")
    return who


def _frozen(evidence: Mapping[str, object]) -> Mapping[str, object]:
    """A read-only copy, so a caller reusing its dict cannot rewrite what a record proved."""
    return MappingProxyType(dict(evidence))


def _display_order(status: AlarmStatus) -> tuple[int, float, str]:
    raised = status.raised_at_s if status.raised_at_s is not None else math.inf
    return (-status.definition.severity.rank, raised, status.id)
