"""Gas species, compositions and unit conversions shared by every part of the plant.

A gas amount is kept in mol per species, indexed by `Species`; a composition is a tuple of mole
fractions in the same order. Pressures follow from the ideal gas law at the space's temperature.

Argon impurities per grade (devices.md §10): the grade fixes the *total* impurity (4.0 ≤ 100 ppm,
5.0 ≤ 10 ppm) [C]; how it splits is [U]. `impurities_for_purity` gives H2O = min(5, 0.3·total),
O2 = min(5, 0.2·total), N2 = the rest, so 5.0 gives the typical vendor sheet's 3 ppm H2O / 2 ppm O2 /
5 ppm N2 and 4.0 gives 5 / 5 / 90 ppm (typical deliveries, well inside the "pure" class limits of
10 ppm O2 and H2O). Every figure can be overridden in the supply spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum

from sim_hardware.plant.humidity import (
    ENHANCEMENT_FACTOR,
    STANDARD_ATMOSPHERE_PA,
    ZERO_CELSIUS_K,
    water_vapour_pressure_pa,
)

GAS_CONSTANT_J_MOL_K = 8.314462618


class Species(IntEnum):
    AR = 0
    N2 = 1
    O2 = 2
    H2O = 3
    HE = 4
    H2 = 5


SPECIES_NAMES: tuple[str, ...] = ("Ar", "N2", "O2", "H2O", "He", "H2")
N_SPECIES = len(SPECIES_NAMES)
MOLAR_MASS_G_MOL: tuple[float, ...] = (39.948, 28.014, 31.998, 18.015, 4.0026, 2.016)

Composition = tuple[float, ...]

# Dry air by volume; CO2 and the trace gases are lumped into N2.
_DRY_AIR: dict[str, float] = {"N2": 0.78118, "O2": 0.20946, "Ar": 0.00936}

# 1 sccm: 1 cm³/min of gas at 0 °C and 101325 Pa (the SEMI/ideal-gas standard) [U: Alicat's own
# default reference is 25 °C; the difference is 9 % and does not matter for the simulation].
MOL_PER_S_PER_SCCM = STANDARD_ATMOSPHERE_PA * 1e-6 / (GAS_CONSTANT_J_MOL_K * ZERO_CELSIUS_K) / 60.0

# Outgassing rates are quoted in mbar·L/(s·cm²); 1 of them is 1000 Pa·m³/(s·m²).
PA_M3_S_M2_PER_MBAR_L_S_CM2 = 1e3


def species_index(name: str) -> int:
    """Index of a species by its formula ("Ar", "H2O", ...); case-insensitive."""
    for i, known in enumerate(SPECIES_NAMES):
        if known.lower() == name.lower():
            return i
    raise KeyError(f"unknown species {name!r}; known: {', '.join(SPECIES_NAMES)}")


def composition(fractions: Mapping[str, float]) -> Composition:
    """A normalised composition from named mole fractions (missing species are 0)."""
    values = [0.0] * N_SPECIES
    for name, fraction in fractions.items():
        if fraction < 0:
            raise ValueError(f"negative fraction for {name}")
        values[species_index(name)] += fraction
    total = sum(values)
    if total <= 0:
        raise ValueError("a composition needs at least one species")
    return tuple(v / total for v in values)


def humid_air(temp_c: float, relative_humidity_pct: float, pressure_pa: float) -> Composition:
    """Room air: dry air plus water at the given relative humidity (over liquid water)."""
    h2o = ENHANCEMENT_FACTOR * relative_humidity_pct / 100.0 * water_vapour_pressure_pa(temp_c) / pressure_pa
    fractions = {name: share * (1.0 - h2o) for name, share in _DRY_AIR.items()}
    fractions["H2O"] = h2o
    return composition(fractions)


def impurities_for_purity(purity_pct: float) -> tuple[float, float, float]:
    """Typical (H2O, O2, N2) ppmv of an inert gas of the given purity (see the module docstring)."""
    total = max(0.0, (100.0 - purity_pct) * 1e4)
    h2o = min(5.0, 0.3 * total)
    o2 = min(5.0, 0.2 * total)
    return h2o, o2, max(0.0, total - h2o - o2)


def supply_composition(gas: str, h2o_ppmv: float, o2_ppmv: float, n2_ppmv: float) -> Composition:
    """A bottled gas: the main species plus its residual water, oxygen and nitrogen."""
    main = species_index(gas)
    values = [0.0] * N_SPECIES
    values[Species.H2O] += h2o_ppmv * 1e-6
    values[Species.O2] += o2_ppmv * 1e-6
    values[Species.N2] += n2_ppmv * 1e-6
    values[main] += 1.0 - sum(values)
    return tuple(values)


def molecular_speed_factor(index: int) -> float:
    """Molecular conductance of a species relative to N2 (∝ 1/√M)."""
    return math.sqrt(MOLAR_MASS_G_MOL[Species.N2] / MOLAR_MASS_G_MOL[index])
