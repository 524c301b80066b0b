"""Antechamber physics: roughing, pump/purge cycles, back-fill, doors, leaks, purifier, faults."""

from __future__ import annotations

import pytest

from sim_hardware.plant import Plant, standard_line_spec
from sim_hardware.plant.humidity import STANDARD_ATMOSPHERE_PA


@pytest.fixture
def plant() -> Plant:
    return Plant.from_spec(standard_line_spec())


def pump_down(plant: Plant, space: str, target_pa: float, limit_s: float = 1200.0) -> float:
    """Rough a space to `target_pa`; returns the time it took."""
    start = plant.time_s
    plant.pumps[f"{space}.rough"].running = True
    plant.valves[f"{space}.rough"].open = True
    while plant.spaces[space].pressure_pa > target_pa:
        assert plant.time_s - start < limit_s, f"{space} did not reach {target_pa} Pa"
        plant.advance(0.5)
    plant.valves[f"{space}.rough"].open = False
    return plant.time_s - start


def back_fill(plant: Plant, space: str, limit_s: float = 300.0) -> float:
    """Fill a space with Ar to 1 atm through its gas-fill valve; returns the time it took."""
    start = plant.time_s
    plant.valves[f"{space}.gas_fill"].open = True
    while plant.spaces[space].pressure_pa < STANDARD_ATMOSPHERE_PA:
        if plant.time_s - start > limit_s:
            break
        plant.advance(0.5)
    plant.valves[f"{space}.gas_fill"].open = False
    return plant.time_s - start


def purge_cycles(plant: Plant, space: str, cycles: int, evacuate_to_pa: float = 50.0) -> None:
    for _ in range(cycles):
        pump_down(plant, space, evacuate_to_pa)
        plant.advance(1.0)
        back_fill(plant, space)
        plant.advance(30.0)


def test_inlet_roughs_from_atmosphere_to_10_pa_in_about_two_minutes(plant: Plant) -> None:
    # 30 L on 10 m³/h: ideal V/S·ln(p0/p) = 99 s; the DN25 line and the pump's falling speed below
    # ~10 Pa make it about 115 s (devices.md §10: real cycles 1.5–3x the ideal, with load water)
    took = pump_down(plant, "inlet", 10.0)
    assert 100.0 < took < 300.0
    assert 45.0 < pump_down(plant, "outlet", 1000.0) < 60.0  # viscous region: the ideal 50 s


def test_rough_pump_bottoms_out_near_its_ultimate(plant: Plant) -> None:
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(3600.0)
    assert 0.3 < plant.spaces["inlet"].pressure_pa < 1.0


def test_back_fill_from_10_pa_to_one_atmosphere_takes_20_to_60_s(plant: Plant) -> None:
    pump_down(plant, "inlet", 10.0)
    took = back_fill(plant, "inlet")
    assert 20.0 <= took <= 60.0
    plant.valves["inlet.gas_fill"].open = True
    plant.advance(300.0)
    # the regulator stops the fill at box pressure (+5 mbar), not at the cylinder's pressure
    assert plant.gloveboxes["inlet"].box_pressure_pa == pytest.approx(500.0, abs=20.0)


def test_three_purge_cycles_make_the_antechamber_inert_and_one_does_not(plant: Plant) -> None:
    inlet = plant.spaces["inlet"]
    purge_cycles(plant, "inlet", 1)
    assert not (inlet.frost_point_1atm_c < -50.0 and inlet.o2_ppmv < 10.0)
    assert inlet.o2_ppmv > 50.0  # ~ 100 ppm: 50 Pa of air left in 1 atm
    assert inlet.frost_point_1atm_c > -55.0  # ~ -52 °C: the walls still give water at 9 ppm/min
    purge_cycles(plant, "inlet", 2)
    assert inlet.frost_point_1atm_c < -50.0  # ~ -62 °C
    assert inlet.o2_ppmv < 10.0  # ~ 5.6 ppm: the 4.0 argon's own O2 plus pump backstreaming
    assert inlet.ppmv("Ar") > 999_800.0


def test_empty_gas_supply_cannot_refill(plant: Plant) -> None:
    pump_down(plant, "inlet", 50.0)
    plant.gas_supply_empty(True)
    back_fill(plant, "inlet", limit_s=120.0)
    assert plant.spaces["inlet"].pressure_pa < 100.0
    plant.mfc.setpoint_sccm = 50.0
    plant.advance(10.0)
    assert plant.mfc.flow_sccm == 0.0
    plant.gas_supply_empty(False)
    back_fill(plant, "inlet")
    assert plant.spaces["inlet"].pressure_pa >= STANDARD_ATMOSPHERE_PA


def test_supply_inventory_runs_out() -> None:
    import dataclasses

    spec = standard_line_spec()
    supply = dataclasses.replace(spec.supplies[0], inventory_mol=0.5)  # about a third of one fill
    plant = Plant.from_spec(dataclasses.replace(spec, supplies=(supply,)))
    pump_down(plant, "inlet", 50.0)
    back_fill(plant, "inlet", limit_s=120.0)
    assert plant.supplies["ar"].empty
    assert plant.spaces["inlet"].pressure_pa < 0.5 * STANDARD_ATMOSPHERE_PA


def test_opening_the_outer_door_of_an_inert_antechamber_contaminates_it(plant: Plant) -> None:
    purge_cycles(plant, "inlet", 3)
    inlet = plant.spaces["inlet"]
    assert inlet.o2_ppmv < 10.0
    age_before = inlet.outgassing_age_s
    plant.doors["inlet.outer"].open = True
    plant.advance(60.0)
    assert plant.doors["inlet.outer"].is_open
    assert inlet.o2_ppmv > 100_000.0
    assert inlet.frost_point_1atm_c > -20.0
    assert inlet.outgassing_age_s < 0.7 * age_before  # the walls are partly wet again


def test_inner_door_between_inert_and_air_spaces_mixes_them(plant: Plant) -> None:
    purge_cycles(plant, "inlet", 3)
    process = plant.spaces["process"]  # still full of room air
    plant.doors["inlet_gate"].open = True
    plant.advance(120.0)
    assert plant.spaces["inlet"].o2_ppmv > 50_000.0
    assert process.o2_ppmv < 207_000.0


def test_a_leak_raises_the_base_pressure_and_the_frost_point(plant: Plant) -> None:
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(1800.0)
    tight = plant.spaces["inlet"].pressure_pa
    plant.set_leak("inlet", 5e-3)  # Pa·m³/s
    plant.advance(600.0)
    leaking = plant.spaces["inlet"].pressure_pa
    assert leaking > 2.0 * tight
    # at 1 atm of Ar the leak (a glove breach) still lets O2 and water diffuse in
    plant.valves["inlet.rough"].open = False
    plant.set_leak("inlet", 0.0)
    back_fill(plant, "inlet")
    plant.advance(30.0)
    inlet = plant.spaces["inlet"]
    o2_before, frost_before = inlet.o2_ppmv, inlet.frost_point_1atm_c
    plant.set_leak("inlet", 5e-3)
    plant.advance(1800.0)
    assert inlet.o2_ppmv > o2_before + 50.0
    assert inlet.frost_point_1atm_c > frost_before


def test_purifier_brings_the_box_below_1_ppm_in_tens_of_minutes(plant: Plant) -> None:
    box = plant.gloveboxes["inlet"]
    purge_cycles(plant, "inlet", 3)
    box.circulation_on = True
    plant.advance(4 * 3600.0)  # a new box: its walls take hours to dry
    assert box.o2_ppmv < 0.3
    assert box.h2o_ppmv < 1.0
    # a transfer: outer door open for a minute, then three purge cycles
    plant.doors["inlet.outer"].open = True
    plant.advance(60.0)
    plant.doors["inlet.outer"].open = False
    plant.advance(5.0)
    purge_cycles(plant, "inlet", 3)
    assert box.o2_ppmv > 2.0
    assert box.h2o_ppmv > 2.0
    start = plant.time_s
    while box.o2_ppmv >= 1.0 or box.h2o_ppmv >= 1.0:
        plant.advance(10.0)
    assert 5 * 60.0 < plant.time_s - start < 60 * 60.0  # ~ 15 min
    assert 0.0 < box.saturation_pct < 100.0
    box.start_regeneration()
    assert bool(box.regenerating)  # bool(): keep mypy from pinning the property
    assert not box.circulation_on
    plant.advance(13 * 3600.0)
    assert not box.regenerating
    assert box.saturation_pct == 0.0


def test_purifier_does_nothing_at_vacuum(plant: Plant) -> None:
    box = plant.gloveboxes["inlet"]
    box.circulation_on = True
    pump_down(plant, "inlet", 50.0)
    assert not box.purifying


def test_outgassing_of_a_load_adds_water(plant: Plant) -> None:
    purge_cycles(plant, "inlet", 3)
    clean = plant.spaces["inlet"].h2o_ppmv
    other = Plant.from_spec(standard_line_spec())
    load = other.add_load("inlet", area_m2=0.5, q_1h_pa_m3_s_m2=1e-4, name="container")
    purge_cycles(other, "inlet", 3)
    assert other.spaces["inlet"].h2o_ppmv > clean + 5.0
    other.move_load(load, "process")
    assert load.space is other.spaces["process"]
    other.remove_load(load)
    assert other.loads == []


def test_power_loss_stops_pumps_and_closes_valves(plant: Plant) -> None:
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.doors["inlet.outer"].open = True
    plant.advance(10.0)
    plant.power_loss(True)
    assert not plant.pumps["inlet.rough"].running
    assert not plant.valves["inlet.rough"].open
    plant.valves["inlet.gas_fill"].open = True  # ignored: nothing can be energised
    plant.pumps["inlet.rough"].running = True
    assert not plant.valves["inlet.gas_fill"].open
    assert not plant.pumps["inlet.rough"].running
    assert plant.doors["inlet.outer"].open  # a fail-in-place door stays as it was
    plant.advance(5.0)
    assert plant.valves["inlet.rough"].is_closed
    plant.power_loss(False)
    assert not plant.pumps["inlet.rough"].running  # nothing restarts by itself
    plant.pumps["inlet.rough"].running = True
    assert plant.pumps["inlet.rough"].pumping


def test_failed_rough_pump_does_not_pump(plant: Plant) -> None:
    plant.pump_failure("inlet.rough", True)
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(60.0)
    assert plant.spaces["inlet"].pressure_pa > 0.99 * STANDARD_ATMOSPHERE_PA
    assert plant.pumps["inlet.rough"].running
    assert not plant.pumps["inlet.rough"].pumping


def test_valve_travel_and_limit_switches(plant: Plant) -> None:
    door = plant.doors["inlet_gate"]
    door.open = True
    # (door.is_open, door.is_closed) read afresh each time: the limit switches
    assert (door.is_open, door.is_closed) == (False, True)
    plant.advance(1.0)
    assert (door.is_open, door.is_closed) == (False, False)  # half-way through its 2 s travel
    plant.advance(1.0)
    assert (door.is_open, door.is_closed) == (True, False)
    door.stuck = True
    door.open = False
    plant.advance(5.0)
    assert door.is_open
