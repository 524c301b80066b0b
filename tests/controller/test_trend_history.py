"""The controller's trend history: pure, fed by hand with epoch seconds (no controller, no clock)."""

from __future__ import annotations

import itertools
import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api.trend_history import TrendHistory, TrendKind, TrendSample, downsample, trusted_value


def inlet(value: float | None, kind: TrendKind = "pressure") -> list[TrendSample]:
    return [TrendSample("inlet", kind, value)]


def points(history: TrendHistory) -> list[tuple[float, float | None]]:
    (series,) = history.series()
    return list(series.points())


def test_at_most_one_sample_per_sample_s_and_an_untrusted_moment_between_turns_it_a_gap() -> None:
    history = TrendHistory(sample_s=2.0)
    for i in range(21):  # every 0.5 s for 10 s
        history.record(1000.0 + 0.5 * i, inlet(100.0 + i))
    kept = points(history)
    assert [t for t, _ in kept] == [1000.0, 1002.0, 1004.0, 1006.0, 1008.0, 1010.0]
    assert [v for _, v in kept] == [100.0, 104.0, 108.0, 112.0, 116.0, 120.0]  # the sample's own value
    history.record(1010.5, inlet(None))  # inside the last sample: that sample cannot be trusted any more
    assert points(history)[-1] == (1010.0, None)


def test_untrusted_values_are_gaps_and_a_log_scale_has_no_place_for_zero() -> None:
    assert math.isnan(trusted_value("pressure", None))
    assert math.isnan(trusted_value("pressure", 0.0))
    assert math.isnan(trusted_value("pressure", math.inf))
    assert math.isnan(trusted_value("frost", math.nan))
    assert trusted_value("frost", -60.0) == -60.0  # below zero is fine on a linear scale
    history = TrendHistory(sample_s=1.0)
    for i, value in enumerate([5.0, None, -1.0, 7.0]):
        history.record(float(i), inlet(value))
    assert points(history) == [(0.0, 5.0), (1.0, None), (2.0, None), (3.0, 7.0)]


def test_a_silent_sampler_leaves_a_gap_instead_of_a_line_across_it() -> None:
    history = TrendHistory(sample_s=2.0)  # silence longer than 3 * sample_s is a gap
    history.record(0.0, inlet(1.0))
    history.record(2.0, inlet(2.0))
    history.record(60.0, inlet(3.0))
    kept = points(history)
    assert kept[:2] == [(0.0, 1.0), (2.0, 2.0)]
    assert kept[2][1] is None
    assert 2.0 < kept[2][0] < 60.0
    assert kept[3] == (60.0, 3.0)


def test_a_wall_clock_set_back_drops_the_future_and_keeps_the_order() -> None:
    history = TrendHistory(sample_s=1.0)
    for t in range(10):
        history.record(float(t), inlet(float(t + 1)))
    history.record(4.0, inlet(99.0))  # the clock went back 6 s
    kept = points(history)
    assert [t for t, _ in kept] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert kept[-1] == (4.0, 99.0)


def test_points_older_than_keep_s_go() -> None:
    history = TrendHistory(sample_s=1.0, keep_s=10.0)
    for t in range(100):
        history.record(float(t), inlet(1.0))
    kept = points(history)
    assert kept[0][0] == 89.0
    assert kept[-1][0] == 99.0


def test_thinning_bounds_memory_keeps_the_whole_window_and_keeps_gaps() -> None:
    history = TrendHistory(sample_s=1.0, keep_s=7200.0, max_points=100)
    recorded: dict[float, float | None] = {}
    for t in range(7200):
        value = None if t % 500 == 250 else float(t)
        recorded[float(t)] = value
        history.record(float(t), inlet(value))
    kept = points(history)
    assert len(kept) <= 100
    assert history.nbytes <= 100 * 16
    assert kept[0][0] == 0.0
    assert kept[-1][0] == 7199.0
    assert all(a[0] < b[0] for a, b in itertools.pairwise(kept))
    for kept_t, v in kept:  # nothing invented: a kept value is the value recorded at its time
        assert v is None or v == recorded[kept_t]
    assert kept[-1][1] == 7199.0
    # every untrusted moment is still a gap: the kept point that covers it (the last at or before it)
    for gap_t in (t for t, v in recorded.items() if v is None):
        covering = [v for t, v in kept if t <= gap_t][-1]
        assert covering is None, gap_t


def test_window_holds_only_its_time_and_at_most_max_points_with_gaps_kept() -> None:
    history = TrendHistory(sample_s=1.0, keep_s=7200.0)
    for t in range(3600):
        history.record(float(t), inlet(None if t == 3000 else 2.0))
    (window,) = history.window(1800.0, 3599.0, max_points=300)
    assert window.space == "inlet"
    assert window.kind == "pressure"
    assert window.unit == "Pa"
    assert len(window.points) <= 300
    assert all(1799.0 <= t <= 3599.0 for t, _ in window.points)
    assert [v for _, v in window.points].count(None) == 1  # the one bucket holding the gap
    assert {v for _, v in window.points} == {2.0, None}
    (short,) = history.window(60.0, 3599.0)
    assert [t for t, _ in short.points] == [float(t) for t in range(3539, 3600)]  # few: as recorded


def test_downsample_uses_the_newest_time_and_the_mean_of_each_bucket() -> None:
    times = array("d", [0.5, 0.9, 1.2, 1.8, 3.5])
    values = array("d", [1.0, 3.0, 5.0, math.nan, 8.0])
    assert downsample(times, values, 0.0, 4.0, 4) == [(0.9, 2.0), (1.8, None), (3.5, 8.0)]
    assert downsample(times, values, 0.0, 4.0, 5) == [
        (0.5, 1.0),
        (0.9, 3.0),
        (1.2, 5.0),
        (1.8, None),
        (3.5, 8.0),
    ]


def test_series_are_bounded_in_number() -> None:
    history = TrendHistory(sample_s=1.0, max_series=2)
    history.record(0.0, [TrendSample(space, "pressure", 1.0) for space in ("a", "b", "c")])
    assert [s.space for s in history.series()] == ["a", "b"]
    assert history.refused_series == 1


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="sample_s"):
        TrendHistory(sample_s=0.0)
    with pytest.raises(ValueError, match="keep_s"):
        TrendHistory(sample_s=10.0, keep_s=5.0)
    with pytest.raises(ValueError, match="max_points"):
        TrendHistory(max_points=2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-5.0, max_value=30.0),  # steps of the wall clock, backwards included
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=300,
    )
)
def test_whatever_comes_in_the_series_stays_ordered_bounded_and_invents_nothing(
    steps: list[tuple[float, float | None]],
) -> None:
    history = TrendHistory(sample_s=1.0, keep_s=200.0, max_points=40)
    now = 1_000_000.0
    seen: set[float] = set()
    for step, value in steps:
        now += step
        history.record(now, inlet(value))
        if value is not None and math.isfinite(value) and value > 0:
            seen.add(value)
    if not steps:
        assert history.series() == []
        return
    kept = points(history)
    assert len(kept) <= 40
    times = [t for t, _ in kept]
    assert times == sorted(set(times))
    assert times[-1] <= now
    assert times[0] >= now - 200.0
    assert all(v is None or v in seen for _, v in kept)
