"""Process-chamber procedures of the production sequence: pump to base, process gas, etch, deposit,
anneal, back-fill, and the safe exit.

Like every step (steps.py) these operate the line only through the command gate and judge progress
only from what the gate sees. Durations and timeouts are plant seconds (`PlantClock`): a recipe's
"1800 s at 130 °C" is plant time whether the plant is real or simulated at 300x; each wait adds a
few wall seconds of floor (`POLL_FLOOR_S`) for poll latency, which is real time whatever the speed.

Anything a step energises (heater, process gas, sources, shutters) is switched off again when the
step ends, however it ends: completion, a refusal, a timeout or cancellation. That clean-up, and
`make_safe`, run in a shielded inner task, so a cancelled sequence still finishes switching off
before the cancellation goes on up.

Facts of the standard line these procedures rely on:
- Roughing and the turbo share the backing pump and foreline (there is no foreline valve), so the
  rough valve may open only once the turbo has coasted down (`TURBO_ROUGHING_MAX_HZ`; ~44 min of
  plant time from full speed behind a closed gate); `fill_with_gas` therefore stops the turbo, giving
  it the transfer time to coast.
- The QCM sees a source whatever its shutter does, so the rate is stabilised with the shutters closed
  and the film is the QCM thickness gained while they are open (the gate offers no "zero QCM").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from controller.errors import ControllerError
from controller.line.actions import (
    Action,
    Command,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetShutter,
    SetSource,
    SetTurbo,
    SetValve,
)
from controller.line.atmosphere import usable
from controller.line.gate import CommandGate, GateRecord
from controller.line.state import LineState
from controller.line.stations import safe_actions
from drivers.reading import Quality, Reading
from sequences.plant_clock import PlantClock
from sequences.steps import StepFailed, StepTimeout, submit, wait_for

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_FLOOR_S = 3.0  # wall seconds added to every timeout: a reading arrives one poll after the fact
POLL_S = 0.05  # wall seconds between looks at the line state
SAFE_EXIT_TIMEOUT_S = 30.0  # wall seconds for a whole safe exit (the gate bounds each command too)
HANDLING_TEMP_C = 40.0  # below this a substrate may be handled and counts as unheated (DESIGN §2)
TEMP_TOLERANCE_C = 2.0
PRESSURE_TOLERANCE = 0.2  # process pressure within ±20 % of the recipe's
ROUGH_TO_FRACTION = 0.5  # rough to half the turbo-gate limit: margin for gauge scatter at the limit
TURBO_ROUGHING_MAX_HZ = 50.0  # the simulated turbo trips (foreline) above 10 % of 1000 Hz
SETTLE_S = 10.0  # plant seconds for the MFC (τ 1 s) and chamber (V/S ≈ 0.5 s) to settle
PRESPUTTER_S = 60.0  # plant seconds a source runs on closed shutters before the rate is judged
RATE_STABLE_FRACTION = 0.05
MAX_FLOW_STEPS = 12
FLOW_GUESS_SCCM_PER_PA = 100.0  # ~0.5 Pa Ar at 50 sccm with a 250 L/s turbo

SPUTTER_SOURCES = frozenset({"dc_sputter", "rf_sputter"})
ION_SOURCE = "ion_source"
# source powers for sensible rates on the standard line (sim_hardware/plant/spec.py):
#   dc_sputter  0.004 nm/s/W      -> 2.0 nm/s (Li)
#   rf_sputter  5e-4 nm/s/W       -> 0.2 nm/s (sulfide glass; fragile targets, RF 8x slower)
#   evaporation 2e-3 nm/s/W > 50 W -> 1.0 nm/s
#   pulsed_laser 3 W = 0.3 J x 10 Hz -> 0.5 nm/s; ion_source 250 W -> 0.5 nm/s etch
DEFAULT_POWER_W: dict[str, float] = {
    "dc_sputter": 500.0,
    "rf_sputter": 400.0,
    "evaporation": 550.0,
    "pulsed_laser": 3.0,
    ION_SOURCE: 250.0,
}
ION_ASSIST_POWER_W = 100.0


class ProcessFault(ControllerError):
    """The line cannot carry on with a step: a source went out, the turbo tripped, or the line lacks
    what the step needs (a gas it has no supply for). The sequence treats it like `StepFailed`."""


# -- reports ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BasePressureReport:
    pressure_pa: float
    duration_s: float  # plant seconds, whole step
    rough_s: float  # plant seconds roughing (0 when the turbo was already pumping)
    turbo_run_up_s: float
    high_vacuum_s: float  # turbo gate open until base pressure


@dataclass(frozen=True, slots=True)
class EtchReport:
    gas: str
    power_w: float
    flow_sccm: float
    process_pressure_pa: float
    substrate_temp_c: float
    etch_s: float  # plant seconds with the ion source on and its shutter open
    duration_s: float  # plant seconds, whole step


@dataclass(frozen=True, slots=True)
class DepositReport:
    source: str
    power_w: float
    thickness_nm: float  # QCM thickness gained with the shutters open
    deposition_s: float  # plant seconds with the shutters open
    mean_rate_nm_s: float
    stabilised_rate_nm_s: float  # QCM rate on closed shutters, before opening
    flow_sccm: float
    process_pressure_pa: float | None
    substrate_temp_c: float | None
    duration_s: float  # plant seconds, whole step (heating, gas, presputter included)


@dataclass(frozen=True, slots=True)
class AnnealReport:
    temp_c: float
    hold_min_c: float
    hold_max_c: float
    heat_s: float
    hold_s: float
    cool_s: float
    final_temp_c: float | None


# -- source choice ------------------------------------------------------------------------------


def source_for(method: str, layer: str) -> str:
    """The rack source that deposits a recipe layer by a method.

    Lithium (and lithium-alloy "metal") sputters from the DC magnetron, the insulating sulfide
    electrolyte needs the RF one. Ion plating is evaporation with the ion source assisting in Ar at
    0.1–1 Pa, so its source is "evaporation" and `deposit(..., ion_assist=True)` adds the ion source
    and the gas. On the standard line that cannot run today: the gate's pressure window for
    evaporation is vacuum only (≤ 1e-2 Pa) and `SetSource` cannot command the ion source's beam
    setpoints or plating mode, so an ion-plating deposit ends in `StepFailed` naming the refusal.
    """
    if method == "sputtering":
        if layer in ("lithium", "metal"):
            return "dc_sputter"
        if layer == "electrolyte":
            return "rf_sputter"
        raise ValueError(f"no sputter source for a {layer!r} layer")
    by_method = {"evaporation": "evaporation", "laser_ablation": "pulsed_laser", "ion_plating": "evaporation"}
    if method not in by_method:
        raise ValueError(f"unknown deposition method {method!r}")
    return by_method[method]


# -- timing helpers -----------------------------------------------------------------------------


class _Stopwatch:
    def __init__(self, clock: PlantClock) -> None:
        self.clock = clock
        self.start = time.monotonic()

    def plant_s(self) -> float:
        return self.clock.plant_s(time.monotonic() - self.start)


class _Budget:
    """One timeout in plant seconds, spent across the waits of a step."""

    def __init__(self, clock: PlantClock, timeout_s: float, step: str) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.step = step
        self.end_mono = time.monotonic() + clock.wall_s(timeout_s) + POLL_FLOOR_S

    def left_wall_s(self) -> float:
        return max(0.0, self.end_mono - time.monotonic())

    def left_plant_s(self) -> float:
        return self.clock.plant_s(self.left_wall_s())

    async def wait(self, gate: CommandGate, condition: Callable[[LineState], bool], what: str) -> LineState:
        try:
            return await wait_for(gate, condition, self.left_wall_s(), what)
        except StepTimeout:
            raise StepTimeout(
                f"{self.step}: {what} did not happen within {self.timeout_s:.0f} s of plant time"
            ) from None


# -- readings the state does not carry ----------------------------------------------------------


def _device(gate: CommandGate, family: str, space: str) -> str:
    name = next((d.name for d in gate.model.config.devices if d.family == family and d.space == space), None)
    if name is None:
        raise ProcessFault(f"{space} has no {family.replace('_', ' ')}")
    return name


def _reading(gate: CommandGate, device: str, channel: str) -> Reading | None:
    return usable(gate.snapshot().get((device, channel)), time.monotonic(), gate.model.config.limits)


def _pressure_reading(gate: CommandGate, space: str) -> Reading | None:
    return gate.model.readings.pressure(gate.snapshot(), space, time.monotonic())


async def _fresh(
    gate: CommandGate, read: Callable[[], Reading | None], after_mono: float, budget: _Budget, what: str
) -> Reading:
    """The first usable reading taken after `after_mono` (one a command could already have changed)."""
    found: list[Reading] = []

    def taken(_: LineState) -> bool:
        reading = read()
        if reading is not None and reading.mono > after_mono:
            found.append(reading)
            return True
        return False

    await budget.wait(gate, taken, what)
    return found[-1]


def _pressure(state: LineState, space: str) -> float:
    p = state.spaces[space].pressure_pa
    return math.nan if p is None else p


def _below(value: float | None, limit: float) -> bool:
    """An unknown value is never below a limit."""
    return value is not None and value <= limit


# -- shielded clean-up ----------------------------------------------------------------------------


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run to completion even if the caller is cancelled meanwhile; then re-raise the cancellation."""
    task = asyncio.create_task(coro, name="process-safe-exit")
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():  # the inner task itself was cancelled (loop shutdown): nothing to wait for
                raise
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    return task.result()


async def _submit_all(
    gate: CommandGate, actions: list[Action], user: str, reason: str, timeout_s: float
) -> list[GateRecord]:
    """Submit every action in turn; a refusal, failure or bug is logged and the next one still goes."""
    records: list[GateRecord] = []
    try:
        async with asyncio.timeout(timeout_s):
            for action in actions:
                try:
                    record = await gate.submit(Command(action, user, "sequence", reason))
                except Exception:
                    log.exception("safe-state command raised", extra={"command": str(action)})
                    continue
                records.append(record)
                if record.outcome != "done":
                    detail = record.verdict.reason if record.outcome == "refused" else record.error
                    log.warning(
                        "safe-state command not done",
                        extra={"command": str(action), "outcome": record.outcome, "detail": detail},
                    )
    except TimeoutError:
        log.error("safe-state commands did not finish", extra={"reason": reason, "timeout_s": timeout_s})
    return records


_SAFE_ORDER = (SetSource, SetShutter, SetGasFlow, SetHeater, SetValve, SetPort)


def safe_state_actions(gate: CommandGate, space: str) -> list[Action]:
    """The station safe state (`controller.line.stations.safe_actions`) plus shutters and vent, in the order
    that stops emission first: sources, shutters, gas, heater, then valves and ports."""
    actions = safe_actions(gate.model.config, space)
    sources = [a.source for a in actions if isinstance(a, SetSource)]
    shutters: list[Action] = [SetShutter(space, s, False) for s in sources]
    if sources:
        shutters.append(SetShutter(space, "substrate", False))
    actions = [*actions, *shutters, SetValve(space, "vent", False)]
    return sorted(actions, key=lambda a: _SAFE_ORDER.index(type(a)))


def _energy_off_actions(gate: CommandGate, space: str) -> list[Action]:
    """What a process step may have energised: sources, shutters, gas and heater (no valve, no port)."""
    keep = (SetSource, SetShutter, SetGasFlow, SetHeater)
    return [a for a in safe_state_actions(gate, space) if isinstance(a, keep)]


async def make_safe(
    gate: CommandGate, space: str, *, user: str = "sequence", timeout_s: float = SAFE_EXIT_TIMEOUT_S
) -> list[GateRecord]:
    """The safe exit of a station: sources off, shutters closed, gas off, heater to a safe setpoint,
    rough / gas-fill / vent valves and the station's inner ports closed.

    Closing and switching off only: it never vents and never opens anything, so it cannot expose an
    item. It never raises for a refused or failed command (each is logged; the records are returned),
    and it completes even if the calling task is cancelled meanwhile, re-raising the cancellation
    afterwards. The turbo gate stays as it is: a pumped chamber is the safer place for an exposed
    item, and the supervisor closes the gate by itself if the pressure rises. `timeout_s` is wall time.
    """
    actions = safe_state_actions(gate, space)
    return await _shielded(_submit_all(gate, actions, user, f"{space}: safe state", timeout_s))


async def _switch_off(gate: CommandGate, space: str, user: str, step: str, *, strict: bool) -> None:
    """A step's clean-up; `strict` (after a step that otherwise succeeded) raises if something stayed on."""
    actions = _energy_off_actions(gate, space)
    records = await _shielded(_submit_all(gate, actions, user, f"{step}: switch off", SAFE_EXIT_TIMEOUT_S))
    if strict:
        bad = next((r for r in records if r.outcome != "done"), None)
        if bad is not None:
            raise StepFailed(bad)
        if len(records) < len(actions):
            raise ProcessFault(f"{step}: the switch-off commands did not all complete")


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
    watch = _Stopwatch(clock)
    budget = _Budget(clock, timeout_s, f"pump {space} to base")
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
        high = _Stopwatch(clock)
        state = await budget.wait(
            gate,
            lambda s: _pressure(s, space) <= base_pressure_pa and s.spaces[space].base_pressure_reached,
            f"{space} base pressure {base_pressure_pa:g} Pa",
        )
    except BaseException:
        await make_safe(gate, space, user=user)
        raise
    report = BasePressureReport(_pressure(state, space), watch.plant_s(), rough_s, turbo_s, high.plant_s())
    log.info("base pressure reached", extra={"space": space, "report": report})
    return report


async def _close_inlets(gate: CommandGate, space: str, user: str, budget: _Budget) -> None:
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
        and _pressure(state, space) <= state.limits.turbo_gate_max_pa
    )


async def _rough(gate: CommandGate, space: str, user: str, budget: _Budget, clock: PlantClock) -> float:
    """Rough to half the turbo-gate limit, with the turbo isolated (and coasted down) first."""
    await submit(gate, SetValve(space, "turbo_gate", False), user, "pump-down: isolate the turbo")
    await budget.wait(
        gate, lambda s: s.spaces[space].valves["turbo_gate"].confirmed_closed, f"{space} turbo gate closed"
    )
    await submit(gate, SetPump(space, True), user, "pump-down: backing pump")
    await budget.wait(gate, lambda s: s.spaces[space].pump_running is True, f"{space} pump running")
    target = ROUGH_TO_FRACTION * gate.state().limits.turbo_gate_max_pa
    if _below(gate.state().spaces[space].pressure_pa, target):
        return 0.0  # held under rough vacuum: the turbo may take it from here
    await _turbo_coasted(gate, space, user, budget)
    watch = _Stopwatch(clock)
    await submit(gate, SetValve(space, "rough", True), user, "pump-down: rough")
    await budget.wait(
        gate, lambda s: _below(s.spaces[space].pressure_pa, target), f"{space} roughed to {target:g} Pa"
    )
    return watch.plant_s()


async def _turbo_coasted(gate: CommandGate, space: str, user: str, budget: _Budget) -> None:
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
        lambda s: _below(s.spaces[space].turbo_speed_hz, TURBO_ROUGHING_MAX_HZ),
        f"{space} turbo below {TURBO_ROUGHING_MAX_HZ:g} Hz",
    )


async def _run_up_turbo(
    gate: CommandGate, space: str, user: str, budget: _Budget, clock: PlantClock
) -> float:
    turbo = gate.model.readings.turbo.get(space)
    if turbo is None:
        raise ProcessFault(f"{space} has no turbo pump")
    watch = _Stopwatch(clock)
    started = time.monotonic()
    await submit(gate, SetTurbo(space, True), user, "pump-down: turbo on")

    def at_speed(_: LineState) -> bool:
        error = gate.snapshot().get((turbo, "error_code"))
        if error is not None and error.mono > started and error.quality is Quality.ERROR:
            raise ProcessFault(f"{turbo} tripped with error {error.value:g} during run-up")
        flag = _reading(gate, turbo, "set_speed_reached")
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
    budget = _Budget(clock, timeout_s, f"{space} process pressure {pressure_pa:g} Pa")
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
    name = _device(gate, "mass_flow_controller", space)
    device = next(d for d in gate.model.config.devices if d.name == name)
    value = device.params.get("full_scale_sccm", 100.0)
    return float(value) if isinstance(value, int | float) else 100.0


def _process_gas(gate: CommandGate, space: str) -> str:
    name = _device(gate, "mass_flow_controller", space)
    device = next(d for d in gate.model.config.devices if d.name == name)
    return str(device.params.get("gas", "Ar"))


async def _pressure_at_flow(
    gate: CommandGate, space: str, flow: float, user: str, budget: _Budget, clock: PlantClock
) -> float:
    """The chamber pressure once the MFC reports the new flow and the chamber has settled on it.

    Judged on readings taken after the MFC's own read-back reached the flow: at high plant speed a
    pressure reading merely taken after the command can still show the old flow, and scaling the
    flow on it overshoots the source's pressure window."""
    await submit(gate, SetGasFlow(space, flow), user, f"process gas {flow:.3g} sccm")
    mfc = _device(gate, "mass_flow_controller", space)
    commanded = time.monotonic()

    def flowing(_: LineState) -> bool:
        reading = _reading(gate, mfc, "mass_flow")
        return reading is not None and reading.mono > commanded and abs(reading.value - flow) <= 0.05 * flow

    await budget.wait(gate, flowing, f"{mfc} at {flow:.3g} sccm")
    await clock.sleep(SETTLE_S)
    reading = await _fresh(
        gate, lambda: _pressure_reading(gate, space), time.monotonic(), budget, f"{space} pressure reading"
    )
    return reading.value


# -- heater ---------------------------------------------------------------------------------------


def _at_temperature(temp_c: float | None, setpoint_c: float) -> bool:
    """Within tolerance of the setpoint; below `HANDLING_TEMP_C` anything under it counts as "unheated"."""
    if temp_c is None:
        return False
    if setpoint_c < HANDLING_TEMP_C:
        return temp_c < HANDLING_TEMP_C
    return abs(temp_c - setpoint_c) <= TEMP_TOLERANCE_C


async def _heat(gate: CommandGate, space: str, setpoint_c: float, user: str, budget: _Budget) -> float | None:
    await submit(gate, SetHeater(space, "substrate", setpoint_c), user, f"substrate to {setpoint_c:g} °C")
    state = await budget.wait(
        gate,
        lambda s: _at_temperature(s.spaces[space].substrate_temp_c, setpoint_c),
        f"{space} substrate at {setpoint_c:g} °C",
    )
    return state.spaces[space].substrate_temp_c


def _require_on(gate: CommandGate, space: str, sources: tuple[str, ...], step: str) -> None:
    """The supervisor switches a source off when the chamber opens or the pressure leaves its window."""
    on = gate.state().spaces[space].sources_on
    missing = [s for s in sources if s not in on]
    if missing:
        raise ProcessFault(f"{step}: {', '.join(missing)} went off")


async def _hold(
    gate: CommandGate, space: str, sources: tuple[str, ...], plant_s: float, clock: PlantClock
) -> None:
    end = time.monotonic() + clock.wall_s(plant_s)
    while (left := end - time.monotonic()) > 0:
        _require_on(gate, space, sources, f"{space} hold")
        await asyncio.sleep(min(POLL_S, left))
    _require_on(gate, space, sources, f"{space} hold")


# -- etch ---------------------------------------------------------------------------------------


async def etch(
    gate: CommandGate,
    space: str,
    *,
    gas: str,
    substrate_temp_c: float,
    duration_s: float,
    process_pressure_pa: float,
    clock: PlantClock,
    user: str = "sequence",
    power_w: float | None = None,
    timeout_s: float = 1800.0,
) -> EtchReport:
    """Ion-beam etch of the substrate: heater, gas, ion source on behind its open shutter for
    `duration_s` plant seconds. `timeout_s` (plant) bounds heating and gas set-up, not the etch.

    The gas must be the one the chamber's MFC delivers (Ar on the standard line; an H2 etch needs an
    H2 line and raises `ProcessFault`). On the standard line `SetSource` cannot set the ion source's
    beam voltage/current, so the gate reports the command failed (`StepFailed`); see the report.
    """
    supplied = _process_gas(gate, space)
    if gas != supplied:
        raise ProcessFault(f"{space} has no {gas} supply: its MFC delivers {supplied}")
    power = DEFAULT_POWER_W[ION_SOURCE] if power_w is None else power_w
    watch = _Stopwatch(clock)
    budget = _Budget(clock, timeout_s, f"etch in {space}")
    ok = False
    try:
        temp = await _heat(gate, space, substrate_temp_c, user, budget)
        flow = await set_process_pressure(
            gate,
            space,
            pressure_pa=process_pressure_pa,
            clock=clock,
            timeout_s=budget.left_plant_s(),
            user=user,
        )
        await submit(gate, SetSource(space, ION_SOURCE, True, power), user, "etch: ion source on")
        await submit(gate, SetShutter(space, "substrate", True), user, "etch: substrate shutter open")
        await submit(gate, SetShutter(space, ION_SOURCE, True), user, "etch: ion source shutter open")
        etching = _Stopwatch(clock)
        await _hold(gate, space, (ION_SOURCE,), duration_s, clock)
        etch_s = etching.plant_s()
        pressure = _pressure(gate.state(), space)
        ok = True
    finally:
        await _switch_off(gate, space, user, f"etch in {space}", strict=ok)
    return EtchReport(gas, power, flow, pressure, math.nan if temp is None else temp, etch_s, watch.plant_s())


# -- deposit ------------------------------------------------------------------------------------


async def deposit(
    gate: CommandGate,
    space: str,
    *,
    source: str,
    thickness_nm: float,
    substrate_temp_c: float,
    process_pressure_pa: float | None,
    clock: PlantClock,
    timeout_s: float,
    user: str = "sequence",
    power_w: float | None = None,
    ion_assist: bool = False,
) -> DepositReport:
    """Grow `thickness_nm` (by the QCM) from `source` onto the substrate.

    Heater to the setpoint first; process gas when the method needs it (sputtering, ion plating) or
    the recipe asks for a background gas (the gate then judges whether the source may run in it);
    the source presputters on closed shutters until the QCM rate is steady; the shutters open, and
    close as soon as the QCM has gained `thickness_nm`. The QCM cannot be zeroed through the gate,
    so the film is the thickness gained from the opening of the shutters. `timeout_s` (plant) bounds
    the whole step. Whatever happens, sources, shutters, gas and heater are switched off at the end.
    """
    if source not in DEFAULT_POWER_W or source == ION_SOURCE:
        raise ValueError(f"unknown deposition source {source!r}")
    if not thickness_nm > 0.0:
        raise ValueError(f"thickness must be > 0 nm, got {thickness_nm!r}")
    if (source in SPUTTER_SOURCES or ion_assist) and process_pressure_pa is None:
        raise ValueError(f"{source}{' with ion assist' if ion_assist else ''} needs a process pressure")
    power = DEFAULT_POWER_W[source] if power_w is None else power_w
    qcm = _device(gate, "thickness_monitor", space)
    watch = _Stopwatch(clock)
    budget = _Budget(clock, timeout_s, f"deposit {source} in {space}")
    ok = False
    try:
        temp = await _heat(gate, space, substrate_temp_c, user, budget)
        flow = 0.0
        if process_pressure_pa is not None:
            flow = await set_process_pressure(
                gate,
                space,
                pressure_pa=process_pressure_pa,
                clock=clock,
                timeout_s=budget.left_plant_s(),
                user=user,
            )
        running = (ION_SOURCE, source) if ion_assist else (source,)
        if ion_assist:
            await submit(gate, SetSource(space, ION_SOURCE, True, ION_ASSIST_POWER_W), user, "ion assist on")
        await submit(gate, SetSource(space, source, True, power), user, f"deposit: {source} on")
        rate = await _stabilised_rate(gate, space, qcm, running, budget, clock)
        thickness, open_s = await _grow(gate, space, qcm, source, running, thickness_nm, user, budget, clock)
        pressure = gate.state().spaces[space].pressure_pa if process_pressure_pa is not None else None
        ok = True
    finally:
        await _switch_off(gate, space, user, f"deposit {source} in {space}", strict=ok)
    report = DepositReport(
        source,
        power,
        thickness,
        open_s,
        thickness / open_s if open_s > 0 else math.nan,
        rate,
        flow,
        pressure,
        temp,
        watch.plant_s(),
    )
    log.info("deposited", extra={"space": space, "report": report})
    return report


async def _stabilised_rate(
    gate: CommandGate, space: str, qcm: str, running: tuple[str, ...], budget: _Budget, clock: PlantClock
) -> float:
    """Presputter on closed shutters, then wait for two successive QCM rates to agree."""
    await clock.sleep(PRESPUTTER_S)
    previous: float | None = None
    while True:
        _require_on(gate, space, running, f"{space} presputter")
        reading = await _fresh(
            gate,
            lambda: _reading(gate, qcm, "rate"),
            time.monotonic(),
            budget,
            f"a steady {qcm} rate from {running[-1]}",
        )
        rate = reading.value
        if rate > 0.0 and previous is not None and abs(rate - previous) <= RATE_STABLE_FRACTION * previous:
            return rate
        previous = rate


async def _grow(
    gate: CommandGate,
    space: str,
    qcm: str,
    source: str,
    running: tuple[str, ...],
    thickness_nm: float,
    user: str,
    budget: _Budget,
    clock: PlantClock,
) -> tuple[float, float]:
    """Open the shutters, wait for the QCM to gain `thickness_nm`, close them: (nm gained, plant s open)."""
    before = await _fresh(
        gate, lambda: _reading(gate, qcm, "thickness"), time.monotonic(), budget, f"{qcm} thickness"
    )
    await submit(gate, SetShutter(space, "substrate", True), user, "deposit: substrate shutter open")
    await submit(gate, SetShutter(space, source, True), user, "deposit: source shutter open")
    opened = _Stopwatch(clock)
    estimate: list[float] = []

    def grown(_: LineState) -> bool:
        """The QCM's last thickness plus what its rate adds since that reading: at high plant speed a
        poll is tens of plant seconds, and closing on the reading alone would overshoot by a poll.
        (The QCM sees the source, not the shutter, so this estimate at closing is the film's.)"""
        _require_on(gate, space, running, f"deposit {source}")
        reading = _reading(gate, qcm, "thickness")
        if reading is None:
            return False
        rate = _reading(gate, qcm, "rate")
        since_s = clock.plant_s(max(0.0, time.monotonic() - reading.mono))
        ahead = rate.value * since_s if rate is not None and rate.value > 0 else 0.0
        estimate.append(reading.value - before.value + ahead)
        return estimate[-1] >= thickness_nm

    await budget.wait(gate, grown, f"{thickness_nm:g} nm on the QCM")
    await submit(gate, SetShutter(space, source, False), user, "deposit: source shutter closed")
    open_s = opened.plant_s()
    await submit(gate, SetShutter(space, "substrate", False), user, "deposit: substrate shutter closed")
    return estimate[-1], open_s


# -- anneal -------------------------------------------------------------------------------------


async def anneal(
    gate: CommandGate,
    space: str,
    *,
    temp_c: float,
    duration_s: float,
    clock: PlantClock,
    user: str = "sequence",
    cool_to_c: float | None = HANDLING_TEMP_C,
    heat_timeout_s: float = 3600.0,
    cool_timeout_s: float = 4 * 3600.0,
) -> AnnealReport:
    """Heat the substrate in place, hold `duration_s` plant seconds, heater back to safe, and wait for
    it to cool below `cool_to_c` (None: do not wait, e.g. when an Ar back-fill follows and cools it
    four times faster than vacuum does; see the report for figures)."""
    heat = _Stopwatch(clock)
    budget = _Budget(clock, heat_timeout_s, f"anneal in {space}")
    ok = False
    temps: list[float] = []
    try:
        await _heat(gate, space, temp_c, user, budget)
        heat_s = heat.plant_s()
        hold = _Stopwatch(clock)
        await _hold_temperature(gate, space, duration_s, clock, temps)
        hold_s = hold.plant_s()
        ok = True
    finally:
        await _switch_off(gate, space, user, f"anneal in {space}", strict=ok)
    cool = _Stopwatch(clock)
    if cool_to_c is not None:
        await _Budget(clock, cool_timeout_s, f"cool {space}").wait(
            gate,
            lambda s: _below(s.spaces[space].substrate_temp_c, cool_to_c),
            f"{space} substrate below {cool_to_c:g} °C",
        )
    final = gate.state().spaces[space].substrate_temp_c
    report = AnnealReport(
        temp_c,
        min(temps, default=math.nan),
        max(temps, default=math.nan),
        heat_s,
        hold_s,
        cool.plant_s(),
        final,
    )
    log.info("annealed", extra={"space": space, "report": report})
    return report


async def _hold_temperature(
    gate: CommandGate, space: str, plant_s: float, clock: PlantClock, temps: list[float]
) -> None:
    end = time.monotonic() + clock.wall_s(plant_s)
    while (left := end - time.monotonic()) > 0:
        temp = gate.state().spaces[space].substrate_temp_c
        if temp is not None:
            temps.append(temp)
        await asyncio.sleep(min(POLL_S, left))


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
    budget = _Budget(clock, timeout_s, f"fill {space}")
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
            gate, lambda s: _pressure(s, space) >= target, f"{space} filled to {target:g} Pa"
        )
        await submit(gate, SetValve(space, "gas_fill", False), user, "fill: done")
    except BaseException:
        await make_safe(gate, space, user=user)
        raise
    return _pressure(state, space)
