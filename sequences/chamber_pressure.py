"""The process chamber's pressure: pump to base, process gas against the running turbo, back-fill.

Like every step (steps.py) these operate the line only through the command gate and judge progress
only from what the gate sees; times are plant seconds (step_budget.py). A pump-down or back-fill that
does not complete leaves the station in its safe state (safe_state.py).

Roughing and the turbo share the backing pump and foreline on the standard line (there is no
foreline valve), so the rough valve may open only once the turbo has coasted down
(`TURBO_ROUGHING_MAX_HZ`; ~44 min of plant time from full speed behind a closed gate);
`fill_with_gas` therefore stops the turbo, giving it the transfer time to coast.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from controller.line.actions import SetGasFlow, SetPump, SetTurbo, SetValve
from controller.line.gate import CommandGate
from controller.line.state import LineState
from drivers.reading import Quality
from sequences.chamber_readings import (
    device_of,
    fresh_reading,
    is_below,
    pressure_reading,
    reading_of,
)
from sequences.plant_clock import PlantClock, PlantStopwatch
from sequences.safe_state import make_safe
from sequences.step_budget import StepBudget
from sequences.steps import ProcessFault, StepTimeout, pressure_pa, submit

log = logging.getLogger(__name__)

PRESSURE_TOLERANCE = 0.2  # process pressure within ±20 % of the recipe's
ROUGH_TO_FRACTION = 0.5  # rough to half the turbo-gate limit: margin for gauge scatter at the limit
TURBO_ROUGHING_MAX_HZ = 50.0  # the simulated turbo trips (foreline) above 10 % of 1000 Hz
SETTLE_S = 10.0  # plant seconds for the MFC (τ 1 s) and chamber (V/S ≈ 0.5 s) to settle
MAX_FLOW_STEPS = 12
FLOW_GUESS_SCCM_PER_PA = 100.0  # ~0.5 Pa Ar at 50 sccm with a 250 L/s turbo


@dataclass(frozen=True, slots=True)
class BasePressureReport:
    pressure_pa: float
    duration_s: float  # plant seconds, whole step
    rough_s: float  # plant seconds roughing (0 when the turbo was already pumping)
    turbo_run_up_s: float
    high_vacuum_s: float  # turbo gate open until base pressure


# -- pump-down ----------------------------------------------------------------------------------


async def pump_to_base(
    gate: CommandGate,
    space: str,
    *,
    base_pressure_pa: float,
    clock: PlantClock,
    timeout_s: float,
    user: str = "sequence",
) -> BasePressureReport:
    """Rough below the turbo-gate limit, run the turbo up, pump through it to the base pressure.

    Deposition needs the base pressure reached since the chamber was last filled (the gate's I6), so
    this ends only when the pressure is at or below `base_pressure_pa` and the line state confirms
    `base_pressure_reached`. On a timeout (`StepTimeout`), refusal or cancellation the station is put
    in its safe state before the error goes on.
    """
    if "turbo_gate" not in gate.state().spaces[space].valves:
        raise ProcessFault(f"{space} has no turbo: it cannot reach a deposition base pressure")
    watch = PlantStopwatch(clock)
    budget = StepBudget(clock, timeout_s, f"pump {space} to base")
    try:
        await _close_inlets(gate, space, user, budget)
        rough_s = turbo_s = 0.0
        if not _turbo_pumping(gate.state(), space):
            rough_s = await _rough(gate, space, user, budget, clock)
            turbo_s = await _run_up_turbo(gate, space, user, budget, clock)
            await submit(gate, SetValve(space, "rough", False), user, "pump-down: rough done")
            await submit(gate, SetValve(space, "turbo_gate", True), user, "pump-down: high vacuum")
            await budget.wait(  # its limit switch, not just the coil: a stuck gate is a fault
                gate,
                lambda s: s.spaces[space].valves["turbo_gate"].confirmed_open,
                f"{space} turbo gate open",
            )
        high = PlantStopwatch(clock)
        state = await budget.wait(
            gate,
            lambda s: pressure_pa(s, space) <= base_pressure_pa and s.spaces[space].base_pressure_reached,
            f"{space} base pressure {base_pressure_pa:g} Pa",
        )
    except BaseException:
        await make_safe(gate, space, user=user)
        raise
    report = BasePressureReport(pressure_pa(state, space), watch.plant_s(), rough_s, turbo_s, high.plant_s())
    log.info("base pressure reached", extra={"space": space, "report": report})
    return report


async def _close_inlets(gate: CommandGate, space: str, user: str, budget: StepBudget) -> None:
    await submit(gate, SetGasFlow(space, 0.0), user, "pump-down: process gas off")
    for valve in ("gas_fill", "vent"):
        await submit(gate, SetValve(space, valve, False), user, "pump-down: inlets closed")
    await budget.wait(
        gate,
        lambda s: all(s.spaces[space].valves[v].confirmed_closed for v in ("gas_fill", "vent")),
        f"{space} inlets closed",
    )


def _turbo_pumping(state: LineState, space: str) -> bool:
    """Already under the turbo (a second pump-down between two layers): no roughing needed."""
    s = state.spaces[space]
    gate_valve = s.valves.get("turbo_gate")
    return (
        gate_valve is not None
        and gate_valve.confirmed_open
        and (s.turbo_speed_hz or 0.0) > 1.0
        and pressure_pa(state, space) <= state.limits.turbo_gate_max_pa
    )


async def _rough(gate: CommandGate, space: str, user: str, budget: StepBudget, clock: PlantClock) -> float:
    """Rough to half the turbo-gate limit, with the turbo isolated (and coasted down) first."""
    await submit(gate, SetValve(space, "turbo_gate", False), user, "pump-down: isolate the turbo")
    await budget.wait(
        gate, lambda s: s.spaces[space].valves["turbo_gate"].confirmed_closed, f"{space} turbo gate closed"
    )
    await submit(gate, SetPump(space, True), user, "pump-down: backing pump")
    await budget.wait(gate, lambda s: s.spaces[space].pump_running is True, f"{space} pump running")
    target = ROUGH_TO_FRACTION * gate.state().limits.turbo_gate_max_pa
    if is_below(gate.state().spaces[space].pressure_pa, target):
        return 0.0  # held under rough vacuum: the turbo may take it from here
    await _turbo_coasted(gate, space, user, budget)
    watch = PlantStopwatch(clock)
    await submit(gate, SetValve(space, "rough", True), user, "pump-down: rough")
    await budget.wait(
        gate, lambda s: is_below(s.spaces[space].pressure_pa, target), f"{space} roughed to {target:g} Pa"
    )
    return watch.plant_s()


async def _turbo_coasted(gate: CommandGate, space: str, user: str, budget: StepBudget) -> None:
    """The rough line shares the turbo's foreline: a spinning rotor would see atmosphere behind it."""
    speed = gate.state().spaces[space].turbo_speed_hz
    if speed is not None and speed <= TURBO_ROUGHING_MAX_HZ:
        return
    log.warning(
        "turbo still spinning before roughing: waiting for it to coast down",
        extra={"space": space, "speed_hz": speed, "max_hz": TURBO_ROUGHING_MAX_HZ},
    )
    await submit(gate, SetTurbo(space, False), user, "pump-down: turbo must coast down before roughing")
    await budget.wait(
        gate,
        lambda s: is_below(s.spaces[space].turbo_speed_hz, TURBO_ROUGHING_MAX_HZ),
        f"{space} turbo below {TURBO_ROUGHING_MAX_HZ:g} Hz",
    )


async def _run_up_turbo(
    gate: CommandGate, space: str, user: str, budget: StepBudget, clock: PlantClock
) -> float:
    turbo = gate.model.readings.turbo.get(space)
    if turbo is None:
        raise ProcessFault(f"{space} has no turbo pump")
    watch = PlantStopwatch(clock)
    await submit(gate, SetTurbo(space, True), user, "pump-down: turbo on")
    # after the start was written (it acknowledges a cleared error): an error code read before it is
    # the last run's, not this run-up's
    started = time.monotonic()

    def at_speed(_: LineState) -> bool:
        error = gate.snapshot().get((turbo, "error_code"))
        if error is not None and error.mono > started and error.quality is Quality.ERROR:
            raise ProcessFault(f"{turbo} tripped with error {error.value:g} during run-up")
        flag = reading_of(gate, turbo, "set_speed_reached")
        return flag is not None and flag.mono > started and flag.value >= 0.5

    await budget.wait(gate, at_speed, f"{turbo} at speed")
    return watch.plant_s()


# -- process gas --------------------------------------------------------------------------------


async def set_process_pressure(
    gate: CommandGate,
    space: str,
    *,
    pressure_pa: float,
    clock: PlantClock,
    timeout_s: float,
    user: str = "sequence",
    tolerance: float = PRESSURE_TOLERANCE,
) -> float:
    """The line's gas (argon) through the MFC against the running turbo until the pressure is within
    ±`tolerance` of `pressure_pa`; returns the flow in sccm.

    The pressure is close to proportional to the flow at these pressures (molecular flow; the turbo
    loses a little speed towards its knee), so each correction scales the flow by target / measured,
    judged on a pressure reading taken after the flow settled.
    """
    limits = gate.state().limits
    if not 0.0 < pressure_pa < limits.turbo_gate_max_pa:
        raise ValueError(
            f"process pressure {pressure_pa!r} Pa must be above 0 and below the turbo-gate limit "
            f"{limits.turbo_gate_max_pa:g} Pa"
        )
    if not _turbo_pumping(gate.state(), space):
        raise ProcessFault(f"{space} is not pumped by its turbo: a process gas would just fill it")
    full_scale = _full_scale_sccm(gate, space)
    budget = StepBudget(clock, timeout_s, f"{space} process pressure {pressure_pa:g} Pa")
    flow = min(full_scale, pressure_pa * FLOW_GUESS_SCCM_PER_PA)
    for _ in range(MAX_FLOW_STEPS):
        measured = await _pressure_at_flow(gate, space, flow, user, budget, clock)
        if abs(measured - pressure_pa) <= tolerance * pressure_pa:
            log.info(
                "process pressure set", extra={"space": space, "flow_sccm": flow, "pressure_pa": measured}
            )
            return flow
        if flow >= full_scale and measured < pressure_pa:
            raise ProcessFault(
                f"{space}: {measured:.3g} Pa at the MFC's full scale {full_scale:g} sccm, "
                f"{pressure_pa:g} Pa needs more gas than it can give"
            )
        flow = min(full_scale, max(0.1, flow * pressure_pa / max(measured, 1e-6)))
    raise StepTimeout(
        f"{space}: process pressure did not settle at {pressure_pa:g} Pa in {MAX_FLOW_STEPS} steps"
    )


def _full_scale_sccm(gate: CommandGate, space: str) -> float:
    name = device_of(gate, "mass_flow_controller", space)
    device = next(d for d in gate.model.config.devices if d.name == name)
    value = device.params.get("full_scale_sccm", 100.0)
    return float(value) if isinstance(value, int | float) else 100.0


def process_gas(gate: CommandGate, space: str) -> str:
    name = device_of(gate, "mass_flow_controller", space)
    device = next(d for d in gate.model.config.devices if d.name == name)
    return str(device.params.get("gas", "Ar"))


async def _pressure_at_flow(
    gate: CommandGate, space: str, flow: float, user: str, budget: StepBudget, clock: PlantClock
) -> float:
    """The chamber pressure once the MFC reports the new flow and the chamber has settled on it.

    Judged on readings taken after the MFC's own read-back reached the flow: at high plant speed a
    pressure reading merely taken after the command can still show the old flow, and scaling the
    flow on it overshoots the source's pressure window."""
    await submit(gate, SetGasFlow(space, flow), user, f"process gas {flow:.3g} sccm")
    mfc = device_of(gate, "mass_flow_controller", space)
    commanded = time.monotonic()

    def flowing(_: LineState) -> bool:
        reading = reading_of(gate, mfc, "mass_flow")
        return reading is not None and reading.mono > commanded and abs(reading.value - flow) <= 0.05 * flow

    await budget.wait(gate, flowing, f"{mfc} at {flow:.3g} sccm")
    await clock.sleep(SETTLE_S)
    reading = await fresh_reading(
        gate, lambda: pressure_reading(gate, space), time.monotonic(), budget, f"{space} pressure reading"
    )
    return reading.value


# -- back-fill ----------------------------------------------------------------------------------


async def fill_with_gas(
    gate: CommandGate,
    space: str,
    *,
    clock: PlantClock,
    timeout_s: float,
    to_pa: float | None = None,
    user: str = "sequence",
) -> float:
    """Back-fill the chamber with the line's gas to room pressure, so it matches the antechambers for a
    transfer; returns the pressure reached.

    The turbo gate closes first (the gate refuses a fill into a running turbo), and the turbo is
    stopped: the next pump-down roughs through the turbo's foreline, which it may only do once the
    rotor has coasted down, and the transfers that follow a fill give it that time.
    """
    target = gate.state().limits.room_pressure_pa if to_pa is None else to_pa
    budget = StepBudget(clock, timeout_s, f"fill {space}")
    try:
        await submit(gate, SetGasFlow(space, 0.0), user, "fill: process gas off")
        for valve in ("rough", "vent"):
            await submit(gate, SetValve(space, valve, False), user, "fill: only the fill valve may open")
        if "turbo_gate" in gate.state().spaces[space].valves:
            await submit(gate, SetValve(space, "turbo_gate", False), user, "fill: isolate the turbo")
            await budget.wait(
                gate,
                lambda s: s.spaces[space].valves["turbo_gate"].confirmed_closed,
                f"{space} turbo gate closed",
            )
            await submit(
                gate, SetTurbo(space, False), user, "fill: turbo off to coast before the next roughing"
            )
        await submit(gate, SetValve(space, "gas_fill", True), user, f"fill {space} to {target:g} Pa")
        state = await budget.wait(
            gate, lambda s: pressure_pa(s, space) >= target, f"{space} filled to {target:g} Pa"
        )
        await submit(gate, SetValve(space, "gas_fill", False), user, "fill: done")
    except BaseException:
        await make_safe(gate, space, user=user)
        raise
    return pressure_pa(state, space)
