"""The plans of a production job: which phases run, in which order, for a recipe on a line's route, and
the way out of the line from wherever the electrode is.

`plan` is the normal job (the phases of sequences.production, with the passages of
sequences.passage_phases wherever the route crosses from one deposition system to the next) and
`unload_phases` its end. `reject_plan` is the path out of the line used after a fault (the "skip"
policy) and after an interruption that spoiled the job. A plan is a pure function of what is on record
(the recipe, the line, the route, the space the electrode was rejected in), so a resume rebuilds the
very plan that wrote the checkpoint.
"""

from __future__ import annotations

import dataclasses

from controller.config.line_config import LineConfig
from sequences.job_context import GLOVE_S, PURGE_S, ROOM, TRANSFER_S, Phase
from sequences.layer_plan import LayerPlan, plan_steps, step_chambers
from sequences.line_route import Route, route_of
from sequences.passage_phases import passage_phases
from sequences.production import (
    annealing,
    depositing,
    etching,
    fill_process,
    load,
    open_containers,
    prepare_outlet,
    prepare_process,
    pumping_down,
    purge_inlet,
    purge_outlet,
    return_to_room,
    seal,
    transfer_in,
    transfer_out,
    unload,
)
from sequences.recipe import AnnealStep, DepositStep, EtchStep, Recipe


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
                    Phase(f"pump_down_{n}", "pump to base pressure", True, 1800.0, pumping_down(1.33e-4, at))
                )
                phases.append(
                    Phase(f"etch_{n}", f"etch ({step.gas})", False, step.duration_s + 300.0, etching(step))
                )
            case DepositStep():
                title = f"pump to {step.base_pressure_pa:.1e} Pa"
                phases.append(
                    Phase(f"pump_down_{n}", title, True, 1800.0, pumping_down(step.base_pressure_pa, at))
                )
                estimate = expected.get(n - 1, step.thickness_um * 1000.0 / 0.3) + 300.0
                title = f"deposit {step.layer} by {step.method.replace('_', ' ')}"
                phases.append(Phase(f"deposit_{n}", title, False, estimate, depositing(step, f"deposit_{n}")))
            case AnnealStep():
                title = f"anneal at {step.temp_c:g} °C"
                phases.append(
                    Phase(f"anneal_{n}", title, False, step.duration_s + 900.0, annealing(step, at))
                )
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
