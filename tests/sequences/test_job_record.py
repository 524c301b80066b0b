"""Decisions read back from a job's record, and where a resume may start: the pure part of crash safety."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.config.line_config import load_line_config
from sequences.job_plans import plan, reject_plan
from sequences.job_record import OUTCOME_RANK, decisions, record_findings, worst
from sequences.job_runner import checkpoint_in
from sequences.line_route import route_of
from sequences.recipe import parse_recipe
from tests.sequences.test_production import THIN_ANNEALED

ROUTE = route_of(load_line_config())
PHASES = plan(parse_recipe(THIN_ANNEALED, "thin.toml"))


def event(kind: str, **detail: Any) -> dict[str, Any]:
    return {"ts": 0.0, "kind": kind, "detail": detail}


def test_a_rejection_decides_the_fault_that_led_to_it() -> None:
    found = decisions([event("fault", phase="pump_down_1", error="turbo"), event("rejected", why="x")])
    assert found.rejected == {"why": "x"}
    assert found.fault is None
    assert found.floor == "rejected"


def test_a_fault_after_the_rejection_is_still_open() -> None:
    found = decisions([event("rejected", why="x"), event("fault", phase="reject_seal", error="door")])
    assert found.rejected is not None
    assert found.fault == {"phase": "reject_seal", "error": "door"}


def test_an_abort_is_the_floor_whatever_came_before() -> None:
    found = decisions([event("rejected", why="x"), event("abort", why="interlock acted")])
    assert (found.aborted, found.floor) == ("interlock acted", "aborted")


def test_other_events_decide_nothing() -> None:
    found = decisions([event("checkpoint", phase="load", status="done"), event("confirm", user="op1")])
    assert not found.any
    assert found.floor == "done"


@given(st.lists(st.sampled_from(["rejected", "fault", "abort", "checkpoint", "state"]), max_size=12))
def test_a_job_with_a_rejection_or_an_abort_on_record_never_ends_done(kinds: list[str]) -> None:
    found = decisions([event(k, why="w", phase="p", error="e") for k in kinds])
    final = worst("done", found.floor)
    if "rejected" in kinds or "abort" in kinds:
        assert final != "done"
    assert OUTCOME_RANK[final] >= OUTCOME_RANK["done"]


def test_an_unknown_outcome_counts_as_failed_never_as_done() -> None:
    assert worst("done", "mystery") == "mystery"
    assert worst("rejected", "done") == "rejected"
    assert worst("aborted", "failed") == "aborted"


def test_findings_name_every_decision_in_words() -> None:
    found = record_findings(
        [
            event("fault", phase="deposit_1", error="QCM crystal fail"),
            event("rejected", why="deposit_1 failed", **{"from": "process"}),
            event("partial_layer", layer="lithium", thickness_nm=310.0, target_nm=1000.0),
            event("checkpoint", phase="seal", status="done"),
        ]
    )
    assert found == [
        "fault in deposit_1: QCM crystal fail",
        "rejected in process: deposit_1 failed",
        "interrupted layer lithium: 310.0 nm of 1000.0 nm measured",
    ]


# -- where a resume starts ------------------------------------------------------------------------


def test_a_normal_checkpoint_resumes_in_the_normal_plan() -> None:
    assert checkpoint_in(PHASES, "") == (0, None)
    assert checkpoint_in(PHASES, "purge_inlet:done") == (2, None)
    assert checkpoint_in(PHASES, "purge_inlet:started") == (1, None)  # repeatable: again from its start
    index = [p.name for p in PHASES].index("deposit_1")
    assert checkpoint_in(PHASES, "deposit_1:started") == (index, "deposit_1")  # spoiled: reject


def test_a_reject_path_checkpoint_is_not_a_normal_one() -> None:
    """The bug this guards: `fill_process:started` of the reject path resumed the normal plan."""
    assert checkpoint_in(PHASES, "reject_fill_process:started") is None  # unknown: a person decides
    assert checkpoint_in(PHASES, "bogus:done") is None  # never restarts from load


def test_the_reject_plan_is_rebuilt_from_where_the_rejection_was_decided() -> None:
    from_process = reject_plan(ROUTE, "process")
    assert [p.name for p in from_process] == [
        "reject_fill_process",
        "reject_prepare_outlet",
        "reject_purge_outlet",
        "reject_transfer_out",
        "reject_seal",
        "reject_unload",
    ]
    assert [p.name for p in reject_plan(ROUTE, "inlet")] == ["reject_return"]
    assert [p.name for p in reject_plan(ROUTE, "outlet")] == [
        "reject_prepare_outlet",
        "reject_purge_outlet",
        "reject_seal",
        "reject_unload",
    ]
    assert reject_plan(ROUTE, "room") == reject_plan(ROUTE, None) == []
    # a checkpoint of the reject path is found in it; one the normal plan wrote before the rejection
    # starts the path at its beginning; one of another reject path is unknown
    assert checkpoint_in(from_process, "reject_seal:started", own_prefix="reject_") == (4, None)
    assert checkpoint_in(from_process, "reject_transfer_out:done", own_prefix="reject_") == (4, None)
    assert checkpoint_in(from_process, "deposit_1:started", own_prefix="reject_") == (0, None)
    assert checkpoint_in(from_process, "reject_return:started", own_prefix="reject_") is None
