"""The historian benchmark runs end to end in `--quick` mode and rewrites only its own docs section.

Nothing here asserts on timing: the quick run has to finish, write every row it was given (the bench
checks that itself and raises otherwise) and fill every cell with positive numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.historian import (
    BEGIN,
    END,
    INTRO,
    POSTGRES,
    QUICK,
    SQLITE,
    main,
    render_markdown,
    run_bench,
)
from bench.historian import update_docs as update_historian_docs
from bench.postgres_cluster import unavailable_reason
from bench.report import percentile


async def test_quick_bench_fills_every_row_with_positive_numbers() -> None:
    report = await run_bench(QUICK, command="python -m bench.historian --quick")

    expected = {SQLITE} if unavailable_reason() else {SQLITE, POSTGRES}
    assert {r.backend for r in report.results} == expected
    assert bool(report.skipped) == (POSTGRES not in expected)
    for result in report.results:
        assert result.raw.median > 0
        assert result.ours.median > 0
        assert result.ratio > 0
        assert result.paced_rate > 0
        assert all(v >= 0 for v in result.paced_lateness.values)
    text = render_markdown(report)
    assert "QUICK smoke run" in text
    for result in report.results:
        assert result.raw_label in text
        assert result.ours_label in text


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_write_docs_replaces_only_its_own_section(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    other = (
        "<!-- bench.acquisition figures: begin -->\n\nacquisition figures\n\n"
        "<!-- bench.acquisition figures: end -->"
    )
    docs.write_text(f"# Performance\n\nHand-written notes.\n\n{other}\n", encoding="utf-8")

    update_historian_docs(docs, "## first historian figures\n")
    first = docs.read_text(encoding="utf-8")
    assert "first historian figures" in first
    assert first.count(INTRO.splitlines()[0]) == 1
    docs.write_text(first.replace("Hand-written notes.", "Hand-written notes, edited."), encoding="utf-8")

    update_historian_docs(docs, "## second historian figures\n")
    second = docs.read_text(encoding="utf-8")
    assert "second historian figures" in second
    assert "first historian figures" not in second
    assert "Hand-written notes, edited." in second
    assert other in second
    assert second.count(BEGIN) == 1
    assert second.count(END) == 1
    assert second.count(INTRO.splitlines()[0]) == 1


def test_quick_figures_are_never_written_to_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--write-docs"])
