"""The PackML run states: the table allows what PackML allows and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequences.run_state import ACTING, FINAL, TRIGGERS, RunState, RunStateError, RunStateMachine

S = RunState


def run(machine: RunStateMachine, *triggers: str) -> RunState:
    for trigger in triggers:
        machine.fire(trigger)
    return machine.current


def test_a_clean_run_goes_idle_to_complete_and_resets() -> None:
    machine = RunStateMachine()
    seen: list[tuple[str, str, str]] = []
    machine.listeners.append(lambda a, b, t: seen.append((a.value, b.value, t)))
    assert run(machine, "start", "sc", "complete", "sc") is S.COMPLETE
    assert [d for _, d, _ in seen] == ["starting", "execute", "completing", "complete"]
    assert run(machine, "reset", "sc") is S.IDLE


def test_hold_and_suspend_return_to_execute_only_through_their_acting_states() -> None:
    machine = RunStateMachine()
    run(machine, "start", "sc", "hold")
    assert machine.current is S.HOLDING
    with pytest.raises(RunStateError):
        machine.fire("unhold")  # not before the line is safe (HELD)
    assert run(machine, "sc", "unhold", "sc") is S.EXECUTE
    assert run(machine, "suspend", "sc") is S.SUSPENDED
    assert "complete" not in machine.allowed()
    assert run(machine, "unsuspend", "sc") is S.EXECUTE


def test_aborted_leaves_only_by_clear_and_stopped_only_by_reset() -> None:
    machine = RunStateMachine()
    run(machine, "start", "sc", "abort", "sc")
    assert machine.allowed() == ["clear"]
    assert run(machine, "clear", "sc") is S.STOPPED
    assert machine.allowed() == ["abort", "reset"]


@given(st.lists(st.sampled_from(TRIGGERS), max_size=40))
def test_any_trigger_sequence_keeps_the_machine_in_a_known_state(triggers: list[str]) -> None:
    machine = RunStateMachine()
    for trigger in triggers:
        before = machine.current
        if trigger in machine.allowed():
            after = machine.fire(trigger)
            if trigger == "sc":
                assert after is ACTING[before]
            if trigger == "abort":
                assert after is S.ABORTING
        else:
            with pytest.raises(RunStateError):
                machine.fire(trigger)
            assert machine.current is before
        # a final state is left only by its own exit trigger (or abort from complete/stopped)
        if before in FINAL and machine.current is not before:
            assert trigger in ("reset", "clear", "abort", "stop")
