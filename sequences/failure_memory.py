"""The "skip" policy's memory: why each job failed, and when failing the same way again must stop the queue.

A queue with `on_failure = "skip"` takes a failed electrode out as a reject and goes on. That is right
for a one-off (a bad foil, a recipe edge) and wrong for a cause that is still there: a dead turbo
fails every following job the same way and spends an electrode on each. So each failure gets a cause:

- an *equipment fault* when a device alarm (`device.*`, `comms.*`, MEDIUM or worse) is active or was
  raised during the job; the cause is the first-out alarm of its cascade when that is a device alarm
  (the turbo, not the pressure it let rise), else the oldest such alarm;
- otherwise the failure message, with its numbers taken out (two pump-downs that stalled at
  different pressures failed the same way).

`FailureMemory` counts failures in a row with the same cause (a job that ends otherwise resets it) and
says when the queue's limit is reached: `stop_after_equipment_faults` (default 1) or
`stop_after_same_failures` (default 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmBoard, AlarmStatus

EQUIPMENT_KINDS: Final = ("device", "comms")
_NUMBER: Final = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class FailureCause:
    key: str  # what "the same cause" compares: an alarm id, or the failure message without numbers
    equipment: bool
    words: str  # for the job record and the alarm

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "equipment": self.equipment, "words": self.words}


def _is_equipment(status: AlarmStatus, since_s: float) -> bool:
    raised = status.raised_at_s if status.raised_at_s is not None else float("-inf")
    return (
        status.id.partition(".")[0] in EQUIPMENT_KINDS
        and status.definition.severity >= Severity.MEDIUM
        and (status.condition_active or raised >= since_s)
    )


def failure_cause(alarms: AlarmBoard, message: str, since_s: float) -> FailureCause:
    """Why a job that started at `since_s` (epoch s) failed with `message`."""
    shown = alarms.active()
    equipment = [s for s in shown if _is_equipment(s, since_s)]
    if equipment:
        ids = {s.id for s in equipment}
        first_outs = [s.follows for s in shown if s.follows in ids]
        chosen_id = first_outs[0] if first_outs else None
        chosen = next((s for s in equipment if s.id == chosen_id or s.first_out), None)
        if chosen is None:
            chosen = min(equipment, key=lambda s: (s.raised_at_s or 0.0, s.id))
        detail = chosen.evidence.get("text")
        return FailureCause(chosen.id, True, str(detail) if detail else chosen.definition.text)
    return FailureCause(_NUMBER.sub("#", message).strip(), False, message)


class FailureMemory:
    """Consecutive failures of a queue with the same cause; see the module docstring."""

    def __init__(self, equipment_limit: int, same_limit: int) -> None:
        self.equipment_limit = equipment_limit
        self.same_limit = same_limit
        self.last: FailureCause | None = None
        self.in_a_row = 0

    def ended_otherwise(self) -> None:
        self.last, self.in_a_row = None, 0

    def failed(self, cause: FailureCause) -> bool:
        """Count this failure; True when the queue must stop here."""
        self.in_a_row = self.in_a_row + 1 if self.last is not None and self.last.key == cause.key else 1
        self.last = cause
        return self.in_a_row >= self.limit(cause)

    def limit(self, cause: FailureCause) -> int:
        return self.equipment_limit if cause.equipment else self.same_limit
