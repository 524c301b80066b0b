"""Lines are built from specs: the standard line, its variants, and spec errors."""

from __future__ import annotations

import dataclasses

import pytest

from sim_hardware.plant import (
    LineSpec,
    OpeningSpec,
    Plant,
    PlantSpecError,
    SpaceSpec,
    antechamber_parts,
    combine,
    gate_between,
    process_chamber_parts,
    q_mbar_l_s_cm2,
    shared_antechamber_line_spec,
    standard_line_spec,
    two_chamber_line_spec,
)


def test_standard_line_has_the_names_the_wiring_maps() -> None:
    plant = Plant.from_spec(standard_line_spec())
    assert set(plant.spaces) == {"inlet", "process", "outlet"}
    for name in ("inlet", "outlet"):
        assert {f"{name}.rough", f"{name}.vent", f"{name}.gas_fill"} <= set(plant.valves)
        assert f"{name}.outer" in plant.doors
        assert f"{name}.rough" in plant.pumps
        assert name in plant.gloveboxes
    assert {"process.rough", "process.vent", "process.gas_fill", "process.turbo_gate"} <= set(plant.valves)
    assert {"inlet_gate", "outlet_gate"} <= set(plant.doors)
    assert set(plant.sources) == {"dc_sputter", "rf_sputter", "evaporation", "pulsed_laser", "ion_source"}
    assert set(plant.heaters) == {"substrate", "source"}
    assert plant.turbo is plant.turbos["process.turbo"]
    assert plant.mfc is plant.mfcs["process.mfc"]
    assert len(plant.qcm.channels) == 2
    assert plant.spaces["process"].volume_m3 == pytest.approx(0.1)
    assert plant.spaces["inlet"].pressure_pa == pytest.approx(101325.0)
    assert plant.spaces["inlet"].o2_ppmv == pytest.approx(207_000, rel=0.01)


def test_shared_antechamber_line() -> None:
    plant = Plant.from_spec(shared_antechamber_line_spec())
    assert set(plant.spaces) == {"antechamber", "process"}
    plant.doors["antechamber_gate"].open = True
    plant.advance(10.0)
    assert plant.doors["antechamber_gate"].is_open


def test_two_process_chambers_joined_through_the_transfer_space() -> None:
    plant = Plant.from_spec(two_chamber_line_spec())
    assert {"process1", "transfer", "process2"} <= set(plant.spaces)
    assert "transfer.outer" not in plant.doors  # the intermediate space has no door to the room
    assert {"transfer.rough", "transfer.vent", "transfer.gas_fill"} <= set(plant.valves)
    assert "transfer" in plant.gloveboxes  # its purifier, whose O2 and H2O the controller reads
    assert {"process1.substrate", "process2.substrate"} <= set(plant.heaters)
    assert set(plant.substrates) == {"process1", "process2"}
    with pytest.raises(LookupError, match="pick one by name"):
        _ = plant.turbo
    plant.pumps["process1.backing"].running = True
    plant.valves["process1.rough"].open = True
    plant.advance(300.0)
    assert plant.spaces["process1"].pressure_pa < 100.0
    assert plant.spaces["process2"].pressure_pa > 100_000.0
    plant.doors["transfer_gate1"].open = True
    plant.advance(30.0)
    assert plant.spaces["process1"].pressure_pa == pytest.approx(
        plant.spaces["transfer"].pressure_pa, rel=1e-3
    )
    assert plant.spaces["process2"].pressure_pa > 100_000.0  # the far gate is closed


def test_a_line_built_from_parts_with_the_room_on_either_side() -> None:
    door = OpeningSpec("big.outer", "door", "room", "big", conductance_atm_m3_s=0.5, fail_closed=False)
    spec = combine(
        antechamber_parts("big", volume_m3=0.06, rough_pump_m3_h=20.0),
        process_chamber_parts("chamber", q_1h_pa_m3_s_m2=q_mbar_l_s_cm2(3e-8), turbo_speed_m3_s=0.7),
        extra_openings=(gate_between("big_gate", "big", "chamber"),),
    )
    spec = dataclasses.replace(spec, openings=(*(o for o in spec.openings if o.name != "big.outer"), door))
    plant = Plant.from_spec(spec)
    assert plant.turbo.spec.speed_n2_m3_s == 0.7
    assert plant.pumps["big.rough"].nominal_speed_m3_h == 20.0
    plant.pumps["big.rough"].running = True
    plant.valves["big.rough"].open = True
    plant.advance(60.0)
    plant.valves["big.rough"].open = False
    plant.doors["big.outer"].open = True
    plant.advance(30.0)
    assert plant.spaces["big"].pressure_pa == pytest.approx(101325.0, rel=1e-3)


def test_dry_nitrogen_vent_can_be_configured() -> None:
    spec = standard_line_spec()
    n2 = dataclasses.replace(spec.supplies[0], name="n2", gas="N2", purity_pct=99.999)
    openings = tuple(dataclasses.replace(o, b="n2") if o.name == "inlet.vent" else o for o in spec.openings)
    plant = Plant.from_spec(dataclasses.replace(spec, supplies=(*spec.supplies, n2), openings=openings))
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(300.0)
    plant.valves["inlet.rough"].open = False
    plant.valves["inlet.vent"].open = True
    plant.advance(300.0)
    inlet = plant.spaces["inlet"]
    assert inlet.pressure_pa > 100_000.0
    assert inlet.ppmv("N2") > 990_000.0
    assert inlet.o2_ppmv < 100.0


def test_unknown_names_are_spec_errors() -> None:
    spaces = (SpaceSpec("a", volume_m3=0.01, wall_area_m2=0.1, q_1h_pa_m3_s_m2=0.0),)
    bad = LineSpec(
        spaces=spaces, openings=(OpeningSpec("v", "valve", "a", "nowhere", conductance_atm_m3_s=1.0),)
    )
    with pytest.raises(PlantSpecError, match="nowhere"):
        Plant.from_spec(bad)
    twice = LineSpec(spaces=spaces * 2)
    with pytest.raises(PlantSpecError, match="duplicate"):
        Plant.from_spec(twice)
