"""Gas spaces and reservoirs: where gas sits, and the loads that outgas inside a space.

A `Space` is a closed volume holding mol of each species at a fixed temperature. A `Reservoir` is an
infinite source of fixed composition and pressure: the room, or a bottled gas behind its regulator.

Outgassing follows q(t) = q_1h · (1 h / (t + t0)) with t the *outgassing age*: the time since the
surface was last wet (t0 = 10 s keeps the first seconds finite). The 1/t law for the water of
unbaked metal and its q_1h range (1e-8 to 1e-7 mbar·L/(s·cm²) for stainless steel) are devices.md
§10's; Grinham & Chew, "A Review of Outgassing and Methods for its Reduction", Appl. Sci. Converg.
Technol. 26(5) 95 (2017), §III-IV, survey the same law and how widely published rates scatter.

The age follows the water the surface sits in (partial pressure p_w of the space's gas):

* Wet (p_w above `rewet_h2o_pa`, 100 Pa: room air above ~9 kPa, or 1000 ppmv at 1 atm, frost point
  about −20 °C; room air at 50 % RH holds 1170 Pa): the age shrinks as exp(−t/τ_rewet), τ_rewet =
  120 s. A vent with room air lasting minutes restarts the clock (age → 0, "pumped from
  atmosphere"); a door opened for a minute re-wets the walls only partly.
* Humid but not wet (0 < p_w ≤ `rewet_h2o_pa`): the surface takes water up at a rate proportional
  to p_w while it keeps drying, d(age)/dt = 1 − age·p_w/(τ_rewet·p_wet), so it settles at the age
  whose desorption balances the uptake, age_eq = τ_rewet·p_wet/p_w = 12 000 Pa·s / p_w: 50 min in
  gas at the −50 °C frost point (3.9 Pa at 1 atm), 6.7 h in argon 4.0 (5 ppm, 0.5 Pa), two weeks
  at a purifier's 0.1 ppm. Desorption balancing an adsorption flux ∝ p_w is Langmuir kinetics; the
  constant is chosen to join the wet law at the threshold (same rate, 1/τ_rewet) and is [U]. So a
  chamber back-filled with argon for every transfer slowly loses the dryness of a chamber kept
  under vacuum, and a chamber under dry gas keeps most of it.
* Under vacuum p_w is far below 1 Pa and the age simply grows.

The water taken up leaves the gas: with the releasable water of a 1/t surface, W = −3600·q_1h·A·ln t,
the uptake term of d(age)/dt is an uptake of 3600·q_1h·A·p_w/(τ_rewet·p_wet) Pa·m³/s, which the
plant applies as a first-order sink on the space's water (`water_uptake_m3_s`; 48 min for the inlet
with its container, 74 min for the empty process chamber). So a closed space's water stops rising
where desorption and uptake balance, p_w = 12 000 Pa·s / age, and dry walls pull water out of a
fill. Wet surfaces (room air) are saturated: there the age law has no uptake term and no sink acts.
A fresh line starts at age 0 (walls that have seen room air for ever). 90 % of the gas is H2O,
5 % N2 (standing in for CO), 5 % H2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim_hardware.plant.gas import (
    GAS_CONSTANT_J_MOL_K,
    N_SPECIES,
    SPECIES_NAMES,
    Composition,
    Species,
    composition,
    species_index,
)
from sim_hardware.plant.humidity import ZERO_CELSIUS_K, dew_frost_point_c, frost_point_1atm_c, frost_point_c

OUTGASSING_T0_S = 10.0
REWET_TIME_CONSTANT_S = 120.0
OUTGASSING_COMPOSITION: Composition = composition({"H2O": 0.90, "N2": 0.05, "H2": 0.05})


def outgassing_integral_pa_m3(q_1h_pa_m3_s: float, age_s: float, dt_s: float) -> float:
    """Gas released in [age, age + dt] by a surface whose total rate 1 h after pump-down is q_1h."""
    if q_1h_pa_m3_s <= 0.0:
        return 0.0
    return q_1h_pa_m3_s * 3600.0 * math.log1p(dt_s / (age_s + OUTGASSING_T0_S))


def outgassing_rate_pa_m3_s(q_1h_pa_m3_s: float, age_s: float) -> float:
    return q_1h_pa_m3_s * 3600.0 / (age_s + OUTGASSING_T0_S)


def aged(age_s: float, dt_s: float, h2o_pa: float, rewet_h2o_pa: float) -> float:
    """Outgassing age after dt in gas holding `h2o_pa` of water (exact for a constant p_w)."""
    if h2o_pa > rewet_h2o_pa:
        return age_s * math.exp(-dt_s / REWET_TIME_CONSTANT_S)
    if h2o_pa <= 0.0:
        return age_s + dt_s
    equilibrium = equilibrium_age_s(h2o_pa, rewet_h2o_pa)
    return equilibrium + (age_s - equilibrium) * math.exp(-dt_s / equilibrium)


def water_uptake_m3_s(q_1h_pa_m3_s: float, rewet_h2o_pa: float) -> float:
    """Uptake of gas-phase water by surfaces of total q_1h, as a volume flow (Pa·m³/s per Pa of water)."""
    return q_1h_pa_m3_s * 3600.0 / (REWET_TIME_CONSTANT_S * rewet_h2o_pa)


def equilibrium_age_s(h2o_pa: float, rewet_h2o_pa: float = 100.0) -> float:
    """The age a surface settles at in gas holding `h2o_pa` of water (below the wet threshold)."""
    return REWET_TIME_CONSTANT_S * rewet_h2o_pa / h2o_pa


class Space:
    """A closed gas volume (antechamber, process chamber).

    Observables are properties: pressure_pa, partial_pressure_pa(species), ppmv(species), h2o_ppmv,
    o2_ppmv, frost_point_c (over ice, at the space's own pressure), dew_frost_point_c (what a
    transmitter's Td/f shows), frost_point_1atm_c. The fault knob is
    `leak_pa_m3_s`: an air leak, i.e. the throughput it lets in while the space is at vacuum.
    """

    one_way = False

    def __init__(
        self,
        name: str,
        *,
        volume_m3: float,
        wall_area_m2: float,
        q_1h_pa_m3_s_m2: float,
        temp_c: float,
        leak_pa_m3_s: float = 0.0,
        rewet_h2o_pa: float = 100.0,
        outgassing_age_s: float = 0.0,
    ) -> None:
        if volume_m3 <= 0:
            raise ValueError(f"space {name}: volume must be positive")
        self.name = name
        self.volume_m3 = volume_m3
        self.wall_area_m2 = wall_area_m2
        self.q_1h_pa_m3_s_m2 = q_1h_pa_m3_s_m2
        self.temp_c = temp_c
        self.temp_k = temp_c + ZERO_CELSIUS_K
        self.leak_pa_m3_s = leak_pa_m3_s
        self.rewet_h2o_pa = rewet_h2o_pa
        self.outgassing_age_s = outgassing_age_s
        # mol per Pa: converts a pressure into an amount in this space
        self.capacity_mol_pa = volume_m3 / (GAS_CONSTANT_J_MOL_K * self.temp_k)
        self.amounts_mol: list[float] = [0.0] * N_SPECIES
        # per-step scratch, filled by the plant: sources (mol/s) and first-order sinks (1/s)
        self.source_mol_s: list[float] = [0.0] * N_SPECIES
        self.sink_per_s: list[float] = [0.0] * N_SPECIES

    def fill(self, gas: Composition, pressure_pa: float) -> None:
        """Replace the contents with `gas` at `pressure_pa` (initial state, test set-up)."""
        total = pressure_pa * self.capacity_mol_pa
        self.amounts_mol = [x * total for x in gas]

    @property
    def total_amount_mol(self) -> float:
        return sum(self.amounts_mol)

    @property
    def pressure_pa(self) -> float:
        return sum(self.amounts_mol) / self.capacity_mol_pa

    def partial_pressure_pa(self, species: str | Species) -> float:
        return self.amounts_mol[_index(species)] / self.capacity_mol_pa

    def mole_fraction(self, species: str | Species) -> float:
        total = sum(self.amounts_mol)
        return self.amounts_mol[_index(species)] / total if total > 0 else 0.0

    def ppmv(self, species: str | Species) -> float:
        return 1e6 * self.mole_fraction(species)

    @property
    def composition(self) -> dict[str, float]:
        """Mole fractions by species name."""
        total = sum(self.amounts_mol)
        return {
            name: (n / total if total > 0 else 0.0)
            for name, n in zip(SPECIES_NAMES, self.amounts_mol, strict=True)
        }

    @property
    def h2o_ppmv(self) -> float:
        return self.ppmv(Species.H2O)

    @property
    def o2_ppmv(self) -> float:
        return self.ppmv(Species.O2)

    @property
    def h2o_partial_pa(self) -> float:
        return self.amounts_mol[Species.H2O] / self.capacity_mol_pa

    @property
    def frost_point_c(self) -> float:
        """Frost point at the space's own pressure (what a sensor inside it reads)."""
        return frost_point_c(self.h2o_partial_pa)

    @property
    def dew_frost_point_c(self) -> float:
        """Td/f at the space's own pressure: the dew point over water when above 0 °C (room air)."""
        return dew_frost_point_c(self.h2o_partial_pa)

    @property
    def frost_point_1atm_c(self) -> float:
        """Frost point of this gas at 1 atm (the figure inert-atmosphere limits are written in)."""
        return frost_point_1atm_c(self.h2o_ppmv)

    @property
    def wall_q_1h_pa_m3_s(self) -> float:
        return self.wall_area_m2 * self.q_1h_pa_m3_s_m2

    @property
    def wall_outgassing_pa_m3_s(self) -> float:
        """Current wall outgassing throughput (loads not included)."""
        return outgassing_rate_pa_m3_s(self.wall_q_1h_pa_m3_s, self.outgassing_age_s)

    @property
    def is_wet(self) -> bool:
        """Holding humid gas: adsorbed water on the walls is being replenished."""
        return self.amounts_mol[Species.H2O] > self.rewet_h2o_pa * self.capacity_mol_pa


class Reservoir:
    """An infinite gas source of fixed composition (the room, a bottled gas).

    `one_way` reservoirs only ever deliver into a space: a regulator does not take gas back.
    """

    one_way = False

    def __init__(self, name: str, gas: Composition, pressure_pa: float, temp_c: float) -> None:
        self.name = name
        self.fractions = gas
        self._pressure_pa = pressure_pa
        self.temp_c = temp_c
        self.temp_k = temp_c + ZERO_CELSIUS_K

    @property
    def pressure_pa(self) -> float:
        return self._pressure_pa

    def partial_pressure_pa(self, species: str | Species) -> float:
        return self.fractions[_index(species)] * self.pressure_pa

    def ppmv(self, species: str | Species) -> float:
        return 1e6 * self.fractions[_index(species)]

    def draw(self, amount_mol: float) -> None:
        """Account for gas taken out of the reservoir (infinite ones ignore it)."""


class GasSupply(Reservoir):
    """A cylinder or line of inert gas behind a regulator; it can run empty (a fault, or its
    inventory drawn down). An empty supply delivers nothing: fill valves and the MFC get no gas."""

    one_way = True

    def __init__(
        self,
        name: str,
        gas: Composition,
        delivery_pressure_pa: float,
        temp_c: float,
        *,
        gas_name: str,
        inventory_mol: float | None = None,
    ) -> None:
        super().__init__(name, gas, delivery_pressure_pa, temp_c)
        self.gas = gas_name
        self.delivery_pressure_pa = delivery_pressure_pa
        self.inventory_mol = inventory_mol
        self.empty = False
        self.delivered_mol = 0.0

    @property
    def pressure_pa(self) -> float:
        return 0.0 if self.empty else self.delivery_pressure_pa

    @property
    def available(self) -> bool:
        return not self.empty

    def draw(self, amount_mol: float) -> None:
        self.delivered_mol += amount_mol
        if self.inventory_mol is not None:
            self.inventory_mol -= amount_mol
            if self.inventory_mol <= 0.0:
                self.inventory_mol = 0.0
                self.empty = True


@dataclass(eq=False)
class Load:
    """Items brought into a space (containers, foils, targets) with their own adsorbed water.

    `area_m2`·`q_1h_pa_m3_s_m2` is the load's outgassing 1 h after it was last wet; it ages and re-wets
    with the space it sits in, from `outgassing_age_s` when added. Move it with `Plant.move_load`.
    `carried` items go on through the line's gates (items.py); `came_from` is the space or "room"
    they last came from.
    """

    name: str
    space: Space
    area_m2: float
    q_1h_pa_m3_s_m2: float
    outgassing_age_s: float = 0.0
    carried: bool = False
    came_from: str = ""

    @property
    def q_1h_pa_m3_s(self) -> float:
        return self.area_m2 * self.q_1h_pa_m3_s_m2

    @property
    def outgassing_pa_m3_s(self) -> float:
        return outgassing_rate_pa_m3_s(self.q_1h_pa_m3_s, self.outgassing_age_s)


def _index(species: str | Species) -> int:
    return int(species) if isinstance(species, Species) else species_index(species)
