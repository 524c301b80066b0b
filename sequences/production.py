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

Where the parts live: what a job is and what a phase is (sequences.job_context); the small
operations the phases are made of, each safe to repeat (sequences.job_operations); the phases
themselves, here; the passage from one deposition system to the next (sequences.passage_phases); the
plans that put the phases in order for a recipe on a line, `reject_plan` among them
(sequences.job_plans).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from controller.errors import ControllerError, UserError
from controller.line.actions import SetValve
from controller.line.items import ItemKind, contents_of, exposed_in, space_of
from sequences.chamber_pressure import pump_to_base
from sequences.chamber_readings import reading_of
from sequences.deposition_steps import DepositReport, ShuttersOpening, anneal, deposit, etch
from sequences.job_context import ROOM, JobContext, PhaseBody
from sequences.job_operations import (
    at_room_pressure,
    choose_targets,
    confirm,
    move,
    open_to_chamber,
    prepare_chamber,
    register,
    seal_exposed,
    set_port,
    set_sealed,
)
from sequences.layer_plan import EtchPlan, LayerPlan, plan_steps
from sequences.recipe import AnnealStep, DepositStep, EtchStep
from sequences.recipe_limits import recipe_shortfall
from sequences.safe_state import make_safe
from sequences.steps import pump_purge as pump_purge_cycles
from sequences.steps import submit, wait_for

CONTAINER_MATERIAL = "SUS"  # the transfer boxes are stainless steel
PURGE_SETTLE_S = 30.0  # plant seconds after a purge back-fill before its atmosphere is judged
HANDLING_TEMP_C = 40.0  # the electrode leaves the chamber only below this (DESIGN §2: "unheated")
COOL_TIMEOUT_S = 4 * 3600.0


class PurgeNotConverging(ControllerError):
    """More pump/purge cycles are not drying the antechamber: a leak, a wet load or a spent bottle."""


# -- the phases --------------------------------------------------------------------------------------


async def load(ctx: JobContext) -> None:
    r, items = ctx.route, ctx.items
    state = ctx.state()
    if items.container in state.items and space_of(items.container, state.items) != ROOM:
        await set_port(ctx, r.inlet_door, False, "load: outer door closed")
        return  # loaded before an interruption
    await at_room_pressure(ctx, r.inlet)
    register(ctx, items.container, ItemKind.CONTAINER, CONTAINER_MATERIAL, ROOM, True)
    register(ctx, items.base, ItemKind.BASE_MATERIAL, ctx.recipe.base.material, items.container, False)
    for item_id, material in (await choose_targets(ctx)).items():
        register(ctx, item_id, ItemKind.TARGET, material, items.container, False)
    await set_port(ctx, r.inlet_door, True, "load: open the outer door")
    empty = empty_containers(ctx, r.inlet, keep={items.container})
    prompt = f"put the closed container {items.container} into {r.inlet}{_and_take_out(empty)}"
    user = await confirm(ctx, "load", prompt)
    await move(ctx, items.container, r.inlet, user, "load: container through the outer door")
    await take_out(ctx, empty, r.inlet, user)
    await set_port(ctx, r.inlet_door, False, "load: close the outer door")


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


def meets_limits(ctx: JobContext, space: str) -> bool:
    state = ctx.state().spaces[space]
    return state.safe_for_exposed and recipe_shortfall(state, ctx.recipe, ctx.config.limits) is None


async def purge_inlet(ctx: JobContext) -> None:
    if meets_limits(ctx, ctx.route.inlet) and ctx.notes.get("inlet_purged"):
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


async def open_containers(ctx: JobContext) -> None:
    items = ctx.state().items
    if not items[ctx.items.container].sealed:
        return
    if not meets_limits(ctx, ctx.route.inlet):  # drifted since the purge: purge again before opening
        await purge_until_in_spec(ctx, ctx.route.inlet)
    user = await confirm(
        ctx, "open", f"open container {ctx.items.container} in {ctx.route.inlet} with the gloves"
    )
    await set_sealed(ctx, ctx.items.container, False, user, "glove work: container opened")


async def transfer_in(ctx: JobContext) -> None:
    r = ctx.route
    state = ctx.state()
    loaded = [ctx.items.base, *(i for i in ctx.items.targets.values() if i in state.items)]
    moving = [i for i in loaded if space_of(i, state.items) == r.inlet]  # a kept target is where it was
    if not moving:
        await set_port(ctx, r.inlet_gate, False, "transfer in: gate closed")
        await park_inlet_container(ctx)
        return
    await open_to_chamber(ctx, r.inlet_gate, r.process, "transfer in: open the inlet gate")
    for item in moving:
        await move(ctx, item, r.process, ctx.user, "transfer in")
    await set_port(ctx, r.inlet_gate, False, "transfer in: close the inlet gate")
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
        await move(ctx, box, ROOM, user, f"empty container {box} out through the outer door of {space}")
        await ctx.record("container_out", {"container": box, "space": space, "by": user})


def pumping_down(base_pressure_pa: float, chamber: str) -> PhaseBody:
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


def etching(step: EtchStep) -> PhaseBody:
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


def depositing(step: DepositStep, phase: str) -> PhaseBody:
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


def annealing(step: AnnealStep, chamber: str) -> PhaseBody:
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
        await set_port(ctx, r.outlet_door, False, "outlet: outer door closed")
        return
    await at_room_pressure(ctx, r.outlet)
    await seal_exposed(ctx, r.outlet, "before the outlet's outer door opens")
    register(ctx, box, ItemKind.CONTAINER, CONTAINER_MATERIAL, ROOM, False)
    await set_port(ctx, r.outlet_door, True, "outlet: open the outer door")
    empty = empty_containers(ctx, r.outlet, keep={box})
    prompt = f"put the empty container {box} into {r.outlet}{_and_take_out(empty)}"
    user = await confirm(ctx, "place_out_container", prompt)
    await move(ctx, box, r.outlet, user, "outlet: container placed in advance")
    await take_out(ctx, empty, r.outlet, user)
    await set_port(ctx, r.outlet_door, False, "outlet: close the outer door")
    ctx.notes.pop("outlet_purged", None)


async def purge_outlet(ctx: JobContext) -> None:
    if meets_limits(ctx, ctx.route.outlet) and ctx.notes.get("outlet_purged"):
        return
    await purge_until_in_spec(ctx, ctx.route.outlet)
    ctx.notes["outlet_purged"] = True


async def transfer_out(ctx: JobContext) -> None:
    r, base = ctx.route, ctx.items.base
    state = ctx.state()
    if space_of(base, state.items) == r.outlet:
        await set_port(ctx, r.outlet_gate, False, "transfer out: gate closed")
        return
    await open_to_chamber(ctx, r.outlet_gate, r.last, "transfer out: open the outlet gate")
    await move(ctx, base, r.outlet, ctx.user, "transfer out")
    await set_port(ctx, r.outlet_gate, False, "transfer out: close the outlet gate")


async def seal(ctx: JobContext) -> None:
    box, base = ctx.items.out_container, ctx.items.base
    state = ctx.state()
    if state.items[base].location == box and state.items[box].sealed:
        return
    user = await confirm(ctx, "seal", f"put {base} into container {box} and close it")
    await move(ctx, base, box, user, "glove work: electrode into its container")
    await set_sealed(ctx, box, True, user, "glove work: container closed")


async def unload(ctx: JobContext) -> None:
    r, box = ctx.route, ctx.items.out_container
    state = ctx.state()
    if space_of(box, state.items) == ROOM:
        await set_port(ctx, r.outlet_door, False, "unload: outer door closed")
        return
    await at_room_pressure(ctx, r.outlet)
    await seal_exposed(ctx, r.outlet, "before the outlet's outer door opens")
    await set_port(ctx, r.outlet_door, True, "unload: open the outer door")
    empty = empty_containers(ctx, r.outlet, keep={box})
    user = await confirm(
        ctx, "unload", f"take the sealed container {box} out of {r.outlet}{_and_take_out(empty)}"
    )
    await move(ctx, box, ROOM, user, "unload: sealed container out through the outer door")
    await take_out(ctx, empty, r.outlet, user)
    await set_port(ctx, r.outlet_door, False, "unload: close the outer door")


async def return_to_room(ctx: JobContext) -> None:
    """A job that never reached the process chamber leaves the way it came, resealed."""
    r, items = ctx.route, ctx.items
    state = ctx.state()
    if space_of(items.container, state.items) == ROOM:
        return
    if not state.items[items.container].sealed or state.items[items.base].location != items.container:
        user = await confirm(ctx, "reseal", f"put {items.base} back into {items.container} and close it")
        await move(ctx, items.base, items.container, user, "reject: back into its container")
        await set_sealed(ctx, items.container, True, user, "reject: container closed")
    await at_room_pressure(ctx, r.inlet)
    await seal_exposed(ctx, r.inlet, "reject: before the inlet's outer door opens")
    await set_port(ctx, r.inlet_door, True, "reject: open the inlet outer door")
    empty = empty_containers(ctx, r.inlet, keep={items.container})
    prompt = f"take the closed container {items.container} out of {r.inlet}{_and_take_out(empty)}"
    user = await confirm(ctx, "take_back", prompt)
    await move(ctx, items.container, ROOM, user, "reject: container out through the inlet")
    await take_out(ctx, empty, r.inlet, user)
    await set_port(ctx, r.inlet_door, False, "reject: close the inlet outer door")


def _coat(ctx: JobContext, layer_material: str) -> None:
    """The electrode now carries the layer: the gate and the ledger judge it as the stack from here."""
    base = ctx.ctl.model.items[ctx.items.base]
    stack = f"{layer_material}/{base.material}"
    ctx.ctl.model.coat(base.id, stack, user=ctx.user, origin="sequence")
    ctx.ctl.ledger.coated(ctx.state(), base.id, time.time())


def _cool(temp_c: float | None) -> bool:
    return temp_c is not None and temp_c <= HANDLING_TEMP_C  # unknown is not cool
