"""The MQTT benchmark runs end to end in `--quick` mode against Debian's mosquitto.

Nothing here asserts on timing: the quick run only has to deliver every message of every phase (it
raises otherwise) and fill every row with positive, finite figures.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import acquisition
from bench.mqtt import (
    BEGIN,
    BRIDGE,
    BROKER_SETTINGS,
    END,
    QUICK,
    RAW_AWAITED,
    main,
    raw_window_name,
    render_markdown,
    run_bench,
    update_docs,
)


async def test_quick_bench_fills_every_row_for_every_broker_setting() -> None:
    report = await run_bench(QUICK, command="python -m bench.mqtt --quick")

    assert [t.setting for t in report.tables] == [setting for setting, _ in BROKER_SETTINGS]
    text = render_markdown(report)
    for table in report.tables:
        names = [row.publisher for row in table.rows]
        assert names == [RAW_AWAITED, raw_window_name(QUICK.window), BRIDGE]
        for row in table.rows:
            assert len(row.rates.values) == QUICK.repetitions
            assert all(math.isfinite(rate) and rate > 0 for rate in row.rates.values)
            assert f"| {row.publisher} | {row.rates.cell()} |" in text
        for row in (table.rows[0], table.rows[2]):
            assert row.latency is not None
            assert len(row.latency.seconds) == QUICK.latency_messages * QUICK.repetitions
            assert all(math.isfinite(s) and s >= 0 for s in row.latency.seconds)
    assert "QUICK" in text


def test_write_docs_replaces_only_its_own_section(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    acquisition_block = f"{acquisition.BEGIN}\n\nacquisition figures\n\n{acquisition.END}"
    docs.write_text(f"# Performance\n\nA note kept by hand.\n\n{acquisition_block}\n", encoding="utf-8")

    update_docs(docs, "## first MQTT figures\n")
    update_docs(docs, "## second MQTT figures\n")
    text = docs.read_text(encoding="utf-8")

    assert "A note kept by hand." in text
    assert acquisition_block in text
    assert "second MQTT figures" in text
    assert "first MQTT figures" not in text
    assert text.count(BEGIN) == 1
    assert text.count(END) == 1
    assert text.index(acquisition.END) < text.index(BEGIN)


def test_quick_figures_are_never_written_to_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--write-docs"])
