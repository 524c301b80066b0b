"""The alarm lifecycle: every row of the transition table, every refusal, and random operator sequences.

Time is passed in, so nothing here sleeps; the stateful test checks the latch, shelving and journal
promises after every step of random raise/clear/acknowledge/shelve/unshelve/tick sequences.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from controller.errors import UserError
from controller.line.alarm_states import (
    OPERATOR_EVENTS,
    TRANSITIONS,
    UNACKED_STATES,
    AlarmEvent,
    AlarmState,
    Severity,
    transition_table_mermaid,
)
from controller.line.alarms import (
    AlarmActionRefused,
    AlarmBoard,
    AlarmDefinition,
    AlarmDefinitionError,
    AlarmRecord,
    UnknownAlarm,
)

T0 = 1_700_000_000.0
SHELF_S = 600.0

LATCHING = AlarmDefinition(
    "frost_point_high:inlet",
    Severity.HIGH,
    "Inlet antechamber frost point above the limit",
    "Check the Ar supply and the glove ports; do not open the inlet door.",
)
NON_LATCHING = AlarmDefinition(
    "rate_unsteady:process",
    Severity.LOW,
    "Deposition rate unsteady",
    "Watch the QCM; adjust source power if it persists.",
    latching=False,
)
TRIPPING = AlarmDefinition(
    "substrate_overtemp:process",
    Severity.CRITICAL,
    "Substrate above the lithium limit",
    "Heater has been switched off; find out why the controller overshot.",
    trip="heater_off:substrate",
)

_S = AlarmState
_E = AlarmEvent


def _raise(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    return board.raise_alarm(alarm_id, t, {"frost_point_c": -41.5})


def _clear(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    return board.clear(alarm_id, t)


def _ack(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    return board.acknowledge(alarm_id, "ana", t)


def _shelve(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    return board.shelve(alarm_id, "ana", "frost sensor being replaced", t + SHELF_S, t)


def _unshelve(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    return board.unshelve(alarm_id, "ben", t)


def _expire(board: AlarmBoard, alarm_id: str, t: float) -> AlarmRecord | None:
    records = board.tick(t + 2 * SHELF_S)
    assert len(records) <= 1
    return records[0] if records else None


STEPS: dict[str, Callable[[AlarmBoard, str, float], AlarmRecord | None]] = {
    "raise": _raise,
    "clear": _clear,
    "ack": _ack,
    "shelve": _shelve,
    "unshelve": _unshelve,
    "expire": _expire,
}
EVENT_OF_STEP = {
    "raise": _E.CONDITION_RAISED,
    "clear": _E.CONDITION_CLEARED,
    "ack": _E.ACKNOWLEDGE,
    "shelve": _E.SHELVE,
    "unshelve": _E.UNSHELVE,
    "expire": _E.SHELVE_EXPIRED,
}


def _drive(board: AlarmBoard, alarm_id: str, steps: list[str]) -> float:
    t = T0
    for step in steps:
        t += 1.0
        STEPS[step](board, alarm_id, t)
    return t + 1.0


# (setup steps, definition, step under test, table row, branch index, expected state, recorded)
Row = tuple[list[str], AlarmDefinition, str, AlarmState, int, AlarmState, bool]
ROWS: list[Row] = [
    ([], LATCHING, "raise", _S.NORMAL, 0, _S.ACTIVE_UNACKED, True),
    ([], LATCHING, "clear", _S.NORMAL, 0, _S.NORMAL, False),
    ([], LATCHING, "shelve", _S.NORMAL, 0, _S.SHELVED, True),
    (["raise"], LATCHING, "raise", _S.ACTIVE_UNACKED, 0, _S.ACTIVE_UNACKED, False),
    (["raise"], LATCHING, "clear", _S.ACTIVE_UNACKED, 0, _S.CLEARED_UNACKED, True),
    (["raise"], NON_LATCHING, "clear", _S.ACTIVE_UNACKED, 1, _S.NORMAL, True),
    (["raise"], LATCHING, "ack", _S.ACTIVE_UNACKED, 0, _S.ACTIVE_ACKED, True),
    (["raise"], LATCHING, "shelve", _S.ACTIVE_UNACKED, 0, _S.SHELVED, True),
    (["raise", "ack"], LATCHING, "raise", _S.ACTIVE_ACKED, 0, _S.ACTIVE_ACKED, False),
    (["raise", "ack"], LATCHING, "clear", _S.ACTIVE_ACKED, 0, _S.NORMAL, True),
    (["raise", "ack"], LATCHING, "shelve", _S.ACTIVE_ACKED, 0, _S.SHELVED, True),
    (["raise", "clear"], LATCHING, "raise", _S.CLEARED_UNACKED, 0, _S.ACTIVE_UNACKED, True),
    (["raise", "clear"], LATCHING, "clear", _S.CLEARED_UNACKED, 0, _S.CLEARED_UNACKED, False),
    (["raise", "clear"], LATCHING, "ack", _S.CLEARED_UNACKED, 0, _S.NORMAL, True),
    (["raise", "clear"], LATCHING, "shelve", _S.CLEARED_UNACKED, 0, _S.SHELVED, True),
    (["raise", "shelve"], LATCHING, "raise", _S.SHELVED, 0, _S.SHELVED, False),
    (["shelve"], LATCHING, "raise", _S.SHELVED, 1, _S.SHELVED, True),
    (["shelve"], LATCHING, "clear", _S.SHELVED, 0, _S.SHELVED, False),
    (["raise", "shelve"], LATCHING, "clear", _S.SHELVED, 0, _S.SHELVED, True),
    (["shelve"], LATCHING, "shelve", _S.SHELVED, 0, _S.SHELVED, True),
    (["raise", "shelve"], LATCHING, "unshelve", _S.SHELVED, 0, _S.ACTIVE_UNACKED, True),
    (["raise", "ack", "shelve"], LATCHING, "unshelve", _S.SHELVED, 0, _S.ACTIVE_UNACKED, True),
    (["raise", "shelve", "clear"], LATCHING, "unshelve", _S.SHELVED, 1, _S.CLEARED_UNACKED, True),
    (["shelve", "raise", "clear"], LATCHING, "unshelve", _S.SHELVED, 1, _S.CLEARED_UNACKED, True),
    (["shelve"], LATCHING, "unshelve", _S.SHELVED, 2, _S.NORMAL, True),
    (["raise", "ack", "shelve", "clear"], LATCHING, "unshelve", _S.SHELVED, 2, _S.NORMAL, True),
    (["raise", "shelve", "clear"], NON_LATCHING, "unshelve", _S.SHELVED, 2, _S.NORMAL, True),
    (["raise", "shelve"], LATCHING, "expire", _S.SHELVED, 0, _S.ACTIVE_UNACKED, True),
    (["raise", "ack", "shelve"], LATCHING, "expire", _S.SHELVED, 0, _S.ACTIVE_UNACKED, True),
    (["raise", "shelve", "clear"], LATCHING, "expire", _S.SHELVED, 1, _S.CLEARED_UNACKED, True),
    (["shelve"], LATCHING, "expire", _S.SHELVED, 2, _S.NORMAL, True),
    (["raise", "shelve", "clear"], NON_LATCHING, "expire", _S.SHELVED, 2, _S.NORMAL, True),
]


def _row_id(row: Row) -> str:
    setup, definition, step, _state, _branch, expected, _recorded = row
    kind = "latching" if definition.latching else "non-latching"
    return f"{kind}:{'+'.join(setup) or 'new'}:{step}->{expected.value}"


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_each_row_of_the_transition_table(row: Row) -> None:
    setup, definition, step, from_state, branch_index, expected, recorded = row
    event = EVENT_OF_STEP[step]
    assert TRANSITIONS[(from_state, event)][branch_index].target is expected, "the row must match the table"
    board = AlarmBoard([definition])
    t = _drive(board, definition.id, setup)
    assert board.get(definition.id).state is from_state
    before = board.journal

    record = STEPS[step](board, definition.id, t)

    assert board.get(definition.id).state is expected
    if not recorded:
        assert record is None
        assert board.journal == before
        return
    assert record is not None
    assert board.journal == (*before, record)
    assert (record.event, record.from_state, record.to_state) == (event, from_state, expected)
    assert record.alarm_id == definition.id
    assert record.severity is definition.severity
    assert record.condition_active is board.get(definition.id).condition_active
    if event in OPERATOR_EVENTS:
        assert record.user in ("ana", "ben")
    else:
        assert record.user is None


def test_every_branch_of_the_table_has_a_row_test() -> None:
    covered = {(row[3], EVENT_OF_STEP[row[2]], row[4]) for row in ROWS}
    in_table = {
        (state, event, i) for (state, event), branches in TRANSITIONS.items() for i in range(len(branches))
    }
    assert covered == in_table


def test_condition_events_apply_in_every_state() -> None:
    for state in AlarmState:
        for event in (_E.CONDITION_RAISED, _E.CONDITION_CLEARED):
            assert (state, event) in TRANSITIONS


# ---- refusals: each one says why and leaves no trace


def _refusal_cases() -> list[
    tuple[str, AlarmDefinition, list[str], Callable[[AlarmBoard, float], object], str]
]:
    lid = LATCHING.id
    return [
        ("ack without user", LATCHING, ["raise"], lambda b, t: b.acknowledge(lid, "", t), "must be named"),
        ("ack blank user", LATCHING, ["raise"], lambda b, t: b.acknowledge(lid, "  ", t), "must be named"),
        ("ack in normal", LATCHING, [], lambda b, t: b.acknowledge(lid, "ana", t), "nothing to acknowledge"),
        ("ack twice", LATCHING, ["raise", "ack"], lambda b, t: b.acknowledge(lid, "ben", t), "active_acked"),
        ("ack shelved", LATCHING, ["raise", "shelve"], lambda b, t: b.acknowledge(lid, "ana", t), "unshelve"),
        ("ack all blank user", LATCHING, ["raise"], lambda b, t: b.acknowledge_all(" ", t), "must be named"),
        (
            "shelve without reason",
            LATCHING,
            [],
            lambda b, t: b.shelve(lid, "ana", "  ", t + 60, t),
            "reason is required",
        ),
        (
            "shelve without user",
            LATCHING,
            [],
            lambda b, t: b.shelve(lid, "", "noisy", t + 60, t),
            "must be named",
        ),
        (
            "shelve into the past",
            LATCHING,
            [],
            lambda b, t: b.shelve(lid, "ana", "noisy", t - 1, t),
            "future",
        ),
        ("shelve until now", LATCHING, [], lambda b, t: b.shelve(lid, "ana", "noisy", t, t), "future"),
        (
            "shelve too long",
            LATCHING,
            [],
            lambda b, t: b.shelve(lid, "ana", "noisy", t + 8 * 3600 + 1, t),
            "at most 28800 s (8 h)",
        ),
        (
            "shelve forever",
            LATCHING,
            [],
            lambda b, t: b.shelve(lid, "ana", "noisy", math.inf, t),
            "must be a time",
        ),
        (
            "shelve a tripping alarm",
            TRIPPING,
            ["raise"],
            lambda b, t: b.shelve(TRIPPING.id, "ana", "noisy", t + 60, t),
            "trips 'heater_off:substrate'",
        ),
        (
            "shelve an unshelvable alarm",
            AlarmDefinition("door_interlock:inlet", Severity.HIGH, "Inlet door refused", "", shelvable=False),
            [],
            lambda b, t: b.shelve("door_interlock:inlet", "ana", "noisy", t + 60, t),
            "not shelvable",
        ),
        ("unshelve not shelved", LATCHING, ["raise"], lambda b, t: b.unshelve(lid, "ana", t), "not shelved"),
        ("unshelve without user", LATCHING, ["shelve"], lambda b, t: b.unshelve(lid, "", t), "must be named"),
    ]


@pytest.mark.parametrize(
    ("definition", "setup", "action", "why"),
    [case[1:] for case in _refusal_cases()],
    ids=[case[0] for case in _refusal_cases()],
)
def test_refused_operator_actions_say_why_and_leave_no_trace(
    definition: AlarmDefinition,
    setup: list[str],
    action: Callable[[AlarmBoard, float], object],
    why: str,
) -> None:
    board = AlarmBoard([definition])
    t = _drive(board, definition.id, setup)
    journal, status = board.journal, board.get(definition.id)

    with pytest.raises(AlarmActionRefused, match=re.escape(why)) as refused:
        action(board, t)

    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, UserError)  # the CLI/HMI shows the message alone
    assert board.journal == journal
    assert board.get(definition.id) == status


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.raise_alarm("no_such_alarm", T0, {}),
        lambda b: b.clear("no_such_alarm", T0),
        lambda b: b.acknowledge("no_such_alarm", "ana", T0),
        lambda b: b.shelve("no_such_alarm", "ana", "noisy", T0 + 60, T0),
        lambda b: b.unshelve("no_such_alarm", "ana", T0),
        lambda b: b.get("no_such_alarm"),
    ],
    ids=["raise", "clear", "acknowledge", "shelve", "unshelve", "get"],
)
def test_an_undefined_alarm_is_a_key_error_that_names_it(call: Callable[[AlarmBoard], object]) -> None:
    board = AlarmBoard([LATCHING])
    with pytest.raises(KeyError) as missing:
        call(board)
    assert isinstance(missing.value, UnknownAlarm)
    assert str(missing.value) == (
        "alarm 'no_such_alarm' is not defined; "
        "add it to the alarm definitions or AlarmBoard.define() it first"
    )
    assert board.journal == ()


def test_shelving_for_exactly_the_maximum_is_allowed() -> None:
    board = AlarmBoard([LATCHING], max_shelve_s=3600.0)
    record = board.shelve(LATCHING.id, "ana", "pump-down chatter", T0 + 3600.0, T0)
    assert record.until_s == T0 + 3600.0
    assert record.reason == "pump-down chatter"
    with pytest.raises(AlarmActionRefused, match="at most 3600 s"):
        board.shelve(LATCHING.id, "ana", "pump-down chatter", T0 + 3600.5, T0)


# ---- definitions


def test_a_trip_makes_an_alarm_unshelvable_whatever_was_asked() -> None:
    assert not TRIPPING.shelvable
    assert not AlarmDefinition(
        "x", Severity.LOW, "x", "", trip="close_door:inlet_gate", shelvable=True
    ).shelvable


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"id": "comms/lost"}, "MQTT topic level"),
        ({"id": ""}, "MQTT topic level"),
        ({"id": "comms lost"}, "MQTT topic level"),
        ({"text": " "}, "needs a text"),
        ({"severity": "high"}, "must be a Severity"),
        ({"trip": ""}, "trip must name an action"),
    ],
)
def test_malformed_definitions_are_refused(kwargs: dict[str, object], why: str) -> None:
    fields: dict[str, object] = {"id": "ok", "severity": Severity.LOW, "text": "t", "guidance": "g"} | kwargs
    with pytest.raises(AlarmDefinitionError, match=why):
        AlarmDefinition(**fields)  # type: ignore[arg-type]


def test_dynamic_alarms_are_defined_once_and_cannot_change_meaning() -> None:
    board = AlarmBoard([LATCHING])
    comms = AlarmDefinition(
        "comms_lost:tpg_inlet", Severity.HIGH, "No reply from the inlet gauge", "Check RS-485"
    )
    board.define(comms)
    board.define(comms)  # the poller may announce the device again: harmless
    assert board.raise_alarm(comms.id, T0, {"error": "DeviceTimeout"}) is not None
    with pytest.raises(AlarmDefinitionError, match="already defined differently"):
        board.define(AlarmDefinition(comms.id, Severity.LOW, "No reply", "Check RS-485"))
    with pytest.raises(AlarmDefinitionError, match="defined twice"):
        AlarmBoard([LATCHING, LATCHING])
    assert board.definitions == (LATCHING, comms)


def test_board_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_shelve_s"):
        AlarmBoard([], max_shelve_s=0)
    with pytest.raises(ValueError, match="journal_limit"):
        AlarmBoard([], journal_limit=0)
    with pytest.raises(ValueError, match="finite epoch time"):
        AlarmBoard([LATCHING]).raise_alarm(LATCHING.id, math.nan, {})


def test_severity_orders_by_urgency() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW
    assert Severity.LOW <= Severity.LOW < Severity.CRITICAL
    assert max(Severity) is Severity.CRITICAL
    assert sorted([Severity.HIGH, Severity.LOW, Severity.CRITICAL]) == [
        Severity.LOW,
        Severity.HIGH,
        Severity.CRITICAL,
    ]


# ---- occurrences, evidence and trips


def test_a_repeated_raise_refreshes_evidence_without_a_new_occurrence() -> None:
    board = AlarmBoard([LATCHING])
    first = board.raise_alarm(LATCHING.id, T0, {"frost_point_c": -45.0})
    assert first is not None
    assert board.raise_alarm(LATCHING.id, T0 + 1, {"frost_point_c": -40.0}) is None
    status = board.get(LATCHING.id)
    assert status.occurrences == 1
    assert status.raised_at_s == T0
    assert status.evidence == {"frost_point_c": -40.0}
    assert first.evidence == {"frost_point_c": -45.0}
    board.clear(LATCHING.id, T0 + 2, {"frost_point_c": -55.0})
    board.raise_alarm(LATCHING.id, T0 + 3, {"frost_point_c": -44.0})
    assert board.get(LATCHING.id).occurrences == 2
    assert board.get(LATCHING.id).raised_at_s == T0 + 3


def test_evidence_is_copied_so_a_reused_dict_cannot_rewrite_history() -> None:
    board = AlarmBoard([LATCHING])
    evidence: dict[str, object] = {"frost_point_c": -41.0}
    record = board.raise_alarm(LATCHING.id, T0, evidence)
    evidence["frost_point_c"] = -70.0
    assert record is not None
    assert record.evidence == {"frost_point_c": -41.0}
    assert board.get(LATCHING.id).evidence == {"frost_point_c": -41.0}


def test_the_trip_rides_on_each_new_occurrence_only() -> None:
    board = AlarmBoard([TRIPPING])
    tid = TRIPPING.id
    first = board.raise_alarm(tid, T0, {"substrate_temp_c": 181.0})
    assert first is not None
    assert first.trip == "heater_off:substrate"
    assert board.raise_alarm(tid, T0 + 1, {"substrate_temp_c": 182.0}) is None
    cleared = board.clear(tid, T0 + 2)
    assert cleared is not None
    assert cleared.trip is None
    again = board.raise_alarm(tid, T0 + 3, {"substrate_temp_c": 180.0})  # from cleared_unacked
    assert again is not None
    assert again.trip == "heater_off:substrate"
    acked = board.acknowledge(tid, "ana", T0 + 4)
    assert acked.trip is None
    assert board.raise_alarm(tid, T0 + 5, {"substrate_temp_c": 185.0}) is None  # still the same occurrence
    board.clear(tid, T0 + 6)
    after_normal = board.raise_alarm(tid, T0 + 7, {"substrate_temp_c": 181.0})
    assert after_normal is not None
    assert after_normal.trip == "heater_off:substrate"
    assert [r.trip for r in board.journal if r.trip] == ["heater_off:substrate"] * 3


def test_acknowledging_records_who_and_when_and_a_new_occurrence_forgets_it() -> None:
    board = AlarmBoard([LATCHING])
    board.raise_alarm(LATCHING.id, T0, {})
    board.acknowledge(LATCHING.id, " ana ", T0 + 5)
    status = board.get(LATCHING.id)
    assert (status.acked_by, status.acked_at_s) == ("ana", T0 + 5)
    board.clear(LATCHING.id, T0 + 6)
    board.raise_alarm(LATCHING.id, T0 + 7, {})
    status = board.get(LATCHING.id)
    assert (status.acked_by, status.acked_at_s) == (None, None)
    assert status.unacknowledged


def test_a_shelf_ending_on_an_active_condition_annunciates_it_again() -> None:
    board = AlarmBoard([LATCHING])
    board.raise_alarm(LATCHING.id, T0, {})
    board.acknowledge(LATCHING.id, "ana", T0 + 1)
    board.shelve(LATCHING.id, "ana", "sensor swap", T0 + 100, T0 + 2)
    assert board.get(LATCHING.id).shelf is not None
    assert board.tick(T0 + 99.9) == []
    [expired] = board.tick(T0 + 100)  # the expiry instant itself ends the shelf
    assert (expired.event, expired.to_state, expired.until_s) == (
        _E.SHELVE_EXPIRED,
        _S.ACTIVE_UNACKED,
        T0 + 100,
    )
    assert expired.user is None
    status = board.get(LATCHING.id)
    assert status.shelf is None
    assert status.acked_by is None
    assert board.has_unacknowledged()


def test_reshelving_replaces_reason_and_expiry() -> None:
    board = AlarmBoard([LATCHING])
    board.shelve(LATCHING.id, "ana", "sensor swap", T0 + 100, T0)
    board.shelve(LATCHING.id, "ben", "sensor swap takes longer", T0 + 500, T0 + 50)
    shelf = board.get(LATCHING.id).shelf
    assert shelf is not None
    assert (shelf.user, shelf.reason, shelf.since_s, shelf.until_s) == (
        "ben",
        "sensor swap takes longer",
        T0 + 50,
        T0 + 500,
    )
    assert board.tick(T0 + 200) == []


# ---- queries


def test_active_lists_displayed_alarms_by_severity_then_first_out() -> None:
    medium = AlarmDefinition("o2_high:outlet", Severity.MEDIUM, "Outlet O2 high", "")
    board = AlarmBoard([NON_LATCHING, LATCHING, medium, TRIPPING])
    board.raise_alarm(NON_LATCHING.id, T0, {})
    board.raise_alarm(medium.id, T0 + 1, {})
    board.raise_alarm(LATCHING.id, T0 + 2, {})
    board.raise_alarm(TRIPPING.id, T0 + 3, {})
    medium_2 = AlarmDefinition("o2_high:inlet", Severity.MEDIUM, "Inlet O2 high", "")
    board.define(medium_2)
    board.raise_alarm(medium_2.id, T0 + 0.5, {})  # clock stepped back: stamped T0 + 3, so it sorts later
    assert [s.id for s in board.active()] == [
        TRIPPING.id,
        LATCHING.id,
        medium.id,
        medium_2.id,
        NON_LATCHING.id,
    ]
    board.shelve(medium.id, "ana", "O2 cell calibrating", T0 + 600, T0 + 4)
    assert medium.id not in [s.id for s in board.active()]
    assert [s.id for s in board.shelved()] == [medium.id]
    board.clear(NON_LATCHING.id, T0 + 5)
    assert NON_LATCHING.id not in [s.id for s in board.active()]


def test_has_unacknowledged_follows_visible_unacknowledged_alarms() -> None:
    board = AlarmBoard([LATCHING, NON_LATCHING])
    assert not board.has_unacknowledged()
    board.raise_alarm(LATCHING.id, T0, {})
    board.raise_alarm(NON_LATCHING.id, T0, {})
    assert board.has_unacknowledged()
    board.shelve(NON_LATCHING.id, "ana", "known flicker", T0 + 60, T0 + 1)
    board.clear(LATCHING.id, T0 + 2)
    assert board.has_unacknowledged()  # the latch
    acked = board.acknowledge_all("ana", T0 + 3)
    assert [(r.alarm_id, r.to_state) for r in acked] == [(LATCHING.id, _S.NORMAL)]
    assert board.get(NON_LATCHING.id).state is _S.SHELVED  # nobody saw it, nobody acknowledged it
    assert not board.has_unacknowledged()
    assert board.acknowledge_all("ana", T0 + 4) == []


# ---- journal and subscribers


def test_subscribers_get_every_record_in_journal_order_even_when_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    board = AlarmBoard([LATCHING, TRIPPING])
    seen: list[AlarmRecord] = []

    def broken_historian(record: AlarmRecord) -> None:
        raise OSError("database is locked")

    def controller(record: AlarmRecord) -> None:
        if record.trip is not None:  # performing the trip raises a consequence alarm from inside the callback
            board.raise_alarm(LATCHING.id, record.ts, {"cause": record.alarm_id})

    board.subscribe(broken_historian)
    board.subscribe(controller)
    board.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="controller.line.alarms"):
        record = board.raise_alarm(TRIPPING.id, T0, {"substrate_temp_c": 181.0})

    assert record is not None
    assert seen == list(board.journal)
    assert [r.alarm_id for r in seen] == [TRIPPING.id, LATCHING.id]
    failures = [r for r in caplog.records if "subscriber failed" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None


def test_unsubscribed_callbacks_hear_nothing_more() -> None:
    board = AlarmBoard([LATCHING])
    seen: list[AlarmRecord] = []
    unsubscribe = board.subscribe(seen.append)
    board.raise_alarm(LATCHING.id, T0, {})
    unsubscribe()
    unsubscribe()
    board.clear(LATCHING.id, T0 + 1)
    assert len(seen) == 1


def test_a_clock_stepping_back_keeps_the_journal_ordered(caplog: pytest.LogCaptureFixture) -> None:
    board = AlarmBoard([LATCHING])
    board.raise_alarm(LATCHING.id, T0 + 10, {})
    with caplog.at_level(logging.WARNING, logger="controller.line.alarms"):
        record = board.acknowledge(LATCHING.id, "ana", T0 + 5)
    assert record.ts == T0 + 10
    assert "went backwards" in caplog.text


def test_the_journal_keeps_the_most_recent_records_within_its_limit() -> None:
    board = AlarmBoard([NON_LATCHING], journal_limit=3)
    for i in range(4):
        board.raise_alarm(NON_LATCHING.id, T0 + 2 * i, {"i": i})
        board.clear(NON_LATCHING.id, T0 + 2 * i + 1)
    assert [r.ts for r in board.journal] == [T0 + 5, T0 + 6, T0 + 7]


def test_records_serialise_to_json() -> None:
    board = AlarmBoard([TRIPPING])
    record = board.raise_alarm(TRIPPING.id, T0, {"substrate_temp_c": 181.0})
    assert record is not None
    assert json.loads(json.dumps(record.as_dict())) == {
        "ts": T0,
        "alarm_id": TRIPPING.id,
        "event": "condition_raised",
        "from_state": "normal",
        "to_state": "active_unacked",
        "user": None,
        "reason": None,
        "evidence": {"substrate_temp_c": 181.0},
        "severity": "critical",
        "trip": "heater_off:substrate",
        "until_s": None,
        "condition_active": True,
        "first_out": True,  # nothing else was active: it opens its cascade
        "follows": None,
    }


def test_the_same_calls_give_the_same_journal() -> None:
    def run() -> tuple[AlarmRecord, ...]:
        board = AlarmBoard([LATCHING, NON_LATCHING, TRIPPING])
        board.raise_alarm(TRIPPING.id, T0, {"t": 181})
        board.raise_alarm(NON_LATCHING.id, T0 + 1, {})
        board.shelve(LATCHING.id, "ana", "calibration", T0 + 60, T0 + 2)
        board.raise_alarm(LATCHING.id, T0 + 3, {"fp": -40})
        board.acknowledge_all("ben", T0 + 4)
        board.tick(T0 + 61)
        return board.journal

    assert run() == run()


def test_the_mermaid_diagram_draws_every_branch_of_the_table() -> None:
    text = transition_table_mermaid()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert lines[1].strip() == "[*] --> normal"
    arrows = [line.strip() for line in lines[2:]]
    assert len(arrows) == sum(len(branches) for branches in TRANSITIONS.values())
    assert "active_unacked --> cleared_unacked : condition_cleared [latching]" in arrows
    assert "active_unacked --> normal : condition_cleared [otherwise]" in arrows
    assert "normal --> active_unacked : condition_raised / new occurrence + trip" in arrows
    assert {state.value for state in AlarmState} <= {line.split()[0] for line in arrows}
    assert not any(c in text for c in ";#")  # mermaid ends a transition label at these


# ---- random sequences


MAX_SHELVE_S = 100.0
SHELVABLE_MEDIUM = AlarmDefinition("o2_high:outlet", Severity.MEDIUM, "Outlet O2 high", "", latching=True)
MACHINE_DEFINITIONS = (TRIPPING, SHELVABLE_MEDIUM, NON_LATCHING)
BY_ID = {d.id: d for d in MACHINE_DEFINITIONS}
alarm_ids = st.sampled_from(sorted(BY_ID))
users = st.sampled_from(["ana", "ben", "", "  "])
reasons = st.sampled_from(["O2 cell calibrating", "chatter during pump-down", "", " "])


class AlarmLifecycle(RuleBasedStateMachine):
    """Random operator and condition sequences; the model tracks only the condition and the latch."""

    def __init__(self) -> None:
        super().__init__()
        self.board = AlarmBoard(MACHINE_DEFINITIONS, max_shelve_s=MAX_SHELVE_S)
        self.now = T0
        self.condition = dict.fromkeys(BY_ID, False)
        self.needs_ack = dict.fromkeys(BY_ID, False)  # an occurrence nobody has acknowledged yet
        self.seen: tuple[AlarmRecord, ...] = ()
        self.last_state = dict.fromkeys(BY_ID, _S.NORMAL)  # per alarm, from the journal alone
        self.last_tick = -math.inf

    @rule(dt=st.integers(min_value=0, max_value=60))
    def time_passes(self, dt: int) -> None:
        self.now += dt

    @rule(alarm_id=alarm_ids, value=st.integers(-80, 0))
    def condition_raised(self, alarm_id: str, value: int) -> None:
        before = self.board.get(alarm_id).state
        record = self.board.raise_alarm(alarm_id, self.now, {"value": value})
        if self.condition[alarm_id]:
            assert record is None
        else:
            self.needs_ack[alarm_id] = True
            assert record is not None
            tripping = BY_ID[alarm_id].trip is not None and before in (_S.NORMAL, _S.CLEARED_UNACKED)
            assert record.trip == (BY_ID[alarm_id].trip if tripping else None)
        self.condition[alarm_id] = True

    @rule(alarm_id=alarm_ids)
    def condition_cleared(self, alarm_id: str) -> None:
        record = self.board.clear(alarm_id, self.now)
        assert (record is not None) == self.condition[alarm_id]
        self.condition[alarm_id] = False

    @rule(alarm_id=alarm_ids, user=users)
    def acknowledge(self, alarm_id: str, user: str) -> None:
        journal, state = self.board.journal, self.board.get(alarm_id).state
        allowed = bool(user.strip()) and state in UNACKED_STATES
        try:
            record = self.board.acknowledge(alarm_id, user, self.now)
        except AlarmActionRefused:
            assert not allowed
            assert self.board.journal == journal
            assert self.board.get(alarm_id).state is state
            return
        assert allowed
        assert record.user == user.strip()
        self.needs_ack[alarm_id] = False

    @rule(user=users)
    def acknowledge_all(self, user: str) -> None:
        journal = self.board.journal
        try:
            records = self.board.acknowledge_all(user, self.now)
        except AlarmActionRefused:
            assert not user.strip()
            assert self.board.journal == journal
            return
        for record in records:
            self.needs_ack[record.alarm_id] = False
        assert not self.board.has_unacknowledged()

    @rule(
        alarm_id=alarm_ids,
        user=users,
        reason=reasons,
        duration_s=st.integers(-10, int(1.5 * MAX_SHELVE_S)),
    )
    def shelve(self, alarm_id: str, user: str, reason: str, duration_s: int) -> None:
        journal, state = self.board.journal, self.board.get(alarm_id).state
        until_s = self.now + duration_s
        allowed = (
            bool(user.strip())
            and bool(reason.strip())
            and BY_ID[alarm_id].shelvable
            and 0 < until_s - self.now <= MAX_SHELVE_S  # the span as the board sees it, rounding included
        )
        try:
            self.board.shelve(alarm_id, user, reason, until_s, self.now)
        except AlarmActionRefused:
            assert not allowed
            assert self.board.journal == journal
            assert self.board.get(alarm_id).state is state
            return
        assert allowed
        assert self.board.get(alarm_id).state is _S.SHELVED

    @rule(alarm_id=alarm_ids, user=users)
    def unshelve(self, alarm_id: str, user: str) -> None:
        journal, state = self.board.journal, self.board.get(alarm_id).state
        allowed = bool(user.strip()) and state is _S.SHELVED
        try:
            record = self.board.unshelve(alarm_id, user, self.now)
        except AlarmActionRefused:
            assert not allowed
            assert self.board.journal == journal
            return
        assert allowed
        self._shelf_ended(record)

    @rule()
    def tick(self) -> None:
        for record in self.board.tick(self.now):
            assert record.event is _E.SHELVE_EXPIRED
            assert record.until_s is not None
            assert record.until_s <= self.now
            self._shelf_ended(record)
        self.last_tick = self.now
        assert all(s.shelf is not None and s.shelf.until_s > self.now for s in self.board.shelved())

    def _shelf_ended(self, record: AlarmRecord) -> None:
        if self.condition[record.alarm_id]:
            assert record.to_state is _S.ACTIVE_UNACKED  # annunciated again after the shelf
            self.needs_ack[record.alarm_id] = True

    @invariant()
    def displayed_while_the_condition_or_the_latch_holds(self) -> None:
        for alarm_id, definition in BY_ID.items():
            status = self.board.get(alarm_id)
            assert status.condition_active is self.condition[alarm_id]
            if self.condition[alarm_id] or (definition.latching and self.needs_ack[alarm_id]):
                assert status.state is not _S.NORMAL

    @invariant()
    def normal_only_when_gone_and_acknowledged(self) -> None:
        for alarm_id, definition in BY_ID.items():
            state = self.board.get(alarm_id).state
            condition, needs_ack = self.condition[alarm_id], self.needs_ack[alarm_id]
            if state is _S.NORMAL:
                assert not condition
                assert not (definition.latching and needs_ack)
            if not definition.latching and not condition and state is not _S.SHELVED:
                assert state is _S.NORMAL  # non-latching: gone the moment it clears
            if state is _S.CLEARED_UNACKED:
                assert definition.latching
                assert not condition
                assert needs_ack
            if state in (_S.ACTIVE_UNACKED, _S.ACTIVE_ACKED):
                assert condition
                assert needs_ack is (state is _S.ACTIVE_UNACKED)

    @invariant()
    def shelves_have_a_reason_and_a_bounded_expiry(self) -> None:
        for alarm_id in BY_ID:
            status = self.board.get(alarm_id)
            if status.state is not _S.SHELVED:
                assert status.shelf is None
                continue
            assert status.definition.shelvable
            shelf = status.shelf
            assert shelf is not None
            assert shelf.reason.strip()
            assert shelf.user.strip()
            assert 0 < shelf.until_s - shelf.since_s <= MAX_SHELVE_S
            assert shelf.until_s > self.last_tick  # a tick leaves no expired shelf behind

    @invariant()
    def the_journal_is_append_only_ordered_and_attributed(self) -> None:
        journal = self.board.journal
        assert journal[: len(self.seen)] == self.seen
        new = journal[len(self.seen) :]
        assert all(a.ts <= b.ts for a, b in itertools.pairwise(self.seen[-1:] + new))
        for record in new:
            assert record.from_state is self.last_state[record.alarm_id], "records chain per alarm"
            self.last_state[record.alarm_id] = record.to_state
            if record.is_operator_action:
                assert record.user
                assert record.user.strip() == record.user
            else:
                assert record.user is None
            if record.event is _E.SHELVE:
                assert record.reason
            if record.trip is not None:
                assert record.event is _E.CONDITION_RAISED
                assert record.from_state in (_S.NORMAL, _S.CLEARED_UNACKED)
        for alarm_id, state in self.last_state.items():
            assert self.board.get(alarm_id).state is state
        self.seen = journal

    @invariant()
    def queries_agree_with_the_states(self) -> None:
        statuses = [self.board.get(alarm_id) for alarm_id in BY_ID]
        shown = self.board.active()
        assert {s.id for s in shown} == {s.id for s in statuses if s.state not in (_S.NORMAL, _S.SHELVED)}
        assert [s.definition.severity for s in shown] == sorted(
            (s.definition.severity for s in shown), reverse=True
        )
        assert self.board.has_unacknowledged() == any(s.state in UNACKED_STATES for s in statuses)


def test_random_alarm_sequences_keep_the_lifecycle_promises() -> None:
    run_state_machine_as_test(
        AlarmLifecycle,
        settings=settings(max_examples=200, stateful_step_count=50, deadline=None),
    )
