"""Virtual time for the plant, and the background task that keeps the plant on it.

`VirtualClock`: virtual seconds = start + speed × real (monotonic) seconds elapsed. Changing the
speed or pausing re-anchors the clock, so virtual time never jumps.

While a runner keeps the plant on it, the clock is *governed*: it advances at most `stride_s` real
seconds' worth past the runner's last beat. A host too busy to run the event loop (a loaded test
machine, a laptop waking up) then slows the plant down instead of letting it run on unseen: the
controller, reading the same clock for its plant-time deadlines, sees the plant it can observe, and
a heater's 3600 plant seconds are not spent while nobody could poll it. The real seconds lost that
way are counted (`lost_real_s`); a real plant has no such clock and the controller's deadlines are
wall time there.

`PlantRunner(plant, clock, real_step_s=0.05)`: every `real_step_s` real seconds it advances the
plant to the clock's virtual time. It is the only asyncio in the plant. It is supervised: an
exception inside the plant ends the task, is logged, kept in `error`, and raised again by `stop()`
(and by `check()`); `stop()` always cancels and awaits the task so nothing leaks. If the plant
cannot keep up (a huge speed factor on a slow machine) the runner advances at most
`max_advance_per_tick_s` per tick and lets the rest of virtual time go, with a warning, rather than
falling ever further behind.

`catch_up()` advances the plant to the clock's now between ticks, for a device that is about to be
read or commanded: the simulated line calls it before every request, so at high plant speed a
reading is never a tick old and a command never acts from before it was sent. It does nothing while
the plant is less than `catch_up_after_s` (10 plant s) behind: each advance costs a sub-step (about
0.3 ms), and the line's devices are asked hundreds of times a wall second, so catching up on every
request would take a third of the event loop the controller shares; 10 plant s is 10 ms at 1000x.
A failure inside the plant is kept in `error` exactly as one inside the task is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

log = logging.getLogger(__name__)


class Advanceable(Protocol):
    time_s: float

    def advance(self, dt_s: float) -> None: ...


class VirtualClock:
    def __init__(
        self,
        speed: float = 1.0,
        *,
        start_s: float = 0.0,
        real_time: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._real_time = real_time
        self._speed = speed
        self._anchor_virtual_s = start_s
        self._anchor_real_s = real_time()
        self._paused = False
        self._stride_s: float | None = None
        self.lost_real_s = 0.0

    def now_s(self) -> float:
        """Virtual seconds now (never decreasing)."""
        if self._paused:
            return self._anchor_virtual_s
        elapsed = self._real_time() - self._anchor_real_s
        if self._stride_s is not None:
            elapsed = min(elapsed, self._stride_s)
        return self._anchor_virtual_s + self._speed * elapsed

    def govern(self, stride_s: float | None) -> None:
        """From now on advance at most `stride_s` real seconds' worth between beats (None: free)."""
        if stride_s is not None and not stride_s > 0.0:
            raise ValueError("a governed clock needs a positive stride")
        self._reanchor()
        self._stride_s = stride_s

    def beat(self) -> None:
        """The plant is being kept on the clock: virtual time may run `stride_s` further."""
        if self._stride_s is None or self._paused:
            return
        real = self._real_time()
        self.lost_real_s += max(0.0, real - self._anchor_real_s - self._stride_s)
        self._anchor_virtual_s = self.now_s()
        self._anchor_real_s = real

    def _reanchor(self) -> None:
        self._anchor_virtual_s = self.now_s()
        self._anchor_real_s = self._real_time()

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError("clock speed must be positive")
        self._reanchor()
        self._speed = value

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._reanchor()
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._anchor_real_s = self._real_time()
            self._paused = False

    def real_seconds(self, virtual_s: float) -> float:
        """Real time a virtual duration takes at the current speed (for simulators' timers)."""
        return virtual_s / self._speed


class PlantRunner:
    def __init__(
        self,
        plant: Advanceable,
        clock: VirtualClock,
        real_step_s: float = 0.05,
        *,
        max_advance_per_tick_s: float = 600.0,
        catch_up_after_s: float = 10.0,
        stride_s: float | None = 0.25,
        name: str = "plant-runner",
    ) -> None:
        if real_step_s <= 0:
            raise ValueError("real_step_s must be positive")
        self.plant = plant
        self.clock = clock
        self.real_step_s = real_step_s
        self.max_advance_per_tick_s = max_advance_per_tick_s
        self.catch_up_after_s = catch_up_after_s
        self.stride_s = stride_s
        self.name = name
        self.error: BaseException | None = None
        self.dropped_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._offset_s = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} already started")
        self.error = None
        self.clock.govern(self.stride_s)
        self.align()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the task and wait for it; raise the plant's exception if it died of one."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.clock.govern(None)
            if self.clock.lost_real_s > 0.0:
                log.info(
                    "the plant waited for a busy host",
                    extra={"runner": self.name, "lost_real_s": round(self.clock.lost_real_s, 2)},
                )
        self.check()

    def check(self) -> None:
        """Raise the exception that ended the runner, if any."""
        if self.error is not None:
            raise self.error

    def align(self) -> None:
        """Tie the plant's current time to the clock's now (done by `start`)."""
        self._offset_s = self.plant.time_s - self.clock.now_s()

    def tick(self) -> float:
        """Advance the plant to the clock now; returns the virtual seconds advanced."""
        target = self.clock.now_s() + self._offset_s
        behind = target - self.plant.time_s
        if behind <= 0.0:
            return 0.0
        step = min(behind, self.max_advance_per_tick_s)
        if step < behind:
            dropped = behind - step
            self._offset_s -= dropped
            self.dropped_s += dropped
            log.warning("plant fell behind the clock", extra={"runner": self.name, "dropped_s": dropped})
        self.plant.advance(step)
        return step

    def catch_up(self) -> None:
        """Bring the plant to the clock now, if the runner runs and the plant has not failed."""
        if not self.running or self.error is not None:
            return
        if self.clock.now_s() + self._offset_s - self.plant.time_s < self.catch_up_after_s:
            return
        try:
            self.tick()
        except Exception as exc:
            self.error = exc
            log.exception("plant runner died", extra={"runner": self.name})

    async def _run(self) -> None:
        try:
            while True:
                self.clock.beat()
                self.tick()
                await asyncio.sleep(self.real_step_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            self.clock.govern(None)  # nothing keeps the plant on the clock: deadlines must still pass
            log.exception("plant runner died", extra={"runner": self.name})

    async def __aenter__(self) -> PlantRunner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
