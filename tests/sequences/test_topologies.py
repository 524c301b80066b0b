"""The shipped topology variants start and run a job: one antechamber serving as inlet and outlet, and
two deposition systems joined through an intermediate inert transfer chamber."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.errors import ConfigFileError
from controller.line.sensor_coverage import atmosphere_blind_spots
from sequences.job_plans import plan
from sequences.layer_plan import step_chambers
from sequences.line_route import Passage, route_of
from sequences.operator_desk import Request
from sequences.recipe import parse_recipe
from sequences.recipe_on_line import RecipeDoesNotFitLine, check_recipe_on_line
from sim_hardware.faults import Fault, inject
from tests.sequences.rig import LINES, rig_on

# the method's two-system job: lithium onto a bare copper foil in the first system, the sulfide
# electrolyte onto it in the second
TWO_SYSTEMS = """
name = "li-then-electrolyte"
description = "100 nm Li sputtered on Cu in system 1, 50 nm electrolyte in system 2"
[base]
material = "Cu"
thickness_um = 10.0
[[targets]]
id = "LI"
material = "Li"
[[targets]]
id = "SE"
material = "57Li2S-38SiS2-5Li3PO4"
[[steps]]
kind = "deposit"
layer = "lithium"
method = "sputtering"
target = "LI"
thickness_um = 0.1
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
[[steps]]
kind = "deposit"
layer = "electrolyte"
method = "sputtering"
target = "SE"
thickness_um = 0.05
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
"""
TWO_SYSTEMS_LINE = LINES / "two_chambers.toml"


def test_the_shared_antechamber_is_inlet_and_outlet_of_its_route() -> None:
    route = route_of(load_line_config(LINES / "shared_antechamber.toml"))
    assert (route.inlet, route.process, route.outlet) == ("antechamber", "process", "antechamber")
    assert route.inlet_door == route.outlet_door == "antechamber.outer"


def test_the_two_system_route_passes_the_transfer_chamber_between_the_systems() -> None:
    route = route_of(load_line_config(TWO_SYSTEMS_LINE))
    assert route.chambers == ("process1", "process2")
    [passage] = route.passages
    assert passage == Passage("process1", "transfer", "process2", "transfer_gate1", "transfer_gate2")
    assert (route.inlet_gate, route.outlet_gate) == ("inlet_gate", "outlet_gate")
    assert route.spaces == ("inlet", "process1", "transfer", "process2", "outlet")


def test_each_layer_goes_to_the_system_whose_sources_serve_it() -> None:
    config = load_line_config(TWO_SYSTEMS_LINE)
    fitted = check_recipe_on_line(parse_recipe(TWO_SYSTEMS, "r.toml"), config)
    assert [p.chamber for p in fitted.plans if p is not None] == ["process1", "process2"]
    phases = [p.name for p in plan(fitted.recipe, config)]
    lithium, electrolyte = phases.index("deposit_1"), phases.index("deposit_2")
    passing = ["leave_process1", "purge_transfer", "prepare_process2", "pass_transfer"]
    assert phases[lithium + 1 : lithium + 5] == passing
    assert phases[lithium + 5 : electrolyte] == ["pump_down_2"]
    # an etch goes with the layer after it (the method etches immediately before deposition), a heat
    # treatment stays where the electrode is
    etched = (
        TWO_SYSTEMS.replace(
            '[[steps]]\nkind = "deposit"\nlayer = "electrolyte"',
            '[[steps]]\nkind = "etch"\ngas = "Ar"\nsubstrate_temp_c = 25.0\nduration_s = 60.0\n'
            '[[steps]]\nkind = "deposit"\nlayer = "electrolyte"',
        )
        + '[[steps]]\nkind = "anneal"\ntemp_c = 120.0\nduration_s = 300.0\n'
    )
    where = step_chambers(parse_recipe(etched, "r.toml"), config, ("process1", "process2"))
    assert where == ["process1", "process2", "process2", "process2"]
    # a step may name its system; one the line does not have is refused naming the recipe's field
    named = TWO_SYSTEMS.replace('target = "SE"', 'target = "SE"\nchamber = "process3"')
    refused = r"steps\[1\]\.chamber = 'process3': not a process chamber"
    with pytest.raises(RecipeDoesNotFitLine, match=refused):
        check_recipe_on_line(parse_recipe(named, "r.toml"), config)


def test_a_layer_no_system_of_the_line_can_do_is_refused_naming_the_layer_and_the_sources(
    tmp_path: Path,
) -> None:
    # the lithium system has no laser, and the electrolyte system's laser is calibrated for electrolytes
    laser = TWO_SYSTEMS.replace('"lithium"\nmethod = "sputtering"', '"lithium"\nmethod = "laser_ablation"')
    laser = laser.replace("process_pressure_pa = 0.5\n[[steps]]", "[[steps]]", 1)
    recipe = tmp_path / "laser.toml"
    recipe.write_text(laser, encoding="utf-8")
    line = str(TWO_SYSTEMS_LINE)
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "recipe", "check", "--config", line, str(recipe)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [refusal] = done.stderr.splitlines()
    assert refusal.startswith(
        f"{recipe}: steps[0].method = 'laser_ablation': no chamber of the line can do a lithium layer by "
        f"laser_ablation ({TWO_SYSTEMS_LINE}: sources (process1: dc_sputter (sputtering), "
    )
    assert "process2: rf_sputter (sputtering)" in refusal
    # the electrode goes one way: lithium after the electrolyte would need the system it has left
    recipe_both = parse_recipe(TWO_SYSTEMS, "r.toml")
    swapped = dataclasses.replace(recipe_both, steps=recipe_both.steps[::-1])
    with pytest.raises(RecipeDoesNotFitLine) as caught:
        check_recipe_on_line(swapped, load_line_config(TWO_SYSTEMS_LINE))
    assert caught.value.refusals[0].startswith(
        "r.toml: steps[1].method = 'sputtering': only process1 can do a lithium layer by sputtering, "
        "and the electrode has left it by then"
    )


@pytest.mark.parametrize(
    ("text", "field", "allowed"),
    [
        (  # the old arrangement: two chambers joined by a gate valve directly
            'between = ["process1", "transfer"]',
            "ports[2].between",
            "not two process chambers: two deposition systems are joined through a transfer_chamber",
        ),
        ('kind = "transfer_chamber"', "spaces[2].turbo_speed_l_s", "a transfer chamber is rough-pumped: 0"),
        (  # the intermediate space stays inert: no door to the room
            'between = ["room", "inlet"]',
            "ports[0].between",
            "a transfer_chamber has no door to the room",
        ),
    ],
)
def test_a_two_system_line_that_is_not_the_methods_arrangement_is_refused_naming_the_field(
    tmp_path: Path, text: str, field: str, allowed: str
) -> None:
    shipped = TWO_SYSTEMS_LINE.read_text(encoding="utf-8")
    assert text in shipped
    wrong = {
        'between = ["process1", "transfer"]': 'between = ["process1", "process2"]',
        'kind = "transfer_chamber"': 'kind = "transfer_chamber"\nturbo_speed_l_s = 100.0',
        'between = ["room", "inlet"]': 'between = ["room", "transfer"]',
    }[text]
    path = tmp_path / "line.toml"
    path.write_text(shipped.replace(text, wrong, 1), encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_line_config(path)
    assert caught.value.field == field
    assert allowed in caught.value.allowed


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_one_job_deposits_in_both_systems_and_passes_the_transfer_chamber_never_exposed(
    tmp_path: Path,
) -> None:
    rig = rig_on("two_chambers.toml", tmp_path, both=TWO_SYSTEMS)
    result = await rig.run(rig.queue('[[jobs]]\nrecipe = "both.toml"\n'))
    [job] = result.jobs
    assert job.outcome == "done", job.message
    events = await rig.events(job)
    reports = [e["detail"] for e in events if e["kind"] == "step_report"]
    layers = [(d["layer"], d["chamber"]) for d in reports if isinstance(d, dict) and d["step"] == "deposit"]
    assert layers == [("lithium", "process1"), ("electrolyte", "process2")]
    record = await rig.exposure_record(job.items.base)
    assert record is not None
    assert not record.ever_exposed_to_non_inert
    path = [s.space for s in record.path]
    assert path[path.index("process1") :][:3] == ["process1", "transfer", "process2"]
    assert path[-1] != "transfer"


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_a_job_rejected_in_the_first_system_leaves_forward_through_the_transfer_chamber(
    tmp_path: Path,
) -> None:
    """The lithium system's turbo gate valve jams while the containers are opened: the electrode,
    then carried into process1, cannot be pumped down to base pressure; the reject path fills process1
    and takes it on through the transfer chamber and the electrolyte system to the outlet, sealed and
    out, never exposed."""
    rig = rig_on("two_chambers.toml", tmp_path, both=TWO_SYSTEMS)

    def jam_turbo_gate(_: Request) -> None:
        assert rig.sim is not None
        inject(rig.sim, Fault("stuck_actuator", actuator="process1.turbo_gate"))

    rig.on_prompt["open"] = jam_turbo_gate
    result = await rig.run(rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "both.toml"\n'))
    [job] = result.jobs
    assert job.outcome == "rejected", job.message
    assert "process1 turbo gate" in job.message
    events = await rig.events(job)
    phases = [e["detail"] for e in events if e["kind"] == "checkpoint"]
    done = [d["phase"] for d in phases if isinstance(d, dict) and d["status"] == "done"]
    assert "reject_pass_transfer" in done
    assert done[-1] == "reject_unload"
    record = await rig.exposure_record(job.items.base)
    assert record is not None
    assert not record.ever_exposed_to_non_inert
    path = [s.space for s in record.path]
    assert path[path.index("process1") :][:3] == ["process1", "transfer", "process2"]
    assert path[-1] == "room"


def test_a_transfer_chamber_without_a_dew_point_transmitter_is_named_at_config_check(tmp_path: Path) -> None:
    blocks = TWO_SYSTEMS_LINE.read_text(encoding="utf-8").split("[[devices]]")
    path = tmp_path / "line.toml"
    path.write_text(
        "[[devices]]".join(b for b in blocks if 'name = "transfer_dewpoint"' not in b), encoding="utf-8"
    )
    assert atmosphere_blind_spots(load_line_config(TWO_SYSTEMS_LINE)) == []
    [spot] = atmosphere_blind_spots(load_line_config(path))
    assert spot.startswith(
        f"{path}: spaces[2] 'transfer': the unsealed electrode passes through here but no dew-point"
    )
