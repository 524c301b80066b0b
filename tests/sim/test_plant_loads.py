"""Outgassing loads, re-wetting and step-size independence: the physics a production pump-down meets.

Every figure compared here comes from two runs of the same plant that differ in one thing only (a
load, the gas a chamber was vented with, how coarsely the plant is advanced), so each test fails if
the term it is about stops acting, and none of them depends on a tuned absolute number alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sim_hardware.plant import Plant, item_traffic_spec, standard_line_spec
from sim_hardware.plant.humidity import h2o_ppmv_at_frost_point
from sim_hardware.plant.space import REWET_TIME_CONSTANT_S, aged, equilibrium_age_s
from sim_hardware.plant.spec import WORST_UNBAKED_Q_1H

BASE_PRESSURE_PA = 1.33e-4  # DESIGN §2
ROOM_PA = 101325.0
DRY_S = 2 * 24 * 3600.0


def line(*, items: bool, process_age_s: float = DRY_S) -> Plant:
    """The standard line; the process chamber under argon, walls dry for `process_age_s`."""
    spec = standard_line_spec()
    argon = {"initial_gas": "ar", "initial_pressure_pa": 101_700.0, "initial_outgassing_age_s": process_age_s}
    spaces = tuple(
        dataclasses.replace(s, **argon) if s.name == "process" else s  # type: ignore[arg-type]
        for s in spec.spaces
    )
    spec = dataclasses.replace(spec, spaces=spaces)
    if items:
        spec = dataclasses.replace(spec, items=item_traffic_spec(("inlet",)))
    return Plant.from_spec(spec)


def advance_until(plant: Plant, done: Callable[[], bool], limit_s: float, step_s: float = 1.0) -> float:
    """Plant seconds until `done`, advancing in `step_s` steps; fails past `limit_s`."""
    start = plant.time_s
    while not done():
        assert plant.time_s - start < limit_s, "not reached"
        plant.advance(step_s)
    return plant.time_s - start


def load_the_inlet(plant: Plant) -> None:
    """The operator at the inlet's outer door for two minutes, then the door shut."""
    plant.doors["inlet.outer"].open = True
    plant.advance(120.0)
    plant.doors["inlet.outer"].open = False
    plant.advance(5.0)


def rough_the_inlet(plant: Plant) -> tuple[float, float, float]:
    """(seconds to 1 Pa, pressure after 30 min, then the rate of rise in Pa/s with the valve shut)."""
    inlet = plant.spaces["inlet"]
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    to_1pa = advance_until(plant, lambda: inlet.pressure_pa <= 1.0, 1800.0)
    plant.advance(1800.0 - to_1pa)
    base = inlet.pressure_pa
    plant.valves["inlet.rough"].open = False
    plant.advance(5.0)
    before = inlet.pressure_pa
    plant.advance(60.0)
    return to_1pa, base, (inlet.pressure_pa - before) / 60.0


def test_the_operators_items_come_in_at_the_outer_door_go_through_the_gates_and_leave_by_the_outlet() -> None:
    plant = line(items=True)
    assert plant.loads == []
    load_the_inlet(plant)
    where = {load.name: load.space.name for load in plant.loads}
    assert where == {"container": "inlet", "contents": "inlet"}
    for gate in ("inlet_gate", "outlet_gate"):
        plant.doors[gate].open = True
        plant.advance(5.0)
        plant.doors[gate].open = False
        plant.advance(5.0)
    assert sorted((load.name, load.space.name) for load in plant.loads) == [
        ("container", "inlet"),
        ("contents", "outlet"),
    ]
    plant.doors["outlet.outer"].open = True  # the sealed product leaves; an empty box is put in
    plant.advance(5.0)
    assert sorted((load.name, load.space.name) for load in plant.loads) == [
        ("container", "inlet"),
        ("container", "outlet"),
    ]


def test_a_loaded_inlet_pumps_down_slower_stays_higher_and_rises_faster_than_an_empty_one() -> None:
    empty, loaded = line(items=False), line(items=True)
    for plant in (empty, loaded):
        load_the_inlet(plant)
    empty_to_1pa, empty_base, empty_rise = rough_the_inlet(empty)
    loaded_to_1pa, loaded_base, loaded_rise = rough_the_inlet(loaded)
    assert 150.0 < empty_to_1pa < 400.0  # 30 L on 10 m³/h and a DN25 line (devices.md §10: 128 s ideal)
    assert loaded_to_1pa > 1.02 * empty_to_1pa
    assert loaded_base > 1.02 * empty_base  # on top of the rough pump's own 0.3 Pa
    # the rate of rise with the valve shut is the gas load itself: walls 0.7 m², box and items 0.21 m²
    assert loaded_rise > 1.2 * empty_rise


def pump_process_to_base(plant: Plant) -> float:
    """Rough the process chamber to 10 Pa and open the (spinning) turbo; plant seconds from the gate
    opening to the deposition base pressure."""
    chamber = plant.spaces["process"]
    plant.valves["process.turbo_gate"].open = False
    plant.pumps["process.backing"].running = True
    plant.valves["process.rough"].open = True
    advance_until(plant, lambda: chamber.pressure_pa <= 10.0, 900.0)
    plant.valves["process.rough"].open = False
    plant.turbo.pumping_station_on = True
    advance_until(plant, lambda: plant.turbo.set_speed_reached, 900.0)
    plant.valves["process.turbo_gate"].open = True
    return advance_until(plant, lambda: chamber.pressure_pa <= BASE_PRESSURE_PA, 6 * 3600.0, step_s=5.0)


def test_a_wet_load_keeps_the_process_chamber_off_base_pressure_for_minutes_an_empty_one_seconds() -> None:
    empty, loaded = line(items=False), line(items=True)
    loaded.add_load("process", area_m2=0.15, q_1h_pa_m3_s_m2=WORST_UNBAKED_Q_1H, name="fixture from the room")
    empty_s, loaded_s = pump_process_to_base(empty), pump_process_to_base(loaded)
    assert empty_s < 60.0
    assert 10 * 60.0 < loaded_s < 60 * 60.0  # q·A·1h/t / S: 0.15 m² at 1e-7 mbar·L/(s·cm²) ≈ 27 min


def coast_down(plant: Plant) -> None:
    advance_until(plant, lambda: plant.turbo.actual_speed_hz < 50.0, 3 * 3600.0, step_s=10.0)


def test_venting_with_room_air_makes_the_next_pump_down_far_slower_than_an_argon_vent() -> None:
    times = {}
    for vent in ("gas_fill", "vent"):
        plant = line(items=False)
        pump_process_to_base(plant)
        plant.advance(3600.0)
        plant.valves["process.turbo_gate"].open = False
        plant.advance(5.0)  # the gate shut before any gas comes in (else the turbo trips on inrush)
        plant.turbo.pumping_station_on = False  # no foreline valve: it coasts down before roughing
        plant.valves[f"process.{vent}"].open = True
        plant.advance(600.0)
        plant.valves[f"process.{vent}"].open = False
        coast_down(plant)
        times[vent] = pump_process_to_base(plant)
    assert times["gas_fill"] < 60.0  # dry argon barely re-wets a chamber dried for two days
    assert times["vent"] > 30 * 60.0  # room air restarts the 1/t clock: devices.md §10, 1-5 h unbaked
    assert times["vent"] > 30 * times["gas_fill"]


def test_walls_in_humid_gas_settle_where_uptake_balances_drying_and_join_the_wet_law() -> None:
    at_minus_50 = h2o_ppmv_at_frost_point(-50.0) * 1e-6 * ROOM_PA  # 3.9 Pa
    settled = equilibrium_age_s(at_minus_50)
    assert settled == pytest.approx(3080.0, rel=0.02)
    for start in (0.0, 7 * 24 * 3600.0):
        age = start
        for _ in range(200):
            age = aged(age, 600.0, at_minus_50, 100.0)
        assert age == pytest.approx(settled, rel=1e-3)
    # one big step equals many small ones (the update is exact for a constant water pressure)
    many = 10_000.0
    for _ in range(100):
        many = aged(many, 36.0, at_minus_50, 100.0)
    assert aged(10_000.0, 3600.0, at_minus_50, 100.0) == pytest.approx(many, rel=1e-9)
    # at the wet threshold both laws shrink the age at the same rate
    assert equilibrium_age_s(100.0) == pytest.approx(REWET_TIME_CONSTANT_S)
    assert aged(1e-9, 1.0, 0.0, 100.0) == pytest.approx(1.0)


def purge(plant: Plant, chunk_s: float) -> dict[str, float]:
    """Three pump/purge cycles of the loaded inlet on a fixed schedule (commands at exact plant times,
    as the simulated line delivers them), advancing the plant in chunks of at most `chunk_s`."""
    schedule: list[tuple[float, str, bool]] = []
    t = 0.0
    for _ in range(3):
        schedule += [(t, "inlet.rough", True), (t + 100.0, "inlet.rough", False)]
        schedule += [(t + 101.0, "inlet.gas_fill", True), (t + 160.0, "inlet.gas_fill", False)]
        t += 170.0
    start = plant.time_s
    plant.pumps["inlet.rough"].running = True
    evacuated = []
    for at, valve, open_ in schedule:
        while plant.time_s < start + at - 1e-9:
            plant.advance(min(chunk_s, start + at - plant.time_s))
        if valve == "inlet.rough" and not open_:
            evacuated.append(plant.spaces["inlet"].pressure_pa)
        plant.valves[valve].open = open_
    plant.advance(60.0)
    inlet = plant.spaces["inlet"]
    assert list(plant.rough_lines["inlet.rough"].isolated_at_pa) == pytest.approx(evacuated, rel=1e-9)
    return {
        "evacuated_pa": max(evacuated),
        "pressure_pa": inlet.pressure_pa,
        "o2_ppmv": inlet.o2_ppmv,
        "h2o_ppmv": inlet.h2o_ppmv,
    }


def test_a_purge_ends_the_same_whether_the_plant_runs_at_10x_or_1000x() -> None:
    """The plant runner advances 0.5 plant s per tick at 10x and 50 s at 1000x: the physics must not
    care. The last cycle's O2 and H2O are the ones the line judges against its limits."""
    results = []
    for chunk_s in (0.5, 50.0):
        plant = line(items=True)
        load_the_inlet(plant)
        results.append(purge(plant, chunk_s))
    fine, coarse = results
    for key in fine:
        assert coarse[key] == pytest.approx(fine[key], rel=0.02), key
    assert fine["evacuated_pa"] < 40.0
    assert fine["o2_ppmv"] < 10.0
    assert fine["h2o_ppmv"] < h2o_ppmv_at_frost_point(-50.0)
