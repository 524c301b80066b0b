"""Simulated deposition source rack: the project-defined map served in the device role.

The rack enforces what the real supplies do on their own: no output without the interlock chain
closed (enable refused with exception 04), a trip and a latched fault when the interlock opens while
on, setpoint limits (exception 03), and power ramping at the ramp rate on the supplied clock.

The plant plugs in a `SourceBackend`: it says whether each interlock chain is closed, is told what
each source delivers (`apply`, with the ramped setpoints), and reports the readbacks. Without one,
`IdealSourceBackend` answers with nominal loads, enough for driver tests and a plant that only needs
the delivered power.

Faults: `trip(source, FaultCode...)`, `arc(source)`, `unit.forced_exception`, `mapped.stuck`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from drivers.deposition_sources import (
    DEFAULT_UNIT,
    STANDARD_LINE_SOURCES,
    FaultCode,
    SourceKind,
    SourcesMap,
    SourceSpec,
    SourceStatus,
)
from drivers.register_map import Value
from sim_hardware.devices import MappedUnit

_EXC_ILLEGAL_VALUE = 0x03
_EXC_DEVICE_FAILURE = 0x04
_RAMPED = (SourceKind.DC_SPUTTER, SourceKind.RF_SPUTTER, SourceKind.EVAPORATION)
_ARC_SHOWN_S = 1.0


class SourceBackend(Protocol):
    def interlock_ok(self, source: str) -> bool: ...

    def apply(self, source: str, on: bool, setpoints: Mapping[str, float]) -> None:
        """What `source` delivers now: on/off and its effective (ramped) setpoints by slot name."""
        ...

    def readbacks(self, source: str) -> Mapping[str, float]:
        """Readback values by slot name (`power`, `voltage`, ...); missing slots read NaN."""
        ...


class IdealSourceBackend:
    """Readbacks that follow the applied setpoints into nominal loads; interlocks set by hand."""

    def __init__(self, sources: Sequence[SourceSpec] = STANDARD_LINE_SOURCES) -> None:
        self.sources = {s.name: s for s in sources}
        self.interlocks: dict[str, bool] = dict.fromkeys(self.sources, True)
        self.applied: dict[str, tuple[bool, dict[str, float]]] = {n: (False, {}) for n in self.sources}

    def interlock_ok(self, source: str) -> bool:
        return self.interlocks[source]

    def apply(self, source: str, on: bool, setpoints: Mapping[str, float]) -> None:
        self.applied[source] = (on, dict(setpoints))

    def readbacks(self, source: str) -> dict[str, float]:
        spec = self.sources[source]
        on, sp = self.applied[source]
        a, b = (sp.get(slot.name, 0.0) if on else 0.0 for slot in spec.spec.setpoints)
        kind = spec.kind
        if kind is SourceKind.DC_SPUTTER:
            volts = math.sqrt(a * 800.0)  # a magnetron near 800 ohm: 200 W at 400 V, 0.5 A
            return {"power": a, "voltage": volts, "current": a / volts if volts else 0.0, "arc_rate": 0.0}
        if kind is SourceKind.RF_SPUTTER:
            reflected = 0.02 * a
            bias = -(50.0 + 0.5 * a) if on and a > 0 else 0.0
            return {"power": a, "reflected_power": reflected, "dc_bias": bias, "load_power": a - reflected}
        if kind is SourceKind.EVAPORATION:
            amps = math.sqrt(a / 0.01)  # a 10 milliohm boat
            return {
                "power": a,
                "voltage": a / amps if amps else 0.0,
                "current": amps,
                "output": 100.0 * a / spec.limits[0],
            }
        if kind is SourceKind.PULSED_LASER:
            hv = 20_000.0 + 10_000.0 * a / spec.limits[0] if on else 0.0
            return {"power": a * b, "pulse_energy": a, "rep_rate": b, "hv": hv}
        return {"power": a * b, "beam_voltage": a, "beam_current": b, "discharge_current": 5.0 * b}


@dataclass
class _Source:
    spec: SourceSpec
    setpoints: list[float] = field(default_factory=lambda: [0.0, 0.0])
    enabled: bool = False
    fault: FaultCode = FaultCode.NONE
    level: float = 0.0
    arc_count: int = 0
    last_arc: float = -math.inf


class DepositionSourcesSim:
    """The source rack; `.unit` goes on its `ModbusTcpSession`."""

    def __init__(
        self,
        sources: Sequence[SourceSpec] = STANDARD_LINE_SOURCES,
        *,
        backend: SourceBackend | None = None,
        unit_id: int = DEFAULT_UNIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.map = SourcesMap(sources)
        self.backend: SourceBackend = backend or IdealSourceBackend(sources)
        self.clock = clock
        self.sources = {s.name: _Source(s) for s in sources}
        self._last_t = clock()
        self.mapped = MappedUnit(self.map.regmap, unit_id, values=self.values, on_write=self._on_write)
        self.unit = self.mapped.unit
        self.mapped.refresh()

    # -- fault hooks --------------------------------------------------------------------------------

    def trip(self, source: str, fault: FaultCode) -> None:
        """The supply shuts its output and latches `fault` (an arc storm, over-temperature ...)."""
        src = self.sources[source]
        src.fault = fault
        src.enabled = False
        src.level = 0.0
        self._apply(src)

    def arc(self, source: str, count: int = 1) -> None:
        src = self.sources[source]
        src.arc_count += count
        src.last_arc = self.clock()

    # -- time and state -----------------------------------------------------------------------------

    def check(self) -> None:
        """Advance ramps and trip sources whose interlock opened; the plant may call it on its tick."""
        now = self.clock()
        dt, self._last_t = max(0.0, now - self._last_t), now
        for src in self.sources.values():
            if src.enabled and not self.backend.interlock_ok(src.spec.name):
                self.trip(src.spec.name, FaultCode.INTERLOCK_OPEN)
                continue
            self._ramp(src, dt)
            self._apply(src)

    def _ramp(self, src: _Source, dt: float) -> None:
        target = src.setpoints[0] if src.enabled else 0.0
        rate = src.setpoints[1]
        if src.spec.kind not in _RAMPED or rate <= 0 or not src.enabled:
            src.level = target
            return
        step = rate * dt
        delta = target - src.level
        src.level = target if abs(delta) <= step else src.level + math.copysign(step, delta)

    def _apply(self, src: _Source) -> None:
        slot_a, slot_b = (s.name for s in src.spec.spec.setpoints)
        self.backend.apply(src.spec.name, src.enabled, {slot_a: src.level, slot_b: src.setpoints[1]})

    def status(self, src: _Source) -> SourceStatus:
        flags = SourceStatus(0)
        if src.enabled:
            flags |= SourceStatus.OUTPUT_ON
            flags |= SourceStatus.AT_SETPOINT if src.level == src.setpoints[0] else SourceStatus.RAMPING
        if self.backend.interlock_ok(src.spec.name):
            flags |= SourceStatus.INTERLOCK_OK
        if src.fault is not FaultCode.NONE:
            flags |= SourceStatus.FAULT
        if self.clock() - src.last_arc < _ARC_SHOWN_S:
            flags |= SourceStatus.ARC_DETECTED
        return flags

    def values(self) -> dict[str, Value]:
        self.check()
        out: dict[str, Value] = {}
        for name, src in self.sources.items():
            kind = src.spec.spec
            for slot, value in zip(kind.setpoints, src.setpoints, strict=True):
                out[f"{name}.{slot.name}"] = value
            readbacks = self.backend.readbacks(name)
            for slot in kind.readbacks:
                out[f"{name}.{slot.name}"] = readbacks.get(slot.name, math.nan)
            status = self.status(src)
            out[f"{name}.status"] = int(status)
            out[f"{name}.fault_code"] = int(src.fault)
            out[f"{name}.arc_count"] = src.arc_count & 0xFFFF_FFFF
            out[f"{name}.enable"] = src.enabled
            out[f"{name}.fault_reset"] = False
            out[f"{name}.interlock_ok"] = bool(status & SourceStatus.INTERLOCK_OK)
            out[f"{name}.output_on"] = src.enabled
            out[f"{name}.fault_active"] = src.fault is not FaultCode.NONE
        return out

    # -- host writes --------------------------------------------------------------------------------

    def _on_write(self, values: dict[str, Value]) -> int | None:
        self.check()
        for key, value in values.items():
            source, _, item = key.partition(".")
            code = self._write(self.sources[source], item, value)
            if code:
                return code
        return None

    def _write(self, src: _Source, item: str, value: Value) -> int | None:
        slots = [s.name for s in src.spec.spec.setpoints]
        if item in slots:
            k = slots.index(item)
            if not 0.0 <= value <= src.spec.limits[k]:  # NaN fails too
                return _EXC_ILLEGAL_VALUE
            src.setpoints[k] = float(value)
            self._ramp(src, 0.0)
        elif item == "enable":
            return self._enable(src, bool(value))
        elif item == "fault_reset" and value:
            if not self.backend.interlock_ok(src.spec.name):
                return _EXC_DEVICE_FAILURE
            src.fault = FaultCode.NONE
        self._apply(src)
        return None

    def _enable(self, src: _Source, on: bool) -> int | None:
        if on and (src.fault is not FaultCode.NONE or not self.backend.interlock_ok(src.spec.name)):
            return _EXC_DEVICE_FAILURE
        src.enabled = on
        if not on:
            src.level = 0.0
        self._ramp(src, 0.0)
        self._apply(src)
        return None
