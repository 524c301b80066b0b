"""Valves, doors, and the gas that flows through an open one.

Actuators (`Valve`, `Door`): `open` is the command (a plain settable attribute); `position` travels
from 0 to 1 in `travel_s`; `is_open` / `is_closed` are the limit switches. A fail-closed actuator
cannot be opened while the mains is off and closes when it goes off. `stuck` freezes the travel.

Flow through an `Opening` (an actuator between a space and another space or a reservoir) is split
in two parts, each of which relaxes *exponentially* toward equilibrium over a step, so no step size
can overshoot or oscillate and every mol that leaves one side arrives at the other:

* bulk flow, Q = C_bulk·Δp, carrying the upstream composition, with
  C_bulk = C_atm·p̄/1 atm (viscous, ∝ mean pressure) + C_mol·p̄/(p_t + p̄);
* per-species exchange down each partial-pressure gradient, with
  C_i = C_mol·√(M_N2/M_i)·p_t/(p_t + p̄) (molecular flow) + C_mix (convection through an open door).

So at high pressure gas moves as a whole, at low pressure each species on its own, and an open door
between two spaces at the same pressure still mixes them. Conductances are evaluated at the
predicted mid-step mean pressure, which makes the step second-order accurate.
"""

from __future__ import annotations

import math

from sim_hardware.plant.gas import GAS_CONSTANT_J_MOL_K, N_SPECIES, molecular_speed_factor
from sim_hardware.plant.humidity import STANDARD_ATMOSPHERE_PA
from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import Reservoir, Space

_SPEED_FACTORS = tuple(molecular_speed_factor(i) for i in range(N_SPECIES))


class Valve:
    """A remotely actuated valve. `throttle_fraction` (0–1) scales the conductance when open
    (a throttled gate valve holding process pressure)."""

    kind = "valve"

    def __init__(
        self,
        name: str,
        mains: Mains,
        *,
        travel_s: float = 0.5,
        fail_closed: bool = True,
        initially_open: bool = False,
    ) -> None:
        self.name = name
        self.travel_s = max(travel_s, 1e-6)
        self.fail_closed = fail_closed
        self.stuck = False
        self.throttle_fraction = 1.0
        self._mains = mains
        self._command = initially_open
        self.position = 1.0 if initially_open else 0.0

    @property
    def open(self) -> bool:
        return self._command

    @open.setter
    def open(self, value: bool) -> None:
        if value and self.fail_closed and not self._mains.powered:
            return
        self._command = bool(value)

    @property
    def is_open(self) -> bool:
        """Open limit switch."""
        return self.position >= 1.0

    @property
    def is_closed(self) -> bool:
        """Closed limit switch."""
        return self.position <= 0.0

    @property
    def target(self) -> float:
        return 1.0 if self._command else 0.0

    @property
    def moving(self) -> bool:
        return not self.stuck and self.position != self.target

    def time_to_end_of_travel_s(self) -> float:
        return abs(self.target - self.position) * self.travel_s if self.moving else math.inf

    def mean_opening(self, dt_s: float) -> float:
        """Average effective opening over the next `dt_s` (travel is linear in time)."""
        if not self.moving:
            return self.position * self.throttle_fraction
        start = self.position
        end = self.position_after(dt_s)
        return 0.5 * (start + end) * self.throttle_fraction

    def position_after(self, dt_s: float) -> float:
        if not self.moving:
            return self.position
        step = dt_s / self.travel_s
        if self.target > self.position:
            return min(self.target, self.position + step)
        return max(self.target, self.position - step)

    def travel(self, dt_s: float) -> None:
        self.position = self.position_after(dt_s)

    def fail_safe(self) -> None:
        """Mains lost: a fail-closed actuator drops to closed; others stay where they are."""
        if self.fail_closed:
            self._command = False


class Door(Valve):
    """A door or gate valve between spaces, or a space's outer door to the room."""

    kind = "door"


class Opening:
    """The gas path through one valve or door between a space and another space or a reservoir."""

    def __init__(
        self,
        actuator: Valve,
        a: Space,
        b: Space | Reservoir,
        *,
        conductance_atm_m3_s: float,
        conductance_molecular_m3_s: float,
        mixing_m3_s: float,
        transition_pressure_pa: float,
    ) -> None:
        self.actuator = actuator
        self.a = a
        self.b = b
        self.conductance_atm_m3_s = conductance_atm_m3_s
        self.conductance_molecular_m3_s = conductance_molecular_m3_s
        self.mixing_m3_s = mixing_m3_s
        self.transition_pressure_pa = transition_pressure_pa
        # mol per second per Pa at a's temperature, per m³/s of conductance
        self._g_per_c = 1.0 / (GAS_CONSTANT_J_MOL_K * a.temp_k)
        self._inv_cap_sum = 1.0 / a.capacity_mol_pa + (
            1.0 / b.capacity_mol_pa if isinstance(b, Space) else 0.0
        )
        self._opening = 0.0

    @property
    def name(self) -> str:
        return self.actuator.name

    def bulk_conductance_m3_s(self, mean_pressure_pa: float) -> float:
        p = mean_pressure_pa
        return self._opening * (
            self.conductance_atm_m3_s * p / STANDARD_ATMOSPHERE_PA
            + self.conductance_molecular_m3_s * p / (self.transition_pressure_pa + p)
        )

    def prepare(self, dt_s: float) -> float:
        """Fix the opening for this step; return the bulk flow into `a` now (mol/s) for step control."""
        self._opening = self.actuator.mean_opening(dt_s)
        if self._opening <= 0.0:
            return 0.0
        pa = self.a.pressure_pa
        pb = self.b.pressure_pa
        if self.b.one_way and pb <= pa:
            return 0.0
        return self.bulk_conductance_m3_s(0.5 * (pa + pb)) * self._g_per_c * (pb - pa)

    def exchange(self, dt_s: float) -> None:
        """Move gas for one step (call `prepare` first)."""
        if self._opening <= 0.0:
            return
        self._bulk(dt_s)
        if not self.b.one_way:
            self._species(dt_s)

    def _bulk(self, dt_s: float) -> None:
        a, b = self.a, self.b
        pa = a.pressure_pa
        pb = b.pressure_pa
        delta = pb - pa
        if delta == 0.0 or (b.one_way and delta < 0.0):
            return
        inv_cap_sum = self._inv_cap_sum
        weight_a = (1.0 / a.capacity_mol_pa) / inv_cap_sum
        # predictor: where the pressures will be half-way through the step
        lam0 = self.bulk_conductance_m3_s(0.5 * (pa + pb)) * self._g_per_c * inv_cap_sum
        closed_gap = delta * -math.expm1(-0.5 * lam0 * dt_s)
        mean_mid = 0.5 * (pa + pb) + closed_gap * (weight_a - (1.0 - weight_a)) * 0.5
        lam = self.bulk_conductance_m3_s(mean_mid) * self._g_per_c * inv_cap_sum
        moved_mol = delta * -math.expm1(-lam * dt_s) / inv_cap_sum
        if moved_mol > 0.0:
            _transfer_into(a, b, moved_mol)
        elif moved_mol < 0.0:
            _transfer_out_of(a, b, -moved_mol)

    def _species(self, dt_s: float) -> None:
        a, b = self.a, self.b
        cap_a = a.capacity_mol_pa
        p_mean = 0.5 * (a.pressure_pa + b.pressure_pa)
        molecular = (
            self._opening
            * self.conductance_molecular_m3_s
            * (self.transition_pressure_pa / (self.transition_pressure_pa + p_mean))
        )
        mixing = self._opening * self.mixing_m3_s
        if molecular <= 0.0 and mixing <= 0.0:
            return
        inv_cap_sum = self._inv_cap_sum
        g_per_c = self._g_per_c
        na = a.amounts_mol
        if isinstance(b, Space):
            nb = b.amounts_mol
            cap_b = b.capacity_mol_pa
            for i in range(N_SPECIES):
                delta = nb[i] / cap_b - na[i] / cap_a
                if delta == 0.0:
                    continue
                lam = (molecular * _SPEED_FACTORS[i] + mixing) * g_per_c * inv_cap_sum
                moved = delta * -math.expm1(-lam * dt_s) / inv_cap_sum
                na[i] += moved
                nb[i] -= moved
        else:
            p_b = b.pressure_pa
            fractions = b.fractions
            for i in range(N_SPECIES):
                delta = fractions[i] * p_b - na[i] / cap_a
                if delta == 0.0:
                    continue
                lam = (molecular * _SPEED_FACTORS[i] + mixing) * g_per_c * inv_cap_sum
                na[i] += delta * -math.expm1(-lam * dt_s) / inv_cap_sum


def _transfer_into(a: Space, b: Space | Reservoir, amount_mol: float) -> None:
    na = a.amounts_mol
    if isinstance(b, Space):
        nb = b.amounts_mol
        total_b = sum(nb)
        if total_b <= 0.0:
            return
        share = min(1.0, amount_mol / total_b)
        for i in range(N_SPECIES):
            moved = nb[i] * share
            na[i] += moved
            nb[i] -= moved
    else:
        for i, x in enumerate(b.fractions):
            na[i] += x * amount_mol
        b.draw(amount_mol)


def _transfer_out_of(a: Space, b: Space | Reservoir, amount_mol: float) -> None:
    na = a.amounts_mol
    total_a = sum(na)
    if total_a <= 0.0:
        return
    share = min(1.0, amount_mol / total_a)
    if isinstance(b, Space):
        nb = b.amounts_mol
        for i in range(N_SPECIES):
            moved = na[i] * share
            nb[i] += moved
            na[i] -= moved
    else:
        for i in range(N_SPECIES):
            na[i] -= na[i] * share
