"""Values as they cross the driver boundary: SI units, a quality flag, and when they were taken."""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, replace


class Quality(enum.Enum):
    """How far a value can be trusted; only `OK` may ever count as "in spec" upstream."""

    OK = "ok"
    UNDER_RANGE = "under_range"
    OVER_RANGE = "over_range"
    SENSOR_OFF = "sensor_off"
    ERROR = "error"
    STALE = "stale"
    OUT_OF_SERVICE = "out_of_service"  # an engineer took the device out of service (maintenance)


@dataclass(frozen=True, slots=True)
class Reading:
    """One acquired value.

    `unit` is an SI symbol (``Pa``, ``degC``, ``ppmv``, ``sccm``, ``nm``, ``W``, ``Hz`` ...).
    `ts` is wall-clock epoch seconds for records; `mono` is `time.monotonic()` for staleness,
    so that a clock change never makes an old value look fresh.
    """

    value: float
    unit: str
    quality: Quality
    ts: float
    mono: float

    @classmethod
    def now(cls, value: float, unit: str, quality: Quality = Quality.OK) -> Reading:
        if quality is Quality.OK and not math.isfinite(value):
            quality = Quality.ERROR
        return cls(value, unit, quality, time.time(), time.monotonic())

    @property
    def ok(self) -> bool:
        return self.quality is Quality.OK

    def age_s(self, now_mono: float | None = None) -> float:
        return (time.monotonic() if now_mono is None else now_mono) - self.mono

    def aged(self, max_age_s: float, now_mono: float | None = None) -> Reading:
        """This reading, marked `STALE` if it is older than `max_age_s`."""
        if self.quality is not Quality.STALE and self.age_s(now_mono) > max_age_s:
            return replace(self, quality=Quality.STALE)
        return self
