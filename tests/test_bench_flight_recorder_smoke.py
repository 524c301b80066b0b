"""The flight-recorder benchmark runs end to end on a few minutes' night and fills every figure.

Nothing here asserts on timing: the quick night must be built with the rows asked for, and the
timeline, the instant, the day's reads and the rejudge must each have returned what the night holds.
"""

from __future__ import annotations

from bench.flight_recorder import POLL_S, QUICK_HOURS, TREND_POINTS, render, run_bench
from controller.config.line_config import load_line_config
from controller.flight_recorder.rejudge import channels_read


def test_quick_bench_reads_back_what_it_built() -> None:
    figures = run_bench(QUICK_HOURS, runs=1)
    night = figures.night
    polls = int(QUICK_HOURS * 3600 / POLL_S) + 1
    assert night.samples > 1000
    assert figures.timeline_rows == night.events  # every event row of the night is in its timeline
    assert figures.day_rows == polls  # the day's channel is an interlock pressure: one row per poll
    assert 1 <= figures.day_trend_rows <= TREND_POINTS // 2  # a minute's night is in one bucket of a day
    # the last reading of every channel, the one item's place, and each alarm raised so far
    assert figures.instant_rows > night.samples // polls
    judged = figures.rejudged
    assert judged.instants_watched == polls
    assert 0 < judged.instants_skipped < polls  # still instants are taken over, moving ones judged
    # every sample of the rules' channels but the last poll's, stamped a few ms after the job's end
    rule_channels = len(channels_read(load_line_config()))
    assert night.rule_samples - rule_channels <= judged.samples_replayed < night.rule_samples
    assert figures.worst.instants_skipped == 0
    assert all(
        v > 0 for v in (*figures.timeline_s, *figures.instant_s, *figures.day_trend_s, *figures.rejudge_s)
    )
    text = render(figures, "python -m bench.flight_recorder --quick")
    assert "rejudge of the whole job" in text
    assert "state at an instant" in text
