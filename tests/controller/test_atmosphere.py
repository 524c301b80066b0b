"""Atmosphere classification and the provenance bound on the air left in a space.

Invariant 1 rests on this module: an exposed item may only sit where the classification says
`safe_for_exposed`, and "unknown is never in spec" (invariant 7) must hold for every way a reading
can fail. The pure functions are tested directly; the purge-cycle and sensor-correction cases are
also run through `build_line_state` (via the test builder), because that is where the activity flags
(pumping, filling, open to air) come from in the real controller.
"""

from __future__ import annotations

import pytest

from controller.config.line_config import Limits
from controller.line.atmosphere import (
    AIR_O2_PPMV,
    Atmosphere,
    Classification,
    Provenance,
    SpaceActivity,
    SpaceSensors,
    classify,
    h2o_ppmv_at_frost_point,
    measured,
    observe,
    track,
    usable,
)
from controller.line.state import SpaceMemory
from drivers.reading import Quality, Reading
from tests.controller.linestate_builder import (
    GLOVEBOX_PA,
    ROOM_PA,
    LineSpec,
    Space,
    build,
    keys,
    memory_for,
)

NOW = 1_000.0
LIMITS = Limits()
PURGED = Provenance(1e-9)


def reading(value: float, unit: str = "Pa", quality: Quality = Quality.OK, age_s: float = 0.0) -> Reading:
    return Reading(value, unit, quality, 1.7e9 + NOW - age_s, NOW - age_s)


def sensors(
    p_pa: float | None = GLOVEBOX_PA,
    frost_c: float | None = -70.0,
    o2_ppmv: float | None = 0.5,
    *,
    has_frost: bool = True,
    has_o2: bool = True,
) -> SpaceSensors:
    """An antechamber's instruments (pass has_*=False for the sensorless process chamber)."""
    return SpaceSensors(
        None if p_pa is None else reading(p_pa),
        None if frost_c is None else reading(frost_c, "degC"),
        None if o2_ppmv is None else reading(o2_ppmv, "ppmv"),
        has_frost_sensor=has_frost,
        has_o2_sensor=has_o2,
    )


STATIC = SpaceActivity()


def classify_now(
    s: SpaceSensors, activity: SpaceActivity = STATIC, provenance: Provenance = PURGED
) -> Classification:
    return classify(s, activity, provenance, LIMITS, NOW)


# -- every class -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "activity", "provenance", "expected", "safe"),
    [
        pytest.param(sensors(), SpaceActivity(open_to_air=True), PURGED, Atmosphere.AIR, False, id="vented"),
        pytest.param(
            sensors(ROOM_PA, -5.0, 209_000.0),
            SpaceActivity(),
            Provenance(1.0),
            Atmosphere.AIR,
            False,
            id="static-air",
        ),
        pytest.param(
            sensors(5_000.0, -20.0, 150_000.0),
            SpaceActivity(pumping=True),
            Provenance(1.0),
            Atmosphere.EVACUATING,
            False,
            id="pumping-air",
        ),
        pytest.param(
            sensors(5_000.0),
            SpaceActivity(pumping=True),
            PURGED,
            Atmosphere.EVACUATING,
            True,
            id="pumping-inert",
        ),
        pytest.param(sensors(50.0), SpaceActivity(), Provenance(1.0), Atmosphere.VACUUM, True, id="vacuum"),
        pytest.param(
            sensors(1e-4, has_frost=False, has_o2=False),
            SpaceActivity(pumping=True),
            Provenance(1.0),
            Atmosphere.VACUUM,
            True,
            id="pumped-vacuum",
        ),
        pytest.param(
            sensors(20_000.0),
            SpaceActivity(gas_filling=True),
            Provenance(1e-9),
            Atmosphere.BACK_FILLING,
            True,
            id="back-filling-purged",
        ),
        pytest.param(
            sensors(20_000.0),
            SpaceActivity(gas_filling=True),
            Provenance(1e-3),
            Atmosphere.BACK_FILLING,
            False,
            id="back-filling-after-poor-pump-down",
        ),
        pytest.param(sensors(), SpaceActivity(), Provenance(1.0), Atmosphere.INERT_IN_SPEC, True, id="inert"),
        pytest.param(
            sensors(frost_c=-40.0), SpaceActivity(), PURGED, Atmosphere.INERT_OUT_OF_SPEC, False, id="wet"
        ),
        pytest.param(
            sensors(o2_ppmv=50.0), SpaceActivity(), PURGED, Atmosphere.INERT_OUT_OF_SPEC, False, id="o2-high"
        ),
        pytest.param(
            sensors(0.5, has_frost=False, has_o2=False),
            SpaceActivity(process_gas=True, pumping=True),
            Provenance(1.0),
            Atmosphere.PROCESS,
            True,
            id="sputtering",
        ),
        pytest.param(sensors(None), SpaceActivity(), PURGED, Atmosphere.UNKNOWN, False, id="no-pressure"),
    ],
)
def test_each_atmosphere_class(
    s: SpaceSensors, activity: SpaceActivity, provenance: Provenance, expected: Atmosphere, safe: bool
) -> None:
    result = classify_now(s, activity, provenance)
    assert result.atmosphere is expected, result.reason
    assert result.safe_for_exposed is safe


def test_the_limits_are_inclusive_and_just_above_is_out() -> None:
    at_limit = classify_now(sensors(frost_c=-50.0, o2_ppmv=10.0))
    assert at_limit.atmosphere is Atmosphere.INERT_IN_SPEC
    above = classify_now(sensors(frost_c=-49.9, o2_ppmv=10.1))
    assert above.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    assert "frost point and O2" in above.reason


def test_the_out_of_spec_reason_names_the_failing_quantity() -> None:
    assert "frost point" in classify_now(sensors(frost_c=-30.0)).reason
    assert "O2" in classify_now(sensors(o2_ppmv=30.0)).reason


def test_process_gas_above_the_process_range_is_not_a_process() -> None:
    result = classify_now(sensors(50.0, has_frost=False, has_o2=False), SpaceActivity(process_gas=True))
    assert result.atmosphere is Atmosphere.VACUUM


def test_a_gas_fill_that_reached_atmosphere_is_judged_by_the_sensors() -> None:
    result = classify_now(sensors(ROOM_PA), SpaceActivity(gas_filling=True), Provenance(1.0))
    assert result.atmosphere is Atmosphere.INERT_IN_SPEC


def test_evidence_records_what_the_classification_rested_on() -> None:
    result = classify_now(sensors(GLOVEBOX_PA, -62.0, 2.0))
    assert result.evidence["pressure_pa"] == GLOVEBOX_PA
    assert result.evidence["frost_point_c"] == -62.0
    assert result.evidence["o2_ppmv"] == 2.0


# -- unknown is never in spec ----------------------------------------------------------------------

BAD_QUALITIES = [Quality.STALE, Quality.ERROR, Quality.SENSOR_OFF, Quality.OVER_RANGE]


@pytest.mark.parametrize("quality", BAD_QUALITIES)
@pytest.mark.parametrize("which", ["pressure", "frost_point", "o2"])
def test_a_failed_reading_makes_the_space_unknown_and_never_safe(which: str, quality: Quality) -> None:
    good = sensors(GLOVEBOX_PA, -70.0, 0.5)
    failed = {
        "pressure": reading(GLOVEBOX_PA, "Pa", quality),
        "frost_point": reading(-70.0, "degC", quality),
        "o2": reading(0.5, "ppmv", quality),
    }[which]
    s = SpaceSensors(
        failed if which == "pressure" else good.pressure,
        failed if which == "frost_point" else good.frost_point,
        failed if which == "o2" else good.o2,
        has_frost_sensor=True,
        has_o2_sensor=True,
    )
    result = classify_now(s)
    assert result.atmosphere is Atmosphere.UNKNOWN
    assert not result.safe_for_exposed


@pytest.mark.parametrize("which", ["pressure", "frost_point", "o2"])
def test_an_old_reading_is_stale_even_if_it_was_ok(which: str) -> None:
    old = LIMITS.stale_after_s + 0.1
    s = SpaceSensors(
        reading(GLOVEBOX_PA, age_s=old if which == "pressure" else 0.0),
        reading(-70.0, "degC", age_s=old if which == "frost_point" else 0.0),
        reading(0.5, "ppmv", age_s=old if which == "o2" else 0.0),
        has_frost_sensor=True,
        has_o2_sensor=True,
    )
    result = classify_now(s)
    assert result.atmosphere is Atmosphere.UNKNOWN
    assert not result.safe_for_exposed


@pytest.mark.parametrize("which", ["frost_point", "o2"])
def test_a_missing_sensor_reading_is_unknown_where_the_sensor_is_fitted(which: str) -> None:
    s = sensors(frost_c=None if which == "frost_point" else -70.0, o2_ppmv=None if which == "o2" else 0.5)
    result = classify_now(s, provenance=PURGED)  # even a perfect history does not stand in for it
    assert result.atmosphere is Atmosphere.UNKNOWN
    assert "missing or stale" in result.reason


def test_a_missing_pressure_says_so() -> None:
    assert classify_now(sensors(None)).reason == "pressure reading missing"
    s = SpaceSensors(reading(GLOVEBOX_PA, quality=Quality.ERROR), has_frost_sensor=False)
    assert classify_now(s).reason == "pressure reading error"


def test_under_range_still_bounds_the_value_and_counts() -> None:
    r = reading(5e-7, quality=Quality.UNDER_RANGE)
    assert usable(r, NOW, LIMITS) is r
    assert usable(reading(1e5, quality=Quality.OVER_RANGE), NOW, LIMITS) is None
    assert usable(None, NOW, LIMITS) is None
    result = classify_now(SpaceSensors(r, has_frost_sensor=False), SpaceActivity(pumping=True))
    assert result.atmosphere is Atmosphere.VACUUM


@pytest.mark.parametrize(
    "spec",
    [
        LineSpec(stale=keys("inlet", "o2")),
        LineSpec(stale=keys("inlet", "frost")),
        LineSpec(missing=keys("inlet", "o2")),
        LineSpec(quality=dict.fromkeys(keys("inlet", "frost"), Quality.ERROR)),
        LineSpec(stale=[*keys("inlet", "gauges"), *keys("inlet", "box_pressure")]),
        LineSpec(missing=[*keys("inlet", "gauges"), *keys("inlet", "box_pressure")]),
    ],
    ids=["o2-stale", "frost-stale", "o2-missing", "frost-error", "pressure-stale", "pressure-missing"],
)
def test_through_the_line_state_a_failed_instrument_makes_the_space_unknown(spec: LineSpec) -> None:
    state = build(spec)
    assert state.spaces["inlet"].atmosphere is Atmosphere.UNKNOWN
    assert not state.spaces["inlet"].safe_for_exposed
    assert state.spaces["outlet"].atmosphere is Atmosphere.INERT_IN_SPEC  # the other side is untouched


def test_a_stale_remote_io_means_every_valve_may_be_open_so_nothing_is_in_spec() -> None:
    state = build(LineSpec(stale=[("remote_io", "*")]))
    for space in state.spaces.values():
        assert space.atmosphere is Atmosphere.AIR  # a vent valve that may be open
        assert not space.safe_for_exposed


# -- the frost-point limit as a water content ------------------------------------------------------


def test_minus_50_c_frost_point_is_about_39_ppmv() -> None:
    assert h2o_ppmv_at_frost_point(-50.0) == pytest.approx(39.0, rel=0.03)


@pytest.mark.parametrize(("frost_c", "ppmv"), [(-60.0, 10.7), (-70.0, 2.55), (-40.0, 127.0)])
def test_other_frost_points_match_the_tables(frost_c: float, ppmv: float) -> None:
    assert h2o_ppmv_at_frost_point(frost_c) == pytest.approx(ppmv, rel=0.03)


def test_drier_is_less_water() -> None:
    values = [h2o_ppmv_at_frost_point(t) for t in (-80.0, -70.0, -60.0, -50.0, -40.0)]
    assert values == sorted(values)


# -- provenance ------------------------------------------------------------------------------------


def test_opening_to_air_resets_the_bound_to_air() -> None:
    assert track(PURGED, ROOM_PA, SpaceActivity(open_to_air=True)) == Provenance(1.0)


def test_a_back_fill_dilutes_by_the_pressure_ratio() -> None:
    start = track(Provenance(1.0), 100.0, SpaceActivity(gas_filling=True))
    assert start.fill_start_pa == 100.0
    assert start.air_fraction == 1.0
    full = track(start, 100_000.0, SpaceActivity(gas_filling=True))
    assert full.air_fraction == pytest.approx(1e-3)
    done = track(full, 100_000.0, SpaceActivity())
    assert done == Provenance(pytest.approx(1e-3))  # type: ignore[arg-type]
    assert done.fill_start_pa is None


def test_a_pressure_drop_during_a_fill_never_improves_the_bound() -> None:
    start = track(Provenance(0.5), 1_000.0, SpaceActivity(gas_filling=True))
    lower = track(start, 500.0, SpaceActivity(gas_filling=True))
    assert lower.air_fraction == 0.5


def test_a_fill_without_a_pressure_reading_earns_no_credit() -> None:
    start = track(Provenance(1.0), None, SpaceActivity(gas_filling=True))
    after = track(start, 100_000.0, SpaceActivity(gas_filling=True))
    assert after.air_fraction == 1.0
    unknown_midway = track(
        track(Provenance(1.0), 10.0, SpaceActivity(gas_filling=True)), None, SpaceActivity(gas_filling=True)
    )
    assert unknown_midway.air_fraction == 1.0


def test_pumping_alone_does_not_change_the_share() -> None:
    assert track(Provenance(0.2), 10.0, SpaceActivity(pumping=True)) == Provenance(0.2)


def gauge_only(p_pa: float) -> SpaceSensors:
    return sensors(p_pa, has_frost=False, has_o2=False)


def purge_cycles(n: int, low_pa: float) -> tuple[Provenance, Classification]:
    """A sensorless space, starting full of air, pumped to `low_pa` and back-filled `n` times."""
    prov = Provenance(1.0)
    result: Classification | None = None
    for _ in range(n):
        for p in (ROOM_PA, 10_000.0, 1_000.0, low_pa):
            prov, result = observe(prov, gauge_only(p), SpaceActivity(pumping=True), LIMITS, NOW)
        for p in (low_pa, 1_000.0, 50_000.0, ROOM_PA):
            prov, result = observe(prov, gauge_only(p), SpaceActivity(gas_filling=True), LIMITS, NOW)
        prov, result = observe(prov, gauge_only(ROOM_PA), SpaceActivity(), LIMITS, NOW)
    assert result is not None
    return prov, result


def test_one_purge_cycle_from_50_pa_is_not_enough_for_a_sensorless_space() -> None:
    prov, result = purge_cycles(1, 50.0)
    assert prov.air_fraction == pytest.approx(50.0 / ROOM_PA)
    assert result.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    assert not result.safe_for_exposed


def test_three_purge_cycles_from_50_pa_make_a_sensorless_space_inert() -> None:
    prov, result = purge_cycles(3, 50.0)
    assert prov.air_fraction == pytest.approx((50.0 / ROOM_PA) ** 3)
    assert result.atmosphere is Atmosphere.INERT_IN_SPEC
    assert result.safe_for_exposed


def test_the_margin_rejects_an_estimate_that_is_only_just_under_the_limit() -> None:
    """One cycle from 1 Pa leaves ~2 ppm O2 by estimate: under 10 ppm, but not 10 times under."""
    prov, result = purge_cycles(1, 1.0)
    assert prov.o2_estimate_ppmv == pytest.approx(2.07, rel=0.01)
    assert prov.o2_estimate_ppmv < LIMITS.max_o2_ppmv
    assert result.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    loose = Limits(inert_purge_margin=1.0)
    assert classify(
        sensors(ROOM_PA, has_frost=False, has_o2=False), SpaceActivity(), prov, loose, NOW
    ).atmosphere is (Atmosphere.INERT_IN_SPEC)


def test_an_o2_sensor_corrects_the_estimate_when_the_space_is_static() -> None:
    """O2 sensor only: the measurement stands for O2, and replaces the history for the H2O estimate."""
    s = sensors(ROOM_PA, None, 0.5, has_frost=False, has_o2=True)
    prov, result = observe(Provenance(1.0), s, SpaceActivity(), LIMITS, NOW)
    # judged before the correction: O2 measured fine, H2O still bounded only by the (air) history
    assert result.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    assert result.reason == "frost point above the limit"
    assert prov.air_fraction == pytest.approx(0.5 / AIR_O2_PPMV)
    prov, result = observe(prov, s, SpaceActivity(), LIMITS, NOW)
    assert result.atmosphere is Atmosphere.INERT_IN_SPEC


def test_an_o2_sensor_also_corrects_an_estimate_that_was_too_good() -> None:
    s = sensors(ROOM_PA, -70.0, 50.0)
    prov, result = observe(PURGED, s, SpaceActivity(), LIMITS, NOW)
    assert result.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    assert prov.air_fraction == pytest.approx(50.0 / AIR_O2_PPMV)


@pytest.mark.parametrize(
    ("p_pa", "activity"),
    [
        (10.0, SpaceActivity()),
        (5_000.0, SpaceActivity(pumping=True)),
        (ROOM_PA, SpaceActivity(open_to_air=True)),
    ],
    ids=["vacuum", "evacuating", "vented"],
)
def test_no_correction_while_the_space_is_not_static(p_pa: float, activity: SpaceActivity) -> None:
    """An O2 cell reads nonsense under vacuum; a vented space is air whatever the cell says."""
    prov, _ = observe(Provenance(0.3), sensors(p_pa, -70.0, 0.5), activity, LIMITS, NOW)
    assert prov.air_fraction == (1.0 if activity.open_to_air else 0.3)


def test_a_stale_o2_reading_corrects_nothing() -> None:
    s = SpaceSensors(reading(ROOM_PA), None, reading(0.5, "ppmv", age_s=60.0), has_o2_sensor=True)
    prov, result = observe(Provenance(1.0), s, SpaceActivity(), LIMITS, NOW)
    assert prov.air_fraction == 1.0
    assert result.atmosphere is Atmosphere.UNKNOWN


def test_measured_clamps_a_negative_offset_to_zero() -> None:
    assert measured(PURGED, -0.2).air_fraction == 0.0


# -- the same, through the line state --------------------------------------------------------------


def test_the_process_chamber_purge_through_build_line_state() -> None:
    """The process chamber has no H2O/O2 sensor: three cycles to 50 Pa make it inert, one does not."""
    memory = memory_for(LineSpec(spaces={"process": Space(air_fraction=1.0)}))
    pumping = {"process.backing_pump", "process.rough_valve"}
    results: list[Atmosphere] = []
    for cycle in range(3):
        for p in (ROOM_PA, 5_000.0, 50.0):
            state = build(LineSpec(spaces={"process": Space(p_pa=p)}, outputs_open=pumping), memory)
        assert state.spaces["process"].atmosphere is Atmosphere.VACUUM
        for p in (50.0, 30_000.0, ROOM_PA):
            state = build(
                LineSpec(spaces={"process": Space(p_pa=p)}, outputs_open={"process.gas_fill_valve"}), memory
            )
        state = build(LineSpec(spaces={"process": Space(p_pa=ROOM_PA)}), memory)
        results.append(state.spaces["process"].atmosphere)
        if cycle == 0:
            assert state.spaces["process"].classification.evidence["o2_estimate_ppmv"] == pytest.approx(
                AIR_O2_PPMV * 50.0 / ROOM_PA
            )
    assert results == [Atmosphere.INERT_OUT_OF_SPEC, Atmosphere.INERT_IN_SPEC, Atmosphere.INERT_IN_SPEC]
    assert memory["process"].provenance.air_fraction == pytest.approx((50.0 / ROOM_PA) ** 3)


def test_venting_the_process_chamber_forgets_its_purges() -> None:
    memory = {"process": SpaceMemory(Provenance(1e-12))}
    state = build(LineSpec(outputs_open={"process.vent_valve"}), memory)
    assert state.spaces["process"].atmosphere is Atmosphere.AIR
    assert memory["process"].provenance.air_fraction == 1.0
    state = build(LineSpec(), memory)  # valve closed again: still air by history
    assert state.spaces["process"].atmosphere is Atmosphere.AIR


def test_an_antechamber_sensor_overrules_a_bad_history() -> None:
    memory = memory_for(LineSpec(spaces={"inlet": Space(air_fraction=1.0)}))
    state = build(LineSpec(spaces={"inlet": Space(frost_c=-65.0, o2_ppmv=1.0)}), memory)
    assert state.spaces["inlet"].atmosphere is Atmosphere.INERT_IN_SPEC
    assert memory["inlet"].provenance.air_fraction == pytest.approx(1.0 / AIR_O2_PPMV)


def test_an_open_outer_door_is_air_whatever_the_sensors_say() -> None:
    state = build(LineSpec(outputs_open={"inlet.outer_door"}))
    assert state.spaces["inlet"].atmosphere is Atmosphere.AIR


def test_a_door_that_reports_open_while_commanded_closed_counts_as_open() -> None:
    state = build(LineSpec(inputs={"outlet.outer_door.open": True, "outlet.outer_door.closed": False}))
    assert state.spaces["outlet"].atmosphere is Atmosphere.AIR


def test_sputtering_is_a_process_atmosphere_through_the_line_state() -> None:
    state = build(
        LineSpec(
            spaces={"process": Space(p_pa=0.5, turbo_hz=1000.0, flow_sccm=20.0, base_reached=True)},
            outputs_open={"process.backing_pump", "process.turbo_gate_valve"},
        )
    )
    assert state.spaces["process"].atmosphere is Atmosphere.PROCESS
    assert state.spaces["process"].safe_for_exposed


def test_a_vacuum_transfer_carries_the_antechamber_air_share_into_the_chamber() -> None:
    """Bug fixed: joining an antechamber roughed from air (50 Pa) to the purged, sensorless chamber
    left the chamber's history untouched; back-filled afterwards it held ~24 ppm O2 yet was called
    inert-in-spec around bare lithium."""
    roughed, purged = Space(p_pa=50.0, air_fraction=1.0), Space(p_pa=1e-4, air_fraction=1e-9)
    memory = memory_for(LineSpec(spaces={"inlet": roughed, "process": purged}))
    equal = Space(p_pa=11.5)  # 30 L at 50 Pa shared with 100 L
    build(LineSpec(spaces={"inlet": equal, "process": equal}, outputs_open={"inlet_gate"}), memory)
    assert memory["process"].provenance.air_fraction == 1.0
    for p in (11.5, 50_000.0, ROOM_PA):
        spec = LineSpec(
            spaces={"inlet": equal, "process": Space(p_pa=p)}, outputs_open={"process.gas_fill_valve"}
        )
        build(spec, memory)
    state = build(LineSpec(spaces={"inlet": equal, "process": Space(p_pa=ROOM_PA)}), memory)
    assert state.spaces["process"].provenance.o2_estimate_ppmv == pytest.approx(AIR_O2_PPMV * 11.5 / ROOM_PA)
    assert state.spaces["process"].atmosphere is Atmosphere.INERT_OUT_OF_SPEC


def test_an_inert_transfer_at_atmosphere_leaves_the_chamber_history_alone() -> None:
    """Both sides are in spec when the gate opens, so the mixture is; the 10x margin of the sensorless
    chamber is not charged with the glovebox's measured ppm."""
    memory = memory_for(LineSpec(spaces={"inlet": Space(o2_ppmv=3.0), "process": Space(air_fraction=1e-9)}))
    state = build(LineSpec(spaces={"inlet": Space(o2_ppmv=3.0)}, outputs_open={"inlet_gate"}), memory)
    assert memory["process"].provenance.air_fraction == 1e-9
    assert state.spaces["process"].atmosphere is Atmosphere.INERT_IN_SPEC


def test_a_vacuum_transfer_from_a_purged_antechamber_keeps_the_chamber_inert() -> None:
    memory = memory_for(LineSpec(spaces={"inlet": Space(p_pa=5.0, air_fraction=1e-10)}))
    build(
        LineSpec(spaces={"inlet": Space(p_pa=5.0), "process": Space(p_pa=5.0)}, outputs_open={"inlet_gate"}),
        memory,
    )
    assert memory["process"].provenance.air_fraction == 1e-9  # the worse of the two was the chamber's own
    assert memory["inlet"].provenance.air_fraction == 1e-9


# -- an assumption is not a reading --------------------------------------------------------------


def test_a_sensorless_chamber_nothing_was_seen_of_is_unknown_with_the_assumption_named() -> None:
    """After a restart the process chamber's gas is not known: "air" would read as a finding."""
    chamber = sensors(ROOM_PA, None, None, has_frost=False, has_o2=False)
    found = classify_now(chamber, provenance=Provenance.assumed_air())
    assert found.atmosphere is Atmosphere.UNKNOWN
    assert not found.safe_for_exposed
    assert "assumed air" in found.reason
    assert "o2_estimate_ppmv" not in found.evidence  # no O2 figure to be mistaken for a measurement
    assert str(found.evidence["o2_basis"]).startswith("assumed air")
    # the same chamber seen open to air is air: a finding, not an assumption
    vented = classify_now(chamber, SpaceActivity(open_to_air=True), Provenance.assumed_air())
    assert vented.atmosphere is Atmosphere.AIR


def test_a_back_fill_after_start_up_turns_the_assumption_into_a_bound() -> None:
    evacuated = track(Provenance.assumed_air(), 0.01, SpaceActivity(gas_filling=True))  # fill from 0.01 Pa
    filled = track(evacuated, ROOM_PA, SpaceActivity(gas_filling=True))
    done = track(filled, ROOM_PA, STATIC)
    assert not done.assumed
    assert done.air_fraction <= 0.01 / ROOM_PA * 1.01
    found = classify_now(sensors(ROOM_PA, None, None, has_frost=False, has_o2=False), provenance=done)
    assert found.atmosphere is Atmosphere.INERT_IN_SPEC
    assert "o2_basis" not in found.evidence


def test_a_start_up_space_memory_assumes_nothing_is_known() -> None:
    assert SpaceMemory().provenance.assumed
    assert SpaceMemory().provenance.air_fraction == 1.0


def test_gas_arriving_in_a_closed_sensorless_chamber_without_a_fill_counts_as_air() -> None:
    """The only sign a leak gives in a chamber with no O2 or frost sensor is its pressure rising."""
    inert = Provenance(1e-9)
    settled = track(inert, ROOM_PA, STATIC)
    warmed = track(settled, ROOM_PA * 1.015, STATIC)  # a few kelvin of warming: tolerated
    assert warmed.air_fraction == inert.air_fraction
    leaked = track(warmed, ROOM_PA * 1.03, STATIC)
    assert leaked.air_fraction == pytest.approx(0.03 / 1.03, rel=1e-3)
    found = classify_now(
        sensors(ROOM_PA * 1.03, None, None, has_frost=False, has_o2=False), provenance=leaked
    )
    assert found.atmosphere is Atmosphere.INERT_OUT_OF_SPEC
    # a fill raises the pressure too: that gas is the line's, counted by dilution, not as a leak
    filling = track(settled, ROOM_PA * 1.03, SpaceActivity(gas_filling=True))
    assert filling.air_fraction <= inert.air_fraction * 1.0001
    # in vacuum the pressure classifies the space; a later fill dilutes what crept in
    assert track(Provenance(1e-9), 1.0, STATIC).air_fraction == 1e-9
