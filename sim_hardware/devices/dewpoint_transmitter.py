"""Simulated Vaisala-style dew-point transmitter: the driver's map served in the device role.

The plant supplies the frost point and H2O ppmv (and the gas temperature); the other humidity
quantities are derived with the Magnus formulas (Sonntag constants), good to a few tenths of a
degree, which is all the map's secondary quantities are used for. Wet-bulb temperature and relative
saturation are not modelled and read NaN (the device's "unavailable").

Build one on the shared RS-485 bus::

    inlet = DewPointTransmitterSim(240, frost_point_c=plant.frost_point_c, h2o_ppmv=plant.h2o_ppmv)
    ModbusRtuSession({240: inlet.unit, 241: outlet.unit, 1: heater.unit})
"""

from __future__ import annotations

import math
from collections.abc import Callable

from drivers.dewpoint_transmitter import DEFAULT_UNIT, SELF_TEST_FLOAT, SELF_TEST_INT, dewpoint_map
from drivers.register_map import Value, WordOrder
from sim_hardware.devices import MappedUnit
from sim_hardware.plant.humidity import dew_frost_point_c, ice_vapour_pressure_pa, water_vapour_pressure_pa

ATM_PA = 101_325.0
_MEASURED = (
    "rh",
    "temperature",
    "dew_point",
    "frost_point",
    "frost_point_atm",
    "dew_point_atm",
    "abs_humidity",
    "mixing_ratio",
    "wet_bulb",
    "h2o",
    "vapour_pressure",
    "saturation_pressure",
    "enthalpy",
    "water_activity",
    "relative_saturation",
    "rh_dew_frost",
)
_MIRRORED = ("rh", "temperature", "dew_point", "frost_point", "frost_point_atm", "dew_point_atm", "h2o")


def _vapour_pa(tdf_c: float) -> float:
    """The water partial pressure a Td/f reading stands for (over ice below 0 degC, water above)."""
    return ice_vapour_pressure_pa(tdf_c) if tdf_c < 0 else water_vapour_pressure_pa(tdf_c)


def _dew_point_over_water_c(vapour_pa: float) -> float:
    """Td over (supercooled) water: bisection on the plant's liquid-water curve, monotonic here."""
    low, high = -100.0, 100.0
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if water_vapour_pressure_pa(mid) < vapour_pa else (low, mid)
    return 0.5 * (low + high)


def humidity_values(tdf_c: float, h2o_ppmv: float, temp_c: float, pressure_pa: float) -> dict[str, float]:
    """Every float quantity of the map from Td/f, ppmv, T and the compensation pressure."""
    # one physics for the whole simulator: the plant's Murphy-Koop / liquid-water curves
    vapour_pa = _vapour_pa(tdf_c)
    saturation_pa = water_vapour_pressure_pa(temp_c)
    rh = 100.0 * vapour_pa / saturation_pa
    mixing_g_kg = 621.97 * vapour_pa / max(pressure_pa - vapour_pa, 1e-9)
    vapour_atm_pa = vapour_pa * ATM_PA / pressure_pa
    return {
        "rh": rh,
        "temperature": temp_c,
        "dew_point": _dew_point_over_water_c(vapour_pa),
        "frost_point": tdf_c,
        "frost_point_atm": dew_frost_point_c(vapour_atm_pa, 1.0),
        "dew_point_atm": _dew_point_over_water_c(vapour_atm_pa),
        "abs_humidity": 2.1668 * vapour_pa / (temp_c + 273.15),
        "mixing_ratio": mixing_g_kg,
        "wet_bulb": math.nan,
        "h2o": h2o_ppmv,
        "vapour_pressure": vapour_pa,
        "saturation_pressure": saturation_pa,
        "enthalpy": 1.006 * temp_c + mixing_g_kg / 1000.0 * (2501.0 + 1.86 * temp_c),
        "water_activity": rh / 100.0,
        "relative_saturation": math.nan,
        "rh_dew_frost": 100.0 * vapour_pa / (ice_vapour_pressure_pa(temp_c) if temp_c < 0 else saturation_pa),
    }


class DewPointTransmitterSim:
    """One transmitter; `.unit` goes on a `ModbusRtuSession` (or a TCP gateway session).

    Faults: `sensor_failed` (error status 1, error code bit 0, measurements NaN), `warming_up`
    (online status 0, measurements NaN), plus `mapped.stuck` / `mapped.unavailable` per field and
    `unit.forced_exception`.
    """

    def __init__(
        self,
        unit_id: int = DEFAULT_UNIT,
        *,
        frost_point_c: Callable[[], float],
        h2o_ppmv: Callable[[], float],
        temperature_c: Callable[[], float] = lambda: 22.0,
        word_order: WordOrder = "little",
    ) -> None:
        self.frost_point_c = frost_point_c
        self.h2o_ppmv = h2o_ppmv
        self.temperature_c = temperature_c
        self.pressure_compensation_pa = ATM_PA
        self.sensor_failed = False
        self.warming_up = False
        self.mapped = MappedUnit(
            dewpoint_map(word_order),
            unit_id,
            values=self.values,
            on_write=self._on_write,
            functions=frozenset({0x03, 0x06, 0x10}),
        )
        self.unit = self.mapped.unit
        self.mapped.store({"modbus_address": unit_id, "bit_rate": 3, "serial_format": 0, "response_delay": 0})
        self.mapped.refresh()

    def values(self) -> dict[str, Value]:
        measured: dict[str, float]
        if self.sensor_failed or self.warming_up:
            measured = dict.fromkeys(_MEASURED, math.nan)
        else:
            measured = humidity_values(
                self.frost_point_c(), self.h2o_ppmv(), self.temperature_c(), self.pressure_compensation_pa
            )
        out: dict[str, Value] = dict(measured)
        out.update({f"{n}_i16": measured[n] for n in _MIRRORED})
        out.update(
            error_status=1 if self.sensor_failed else 0,
            online_status=0 if self.warming_up else 1,
            error_code=1 if self.sensor_failed else 0,
            pressure_compensation=self.pressure_compensation_pa,
            self_test_int=SELF_TEST_INT,
            self_test_float=SELF_TEST_FLOAT,
        )
        return out

    def _on_write(self, values: dict[str, Value]) -> int | None:
        pressure = values.get("pressure_compensation")
        if pressure is not None:
            if not 100.0 <= pressure <= 1e7:
                return 0x03
            self.pressure_compensation_pa = float(pressure)
        return None
