"""Simulated glovebox / purifier controller: the project-defined map served in the device role.

The plant supplies O2, H2O (ppmv) and the box gauge pressure (Pa); the controller owns its alarm
limits, latched alarms, circulation switch and the purifier regeneration sequence, which runs on the
supplied clock (the plant's virtual clock): heating, regenerating with forming gas, evacuating,
cooling, each a fixed share of `regeneration_s` ([U] typical 10-16 h in total, devices.md §8).
`on_circulation(on)` tells the plant when the purifier stops cleaning the box.

Faults: `glove_breach`, `o2_sensor_failed` / `h2o_sensor_failed` (value NaN, status bit, fault code),
`fault` (any `GloveboxFault` to report), `mapped.stuck` and `unit.forced_exception`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from drivers.glovebox_controller import (
    ALARMS,
    DEFAULT_UNIT,
    GLOVEBOX_MAP,
    GloveboxFault,
    GloveboxStatus,
    RegenerationStep,
)
from drivers.register_map import Value
from sim_hardware.devices import MappedUnit

_EXC_ILLEGAL_VALUE = 0x03
_EXC_DEVICE_FAILURE = 0x04
_STEP_SHARES = (
    (RegenerationStep.HEATING, 0.25),
    (RegenerationStep.REGENERATING, 0.35),
    (RegenerationStep.EVACUATING, 0.15),
    (RegenerationStep.COOLING, 0.25),
)


class GloveboxControllerSim:
    """One glovebox controller; `.unit` goes on its own `ModbusTcpSession`."""

    def __init__(
        self,
        unit_id: int = DEFAULT_UNIT,
        *,
        o2_ppmv: Callable[[], float],
        h2o_ppmv: Callable[[], float],
        box_pressure_pa: Callable[[], float],
        on_circulation: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        regeneration_s: float = 12 * 3600.0,
        gas_supply_ok: Callable[[], bool] | None = None,
    ) -> None:
        self.gas_supply_ok = gas_supply_ok
        self.o2_source = o2_ppmv
        self.h2o_source = h2o_ppmv
        self.pressure_source = box_pressure_pa
        self.on_circulation = on_circulation
        self.clock = clock
        self.regeneration_s = regeneration_s
        self.limits: dict[str, float] = {
            "o2_limit": 10.0,
            "h2o_limit": 10.0,
            "pressure_low": -300.0,
            "pressure_high": 1000.0,
        }
        self.circulation = True
        self.regeneration_started: float | None = None
        self.glove_breach = False
        self.o2_sensor_failed = False
        self.h2o_sensor_failed = False
        self.fault = GloveboxFault.NONE
        self.latched: dict[str, bool] = dict.fromkeys(ALARMS, False)
        self.mapped = MappedUnit(GLOVEBOX_MAP, unit_id, values=self.values, on_write=self._on_write)
        self.unit = self.mapped.unit
        self.mapped.refresh()

    def regeneration(self) -> tuple[RegenerationStep, float]:
        """The current step and the seconds left in the whole regeneration; ends it when done."""
        if self.regeneration_started is None:
            return RegenerationStep.IDLE, 0.0
        elapsed = self.clock() - self.regeneration_started
        if elapsed >= self.regeneration_s:
            self.regeneration_started = None
            return RegenerationStep.IDLE, 0.0
        edge = 0.0
        for step, share in _STEP_SHARES:
            edge += share * self.regeneration_s
            if elapsed < edge:
                return step, self.regeneration_s - elapsed
        return RegenerationStep.COOLING, self.regeneration_s - elapsed

    def conditions(self, o2: float, h2o: float, pressure: float) -> dict[str, bool]:
        """The alarm conditions now; NaN (a failed sensor) never raises a concentration alarm."""
        return {
            "o2_high": o2 > self.limits["o2_limit"],
            "h2o_high": h2o > self.limits["h2o_limit"],
            "pressure_out_of_window": not self.limits["pressure_low"]
            <= pressure
            <= self.limits["pressure_high"],
            "glove_breach": self.glove_breach,
        }

    def values(self) -> dict[str, Value]:
        o2 = math.nan if self.o2_sensor_failed else self.o2_source()
        h2o = math.nan if self.h2o_sensor_failed else self.h2o_source()
        pressure = self.pressure_source()
        for name, active in self.conditions(o2, h2o, pressure).items():
            self.latched[name] = self.latched[name] or active
        step, remaining = self.regeneration()
        out: dict[str, Value] = {
            "o2": o2,
            "h2o": h2o,
            "box_pressure": pressure,
            "status": int(self.status(step)),
            "regeneration_step": int(step),
            "regeneration_remaining": round(remaining),
            "fault_code": int(self.fault_code()),
            "regeneration_active": step is not RegenerationStep.IDLE,
            "circulation_running": self.circulation,
            "circulation": self.circulation,
            "regeneration": step is not RegenerationStep.IDLE,
            "alarm_ack": False,
        }
        out.update(self.latched)
        out.update(self.limits)
        return out

    def status(self, step: RegenerationStep) -> GloveboxStatus:
        flags = GloveboxStatus(0)
        if self.circulation:
            flags |= GloveboxStatus.CIRCULATION_RUNNING | GloveboxStatus.PRESSURE_CONTROL_ACTIVE
        if step is not RegenerationStep.IDLE:
            flags |= GloveboxStatus.REGENERATION_ACTIVE
        if self.o2_sensor_failed:
            flags |= GloveboxStatus.O2_SENSOR_FAULT
        if self.h2o_sensor_failed:
            flags |= GloveboxStatus.H2O_SENSOR_FAULT
        if any(self.latched.values()):
            flags |= GloveboxStatus.ALARM_ACTIVE
        return flags

    def fault_code(self) -> GloveboxFault:
        if self.fault is not GloveboxFault.NONE:
            return self.fault
        if self.o2_sensor_failed:
            return GloveboxFault.O2_SENSOR
        if self.h2o_sensor_failed:
            return GloveboxFault.H2O_SENSOR
        if self.gas_supply_ok is not None and not self.gas_supply_ok():
            return GloveboxFault.GAS_SUPPLY_LOW  # the panel watches its supply pressure switch
        return GloveboxFault.NONE

    def _on_write(self, values: dict[str, Value]) -> int | None:
        for name, value in values.items():
            code = self._apply(name, value)
            if code:
                return code
        return None

    def _apply(self, name: str, value: Value) -> int | None:
        if name in self.limits:
            if not math.isfinite(value):
                return _EXC_ILLEGAL_VALUE
            self.limits[name] = float(value)
        elif name == "circulation":
            return self._set_circulation(bool(value))
        elif name == "regeneration":
            return self._set_regeneration(bool(value))
        elif name == "alarm_ack" and value:
            self._acknowledge()
        return None

    def _set_circulation(self, on: bool) -> int | None:
        if on and self.regeneration()[0] is not RegenerationStep.IDLE:
            return _EXC_DEVICE_FAILURE
        if on != self.circulation:
            self.circulation = on
            if self.on_circulation is not None:
                self.on_circulation(on)
        return None

    def _set_regeneration(self, on: bool) -> int | None:
        if not on:
            self.regeneration_started = None
            return None
        if self.circulation:
            return _EXC_DEVICE_FAILURE
        if self.regeneration_started is None:
            self.regeneration_started = self.clock()
        return None

    def _acknowledge(self) -> None:
        o2 = math.nan if self.o2_sensor_failed else self.o2_source()
        h2o = math.nan if self.h2o_sensor_failed else self.h2o_source()
        active = self.conditions(o2, h2o, self.pressure_source())
        self.latched = {name: active[name] for name in self.latched}
