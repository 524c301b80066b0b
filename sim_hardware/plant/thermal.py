"""Heated masses (substrate stage, source crucible) and the controller loop that drives them.

The temperature controller device (Eurotherm-style) sets `setpoint_c` and reads `temp_c`,
`output_pct`, `working_setpoint_c`; the loop itself runs here so that the physics and the output it
produces stay consistent at any step size.

Thermal mass C (J/K) heated by P = output·P_max and losing heat to the chamber walls at 20 °C by
  conduction through its mounts (G_cond), radiation (εA·σ·(T⁴ − Ta⁴), linearised per step), and
  gas conduction/convection G_gas = G_gas,atm · p/(p + 100 Pa) — gas carries heat at atmospheric
  pressure and almost none at vacuum, so a stage cools several times slower under vacuum.
The loop is model-based PI-like: output = [G·(SP − Ta) + C·(SP − T)/τ] / P_max, clamped to 0–100 %.
Unsaturated, T approaches SP as a first-order lag exp(−t·(G/C + 1/τ)) with no overshoot; saturated,
it heats at full power (or cools with none) and is clipped at SP when it crosses it.

Faults: `sensor_break` (output goes to `sensor_break_output_pct`, 0 % by default, as a Eurotherm
configured for a safe sensor-break output); over-temperature above `over_temp_limit_c` latches
`over_temp` and cuts the output until `reset_over_temp()` is called below the limit. With the mains
off there is no output.
"""

from __future__ import annotations

import logging
import math

from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import Space
from sim_hardware.plant.spec import HeaterSpec

log = logging.getLogger(__name__)

STEFAN_BOLTZMANN_W_M2_K4 = 5.670374419e-8
_GAS_HALF_PRESSURE_PA = 100.0
_K = 273.15


class Heater:
    def __init__(self, spec: HeaterSpec, space: Space, mains: Mains) -> None:
        self.name = spec.name
        self.space = space
        self.spec = spec
        self._mains = mains
        start = space.temp_c if spec.initial_temp_c is None else spec.initial_temp_c
        self.temp_c = start
        self.setpoint_c = space.temp_c
        self.working_setpoint_c = space.temp_c
        self.setpoint_rate_c_per_min = 0.0
        self.enabled = True
        self.manual = False
        self.manual_output_pct = 0.0
        self.sensor_break = False
        self.sensor_break_output_pct = 0.0
        self.over_temp_limit_c = spec.over_temp_limit_c
        self.over_temp = False
        self.output_pct = 0.0

    @property
    def power_w(self) -> float:
        return self.output_pct / 100.0 * self.spec.max_power_w

    def loss_conductance_w_k(self, temp_c: float | None = None) -> float:
        """Heat loss per kelvin above the walls at `temp_c` (default: now), including the gas's share."""
        t_k = (self.temp_c if temp_c is None else temp_c) + _K
        ta_k = self.space.temp_c + _K
        spec = self.spec
        p = self.space.pressure_pa
        radiative = (
            spec.emissivity_area_m2 * STEFAN_BOLTZMANN_W_M2_K4 * (t_k * t_k + ta_k * ta_k) * (t_k + ta_k)
        )
        gas = spec.gas_loss_atm_w_k * p / (p + _GAS_HALF_PRESSURE_PA)
        return spec.conduction_loss_w_k + radiative + gas

    def reset_over_temp(self) -> bool:
        """Re-arm after an over-temperature trip; refused (False) while still above the limit."""
        if self.temp_c >= self.over_temp_limit_c:
            return False
        self.over_temp = False
        return True

    def _auto_power_w(self, temp_c: float, conductance_w_k: float) -> float:
        spec = self.spec
        ws = self.working_setpoint_c
        return conductance_w_k * (ws - self.space.temp_c) + spec.heat_capacity_j_k * (ws - temp_c) / (
            spec.closed_loop_time_constant_s
        )

    def _fixed_power_w(self) -> float | None:
        """Output forced by a fault or by manual mode, or None when the loop is in control."""
        if not self._mains.powered or self.over_temp or not self.enabled:
            return 0.0
        if self.sensor_break:
            return self.sensor_break_output_pct / 100.0 * self.spec.max_power_w
        if self.manual:
            return min(max(self.manual_output_pct, 0.0), 100.0) / 100.0 * self.spec.max_power_w
        return None

    def _ramp_working_setpoint(self, dt_s: float) -> None:
        if self.setpoint_rate_c_per_min <= 0.0:
            self.working_setpoint_c = self.setpoint_c
            return
        step = self.setpoint_rate_c_per_min / 60.0 * dt_s
        gap = self.setpoint_c - self.working_setpoint_c
        self.working_setpoint_c += max(-step, min(step, gap))

    def update(self, dt_s: float) -> None:
        spec = self.spec
        self._ramp_working_setpoint(dt_s)
        ambient = self.space.temp_c
        capacity = spec.heat_capacity_j_k
        g = self.loss_conductance_w_k()
        t = self.temp_c
        fixed = self._fixed_power_w()
        if fixed is not None:
            self.temp_c = _relax(t, ambient + fixed / g, g / capacity, dt_s)
        else:
            ws = self.working_setpoint_c
            wanted = self._auto_power_w(t, g)
            if wanted > spec.max_power_w:
                self.temp_c = min(ws, _relax(t, ambient + spec.max_power_w / g, g / capacity, dt_s))
            elif wanted < 0.0:
                self.temp_c = max(ws, _relax(t, ambient, g / capacity, dt_s))
            else:
                self.temp_c = _relax(t, ws, g / capacity + 1.0 / spec.closed_loop_time_constant_s, dt_s)
        self._set_output(fixed)
        if self.temp_c > self.over_temp_limit_c and not self.over_temp:
            self.over_temp = True
            log.warning("heater over-temperature trip", extra={"heater": self.name, "temp_c": self.temp_c})
            self._set_output(0.0)

    def _set_output(self, fixed_w: float | None) -> None:
        if self.over_temp or not self._mains.powered:
            fixed_w = 0.0
        power = (
            fixed_w if fixed_w is not None else self._auto_power_w(self.temp_c, self.loss_conductance_w_k())
        )
        self.output_pct = 100.0 * min(max(power, 0.0), self.spec.max_power_w) / self.spec.max_power_w


def _relax(value: float, target: float, rate_per_s: float, dt_s: float) -> float:
    return target + (value - target) * math.exp(-rate_per_s * dt_s)
