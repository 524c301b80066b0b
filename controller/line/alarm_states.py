"""The ISA-18.2 lifecycle of one alarm, as a table: its states, events, guards and transitions.

Pure data and pure functions; `controller.line.alarms.AlarmBoard` applies the table to the line's
alarms. The lifecycle lives in one table, `TRANSITIONS` ((state, event) -> guarded branches); no state
changes anywhere else, and `transition_table_mermaid()` draws the docs diagram from it::

    normal ──raise──▶ active_unacked ──ack──▶ active_acked ──clear──▶ normal
                        │ clear (latching)                   ▲
                        ▼                                    │
                      cleared_unacked ──────────ack──────────┘      (raise again: back to active_unacked)
    any of the above ──shelve(user, reason, until)──▶ shelved ──unshelve / expiry──▶ the true state

Why each rule is what it is:
- *Latch*: a latching alarm leaves the display only when its condition is gone **and** someone
  acknowledged it, so a dew-point excursion that came and went overnight is still there in the morning.
  A non-latching alarm goes straight to normal when its condition clears.
- *Shelving* hides a nuisance alarm for a bounded time and only with a reason; it does not acknowledge.
  While shelved the condition is still tracked, so the shelf ends in the true state: condition active ->
  `active_unacked` (annunciated again, even if it was acknowledged before: the operator was blind to it);
  a latched, unacknowledged occurrence -> `cleared_unacked`; otherwise `normal`.
  Acknowledging a shelved alarm is refused (nobody can see it); `acknowledge_all` skips shelved alarms.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class Severity(enum.Enum):
    """Alarm priority; compares by urgency so `max(severities)` is the most urgent."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK: Final = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class AlarmState(enum.StrEnum):
    NORMAL = "normal"
    ACTIVE_UNACKED = "active_unacked"
    ACTIVE_ACKED = "active_acked"
    CLEARED_UNACKED = "cleared_unacked"
    SHELVED = "shelved"


class AlarmEvent(enum.StrEnum):
    CONDITION_RAISED = "condition_raised"
    CONDITION_CLEARED = "condition_cleared"
    ACKNOWLEDGE = "acknowledge"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"


OPERATOR_EVENTS: Final = frozenset({AlarmEvent.ACKNOWLEDGE, AlarmEvent.SHELVE, AlarmEvent.UNSHELVE})
DISPLAYED_STATES: Final = frozenset(
    {AlarmState.ACTIVE_UNACKED, AlarmState.ACTIVE_ACKED, AlarmState.CLEARED_UNACKED}
)
UNACKED_STATES: Final = frozenset({AlarmState.ACTIVE_UNACKED, AlarmState.CLEARED_UNACKED})


class Guard(enum.Enum):
    """A condition on the alarm *before* the event; the first branch whose guard holds is taken."""

    ALWAYS = "always"
    LATCHING = "latching"
    CONDITION_ACTIVE = "condition active"
    LATCHED_UNACKED = "latched occurrence unacknowledged"


@dataclass(frozen=True, slots=True)
class Branch:
    guard: Guard
    target: AlarmState
    new_occurrence: bool = False
    """The condition came back from gone: count an occurrence, demand an acknowledgement, carry the trip."""


def _to(target: AlarmState, *, new_occurrence: bool = False) -> tuple[Branch, ...]:
    return (Branch(Guard.ALWAYS, target, new_occurrence),)


_S = AlarmState
_E = AlarmEvent
_UNSHELVED: Final = (
    Branch(Guard.CONDITION_ACTIVE, _S.ACTIVE_UNACKED),
    Branch(Guard.LATCHED_UNACKED, _S.CLEARED_UNACKED),
    Branch(Guard.ALWAYS, _S.NORMAL),
)

TransitionTable = Mapping[tuple[AlarmState, AlarmEvent], tuple[Branch, ...]]
TRANSITIONS: Final[TransitionTable] = MappingProxyType(
    {
        (_S.NORMAL, _E.CONDITION_RAISED): _to(_S.ACTIVE_UNACKED, new_occurrence=True),
        (_S.NORMAL, _E.CONDITION_CLEARED): _to(_S.NORMAL),
        (_S.NORMAL, _E.SHELVE): _to(_S.SHELVED),
        (_S.ACTIVE_UNACKED, _E.CONDITION_RAISED): _to(_S.ACTIVE_UNACKED),
        (_S.ACTIVE_UNACKED, _E.CONDITION_CLEARED): (
            Branch(Guard.LATCHING, _S.CLEARED_UNACKED),
            Branch(Guard.ALWAYS, _S.NORMAL),
        ),
        (_S.ACTIVE_UNACKED, _E.ACKNOWLEDGE): _to(_S.ACTIVE_ACKED),
        (_S.ACTIVE_UNACKED, _E.SHELVE): _to(_S.SHELVED),
        (_S.ACTIVE_ACKED, _E.CONDITION_RAISED): _to(_S.ACTIVE_ACKED),
        (_S.ACTIVE_ACKED, _E.CONDITION_CLEARED): _to(_S.NORMAL),
        (_S.ACTIVE_ACKED, _E.SHELVE): _to(_S.SHELVED),
        (_S.CLEARED_UNACKED, _E.CONDITION_RAISED): _to(_S.ACTIVE_UNACKED, new_occurrence=True),
        (_S.CLEARED_UNACKED, _E.CONDITION_CLEARED): _to(_S.CLEARED_UNACKED),
        (_S.CLEARED_UNACKED, _E.ACKNOWLEDGE): _to(_S.NORMAL),
        (_S.CLEARED_UNACKED, _E.SHELVE): _to(_S.SHELVED),
        (_S.SHELVED, _E.CONDITION_RAISED): (
            Branch(Guard.CONDITION_ACTIVE, _S.SHELVED),
            Branch(Guard.ALWAYS, _S.SHELVED, new_occurrence=True),
        ),
        (_S.SHELVED, _E.CONDITION_CLEARED): _to(_S.SHELVED),
        (_S.SHELVED, _E.SHELVE): _to(_S.SHELVED),
        (_S.SHELVED, _E.UNSHELVE): _UNSHELVED,
        (_S.SHELVED, _E.SHELVE_EXPIRED): _UNSHELVED,
    }
)
"""Every transition of the lifecycle. A missing (state, event) pair is an operator action that does not
apply in that state and is refused; the condition events are defined for every state."""


def transition_table_mermaid(table: TransitionTable = TRANSITIONS) -> str:
    """Mermaid `stateDiagram-v2` text for the docs, so the diagram can never drift from the code."""
    lines = ["stateDiagram-v2", f"    [*] --> {AlarmState.NORMAL.value}"]
    for (state, event), branches in table.items():
        for branch in branches:
            label = event.value
            if branch.guard is not Guard.ALWAYS:
                label += f" [{branch.guard.value}]"
            elif len(branches) > 1:
                label += " [otherwise]"
            if branch.new_occurrence:
                label += " / new occurrence + trip"
            lines.append(f"    {state.value} --> {branch.target.value} : {label}")
    return "\n".join(lines) + "\n"


__all__ = [
    "DISPLAYED_STATES",
    "OPERATOR_EVENTS",
    "TRANSITIONS",
    "UNACKED_STATES",
    "AlarmEvent",
    "AlarmState",
    "Branch",
    "Guard",
    "Severity",
    "TransitionTable",
    "transition_table_mermaid",
]
