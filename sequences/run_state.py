"""The run state model of a production job, after PackML (ISA-TR88.00.02).

Why PackML: operators and plant engineers already know what "held" or "suspended" means and what it
takes to leave it. Here:

- **holding → held → unholding**: an *internal* fault (a step failed or timed out, a device refused);
  the line goes to its safe state and the run waits for a person (or the batch policy) to decide.
- **suspending → suspended → unsuspending**: an *external* condition (gas supply low, an antechamber
  whose glove work needs it in spec and it is not); the run pauses at a point that is safe to wait at
  and resumes by itself once the condition has stayed clear for the settle time.
- **stopping → stopped**: an orderly stop asked for (SIGINT/SIGTERM of an unattended batch).
- **aborting → aborted**: a safety trip (the supervisor forced a safe action); only `clear` leaves it.

The machine is a plain `transitions.Machine` driven from the job runner's own task only (stack.md §3:
async machines are not atomic across tasks), so a transition never races another one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError


class RunState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    EXECUTE = "execute"
    COMPLETING = "completing"
    COMPLETE = "complete"
    HOLDING = "holding"
    HELD = "held"
    UNHOLDING = "unholding"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    UNSUSPENDING = "unsuspending"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ABORTING = "aborting"
    ABORTED = "aborted"
    CLEARING = "clearing"
    RESETTING = "resetting"


S = RunState
ACTING = {  # acting states end with `sc` (state complete) into their wait state
    S.STARTING: S.EXECUTE,
    S.COMPLETING: S.COMPLETE,
    S.HOLDING: S.HELD,
    S.UNHOLDING: S.EXECUTE,
    S.SUSPENDING: S.SUSPENDED,
    S.UNSUSPENDING: S.EXECUTE,
    S.STOPPING: S.STOPPED,
    S.ABORTING: S.ABORTED,
    S.CLEARING: S.STOPPED,
    S.RESETTING: S.IDLE,
}
_STOPPABLE = [
    S.IDLE,
    S.STARTING,
    S.EXECUTE,
    S.COMPLETING,
    S.COMPLETE,
    S.HOLDING,
    S.HELD,
    S.UNHOLDING,
    S.SUSPENDING,
    S.SUSPENDED,
    S.UNSUSPENDING,
    S.RESETTING,
]
_ABORTABLE = [s for s in S if s not in (S.ABORTING, S.ABORTED)]
_HOLDABLE = [S.STARTING, S.EXECUTE, S.SUSPENDING, S.SUSPENDED, S.UNSUSPENDING, S.UNHOLDING, S.COMPLETING]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": S.IDLE, "dest": S.STARTING},
    *({"trigger": "sc", "source": src, "dest": dest} for src, dest in ACTING.items()),
    {"trigger": "complete", "source": S.EXECUTE, "dest": S.COMPLETING},
    {"trigger": "hold", "source": _HOLDABLE, "dest": S.HOLDING},
    {"trigger": "unhold", "source": S.HELD, "dest": S.UNHOLDING},
    {"trigger": "suspend", "source": S.EXECUTE, "dest": S.SUSPENDING},
    {"trigger": "unsuspend", "source": S.SUSPENDED, "dest": S.UNSUSPENDING},
    {"trigger": "stop", "source": _STOPPABLE, "dest": S.STOPPING},
    {"trigger": "abort", "source": _ABORTABLE, "dest": S.ABORTING},
    {"trigger": "clear", "source": S.ABORTED, "dest": S.CLEARING},
    {"trigger": "reset", "source": [S.COMPLETE, S.STOPPED], "dest": S.RESETTING},
]
TRIGGERS = sorted({t["trigger"] for t in TRANSITIONS})
FINAL = frozenset({S.COMPLETE, S.STOPPED, S.ABORTED})

Listener = Callable[[RunState, RunState, str], None]  # (source, dest, trigger)


class RunStateError(Exception):
    """A trigger the current state does not accept: a bug in the runner, never a user error."""


class RunStateMachine:
    def __init__(self, initial: RunState = S.IDLE) -> None:
        self.state: str = initial.value
        self.listeners: list[Listener] = []
        self._machine = Machine(
            model=self,
            states=[s.value for s in S],
            transitions=[_plain(t) for t in TRANSITIONS],
            initial=initial.value,
            auto_transitions=False,
            send_event=True,
            after_state_change=self._notify,
        )

    @property
    def current(self) -> RunState:
        return RunState(self.state)

    def fire(self, trigger: str) -> RunState:
        try:
            self.trigger(trigger)  # type: ignore[attr-defined]  # added by transitions
        except MachineError as exc:
            raise RunStateError(f"{trigger!r} is not allowed in state {self.state!r}") from exc
        return self.current

    def allowed(self) -> list[str]:
        return sorted(t for t in self._machine.get_triggers(self.state) if t in TRIGGERS)

    def _notify(self, event: Any) -> None:
        source = RunState(event.transition.source)
        dest = RunState(event.transition.dest)
        for listener in list(self.listeners):
            listener(source, dest, event.event.name)


def _plain(transition: dict[str, Any]) -> dict[str, Any]:
    source = transition["source"]
    plain_source = [str(s) for s in source] if isinstance(source, list) else str(source)
    return {**transition, "source": plain_source, "dest": str(transition["dest"])}


def mermaid() -> str:
    """The run state diagram, generated from the table (for docs/state_machines.md)."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.IDLE.value}"]
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        lines += [f"    {RunState(s).value} --> {RunState(t['dest']).value}: {t['trigger']}" for s in sources]
    return "\n".join(lines)
