"""Plant time for procedures: recipes speak plant seconds, the controller lives in wall seconds.

On a real plant the two are the same. The simulated line can run faster than real time (SimLine's
speed factor), while the controller, its poller and the gate keep real time; a step that waits "300 s
of heating" must then wait 1 s of wall time at 300x, and a timeout meant as "10 min of plant time"
must not expire after 2 s. Steps therefore take a `PlantClock` and convert at the boundary.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlantClock:
    """speed = plant seconds per wall second (1.0 on a real plant, the SimLine speed in simulation)."""

    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0.0:  # written so that NaN is refused too
            raise ValueError(f"plant clock speed must be > 0, got {self.speed!r}")

    def wall_s(self, plant_s: float) -> float:
        return plant_s / self.speed

    def plant_s(self, wall_s: float) -> float:
        return wall_s * self.speed

    async def sleep(self, plant_s: float) -> None:
        await asyncio.sleep(max(0.0, self.wall_s(plant_s)))
