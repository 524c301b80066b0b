"""Sensor faults applied between the plant and a device simulator: stuck and drifting signals.

The plant stays physically honest; what a *sensor* reports is bent here, per channel key
(``"inlet_dewpoint.frost_point"``), so any device family gets the same fault behaviour without each
simulator re-implementing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _SignalFault:
    kind: str  # "stuck" | "drift" | "offset"
    started_s: float
    held_value: float | None = None
    drift_per_s: float = 0.0
    offset: float = 0.0


class SignalFaults:
    """The active sensor faults, keyed by channel; read through `wrap` at every device reply."""

    def __init__(self, now_s: Callable[[], float]) -> None:
        self._now_s = now_s
        self._faults: dict[str, _SignalFault] = {}

    def stick(self, key: str) -> None:
        """Freeze the channel at the value it reports next (a frozen transmitter output)."""
        self._faults[key] = _SignalFault("stuck", self._now_s())

    def drift(self, key: str, per_s: float) -> None:
        """Add an offset growing at `per_s` (channel units per virtual second)."""
        self._faults[key] = _SignalFault("drift", self._now_s(), drift_per_s=per_s)

    def offset(self, key: str, delta: float) -> None:
        """Add a constant step (a calibration shift, or a crisp limit crossing for a latency test)."""
        self._faults[key] = _SignalFault("offset", self._now_s(), offset=delta)

    def clear(self, key: str) -> None:
        self._faults.pop(key, None)

    def active(self) -> dict[str, str]:
        return {key: fault.kind for key, fault in self._faults.items()}

    def apply(self, key: str, value: float) -> float:
        fault = self._faults.get(key)
        if fault is None:
            return value
        if fault.kind == "stuck":
            if fault.held_value is None:
                fault.held_value = value
            return fault.held_value
        if fault.kind == "offset":
            return value + fault.offset
        return value + fault.drift_per_s * (self._now_s() - fault.started_s)

    def wrap(self, key: str, source: Callable[[], float]) -> Callable[[], float]:
        return lambda: self.apply(key, source())
