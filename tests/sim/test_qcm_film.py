"""The QCM turns crystal mass into thickness with a film density: unprogrammed, the simulated monitor
follows the depositing source's film (a simulation convenience) and reads the substrate's film;
programmed (the SQM-160's ``A`` command), it converts with what it was told, right or wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controller.config.line_config import load_line_config
from controller.line.devices import LineDevices, build_line_devices
from drivers.thickness_monitor import FilmParameters, ThicknessMonitor
from sim_hardware.line import SimLine
from sim_hardware.plant import Plant, standard_line_spec
from sim_hardware.plant.deposition import QcmFilm

LI_G_CM3 = 0.534
ELECTROLYTE_G_CM3 = 1.9


def pump_down(plant: Plant) -> None:
    """Rough, then turbo to high vacuum: the window of the evaporator and the laser."""
    chamber = plant.spaces["process"]
    plant.pumps["process.backing"].running = True
    plant.valves["process.rough"].open = True
    while chamber.pressure_pa > 10.0:
        plant.advance(1.0)
    plant.valves["process.rough"].open = False
    plant.valves["process.turbo_gate"].open = True
    plant.advance(3.0)
    plant.turbo.pumping_station_on = True
    for _ in range(600):
        if plant.turbo.set_speed_reached:
            break
        plant.advance(1.0)
    plant.advance(600.0)
    assert chamber.pressure_pa < 1e-2


def argon_for_sputtering(plant: Plant) -> None:
    plant.mfc.setpoint_sccm = 20.0
    plant.advance(30.0)
    assert 0.1 < plant.spaces["process"].pressure_pa < 1.0


def start(plant: Plant, source_name: str, power_w: float) -> None:
    """Light the source on closed shutters, zero the monitor, open the shutters."""
    source = plant.sources[source_name]
    source.power_setpoint_w = power_w
    source.enabled = True
    plant.advance(5.0)
    assert source.emitting
    plant.qcm.zero()
    plant.substrates["process"].reset()
    source.shutter_open = True


def stop(plant: Plant, source_name: str) -> None:
    source = plant.sources[source_name]
    source.shutter_open = False
    source.enabled = False


@pytest.fixture
def plant() -> Plant:
    plant = Plant.from_spec(standard_line_spec())
    pump_down(plant)
    return plant


def test_unprogrammed_monitor_reads_the_lithium_sputtered_by_dc(plant: Plant) -> None:
    argon_for_sputtering(plant)
    start(plant, "dc_sputter", 300.0)
    plant.advance(300.0)
    film_nm = plant.substrates["process"].thickness_nm
    assert film_nm == pytest.approx(360.0, rel=0.01)  # 1.2 nm/s for 300 s
    assert plant.substrates["process"].layers_nm == {"Li": pytest.approx(film_nm)}
    for channel in plant.qcm.channels:
        assert channel.density_g_cm3 == pytest.approx(LI_G_CM3)
        assert channel.thickness_nm == pytest.approx(film_nm, rel=0.05)
        assert channel.rate_nm_s == pytest.approx(1.2, rel=0.05)


@pytest.mark.parametrize(
    ("source", "power_w", "sputter", "density_g_cm3"),
    [
        ("evaporation", 250.0, False, LI_G_CM3),
        ("rf_sputter", 300.0, True, ELECTROLYTE_G_CM3),
        ("pulsed_laser", 3.0, False, ELECTROLYTE_G_CM3),
    ],
)
def test_unprogrammed_monitor_reads_every_source_film(
    plant: Plant, source: str, power_w: float, sputter: bool, density_g_cm3: float
) -> None:
    if sputter:
        argon_for_sputtering(plant)
    start(plant, source, power_w)
    plant.advance(600.0)
    film_nm = plant.substrates["process"].thickness_nm
    assert film_nm > 50.0
    for channel in plant.qcm.channels:
        assert channel.density_g_cm3 == pytest.approx(density_g_cm3)
        assert channel.thickness_nm == pytest.approx(film_nm, rel=0.05)


def test_a_change_of_source_keeps_the_thickness_already_read(plant: Plant) -> None:
    argon_for_sputtering(plant)
    start(plant, "dc_sputter", 300.0)
    plant.advance(100.0)
    stop(plant, "dc_sputter")
    lithium_read_nm = plant.qcm.channel(1).thickness_nm
    rf = plant.sources["rf_sputter"]
    rf.power_setpoint_w, rf.enabled, rf.shutter_open = 300.0, True, True
    plant.advance(5.0)
    assert plant.qcm.channel(1).thickness_nm > lithium_read_nm  # no rescaling to the new density
    plant.advance(595.0)
    film_nm = plant.substrates["process"].thickness_nm  # Li then electrolyte, QCM never zeroed
    assert plant.qcm.channel(1).thickness_nm == pytest.approx(film_nm, rel=0.05)


def test_programmed_density_converts_right_or_wrong(plant: Plant) -> None:
    argon_for_sputtering(plant)
    start(plant, "dc_sputter", 300.0)
    plant.advance(300.0)
    stop(plant, "dc_sputter")
    film_nm = plant.substrates["process"].thickness_nm
    qcm = plant.qcm
    frequency_hz = qcm.channel(1).frequency_hz
    qcm.program_film(1, QcmFilm(2.0, label="GLASS"))  # the density of another film
    for channel in qcm.channels:
        assert channel.thickness_nm == pytest.approx(film_nm * LI_G_CM3 / 2.0, rel=0.05)  # 0.267x
    assert qcm.channel(1).frequency_hz == frequency_hz  # the crystal's mass did not change
    qcm.program_film(1, QcmFilm(LI_G_CM3, tooling_pct=50.0, z_ratio=5.9, label="LI"))
    for channel in qcm.channels:
        assert channel.thickness_nm == pytest.approx(film_nm / 2.0, rel=0.05)
    assert qcm.film(1) == QcmFilm(LI_G_CM3, 50.0, 5.9, "LI")
    qcm.program_film(7, QcmFilm(3.0))  # not the active film: stored, not used
    assert qcm.film(7).density_g_cm3 == 3.0
    assert qcm.channel(1).thickness_nm == pytest.approx(film_nm / 2.0, rel=0.05)
    qcm.reset_films()
    assert qcm.film(7).density_g_cm3 == 2.0
    assert qcm.film(1) == QcmFilm(LI_G_CM3, label="FILM1")  # following the last film again
    assert qcm.channel(1).thickness_nm == pytest.approx(film_nm, rel=0.05)


# ---------------------------------------------------------------------------------------------------
# Over the wire: the driver programs the simulated line's monitor


@pytest.fixture
async def line() -> AsyncIterator[tuple[SimLine, LineDevices]]:
    async with SimLine(load_line_config(), speed=1.0) as sim:
        devices = build_line_devices(sim.simulated_config())
        try:
            yield sim, devices
        finally:
            await devices.close()


async def test_driver_programs_the_film_of_the_simulated_line(line: tuple[SimLine, LineDevices]) -> None:
    sim, devices = line
    driver = devices.get("qcm", ThicknessMonitor)
    channel = sim.plant.qcm.channel(driver.channel)
    channel.zero()
    # 100 nm of lithium onto the crystal (its geometry ratio is made up by its sensor tooling)
    channel.deposit(100e-9 * LI_G_CM3 * 1000.0 * channel.geometry_ratio, 1.0, LI_G_CM3)
    assert (await driver.read_thickness()).value == pytest.approx(100.0, abs=0.1)
    await driver.set_film(2.0, label="GLASS")
    assert (await driver.read_thickness()).value == pytest.approx(100.0 * LI_G_CM3 / 2.0, abs=0.1)
    await driver.set_film(LI_G_CM3, tooling_pct=110.0, z_ratio=5.9)
    assert await driver.film_parameters() == FilmParameters(LI_G_CM3, 110.0, 5.9, "FILM1")
    assert sim.plant.qcm.film(1) == QcmFilm(LI_G_CM3, 110.0, 5.9, "FILM1")
    assert (await driver.read_thickness()).value == pytest.approx(110.0, abs=0.1)
