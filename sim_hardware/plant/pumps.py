"""Rotary vane rough pumps and the rough lines that connect them to spaces.

A two-stage rotary vane pump pumps its nominal volume flow at all pressures but backstreams gas
equivalent to its ultimate pressure p_ult (0.3 Pa): net, dn/dt = −S·(p − p_ult)·V/(RT)/V, i.e. the
classical S_eff = S·(1 − p_ult/p), falling to nothing at p_ult [C, devices.md §10]. The backstreamed
gas is room air (shaft-seal and gas-ballast leakage). Writing the ultimate as a constant backstream
keeps the equation linear, so the exponential step is exact for any step size.

The rough line (DN25 × 1.5 m by default) is in series: C = C_mol + C_atm·p̄/1 atm with p̄ = p/2,
which is what slows a real pump-down below ~10 Pa. Both are evaluated at the predicted mid-step
pressure. A pump serving several open lines at once splits its speed evenly between them.
"""

from __future__ import annotations

import collections
import math

from sim_hardware.plant.flow import Valve
from sim_hardware.plant.gas import GAS_CONSTANT_J_MOL_K, N_SPECIES, Composition
from sim_hardware.plant.humidity import STANDARD_ATMOSPHERE_PA
from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import Space


class RoughPump:
    """`running` is the command (settable; ignored while the mains is off); `failed` is the fault;
    `pumping` is what the pump actually does (its status contact)."""

    def __init__(self, name: str, mains: Mains, *, speed_m3_h: float, ultimate_pa: float) -> None:
        self.name = name
        self.nominal_speed_m3_h = speed_m3_h
        self.ultimate_pa = ultimate_pa
        self.failed = False
        self._mains = mains
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @running.setter
    def running(self, value: bool) -> None:
        if value and not self._mains.powered:
            return
        self._running = bool(value)

    @property
    def pumping(self) -> bool:
        return self._running and not self.failed and self._mains.powered

    @property
    def speed_m3_s(self) -> float:
        """Volume flow at the pump inlet now (0 when stopped or failed)."""
        return self.nominal_speed_m3_h / 3600.0 if self.pumping else 0.0

    def stop_for_power_loss(self) -> None:
        self._running = False


def _series(speed_m3_s: float, conductance_m3_s: float) -> float:
    if speed_m3_s <= 0.0 or conductance_m3_s <= 0.0:
        return 0.0
    return speed_m3_s * conductance_m3_s / (speed_m3_s + conductance_m3_s)


class RoughLine:
    """A space's rough valve and line to its rough (or backing) pump."""

    def __init__(
        self,
        valve: Valve,
        space: Space,
        pump: RoughPump,
        *,
        conductance_atm_m3_s: float,
        conductance_molecular_m3_s: float,
    ) -> None:
        self.valve = valve
        self.space = space
        self.pump = pump
        self.conductance_atm_m3_s = conductance_atm_m3_s
        self.conductance_molecular_m3_s = conductance_molecular_m3_s
        self.throughput_pa_m3_s = 0.0
        # the space's pressure each time the valve was told to shut after pumping: where an
        # evacuation really stopped (benchmarks compare it with the controller's setpoint)
        self.isolated_at_pa: collections.deque[float] = collections.deque(maxlen=200)
        self._was_commanded_open = False

    @property
    def name(self) -> str:
        return self.valve.name

    def line_conductance_m3_s(self, pressure_pa: float) -> float:
        return (
            self.conductance_molecular_m3_s
            + self.conductance_atm_m3_s * 0.5 * pressure_pa / STANDARD_ATMOSPHERE_PA
        )

    def effective_speed_m3_s(self, pressure_pa: float, opening: float = 1.0, share: float = 1.0) -> float:
        """Speed at the space: pump (its share of it) in series with the line."""
        return _series(self.pump.speed_m3_s * share, self.line_conductance_m3_s(pressure_pa) * opening)

    def note_command(self) -> None:
        """Record the pressure when the valve's command turned from open to shut."""
        commanded = self.valve.open
        if self._was_commanded_open and not commanded:
            self.isolated_at_pa.append(self.space.pressure_pa)
        self._was_commanded_open = commanded

    def is_pumping(self) -> bool:
        return self.pump.pumping and (self.valve.position > 0.0 or self.valve.moving)

    def contribute(self, dt_s: float, share: float, backstream: Composition) -> None:
        """Add this line's sink and backstream to the space for a step; remember the throughput."""
        self.note_command()
        self.throughput_pa_m3_s = 0.0
        opening = self.valve.mean_opening(dt_s)
        if opening <= 0.0 or not self.pump.pumping:
            return
        space = self.space
        p = space.pressure_pa
        ultimate = self.pump.ultimate_pa
        s0 = self.effective_speed_m3_s(p, opening, share)
        p_mid = ultimate + (p - ultimate) * math.exp(-0.5 * s0 * dt_s / space.volume_m3)
        speed = self.effective_speed_m3_s(p_mid, opening, share)
        if speed <= 0.0:
            return
        rate = speed / space.volume_m3
        back = speed * ultimate / (GAS_CONSTANT_J_MOL_K * space.temp_k)
        sink = space.sink_per_s
        source = space.source_mol_s
        for i in range(N_SPECIES):
            sink[i] += rate
            source[i] += back * backstream[i]
        self.throughput_pa_m3_s = speed * max(p_mid - ultimate, 0.0)
