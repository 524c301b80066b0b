"""The interlock-latency benchmark runs end to end in `--quick` mode and reports p50/p99 per configuration.

Nothing here asserts on timing: the quick run only has to finish with figures for every poll period.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from bench import acquisition
from bench.interlock_latency import (
    BEGIN,
    END,
    QUICK,
    main,
    render_markdown,
    run_bench,
    update_docs,
)
from bench.report import percentile


async def test_quick_bench_gives_p50_and_p99_for_every_poll_period() -> None:
    report = await run_bench(QUICK, command="python -m bench.interlock_latency --quick")

    assert [r.interlock_period_s for r in report.results] == list(QUICK.interlock_periods_s)
    text = render_markdown(report)
    for result in report.results:
        assert result.crossings == QUICK.repetitions
        assert result.trips, f"no safe command for any crossing at {result.interlock_period_s} s"
        for spread in (result.issued, result.completed):
            assert math.isfinite(spread.p50_s)
            assert math.isfinite(spread.p99_s)
        assert f"| {result.issued.cell()} |" in text
    assert "QUICK" in text


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    assert percentile(values, 99) == pytest.approx(cuts[98])
    assert percentile([0.5], 99) == 0.5


def test_write_docs_replaces_only_its_own_section(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    acquisition_block = f"{acquisition.BEGIN}\n\nacquisition figures\n\n{acquisition.END}"
    docs.write_text(f"# Performance\n\nA note kept by hand.\n\n{acquisition_block}\n", encoding="utf-8")

    update_docs(docs, "## first latency figures\n")
    update_docs(docs, "## second latency figures\n")
    text = docs.read_text(encoding="utf-8")

    assert "A note kept by hand." in text
    assert acquisition_block in text
    assert "second latency figures" in text
    assert "first latency figures" not in text
    assert text.count(BEGIN) == 1
    assert text.count(END) == 1
    assert text.index(acquisition.END) < text.index(BEGIN)


def test_quick_figures_are_never_written_to_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--write-docs"])
