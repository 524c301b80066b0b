"""Station machines: built from their tables, every state reachable, fault from anywhere, never vent."""

from __future__ import annotations

from pathlib import Path

import pytest
from transitions import MachineError

from controller.config.line_config import load_line_config
from controller.line.actions import opens_or_starts
from controller.line.stations import TABLES, Station, safe_actions
from sequences.state_machine_docs import render_docs

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [None, *sorted((ROOT / "deploy" / "lines").glob("*.toml"))]


@pytest.mark.parametrize("kind", list(TABLES))
def test_every_state_is_reachable_and_fault_is_reachable_from_all(kind: str) -> None:
    states, transitions, initial = TABLES[kind]
    edges: dict[str, set[str]] = {s: set() for s in states}
    for t in transitions:
        sources = (
            states if t["source"] == "*" else ([t["source"]] if isinstance(t["source"], str) else t["source"])
        )
        for source in sources:
            edges[source].add(t["dest"])
    seen, frontier = {initial}, [initial]
    while frontier:
        for nxt in edges[frontier.pop()] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    assert seen == set(states)
    assert all("fault" in edges[s] or s == "fault" for s in states)
    assert edges["fault"] - {"fault"}, "a fault must be resettable"


async def test_antechamber_purge_walks_the_table() -> None:
    station = Station("inlet", "antechamber")
    assert station.state == "sealed"
    for trigger in (
        "evacuate",
        "reached_vacuum",
        "back_fill",
        "reached_atmosphere_in_spec",
        "open_inner_door",
    ):
        await station.fire(trigger)
    assert station.state == "transfer"
    assert [h[2] for h in station.history][-1] == "open_inner_door"
    with pytest.raises(MachineError):
        await station.fire("vent")  # never vent with the inner door open
    assert station.state == "transfer"


async def test_fault_from_depositing_and_reset() -> None:
    station = Station("process", "process_chamber")
    for trigger in ("pump_down", "reached_base_pressure", "deposit", "fault"):
        await station.fire(trigger)
    assert station.state == "fault"
    assert station.allowed_triggers() == ["fault", "reset"]
    await station.fire("reset")
    assert station.state == "idle"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem if p else "standard")
def test_safe_actions_only_close_and_switch_off(path: Path | None) -> None:
    config = load_line_config(path)
    for space in config.spaces:
        actions = safe_actions(config, space.name)
        assert actions, space.name
        assert not [a for a in actions if opens_or_starts(a) and not hasattr(a, "setpoint_c")], space.name


def test_generated_state_diagrams_are_committed() -> None:
    assert (ROOT / "docs" / "state_machines.md").read_text() == render_docs()
