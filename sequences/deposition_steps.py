"""What the process chamber does to the substrate: ion-beam etch, deposit a layer, anneal.

Like every step (steps.py) these operate the line only through the command gate and judge progress
only from what the gate sees; times are plant seconds (step_budget.py). Heater, process gas, sources
and shutters are switched off again however a step ends (safe_state.py). The chamber's pressure and
process gas come from chamber_pressure.py.

The QCM sees a source whatever its shutter does, so the rate is stabilised with the shutters closed
and the film is the QCM thickness gained while they are open (the gate offers no "zero QCM").

The QCM converts crystal mass into thickness with the film it was told, so every layer starts by
programming the layer material's density and Z-ratio from the materials table (and the chamber's
calibrated tooling) and reading them back from the monitor's own readings; a monitor that holds
anything else is a `ProcessFault` naming the parameter, and the shutters do not open on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.line.actions import SetFilm, SetHeater, SetShutter, SetSource
from controller.line.gate import CommandGate
from controller.line.materials import MaterialError, film_properties
from controller.line.state import LineState
from drivers.thickness_monitor import PROGRAMMED_FILM
from drivers.thickness_monitor_settings import FilmParameters, film_differences
from sequences.chamber_pressure import process_gas, set_process_pressure
from sequences.chamber_readings import device_of, fresh_reading, is_below, reading_of
from sequences.plant_clock import MIN_SLEEP_S, PlantClock, PlantStopwatch
from sequences.safe_state import switch_off
from sequences.step_budget import StepBudget
from sequences.steps import ProcessFault, pressure_pa, submit

log = logging.getLogger(__name__)

POLL_S = 0.05  # wall seconds between looks at the line state
HANDLING_TEMP_C = 40.0  # below this a substrate may be handled and counts as unheated (DESIGN §2)
TEMP_TOLERANCE_C = 2.0
PRESPUTTER_S = 60.0  # plant seconds a source runs on closed shutters before the rate is judged
RATE_STABLE_FRACTION = 0.05

ION_SOURCE = "ion_source"
# Source powers are not chosen here: a recipe's layer gets its power (and its time budget) from the
# line's source table (controller.config.source_table, sequences.layer_plan).
ShuttersOpening = Callable[[str, float], Awaitable[None]]  # (monitor device, its thickness nm) at opening


# -- reports ------------------------------------------------------------------------------------


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


def source_kind(gate: CommandGate, space: str, source: str) -> str:
    """The kind of `source` in `space` by the line's source table; unknown there is a ValueError."""
    for entry in gate.model.config.sources_in(space):
        if entry.name == source:
            return entry.kind
    known = ", ".join(e.name for e in gate.model.config.sources_in(space)) or "none"
    raise ValueError(f"{space} has no source {source!r} in the line's source table ({known})")


# -- heater -------------------------------------------------------------------------------------


def _at_temperature(temp_c: float | None, setpoint_c: float) -> bool:
    """Within tolerance of the setpoint; below `HANDLING_TEMP_C` anything under it counts as "unheated"."""
    if temp_c is None:
        return False
    if setpoint_c < HANDLING_TEMP_C:
        return temp_c < HANDLING_TEMP_C
    return abs(temp_c - setpoint_c) <= TEMP_TOLERANCE_C


async def _heat(
    gate: CommandGate, space: str, setpoint_c: float, user: str, budget: StepBudget
) -> float | None:
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
    end = clock.now_s() + plant_s
    while (left := end - clock.now_s()) > 0:
        _require_on(gate, space, sources, f"{space} hold")
        await asyncio.sleep(min(POLL_S, max(MIN_SLEEP_S, clock.wall_s(left))))  # a governed clock crawls
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
    power_w: float,
    clock: PlantClock,
    user: str = "sequence",
    timeout_s: float = 1800.0,
    source: str = ION_SOURCE,
) -> EtchReport:
    """Ion-beam etch of the substrate: heater, gas, ion source on behind its open shutter for
    `duration_s` plant seconds at `power_w` (the recipe's, or the line's default for its ion source).
    `timeout_s` (plant) bounds heating and gas set-up, not the etch.

    The gas must be the one the chamber's MFC delivers (Ar on the standard line; an H2 etch needs an
    H2 line and raises `ProcessFault`: `recipe check --config` refuses it before a job starts).
    """
    supplied = process_gas(gate, space)
    if gas != supplied:
        raise ProcessFault(f"{space} has no {gas} supply: its MFC delivers {supplied}")
    power = power_w
    watch = PlantStopwatch(clock)
    budget = StepBudget(clock, timeout_s, f"etch in {space}")
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
        await submit(gate, SetSource(space, source, True, power), user, "etch: ion source on")
        await submit(gate, SetShutter(space, "substrate", True), user, "etch: substrate shutter open")
        await submit(gate, SetShutter(space, source, True), user, "etch: ion source shutter open")
        etching = PlantStopwatch(clock)
        await _hold(gate, space, (source,), duration_s, clock)
        etch_s = etching.plant_s()
        pressure = pressure_pa(gate.state(), space)
        ok = True
    finally:
        await switch_off(gate, space, user, f"etch in {space}", strict=ok)
    return EtchReport(gas, power, flow, pressure, math.nan if temp is None else temp, etch_s, watch.plant_s())


# -- deposit ------------------------------------------------------------------------------------


async def deposit(
    gate: CommandGate,
    space: str,
    *,
    source: str,
    material: str,
    thickness_nm: float,
    substrate_temp_c: float,
    process_pressure_pa: float | None,
    clock: PlantClock,
    timeout_s: float,
    power_w: float,
    user: str = "sequence",
    pulse_rate_hz: float | None = None,
    assist_source: str | None = None,
    assist_power_w: float = 0.0,
    on_open: ShuttersOpening | None = None,
) -> DepositReport:
    """Grow `thickness_nm` (by the QCM) of `material` from `source` onto the substrate.

    `on_open(monitor, thickness_nm)` is awaited just before the shutters open, with the monitor's
    reading then: from that moment an interruption leaves a partial layer, and the caller's record of
    where the monitor stood is what its thickness is measured from.

    The QCM is told the film first (`program_film`), before anything is heated or lit. Heater to the
    setpoint then; process gas when the method needs it (sputtering, ion plating) or
    the recipe asks for a background gas (the gate then judges whether the source may run in it);
    the source presputters on closed shutters until the QCM rate is steady; the shutters open, and
    close as soon as the QCM has gained `thickness_nm`. The QCM cannot be zeroed through the gate,
    so the film is the thickness gained from the opening of the shutters. `timeout_s` (plant) bounds
    the whole step: the layer's budget from its expected duration (sequences.layer_plan). Ion plating
    runs `assist_source` at `assist_power_w` first. Whatever happens, sources, shutters, gas and heater
    are switched off at the end.
    """
    kind = source_kind(gate, space, source)
    if kind == ION_SOURCE:
        raise ValueError(f"{source} etches; it deposits nothing")
    if not thickness_nm > 0.0:
        raise ValueError(f"thickness must be > 0 nm, got {thickness_nm!r}")
    ion_assist = assist_source is not None
    if (kind.endswith("_sputter") or ion_assist) and process_pressure_pa is None:
        raise ValueError(f"{source}{' with ion assist' if ion_assist else ''} needs a process pressure")
    power = power_w
    qcm = device_of(gate, "thickness_monitor", space)
    watch = PlantStopwatch(clock)
    budget = StepBudget(clock, timeout_s, f"deposit {source} in {space}")
    ok = False
    try:
        film = await program_film(gate, space, material, user, budget)
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
        running = (source,) if assist_source is None else (assist_source, source)
        if assist_source is not None:
            await submit(gate, SetSource(space, assist_source, True, assist_power_w), user, "ion assist on")
        await submit(
            gate, SetSource(space, source, True, power, pulse_rate_hz), user, f"deposit: {source} on"
        )
        rate = await _stabilised_rate(gate, space, qcm, running, budget, clock)
        _check_film(gate, qcm, material, film, f"before opening the shutters on {material}")
        thickness, open_s = await _grow(
            gate, space, qcm, source, running, thickness_nm, user, budget, clock, on_open
        )
        pressure = gate.state().spaces[space].pressure_pa if process_pressure_pa is not None else None
        ok = True
    finally:
        await switch_off(gate, space, user, f"deposit {source} in {space}", strict=ok)
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


FILM_CHANNELS = {"density_g_cm3": "film_density", "z_ratio": "film_z_ratio", "tooling_pct": "film_tooling"}


async def program_film(
    gate: CommandGate, space: str, material: str, user: str, budget: StepBudget
) -> FilmParameters:
    """Tell the chamber's QCM the layer's film (density and Z-ratio from the materials table, the
    chamber's calibrated tooling) through the gate, then read it back from the first poll taken
    after: what the monitor converts with is what the controller records. Returns the film asked for.
    """
    qcm = device_of(gate, "thickness_monitor", space)
    try:
        properties = film_properties(material)
    except MaterialError as exc:
        raise ProcessFault(f"{qcm} cannot be told what {material!r} is: {exc}") from None
    params = next(d.params for d in gate.model.config.devices if d.name == qcm)
    tooling = float(params.get("film_tooling_pct", 100.0))
    action = SetFilm(space, material, properties.density_g_cm3, properties.z_ratio, tooling)
    await submit(gate, action, user, f"{qcm}: the film of {material} ({properties.source})")
    # from the write's answer on: a poll of the monitor queued on its link before the write (its reply
    # stamped after the command was asked, its values from before) must not count as the read-back
    asked = time.monotonic()
    wanted = FilmParameters(properties.density_g_cm3, tooling, properties.z_ratio)
    await fresh_reading(
        gate, lambda: reading_of(gate, qcm, "film_density"), asked, budget, f"{qcm}'s film read back"
    )
    _check_film(gate, qcm, material, wanted, "after programming it")
    return wanted


def _check_film(gate: CommandGate, qcm: str, material: str, wanted: FilmParameters, when: str) -> None:
    """The monitor's film as last polled against `wanted`: a difference is a `ProcessFault` naming it."""
    held: dict[str, float] = {}
    for attribute, channel in (*FILM_CHANNELS.items(), ("active", "active_film")):
        reading = reading_of(gate, qcm, channel)
        if reading is None:
            raise ProcessFault(f"{qcm} {when}: its {channel.replace('_', ' ')} is unknown")
        held[attribute] = reading.value
    wrong = film_differences(
        FilmParameters(held["density_g_cm3"], held["tooling_pct"], held["z_ratio"]), wanted
    )
    if held["active"] != PROGRAMMED_FILM:
        wrong.append(f"active film reads {held['active']:g}, commanded {PROGRAMMED_FILM}")
    if wrong:
        raise ProcessFault(f"{qcm} {when} holds another film than {material}'s: {'; '.join(wrong)}")


async def _stabilised_rate(
    gate: CommandGate, space: str, qcm: str, running: tuple[str, ...], budget: StepBudget, clock: PlantClock
) -> float:
    """Presputter on closed shutters, then wait for two successive QCM rates to agree."""
    await clock.sleep(PRESPUTTER_S)
    previous: float | None = None
    while True:
        _require_on(gate, space, running, f"{space} presputter")
        reading = await fresh_reading(
            gate,
            lambda: reading_of(gate, qcm, "rate"),
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
    budget: StepBudget,
    clock: PlantClock,
    on_open: ShuttersOpening | None = None,
) -> tuple[float, float]:
    """Open the shutters, wait for the QCM to gain `thickness_nm`, close them: (nm gained, plant s open)."""
    before = await fresh_reading(
        gate, lambda: reading_of(gate, qcm, "thickness"), time.monotonic(), budget, f"{qcm} thickness"
    )
    if on_open is not None:
        await on_open(qcm, before.value)
    await submit(gate, SetShutter(space, "substrate", True), user, "deposit: substrate shutter open")
    await submit(gate, SetShutter(space, source, True), user, "deposit: source shutter open")
    opened = PlantStopwatch(clock)
    estimate: list[float] = []

    def grown(_: LineState) -> bool:
        """The QCM's last thickness plus what its rate adds since that reading: at high plant speed a
        poll is tens of plant seconds, and closing on the reading alone would overshoot by a poll.
        (The QCM sees the source, not the shutter, so this estimate at closing is the film's.)"""
        _require_on(gate, space, running, f"deposit {source}")
        reading = reading_of(gate, qcm, "thickness")
        if reading is None:
            return False
        rate = reading_of(gate, qcm, "rate")
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
    heat = PlantStopwatch(clock)
    budget = StepBudget(clock, heat_timeout_s, f"anneal in {space}")
    ok = False
    temps: list[float] = []
    try:
        await _heat(gate, space, temp_c, user, budget)
        heat_s = heat.plant_s()
        hold = PlantStopwatch(clock)
        await _hold_temperature(gate, space, duration_s, clock, temps)
        hold_s = hold.plant_s()
        ok = True
    finally:
        await switch_off(gate, space, user, f"anneal in {space}", strict=ok)
    cool = PlantStopwatch(clock)
    if cool_to_c is not None:
        await StepBudget(clock, cool_timeout_s, f"cool {space}").wait(
            gate,
            lambda s: is_below(s.spaces[space].substrate_temp_c, cool_to_c),
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
    end = clock.now_s() + plant_s
    while (left := end - clock.now_s()) > 0:
        temp = gate.state().spaces[space].substrate_temp_c
        if temp is not None:
            temps.append(temp)
        await asyncio.sleep(min(POLL_S, max(MIN_SLEEP_S, clock.wall_s(left))))  # a governed clock crawls
