"""Simulated remote I/O coupler: the driver's point map served in the device role.

The plant is reached through two callables: `on_output(name, on)` when an output changes (the plant
moves the valve, door or pump) and `read_input(name) -> bool` for the contacts (the plant decides
when a limit switch closes). The simulator has no timer of its own: the communication watchdog is
checked on every request and by `check_watchdog()`, which the plant may call on its tick.

Faults: `set_field_power(False)` (outputs de-energised, inputs read 0, status bit 0), `forced_inputs`
(a stuck or broken contact), `mapped.unit.forced_exception`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.register_map import Value
from drivers.remote_io import DEFAULT_UNIT, STANDARD_LINE_POINTS, IoPoints, ModuleStatus, RemoteIoMap
from sim_hardware.devices import MappedUnit


class RemoteIoSim:
    """One remote I/O unit; `.unit` goes on a `ModbusTcpSession`."""

    def __init__(
        self,
        points: IoPoints = STANDARD_LINE_POINTS,
        *,
        on_output: Callable[[str, bool], None],
        read_input: Callable[[str], bool],
        unit_id: int = DEFAULT_UNIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.points = points
        self.on_output = on_output
        self.read_input = read_input
        self.clock = clock
        self.field_power = True
        self.forced_inputs: dict[str, bool] = {}
        self.watchdog_ms = 0
        self.watchdog_tripped = False
        self.outputs: dict[str, bool] = dict.fromkeys(points.outputs, False)
        self._last_request = clock()
        self.mapped = MappedUnit(
            RemoteIoMap(points).regmap, unit_id, values=self.values, on_write=self._on_write
        )
        self.unit = self.mapped.unit
        self.mapped.refresh()

    def status(self) -> ModuleStatus:
        flags = ModuleStatus(0)
        if not self.field_power:
            flags |= ModuleStatus.FIELD_POWER_MISSING
        if self.watchdog_tripped:
            flags |= ModuleStatus.WATCHDOG_TRIPPED
        return flags

    def values(self) -> dict[str, Value]:
        self._heard_from_host()
        out: dict[str, Value] = dict(self.outputs)
        for name in self.points.inputs:
            forced = self.forced_inputs.get(name)
            out[name] = forced if forced is not None else (self.field_power and self.read_input(name))
        out["module_status"] = int(self.status())
        out["watchdog"] = self.watchdog_ms
        return out

    def set_field_power(self, on: bool) -> None:
        """The 24 V field supply: without it every output drops (fail-safe) and inputs read 0."""
        if on == self.field_power:
            return
        self.field_power = on
        for name, commanded in self.outputs.items():
            if commanded:
                self.on_output(name, on)

    def check_watchdog(self) -> None:
        """Trip the watchdog if the host has been silent too long: every output to off."""
        if self.watchdog_ms <= 0 or self.watchdog_tripped:
            return
        if (self.clock() - self._last_request) * 1000.0 <= self.watchdog_ms:
            return
        self.watchdog_tripped = True
        for name, commanded in self.outputs.items():
            if commanded:
                self.outputs[name] = False
                if self.field_power:
                    self.on_output(name, False)
        self.mapped.store(dict(self.outputs))

    def _heard_from_host(self) -> None:
        self.check_watchdog()
        self._last_request = self.clock()

    def _on_write(self, values: dict[str, Value]) -> int | None:
        self._heard_from_host()
        for name, value in values.items():
            if name == "watchdog":
                self.watchdog_ms = int(value)
                continue
            on = bool(value)
            self.watchdog_tripped = False
            if self.outputs[name] != on:
                self.outputs[name] = on
                if self.field_power:
                    self.on_output(name, on)
        return None
