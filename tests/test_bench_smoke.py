"""The acquisition benchmark runs end to end in `--quick` mode, and its wire arithmetic is devices.md §9's.

Nothing here asserts on timing: the quick run only has to finish and fill every row with positive
numbers. The theoretical rates are pure arithmetic, so they are checked against the table exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.acquisition import (
    BEGIN,
    BUS_SERIAL,
    END,
    OURS,
    QUICK,
    RAW,
    RTU_REGISTER_COUNTS,
    main,
    render_markdown,
    rtu_read_max_tx_per_s,
    rtu_t35_s,
    run_bench,
    update_docs,
)
from controller.config.line_config import load_line_config
from drivers.link import rtu_turnaround_s

# devices.md §9 timing table: baud, bits per character, registers, max tx/s, with 5 ms device latency
SECTION_9_ROWS = [
    (9600, 11, 2, "36.4", "30.8"),
    (9600, 11, 10, "21.8", "19.7"),
    (19200, 11, 2, "72.7", "53.3"),
    (19200, 11, 10, "43.6", "35.8"),
    (115200, 11, 2, "195", "98.8"),
    (115200, 11, 10, "150", "85.8"),
    (9600, 10, 2, "40.0", "33.3"),
    (9600, 10, 10, "24.0", "21.4"),
    (19200, 10, 2, "80.0", "57.1"),
    (19200, 10, 10, "48.0", "38.7"),
    (115200, 10, 2, "201", "100"),
    (115200, 10, 10, "157", "88"),
]


def _as_printed(value: float, printed: str) -> str:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value:.{decimals}f}"


@pytest.mark.parametrize(("baud", "char_bits", "registers", "max_tx", "with_latency"), SECTION_9_ROWS)
def test_theoretical_rate_reproduces_the_devices_md_table(
    baud: int, char_bits: int, registers: int, max_tx: str, with_latency: str
) -> None:
    assert _as_printed(rtu_read_max_tx_per_s(baud, char_bits, registers), max_tx) == max_tx
    slowed = rtu_read_max_tx_per_s(baud, char_bits, registers, device_latency_s=0.005)
    assert _as_printed(slowed, with_latency) == with_latency


def test_the_bench_bus_is_the_standard_rs485_bus() -> None:
    assert BUS_SERIAL.bits_per_char == 11  # 8N2
    assert rtu_t35_s(BUS_SERIAL.baudrate, BUS_SERIAL.bits_per_char) == pytest.approx(
        rtu_turnaround_s(BUS_SERIAL)
    )
    assert f"{rtu_read_max_tx_per_s(19200, 11, 2):.1f}" == "72.7"
    assert f"{rtu_read_max_tx_per_s(19200, 11, 10):.1f}" == "43.6"


async def test_quick_bench_fills_every_row_with_positive_numbers() -> None:
    report = await run_bench(QUICK, command="python -m bench.acquisition --quick")

    assert len(report.tcp) == 4
    assert {r.client for r in report.tcp} == {OURS, RAW}
    assert len({r.server for r in report.tcp}) == 2
    assert all(r.requests.median > 0 for r in report.tcp)

    assert {(r.registers, r.client) for r in report.rtu} == {
        (n, client) for n in RTU_REGISTER_COUNTS for client in (OURS, RAW)
    }
    assert all(r.transactions.median > 0 and r.theoretical_tx_s > 0 for r in report.rtu)

    config = load_line_config()
    assert {r.link for r in report.links} == {name for name in config.links if config.devices_on(name)}
    for link in report.links:
        assert link.exchanges.median > 0
        assert link.bytes_per_exchange > 0
        assert link.exchanges_per_poll > 0
        if link.wire.startswith(("serial", "rtu")):
            assert link.wire_limit_per_s is not None
            assert link.wire_limit_per_s > 0
            assert link.exchanges_serial_only is not None
            assert link.exchanges_serial_only.median > 0
    assert {d.device for d in report.devices} == {d.name for d in config.devices}
    assert all(d.polls.median > 0 for d in report.devices)

    text = render_markdown(report)
    for name in [*(d.device for d in report.devices), OURS, RAW]:
        assert name in text


def test_write_docs_replaces_only_the_figures(tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "performance.md"
    update_docs(docs, "## first figures\n")
    first = docs.read_text(encoding="utf-8")
    assert "How to read this" in first
    assert "first figures" in first
    docs.write_text(first.replace("## How to read this", "## How to read this\n\nA note kept by hand."))

    update_docs(docs, "## second figures\n")
    second = docs.read_text(encoding="utf-8")
    assert "A note kept by hand." in second
    assert "second figures" in second
    assert "first figures" not in second
    assert second.count(BEGIN) == 1
    assert second.count(END) == 1


def test_quick_figures_are_never_written_to_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--write-docs"])
