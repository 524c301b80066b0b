"""Values at the driver boundary: staleness by the monotonic clock, non-finite values never OK."""

from __future__ import annotations

import math

from drivers.reading import Quality, Reading


def test_a_reading_older_than_its_limit_is_stale() -> None:
    reading = Reading(1.0e-3, "Pa", Quality.OK, ts=1000.0, mono=50.0)
    assert reading.aged(5.0, now_mono=54.9).quality is Quality.OK
    stale = reading.aged(5.0, now_mono=55.1)
    assert stale.quality is Quality.STALE
    assert stale.value == reading.value  # the value is kept for display, but it no longer counts
    assert not stale.ok


def test_staleness_does_not_hide_an_earlier_fault() -> None:
    broken = Reading(0.0, "Pa", Quality.ERROR, ts=0.0, mono=0.0)
    assert broken.aged(5.0, now_mono=1.0).quality is Quality.ERROR


def test_non_finite_values_are_never_ok() -> None:
    assert Reading.now(math.nan, "degC").quality is Quality.ERROR
    assert Reading.now(math.inf, "Pa").quality is Quality.ERROR
    assert Reading.now(math.inf, "Pa", Quality.OVER_RANGE).quality is Quality.OVER_RANGE
    assert Reading.now(-60.0, "degC").ok
