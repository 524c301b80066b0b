"""The HMI feed benchmark runs end to end in `--quick` mode: a row for every client count, sane numbers.

Nothing here asserts on timing or on cost: only that every configuration was measured, that watching
clients really received the feed, and that every figure is finite and not negative.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import acquisition
from bench.hmi_feed import BASELINE, QUICK, main, render_markdown, run_bench, update_docs
from bench.hmi_feed_clients import ClientCounts, kind_of
from bench.report import markers


def _sane(value: float) -> bool:
    return math.isfinite(value) and value >= 0


async def test_quick_bench_has_a_row_for_every_client_count_with_sane_numbers() -> None:
    report = await run_bench(QUICK, command="python -m bench.hmi_feed --quick")

    labels = [BASELINE, *(str(n) for n in QUICK.client_counts)]
    assert [r.label for r in report.results] == labels
    for result in report.results:
        assert len(result.windows) == QUICK.rounds
        assert result.ticks > 0
        assert _sane(result.cpu_share)
        for spread in (result.lateness, result.ages):
            assert all(_sane(v) for v in (spread.p50_s, spread.p99_s, spread.max_s))
        assert all(_sane(v) for v in result.gc_pauses_s())
        watched = result.label not in (BASELINE, "0")
        assert all((w.counts is not None) == watched for w in result.windows)
        if watched:
            assert result.rate("state") > 0, f"{result.label} clients got no state messages"
            assert result.rate("telemetry") > 0, f"{result.label} clients got no telemetry"
            for kind in ("state", "telemetry", "other"):
                assert _sane(result.rate(kind))
                assert _sane(result.rate(kind, of_bytes=True))
            assert _sane(result.client_cpu_share)
    text = render_markdown(report)
    assert "QUICK" in text
    assert "| none (no HTTP server) |" in text
    for count in QUICK.client_counts:
        assert f"\n| {count} |" in text
    assert "nan" not in text.lower()


def test_client_counts_survive_the_pipe_and_messages_are_told_apart() -> None:
    counts = ClientCounts(2, 1.5, {"state": 6, "telemetry": 6}, {"state": 600, "telemetry": 300}, 0.01)

    again = ClientCounts.from_json(counts.to_json())

    assert again == counts
    assert again.per_client_rate("state") == pytest.approx(2.0)
    assert again.per_client_rate("telemetry", of_bytes=True) == pytest.approx(100.0)
    assert kind_of(b'{"type":"state","data":{}}') == "state"
    assert kind_of(b'{"type":"telemetry","data":{"channels":[]}}') == "telemetry"
    assert kind_of(b'{"type":"overflow","data":{"dropped":1}}') == "other"


def test_write_docs_replaces_only_its_own_section(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    acquisition_block = f"{acquisition.BEGIN}\n\nacquisition figures\n\n{acquisition.END}"
    docs.write_text(f"# Performance\n\nA note kept by hand.\n\n{acquisition_block}\n", encoding="utf-8")

    update_docs(docs, "## first feed figures\n")
    update_docs(docs, "## second feed figures\n")
    text = docs.read_text(encoding="utf-8")

    begin, end = markers("hmi_feed")
    assert "A note kept by hand." in text
    assert acquisition_block in text
    assert "second feed figures" in text
    assert "first feed figures" not in text
    assert text.count(begin) == 1
    assert text.count(end) == 1


def test_quick_figures_are_never_written_to_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--write-docs"])
