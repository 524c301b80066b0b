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


def water_pressure_hpa(temp_c: float) -> float:
    """Saturation vapour pressure over water (Magnus, Sonntag 1990 constants)."""
    return 6.112 * math.exp(17.62 * temp_c / (243.12 + temp_c))


def ice_pressure_hpa(temp_c: float) -> float:
    """Saturation vapour pressure over ice (Magnus, Sonntag 1990 constants)."""
    return 6.112 * math.exp(22.46 * temp_c / (272.62 + temp_c))


def dew_point_c(vapour_hpa: float) -> float:
    x = math.log(vapour_hpa / 6.112)
    return 243.12 * x / (17.62 - x)


def frost_point_c(vapour_hpa: float) -> float:
    """Td/f: the frost point below 0 degC, the dew point above, as the transmitter reports it."""
    x = math.log(vapour_hpa / 6.112)
    frost = 272.62 * x / (22.46 - x)
    return frost if frost < 0 else dew_point_c(vapour_hpa)


def humidity_values(tdf_c: float, h2o_ppmv: float, temp_c: float, pressure_pa: float) -> dict[str, float]:
    """Every float quantity of the map from Td/f, ppmv, T and the compensation pressure."""
    vapour = ice_pressure_hpa(tdf_c) if tdf_c < 0 else water_pressure_hpa(tdf_c)
    saturation = water_pressure_hpa(temp_c)
    p_hpa = pressure_pa / 100.0
    rh = 100.0 * vapour / saturation
    mixing_g_kg = 621.97 * vapour / max(p_hpa - vapour, 1e-9)
    vapour_atm = vapour * ATM_PA / pressure_pa
    return {
        "rh": rh,
        "temperature": temp_c,
        "dew_point": dew_point_c(vapour),
        "frost_point": tdf_c,
        "frost_point_atm": frost_point_c(vapour_atm),
        "dew_point_atm": dew_point_c(vapour_atm),
        "abs_humidity": 216.68 * vapour / (temp_c + 273.15),
        "mixing_ratio": mixing_g_kg,
        "wet_bulb": math.nan,
        "h2o": h2o_ppmv,
        "vapour_pressure": vapour * 100.0,
        "saturation_pressure": saturation * 100.0,
        "enthalpy": 1.006 * temp_c + mixing_g_kg / 1000.0 * (2501.0 + 1.86 * temp_c),
        "water_activity": rh / 100.0,
        "relative_saturation": math.nan,
        "rh_dew_frost": 100.0 * vapour / (ice_pressure_hpa(temp_c) if temp_c < 0 else saturation),
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
