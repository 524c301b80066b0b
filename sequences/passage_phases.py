"""From one deposition system to the next: the phases that take the electrode through the
intermediate inert space of a line with two deposition systems (sequences.line_route).

The chamber it leaves is filled with the gas and the substrate cooled, the transfer chamber is purged
until in spec, the next chamber is filled, and the two gate valves open one after the other, each only
when the gate allows it, so that the two systems never share their gas. They are apart from the phases
of one chamber (sequences.production) because the plan and the reject path (sequences.job_plans) put
them wherever the route crosses from one system to the next.
"""

from __future__ import annotations

from controller.line.items import space_of
from sequences.job_context import PURGE_S, TRANSFER_S, JobContext, Phase, PhaseBody
from sequences.job_operations import electrode_space, move, open_to_chamber, prepare_chamber, set_port
from sequences.layer_plan import target_chambers
from sequences.line_route import Passage
from sequences.production import fill_and_cool, meets_limits, purge_until_in_spec


def _purge_transfer(passage: Passage) -> PhaseBody:
    async def run(ctx: JobContext) -> None:
        key = f"{passage.transfer}_purged"
        if meets_limits(ctx, passage.transfer) and ctx.notes.get(key):
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
            await set_port(ctx, p.enter_gate, False, f"passage: {p.enter_gate} closed")
            return
        if not meets_limits(ctx, p.transfer):  # drifted since its purge: purge again first
            await purge_until_in_spec(ctx, p.transfer)
        leaving = [i for i in travelling if space_of(i, items) == p.leaves]
        if leaving:
            why = f"passage: open {p.leave_gate} into {p.transfer}"
            await open_to_chamber(ctx, p.leave_gate, p.leaves, why)
            for item in leaving:
                await move(ctx, item, p.transfer, ctx.user, f"passage: {p.leaves} into {p.transfer}")
        await set_port(ctx, p.leave_gate, False, f"passage: close {p.leave_gate}")
        await open_to_chamber(ctx, p.enter_gate, p.enters, f"passage: open {p.enter_gate} into {p.enters}")
        for item in travelling:
            await move(ctx, item, p.enters, ctx.user, f"passage: {p.transfer} into {p.enters}")
        await set_port(ctx, p.enter_gate, False, f"passage: close {p.enter_gate}")

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
