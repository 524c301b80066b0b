"""Simulated Vaisala dew-point transmitter (DMT143 class): the driver's map served in the device role.

Manuals followed: DMT143 User Guide M211435EN-J, Appendix A (§A.4.4 Table 30 test registers: -12345,
-123.45 and the text "-123.45"; §A.4.5 Table 31 device identification objects); the status block
0x0200..0x020A in the polarity of the HMP4 User Guide, Appendix A §A.4.3 Table 78 (error status 1 = no
errors, online status 1 = online data available; per-quantity and device status bits); the function
codes and exceptions of the transmitter generation (DPT145/DPT146 User's Guides M211371EN-D /
M211372EN-D, Table 20/21: 03, 16, 43/14; DMT340 User's Guide: exception 01 for an unsupported function,
02 outside the register blocks, 03 otherwise).

The plant supplies the frost point and H2O ppmv (and the gas temperature); the other humidity
quantities are derived with the plant's vapour-pressure curves, good to a few tenths of a degree,
which is all the map's secondary quantities are used for. Wet-bulb temperature and relative
saturation are not modelled and read NaN (the device's "unavailable").

Not implemented, and why: the serial-line (ASCII) command set of the manual's chapter 5 (this line
runs the transmitter in Modbus mode); the configuration registers beyond pressure compensation and the
communication settings (purge interval, molecular weight: nothing here uses them); the error-code
bit table of the DMT143 itself (not reached: a sensor failure sets 0x0004, "humidity sensor failure"
in the HMDW110 table of the same generation [U]); which measurement-status register the DMT143 uses
for which quantity beyond HMP4's RH / T / Td/f [U].

Build one on the shared RS-485 bus::

    inlet = DewPointTransmitterSim(240, frost_point_c=plant.frost_point_c, h2o_ppmv=plant.h2o_ppmv)
    ModbusRtuSession({240: inlet.unit, 241: outlet.unit, 1: heater.unit})
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable

from drivers.dewpoint_status import NO_ERRORS, ONLINE, DeviceStatus, MeasurementStatus
from drivers.dewpoint_transmitter import (
    DEFAULT_UNIT,
    SELF_TEST_FLOAT,
    SELF_TEST_INT,
    SELF_TEST_TEXT,
    dewpoint_map,
)
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
_QUANTITIES = ("rh", "temperature", "dew_frost_point")
HUMIDITY_SENSOR_FAILURE = 0x0004
FIRMWARE = "1.4.2"
FUNCTIONS = frozenset({0x03, 0x10, 0x2B})


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


def identification_objects(unit_id: int, firmware: str = FIRMWARE) -> dict[int, bytes]:
    """FC 43/14 objects as DMT143 User Guide Table 31 lists them (the guide's example contents)."""
    return {
        0x00: b"Vaisala",
        0x01: b"DMT143",
        0x02: firmware.encode(),
        0x03: b"http://www.vaisala.com/",
        0x04: b"Vaisala DRYCAP(R) Dewpoint Transmitter DMT143",
        0x05: b"G1A1A1A0A0ASX",
        0x80: f"S{unit_id:07d}".encode(),  # a per-unit serial in the guide's 8-character form
        0x81: b"",  # "Empty string if not set/valid": a simulated probe was never calibrated
        0x82: b"",
    }


def _text_registers(text: bytes, count: int) -> list[int]:
    """ASCII two characters per register, high byte first, NUL-padded (the 0x1F03 test string)."""
    return list(struct.unpack(f">{count}H", text.ljust(2 * count, b"\0")))


class DewPointTransmitterSim:
    """One transmitter; `.unit` goes on a `ModbusRtuSession` (or a TCP gateway session).

    Faults, each shown the way the manual's status block shows it: `sensor_failed` (errors active,
    error code 0x0004, Td/f and derived values NaN with "sensor failure", device status critical),
    `warming_up` (every quantity "not ready", values NaN), `output_locked` (online status 0: the
    values hold where they were, "value locked"), `measurement_flags` (extra status bits per quantity:
    "rh", "temperature", "dew_frost_point", e.g. under range), plus `mapped.stuck` /
    `mapped.unavailable` per field and `unit.forced_exception`.
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
        self.output_locked = False
        self.measurement_flags: dict[str, MeasurementStatus] = {}
        self.device_flags = DeviceStatus(0)
        self._held: dict[str, float] | None = None
        self.mapped = MappedUnit(
            dewpoint_map(word_order),
            unit_id,
            values=self.values,
            on_write=self._on_write,
            functions=FUNCTIONS,
            identification=identification_objects(unit_id),
        )
        self.unit = self.mapped.unit
        self.mapped.store({"modbus_address": unit_id, "bit_rate": 3, "serial_format": 0, "response_delay": 0})
        self.unit.set_registers("holding_registers", 0x1F03, _text_registers(SELF_TEST_TEXT, 4))
        self.mapped.refresh()

    def measured(self) -> dict[str, float]:
        """The float quantities as the output shows them now (NaN where the transmitter has none)."""
        if self.output_locked and self._held is not None:
            return dict(self._held)
        if self.warming_up:
            return dict.fromkeys(_MEASURED, math.nan)
        values = humidity_values(
            self.frost_point_c(), self.h2o_ppmv(), self.temperature_c(), self.pressure_compensation_pa
        )
        if self.sensor_failed:  # the Td/f sensor: T is a separate element and still reads
            values = {k: (v if k == "temperature" else math.nan) for k, v in values.items()}
        self._held = values
        return dict(values)

    def measurement_status(self) -> dict[str, MeasurementStatus]:
        status = {q: MeasurementStatus(self.measurement_flags.get(q, 0)) for q in _QUANTITIES}
        for quantity in _QUANTITIES:
            if self.warming_up:
                status[quantity] |= MeasurementStatus.NOT_READY
            if self.output_locked:
                status[quantity] |= MeasurementStatus.LOCKED
            if self.sensor_failed and quantity != "temperature":
                status[quantity] |= MeasurementStatus.SENSOR_FAILURE
        return status

    def values(self) -> dict[str, Value]:
        measured = self.measured()
        out: dict[str, Value] = dict(measured)
        out.update({f"{n}_i16": measured[n] for n in _MIRRORED})
        out.update({f"{q}_status": int(flags) for q, flags in self.measurement_status().items()})
        device = self.device_flags | (DeviceStatus.CRITICAL if self.sensor_failed else 0)
        out.update(
            error_status=0 if self.sensor_failed else NO_ERRORS,
            online_status=0 if self.output_locked else ONLINE,
            error_code=HUMIDITY_SENSOR_FAILURE if self.sensor_failed else 0,
            security_hash=self.security_hash(),
            device_status=int(device),
            pressure_compensation=self.pressure_compensation_pa,
            self_test_int=SELF_TEST_INT,
            self_test_float=SELF_TEST_FLOAT,
        )
        return out

    def security_hash(self) -> int:
        """Changes whenever a setting changes, as the manual's hash does (its algorithm is Vaisala's)."""
        settings = self.mapped.unit.get_registers("holding_registers", 0x0600, 4)
        return zlib.crc32(repr((self.pressure_compensation_pa, settings)).encode())

    def _on_write(self, values: dict[str, Value]) -> int | None:
        pressure = values.get("pressure_compensation")
        if pressure is not None:
            if not 100.0 <= pressure <= 1e7:
                return 0x03
            self.pressure_compensation_pa = float(pressure)
        return None
