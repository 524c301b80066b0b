"""Which readings are worth storing: a deadband per channel class, a heartbeat, every quality change.

The settings and why they are what they are: `controller.config.recording`. How a reading is judged:

- **Against the last stored value**, not the last seen one, so a slow drift is stored once it has
  added up to the deadband (comparing neighbours would let it creep by unseen for ever).
- **A quality change is always stored** (a gauge going under range, a device falling silent): the
  record of when a value could not be trusted is worth more than the value.
- **The reading before a step is stored with it.** When a reading breaks the deadband after a still
  stretch, the last suppressed one is stored first, so a plot steps where the value stepped instead
  of sloping from a point ten minutes earlier; and the extremes of an excursion are stored as they
  come, so `Historian.sample_envelope` (the certificate's plots) still shows the peak.
- **The heartbeat** stores a still channel every `heartbeat_s`, so a window of the record always
  holds its channels' values and a gap means the line was not recording.
- **A channel's own settings first** (`[recording.channels."DEVICE.CHANNEL"]`), its class's and the
  line's heartbeat for what it does not set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from controller.config.recording import ChannelRecording, RecordingConfig
from controller.line.poller import Sample
from drivers.reading import Quality

PRESSURE_UNITS: Final = frozenset({"Pa", "hPa", "mbar", "Torr"})
TEMPERATURE_UNITS: Final = frozenset({"degC", "K"})
CONCENTRATION_UNITS: Final = frozenset({"ppmv", "ppm"})
SWITCH_UNITS: Final = frozenset({"bool"})


@dataclass(slots=True)
class _Stored:
    value: float
    quality: Quality
    ts: float
    held: Sample | None = None  # the newest reading since, not stored


class Deadband:
    """`admit(sample)` gives the samples to store now: none, the sample, or the one before it and it."""

    def __init__(self, config: RecordingConfig) -> None:
        self.config = config
        self._stored: dict[tuple[str, str], _Stored] = {}

    def admit(self, sample: Sample, *, keep: bool = False) -> tuple[Sample, ...]:
        """`keep` stores the reading however little it moved: one a decision was taken on."""
        reading = sample.reading
        key = (sample.device, sample.channel)
        last = self._stored.get(key)
        if last is None or not self.config.deadband:
            self._stored[key] = _Stored(reading.value, reading.quality, reading.ts)
            return (sample,)
        own = self.config.channels.get(key)
        moved = self._moved(own, reading.unit, last.value, reading.value)
        if reading.quality is last.quality and not moved and not keep:
            if reading.ts - last.ts < self.heartbeat_s(own):
                last.held = sample
                return ()
            self._stored[key] = _Stored(reading.value, reading.quality, reading.ts)
            return (sample,)
        held = last.held
        self._stored[key] = _Stored(reading.value, reading.quality, reading.ts)
        return (sample,) if held is None else (held, sample)

    def release(self) -> list[Sample]:
        """The readings held back, newest per channel, now to be stored: when recording stops, so the
        record ends with the values the line was left at, and at every decision of the gate, so the
        record holds the values it was taken on. Later readings are judged against these."""
        out: list[Sample] = []
        for key, stored in self._stored.items():
            if stored.held is not None:
                reading = stored.held.reading
                out.append(stored.held)
                self._stored[key] = _Stored(reading.value, reading.quality, reading.ts)
        return out

    def heartbeat_s(self, own: ChannelRecording | None) -> float:
        """How long a channel with settings `own` may stay still and unstored."""
        if own is not None and own.heartbeat_s is not None:
            return own.heartbeat_s
        return self.config.heartbeat_s

    def _moved(self, own: ChannelRecording | None, unit: str, stored: float, value: float) -> bool:
        if math.isnan(stored) or math.isnan(value):
            return math.isnan(stored) != math.isnan(value)
        return abs(value - stored) > self.band(unit, stored, own)

    def band(self, unit: str, stored: float, own: ChannelRecording | None = None) -> float:
        """How far a reading of this unit (of a channel with settings `own`) may move from `stored` and
        not be stored."""
        if own is not None and own.deadband is not None:
            return own.deadband
        if own is not None and own.deadband_relative is not None:
            return own.deadband_relative * abs(stored)
        config = self.config
        if unit in PRESSURE_UNITS:
            return config.pressure_relative * abs(stored)
        if unit in TEMPERATURE_UNITS:
            return config.temperature_k
        if unit in CONCENTRATION_UNITS:
            return config.concentration_ppmv
        if unit in SWITCH_UNITS:
            return 0.0
        return config.other_relative * abs(stored)


__all__ = ["Deadband"]
