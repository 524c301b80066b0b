"""The small operations a production job's phases are made of, each safe to repeat.

Ask the operator for glove work (a confirmation carried over from an interrupted attempt is used once
instead), open or close a door or a gate and wait for its limit switches, move an item, open or close
a container, seal what lies exposed before an outer door opens, bring an antechamber to room pressure,
register the job's items, fill a process chamber so that a gate may open to it, say where the
electrode is. Each checks where things already are before it acts: that is what lets the job runner
run a repeatable phase (sequences.production) again from its start. Everything goes through the
command gate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable

from controller.errors import ControllerError
from controller.line.actions import MoveItem, SetContainer, SetPort, SetValve, ValveName
from controller.line.interlocks import check
from controller.line.items import ItemKind, exposed_in, space_of
from sequences.chamber_pressure import fill_with_gas, pump_to_base
from sequences.job_context import JobContext
from sequences.layer_plan import target_chambers
from sequences.steps import StepFailed, StepTimeout, submit, wait_for

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 8 * 3600.0  # plant seconds an operator prompt may stay open before it is a fault
PORT_TRAVEL_S = 60.0  # plant seconds a door or gate valve may take to reach its end position
FILL_ATTEMPTS = 2  # evacuate-and-fill rounds a chamber gets to be shown inert before a gate asks for it
READINGS_SETTLE_S = 15.0  # wall seconds an opening waits for the interlocks to allow it before it asks


async def confirm(ctx: JobContext, key: str, prompt: str) -> str:
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


async def set_port(ctx: JobContext, port: str, open_: bool, why: str) -> None:
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


async def open_to_chamber(ctx: JobContext, port: str, chamber: str, why: str) -> None:
    """Open a gate to a process chamber filled for it. A chamber without H2O/O2 sensors is inert only by
    the record of how it was filled, and a valve reading lost for a moment counts as open to air and
    ends that record: then the chamber is filled again (evacuated first) and the gate asked once more."""
    for last in (False, True):
        await prepare_chamber(ctx, chamber)  # a no-op while the record proves it inert
        try:
            await set_port(ctx, port, True, why)
            return
        except StepFailed:
            if last:
                raise


async def move(ctx: JobContext, item: str, to: str, user: str, why: str) -> None:
    items = ctx.state().items
    if item not in items or items[item].location == to:
        return
    await submit(ctx.ctl.gate, MoveItem(item, to), user, why)


async def set_sealed(ctx: JobContext, container: str, sealed: bool, user: str, why: str) -> None:
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
    user = await confirm(ctx, f"seal_in_{space}", f"{why}: put {names} into container {box} and close it")
    for item in exposed:
        await move(ctx, item, box, user, f"glove work: {item} into {box} before the outer door opens")
    await set_sealed(ctx, box, True, user, f"glove work: {box} closed before the outer door opens")


def _box_in(ctx: JobContext, space: str) -> str | None:
    """A container in `space` to seal exposed items in: the job's own first, then any other there."""
    items = ctx.state().items
    here = [i.id for i in items.values() if i.is_container and i.location == space]
    for box in (ctx.items.container, ctx.items.out_container):
        if box in here:
            return box
    return here[0] if here else None


async def at_room_pressure(ctx: JobContext, space: str) -> None:
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


def register(ctx: JobContext, item_id: str, kind: ItemKind, material: str, where: str, sealed: bool) -> None:
    model = ctx.ctl.model
    if item_id in model.items:
        return
    item = model.register(item_id, kind, material, where, sealed=sealed, user=ctx.user, origin="sequence")
    if not item.is_container:
        ctx.ctl.ledger.registered(ctx.state(), item.id, time.time())


async def choose_targets(ctx: JobContext) -> dict[str, str]:
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


def electrode_space(ctx: JobContext) -> str | None:
    """Where the job's electrode is now (None when it was never registered: nothing to take out)."""
    state = ctx.state()
    return space_of(ctx.items.base, state.items) if ctx.items.base in state.items else None
