"""The flight-recorder benchmark runs end to end on a few minutes' night and fills every figure.

Nothing here asserts on timing: the quick night must be built with the rows asked for, and the
timeline, the day's reads and the rejudge must each have returned what the night holds.
"""

from __future__ import annotations

from bench.flight_recorder import POLL_S, QUICK_HOURS, render, run_bench


def test_quick_bench_reads_back_what_it_built() -> None:
    figures = run_bench(QUICK_HOURS, runs=1)
    night = figures.night
    assert night.samples > 1000
    assert figures.timeline_rows == night.events  # every event row of the night is in its timeline
    assert figures.day_rows == int(QUICK_HOURS * 3600 / POLL_S) + 1  # one channel, one row per poll
    assert figures.rejudge_instants == int(QUICK_HOURS * 3600 / POLL_S) + 1
    assert all(v > 0 for v in (*figures.timeline_s, *figures.day_envelope_s, *figures.rejudge_s))
    text = render(figures, "python -m bench.flight_recorder --quick")
    assert "rejudge of the whole job" in text
