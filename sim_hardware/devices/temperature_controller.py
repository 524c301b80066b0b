"""Simulated Eurotherm 3216-style controller: the driver's map in the device role, plus a loop.

The plant supplies the measured temperature; the controller keeps its setpoints, ramps the working
setpoint at the rate limit on the supplied clock (the plant's virtual clock), and reports an output
% from a supplied control law `output_pct(working_sp_c, pv_c)` (default: proportional band). The
plant reads `output_pct()` back to heat its heater.

Sensor break ([U] what a 3216 shows as PV then): the PV holds its last good value, the status word
sets bit 5 and the output falls to 0 %. Setpoint writes outside `sp_low_c..sp_high_c` or NaN get
exception 03, like an out-of-range value on the real instrument.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from drivers.register_map import Value
from drivers.temperature_controller import DEFAULT_UNIT, ControllerStatus, RateUnits, eurotherm_map
from sim_hardware.devices import MappedUnit

_EXC_ILLEGAL_VALUE = 0x03
_SECONDS_PER = {RateUnits.PER_SECOND: 1.0, RateUnits.PER_MINUTE: 60.0, RateUnits.PER_HOUR: 3600.0}


def proportional_output(band_c: float) -> Callable[[float, float], float]:
    """A P-only control law: 100 % at `band_c` below the setpoint, 0 % at or above it."""
    return lambda sp, pv: min(100.0, max(0.0, 100.0 * (sp - pv) / band_c))


class TemperatureControllerSim:
    """One controller; `.unit` goes on the RS-485 `ModbusRtuSession` with the transmitters."""

    def __init__(
        self,
        unit_id: int = DEFAULT_UNIT,
        *,
        pv_c: Callable[[], float],
        output_pct: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        setpoint_c: float = 20.0,
        sp_low_c: float = -50.0,
        sp_high_c: float = 400.0,
        decimal_places: int = 0,
        on_change: Callable[[TemperatureControllerSim], None] | None = None,
    ) -> None:
        self.pv_source = pv_c
        self.on_change = on_change
        self.control_law = output_pct or proportional_output(10.0)
        self.clock = clock
        self.sp_low_c = sp_low_c
        self.sp_high_c = sp_high_c
        self.target_sp_c = setpoint_c
        self.remote_sp_c = setpoint_c
        self.working_sp_c = setpoint_c
        self.rate_limit = 0.0
        self.rate_units = RateUnits.PER_MINUTE
        self.manual = False
        self.manual_output_pct = 0.0
        self.alarm1_high_c: float | None = None
        self.sensor_break = False
        self._new_alarm = False
        self._last_pv = setpoint_c
        self._last_t = clock()
        self.mapped = MappedUnit(
            eurotherm_map(decimal_places),
            unit_id,
            values=self.values,
            on_write=self._on_write,
            functions=frozenset({0x03, 0x06, 0x10}),
        )
        self.unit = self.mapped.unit
        self.mapped.refresh()

    def pv_c(self) -> float:
        if not self.sensor_break:
            value = self.pv_source()
            if math.isfinite(value):
                self._last_pv = value
        return self._last_pv

    def output_pct(self) -> float:
        if self.sensor_break:
            return 0.0
        if self.manual:
            return self.manual_output_pct
        return min(100.0, max(0.0, self.control_law(self.working_sp_c, self.pv_c())))

    def status(self) -> ControllerStatus:
        flags = ControllerStatus(0)
        if self.alarm1_high_c is not None and self.pv_c() > self.alarm1_high_c:
            flags |= ControllerStatus.ALARM_1
            self._new_alarm = True
        if self._new_alarm:
            flags |= ControllerStatus.NEW_ALARM
        if self.manual:
            flags |= ControllerStatus.MANUAL
        if self.sensor_break:
            flags |= ControllerStatus.SENSOR_BREAK
        if self.working_sp_c != self.target_sp_c:
            flags |= ControllerStatus.RAMP_RUNNING
        return flags

    def advance(self) -> None:
        """Move the working setpoint towards the target at the rate limit since the last call."""
        now = self.clock()
        dt, self._last_t = max(0.0, now - self._last_t), now
        if self.rate_limit <= 0:
            self.working_sp_c = self.target_sp_c
            return
        step = self.rate_limit * dt / _SECONDS_PER[self.rate_units]
        delta = self.target_sp_c - self.working_sp_c
        self.working_sp_c = (
            self.target_sp_c if abs(delta) <= step else self.working_sp_c + math.copysign(step, delta)
        )

    def values(self) -> dict[str, Value]:
        self.advance()
        params: dict[str, float] = {
            "pv": self.pv_c(),
            "target_sp": self.target_sp_c,
            "manual_output": self.manual_output_pct,
            "working_output": self.output_pct(),
            "working_sp": self.working_sp_c,
            "remote_sp": self.remote_sp_c,
            "sp_rate_limit": self.rate_limit,
        }
        out: dict[str, Value] = dict(params)
        out.update({f"{name}_i16": value for name, value in params.items()})
        out.update(
            status=int(self.status()),
            auto_manual=1 if self.manual else 0,
            acknowledge_alarms=0,
            sp_rate_units=int(self.rate_units),
        )
        return out

    def _on_write(self, values: dict[str, Value]) -> int | None:
        self.advance()
        for name, value in values.items():
            code = self._apply(name.removesuffix("_i16"), float(value))
            if code:
                return code
        if self.on_change is not None:  # the heater the controller drives follows what it accepted
            self.on_change(self)
        return None

    def _apply(self, name: str, value: float) -> int | None:
        if not math.isfinite(value):
            return _EXC_ILLEGAL_VALUE
        if name in ("target_sp", "remote_sp"):
            if not self.sp_low_c <= value <= self.sp_high_c:
                return _EXC_ILLEGAL_VALUE
            setattr(self, f"{name}_c", value)
        elif name == "manual_output":
            if not 0.0 <= value <= 100.0:
                return _EXC_ILLEGAL_VALUE
            self.manual_output_pct = value
        elif name == "sp_rate_limit":
            if value < 0:
                return _EXC_ILLEGAL_VALUE
            self.rate_limit = value
        elif name == "auto_manual":
            return self._set_manual(value)
        elif name == "sp_rate_units":
            if value not in (0, 1, 2):
                return _EXC_ILLEGAL_VALUE
            self.rate_units = RateUnits(int(value))
        elif name == "acknowledge_alarms" and value == 1:
            self._new_alarm = False
        return None

    def _set_manual(self, value: float) -> int | None:
        if value not in (0, 1):
            return _EXC_ILLEGAL_VALUE
        if value == 1 and not self.manual:
            self.manual_output_pct = self.output_pct()  # bumpless transfer
        self.manual = value == 1
        return None
