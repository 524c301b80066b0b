"""A mass-flow controller feeding process gas from a supply into a space.

The actual flow follows the setpoint with a first-order lag (`time_constant_s`, ~1 s); the step
integrates that lag exactly. With the supply empty or the mains off the valve closes and the flow
decays to 0. 1 sccm = 1 cm³/min at 0 °C, 101325 Pa (gas.MOL_PER_S_PER_SCCM).
"""

from __future__ import annotations

import math

from sim_hardware.plant.gas import GAS_CONSTANT_J_MOL_K, MOL_PER_S_PER_SCCM, N_SPECIES
from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import GasSupply, Space


class Mfc:
    """`setpoint_sccm` is settable (clamped to 0…full scale); `flow_sccm` is the actual flow."""

    def __init__(
        self,
        name: str,
        supply: GasSupply,
        space: Space,
        mains: Mains,
        *,
        full_scale_sccm: float,
        time_constant_s: float,
    ) -> None:
        self.name = name
        self.supply = supply
        self.space = space
        self.full_scale_sccm = full_scale_sccm
        self.time_constant_s = max(time_constant_s, 1e-6)
        self.flow_sccm = 0.0
        self._mains = mains
        self._setpoint_sccm = 0.0

    @property
    def gas(self) -> str:
        return self.supply.gas

    @property
    def setpoint_sccm(self) -> float:
        return self._setpoint_sccm

    @setpoint_sccm.setter
    def setpoint_sccm(self, value: float) -> None:
        if not self._mains.powered:
            return
        self._setpoint_sccm = min(max(float(value), 0.0), self.full_scale_sccm)

    @property
    def inlet_pressure_pa(self) -> float:
        return self.supply.pressure_pa

    @property
    def temp_c(self) -> float:
        return self.supply.temp_c

    @property
    def target_sccm(self) -> float:
        if not self._mains.powered or not self.supply.available:
            return 0.0
        return self._setpoint_sccm

    def _mean_flow_sccm(self, dt_s: float) -> float:
        target = self.target_sccm
        tau = self.time_constant_s
        return target + (self.flow_sccm - target) * tau / dt_s * -math.expm1(-dt_s / tau)

    def contribute(self, dt_s: float) -> None:
        """Add this step's mean flow to the space's sources and draw it from the supply."""
        mean = self._mean_flow_sccm(dt_s)
        if mean <= 0.0:
            return
        mol_s = mean * MOL_PER_S_PER_SCCM
        source = self.space.source_mol_s
        fractions = self.supply.fractions
        for i in range(N_SPECIES):
            source[i] += mol_s * fractions[i]
        self.supply.draw(mol_s * dt_s)

    def update(self, dt_s: float) -> None:
        target = self.target_sccm
        self.flow_sccm = target + (self.flow_sccm - target) * math.exp(-dt_s / self.time_constant_s)
        if self.flow_sccm < 1e-9:
            self.flow_sccm = 0.0

    def stop_for_power_loss(self) -> None:
        self._setpoint_sccm = 0.0


def sccm_to_pa_m3_s(flow_sccm: float, temp_c: float = 20.0) -> float:
    """Throughput of a flow at a gas temperature (for Q/S estimates)."""
    return flow_sccm * MOL_PER_S_PER_SCCM * GAS_CONSTANT_J_MOL_K * (temp_c + 273.15)
