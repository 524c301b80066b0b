"""Plant time for procedures: recipes speak plant seconds, the controller lives in wall seconds.

On a real plant the two are the same. The simulated line can run faster than real time (SimLine's
speed factor), while the controller, its poller and the gate keep real time; a step that waits "300 s
of heating" must then wait 1 s of wall time at 300x, and a timeout meant as "10 min of plant time"
must not expire after 2 s. Steps therefore take a `PlantClock` and convert at the boundary.

A simulated plant in the same process lends its own clock (`source`): that clock slows down when the
host cannot keep the event loop running (see `sim_hardware.plant.clock`), and deadlines and holds
measured on it stay true to the plant the controller could observe. Without a source, plant seconds
are wall seconds times `speed`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_SLEEP_S = 0.001  # wall: a plant clock that crawls is polled, never spun on


@dataclass(frozen=True, slots=True)
class PlantClock:
    """speed = plant seconds per wall second (1.0 on a real plant, the SimLine speed in simulation);
    source = the simulated plant's clock in plant seconds, when it runs in this process."""

    speed: float = 1.0
    source: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.speed > 0.0:  # written so that NaN is refused too
            raise ValueError(f"plant clock speed must be > 0, got {self.speed!r}")

    def wall_s(self, plant_s: float) -> float:
        return plant_s / self.speed

    def plant_s(self, wall_s: float) -> float:
        return wall_s * self.speed

    def now_s(self) -> float:
        """Plant seconds on an arbitrary origin, never decreasing."""
        return self.source() if self.source is not None else time.monotonic() * self.speed

    async def sleep(self, plant_s: float) -> None:
        end = self.now_s() + plant_s
        while (left := end - self.now_s()) > 0.0:  # noqa: ASYNC110 - a clock is polled, not signalled
            await asyncio.sleep(max(MIN_SLEEP_S, self.wall_s(left)))


WALL = PlantClock(1.0)  # wall seconds, for waits whose reason is real time (poll latency, a reply)


class PlantStopwatch:
    def __init__(self, clock: PlantClock) -> None:
        self.clock = clock
        self.start = clock.now_s()

    def plant_s(self) -> float:
        return self.clock.now_s() - self.start
