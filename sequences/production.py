"""The production sequence of one job: DESIGN.md §1's process, as phases the job runner checkpoints.

load (outer door) → purge the inlet until in spec → process chamber filled with the same gas →
operator opens the containers → transfer in → [pump down → etch] → pump down → layers → [anneal] →
fill → outlet prepared (its container placed in advance), purged → transfer out → operator seals the
electrode → unload through the outer door.

Each phase is small and composed of the step library (`sequences.steps`,
`sequences.chamber_pressure`, `sequences.deposition_steps`); everything goes through the command
gate. A phase is either *repeatable* (running it again from its start after an interruption is
harmless: every action in it checks where things already are) or not (an etch, a layer, a heat
treatment: repeating one would change the electrode). The runner resumes a repeatable phase and
rejects the electrode of a job interrupted inside a non-repeatable one — it is then unloaded like any
other, and its record says why it is not good.

On a line with two deposition systems (sequences.line_route) each step runs in its chamber
(sequences.layer_plan) and between them the electrode passes the intermediate inert space: the chamber
it leaves is filled with the gas, the transfer chamber is purged until in spec, the next chamber is
filled, and the two gate valves open one after the other, each only when the gate allows it.

`reject_plan` is the path out of the line from wherever the electrode happens to be, used after a
fault (the "skip" policy) and after an interruption that spoiled the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.config.line_config import LineConfig
from controller.errors import ControllerError, UserError
from controller.line.actions import MoveItem, SetContainer, SetPort, SetValve, ValveName
from controller.line.controller import LineController
from controller.line.interlocks import check
from controller.line.items import ItemKind, contents_of, exposed_in, space_of
from controller.line.state import LineState
from sequences.batch_store import JobItems
from sequences.chamber_pressure import fill_with_gas, pump_to_base
from sequences.chamber_readings import reading_of
from sequences.deposition_steps import DepositReport, ShuttersOpening, anneal, deposit, etch
from sequences.layer_plan import EtchPlan, LayerPlan, plan_steps, step_chambers, target_chambers
from sequences.line_route import Passage, Route, route_of
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.recipe import AnnealStep, DepositStep, EtchStep, Recipe
from sequences.recipe_limits import recipe_shortfall
from sequences.safe_state import make_safe
from sequences.steps import StepFailed, StepTimeout, submit, wait_for
from sequences.steps import pump_purge as pump_purge_cycles

log = logging.getLogger(__name__)

ROOM = "room"
CONTAINER_MATERIAL = "SUS"  # the transfer boxes are stainless steel
CONFIRM_TIMEOUT_S = 8 * 3600.0  # plant seconds an operator prompt may stay open before it is a fault
MIN_WALL_WAIT_S = 5.0
PORT_TRAVEL_S = 60.0  # plant seconds a door or gate valve may take to reach its end position
FILL_ATTEMPTS = 2  # evacuate-and-fill rounds a chamber gets to be shown inert before a gate asks for it
READINGS_SETTLE_S = 15.0  # wall seconds an opening waits for the interlocks to allow it before it asks
PURGE_SETTLE_S = 30.0  # plant seconds after a purge back-fill before its atmosphere is judged
HANDLING_TEMP_C = 40.0  # the electrode leaves the chamber only below this (DESIGN §2: "unheated")
COOL_TIMEOUT_S = 4 * 3600.0

Recorder = Callable[[str, dict[str, Any]], Awaitable[None]]


class PurgeNotConverging(ControllerError):
    """More pump/purge cycles are not drying the antechamber: a leak, a wet load or a spent bottle."""


@dataclass
class JobContext:
    ctl: LineController
    recipe: Recipe
    items: JobItems
    route: Route
    clock: PlantClock
    desk: OperatorDesk
    record: Recorder
    job_id: str
    save_items: Callable[[JobItems], Awaitable[None]]
    user: str = "sequence"
    notes: dict[str, Any] = field(default_factory=dict)
    # confirmations recorded inside the phase an earlier attempt was interrupted in, by prompt key:
    # the glove work was done, so the resumed phase uses them instead of asking the person again
    carried_confirmations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def config(self) -> LineConfig:
        return self.ctl.config

    def state(self) -> LineState:
        return self.ctl.gate.state()

    def wall(self, plant_s: float) -> float:
        return max(MIN_WALL_WAIT_S, self.clock.wall_s(plant_s))

    def plant_timeout(self, plant_s: float) -> float:
        """A wait's timeout in plant seconds, never shorter than `MIN_WALL_WAIT_S` of wall time."""
        return max(self.clock.plant_s(MIN_WALL_WAIT_S), plant_s)

    @property
    def step_timeout_s(self) -> float:
        """Plant seconds, as the process-chamber steps take them."""
        return self.config.sequence.step_timeout_s


PhaseBody = Callable[[JobContext], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str  # the checkpoint name: unique within a job
    title: str
    repeatable: bool
    estimate_s: float  # plant seconds, for progress only
    run: PhaseBody


# -- small operations, each safe to repeat ------------------------------------------------------------


async def _confirm(ctx: JobContext, key: str, prompt: str) -> str:
    """Ask the operator, record the answer and the wait; returns who confirmed.

    A confirmation already on record for this prompt in the interrupted phase is used once instead:
    the person did the glove work before the controller stopped, and asking again would both repeat
    the question and put a second confirmation of one action on the record."""
    carried = ctx.carried_confirmations.pop(f"{ctx.job_id}:{key}", None)
    if carried is not None:
        log.info("confirmation carried over", extra={"job": ctx.job_id, "key": key, "user": carried["user"]})
        return str(carried["user"])
    confirmation = await ctx.desk.confirm(
        f"{ctx.job_id}:{key}", prompt, timeout_s=ctx.wall(CONFIRM_TIMEOUT_S)
    )
    await ctx.record("confirm", confirmation.as_detail())
    return confirmation.user


async def _set_port(ctx: JobContext, port: str, open_: bool, why: str) -> None:
    """Command a door or gate and wait for its limit switches: a move through it is judged on them.

    Before an opening, the interlocks are asked first, for a little while: a reading gone stale for a
    moment (a device that missed a reply on a busy bus) makes a side "unknown" and the gate would
    refuse, rightly, and fail the job on a blip. The gate still judges the command itself."""
    valve = ctx.state().ports[port].valve
    if valve.commanded_open is not open_ or not (valve.confirmed_open if open_ else valve.confirmed_closed):
        if open_:
            with contextlib.suppress(StepTimeout):
                allowed = SetPort(port, True)
                await wait_for(ctx.ctl.gate, lambda s: check(s, allowed).allowed, READINGS_SETTLE_S, why)
        await submit(ctx.ctl.gate, SetPort(port, open_), ctx.user, why)
    await wait_for(
        ctx.ctl.gate,
        lambda s: s.ports[port].valve.confirmed_open if open_ else s.ports[port].valve.confirmed_closed,
        ctx.plant_timeout(PORT_TRAVEL_S),
        f"{port} confirmed {'open' if open_ else 'closed'}",
        clock=ctx.clock,
    )


async def _open_to_chamber(ctx: JobContext, port: str, chamber: str, why: str) -> None:
    """Open a gate to a process chamber filled for it. A chamber without H2O/O2 sensors is inert only by
    the record of how it was filled, and a valve reading lost for a moment counts as open to air and
    ends that record: then the chamber is filled again (evacuated first) and the gate asked once more."""
    for last in (False, True):
        await prepare_chamber(ctx, chamber)  # a no-op while the record proves it inert
        try:
            await _set_port(ctx, port, True, why)
            return
        except StepFailed:
            if last:
                raise


async def _move(ctx: JobContext, item: str, to: str, user: str, why: str) -> None:
    items = ctx.state().items
    if item not in items or items[item].location == to:
        return
    await submit(ctx.ctl.gate, MoveItem(item, to), user, why)


async def _seal(ctx: JobContext, container: str, sealed: bool, user: str, why: str) -> None:
    item = ctx.state().items.get(container)
    if item is None or item.sealed is sealed:
        return
    await submit(ctx.ctl.gate, SetContainer(container, sealed), user, why)


async def seal_exposed(ctx: JobContext, space: str, why: str) -> None:
    """Glove work before an outer door opens: every air-sensitive item left unsealed in `space` (an
    opened target, the electrode) goes into an open container there, which is then closed.

    The gate refuses an outer door with anything exposed behind it (DESIGN §4.3), and a reject path
    that simply asked for the door would wait on that refusal for ever; here the job asks a person
    for what only gloves can do, records who did it, and the door can open."""
    state = ctx.state()
    exposed = [i.id for i in exposed_in(space, state.items)]
    if not exposed:
        return
    box = _box_in(ctx, space)
    if box is None:
        raise ControllerError(
            f"{', '.join(exposed)} lie unsealed in {space} and no container there can take them: "
            "the outer door stays closed"
        )
    names = ", ".join(exposed)
    user = await _confirm(ctx, f"seal_in_{space}", f"{why}: put {names} into container {box} and close it")
    for item in exposed:
        await _move(ctx, item, box, user, f"glove work: {item} into {box} before the outer door opens")
    await _seal(ctx, box, True, user, f"glove work: {box} closed before the outer door opens")


def _box_in(ctx: JobContext, space: str) -> str | None:
    """A container in `space` to seal exposed items in: the job's own first, then any other there."""
    items = ctx.state().items
    here = [i.id for i in items.values() if i.is_container and i.location == space]
    for box in (ctx.items.container, ctx.items.out_container):
        if box in here:
            return box
    return here[0] if here else None


async def _at_room_pressure(ctx: JobContext, space: str) -> None:
    """An antechamber must be at atmosphere before its outer door opens: back-fill it when below, and
    relieve it through the vent valve when the regulator left it above (a fill stops at the
    regulator's +1…+5 mbar, which can be past the door's window)."""
    limits = ctx.config.limits
    room, half = limits.room_pressure_pa, limits.atmospheric_window_pa / 2
    pressure = ctx.state().spaces[space].pressure_pa
    if pressure is not None and abs(pressure - room) <= half:
        return
    if pressure is not None and pressure > room:
        await _hold_valve_until(ctx, space, "vent", lambda p: p <= room + half / 2, "relieve to atmosphere")
        return
    await _hold_valve_until(ctx, space, "gas_fill", lambda p: p >= room, "back-fill to atmosphere")


async def _hold_valve_until(
    ctx: JobContext, space: str, valve: ValveName, reached: Callable[[float], bool], what: str
) -> None:
    gate = ctx.ctl.gate
    await submit(gate, SetValve(space, "rough", False), ctx.user, f"{space}: isolate before the {what}")
    await submit(gate, SetValve(space, valve, True), ctx.user, f"{space}: {what}")
    try:
        await wait_for(
            gate,
            lambda s: reached(s.spaces[space].pressure_pa or math.nan),  # unknown: not reached
            ctx.plant_timeout(ctx.step_timeout_s),
            f"{space} {what}",
            clock=ctx.clock,
        )
    finally:
        await submit(gate, SetValve(space, valve, False), ctx.user, f"{space}: {what} done")


def _register(ctx: JobContext, item_id: str, kind: ItemKind, material: str, where: str, sealed: bool) -> None:
    model = ctx.ctl.model
    if item_id in model.items:
        return
    item = model.register(item_id, kind, material, where, sealed=sealed, user=ctx.user, origin="sequence")
    if not item.is_container:
        ctx.ctl.ledger.registered(ctx.state(), item.id, time.time())


async def _choose_targets(ctx: JobContext) -> dict[str, str]:
    """Targets stay in the process chamber between jobs: a recipe target whose material is already
    there is that item (the job's record is updated to name it); the others are loaded with the base.
    Returns the item ids to register and load, with their materials."""
    state = ctx.state()
    present = {
        (space_of(i.id, state.items), i.material): i.id
        for i in state.items.values()
        if i.kind is ItemKind.TARGET and space_of(i.id, state.items) in ctx.route.chambers
    }
    where = target_chambers(ctx.recipe, ctx.config, ctx.route.chambers)
    chosen: dict[str, str] = {}
    to_load: dict[str, str] = {}
    for target_id, item_id in ctx.items.targets.items():
        material = ctx.recipe.target(target_id).material
        key = (where.get(target_id, ctx.route.process), material)
        if item_id not in state.items and key in present:
            chosen[target_id] = present[key]
        else:
            chosen[target_id] = item_id
            to_load[item_id] = material
    if chosen != ctx.items.targets:
        ctx.items = dataclasses.replace(ctx.items, targets=chosen)
        await ctx.save_items(ctx.items)
    return to_load


# -- the phases --------------------------------------------------------------------------------------


async def load(ctx: JobContext) -> None:
    r, items = ctx.route, ctx.items
    state = ctx.state()
    if items.container in state.items and space_of(items.container, state.items) != ROOM:
        await _set_port(ctx, r.inlet_door, False, "load: outer door closed")
        return  # loaded before an interruption
    await _at_room_pressure(ctx, r.inlet)
    _register(ctx, items.container, ItemKind.CONTAINER, CONTAINER_MATERIAL, ROOM, True)
    _register(ctx, items.base, ItemKind.BASE_MATERIAL, ctx.recipe.base.material, items.container, False)
    for item_id, material in (await _choose_targets(ctx)).items():
        _register(ctx, item_id, ItemKind.TARGET, material, items.container, False)
    await _set_port(ctx, r.inlet_door, True, "load: open the outer door")
    empty = empty_containers(ctx, r.inlet, keep={items.container})
    prompt = f"put the closed container {items.container} into {r.inlet}{_and_take_out(empty)}"
    user = await _confirm(ctx, "load", prompt)
    await _move(ctx, items.container, r.inlet, user, "load: container through the outer door")
    await take_out(ctx, empty, r.inlet, user)
    await _set_port(ctx, r.inlet_door, False, "load: close the outer door")


async def purge_until_in_spec(ctx: JobContext, space: str) -> None:
    """Pump/purge cycles: at least `purge_cycles`, more while not in spec, a fault when one more
    cycle no longer helps (the frost point gains less than `purge_min_gain_c`) or none is left."""
    seq = ctx.config.sequence
    gate = ctx.ctl.gate
    previous: float | None = None
    for cycle in range(1, seq.purge_max_cycles + 1):
        [report] = await pump_purge_cycles(
            gate,
            space,
            cycles=1,
            evacuate_to_pa=seq.purge_evacuate_to_pa,
            fill_to_pa=ctx.config.limits.room_pressure_pa,
            timeout_s=ctx.plant_timeout(ctx.step_timeout_s),
            user=ctx.user,
            settle_s=PURGE_SETTLE_S,
            clock=ctx.clock,
        )
        await ctx.record(
            "purge_cycle",
            {
                "space": space,
                "cycle": cycle,
                "evacuated_to_pa": report.evacuated_to_pa,
                "frost_point_c": report.frost_point_c,
                "o2_ppmv": report.o2_ppmv,
                "atmosphere": report.atmosphere,
            },
        )
        state = ctx.state().spaces[space]
        # the stricter of the line's limits (the classification) and the recipe's (recipe_limits)
        in_spec = state.safe_for_exposed and recipe_shortfall(state, ctx.recipe, ctx.config.limits) is None
        if cycle >= seq.purge_cycles and in_spec:
            await submit(gate, SetValve(space, "rough", False), ctx.user, "purge done")
            return
        frost = report.frost_point_c
        stalled = previous is not None and frost is not None and previous - frost < seq.purge_min_gain_c
        if cycle >= seq.purge_cycles and stalled:
            raise PurgeNotConverging(
                f"{space} is not converging: cycle {cycle} reached frost point {frost:.1f} °C "
                f"after {previous:.1f} °C (gain < {seq.purge_min_gain_c:g} °C); "
                f"limit {ctx.config.limits.max_frost_point_c:g} °C"
            )
        previous = frost
    raise PurgeNotConverging(f"{space} still not in spec after {seq.purge_max_cycles} pump/purge cycles")


def _meets_limits(ctx: JobContext, space: str) -> bool:
    state = ctx.state().spaces[space]
    return state.safe_for_exposed and recipe_shortfall(state, ctx.recipe, ctx.config.limits) is None


async def purge_inlet(ctx: JobContext) -> None:
    if _meets_limits(ctx, ctx.route.inlet) and ctx.notes.get("inlet_purged"):
        return
    await purge_until_in_spec(ctx, ctx.route.inlet)
    ctx.notes["inlet_purged"] = True


async def restore_inert(ctx: JobContext, why: str) -> list[str]:
    """After an abort: every space of the route where an unsealed air-sensitive item sits in an
    atmosphere not in spec is brought back to inert gas by itself (antechambers by pump/purge cycles,
    the process chamber evacuated and back-filled), rather than left to wait for a person while the
    item degrades. Each attempt is recorded with its result; one that fails leaves the space isolated
    (its safe state) and says why. Returns the spaces restored."""
    restored: list[str] = []
    route = ctx.route
    for space in route.spaces:
        state = ctx.state()
        if state.spaces[space].safe_for_exposed or not exposed_in(space, state.items):
            continue
        items = [i.id for i in exposed_in(space, state.items)]
        before = state.spaces[space].atmosphere.value
        try:
            if space in route.chambers:
                await prepare_chamber(ctx, space)
            else:
                await purge_until_in_spec(ctx, space)
        except (ControllerError, TimeoutError, OSError) as exc:
            await make_safe(ctx.ctl.gate, space, user=ctx.user)
            detail = {"space": space, "items": items, "why": why, "from": before, "error": str(exc)}
            await ctx.record("restore_inert_failed", detail)
            continue
        after = ctx.state().spaces[space].atmosphere.value
        await ctx.record(
            "restored_inert", {"space": space, "items": items, "why": why, "from": before, "to": after}
        )
        restored.append(space)
    return restored


async def prepare_process(ctx: JobContext) -> None:
    """The (first) process chamber filled with the line's gas at atmosphere, like the inlet (DESIGN §1
    step 2)."""
    await prepare_chamber(ctx, ctx.route.process)


async def prepare_chamber(ctx: JobContext, process: str) -> None:
    """A process chamber filled with the line's gas at atmosphere, ready for a gate to open.

    A chamber the controller cannot show to be inert (no record of how it was filled: a restart, a
    chamber without H2O/O2 sensors) is evacuated through the turbo first, so that the fill makes it
    inert by dilution the classification can prove. The proof needs the pressure seen as the fill
    begins; a fill whose start the readings missed (a gauge late on a busy bus) proves nothing, and
    the chamber is evacuated and filled once more.
    """
    limits = ctx.config.limits
    gate = ctx.ctl.gate
    for _ in range(FILL_ATTEMPTS):
        space = ctx.state().spaces[process]
        at_room = space.pressure_pa is not None and space.pressure_pa >= limits.room_pressure_pa - 400.0
        if at_room and space.safe_for_exposed:
            return
        if not space.safe_for_exposed:
            report = await pump_to_base(
                gate,
                process,
                base_pressure_pa=limits.deposition_base_pressure_pa,
                clock=ctx.clock,
                timeout_s=ctx.config.sequence.base_pressure_timeout_s,
                user=ctx.user,
            )
            detail = {"step": "evacuate_before_fill", "chamber": process, **dataclasses.asdict(report)}
            await ctx.record("step_report", detail)
        await fill_with_gas(gate, process, clock=ctx.clock, timeout_s=ctx.step_timeout_s, user=ctx.user)


async def open_containers(ctx: JobContext) -> None:
    items = ctx.state().items
    if not items[ctx.items.container].sealed:
        return
    if not _meets_limits(ctx, ctx.route.inlet):  # drifted since the purge: purge again before opening
        await purge_until_in_spec(ctx, ctx.route.inlet)
    user = await _confirm(
        ctx, "open", f"open container {ctx.items.container} in {ctx.route.inlet} with the gloves"
    )
    await _seal(ctx, ctx.items.container, False, user, "glove work: container opened")


async def transfer_in(ctx: JobContext) -> None:
    r = ctx.route
    state = ctx.state()
    loaded = [ctx.items.base, *(i for i in ctx.items.targets.values() if i in state.items)]
    moving = [i for i in loaded if space_of(i, state.items) == r.inlet]  # a kept target is where it was
    if not moving:
        await _set_port(ctx, r.inlet_gate, False, "transfer in: gate closed")
        await park_inlet_container(ctx)
        return
    await _open_to_chamber(ctx, r.inlet_gate, r.process, "transfer in: open the inlet gate")
    for item in moving:
        await _move(ctx, item, r.process, ctx.user, "transfer in")
    await _set_port(ctx, r.inlet_gate, False, "transfer in: close the inlet gate")
    await park_inlet_container(ctx)


async def park_inlet_container(ctx: JobContext) -> None:
    """The inlet container, emptied into the chamber, stays where it is: as the job's storage container
    (reused, the electrode comes back into it) or parked, recorded with its place, until an outer door
    of its space next opens for a job and it is taken out with that job's glove work (`take_out`)."""
    box, state = ctx.items.container, ctx.state()
    if ctx.notes.get("parked") == box or box not in state.items or contents_of(box, state.items):
        return
    role = "storage" if ctx.items.reuses_container else "parked"
    await ctx.record("container_parked", {"container": box, "space": space_of(box, state.items), "as": role})
    ctx.notes["parked"] = box


def empty_containers(ctx: JobContext, space: str, keep: set[str]) -> list[str]:
    """The empty containers standing in `space` (inlet boxes emptied by earlier jobs), but `keep`."""
    items = ctx.state().items
    return [
        i.id
        for i in items.values()
        if i.is_container and i.location == space and i.id not in keep and not contents_of(i.id, items)
    ]


def _and_take_out(empty: list[str]) -> str:
    return (
        f", and take the empty container{'s' if len(empty) > 1 else ''} {', '.join(empty)} out"
        if empty
        else ""
    )


async def take_out(ctx: JobContext, empty: list[str], space: str, user: str) -> None:
    """The empty containers go out through the open outer door with the glove work that opened it (one
    confirmation for both), so empty boxes do not pile up in the line's inventory."""
    for box in empty:
        await _move(ctx, box, ROOM, user, f"empty container {box} out through the outer door of {space}")
        await ctx.record("container_out", {"container": box, "space": space, "by": user})


def _pump_down(base_pressure_pa: float, chamber: str) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        report = await pump_to_base(
            ctx.ctl.gate,
            chamber,
            base_pressure_pa=base_pressure_pa,
            clock=ctx.clock,
            timeout_s=ctx.config.sequence.base_pressure_timeout_s,
            user=ctx.user,
        )
        await ctx.record(
            "step_report", {"step": "pump_down", "chamber": chamber, **dataclasses.asdict(report)}
        )

    return run


def step_plan(ctx: JobContext, step: EtchStep | DepositStep) -> EtchPlan | LayerPlan:
    """The step's source, power and budget on this line (sequences.layer_plan); a step the line cannot
    run was refused when the batch started, so a refusal here is the line having changed since."""
    plans, refusals = plan_steps(ctx.recipe, ctx.config, ctx.route.chambers)
    plan = plans[ctx.recipe.steps.index(step)]
    if plan is None:
        raise UserError("; ".join(refusals) or f"{ctx.recipe.path}: no plan for {step}")
    return plan


def _etch(step: EtchStep) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        plan = step_plan(ctx, step)
        assert isinstance(plan, EtchPlan)
        report = await etch(
            ctx.ctl.gate,
            plan.chamber,
            gas=step.gas,
            substrate_temp_c=step.substrate_temp_c,
            duration_s=step.duration_s,
            process_pressure_pa=plan.process_pressure_pa,
            power_w=plan.power_w,
            source=plan.source,
            clock=ctx.clock,
            user=ctx.user,
        )
        await ctx.record(
            "step_report", {"step": "etch", "chamber": plan.chamber, **dataclasses.asdict(report)}
        )

    return run


def _deposit(step: DepositStep, phase: str) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        material = ctx.recipe.target(step.target).material
        target_nm = step.thickness_um * 1000.0

        async def opening(monitor: str, monitor_nm: float) -> None:
            opened = {"phase": phase, "layer": step.layer, "material": material, "monitor": monitor}
            ctx.notes["layer_open"] = {**opened, "monitor_nm": monitor_nm, "target_nm": target_nm}
            await ctx.record("layer_open", ctx.notes["layer_open"])  # a stop may land in this await

        try:
            report = await _deposit_layer(ctx, step, opening)
        except BaseException:
            opened = ctx.notes.pop("layer_open", None)
            if opened is not None:  # the shutters had opened: whatever the monitor gained is on it
                reading = reading_of(ctx.ctl.gate, str(opened["monitor"]), "thickness")
                await record_partial_layer(ctx, opened, None if reading is None else reading.value, "live")
            raise
        ctx.notes.pop("layer_open", None)
        _coat(ctx, material)
        plan = step_plan(ctx, step)
        planned = plan if isinstance(plan, LayerPlan) else None
        detail = {
            "step": "deposit", "phase": phase, "layer": step.layer, "method": step.method,
            "target": step.target, "material": material, "chamber": plan.chamber,
            "expected_s": planned.expected_s if planned else None,
            "budget_s": planned.budget_s if planned else None,
        }  # fmt: skip
        await ctx.record(
            "step_report",
            {**detail, "target_thickness_nm": target_nm, **dataclasses.asdict(report)},
        )

    return run


async def _deposit_layer(ctx: JobContext, step: DepositStep, opening: ShuttersOpening) -> DepositReport:
    plan = step_plan(ctx, step)
    assert isinstance(plan, LayerPlan)
    return await deposit(
        ctx.ctl.gate,
        plan.chamber,
        source=plan.source,
        material=ctx.recipe.target(step.target).material,
        power_w=plan.power_w,
        pulse_rate_hz=plan.pulse_rate_hz,
        assist_source=plan.assist_source,
        assist_power_w=plan.assist_power_w or 0.0,
        thickness_nm=step.thickness_um * 1000.0,
        substrate_temp_c=step.substrate_temp_c,
        process_pressure_pa=step.process_pressure_pa,
        clock=ctx.clock,
        timeout_s=plan.budget_s,
        user=ctx.user,
        on_open=opening,
    )


async def record_partial_layer(
    ctx: JobContext, opened: Mapping[str, Any], monitor_nm: float | None, source: str
) -> None:
    """A layer interrupted after its shutters opened is a layer: the electrode is recorded as carrying
    what the monitor gained since the opening (unknown when no later reading shows growth: the monitor
    is polled, the shutters were open), never as bare."""
    start = float(opened["monitor_nm"])
    gained = None if monitor_nm is None or not math.isfinite(monitor_nm) else max(0.0, monitor_nm - start)
    if gained == 0.0:
        gained = None  # a reading from before the growth reached it: unknown, never "nothing"
    _coat(ctx, str(opened["material"]))
    await ctx.record(
        "partial_layer",
        {
            "phase": opened.get("phase"),
            "layer": opened.get("layer"),
            "material": opened["material"],
            "thickness_nm": "unknown" if gained is None else round(gained, 2),
            "target_nm": opened.get("target_nm"),
            "measured": source,  # "live": the monitor as the layer stopped; "recorded": its last sample
        },
    )


# device, channel, since ts, until ts -> the newest value recorded in between
LastSample = Callable[[str, str, float, float], Awaitable[float | None]]


async def recover_partial_layer(
    ctx: JobContext, events: list[dict[str, Any]], phase: str, last_sample: LastSample
) -> None:
    """After a restart inside the deposit `phase`: what the interrupted layer left on the electrode is
    on record, from the monitor's last recorded sample since the shutters opened when the process
    died before it could say (kill -9, power cut)."""
    for event in reversed(events):
        detail = event["detail"] if isinstance(event["detail"], dict) else {}
        if detail.get("phase") != phase:
            continue
        if event["kind"] == "partial_layer":
            material = str(detail["material"])
            if not ctx.ctl.model.items[ctx.items.base].material.startswith(f"{material}/"):
                _coat(ctx, material)  # the coating's own record did not survive the stop: again
            return
        if event["kind"] == "layer_open":
            until = ctx.ctl.started_ts or time.time()  # later readings are this process's, not the layer's
            measured = await last_sample(str(detail["monitor"]), "thickness", float(event["ts"]), until)
            await record_partial_layer(ctx, detail, measured, "recorded")
            return


def _anneal(step: AnnealStep, chamber: str) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        report = await anneal(  # no cooling wait here: in vacuum it takes hours, the back-fill cools
            ctx.ctl.gate,
            chamber,
            temp_c=step.temp_c,
            duration_s=step.duration_s,
            clock=ctx.clock,
            user=ctx.user,
            cool_to_c=None,
        )
        await ctx.record("step_report", {"step": "anneal", "chamber": chamber, **dataclasses.asdict(report)})

    return run


async def fill_process(ctx: JobContext) -> None:
    """Back-fill the last chamber after the process, and let the substrate cool before it leaves."""
    await fill_and_cool(ctx, ctx.route.last)


async def fill_and_cool(ctx: JobContext, chamber: str) -> None:
    """Back-fill after the process, then let the substrate cool in the gas before anyone handles it."""
    await prepare_chamber(ctx, chamber)
    await wait_for(
        ctx.ctl.gate,
        lambda s: _cool(s.spaces[chamber].substrate_temp_c),
        ctx.plant_timeout(COOL_TIMEOUT_S),
        f"substrate in {chamber} below {HANDLING_TEMP_C:g} °C",
        clock=ctx.clock,
    )


async def prepare_outlet(ctx: JobContext) -> None:
    """The empty container the electrode leaves in goes into the outlet before the outlet is purged."""
    r, box = ctx.route, ctx.items.out_container
    state = ctx.state()
    if box in state.items and space_of(box, state.items) == r.outlet:
        await _set_port(ctx, r.outlet_door, False, "outlet: outer door closed")
        return
    await _at_room_pressure(ctx, r.outlet)
    await seal_exposed(ctx, r.outlet, "before the outlet's outer door opens")
    _register(ctx, box, ItemKind.CONTAINER, CONTAINER_MATERIAL, ROOM, False)
    await _set_port(ctx, r.outlet_door, True, "outlet: open the outer door")
    empty = empty_containers(ctx, r.outlet, keep={box})
    prompt = f"put the empty container {box} into {r.outlet}{_and_take_out(empty)}"
    user = await _confirm(ctx, "place_out_container", prompt)
    await _move(ctx, box, r.outlet, user, "outlet: container placed in advance")
    await take_out(ctx, empty, r.outlet, user)
    await _set_port(ctx, r.outlet_door, False, "outlet: close the outer door")
    ctx.notes.pop("outlet_purged", None)


async def purge_outlet(ctx: JobContext) -> None:
    if _meets_limits(ctx, ctx.route.outlet) and ctx.notes.get("outlet_purged"):
        return
    await purge_until_in_spec(ctx, ctx.route.outlet)
    ctx.notes["outlet_purged"] = True


async def transfer_out(ctx: JobContext) -> None:
    r, base = ctx.route, ctx.items.base
    state = ctx.state()
    if space_of(base, state.items) == r.outlet:
        await _set_port(ctx, r.outlet_gate, False, "transfer out: gate closed")
        return
    await _open_to_chamber(ctx, r.outlet_gate, r.last, "transfer out: open the outlet gate")
    await _move(ctx, base, r.outlet, ctx.user, "transfer out")
    await _set_port(ctx, r.outlet_gate, False, "transfer out: close the outlet gate")


async def seal(ctx: JobContext) -> None:
    box, base = ctx.items.out_container, ctx.items.base
    state = ctx.state()
    if state.items[base].location == box and state.items[box].sealed:
        return
    user = await _confirm(ctx, "seal", f"put {base} into container {box} and close it")
    await _move(ctx, base, box, user, "glove work: electrode into its container")
    await _seal(ctx, box, True, user, "glove work: container closed")


async def unload(ctx: JobContext) -> None:
    r, box = ctx.route, ctx.items.out_container
    state = ctx.state()
    if space_of(box, state.items) == ROOM:
        await _set_port(ctx, r.outlet_door, False, "unload: outer door closed")
        return
    await _at_room_pressure(ctx, r.outlet)
    await seal_exposed(ctx, r.outlet, "before the outlet's outer door opens")
    await _set_port(ctx, r.outlet_door, True, "unload: open the outer door")
    empty = empty_containers(ctx, r.outlet, keep={box})
    user = await _confirm(
        ctx, "unload", f"take the sealed container {box} out of {r.outlet}{_and_take_out(empty)}"
    )
    await _move(ctx, box, ROOM, user, "unload: sealed container out through the outer door")
    await take_out(ctx, empty, r.outlet, user)
    await _set_port(ctx, r.outlet_door, False, "unload: close the outer door")


# -- from one deposition system to the next ---------------------------------------------------------


def _purge_transfer(passage: Passage) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        key = f"{passage.transfer}_purged"
        if _meets_limits(ctx, passage.transfer) and ctx.notes.get(key):
            return
        await purge_until_in_spec(ctx, passage.transfer)
        ctx.notes[key] = True

    return run


def _leave(passage: Passage) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        if electrode_space(ctx) == passage.leaves:
            await fill_and_cool(ctx, passage.leaves)

    return run


def _enter(passage: Passage) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        await prepare_chamber(ctx, passage.enters)

    return run


def _travelling(ctx: JobContext, passage: Passage) -> list[str]:
    """The electrode and the targets whose layers are deposited beyond the chamber left."""
    state = ctx.state()
    chambers = ctx.route.chambers
    beyond = chambers[chambers.index(passage.leaves) + 1 :]
    where = target_chambers(ctx.recipe, ctx.config, chambers)
    targets = [i for t, i in ctx.items.targets.items() if where.get(t) in beyond and i in state.items]
    return [ctx.items.base, *targets]


def _pass_through(passage: Passage) -> PhaseBody:
    """Through the intermediate space: the gate behind closes before the one ahead opens, so the two
    systems never share their gas, and each gate opens only when the gate's interlocks allow it
    (both sides inert in spec, pressures matched)."""

    async def run(ctx: JobContext) -> None:
        p = passage
        items = ctx.state().items
        travelling = [i for i in _travelling(ctx, p) if space_of(i, items) in (p.leaves, p.transfer)]
        if not travelling:
            await _set_port(ctx, p.enter_gate, False, f"passage: {p.enter_gate} closed")
            return
        if not _meets_limits(ctx, p.transfer):  # drifted since its purge: purge again first
            await purge_until_in_spec(ctx, p.transfer)
        leaving = [i for i in travelling if space_of(i, items) == p.leaves]
        if leaving:
            why = f"passage: open {p.leave_gate} into {p.transfer}"
            await _open_to_chamber(ctx, p.leave_gate, p.leaves, why)
            for item in leaving:
                await _move(ctx, item, p.transfer, ctx.user, f"passage: {p.leaves} into {p.transfer}")
        await _set_port(ctx, p.leave_gate, False, f"passage: close {p.leave_gate}")
        await _open_to_chamber(ctx, p.enter_gate, p.enters, f"passage: open {p.enter_gate} into {p.enters}")
        for item in travelling:
            await _move(ctx, item, p.enters, ctx.user, f"passage: {p.transfer} into {p.enters}")
        await _set_port(ctx, p.enter_gate, False, f"passage: close {p.enter_gate}")

    return run


def passage_phases(passage: Passage, *, leaving: bool = True) -> list[Phase]:
    """The electrode from one system into the next; `leaving` False: it is in the transfer chamber."""
    p = passage
    leave = Phase(f"leave_{p.leaves}", f"fill {p.leaves} and cool", True, 600.0, _leave(p))
    through = f"through {p.transfer} into {p.enters}"
    return [
        *([leave] if leaving else []),
        Phase(f"purge_{p.transfer}", f"pump/purge {p.transfer}", True, PURGE_S, _purge_transfer(p)),
        Phase(f"prepare_{p.enters}", f"fill {p.enters}", True, 300.0, _enter(p)),
        Phase(f"pass_{p.transfer}", through, True, 2 * TRANSFER_S, _pass_through(p)),
    ]


# -- plans -------------------------------------------------------------------------------------------

PURGE_S = 600.0
TRANSFER_S = 120.0
GLOVE_S = 300.0


def _layer_estimates(recipe: Recipe, config: LineConfig | None, route: Route | None) -> dict[int, float]:
    """Expected plant seconds per deposit step on `config` (progress only; none without a line)."""
    if config is None or route is None:
        return {}
    plans, _ = plan_steps(recipe, config, route.chambers)
    return {i: p.expected_s for i, p in enumerate(plans) if isinstance(p, LayerPlan)}


def plan(recipe: Recipe, config: LineConfig | None = None) -> list[Phase]:
    """Every phase of the job on `config`'s route (without a line: one chamber named "process")."""
    route = route_of(config) if config is not None else None
    expected = _layer_estimates(recipe, config, route)
    chambers = route.chambers if route is not None else ("process",)
    where = step_chambers(recipe, config, chambers) if config is not None else ["process"] * len(recipe.steps)
    passages = {p.enters: p for p in route.passages} if route is not None else {}
    at = chambers[0]
    phases = [
        Phase("load", "load through the outer door", True, GLOVE_S, load),
        Phase("purge_inlet", "pump/purge the inlet", True, PURGE_S, purge_inlet),
        Phase("prepare_process", "fill the process chamber", True, 300.0, prepare_process),
        Phase("open_containers", "open the containers (gloves)", True, GLOVE_S, open_containers),
        Phase("transfer_in", "transfer into the process chamber", True, TRANSFER_S, transfer_in),
    ]
    for n, step in enumerate(recipe.steps, start=1):
        chamber = where[n - 1] or at  # a step the line cannot place is refused at its start
        while at != chamber and chambers.index(at) < chambers.index(chamber):
            passage = passages[chambers[chambers.index(at) + 1]]
            phases += passage_phases(passage)
            at = passage.enters
        match step:
            case EtchStep():
                phases.append(
                    Phase(f"pump_down_{n}", "pump to base pressure", True, 1800.0, _pump_down(1.33e-4, at))
                )
                phases.append(
                    Phase(f"etch_{n}", f"etch ({step.gas})", False, step.duration_s + 300.0, _etch(step))
                )
            case DepositStep():
                title = f"pump to {step.base_pressure_pa:.1e} Pa"
                phases.append(
                    Phase(f"pump_down_{n}", title, True, 1800.0, _pump_down(step.base_pressure_pa, at))
                )
                estimate = expected.get(n - 1, step.thickness_um * 1000.0 / 0.3) + 300.0
                title = f"deposit {step.layer} by {step.method.replace('_', ' ')}"
                phases.append(Phase(f"deposit_{n}", title, False, estimate, _deposit(step, f"deposit_{n}")))
            case AnnealStep():
                title = f"anneal at {step.temp_c:g} °C"
                phases.append(Phase(f"anneal_{n}", title, False, step.duration_s + 900.0, _anneal(step, at)))
    while route is not None and at != route.last:  # nothing more to deposit: on through to the outlet
        passage = passages[chambers[chambers.index(at) + 1]]
        phases += passage_phases(passage)
        at = passage.enters
    return phases + unload_phases()


def unload_phases() -> list[Phase]:
    return [
        Phase("fill_process", "fill the process chamber", True, 300.0, fill_process),
        Phase("prepare_outlet", "place the outlet container", True, GLOVE_S, prepare_outlet),
        Phase("purge_outlet", "pump/purge the outlet", True, PURGE_S, purge_outlet),
        Phase("transfer_out", "transfer into the outlet", True, TRANSFER_S, transfer_out),
        Phase("seal", "seal the electrode (gloves)", True, GLOVE_S, seal),
        Phase("unload", "unload through the outer door", True, GLOVE_S, unload),
    ]


async def return_to_room(ctx: JobContext) -> None:
    """A job that never reached the process chamber leaves the way it came, resealed."""
    r, items = ctx.route, ctx.items
    state = ctx.state()
    if space_of(items.container, state.items) == ROOM:
        return
    if not state.items[items.container].sealed or state.items[items.base].location != items.container:
        user = await _confirm(ctx, "reseal", f"put {items.base} back into {items.container} and close it")
        await _move(ctx, items.base, items.container, user, "reject: back into its container")
        await _seal(ctx, items.container, True, user, "reject: container closed")
    await _at_room_pressure(ctx, r.inlet)
    await seal_exposed(ctx, r.inlet, "reject: before the inlet's outer door opens")
    await _set_port(ctx, r.inlet_door, True, "reject: open the inlet outer door")
    empty = empty_containers(ctx, r.inlet, keep={items.container})
    prompt = f"take the closed container {items.container} out of {r.inlet}{_and_take_out(empty)}"
    user = await _confirm(ctx, "take_back", prompt)
    await _move(ctx, items.container, ROOM, user, "reject: container out through the inlet")
    await take_out(ctx, empty, r.inlet, user)
    await _set_port(ctx, r.inlet_door, False, "reject: close the inlet outer door")


def electrode_space(ctx: JobContext) -> str | None:
    """Where the job's electrode is now (None when it was never registered: nothing to take out)."""
    state = ctx.state()
    return space_of(ctx.items.base, state.items) if ctx.items.base in state.items else None


def reject_plan(route: Route, where: str | None) -> list[Phase]:
    """The way out from `where` the electrode was when it was rejected.

    A pure function of the route and that space, both on record: a resume rebuilds the very plan
    that wrote the checkpoint, whatever has moved since. Its phases have names of their own
    (`reject_...`), so a reject-path checkpoint can never be mistaken for one of the normal plan's.
    Every phase checks where things already are, so running one again is harmless.
    """
    if where is None or where == ROOM:
        return []
    if where == route.inlet:  # also one antechamber serving as both: back into its own box, and out
        return [Phase("reject_return", "return to the room through the inlet", True, GLOVE_S, return_to_room)]
    phases: list[Phase] = []
    ahead = False  # the electrode leaves a chamber behind it forwards: the outlet is at the far end
    for passage in route.passages:
        if where == passage.leaves:
            ahead = True
        if ahead or where == passage.transfer:
            phases += passage_phases(passage, leaving=ahead)
            ahead = True
    phases += unload_phases()
    if where == route.outlet:
        phases = [p for p in phases if p.name not in ("fill_process", "transfer_out")]
    return [dataclasses.replace(p, name=f"reject_{p.name}", title=f"reject: {p.title}") for p in phases]


def _coat(ctx: JobContext, layer_material: str) -> None:
    """The electrode now carries the layer: the gate and the ledger judge it as the stack from here."""
    base = ctx.ctl.model.items[ctx.items.base]
    stack = f"{layer_material}/{base.material}"
    ctx.ctl.model.coat(base.id, stack, user=ctx.user, origin="sequence")
    ctx.ctl.ledger.coated(ctx.state(), base.id, time.time())


def _cool(temp_c: float | None) -> bool:
    return temp_c is not None and temp_c <= HANDLING_TEMP_C  # unknown is not cool
