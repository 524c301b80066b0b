"""The shipped topology variants: one antechamber serving as inlet and outlet. Its shipped queue
(sequences/queues/shared-antechamber.toml) runs to the end in tests/sequences/test_shipped_runs.py."""

from __future__ import annotations

from controller.config.line_config import load_line_config
from sequences.production import route_of
from tests.sequences.rig import LINES


def test_the_shared_antechamber_is_inlet_and_outlet_of_its_route() -> None:
    route = route_of(load_line_config(LINES / "shared_antechamber.toml"))
    assert (route.inlet, route.process, route.outlet) == ("antechamber", "process", "antechamber")
    assert route.inlet_door == route.outlet_door == "antechamber.outer"
