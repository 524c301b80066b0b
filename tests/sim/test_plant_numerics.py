"""Step-size independence, stability, conservation, and the cost of long simulations."""

from __future__ import annotations

import itertools
import math

import pytest

from sim_hardware.plant import (
    LineSpec,
    OpeningSpec,
    Plant,
    SpaceSpec,
    standard_line_spec,
)
from sim_hardware.plant.gas import Species


def scenario(dt_s: float) -> dict[str, float]:
    """A day's work in miniature, advanced in equal calls of `dt_s`."""
    plant = Plant.from_spec(standard_line_spec())
    inlet, process = plant.spaces["inlet"], plant.spaces["process"]
    out: dict[str, float] = {}

    def run(seconds: float) -> None:
        for _ in range(round(seconds / dt_s)):
            plant.advance(dt_s)

    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    run(60.0)
    out["inlet p after 60 s roughing"] = inlet.pressure_pa
    run(60.0)
    out["inlet p after 120 s roughing"] = inlet.pressure_pa
    plant.valves["inlet.rough"].open = False
    plant.valves["inlet.gas_fill"].open = True
    run(10.0)
    out["inlet p 10 s into the fill"] = inlet.pressure_pa
    run(50.0)
    plant.valves["inlet.gas_fill"].open = False
    out["inlet H2O ppmv"] = inlet.h2o_ppmv
    out["inlet O2 ppmv"] = inlet.o2_ppmv
    plant.doors["inlet_gate"].open = True
    run(20.0)
    out["inlet O2 after the gate opened"] = inlet.o2_ppmv
    plant.doors["inlet_gate"].open = False
    plant.pumps["process.backing"].running = True
    plant.valves["process.rough"].open = True
    run(200.0)
    out["process p after 200 s roughing"] = process.pressure_pa
    plant.valves["process.rough"].open = False
    plant.valves["process.turbo_gate"].open = True
    plant.turbo.pumping_station_on = True
    run(100.0)
    out["turbo speed 100 s into run-up"] = plant.turbo.actual_speed_hz
    out["process p 100 s into run-up"] = process.pressure_pa
    run(600.0)
    out["process p at 700 s on the turbo"] = process.pressure_pa
    plant.heaters["substrate"].setpoint_c = 120.0
    run(300.0)
    out["substrate temp after 300 s"] = plant.heaters["substrate"].temp_c
    return out


def test_same_end_state_for_small_and_large_steps() -> None:
    fine, coarse = scenario(0.05), scenario(5.0)
    for key, value in fine.items():
        assert coarse[key] == pytest.approx(value, rel=0.01), key


@pytest.mark.parametrize("dt_s", [0.01, 1.0, 10.0, 60.0, 3600.0])
def test_no_overshoot_or_negative_amounts_at_any_step(dt_s: float) -> None:
    plant = Plant.from_spec(standard_line_spec())
    inlet = plant.spaces["inlet"]
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(600.0)
    plant.valves["inlet.rough"].open = False
    # a door flung open between vacuum and the room: the pressure must climb to the room's, not past it
    plant.doors["inlet.outer"].open = True
    pressures = []
    for _ in range(20):
        plant.advance(dt_s)
        pressures.append(inlet.pressure_pa)
        assert all(n >= 0.0 for n in inlet.amounts_mol)
    room = plant.room.pressure_pa
    assert all(p <= room * (1 + 1e-9) for p in pressures)
    # monotonic, to within the mPa that wall outgassing and species exchange stir at equilibrium
    assert all(later >= earlier - 1e-8 * room for earlier, later in itertools.pairwise(pressures))
    if dt_s >= 10.0:
        assert pressures[-1] == pytest.approx(plant.room.pressure_pa, rel=1e-6)


def closed_pair_spec() -> LineSpec:
    """Two sealed spaces with no outgassing, joined by a valve."""
    return LineSpec(
        spaces=(
            SpaceSpec("a", volume_m3=0.03, wall_area_m2=0.5, q_1h_pa_m3_s_m2=0.0, initial_pressure_pa=1e5),
            SpaceSpec("b", volume_m3=0.1, wall_area_m2=1.0, q_1h_pa_m3_s_m2=0.0, initial_pressure_pa=10.0),
        ),
        openings=(
            OpeningSpec(
                "a_b",
                "door",
                "a",
                "b",
                conductance_atm_m3_s=0.05,
                conductance_molecular_m3_s=0.02,
                mixing_m3_s=1e-3,
            ),
        ),
    )


@pytest.mark.parametrize("dt_s", [0.05, 5.0, 600.0])
def test_mass_is_conserved_between_closed_spaces(dt_s: float) -> None:
    plant = Plant.from_spec(closed_pair_spec())
    a, b = plant.spaces["a"], plant.spaces["b"]
    before = [x + y for x, y in zip(a.amounts_mol, b.amounts_mol, strict=True)]
    plant.doors["a_b"].open = True
    for _ in range(int(1200 / dt_s)):
        plant.advance(dt_s)
    after = [x + y for x, y in zip(a.amounts_mol, b.amounts_mol, strict=True)]
    for i, (x, y) in enumerate(zip(before, after, strict=True)):
        assert y == pytest.approx(x, rel=1e-12, abs=1e-18), Species(i).name
    # equalised: same pressure on both sides, same composition
    assert a.pressure_pa == pytest.approx(b.pressure_pa, rel=1e-6)
    assert a.pressure_pa == pytest.approx((1e5 * 0.03 + 10.0 * 0.1) / 0.13, rel=1e-6)


def test_molecular_flow_separates_species_by_mass() -> None:
    """Below the transition pressure each species flows on its own: light ones faster."""
    spec = closed_pair_spec()
    spaces = (
        SpaceSpec("a", volume_m3=0.03, wall_area_m2=0.5, q_1h_pa_m3_s_m2=0.0, initial_pressure_pa=0.01),
        SpaceSpec("b", volume_m3=0.1, wall_area_m2=1.0, q_1h_pa_m3_s_m2=0.0, initial_pressure_pa=1e-6),
    )
    plant = Plant.from_spec(LineSpec(spaces=spaces, openings=spec.openings))
    a = plant.spaces["a"]
    plant.doors["a_b"].open = True
    plant.advance(2.0 + 0.2)  # 2 s travel, then a short while
    assert a.mole_fraction(Species.H2O) < plant.room.fractions[Species.H2O]  # water (M=18) left faster
    assert a.mole_fraction(Species.AR) > plant.room.fractions[Species.AR]  # argon (M=40) lagged


def test_five_hours_take_few_substeps() -> None:
    """The cost of a long quiet stretch is bounded by the 10 s maximum sub-step."""
    plant = Plant.from_spec(standard_line_spec())
    plant.pumps["process.backing"].running = True
    plant.valves["process.rough"].open = True
    plant.advance(300.0)
    plant.valves["process.rough"].open = False
    plant.valves["process.turbo_gate"].open = True
    plant.turbo.pumping_station_on = True
    plant.advance(600.0)
    start = plant.substeps
    plant.advance(5 * 3600.0)
    assert plant.substeps - start <= 5 * 3600 / 10.0 + 50
    assert math.isfinite(plant.spaces["process"].pressure_pa)


def test_advance_rejects_negative_time() -> None:
    plant = Plant.from_spec(standard_line_spec())
    with pytest.raises(ValueError, match="cannot advance"):
        plant.advance(-1.0)
    plant.advance(0.0)
    assert plant.time_s == 0.0
