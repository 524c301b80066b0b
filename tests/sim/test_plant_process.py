"""Process chamber: turbo pump-down and its 1/t tail, turbo faults, MFC, heaters, deposition, QCM."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sim_hardware.plant import Plant, standard_line_spec
from sim_hardware.plant.mfc import sccm_to_pa_m3_s
from sim_hardware.plant.turbo import ERR_BACKING, ERR_DRIVE, ERR_GAS_INRUSH, ERR_RUN_UP, TURBO_OK

BASE_PRESSURE_PA = 1.33e-4  # DESIGN §2: 1e-6 Torr before any deposition


def plant_with_process(**changes: object) -> Plant:
    spec = standard_line_spec()
    spaces = tuple(dataclasses.replace(s, **changes) if s.name == "process" else s for s in spec.spaces)  # type: ignore[arg-type]
    return Plant.from_spec(dataclasses.replace(spec, spaces=spaces))


def rough_then_turbo(plant: Plant, rough_to_pa: float = 10.0) -> tuple[float, float]:
    """Rough the chamber, switch to the turbo; returns (roughing time, run-up time)."""
    chamber = plant.spaces["process"]
    plant.pumps["process.backing"].running = True
    plant.valves["process.rough"].open = True
    while chamber.pressure_pa > rough_to_pa:
        plant.advance(1.0)
    roughing = plant.time_s
    plant.valves["process.rough"].open = False
    plant.valves["process.turbo_gate"].open = True
    plant.advance(3.0)
    plant.turbo.pumping_station_on = True
    start = plant.time_s
    while not plant.turbo.set_speed_reached:
        assert plant.time_s - start < 600.0
        plant.advance(1.0)
    return roughing, plant.time_s - start


def advance_until(plant: Plant, t_s: float, step_s: float = 10.0) -> None:
    while plant.time_s < t_s - 1e-9:
        plant.advance(min(step_s, t_s - plant.time_s))


@pytest.fixture
def plant() -> Plant:
    return Plant.from_spec(standard_line_spec())


def test_turbo_pump_down_follows_the_outgassing_law(plant: Plant) -> None:
    chamber = plant.spaces["process"]
    roughing, run_up = rough_then_turbo(plant)
    assert 60.0 < roughing < 300.0  # ~ 3 min: 100 L on 25 m³/h to 10 Pa
    assert 120.0 < run_up < 300.0  # HiPace 300: 2-5 min
    q_1h = chamber.wall_q_1h_pa_m3_s  # 5e-8 mbar·L/s/cm² on 1.5 m² = 7.5e-5 Pa·m³/s
    speed = plant.turbo.spec.speed_n2_m3_s
    for hours in (1.0, 2.0):
        advance_until(plant, hours * 3600.0)
        predicted = q_1h / hours / speed  # Q(t)/S, t from the start of pumping
        assert predicted / 2.0 < chamber.pressure_pa < predicted * 2.0
    advance_until(plant, 5 * 3600.0)
    assert chamber.pressure_pa <= BASE_PRESSURE_PA  # reached at ~2.3 h
    assert chamber.mole_fraction("H2O") > 0.8  # the tail is water
    assert plant.turbo.error_code == TURBO_OK
    assert plant.turbo.drive_power_w == pytest.approx(12.0, abs=1.0)


@pytest.mark.parametrize(("q_1h_mbar", "hours_max"), [(3e-8, 2.0), (1e-7, 5.0)])
def test_base_pressure_within_one_to_five_hours_unbaked(q_1h_mbar: float, hours_max: float) -> None:
    plant = plant_with_process(q_1h_pa_m3_s_m2=q_1h_mbar * 1e3)
    rough_then_turbo(plant)
    chamber = plant.spaces["process"]
    while chamber.pressure_pa > BASE_PRESSURE_PA:
        plant.advance(60.0)
    assert 1.0 * 3600.0 * 0.5 < plant.time_s <= hours_max * 3600.0


def test_a_chamber_kept_under_vacuum_reaches_base_pressure_in_minutes() -> None:
    plant = plant_with_process(initial_pressure_pa=1.0, initial_gas="ar", initial_outgassing_age_s=86400.0)
    plant.pumps["process.backing"].running = True
    plant.valves["process.turbo_gate"].open = True
    plant.advance(30.0)
    plant.turbo.pumping_station_on = True
    plant.advance(600.0)
    assert plant.spaces["process"].pressure_pa < BASE_PRESSURE_PA


def test_a_leak_raises_the_base_pressure(plant: Plant) -> None:
    rough_then_turbo(plant)
    advance_until(plant, 3600.0)
    tight = plant.spaces["process"].pressure_pa
    plant.set_leak("process", 1e-4)
    plant.advance(60.0)
    assert plant.spaces["process"].pressure_pa > 1e-4 / 0.25 * 0.8 + tight
    assert plant.spaces["process"].o2_ppmv > 1000.0


def test_turbo_does_not_start_without_backing(plant: Plant) -> None:
    turbo = plant.turbo
    plant.valves["process.turbo_gate"].open = False
    turbo.pumping_station_on = True  # foreline still at atmosphere: the rotor waits
    plant.advance(60.0)
    assert turbo.actual_speed_hz == 0.0
    assert not bool(turbo.accelerating)  # bool(): keep mypy from pinning the property
    plant.advance(480.0)
    assert turbo.error_code == ERR_RUN_UP
    turbo.acknowledge_error()
    plant.pumps["process.backing"].running = True
    plant.advance(60.0)
    assert turbo.foreline_pressure_pa < 10.0
    plant.advance(60.0)
    assert turbo.accelerating
    assert turbo.actual_speed_hz > 0.0
    assert turbo.drive_power_w == pytest.approx(turbo.spec.max_drive_power_w)
    assert turbo.drive_current_a == pytest.approx(turbo.drive_power_w / 48.0)


def test_venting_a_spinning_turbo_trips_it(plant: Plant) -> None:
    rough_then_turbo(plant)
    turbo = plant.turbo
    plant.valves["process.vent"].open = True
    plant.advance(5.0)
    assert turbo.error_code == ERR_GAS_INRUSH
    assert not turbo.drive_enabled
    assert turbo.drive_power_w == 0.0
    assert turbo.actual_speed_hz < 500.0  # gas at the inlet brakes the rotor within seconds


def test_backing_pump_failure_trips_the_turbo(plant: Plant) -> None:
    rough_then_turbo(plant)
    turbo = plant.turbo
    plant.pump_failure("process.backing", True)
    plant.advance(120.0)
    assert turbo.error_code == ERR_BACKING
    plant.pump_failure("process.backing", False)
    plant.advance(30.0)
    turbo.acknowledge_error()
    assert turbo.error_code == TURBO_OK
    plant.advance(300.0)
    assert turbo.set_speed_reached


def test_turbo_drive_failure_cannot_be_acknowledged(plant: Plant) -> None:
    rough_then_turbo(plant)
    plant.pump_failure("process.turbo", True)
    plant.advance(1.0)
    assert plant.turbo.error_code == ERR_DRIVE
    plant.turbo.acknowledge_error()
    assert plant.turbo.error_code == ERR_DRIVE


def test_turbo_readbacks_the_pfeiffer_simulator_uses(plant: Plant) -> None:
    turbo = plant.turbo
    assert turbo.nominal_speed_hz == turbo.set_speed_hz == 1000.0
    assert turbo.error_code == "000000"
    assert turbo.motor_on
    assert not turbo.pumping_station_on
    rough_then_turbo(plant)
    plant.advance(1800.0)
    assert turbo.set_speed_reached
    assert not turbo.accelerating
    assert turbo.actual_speed_hz == 1000.0
    for temp in (turbo.electronics_temp_c, turbo.bottom_temp_c, turbo.bearing_temp_c, turbo.motor_temp_c):
        assert 20.0 < temp < 60.0
    turbo.pumping_station_on = False
    plant.advance(60.0)
    assert 0.0 < turbo.actual_speed_hz < 1000.0  # coasting, slowly under vacuum
    assert not turbo.set_speed_reached


def test_mfc_flow_sets_the_sputter_pressure(plant: Plant) -> None:
    rough_then_turbo(plant)
    plant.advance(600.0)
    mfc = plant.mfc
    mfc.setpoint_sccm = 20.0
    plant.advance(0.5)
    assert 0.0 < mfc.flow_sccm < 20.0  # first-order response
    plant.advance(30.0)
    assert mfc.flow_sccm == pytest.approx(20.0)
    expected = sccm_to_pa_m3_s(20.0) / (0.95 * 0.25 / (1 + 0.17 / 2.0))
    assert plant.spaces["process"].pressure_pa == pytest.approx(expected, rel=0.05)  # ~0.17 Pa
    assert plant.spaces["process"].ppmv("Ar") > 990_000.0
    plant.valves["process.turbo_gate"].throttle_fraction = 0.3
    plant.advance(30.0)
    assert 0.3 < plant.spaces["process"].pressure_pa < 1.0
    mfc.setpoint_sccm = 500.0
    assert mfc.setpoint_sccm == mfc.full_scale_sccm


def test_deposition_only_when_enabled_shutter_open_and_pressure_in_window(plant: Plant) -> None:
    source = plant.sources["dc_sputter"]
    substrate = plant.substrates["process"]
    source.power_setpoint_w = 300.0
    source.enabled = True
    source.shutter_open = True
    plant.advance(10.0)
    assert not bool(source.emitting)  # bool(): keep mypy from pinning the property
    assert source.rate_nm_s == 0.0
    source.enabled = False  # (it would strike while the pump-down passes through 0.1–1 Pa)
    rough_then_turbo(plant)
    plant.advance(600.0)
    source.enabled = True
    plant.advance(10.0)
    assert source.rate_nm_s == 0.0  # high vacuum: no plasma either
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    assert source.emitting
    assert source.power_w == 300.0
    assert source.rate_nm_s == pytest.approx(1.2)  # DC: 0.004 nm/s/W
    source.shutter_open = False
    assert source.rate_nm_s == 0.0
    assert source.flux_rate_nm_s == pytest.approx(1.2)
    source.enabled = False
    assert source.rate_nm_s == 0.0
    assert source.flux_rate_nm_s == 0.0
    assert substrate.thickness_nm == pytest.approx(30.0 * 1.2, rel=0.05)  # only while the Ar was in


def test_thickness_grows_linearly_and_the_crystals_follow(plant: Plant) -> None:
    rough_then_turbo(plant)
    plant.advance(600.0)
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    rf = plant.sources["rf_sputter"]
    rf.power_setpoint_w = 300.0
    rf.enabled = True
    qcm = plant.qcm
    f_start = [c.frequency_hz for c in qcm.channels]
    rf.shutter_open = True
    substrate = plant.substrates["process"]
    plant.advance(600.0)
    first = substrate.thickness_nm
    plant.advance(600.0)
    assert first == pytest.approx(90.0)  # RF: 0.15 nm/s at 300 W, 8x slower than DC
    assert substrate.thickness_nm == pytest.approx(2 * first)
    assert substrate.layers_nm == {rf.material: pytest.approx(180.0)}
    for channel, start in zip(qcm.channels, f_start, strict=True):
        # Sauerbrey: Δf = 2 f0² m / Zq for 180 nm x geometry of 1.9 g/cm³ on a 6 MHz crystal
        mass_kg_m2 = 180e-9 * 1900.0 * channel.geometry_ratio
        assert start - channel.frequency_hz == pytest.approx(2 * 6.0e6**2 * mass_kg_m2 / 8.834e6, rel=1e-3)
        slope = -2 * 6.0e6**2 * 0.15e-9 * 1900.0 * channel.geometry_ratio / 8.834e6
        assert channel.frequency_slope_hz_s == pytest.approx(slope, rel=2e-3)  # f²/f0² lower by now
    assert qcm.channels[0].film_areal_mass_kg_m2 == pytest.approx(180e-9 * 1900.0 * 0.8)
    rf.enabled = False
    plant.advance(1.0)
    assert qcm.channels[0].frequency_slope_hz_s == 0.0
    qcm.channels[0].replace_crystal()
    assert qcm.channels[0].frequency_hz == 6.0e6


def test_the_crystal_resonance_is_the_z_match_law_of_its_film() -> None:
    """One film: Zq·tan(π f/f0) = -Zf·tan(2π f t/v), i.e. m = Zq/(2π z f)·atan(z·tan(π(f0-f)/f0))."""
    plant = Plant.from_spec(standard_line_spec())
    channel = plant.qcm.channel(1)
    mass = 0.02  # kg/m² of lithium (37 µm): heavy enough for the Z-ratio to show
    channel.deposit(mass, 1.0, 534.0, 4.2e9)
    f, f0 = channel.frequency_hz, 6.0e6
    z = 8.834e6 / (534.0 * 4.2e9) ** 0.5  # 5.9, lithium's Z-ratio
    zmatch = 8.834e6 / (2 * math.pi * z * f) * math.atan(z * math.tan(math.pi * (f0 - f) / f0))
    assert zmatch == pytest.approx(mass, rel=1e-9)
    sauerbrey = 8.834e6 * (f0 - f) / (2 * f0**2)
    assert abs(sauerbrey / mass - 1.0) > 0.01  # the Z-match correction matters at this load


def test_crystal_reaches_end_of_life() -> None:
    plant = Plant.from_spec(standard_line_spec())
    channel = plant.qcm.channel(1)
    channel.deposit(mass_rate_kg_m2_s=0.15, dt_s=1.0)  # 0.15 kg/m²: a thick film
    assert channel.frequency_hz < 5.0e6
    assert channel.failed


def test_evaporation_and_laser_need_high_vacuum(plant: Plant) -> None:
    evaporation = plant.sources["evaporation"]
    laser = plant.sources["pulsed_laser"]
    evaporation.power_setpoint_w = 250.0
    laser.power_setpoint_w = 3.0
    for source in (evaporation, laser):
        source.enabled = True
        source.shutter_open = True
    rough_then_turbo(plant)
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    assert evaporation.rate_nm_s == 0.0
    assert laser.rate_nm_s == 0.0
    plant.mfc.setpoint_sccm = 0.0
    plant.advance(120.0)
    assert evaporation.rate_nm_s == pytest.approx(0.4)  # (250 − 50 W) x 0.002
    assert laser.rate_nm_s == pytest.approx(0.5)  # 0.3 J pulses at 10 Hz: 0.05 nm/pulse
    laser.rep_rate_hz = 5.0  # same power: twice the pulse energy, half the pulses
    assert laser.rate_nm_s == pytest.approx(0.5)


def test_ion_source_etches_and_assists_ion_plating(plant: Plant) -> None:
    rough_then_turbo(plant)
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    ion = plant.sources["ion_source"]
    ion.power_setpoint_w = 200.0
    ion.enabled = True
    ion.shutter_open = True
    plant.advance(100.0)
    assert plant.substrates["process"].etched_nm == pytest.approx(40.0, rel=0.02)
    assert plant.substrates["process"].thickness_nm == 0.0
    evaporation = plant.sources["evaporation"]
    evaporation.power_setpoint_w = 250.0
    evaporation.enabled = True
    evaporation.shutter_open = True
    plant.advance(1.0)
    assert evaporation.rate_nm_s == 0.0  # plain evaporation at 0.17 Pa: no
    ion.mode = "plating"
    plant.advance(10.0)
    assert evaporation.pressure_window_pa == (0.1, 1.0)
    assert evaporation.rate_nm_s == pytest.approx(0.4)


def test_heater_approaches_setpoint_with_lag_and_no_overshoot(plant: Plant) -> None:
    heater = plant.heaters["substrate"]
    heater.setpoint_c = 150.0
    plant.advance(60.0)
    assert heater.output_pct == 100.0
    assert 30.0 < heater.temp_c < 60.0
    highest = 0.0
    for _ in range(360):
        plant.advance(10.0)
        highest = max(highest, heater.temp_c)
    assert heater.temp_c == pytest.approx(150.0, abs=0.5)
    assert highest < 151.0
    assert 5.0 < heater.output_pct < 60.0  # holding against its losses


def test_heater_cools_slower_in_vacuum() -> None:
    def cooled_after_10_min(vacuum: bool) -> float:
        plant = Plant.from_spec(standard_line_spec())
        if vacuum:
            rough_then_turbo(plant)
        heater = plant.heaters["substrate"]
        heater.setpoint_c = 150.0
        plant.advance(3600.0)
        heater.setpoint_c = 20.0
        plant.advance(600.0)
        return heater.temp_c

    in_gas, in_vacuum = cooled_after_10_min(False), cooled_after_10_min(True)
    assert in_vacuum > in_gas + 15.0  # ~127 °C against ~100 °C


def test_heater_faults(plant: Plant) -> None:
    heater = plant.heaters["substrate"]
    heater.setpoint_c = 100.0
    plant.advance(600.0)
    plant.heater_sensor_break("substrate", True)
    plant.advance(10.0)
    assert heater.output_pct == 0.0
    plant.heater_sensor_break("substrate", False)
    heater.over_temp_limit_c = 90.0
    plant.advance(10.0)
    assert heater.over_temp
    assert heater.output_pct == 0.0
    assert not heater.reset_over_temp()  # still above the limit
    heater.over_temp_limit_c = 250.0
    assert heater.reset_over_temp()
    heater.manual = True
    heater.manual_output_pct = 50.0
    plant.advance(10.0)
    assert heater.output_pct == 50.0
    plant.power_loss(True)
    plant.advance(10.0)
    assert heater.output_pct == 0.0


def test_setpoint_rate_limit_ramps_the_working_setpoint(plant: Plant) -> None:
    heater = plant.heaters["substrate"]
    heater.setpoint_rate_c_per_min = 6.0
    heater.setpoint_c = 80.0
    plant.advance(300.0)
    assert heater.working_setpoint_c == pytest.approx(50.0)
    assert heater.temp_c < 50.0


def test_power_loss_stops_the_process(plant: Plant) -> None:
    rough_then_turbo(plant)
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    dc = plant.sources["dc_sputter"]
    dc.power_setpoint_w = 300.0
    dc.enabled = True
    plant.power_loss(True)
    plant.advance(10.0)
    assert not plant.turbo.pumping_station_on
    assert not plant.turbo.drive_enabled
    assert plant.valves["process.turbo_gate"].is_closed
    assert not dc.enabled
    assert dc.power_w == 0.0
    assert plant.mfc.flow_sccm < 0.01
    plant.turbo.pumping_station_on = True
    assert not plant.turbo.pumping_station_on
