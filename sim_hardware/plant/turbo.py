"""A turbomolecular pump with its drive electronics, modelled on a Pfeiffer HiPace 300 / TC 110. [U]

The attributes are the ones the Pfeiffer-protocol simulator reads and writes (P:010 →
`pumping_station_on`, P:023 → `motor_on`, P:009 → `acknowledge_error()`, P:303 → `error_code`,
P:306 → `set_speed_reached`, P:307 → `accelerating`, P:308/309/315 → `set_speed_hz` /
`actual_speed_hz` / `nominal_speed_hz`, P:310 → `drive_current_a`, P:311 → `operating_hours`,
P:313 → `drive_voltage_v`, P:316 → `drive_power_w`,
P:326/330/342/346 → `electronics_temp_c` / `bottom_temp_c` / `bearing_temp_c` / `motor_temp_c`).

Model:
* Pumping speed (at the chamber, gate valve included) = S_N2 · species factor · (f / f_nom) ·
  throttle · 1/(1 + p_inlet/p_knee) · max(0, 1 − p_foreline/p_trip). Species factors: N2 1.0,
  H2O 1.0, Ar 0.95, O2 0.95, He 0.85, H2 0.75.
* Run-up: with the drive on, the rotor accelerates at f_nom/run_up_s · (1 − P_load/P_max), where
  P_load = (P_idle + k_gas·p_inlet + 0.05 W/Pa·p_foreline)·(f/f_nom)², so gas load slows it and a
  load above P_max brakes it. A standing rotor does not start while the foreline is above
  `backing_start_max_pa` (10 Pa). Drive power is P_max while accelerating, P_load at speed.
* Drive off (or tripped): the rotor coasts down with τ = coast_time_constant_s / (1 + p_inlet/1 Pa +
  p_foreline/100 Pa), so venting brakes it quickly.
* The foreline (turbo exhaust and the backing pump inlet, shared with the chamber's rough line) is a
  small volume whose pressure relaxes to p_ult + Q/S_backing; with the backing pump stopped it rises
  from the throughput plus a leak back through the stopped pump.

Error codes (project-chosen, TC 110 format; the real pump's list is not pinned in devices.md):
  "000000" no error
  "Err006" run-up time limit exceeded (speed below 80 % of set speed after `run_up_limit_s`)
  "Err021" backing failure: foreline above `foreline_trip_pa` while the rotor spins (> 10 % speed)
  "Err073" gas inrush: gate open and chamber above `inlet_trip_pa` while the rotor spins
  "Err107" drive failure (the `failed` fault, set by `Plant.pump_failure`); cannot be acknowledged
           while the fault persists
An error stops the drive; `acknowledge_error()` clears it (the simulator maps P:009 and P:010 = 1).
"""

from __future__ import annotations

import logging
import math

from sim_hardware.plant.flow import Valve
from sim_hardware.plant.gas import N_SPECIES, Species
from sim_hardware.plant.humidity import STANDARD_ATMOSPHERE_PA
from sim_hardware.plant.power import Mains
from sim_hardware.plant.pumps import RoughPump
from sim_hardware.plant.space import Space
from sim_hardware.plant.spec import TurboSpec

log = logging.getLogger(__name__)

TURBO_OK = "000000"
ERR_RUN_UP = "Err006"
ERR_BACKING = "Err021"
ERR_GAS_INRUSH = "Err073"
ERR_DRIVE = "Err107"

_SPECIES_FACTOR = [1.0] * N_SPECIES
_SPECIES_FACTOR[Species.AR] = 0.95
_SPECIES_FACTOR[Species.O2] = 0.95
_SPECIES_FACTOR[Species.HE] = 0.85
_SPECIES_FACTOR[Species.H2] = 0.75
SPECIES_SPEED_FACTOR: tuple[float, ...] = tuple(_SPECIES_FACTOR)

_SPINNING_FRACTION = 0.1
_SWITCH_POINT_FRACTION = 0.8
_STANDING_FRACTION = 0.05
_FORELINE_POWER_W_PER_PA = 0.05
_TEMP_TIME_CONSTANT_S = 600.0


class Turbo:
    def __init__(self, spec: TurboSpec, space: Space, gate: Valve, backing: RoughPump, mains: Mains) -> None:
        self.name = spec.name
        self.space = space
        self.gate = gate
        self.backing = backing
        self.spec = spec
        self._mains = mains
        self.nominal_speed_hz = spec.nominal_speed_hz
        self._set_speed_hz = spec.nominal_speed_hz
        self.actual_speed_hz = 0.0
        self.motor_on = True
        self._station_on = False
        self.error_code = TURBO_OK
        self.failed = False
        self.drive_power_w = 0.0
        self.foreline_pressure_pa = STANDARD_ATMOSPHERE_PA
        self.operating_hours = 0.0
        ambient = space.temp_c
        self.electronics_temp_c = ambient
        self.bottom_temp_c = ambient
        self.bearing_temp_c = ambient
        self.motor_temp_c = ambient
        self.throughput_pa_m3_s = 0.0
        self._run_up_elapsed_s = 0.0

    # --- commands -------------------------------------------------------------------------------

    @property
    def pumping_station_on(self) -> bool:
        return self._station_on

    @pumping_station_on.setter
    def pumping_station_on(self, value: bool) -> None:
        if value and not self._mains.powered:
            return
        self._station_on = bool(value)

    @property
    def set_speed_hz(self) -> float:
        return self._set_speed_hz

    @set_speed_hz.setter
    def set_speed_hz(self, value: float) -> None:
        """Speed-setting mode (P:707 as a fraction of nominal); clamped to 0…nominal."""
        self._set_speed_hz = min(max(float(value), 0.0), self.nominal_speed_hz)

    def acknowledge_error(self) -> None:
        """Clear the error; a fault that is still present trips again on the next step."""
        if self.failed:
            return
        self.error_code = TURBO_OK
        self._run_up_elapsed_s = 0.0

    # --- readbacks ------------------------------------------------------------------------------

    @property
    def drive_enabled(self) -> bool:
        return (
            self._mains.powered
            and self._station_on
            and self.motor_on
            and self.error_code == TURBO_OK
            and not self.failed
        )

    @property
    def speed_fraction(self) -> float:
        return self.actual_speed_hz / self.nominal_speed_hz

    @property
    def set_speed_reached(self) -> bool:
        return self.drive_enabled and self.actual_speed_hz >= 0.99 * self.set_speed_hz

    @property
    def accelerating(self) -> bool:
        return (
            self.drive_enabled and self.actual_speed_hz < 0.99 * self.set_speed_hz and self.drive_power_w > 0
        )

    @property
    def drive_voltage_v(self) -> float:
        return self.spec.drive_voltage_v if self._mains.powered else 0.0

    @property
    def drive_current_a(self) -> float:
        return self.drive_power_w / self.spec.drive_voltage_v

    @property
    def inlet_pressure_pa(self) -> float:
        """Pressure the rotor sees: the chamber's when the gate is not shut, else (nearly) nothing."""
        return self.space.pressure_pa if self.gate.position > 0.0 else 0.0

    def pumping_speed_m3_s(self, species: Species = Species.N2) -> float:
        """Effective speed at the chamber for a species now (0 with the gate shut)."""
        opening = self.gate.position * self.gate.throttle_fraction
        return self._speed_base(self.actual_speed_hz, opening) * SPECIES_SPEED_FACTOR[species]

    # --- physics --------------------------------------------------------------------------------

    def _speed_base(self, speed_hz: float, opening: float) -> float:
        if opening <= 0.0 or speed_hz <= 0.0:
            return 0.0
        spec = self.spec
        backing_factor = max(0.0, 1.0 - self.foreline_pressure_pa / spec.foreline_trip_pa)
        return (
            spec.speed_n2_m3_s
            * (speed_hz / spec.nominal_speed_hz)
            * opening
            * backing_factor
            / (1.0 + self.space.pressure_pa / spec.high_pressure_knee_pa)
        )

    def _load_w(self, speed_hz: float) -> float:
        spec = self.spec
        ratio = speed_hz / spec.nominal_speed_hz
        p_in = self.inlet_pressure_pa
        return (
            (
                spec.idle_power_w
                + spec.gas_power_w_per_pa * p_in
                + _FORELINE_POWER_W_PER_PA * self.foreline_pressure_pa
            )
            * ratio
            * ratio
        )

    def _can_drive(self) -> bool:
        standing = self.actual_speed_hz < _STANDING_FRACTION * self.nominal_speed_hz
        return not (standing and self.foreline_pressure_pa > self.spec.backing_start_max_pa)

    def _speed_after(self, dt_s: float) -> tuple[float, float]:
        """Rotor speed after dt and the drive power meanwhile (frozen loads over the step)."""
        spec = self.spec
        f = self.actual_speed_hz
        if self.drive_enabled and self._can_drive():
            load = self._load_w(f)
            ramp = spec.nominal_speed_hz / spec.run_up_s
            target = self._set_speed_hz
            accel = ramp * (1.0 - load / spec.max_drive_power_w)
            if f < target:
                return (min(target, max(0.0, f + accel * dt_s)), spec.max_drive_power_w)
            if f > target:
                return (max(target, f - ramp * dt_s), min(load, spec.max_drive_power_w))
            if accel < 0.0:
                return (max(0.0, f + accel * dt_s), spec.max_drive_power_w)
            return (f, load)
        if f <= 0.0:
            return (0.0, 0.0)
        tau = spec.coast_time_constant_s / (
            1.0 + self.inlet_pressure_pa / 1.0 + self.foreline_pressure_pa / 100.0
        )
        f_new = f * math.exp(-dt_s / tau)
        return (0.0 if f_new < 0.5 else f_new, 0.0)

    def max_step_s(self) -> float:
        """While the rotor speed changes fast, keep steps short enough to follow it."""
        if self.drive_enabled and self.actual_speed_hz < 0.99 * self.set_speed_hz:
            return 2.0
        return math.inf

    def contribute(self, dt_s: float) -> None:
        """Add the turbo's pumping to the chamber's sinks for one step (speed at mid-step)."""
        self.throughput_pa_m3_s = 0.0
        opening = self.gate.mean_opening(dt_s)
        if opening <= 0.0 or (self.actual_speed_hz <= 0.0 and not self.drive_enabled):
            return
        f_mid, _ = self._speed_after(0.5 * dt_s)
        base = self._speed_base(0.5 * (self.actual_speed_hz + f_mid), opening)
        if base <= 0.0:
            return
        space = self.space
        inv_v = 1.0 / space.volume_m3
        sink = space.sink_per_s
        throughput = 0.0
        for i in range(N_SPECIES):
            s_i = base * SPECIES_SPEED_FACTOR[i]
            sink[i] += s_i * inv_v
            throughput += s_i * space.amounts_mol[i]
        self.throughput_pa_m3_s = throughput / space.capacity_mol_pa

    def update(self, dt_s: float, rough_throughput_pa_m3_s: float) -> None:
        """Advance rotor, foreline, temperatures and trips by one step (after the gas moved)."""
        f_new, power = self._speed_after(dt_s)
        if self.drive_enabled and f_new < _SWITCH_POINT_FRACTION * self.set_speed_hz:
            self._run_up_elapsed_s += dt_s
        else:
            self._run_up_elapsed_s = 0.0
        self.actual_speed_hz = f_new
        self.drive_power_w = power
        if f_new > 0.0:
            self.operating_hours += dt_s / 3600.0
        self._update_foreline(dt_s, self.throughput_pa_m3_s + rough_throughput_pa_m3_s)
        self._update_temperatures(dt_s)
        self._check_trips()

    def _update_foreline(self, dt_s: float, inflow_pa_m3_s: float) -> None:
        spec = self.spec
        volume = spec.foreline_volume_m3
        backing_speed = self.backing.speed_m3_s
        if backing_speed > 0.0:
            p_eq = self.backing.ultimate_pa + inflow_pa_m3_s / backing_speed
            decay = math.exp(-backing_speed * dt_s / volume)
            self.foreline_pressure_pa = p_eq + (self.foreline_pressure_pa - p_eq) * decay
        else:
            rise = (inflow_pa_m3_s + spec.stopped_backing_leak_pa_m3_s) * dt_s / volume
            self.foreline_pressure_pa = min(STANDARD_ATMOSPHERE_PA, self.foreline_pressure_pa + rise)

    def _update_temperatures(self, dt_s: float) -> None:
        ambient = self.space.temp_c
        power = self.drive_power_w
        frac = self.speed_fraction
        powered = self._mains.powered
        decay = math.exp(-dt_s / _TEMP_TIME_CONSTANT_S)
        targets = (
            ambient + (8.0 + 0.08 * power if powered else 0.0),
            ambient + 3.0 * frac + 0.05 * power,
            ambient + 12.0 * frac + 0.10 * power,
            ambient + 10.0 * frac + 0.15 * power,
        )
        self.electronics_temp_c = targets[0] + (self.electronics_temp_c - targets[0]) * decay
        self.bottom_temp_c = targets[1] + (self.bottom_temp_c - targets[1]) * decay
        self.bearing_temp_c = targets[2] + (self.bearing_temp_c - targets[2]) * decay
        self.motor_temp_c = targets[3] + (self.motor_temp_c - targets[3]) * decay

    def _check_trips(self) -> None:
        if self.error_code != TURBO_OK:
            return
        spec = self.spec
        spinning = self.actual_speed_hz > _SPINNING_FRACTION * spec.nominal_speed_hz
        code = ""
        if self.failed:
            code = ERR_DRIVE
        elif spinning and self.gate.position > 0.0 and self.space.pressure_pa > spec.inlet_trip_pa:
            code = ERR_GAS_INRUSH
        elif spinning and self.foreline_pressure_pa > spec.foreline_trip_pa:
            code = ERR_BACKING
        elif self._run_up_elapsed_s > spec.run_up_limit_s:
            code = ERR_RUN_UP
        if code:
            self.error_code = code
            self._run_up_elapsed_s = 0.0
            log.warning(
                "turbo tripped",
                extra={
                    "turbo": self.name,
                    "error_code": code,
                    "speed_hz": self.actual_speed_hz,
                    "inlet_pa": self.space.pressure_pa,
                    "foreline_pa": self.foreline_pressure_pa,
                },
            )
