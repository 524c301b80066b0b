"""Frost point ↔ ppmv against devices.md §10 (Murphy–Koop ice, 1013.25 hPa)."""

from __future__ import annotations

import pytest

from sim_hardware.plant.gas import Species, humid_air
from sim_hardware.plant.humidity import (
    STANDARD_ATMOSPHERE_PA,
    dew_frost_point_c,
    frost_point_1atm_c,
    frost_point_at_pressure_c,
    frost_point_c,
    h2o_ppmv_at_frost_point,
    ice_vapour_pressure_pa,
)

# (frost point °C, ppmv) from the §10 table, left half
FROST_TO_PPMV = [(-20, 1019), (-40, 126.8), (-50, 38.9), (-60, 10.7), (-65, 5.34), (-70, 2.58),
                 (-76, 1.03), (-80, 0.54), (-90, 0.096)]  # fmt: skip
# (ppmv, frost point °C) from the right half
PPMV_TO_FROST = [(1000, -20.2), (100, -42.1), (39, -50.0), (10, -60.5), (5, -65.5), (1, -76.2),
                 (0.5, -80.5), (0.1, -89.8)]  # fmt: skip


@pytest.mark.parametrize(("frost_c", "ppmv"), FROST_TO_PPMV)
def test_table_ppmv_matches_murphy_koop_without_enhancement(frost_c: float, ppmv: float) -> None:
    # the §10 table was computed with f = 1; it is pinned to its printed precision
    assert h2o_ppmv_at_frost_point(frost_c, enhancement=1.0) == pytest.approx(ppmv, rel=6e-3)


@pytest.mark.parametrize(("frost_c", "ppmv"), FROST_TO_PPMV)
def test_default_enhancement_adds_0_4_percent(frost_c: float, ppmv: float) -> None:
    assert h2o_ppmv_at_frost_point(frost_c) == pytest.approx(1.004 * ppmv, rel=6e-3)


@pytest.mark.parametrize(("ppmv", "frost_c"), PPMV_TO_FROST)
def test_table_frost_points(ppmv: float, frost_c: float) -> None:
    assert frost_point_1atm_c(ppmv, enhancement=1.0) == pytest.approx(frost_c, abs=0.06)
    # f = 1.004 moves the frost point by less than 0.1 K
    assert frost_point_1atm_c(ppmv) == pytest.approx(frost_c, abs=0.15)


def test_rules_of_thumb_hold() -> None:
    assert frost_point_1atm_c(38.9) == pytest.approx(-50.0, abs=0.1)
    assert frost_point_1atm_c(10.7) == pytest.approx(-60.0, abs=0.1)
    assert frost_point_1atm_c(1.0) == pytest.approx(-76.2, abs=0.1)


@pytest.mark.parametrize("frost_c", [-100.0, -76.2, -60.0, -50.0, -30.0, -5.0])
def test_inverse_round_trips(frost_c: float) -> None:
    assert frost_point_1atm_c(h2o_ppmv_at_frost_point(frost_c)) == pytest.approx(frost_c, abs=1e-6)


def test_frost_point_at_the_space_pressure_is_from_the_partial_pressure() -> None:
    # 10 ppmv at 1 atm is -60 °C; the same gas pumped to 100 Pa holds 1000x less water per volume
    at_100_pa = frost_point_at_pressure_c(10.7, 100.0)
    assert at_100_pa < -90.0
    assert at_100_pa == pytest.approx(frost_point_c(10.7e-6 * 100.0))
    assert frost_point_at_pressure_c(10.7, STANDARD_ATMOSPHERE_PA) == pytest.approx(-60.0, abs=0.1)


def test_dry_gas_reports_the_floor_not_minus_infinity() -> None:
    assert frost_point_c(0.0) == -150.0
    assert ice_vapour_pressure_pa(0.0) == pytest.approx(611.15, rel=1e-3)


def test_room_air_at_half_humidity() -> None:
    air = humid_air(20.0, 50.0, STANDARD_ATMOSPHERE_PA)
    assert 1e6 * air[Species.H2O] == pytest.approx(11600, rel=0.02)
    assert air[Species.O2] == pytest.approx(0.207, rel=0.01)
    assert sum(air) == pytest.approx(1.0)


def test_td_f_switches_to_the_dew_point_above_zero() -> None:
    air = humid_air(20.0, 50.0, STANDARD_ATMOSPHERE_PA)
    assert dew_frost_point_c(air[Species.H2O] * STANDARD_ATMOSPHERE_PA) == pytest.approx(9.3, abs=0.2)
    assert dew_frost_point_c(10.7e-6 * STANDARD_ATMOSPHERE_PA) == pytest.approx(-60.0, abs=0.1)
