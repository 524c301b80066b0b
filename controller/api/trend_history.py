"""The last two hours of what the HMI's trend charts plot, kept by the controller so a page opened now
starts with them instead of with empty charts.

Why it is shaped this way:

- **Exactly the page's values.** Per space: pressure (Pa, log scale, so a value <= 0 is untrusted), the
  frost point (only a reading of quality "ok") and the substrate temperature, taken from the same
  snapshot -> `LineState` path `state_view` uses, so a history point and a live point of the same
  instant agree.
- **Recorded whether or not anybody watches.** The live ticker builds state only for connected
  clients; `sample_line` is a separate task that builds the few values every `sample_s`. Cheap enough
  to run always (one snapshot and one `LineState`, well under a millisecond on the standard line).
- **Bounded memory, fixed shape.** A series is two `array('d')` (epoch seconds, value; NaN = gap), at
  most `max_points` long (16 bytes a point): when full, the older half is thinned pair by pair exactly
  like the page's `thinOlderHalf`, so recent minutes stay fine, hours coarse, and the window stays
  covered. The number of series is bounded too.
- **A gap stays a gap.** An untrusted value is stored as a gap; an untrusted moment between two samples
  turns the sample a gap; a silence longer than `gap_after_s` (the loop was blocked, the sampler failed)
  gets an explicit gap point; thinning and downsampling keep a pair or bucket with a gap a gap. Nothing
  is ever interpolated.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from controller.line.controller import LineController

log = logging.getLogger(__name__)

TrendKind = Literal["pressure", "frost", "substrate"]
UNITS: Final[dict[TrendKind, str]] = {"pressure": "Pa", "frost": "degC", "substrate": "degC"}
DEFAULT_SAMPLE_S: Final = 2.0
DEFAULT_KEEP_S: Final = 7200.0
DEFAULT_MAX_POINTS: Final = 4000  # 2 h at 2 s is 3600: thinning only when sampled faster
DEFAULT_MAX_SERIES: Final = 256
MAX_DRAWN: Final = 300  # the page draws at most this many points per chart
GAP_BEFORE_S: Final = 0.001  # a silence's gap point sits just before the sample that ends it


@dataclass(frozen=True, slots=True)
class TrendSample:
    """One value of one series at the sampling instant; None when it cannot be trusted."""

    space: str
    kind: TrendKind
    value: float | None


@dataclass(frozen=True, slots=True)
class TrendWindow:
    """One series over a window, oldest first; a None value is a gap in the line."""

    space: str
    kind: TrendKind
    unit: str
    points: list[tuple[float, float | None]]


def trusted_value(kind: TrendKind, value: float | None) -> float:
    """The value as the page would plot it, NaN (a gap) when it would not."""
    if value is None or not math.isfinite(value):
        return math.nan
    if kind == "pressure" and value <= 0.0:
        return math.nan  # a log scale has no place for it
    return value


class TrendSeries:
    """Epoch seconds and values (NaN = gap) of one space's one kind, oldest first."""

    def __init__(self, space: str, kind: TrendKind) -> None:
        self.space = space
        self.kind = kind
        self.times = array("d")
        self.values = array("d")

    def __len__(self) -> int:
        return len(self.times)

    @property
    def nbytes(self) -> int:
        return self.times.itemsize * len(self.times) + self.values.itemsize * len(self.values)

    def points(self) -> Iterator[tuple[float, float | None]]:
        for t, v in zip(self.times, self.values, strict=True):
            yield t, None if math.isnan(v) else v

    def window(self, from_s: float, to_s: float, max_points: int) -> list[tuple[float, float | None]]:
        """The points from `from_s` to `to_s`, at most `max_points` of them (see `downsample`)."""
        lo = bisect.bisect_left(self.times, from_s)
        hi = bisect.bisect_right(self.times, to_s)
        return downsample(self.times[lo:hi], self.values[lo:hi], from_s, to_s, max_points)

    def drop_from(self, ts: float) -> None:
        """Forget points at or after `ts` (the wall clock was set back: they are in the future now)."""
        index = bisect.bisect_left(self.times, ts)
        del self.times[index:]
        del self.values[index:]

    def drop_before(self, ts: float) -> None:
        index = bisect.bisect_left(self.times, ts)
        if index:
            del self.times[:index]
            del self.values[:index]

    def append(self, ts: float, value: float) -> None:
        self.times.append(ts)
        self.values.append(value)

    def thin_older_half(self) -> None:
        """Every pair of the older half becomes its first point; a pair with a gap stays a gap."""
        start = (len(self.times) // 2) // 2 * 2
        times, values = array("d"), array("d")
        for i in range(0, start, 2):
            times.append(self.times[i])
            a, b = self.values[i], self.values[i + 1]
            values.append(math.nan if math.isnan(a) or math.isnan(b) else a)
        times.extend(self.times[start:])
        values.extend(self.values[start:])
        self.times, self.values = times, values


class TrendHistory:
    """Bounded in-memory trend history; `record` is called every `sample_s` by `sample_line`."""

    def __init__(
        self,
        *,
        sample_s: float = DEFAULT_SAMPLE_S,
        keep_s: float = DEFAULT_KEEP_S,
        max_points: int = DEFAULT_MAX_POINTS,
        max_series: int = DEFAULT_MAX_SERIES,
        gap_after_s: float | None = None,
    ) -> None:
        if not (sample_s > 0 and keep_s >= sample_s):
            raise ValueError("sample_s must be > 0 s and keep_s >= sample_s")
        if max_points < 4 or max_series < 1:
            raise ValueError("max_points must be >= 4 and max_series >= 1")
        self.sample_s = sample_s
        self.keep_s = keep_s
        self.max_points = max_points
        self.max_series = max_series
        self.gap_after_s = 3.0 * sample_s if gap_after_s is None else gap_after_s
        self.refused_series = 0
        self._series: dict[tuple[str, TrendKind], TrendSeries] = {}

    @property
    def nbytes(self) -> int:
        """The bytes the points take (the arrays' payload, without the small per-series overhead)."""
        return sum(s.nbytes for s in self._series.values())

    def series(self) -> list[TrendSeries]:
        return list(self._series.values())

    def record(self, now_s: float, samples: Iterable[TrendSample]) -> None:
        """Add one sampling instant (epoch seconds); samples sooner than `sample_s` only mark gaps."""
        for sample in samples:
            series = self._series.get((sample.space, sample.kind))
            if series is None:
                if len(self._series) >= self.max_series:
                    self.refused_series += 1
                    continue
                series = self._series[(sample.space, sample.kind)] = TrendSeries(sample.space, sample.kind)
            self._add(series, now_s, trusted_value(sample.kind, sample.value))

    def _add(self, series: TrendSeries, now_s: float, value: float) -> None:
        if series.times and now_s < series.times[-1]:
            series.drop_from(now_s)
        if series.times:
            last_t = series.times[-1]
            if now_s - last_t < self.sample_s:
                if math.isnan(value):
                    series.values[-1] = math.nan  # an untrusted moment inside the sample stays visible
                return
            if now_s - last_t > self.gap_after_s and not math.isnan(series.values[-1]):
                series.append(now_s - GAP_BEFORE_S, math.nan)
        series.append(now_s, value)
        series.drop_before(now_s - self.keep_s)
        while len(series) > self.max_points:
            series.thin_older_half()

    def window(self, window_s: float, now_s: float, max_points: int = MAX_DRAWN) -> list[TrendWindow]:
        """Every series over the last `window_s`, each at most `max_points` long (equal-time buckets)."""
        from_s = now_s - window_s
        return [
            TrendWindow(s.space, s.kind, UNITS[s.kind], s.window(from_s, now_s, max_points))
            for s in self._series.values()
        ]


def downsample(
    times: array[float], values: array[float], from_s: float, to_s: float, max_points: int
) -> list[tuple[float, float | None]]:
    """The page's rule: buckets of equal time, each the time of its newest point and the mean of its
    values, a gap if any value in it is one (a NaN makes the sum NaN); an empty bucket is nothing.

    Bucket edges are found by bisection and each bucket summed as a slice: a 2 h series is about 0.3 ms,
    which matters because the answer is built on the event loop."""
    if len(times) <= max_points:
        return [(t, None if math.isnan(v) else v) for t, v in zip(times, values, strict=True)]
    width = (to_s - from_s) / max_points
    edges = [0, *(bisect.bisect_left(times, from_s + i * width) for i in range(1, max_points)), len(times)]
    found: list[tuple[float, float | None]] = []
    for start, end in itertools.pairwise(edges):
        if end > start:
            mean = sum(values[start:end]) / (end - start)
            found.append((times[end - 1], None if math.isnan(mean) else mean))
    return found


# =====================================================================================================
# sampling the running line


def line_trend_samples(ctl: LineController) -> list[TrendSample]:
    """The values the page plots, from one snapshot (as `api_views.state_view` builds them)."""
    snapshot = ctl.gate.snapshot()
    state = ctl.model.state(snapshot, time.monotonic())
    readings = ctl.model.readings
    samples: list[TrendSample] = []
    for name, space in state.spaces.items():
        samples.append(TrendSample(name, "pressure", space.pressure_pa))
        frost_key = readings.frost.get(name)
        if frost_key is not None:
            frost = snapshot.get(frost_key)
            trusted = frost is not None and frost.ok  # stale or out of range is a gap, as on the page
            samples.append(TrendSample(name, "frost", frost.value if frost is not None and trusted else None))
        if name in readings.heater:
            samples.append(TrendSample(name, "substrate", space.substrate_temp_c))
    return samples


async def sample_line(history: TrendHistory, ctl: LineController) -> None:
    """Record the line every `sample_s` until cancelled; the pause follows the work, so two samples are
    never closer than `sample_s` (failures are logged; a silence longer than `gap_after_s` is a gap)."""
    while True:
        try:
            history.record(time.time(), line_trend_samples(ctl))
        except Exception:  # a bug here must be loud, but must not end the history
            log.exception("trend sampling failed")
        await asyncio.sleep(history.sample_s)
