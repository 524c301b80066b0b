"""What a production job's phases work on: the `JobContext` (the line, the recipe, the job's items and
route, the plant clock, the operator desk, the job's record) and the `Phase`, the unit a plan is made of
and the job runner checkpoints.

It stands apart from everything that acts so that the operations (sequences.job_operations), the
phases (sequences.production), the passages between deposition systems (sequences.passage_phases) and
the plans (sequences.job_plans) share one definition of a job and of a phase without importing each
other. The estimates of the phases that recur in a plan live here with `Phase`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from controller.config.line_config import LineConfig
from controller.line.controller import LineController
from controller.line.state import LineState
from sequences.batch_store import JobItems
from sequences.line_route import Route
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sequences.recipe import Recipe

ROOM = "room"
MIN_WALL_WAIT_S = 5.0

Recorder = Callable[[str, dict[str, Any]], Awaitable[None]]


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


# plant seconds a phase is expected to take, for progress only
PURGE_S = 600.0
TRANSFER_S = 120.0
GLOVE_S = 300.0
