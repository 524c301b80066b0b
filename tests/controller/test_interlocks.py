"""The interlocks: every rule refuses what it must, allows what it may, and says why.

States are built through the real `build_line_state` (tests/controller/linestate_builder.py), so each
case is one the controller can actually meet: coil readbacks, limit switches, gauge ranges, staleness.
For every rule there is an allowed case next to the refused one, so a rule that refuses everything
would fail as surely as one that refuses nothing. A refusal must name its invariant (DESIGN.md §4),
its rule, and the reading that blocked it. A hypothesis test then throws random states and actions at
`check` and verifies, for every action it allows that could break an invariant, that the invariant
holds in the state it was allowed in.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config.line_config import ROOM
from controller.line.actions import (
    VALVES,
    Action,
    MoveItem,
    SetContainer,
    SetFilm,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetShutter,
    SetSource,
    SetTurbo,
    SetValve,
    opens_or_starts,
)
from controller.line.atmosphere import Atmosphere, Provenance
from controller.line.interlocks import Refusal, SafeAction, Verdict, check, watch
from controller.line.items import Item, ItemKind, is_exposed, materials_in, moved, space_of
from controller.line.state import LineState, SpaceMemory
from drivers.reading import Quality
from tests.controller.linestate_builder import (
    AIR,
    SOURCE_NAMES,
    VACUUM,
    Key,
    LineSpec,
    Space,
    build,
    container,
    copper_foil,
    io_key,
    keys,
    li_foil,
    snapshot,
    standard_config,
    sulfide_target,
)

PUMPED = {"process.backing_pump", "process.turbo_gate_valve"}  # a chamber on its turbo
ON_TURBO = Space(p_pa=1e-4, turbo_hz=1000.0, base_reached=True)
SPUTTERING = Space(p_pa=0.5, turbo_hz=1000.0, flow_sccm=20.0, base_reached=True)
ROUGHED = Space(p_pa=5.0, frost_c=-90.0, o2_ppmv=0.1, air_fraction=1.0)  # an antechamber pumped from air


def assert_allowed(state: LineState, action: Action) -> None:
    verdict = check(state, action)
    assert verdict.allowed, verdict.reason
    assert verdict.reason == "allowed"


def assert_refused(state: LineState, action: Action, invariant: str, rule: str, *words: str) -> Refusal:
    """Refused by `rule` of `invariant`, with every word (the readings that blocked it) in the reason."""
    verdict = check(state, action)
    assert not verdict.allowed, f"{action} was allowed"
    found = [r for r in verdict.refusals if (r.invariant, r.rule) == (invariant, rule)]
    assert found, f"expected [{invariant} {rule}], got: {verdict.reason}"
    naming = [r for r in found if all(word in r.reason for word in words)]
    assert naming, f"no [{invariant} {rule}] refusal names {words}: {verdict.reason}"
    assert f"[{invariant} {rule}]" in verdict.reason
    return naming[0]


# -- the verdict itself ----------------------------------------------------------------------------


def test_a_verdict_lists_every_refusal_and_formats_them() -> None:
    state = build(LineSpec(spaces={"inlet": Space(p_pa=50.0)}, items=[li_foil("li1", "inlet")]))
    verdict = check(state, SetPort("inlet.outer", True))
    assert [(r.invariant, r.rule) for r in verdict.refusals] == [
        ("I3", "not-atmospheric"),
        ("I3", "exposed-items"),
    ]
    assert verdict.reason.count("; ") == 1
    assert Verdict(True).reason == "allowed"


def test_a_resting_line_is_quiet() -> None:
    assert watch(build(LineSpec())) == []


# -- SetValve --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", [SetValve("attic", "vent", True), SetValve("inlet", "turbo_gate", True)], ids=["space", "valve"]
)
def test_an_unknown_valve_is_refused(action: SetValve) -> None:
    assert_refused(build(LineSpec()), action, "E", "unknown-target", action.space)


@pytest.mark.parametrize(
    ("space", "valve", "already_open", "pump"),
    [
        ("inlet", "rough", "vent_valve", "inlet.rough_pump"),
        ("inlet", "rough", "gas_fill_valve", "inlet.rough_pump"),
        ("outlet", "vent", "rough_valve", "outlet.rough_pump"),
        ("outlet", "vent", "gas_fill_valve", ""),
        ("process", "vent", "turbo_gate_valve", ""),
        ("inlet", "gas_fill", "rough_valve", "inlet.rough_pump"),
        ("inlet", "gas_fill", "vent_valve", ""),
        ("process", "turbo_gate", "vent_valve", "process.backing_pump"),
        ("process", "turbo_gate", "gas_fill_valve", "process.backing_pump"),
    ],
)
def test_forbidden_valve_combinations_are_refused(
    space: str, valve: str, already_open: str, pump: str
) -> None:
    outputs = {f"{space}.{already_open}", *([pump] if pump else [])}
    chamber = Space(p_pa=5.0, turbo_hz=1000.0) if valve == "turbo_gate" else Space()
    state = build(LineSpec(spaces={space: chamber}, outputs_open=outputs))
    other = already_open.removesuffix("_valve")
    assert_refused(state, SetValve(space, valve, True), "I4", "valve-combination", f"{other} valve")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("space", "valve", "spec"),
    [
        ("inlet", "rough", LineSpec(outputs_open={"inlet.rough_pump"})),
        ("inlet", "vent", LineSpec()),
        ("inlet", "gas_fill", LineSpec()),
        ("process", "rough", LineSpec(outputs_open={"process.backing_pump"})),
        ("process", "vent", LineSpec()),
        ("process", "gas_fill", LineSpec()),
        (
            "process",
            "turbo_gate",
            LineSpec(
                spaces={"process": Space(p_pa=5.0, turbo_hz=1000.0)}, outputs_open={"process.backing_pump"}
            ),
        ),
    ],
)
def test_each_valve_opens_alone_in_a_quiet_line(space: str, valve: str, spec: LineSpec) -> None:
    assert_allowed(build(spec), SetValve(space, valve, True))  # type: ignore[arg-type]


def test_a_vent_is_refused_while_an_air_sensitive_item_lies_bare_in_the_space() -> None:
    state = build(LineSpec(items=[li_foil("li1", "outlet"), sulfide_target("t1", "outlet")]))
    assert_refused(state, SetValve("outlet", "vent", True), "I3", "exposed-items", "li1", "t1", "outlet")


def test_a_vent_is_allowed_when_the_items_are_sealed_or_not_sensitive() -> None:
    items = [container("box", "outlet"), li_foil("li1", "box"), copper_foil("cu1", "outlet")]
    assert_allowed(build(LineSpec(items=items)), SetValve("outlet", "vent", True))


def test_a_vent_is_refused_while_the_turbo_spins() -> None:
    state = build(LineSpec(spaces={"process": Space(turbo_hz=800.0)}))
    assert_refused(state, SetValve("process", "vent", True), "I4", "turbo-vent", "800 Hz")


@pytest.mark.parametrize("failure", ["stale", "missing", "error"])
def test_a_vent_is_refused_when_the_turbo_speed_is_unknown(failure: str) -> None:
    """Bug fixed: an unknown speed used to skip the check as if the chamber had no turbo."""
    turbo = keys("process", "turbo")
    spec = {
        "stale": LineSpec(stale=turbo),
        "missing": LineSpec(missing=turbo),
        "error": LineSpec(quality=dict.fromkeys(turbo, Quality.ERROR)),
    }[failure]
    assert_refused(build(spec), SetValve("process", "vent", True), "I4", "turbo-vent", "speed unknown")


def test_a_vent_is_allowed_once_the_turbo_has_stopped() -> None:
    assert_allowed(
        build(LineSpec(spaces={"process": Space(turbo_hz=0.5)})), SetValve("process", "vent", True)
    )


@pytest.mark.parametrize(
    ("action", "gate", "neighbour"),
    [
        (SetValve("process", "vent", True), "inlet_gate", "inlet"),
        (SetValve("inlet", "vent", True), "inlet_gate", "process"),
        (SetPort("outlet.outer", True), "outlet_gate", "process"),
    ],
)
def test_air_is_never_let_into_a_space_whose_gate_stands_open(
    action: Action, gate: str, neighbour: str
) -> None:
    """Bug fixed: the neighbour (its bare items, its provenance) was not considered."""
    state = build(LineSpec(outputs_open={gate}))
    assert_refused(state, action, "I2", "inner-port-open", gate, neighbour)
    stuck = build(LineSpec(inputs={f"{gate}.closed": False}))  # commanded closed, switch not made
    assert_refused(stuck, action, "I2", "inner-port-open", gate)
    assert_allowed(build(LineSpec(spaces={"process": Space(turbo_hz=0.0)})), action)


def test_the_rough_valve_needs_its_pump_confirmed_running() -> None:
    assert_refused(build(LineSpec()), SetValve("inlet", "rough", True), "E", "pump-not-running", "inlet")
    tripped = LineSpec(outputs_open={"inlet.rough_pump"}, inputs={"inlet.rough_pump.running": False})
    assert_refused(build(tripped), SetValve("inlet", "rough", True), "E", "pump-not-running")
    unknown = LineSpec(outputs_open={"inlet.rough_pump"}, stale=[io_key("inlet.rough_pump.running")])
    assert_refused(build(unknown), SetValve("inlet", "rough", True), "E", "pump-not-running")
    assert_allowed(build(LineSpec(outputs_open={"inlet.rough_pump"})), SetValve("inlet", "rough", True))


def test_a_gas_fill_is_refused_with_the_turbo_gate_open_on_a_running_turbo() -> None:
    state = build(LineSpec(spaces={"process": ON_TURBO}, outputs_open=PUMPED))
    assert_refused(state, SetValve("process", "gas_fill", True), "I4", "turbo-fill", "turbo gate")
    closed = build(LineSpec(spaces={"process": ON_TURBO}, outputs_open={"process.backing_pump"}))
    assert_allowed(closed, SetValve("process", "gas_fill", True))


def test_a_back_fill_around_bare_items_needs_a_pressure_to_predict_from() -> None:
    gauges = [*keys("inlet", "gauges"), *keys("inlet", "box_pressure")]
    state = build(LineSpec(stale=gauges, items=[li_foil("li1", "inlet")]))
    assert_refused(state, SetValve("inlet", "gas_fill", True), "I1", "fill-unknown", "inlet pressure unknown")


def test_a_back_fill_from_a_poor_vacuum_of_air_around_bare_items_is_refused() -> None:
    state = build(
        LineSpec(spaces={"inlet": Space(p_pa=50.0, air_fraction=1.0)}, items=[li_foil("li1", "inlet")])
    )
    refusal = assert_refused(state, SetValve("inlet", "gas_fill", True), "I1", "fill-result", "50 Pa", "li1")
    assert refusal.evidence["predicted_o2_ppmv"] == pytest.approx(209_460 * 50 / 101_325, rel=1e-3)


def test_a_back_fill_from_a_good_vacuum_or_a_purged_space_is_allowed() -> None:
    deep = LineSpec(spaces={"inlet": Space(p_pa=1e-3, air_fraction=1.0)}, items=[li_foil("li1", "inlet")])
    assert_allowed(build(deep), SetValve("inlet", "gas_fill", True))
    purged = LineSpec(spaces={"inlet": Space(p_pa=50.0, air_fraction=1e-6)}, items=[li_foil("li1", "inlet")])
    assert_allowed(build(purged), SetValve("inlet", "gas_fill", True))


def test_the_turbo_gate_opens_only_below_its_pressure_limit() -> None:
    spec = LineSpec(
        spaces={"process": Space(p_pa=50.0, turbo_hz=1000.0)}, outputs_open={"process.backing_pump"}
    )
    assert_refused(
        build(spec), SetValve("process", "turbo_gate", True), "I4", "turbo-pressure", "50 Pa", "10 Pa"
    )
    unknown = replace(spec, missing=keys("process", "gauges"))
    assert_refused(build(unknown), SetValve("process", "turbo_gate", True), "I4", "turbo-pressure", "unknown")
    at_limit = replace(spec, spaces={"process": Space(p_pa=10.0, turbo_hz=1000.0)})
    assert_allowed(build(at_limit), SetValve("process", "turbo_gate", True))


def test_the_turbo_gate_never_opens_onto_a_stopped_or_unknown_rotor() -> None:
    stopped = LineSpec(
        spaces={"process": Space(p_pa=5.0, turbo_hz=0.0)}, outputs_open={"process.backing_pump"}
    )
    assert_refused(build(stopped), SetValve("process", "turbo_gate", True), "E", "turbo-stopped", "process")
    unknown = replace(
        stopped, spaces={"process": Space(p_pa=5.0, turbo_hz=1000.0)}, stale=keys("process", "turbo")
    )
    assert_refused(build(unknown), SetValve("process", "turbo_gate", True), "E", "turbo-stopped")


# -- outer doors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("p_pa", [50.0, 90_000.0, 104_000.0])
def test_an_outer_door_opens_only_at_atmospheric_pressure(p_pa: float) -> None:
    state = build(LineSpec(spaces={"inlet": Space(p_pa=p_pa)}))
    assert_refused(state, SetPort("inlet.outer", True), "I3", "not-atmospheric", f"{p_pa:.3g} Pa", "inlet")


def test_an_outer_door_with_no_pressure_reading_stays_shut() -> None:
    state = build(LineSpec(stale=[*keys("outlet", "gauges"), *keys("outlet", "box_pressure")]))
    assert_refused(state, SetPort("outlet.outer", True), "I3", "not-atmospheric", "unknown")


@pytest.mark.parametrize("p_pa", [101_325.0, 101_825.0, 99_500.0, 103_300.0])
def test_an_outer_door_opens_within_the_atmospheric_window(p_pa: float) -> None:
    assert_allowed(build(LineSpec(spaces={"inlet": Space(p_pa=p_pa)})), SetPort("inlet.outer", True))


def test_an_outer_door_stays_shut_over_bare_items_and_opens_over_sealed_ones() -> None:
    bare = build(LineSpec(items=[li_foil("li1", "outlet")]))
    assert_refused(bare, SetPort("outlet.outer", True), "I3", "exposed-items", "li1", "outlet")
    sealed = build(LineSpec(items=[container("box", "outlet"), li_foil("li1", "box")]))
    assert_allowed(sealed, SetPort("outlet.outer", True))


def test_an_outer_door_stays_shut_while_the_space_is_roughed() -> None:
    state = build(LineSpec(outputs_open={"inlet.rough_pump", "inlet.rough_valve"}))
    assert_refused(state, SetPort("inlet.outer", True), "I4", "pumping", "rough valve")


# -- inner ports -----------------------------------------------------------------------------------


def test_an_inner_port_between_two_inert_spaces_at_equal_pressure_opens() -> None:
    purged = Space(air_fraction=1e-9)
    assert_allowed(build(LineSpec(spaces={"process": purged})), SetPort("inlet_gate", True))


def test_an_inner_port_between_two_vacuums_opens() -> None:
    state = build(LineSpec(spaces={"inlet": ROUGHED, "process": VACUUM}))
    assert_allowed(state, SetPort("inlet_gate", True))


@pytest.mark.parametrize(
    ("inlet", "process", "words"),
    [
        (Space(), VACUUM, ("inlet is inert_in_spec", "process is vacuum")),
        (Space(o2_ppmv=25.0), Space(), ("inlet is inert_out_of_spec",)),
        (Space(frost_c=-40.0), Space(), ("inlet is inert_out_of_spec",)),
        (Space(), Space(air_fraction=1e-3), ("process is inert_out_of_spec",)),
        (AIR, Space(), ("inlet is air",)),
        (Space(p_pa=5_000.0), VACUUM, ("inlet is inert_in_spec",)),
    ],
    ids=["inert-vs-vacuum", "o2", "frost", "unpurged-chamber", "air", "half-pumped"],
)
def test_an_inner_port_between_incompatible_spaces_stays_shut(
    inlet: Space, process: Space, words: tuple[str, ...]
) -> None:
    state = build(LineSpec(spaces={"inlet": inlet, "process": process}))
    assert_refused(state, SetPort("inlet_gate", True), "I2", "incompatible", *words)


def test_an_inner_port_next_to_an_unknown_space_stays_shut() -> None:
    state = build(LineSpec(stale=keys("outlet", "o2")))
    assert_refused(state, SetPort("outlet_gate", True), "I2", "incompatible", "outlet is unknown")


def test_an_inner_port_with_an_unknown_pressure_on_one_side_names_it() -> None:
    state = build(LineSpec(missing=keys("process", "gauges")))
    assert_refused(state, SetPort("outlet_gate", True), "I2", "dp-unknown", "process")


def test_an_inner_port_stays_shut_across_a_pressure_step() -> None:
    state = build(LineSpec(spaces={"inlet": Space(p_pa=101_825.0), "process": Space(p_pa=100_000.0)}))
    refusal = assert_refused(state, SetPort("inlet_gate", True), "I2", "dp", "1.82e+03 Pa", "inlet_gate")
    assert refusal.evidence["dp_pa"] == pytest.approx(1_825.0)
    small = build(LineSpec(spaces={"inlet": Space(p_pa=101_825.0), "process": Space(p_pa=101_400.0)}))
    assert_allowed(small, SetPort("inlet_gate", True))


def test_an_inner_port_stays_shut_while_a_source_is_on() -> None:
    state = build(LineSpec(spaces={"inlet": ROUGHED, "process": VACUUM}, sources_on={"dc_sputter"}))
    assert_refused(state, SetPort("inlet_gate", True), "I6", "source-on", "dc_sputter")


def test_an_inner_port_stays_shut_while_the_source_state_is_unknown() -> None:
    """Bug fixed: a source never read (missing from the snapshot) counted as off."""
    spec = LineSpec(spaces={"inlet": ROUGHED, "process": VACUUM})
    for failure in (replace(spec, missing=[("sources", "*")]), replace(spec, stale=[("sources", "*")])):
        assert_refused(build(failure), SetPort("inlet_gate", True), "I6", "source-on", "rf_sputter")


def test_an_inner_port_never_exposes_a_running_turbo_to_the_other_side() -> None:
    """Bug fixed: two "vacuum" spaces (< 100 Pa) could be joined with the turbo gate open at 1e-4 Pa."""
    spec = LineSpec(
        spaces={"inlet": Space(p_pa=50.0, air_fraction=1.0), "process": ON_TURBO}, outputs_open=PUMPED
    )
    assert_refused(
        build(spec), SetPort("inlet_gate", True), "I4", "turbo-pressure", "inlet at 50 Pa", "process"
    )
    assert_allowed(
        build(replace(spec, spaces={"inlet": ROUGHED, "process": ON_TURBO})), SetPort("inlet_gate", True)
    )
    gate_shut = replace(spec, outputs_open={"process.backing_pump"})
    assert_allowed(build(gate_shut), SetPort("inlet_gate", True))


def test_a_port_that_does_not_exist_is_refused() -> None:
    assert_refused(build(LineSpec()), SetPort("back_door", True), "E", "unknown-target", "back_door")


# -- pumps, turbo, gas flow, shutters --------------------------------------------------------------


def test_pumps_start_anywhere_known() -> None:
    assert_allowed(build(LineSpec()), SetPump("inlet", True))
    assert_refused(build(LineSpec()), SetPump("attic", True), "E", "unknown-target", "attic")


def test_the_turbo_starts_only_with_its_backing_pump_running() -> None:
    assert_refused(build(LineSpec()), SetTurbo("process", True), "I4", "no-backing", "backing pump")
    tripped = LineSpec(outputs_open={"process.backing_pump"}, inputs={"process.backing_pump.running": False})
    assert_refused(build(tripped), SetTurbo("process", True), "I4", "no-backing")
    assert_allowed(build(LineSpec(outputs_open={"process.backing_pump"})), SetTurbo("process", True))


def test_the_turbo_does_not_start_into_an_open_gate_at_high_pressure() -> None:
    spec = LineSpec(spaces={"process": Space(p_pa=500.0)}, outputs_open=PUMPED)
    assert_refused(build(spec), SetTurbo("process", True), "I4", "turbo-pressure", "500 Pa")


def test_an_antechamber_has_no_turbo() -> None:
    assert_refused(build(LineSpec()), SetTurbo("inlet", True), "E", "unknown-target", "inlet")


def test_process_gas_never_flows_with_the_vent_open() -> None:
    state = build(LineSpec(outputs_open={"process.vent_valve"}))
    assert_refused(state, SetGasFlow("process", 20.0), "I4", "valve-combination", "vent valve")
    assert_allowed(
        build(LineSpec(spaces={"process": SPUTTERING}, outputs_open=PUMPED)), SetGasFlow("process", 20.0)
    )
    assert_refused(build(LineSpec()), SetGasFlow("attic", 20.0), "E", "unknown-target")


def test_shutters_open_in_known_spaces() -> None:
    assert_allowed(build(LineSpec()), SetShutter("process", "substrate", True))
    assert_refused(build(LineSpec()), SetShutter("attic", "substrate", True), "E", "unknown-target")


def test_the_film_is_set_only_while_no_source_of_the_chamber_runs() -> None:
    lithium = SetFilm("process", "Li", 0.53, 5.9)
    assert_allowed(build(LineSpec()), lithium)
    assert_refused(
        build(LineSpec(sources_on={"dc_sputter"})), lithium, "E", "film-during-layer", "dc_sputter"
    )
    # a source whose state is not known counts as on: the film is not changed into a growing layer
    stale = build(LineSpec(stale={("sources", "dc_sputter.output_on")}))
    assert_refused(stale, lithium, "E", "film-during-layer")
    assert_refused(build(LineSpec()), SetFilm("attic", "Li", 0.53, 5.9), "E", "unknown-target")


# -- heaters (invariant 5) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "highest_c"),
    [
        ([li_foil("li1", "process")], 179.0),
        ([container("box", "process"), li_foil("li1", "box")], 179.0),  # sealed: the heater still warms it
        ([Item("e1", li_foil("e1", "process").kind, "57Li2S-38SiS2-5Li3PO4/Li-In/Cu", "process")], 179.0),
        ([Item("e2", ItemKind.ELECTRODE, "57Li2S-38SiS2-5Li3PO4/Cu", "process")], 200.0),
        ([copper_foil("cu1", "process")], 250.0),
        # targets sit in their cooled sources, not on the substrate holder: they do not cap the heater
        (
            [
                copper_foil("cu1", "process"),
                sulfide_target("t1", "process"),
                Item("t2", ItemKind.TARGET, "Li", "process"),
            ],
            250.0,
        ),
        ([], 250.0),
    ],
    ids=["li", "sealed-li", "electrode", "sulfide", "copper", "targets-in-sources", "empty"],
)
def test_the_heater_stays_below_the_lowest_limit_present(items: list[Item], highest_c: float) -> None:
    state = build(LineSpec(items=items))
    assert_allowed(state, SetHeater("process", "substrate", highest_c))
    refusal = assert_refused(
        state,
        SetHeater("process", "substrate", highest_c + 1.0),
        "I5",
        "material-temperature",
        f"{highest_c:g} °C",
    )
    assert refusal.evidence["limit_c"] == highest_c


def test_the_heater_refusal_names_the_material() -> None:
    state = build(LineSpec(items=[li_foil("li1", "process")]))
    assert_refused(
        state, SetHeater("process", "substrate", 185.0), "I5", "material-temperature", "Li/Cu", "185"
    )


def test_lithium_elsewhere_does_not_limit_the_chamber() -> None:
    assert_allowed(build(LineSpec(items=[li_foil("li1", "inlet")])), SetHeater("process", "substrate", 220.0))


@pytest.mark.parametrize("setpoint", [math.nan, math.inf])
def test_a_setpoint_that_is_not_a_number_is_refused(setpoint: float) -> None:
    """Bug fixed: NaN compared False with every limit and passed."""
    assert_refused(
        build(LineSpec()), SetHeater("process", "substrate", setpoint), "I5", "material-temperature"
    )


def test_an_unknown_heater_space_is_refused() -> None:
    assert_refused(build(LineSpec()), SetHeater("attic", "substrate", 20.0), "E", "unknown-target")


# -- deposition sources (invariant 6) --------------------------------------------------------------


def sputter_ready(**changes: Any) -> LineSpec:
    """A closed chamber on its turbo at sputter pressure, base pressure reached."""
    return replace(LineSpec(spaces={"process": SPUTTERING}, outputs_open=PUMPED), **changes)


def test_a_source_starts_in_a_closed_chamber_at_base_then_process_pressure() -> None:
    assert_allowed(build(sputter_ready()), SetSource("process", "dc_sputter", True, 100.0))
    evaporating = LineSpec(spaces={"process": ON_TURBO}, outputs_open=PUMPED)
    assert_allowed(build(evaporating), SetSource("process", "evaporation", True, 50.0))


@pytest.mark.parametrize("gate", ["inlet_gate", "outlet_gate"])
def test_a_source_never_starts_with_a_gate_not_confirmed_closed(gate: str) -> None:
    opened = sputter_ready(outputs_open={*PUMPED, gate})
    assert_refused(build(opened), SetSource("process", "dc_sputter", True), "I6", "chamber-open", gate)
    stuck = sputter_ready(inputs={f"{gate}.closed": False})
    assert_refused(build(stuck), SetSource("process", "dc_sputter", True), "I6", "chamber-open", gate)
    unknown = sputter_ready(stale=[io_key(f"{gate}.closed")])
    assert_allowed(build(unknown), SetSource("process", "dc_sputter", True))  # coil closed, no switch: closed


def test_a_source_needs_the_base_pressure_first() -> None:
    never_pumped = sputter_ready(spaces={"process": replace(SPUTTERING, base_reached=False)})
    assert_refused(
        build(never_pumped), SetSource("process", "rf_sputter", True), "I6", "no-base-pressure", "0.000133 Pa"
    )


def test_reaching_the_base_pressure_is_remembered_until_gas_comes_in() -> None:
    """Bug fixed: rising above the turbo-gate limit (a transfer at atmosphere) kept the old base pressure."""
    memory: dict[str, SpaceMemory] = {}
    build(LineSpec(spaces={"process": replace(ON_TURBO, base_reached=False)}, outputs_open=PUMPED), memory)
    assert memory["process"].base_pressure_reached
    not_seeded = replace(SPUTTERING, base_reached=False)  # from here on only the memory knows
    assert_allowed(
        build(sputter_ready(spaces={"process": not_seeded}), memory), SetSource("process", "dc_sputter", True)
    )
    # the gate opened onto an inert antechamber at atmosphere, closed again, chamber pumped to 0.5 Pa
    build(LineSpec(spaces={"process": Space(p_pa=101_000.0)}, outputs_open={"inlet_gate"}), memory)
    state = build(sputter_ready(spaces={"process": not_seeded}), memory)
    assert_refused(state, SetSource("process", "dc_sputter", True), "I6", "no-base-pressure")


@pytest.mark.parametrize("outputs", [{"process.vent_valve"}, {"process.gas_fill_valve"}])
def test_venting_or_filling_forgets_the_base_pressure_at_once(outputs: set[str]) -> None:
    memory = {"process": SpaceMemory(Provenance(1e-9), base_pressure_reached=True)}
    build(LineSpec(spaces={"process": Space(p_pa=1e-4)}, outputs_open=outputs), memory)
    assert not memory["process"].base_pressure_reached


def test_a_source_needs_its_process_pressure() -> None:
    too_low = LineSpec(spaces={"process": ON_TURBO}, outputs_open=PUMPED)
    assert_refused(
        build(too_low),
        SetSource("process", "dc_sputter", True),
        "I6",
        "process-pressure",
        "0.0001 Pa",
        "0.1..1",
    )
    too_high = sputter_ready()
    assert_refused(
        build(too_high), SetSource("process", "evaporation", True), "I6", "process-pressure", "0.5 Pa"
    )
    unknown = sputter_ready(missing=keys("process", "gauges"))
    assert_refused(
        build(unknown), SetSource("process", "dc_sputter", True), "I6", "process-pressure", "unknown"
    )


def test_a_source_in_an_unknown_space_is_refused() -> None:
    assert_refused(build(LineSpec()), SetSource("attic", "dc_sputter", True), "E", "unknown-target")


# -- item moves (invariant 1) ----------------------------------------------------------------------


def transfer(**changes: Any) -> LineSpec:
    """The inlet gate open between two purged, inert spaces: the standard transfer."""
    return replace(
        LineSpec(spaces={"process": Space(air_fraction=1e-9)}, outputs_open={"inlet_gate"}), **changes
    )


def test_a_bare_foil_moves_through_an_open_gate_between_inert_spaces() -> None:
    assert_allowed(build(transfer(items=[li_foil("li1", "inlet")])), MoveItem("li1", "process"))


def test_a_move_needs_an_open_port() -> None:
    shut = transfer(outputs_open=set(), items=[container("box", "inlet"), li_foil("li1", "box")])
    assert_refused(build(shut), MoveItem("box", "process"), "E", "no-open-port", "inlet", "process")
    half = transfer(inputs={"inlet_gate.open": False}, items=[container("box", "inlet")])  # switch not made
    assert_refused(build(half), MoveItem("box", "process"), "E", "no-open-port")
    no_port = LineSpec(items=[container("box", "inlet")])
    assert_refused(build(no_port), MoveItem("box", "outlet"), "E", "no-open-port", "inlet", "outlet")


def test_a_bare_foil_never_moves_into_or_out_of_a_space_that_is_not_safe() -> None:
    state = build(
        transfer(
            spaces={"process": Space(air_fraction=1e-9, o2_ppmv=0.5), "inlet": Space(o2_ppmv=30.0)},
            items=[li_foil("li1", "inlet")],
        )
    )
    assert_refused(
        state, MoveItem("li1", "process"), "I1", "exposed-move", "li1", "inlet is inert_out_of_spec"
    )


def test_a_sealed_container_moves_whatever_the_atmosphere() -> None:
    spec = LineSpec(
        spaces={"inlet": AIR},
        outputs_open={"inlet.outer_door"},
        items=[container("box", ROOM), li_foil("li1", "box")],
    )
    assert_allowed(build(spec), MoveItem("box", "inlet"))


def test_an_open_box_in_an_open_box_still_carries_a_bare_foil() -> None:
    """Bug fixed: only the direct contents of what moves were checked."""
    items = [
        container("outer", "inlet", sealed=False),
        container("inner", "outer", sealed=False),
        li_foil("li1", "inner"),
    ]
    state = build(
        transfer(spaces={"inlet": Space(o2_ppmv=30.0), "process": Space(air_fraction=1e-9)}, items=items)
    )
    assert_refused(state, MoveItem("outer", "process"), "I1", "exposed-move", "outer", "inlet")


def test_taking_a_foil_out_of_its_sealed_box_into_air_is_refused() -> None:
    """Bug fixed: exposure was judged before the move only, when the sealed box still protected it."""
    state = build(LineSpec(spaces={"outlet": AIR}, items=[container("box", "outlet"), li_foil("li1", "box")]))
    assert_refused(state, MoveItem("li1", "outlet"), "I1", "exposed-move", "li1", "outlet is air")
    fine = build(LineSpec(items=[container("box", "outlet"), li_foil("li1", "box")]))
    assert_allowed(fine, MoveItem("li1", "outlet"))


def test_a_sealed_container_leaves_through_the_outer_door_into_the_room() -> None:
    """Bug fixed: the room was an unknown target, so step 8 of the process could never be recorded."""
    items = [container("box", "outlet"), li_foil("li1", "box")]
    spec = LineSpec(spaces={"outlet": AIR}, outputs_open={"outlet.outer_door"}, items=items)
    assert_allowed(build(spec), MoveItem("box", ROOM))
    assert_refused(
        build(replace(spec, outputs_open=set())), MoveItem("box", ROOM), "E", "no-open-port", "room"
    )
    bare = replace(spec, spaces={}, items=[li_foil("li1", "outlet")])
    assert_refused(build(bare), MoveItem("li1", ROOM), "I1", "exposed-move", "room air")


@pytest.mark.parametrize(
    ("item", "to", "invariant", "rule", "word"),
    [
        ("ghost", "process", "E", "unknown-target", "ghost"),
        ("cu1", "attic", "E", "unknown-target", "attic"),
        ("cu1", "li1", "E", "impossible-move", "not a container"),
        ("outer", "inner", "E", "impossible-move", "cycle"),
    ],
)
def test_moves_that_cannot_be_are_refused_not_crashed_on(
    item: str, to: str, invariant: str, rule: str, word: str
) -> None:
    items = [
        copper_foil("cu1", "inlet"),
        li_foil("li1", "inlet"),
        container("outer", "inlet"),
        container("inner", "outer"),
    ]
    assert_refused(build(LineSpec(items=items)), MoveItem(item, to), invariant, rule, word)


def test_putting_a_foil_into_a_box_in_the_same_inert_space_needs_no_port() -> None:
    state = build(LineSpec(items=[container("box", "outlet", sealed=False), li_foil("li1", "outlet")]))
    assert_allowed(state, MoveItem("li1", "box"))


# -- containers (invariant 1) ----------------------------------------------------------------------


def test_a_container_of_sensitive_items_opens_only_in_an_inert_in_spec_space() -> None:
    items = [container("box", "inlet"), li_foil("li1", "box")]
    assert_allowed(build(LineSpec(items=items)), SetContainer("box", sealed=False))
    wet = build(LineSpec(spaces={"inlet": Space(frost_c=-30.0)}, items=items))
    assert_refused(
        wet,
        SetContainer("box", sealed=False),
        "I1",
        "open-container",
        "li1",
        "inert_out_of_spec",
        "frost point",
    )
    vacuum = build(LineSpec(spaces={"inlet": ROUGHED}, items=items))
    assert_refused(vacuum, SetContainer("box", sealed=False), "I1", "open-container", "vacuum")


def test_a_container_of_copper_opens_anywhere() -> None:
    state = build(
        LineSpec(spaces={"inlet": AIR}, items=[container("box", "inlet"), copper_foil("cu1", "box")])
    )
    assert_allowed(state, SetContainer("box", sealed=False))


def test_opening_a_box_exposes_what_sits_in_an_open_box_inside_it() -> None:
    """Bug fixed: only direct contents were looked at, and an inner box is not itself sensitive."""
    items = [container("outer", "inlet"), container("inner", "outer", sealed=False), li_foil("li1", "inner")]
    state = build(LineSpec(spaces={"inlet": AIR}, items=items))
    assert_refused(state, SetContainer("outer", sealed=False), "I1", "open-container", "li1", "air")


def test_a_box_of_unlisted_material_does_not_crash_the_check() -> None:
    """Bug fixed: the contents' material was looked up even for a container (glass, plastic)."""
    items = [
        Item("jar", container("jar", "inlet").kind, "borosilicate glass", "inlet", True),
        li_foil("li1", "jar"),
    ]
    state = build(LineSpec(items=items))
    assert_allowed(state, SetContainer("jar", sealed=False))
    outer = [container("outer", "inlet"), replace(items[0], location="outer"), items[1]]
    assert_allowed(build(LineSpec(items=outer)), SetContainer("outer", sealed=False))


def test_opening_a_box_in_the_room_is_refused() -> None:
    """Bug fixed: a container outside the line (the room) had no space, so nothing was checked."""
    state = build(LineSpec(items=[container("box", ROOM), li_foil("li1", "box")]))
    assert_refused(state, SetContainer("box", sealed=False), "I1", "open-container", "li1", "room")


def test_only_containers_open() -> None:
    state = build(LineSpec(items=[li_foil("li1", "inlet")]))
    assert_refused(state, SetContainer("li1", sealed=False), "E", "unknown-target", "li1")
    assert_refused(state, SetContainer("ghost", sealed=False), "E", "unknown-target", "ghost")


# -- the safe direction is never blocked -----------------------------------------------------------

SAFE_ACTIONS: list[Action] = [
    *(SetValve(s, v, False) for s in ("inlet", "process", "outlet") for v in VALVES),
    *(SetPort(p, False) for p in ("inlet.outer", "inlet_gate", "outlet_gate", "outlet.outer")),
    *(SetPump(s, False) for s in ("inlet", "outlet")),  # the process backing pump: see below
    SetTurbo("process", False),
    SetGasFlow("process", 0.0),
    *(SetSource("process", s, False) for s in SOURCE_NAMES),
    SetShutter("process", "substrate", False),
    SetContainer("box", sealed=True),
    SetHeater("process", "substrate", 20.0),
]


def worst_state() -> LineState:
    """Everything wrong at once: doors open, air, a hot substrate next to lithium, readings stale."""
    return build(
        LineSpec(
            spaces={
                "inlet": AIR,
                "process": Space(p_pa=5_000.0, turbo_hz=1000.0, substrate_c=230.0),
                "outlet": AIR,
            },
            outputs_open={
                "inlet_gate",
                "outlet.outer_door",
                "process.turbo_gate_valve",
                "inlet.vent_valve",
                "inlet.rough_valve",
            },
            sources_on=set(SOURCE_NAMES),
            stale=[("remote_io", "*"), *keys("outlet", "o2")],
            items=[
                container("box", "inlet", sealed=False),
                li_foil("li1", "box"),
                li_foil("li2", "process"),
                container("box2", "inlet"),
                li_foil("li3", "box2"),
            ],
        )
    )


@pytest.mark.parametrize("action", SAFE_ACTIONS, ids=str)
def test_closing_stopping_and_switching_off_are_always_allowed(action: Action) -> None:
    assert not opens_or_starts(action) or isinstance(action, SetHeater)
    assert_allowed(worst_state(), action)


def test_the_backing_pump_may_not_stop_under_a_spinning_turbo() -> None:
    """The one stop that is not the safe direction: the turbo's foreline would rise and trip it."""
    refused = check(worst_state(), SetPump("process", False))
    assert not refused.allowed
    assert (refused.refusals[0].invariant, refused.refusals[0].rule) == ("I4", "backing-turbo")
    stopped = build(
        LineSpec(spaces={"inlet": AIR, "process": Space(p_pa=5_000.0, turbo_hz=0.0), "outlet": AIR})
    )
    assert_allowed(stopped, SetPump("process", False))


def test_the_worst_state_refuses_the_openings_that_matter() -> None:
    state = worst_state()
    openings: list[Action] = [
        *(SetPort(p, True) for p in ("inlet.outer", "inlet_gate", "outlet_gate")),
        *(SetValve(s, "vent", True) for s in ("inlet", "process", "outlet")),
        *(SetSource("process", s, True) for s in SOURCE_NAMES),
        SetValve("process", "gas_fill", True),
        SetHeater("process", "substrate", 200.0),
        SetContainer("box2", sealed=False),
    ]
    for action in openings:
        assert not check(state, action).allowed, action


# -- watch: what must happen now -------------------------------------------------------------------


def gate_open(**inlet: Any) -> LineSpec:
    """The inlet gate open onto a purged process chamber, the inlet as described."""
    return LineSpec(
        spaces={"inlet": Space(**inlet), "process": Space(air_fraction=1e-9)}, outputs_open={"inlet_gate"}
    )


def test_an_open_gate_between_inert_spaces_is_left_alone() -> None:
    assert watch(build(gate_open())) == []


@pytest.mark.parametrize(
    ("spec", "word"),
    [
        (gate_open(o2_ppmv=15.0), "inlet is inert_out_of_spec"),
        (gate_open(frost_c=-45.0), "inlet is inert_out_of_spec"),
        (replace(gate_open(), stale=keys("inlet", "o2")), "inlet is unknown"),
        (replace(gate_open(), stale=keys("inlet", "frost")), "inlet is unknown"),
        (replace(gate_open(), missing=[*keys("process", "gauges")]), "process is unknown"),
        (replace(gate_open(), outputs_open={"inlet_gate", "inlet.outer_door"}), "inlet is air"),
    ],
    ids=["o2-rises", "frost-rises", "o2-stale", "frost-stale", "pressure-missing", "outer-door"],
)
def test_an_open_gate_is_closed_when_one_side_leaves_spec(spec: LineSpec, word: str) -> None:
    actions = watch(build(spec))
    assert actions[0] == SafeAction(SetPort("inlet_gate", False), "I2", actions[0].reason)
    assert word in actions[0].reason
    assert all(a.action != SetPort("outlet_gate", False) for a in actions)


def test_a_gate_commanded_shut_but_reporting_open_is_not_commanded_again() -> None:
    state = build(
        LineSpec(
            spaces={"inlet": Space(o2_ppmv=50.0)},
            inputs={"inlet_gate.open": True, "inlet_gate.closed": False},
        )
    )
    assert state.ports["inlet_gate"].valve.disagrees
    assert all(not isinstance(a.action, SetPort) for a in watch(state))


def test_a_source_is_switched_off_when_a_door_opens() -> None:
    state = build(
        sputter_ready(outputs_open={*PUMPED, "outlet_gate"}, sources_on={"dc_sputter", "rf_sputter"})
    )
    actions = [a for a in watch(state) if isinstance(a.action, SetSource)]
    assert [a.action for a in actions] == [
        SetSource("process", "dc_sputter", False),
        SetSource("process", "rf_sputter", False),
    ]
    assert all(a.invariant == "I6" and "outlet_gate" in a.reason for a in actions)


def test_a_source_is_switched_off_when_the_pressure_leaves_its_window() -> None:
    state = build(sputter_ready(spaces={"process": replace(SPUTTERING, p_pa=5.0)}, sources_on={"dc_sputter"}))
    assert [a.action for a in watch(state)] == [SetSource("process", "dc_sputter", False)]
    assert "5 Pa" in watch(state)[0].reason


def test_a_running_source_in_a_good_chamber_is_left_alone() -> None:
    assert watch(build(sputter_ready(sources_on={"dc_sputter"}))) == []


def test_a_source_whose_state_is_unknown_is_switched_off_if_the_chamber_is_open() -> None:
    state = build(
        LineSpec(
            stale=[("sources", "*")],
            outputs_open={"inlet_gate"},
            spaces={"process": Space(air_fraction=1e-9)},
        )
    )
    offs = {a.action for a in watch(state) if isinstance(a.action, SetSource)}
    assert offs == {SetSource("process", s, False) for s in SOURCE_NAMES}


@pytest.mark.parametrize(
    "items", [[li_foil("li1", "process")], [container("box", "process"), li_foil("li1", "box")]]
)
def test_a_substrate_above_179_c_with_lithium_present_sends_the_heater_to_safe(items: list[Item]) -> None:
    state = build(LineSpec(spaces={"process": Space(substrate_c=181.0)}, items=items))
    assert watch(state) == [SafeAction(SetHeater("process", "substrate", 20.0), "I5", watch(state)[0].reason)]
    assert "181.0 °C" in watch(state)[0].reason
    assert "179" in watch(state)[0].reason


def test_a_hot_substrate_without_lithium_is_left_alone() -> None:
    assert (
        watch(
            build(
                LineSpec(
                    spaces={"process": Space(substrate_c=190.0)}, items=[sulfide_target("t1", "process")]
                )
            )
        )
        == []
    )
    assert (
        watch(
            build(LineSpec(spaces={"process": Space(substrate_c=178.0)}, items=[li_foil("li1", "process")]))
        )
        == []
    )


def test_a_turbo_gate_open_at_high_pressure_is_closed() -> None:
    state = build(LineSpec(spaces={"process": Space(p_pa=500.0, turbo_hz=1000.0)}, outputs_open=PUMPED))
    assert [a.action for a in watch(state)] == [SetValve("process", "turbo_gate", False)]
    assert watch(state)[0].invariant == "I4"
    assert "500 Pa" in watch(state)[0].reason
    unknown = build(
        LineSpec(spaces={"process": ON_TURBO}, outputs_open=PUMPED, missing=keys("process", "gauges"))
    )
    assert SetValve("process", "turbo_gate", False) in [a.action for a in watch(unknown)]
    assert watch(build(LineSpec(spaces={"process": ON_TURBO}, outputs_open=PUMPED))) == []


def test_a_vent_open_together_with_the_gas_fill_is_closed() -> None:
    state = build(LineSpec(outputs_open={"outlet.vent_valve", "outlet.gas_fill_valve"}))
    assert [a.action for a in watch(state)] == [SetValve("outlet", "vent", False)]
    assert watch(state)[0].invariant == "I4"


# -- property: whatever check allows keeps the invariants ------------------------------------------

SPACE_NAMES = ("inlet", "process", "outlet")
PORT_NAMES = ("inlet.outer", "inlet_gate", "outlet_gate", "outlet.outer")
ALL_OUTPUTS = standard_config().remote_io_points().outputs
ALL_INPUTS = standard_config().remote_io_points().inputs
ALL_KEYS = sorted(snapshot(LineSpec()))
ITEM_IDS = ("c0", "c1", "c2", "li0", "li1", "t0", "cu0")

pressures = st.sampled_from(
    [1e-5, 1e-4, 5e-3, 0.5, 5.0, 10.0, 50.0, 500.0, 5_000.0, 99_500.0, 101_325.0, 101_825.0, 104_000.0]
)
random_spaces = st.builds(
    Space,
    p_pa=pressures | st.none(),
    frost_c=st.sampled_from([-90.0, -70.0, -50.0, -45.0, -10.0]),
    o2_ppmv=st.sampled_from([0.1, 2.0, 10.0, 30.0, 209_000.0]),
    air_fraction=st.sampled_from([1e-12, 1e-6, 1e-3, 1.0]),
    base_reached=st.booleans(),
    turbo_hz=st.sampled_from([None, 0.0, 500.0, 1000.0]),
    substrate_c=st.sampled_from([None, 22.0, 150.0, 185.0, 230.0]),
    flow_sccm=st.sampled_from([0.0, 20.0]),
)
# states a line is really found in: random values alone rarely make two spaces compatible
REGIMES = [
    Space(),
    VACUUM,
    AIR,
    ROUGHED,
    ON_TURBO,
    SPUTTERING,
    Space(p_pa=50.0, air_fraction=1.0),
    Space(o2_ppmv=30.0),
    Space(frost_c=-40.0),
    Space(air_fraction=1e-3),
    Space(substrate_c=185.0),
]
spaces = st.sampled_from(REGIMES) | random_spaces
# the outputs that decide the rules; pumps first so "rough valve with pump" is common
KEY_OUTPUTS = [
    *(f"{s}.{v}" for s in SPACE_NAMES for v in ("rough_valve", "vent_valve", "gas_fill_valve")),
    "inlet.rough_pump",
    "outlet.rough_pump",
    "process.backing_pump",
    "process.turbo_gate_valve",
    "inlet_gate",
    "outlet_gate",
    "inlet.outer_door",
    "outlet.outer_door",
]
opening = st.sampled_from([True, True, True, False])


@st.composite
def inventories(draw: st.DrawFn) -> list[Item]:
    """A few containers (nested or not, sealed or not) and samples placed in spaces or containers."""
    items: list[Item] = []
    places: list[str] = [*SPACE_NAMES, ROOM]
    for cid in ("c0", "c1", "c2")[: draw(st.integers(0, 3))]:
        items.append(container(cid, draw(st.sampled_from(places)), sealed=draw(st.booleans())))
        places.append(cid)
    makers = {"li0": li_foil, "li1": li_foil, "t0": sulfide_target, "cu0": copper_foil}
    for iid in draw(st.lists(st.sampled_from(sorted(makers)), unique=True, max_size=4)):
        items.append(makers[iid](iid, draw(st.sampled_from(places))))
    return items


def few(elements: st.SearchStrategy[Key], size: int) -> st.SearchStrategy[list[Key]]:
    """Mostly nothing failed: a state where everything is unknown allows nothing worth checking."""
    return st.just([]) | st.lists(elements, min_size=1, max_size=size)


SCENARIO_OUTPUTS: list[set[str]] = [
    set(),
    PUMPED,
    {"inlet_gate"},
    {"outlet_gate"},
    {*PUMPED, "inlet_gate"},
    {"inlet.rough_pump", "inlet.rough_valve"},
    {"outlet.outer_door"},
    {"process.backing_pump"},
]


@st.composite
def line_specs(draw: st.DrawFn) -> LineSpec:
    scenario = draw(st.sampled_from(SCENARIO_OUTPUTS))
    extra = draw(
        st.sets(st.sampled_from(KEY_OUTPUTS), max_size=3) | st.sets(st.sampled_from(ALL_OUTPUTS), max_size=5)
    )
    return LineSpec(
        spaces=draw(st.dictionaries(st.sampled_from(SPACE_NAMES), spaces)),
        outputs_open=scenario | extra,
        inputs=draw(st.dictionaries(st.sampled_from(ALL_INPUTS), st.booleans() | st.none(), max_size=2)),
        sources_on=draw(st.sets(st.sampled_from(SOURCE_NAMES), max_size=2)),
        stale=draw(few(st.sampled_from(ALL_KEYS), 2)),
        missing=draw(few(st.sampled_from(ALL_KEYS), 1)),
        quality=draw(st.dictionaries(st.sampled_from(ALL_KEYS), st.sampled_from(list(Quality)), max_size=1)),
        items=draw(inventories()),
    )


@st.composite
def item_actions(draw: st.DrawFn, spec: LineSpec) -> Action:
    """Moves and unseals aimed at what the spec holds: random ids rarely hit a real item."""
    items = list(spec.items)
    if not items:
        return MoveItem("ghost", "inlet")
    item = draw(st.sampled_from(items))
    boxes = [i.id for i in items if i.kind is ItemKind.CONTAINER]
    if draw(st.booleans()) and boxes:
        return SetContainer(draw(st.sampled_from(boxes)), sealed=False)
    places = {i.id: i.location for i in items}
    here = item.location
    while here in places:
        here = places[here]
    return MoveItem(item.id, draw(st.sampled_from([here, *SPACE_NAMES, ROOM, *boxes])))


spaces_or_not = st.sampled_from([*SPACE_NAMES, *SPACE_NAMES, "attic"])
actions: st.SearchStrategy[Action] = st.one_of(
    st.builds(SetValve, spaces_or_not, st.sampled_from(VALVES), opening),
    st.builds(SetPort, st.sampled_from([*PORT_NAMES, *PORT_NAMES, "back_door"]), opening),
    st.builds(SetPump, spaces_or_not, st.booleans()),
    st.builds(SetTurbo, spaces_or_not, st.booleans()),
    st.builds(SetGasFlow, spaces_or_not, st.sampled_from([0.0, 20.0])),
    st.builds(
        SetHeater,
        spaces_or_not,
        st.just("substrate"),
        st.sampled_from([20.0, 150.0, 179.0, 185.0, 200.0, 260.0, math.nan]),
    ),
    st.builds(SetSource, spaces_or_not, st.sampled_from(SOURCE_NAMES), opening, st.just(100.0)),
    st.builds(SetShutter, spaces_or_not, st.just("substrate"), st.booleans()),
    st.builds(SetFilm, spaces_or_not, st.just("Li"), st.just(0.53), st.just(5.9)),
    st.builds(
        MoveItem,
        st.sampled_from([*ITEM_IDS, "ghost"]),
        st.sampled_from([*SPACE_NAMES, *SPACE_NAMES, ROOM, *ITEM_IDS]),
    ),
    st.builds(SetContainer, st.sampled_from(ITEM_IDS), opening.map(lambda o: not o)),
)


def assert_invariant_holds_for_allowed(state: LineState, action: Action) -> None:
    """The invariant the allowed action could break holds in the state it was allowed in."""
    limits = state.limits
    match action:
        case SetPort(port=name, open=True):
            port = state.ports[name]
            if port.kind == "outer_door":
                space = state.spaces[next(n for n in port.between if n != ROOM)]
                assert space.pressure_pa is not None
                assert abs(space.pressure_pa - limits.room_pressure_pa) <= limits.atmospheric_window_pa
                assert state.exposed_in(space.name) == []
                assert not space.valves["rough"].maybe_open
                assert all(
                    p.valve.confirmed_closed for p in state.ports_of(space.name) if p.kind != "outer_door"
                )
            else:
                a, b = (state.spaces[n] for n in port.between)
                vacuum_like = {Atmosphere.VACUUM, Atmosphere.PROCESS}
                assert (a.atmosphere is b.atmosphere is Atmosphere.INERT_IN_SPEC) or (
                    a.atmosphere in vacuum_like and b.atmosphere in vacuum_like
                )
                assert a.pressure_pa is not None
                assert b.pressure_pa is not None
                assert abs(a.pressure_pa - b.pressure_pa) <= max(
                    limits.door_max_dp_pa, limits.vacuum_below_pa
                )
                assert not a.sources_on
                assert not b.sources_on
                for s, other in ((a, b), (b, a)):
                    if "turbo_gate" in s.valves and s.valves["turbo_gate"].maybe_open and s.turbo_spinning:
                        assert other.pressure_pa <= limits.turbo_gate_max_pa  # type: ignore[operator]
        case SetValve(space=name, valve="vent", open=True):
            space = state.spaces[name]
            assert state.exposed_in(name) == []
            assert not any(space.valves[v].maybe_open for v in space.valves if v != "vent")
            assert "turbo_gate" not in space.valves or not space.turbo_spinning
            assert all(p.valve.confirmed_closed for p in state.ports_of(name) if p.kind != "outer_door")
        case SetValve(space=name, valve="turbo_gate", open=True):
            space = state.spaces[name]
            assert space.pressure_pa is not None
            assert space.pressure_pa <= limits.turbo_gate_max_pa
            assert not space.valves["vent"].maybe_open
            assert not space.valves["gas_fill"].maybe_open
        case SetValve(space=name, valve="gas_fill", open=True):
            space = state.spaces[name]
            assert not space.valves["vent"].maybe_open
            assert not space.valves["rough"].maybe_open
            if state.exposed_in(name):
                assert space.pressure_pa is not None
        case SetValve(space=name, valve="rough", open=True):
            assert state.spaces[name].pump_running is True
        case SetHeater(space=name, setpoint_c=setpoint):
            assert setpoint <= 250.0
            assert all(setpoint <= m.max_temp_c for m in materials_in(name, state.items))
        case SetSource(space=name, enabled=True):
            space = state.spaces[name]
            assert space.base_pressure_reached
            assert space.pressure_pa is not None
            assert all(p.valve.confirmed_closed for p in state.ports_of(name))
        case MoveItem(item=item_id, to=to):
            items = state.items
            after = moved(items, item_id, to, [*state.spaces, ROOM])
            carried = [i for i in items if i == item_id or _inside(i, item_id, items)]
            if any(is_exposed(i, items) or is_exposed(i, after) for i in carried):
                for name in {space_of(item_id, items), space_of(item_id, after)}:
                    assert name != ROOM
                    assert state.spaces[name].safe_for_exposed
        case SetContainer(container=cid, sealed=False):
            items = state.items
            unsealed = {**items, cid: replace(items[cid], sealed=False)}
            newly = [i for i in items if is_exposed(i, unsealed) and not is_exposed(i, items)]
            if newly:
                where = space_of(cid, items)
                assert where in state.spaces  # never in the room
                assert state.spaces[where].atmosphere is Atmosphere.INERT_IN_SPEC
        case _:
            pass


def _inside(item_id: str, holder: str, items: dict[str, Item] | object) -> bool:
    assert isinstance(items, dict)
    location = items[item_id].location
    while location in items:
        if location == holder:
            return True
        location = items[location].location
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=line_specs(), data=st.data())
def test_whatever_check_allows_keeps_the_invariant_it_touches(spec: LineSpec, data: st.DataObject) -> None:
    action = data.draw(actions | item_actions(spec), label="action")
    state = build(spec)
    verdict = check(state, action)  # never raises
    assert verdict.allowed == (not verdict.refusals)
    for refusal in verdict.refusals:
        assert refusal.invariant in {"I1", "I2", "I3", "I4", "I5", "I6", "I7", "E"}
        assert refusal.reason
    if verdict.allowed:
        assert_invariant_holds_for_allowed(state, action)
    if not opens_or_starts(action) and not isinstance(action, MoveItem | SetHeater | SetPump):
        assert verdict.allowed  # the safe direction, whatever the state
    if isinstance(action, SetPump) and not action.running:  # safe unless it would starve a spinning turbo
        assert verdict.allowed or {r.rule for r in verdict.refusals} <= {"backing-turbo", "unknown-target"}
    for safe in watch(state):  # and what watch asks for is always allowed
        assert check(state, safe.action).allowed, safe
