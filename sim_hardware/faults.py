"""Fault injection into the simulated line, from Python or from a scenario file.

Every fault is a `Fault(kind, target fields...)`; `inject` applies it and returns the function that
undoes it. A scenario is a TOML list of faults on the virtual clock:

    [[events]]
    at_s = 120.0            # virtual seconds after the simulator started
    fault = "leak"
    space = "inlet"
    rate_pa_m3_s = 1e-4
    duration_s = 600.0      # optional: cleared again after this long
    after = "deposition"    # optional: at_s counts from the first moment a deposition source emits
                            # (plasma lit, material leaving it) instead of from the start

A fault "mid-deposition" is thus placed in the plant's own terms, whatever the plant time the load,
purges and pump-downs before it took on a loaded machine.

Kinds: leak, pump_failure, gas_supply_empty, power_loss, heater_sensor_break, stuck_sensor,
drifting_sensor, offset_sensor, stuck_actuator, no_reply, garbage, crc_errors, modbus_exception,
device_power_cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.config.reader import TableReader, read_toml

if TYPE_CHECKING:
    from sim_hardware.line import SimLine

log = logging.getLogger(__name__)
Undo = Callable[[], None]

# kind -> the fields it needs (besides at_s / duration_s)
KINDS: dict[str, tuple[str, ...]] = {
    "leak": ("space", "rate_pa_m3_s"),
    "pump_failure": ("pump",),
    "gas_supply_empty": (),
    "power_loss": (),
    "heater_sensor_break": ("device",),
    "stuck_sensor": ("device", "channel"),
    "drifting_sensor": ("device", "channel", "rate_per_s"),
    "offset_sensor": ("device", "channel", "offset"),
    "no_reply": ("device",),
    "garbage": ("device", "count"),
    "crc_errors": ("device", "count"),
    "modbus_exception": ("device", "code"),
    "device_power_cycle": ("device",),
    "stuck_actuator": ("actuator",),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    space: str = ""
    pump: str = ""
    device: str = ""
    channel: str = ""
    actuator: str = ""  # a plant valve or door name: "inlet_gate", "inlet.rough"
    rate_pa_m3_s: float = 0.0
    rate_per_s: float = 0.0
    offset: float = 0.0
    count: int = 1
    code: int = 4


# what an event's at_s counts from: the simulator's start, or the first emitting deposition source
AFTER: tuple[str, ...] = ("start", "deposition")


@dataclass(frozen=True)
class ScenarioEvent:
    at_s: float
    fault: Fault
    duration_s: float | None = None
    after: str = "start"


def inject(sim: SimLine, fault: Fault) -> Undo:
    """Apply `fault` to the running line; the returned function restores normal behaviour."""
    handler = _HANDLERS.get(fault.kind)
    if handler is None:
        raise ValueError(f"unknown fault kind {fault.kind!r}; known: {', '.join(KINDS)}")
    log.warning(
        "fault injected", extra={"fault": fault.kind, "target": fault.device or fault.space or fault.pump}
    )
    return handler(sim, fault)


def _leak(sim: SimLine, f: Fault) -> Undo:
    space = sim.plant.spaces[f.space]
    before = space.leak_pa_m3_s
    sim.plant.set_leak(f.space, f.rate_pa_m3_s)
    return lambda: sim.plant.set_leak(f.space, before)


def _pump_failure(sim: SimLine, f: Fault) -> Undo:
    sim.plant.pump_failure(f.pump, True)
    return lambda: sim.plant.pump_failure(f.pump, False)


def _gas_supply_empty(sim: SimLine, f: Fault) -> Undo:
    sim.plant.gas_supply_empty(True)
    return lambda: sim.plant.gas_supply_empty(False)


def _power_loss(sim: SimLine, f: Fault) -> Undo:
    sim.plant.power_loss(True)
    return lambda: sim.plant.power_loss(False)


def _heater_sensor_break(sim: SimLine, f: Fault) -> Undo:
    bound = sim.bound[f.device]
    if not bound.plant_name:
        raise ValueError(f"device {f.device!r} is not a temperature controller")
    controller = bound.sim
    controller.sensor_break = True
    sim.plant.heater_sensor_break(bound.plant_name, True)

    def undo() -> None:
        controller.sensor_break = False
        sim.plant.heater_sensor_break(bound.plant_name, False)

    return undo


def _stuck(sim: SimLine, f: Fault) -> Undo:
    key = f"{f.device}.{f.channel}"
    sim.signal_faults.stick(key)
    return lambda: sim.signal_faults.clear(key)


def _drifting(sim: SimLine, f: Fault) -> Undo:
    key = f"{f.device}.{f.channel}"
    sim.signal_faults.drift(key, f.rate_per_s)
    return lambda: sim.signal_faults.clear(key)


def _offset(sim: SimLine, f: Fault) -> Undo:
    key = f"{f.device}.{f.channel}"
    sim.signal_faults.offset(key, f.offset)
    return lambda: sim.signal_faults.clear(key)


def _no_reply(sim: SimLine, f: Fault) -> Undo:
    """A device on a shared bus goes quiet alone; a device alone on its link silences the link."""
    unit = sim.bound[f.device].unit
    if unit is not None and len(sim.link_of(f.device).devices) > 1:
        unit.silent = True

        def wake() -> None:
            unit.silent = False

        return wake
    faults = sim.link_of(f.device).endpoint.faults
    faults.silent = True

    def speak() -> None:
        faults.silent = False

    return speak


def _garbage(sim: SimLine, f: Fault) -> Undo:
    faults = sim.link_of(f.device).endpoint.faults
    faults.garbage_replies += f.count

    def clear() -> None:
        faults.garbage_replies = 0

    return clear


def _crc_errors(sim: SimLine, f: Fault) -> Undo:
    faults = sim.link_of(f.device).endpoint.faults
    faults.corrupt_replies += f.count

    def clear() -> None:
        faults.corrupt_replies = 0

    return clear


def _modbus_exception(sim: SimLine, f: Fault) -> Undo:
    unit = sim.bound[f.device].unit
    if unit is None:
        raise ValueError(f"device {f.device!r} is not a Modbus device")
    unit.forced_exception = f.code

    def clear() -> None:
        unit.forced_exception = None

    return clear


def _power_cycle(sim: SimLine, f: Fault) -> Undo:
    """The instrument loses power: it stops answering until the fault is cleared, then restarts."""
    link = sim.link_of(f.device)
    link.endpoint.faults.powered = False
    if hasattr(link.endpoint, "drop_connections"):
        link.endpoint.drop_connections()

    def restore() -> None:
        link.endpoint.faults.powered = True
        link.endpoint.power_cycle()

    return restore


def _stuck_actuator(sim: SimLine, f: Fault) -> Undo:
    """A valve or door that no longer travels: its limit switches will disagree with the command."""
    target = sim.plant.doors.get(f.actuator) or sim.plant.valves[f.actuator]
    target.stuck = True

    def free() -> None:
        target.stuck = False

    return free


_HANDLERS: dict[str, Callable[[SimLine, Fault], Undo]] = {
    "leak": _leak,
    "pump_failure": _pump_failure,
    "gas_supply_empty": _gas_supply_empty,
    "power_loss": _power_loss,
    "heater_sensor_break": _heater_sensor_break,
    "stuck_sensor": _stuck,
    "drifting_sensor": _drifting,
    "offset_sensor": _offset,
    "no_reply": _no_reply,
    "garbage": _garbage,
    "crc_errors": _crc_errors,
    "modbus_exception": _modbus_exception,
    "device_power_cycle": _power_cycle,
    "stuck_actuator": _stuck_actuator,
}


def load_scenario(path: str | Path, sim: SimLine) -> list[ScenarioEvent]:
    """Read and check a scenario against the line it will run on; errors name file and field."""
    shown = str(path)
    _, data = read_toml(path, shown)
    root = TableReader(shown, data)
    events = [_event(t, sim) for t in root.table_list("events")]
    root.finish()
    return sorted(events, key=lambda e: e.at_s)


def _event(t: TableReader, sim: SimLine) -> ScenarioEvent:
    kind = t.text("fault", choices=KINDS)
    at_s = t.number("at_s", min=0.0)
    duration = t.number("duration_s", min=0.0) if t.has("duration_s") else None
    after = t.text("after", choices=AFTER) if t.has("after") else "start"
    needs = KINDS[kind]
    devices = [d.name for d in sim.config.devices]
    fault = Fault(
        kind,
        space=t.text("space", choices=list(sim.plant.spaces)) if "space" in needs else "",
        pump=t.text("pump", choices=[*sim.plant.pumps, *sim.plant.turbos]) if "pump" in needs else "",
        device=t.text("device", choices=devices) if "device" in needs else "",
        channel=t.text("channel") if "channel" in needs else "",
        actuator=t.text("actuator", choices=[*sim.plant.doors, *sim.plant.valves])
        if "actuator" in needs
        else "",
        rate_pa_m3_s=t.number("rate_pa_m3_s", min=0.0, max=10.0) if "rate_pa_m3_s" in needs else 0.0,
        rate_per_s=t.number("rate_per_s", min=-1e6, max=1e6) if "rate_per_s" in needs else 0.0,
        offset=t.number("offset", min=-1e9, max=1e9) if "offset" in needs else 0.0,
        count=t.integer("count", 1, min=1, max=1000) if "count" in needs else 1,
        code=t.integer("code", 4, min=1, max=11) if "code" in needs else 4,
    )
    t.finish()
    return ScenarioEvent(at_s, fault, duration, after)


async def run_scenario(sim: SimLine, events: list[ScenarioEvent]) -> None:
    """Inject each event at its virtual time; clear it after its duration. Runs until all are done.

    Events counted from the first deposition are scheduled when a source is first seen to have emitted; the
    virtual clock has no events to wait on, so both it and the sources are re-checked, at most a
    hundredth of a wall second apart while a deposition is awaited."""
    pending: list[tuple[float, Callable[[], None]]] = []
    deferred = [e for e in events if e.after == "deposition"]
    for event in events:
        if event.after == "start":
            pending.append((event.at_s, _apply_later(sim, event, pending)))
    while pending or deferred:
        if deferred and any(source.has_emitted for source in sim.plant.sources.values()):
            began_s = sim.plant.time_s
            pending += [(began_s + e.at_s, _apply_later(sim, e, pending, began_s)) for e in deferred]
            deferred = []
        pending.sort(key=lambda item: item[0])
        if pending and pending[0][0] <= sim.plant.time_s:
            pending.pop(0)[1]()
            continue
        wait_s = pending[0][0] - sim.plant.time_s if pending else math.inf
        longest = 0.01 if deferred else 1.0
        await asyncio.sleep(min(longest, max(0.01, wait_s / sim.clock.speed)))


@contextlib.asynccontextmanager
async def scenario_running(sim: SimLine, events: list[ScenarioEvent]) -> AsyncIterator[asyncio.Task[None]]:
    """Play `events` beside whatever the caller does with the line. A failed injection is logged when
    it happens and raised when the block ends; leaving the block ends the scenario."""
    task = asyncio.create_task(run_scenario(sim, events), name="sim-scenario")
    task.add_done_callback(_log_failure)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("scenario injection failed", exc_info=task.exception())


def _apply_later(
    sim: SimLine, event: ScenarioEvent, pending: list[tuple[float, Callable[[], None]]], origin_s: float = 0.0
) -> Callable[[], None]:
    def apply() -> None:
        undo = inject(sim, event.fault)
        if event.duration_s is not None:
            pending.append((origin_s + event.at_s + event.duration_s, undo))

    return apply
