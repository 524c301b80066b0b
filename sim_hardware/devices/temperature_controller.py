"""Simulated Eurotherm 3216-style controller: the driver's map in the device role, plus a loop.

Manuals followed: Eurotherm "2000 Series Communications" HA026230 issue 3, §3.12-3.21 (the Modbus the
3200 series shares): FC 01/02 read n bits (the same bits; coil 2 auto/manual, 5 alarm 1, 10 sensor
break, §5.6), FC 03/04 read n words (the same words), FC 05 write a bit (FF00 or 0100 = 1, the reply
echoes the command), FC 06 write a word, FC 07 fast read of status (the low byte of the status word,
§3.17), FC 08 loopback (diagnostic code 0 only, §3.18), FC 16 write n words; "will not reply if they
receive a request including an unsupported function code" (§3.12), so any other function gets
silence; error responses 02 and 03 only (§3.20). Parameter addresses and the status word as the 3200
Series User Manual HA028651 issue 7 §15.5 lists them.

The plant supplies the measured temperature; the controller keeps its setpoints, ramps the working
setpoint at the rate limit on the supplied clock (the plant's virtual clock), and reports an output
% from a supplied control law `output_pct(working_sp_c, pv_c)` (default: proportional band). The
plant reads `output_pct()` back to heat its heater.

Setpoint-rate units (531): the 3216's enum is not settled (`drivers.setpoint_rate_units`); a simulated
controller uses the order it is built with (`rate_units_order`, default the 2000-series handbook's
`s-min-h`), so a test can run the driver against either reading.

Not implemented, and why: the configuration-mode parameters (instrument mode 199 = 2 and the
HA026230 §5.7 list: nothing here reconfigures an instrument, and writing 199 wrongly can wipe a real
one's calibration), the programmer, timers, PID tuning and alarm configuration (the line uses the
loop, its setpoint, rate limit and alarms only). Sensor break ([U] what a 3216 shows as PV then):
the PV holds its last good value, the status word sets bit 5 and the output falls to 0 %. Setpoint
writes outside `sp_low_c..sp_high_c` or NaN get exception 03, like an out-of-range value on the real
instrument.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from drivers.register_map import Value
from drivers.setpoint_rate_units import RATE_UNIT_ORDERS, RateUnit, rate_code
from drivers.temperature_controller import DEFAULT_UNIT, ControllerStatus, eurotherm_map
from sim_hardware.devices import MappedUnit

_EXC_ILLEGAL_VALUE = 0x03
FUNCTIONS = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10})
COIL_ON = frozenset({0xFF00, 0x0100})  # HA026230 §3.15: "either transmit 01h or FFh"


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
        rate_units_order: str = "s-min-h",
        on_change: Callable[[TemperatureControllerSim], None] | None = None,
    ) -> None:
        if rate_units_order not in RATE_UNIT_ORDERS:
            raise ValueError(f"rate_units_order {rate_units_order!r}: one of {', '.join(RATE_UNIT_ORDERS)}")
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
        self.rate_units_order = rate_units_order
        self.rate_unit = RateUnit.PER_MINUTE
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
            functions=FUNCTIONS,
            unsupported="silent",
            read_aliases={"input_registers": "holding_registers", "discrete_inputs": "coils"},
            coil_on=COIL_ON,
        )
        self.unit = self.mapped.unit
        self.unit.exception_status = lambda: int(self.status()) & 0xFF
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
        step = self.rate_limit * dt / self.rate_unit.seconds
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
        status = self.status()
        out.update(
            status=int(status),
            auto_manual=1 if self.manual else 0,
            acknowledge_alarms=0,
            sp_rate_units=rate_code(self.rate_units_order, self.rate_unit),
            manual_bit=self.manual,
            alarm_1_bit=ControllerStatus.ALARM_1 in status,
            sensor_break_bit=self.sensor_break,
        )
        return out

    def rate_limit_c_per_min(self) -> float:
        """The rate limit as the heater sees it, whatever unit the controller counts it in."""
        return self.rate_limit * 60.0 / self.rate_unit.seconds

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
        elif name in ("auto_manual", "manual_bit"):
            return self._set_manual(value)
        elif name == "sp_rate_units":
            unit = RATE_UNIT_ORDERS[self.rate_units_order].get(int(value))
            if unit is None or value != int(value):
                return _EXC_ILLEGAL_VALUE
            self.rate_unit = unit
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
