"""The overnight benchmark runs end to end on one job and renders its figures (no timing asserted)."""

from __future__ import annotations

import pytest

from bench.overnight import render_markdown, run_bench

pytestmark = pytest.mark.timeout(300)


async def test_one_job_overnight_bench_reports_its_figures() -> None:
    result = await run_bench(1000.0, 1, command="python -m bench.overnight --jobs 1")
    assert result.jobs == 1
    assert result.done == 1, result.outcomes
    assert result.never_exposed == 1
    assert result.plant_s > result.wall_s  # the plant clock ran faster than the wall clock
    assert len(result.thickness_error_pct) == 1
    text = render_markdown(result)
    assert "| 1 | 1 (1 done)" in text
    assert "deposit" in text  # the per-phase breakdown
