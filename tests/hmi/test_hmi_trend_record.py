"""Live and recorded in one chart: a trend window that reaches before what the page holds is filled from
the flight recorder (GET /api/samples with max_points), in Debian's Chromium against a real controller
with a real SQLite historian.

The record holds a known step of the inlet's frost point an hour ago (written as the recorder writes
samples); the page, opened now, holds seconds. Widened to two hours, the chart draws the recorded points
before the page's own, and the cursor reads each side of the recorded step; past the record's end by
more than 1.5 heartbeats there is no value, never the last one held forever.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.async_api import Request, expect

from controller.config.line_config import load_line_config
from controller.historian.store import Historian
from controller.line.poller import Sample
from drivers.reading import Quality, Reading
from tests.hmi.test_hmi_browser import artifact, open_page, save_for_readme, served_line

BEFORE_C = -55.0
AFTER_C = -40.0
RECORD_FROM_S = 3600.0  # the record: an hour ago ...
STEP_AT_S = 2400.0  # ... a step 40 min ago ...
RECORD_TO_S = 1200.0  # ... until 20 min ago; a recorded value holds 1.5 heartbeats (600 s): 900 s
EVERY_S = 20.0
CURSOR = re.compile(r"^at [^:]+:[^:]+:[^:]+: (.+)$")


async def recorded_step(tmp_path: Path) -> Historian:
    historian = Historian(f"sqlite:///{tmp_path / 'line.db'}", line="line1", spill_dir=tmp_path / "spill")
    await historian.start()
    now = time.time()
    at = now - RECORD_FROM_S
    while at <= now - RECORD_TO_S:
        value = BEFORE_C if at < now - STEP_AT_S else AFTER_C
        reading = Reading(value, "degC", Quality.OK, at, time.monotonic())
        historian.record_sample(Sample("inlet_dewpoint", "frost_point", reading))
        at += EVERY_S
    assert await historian.flush()
    return historian


async def test_a_window_before_what_the_page_holds_is_drawn_from_the_flight_record(
    chromium_path: str, tmp_path: Path
) -> None:
    historian = await recorded_step(tmp_path)
    try:
        async with served_line(chromium_path, load_line_config(), historian=historian) as (line, _):
            page = await open_page(line)
            asked: list[str] = []

            def note(request: Request) -> None:
                if "/api/samples" in request.url:
                    asked.append(request.url)

            page.on("request", note)
            frost = page.locator('[data-trace="inlet:frost"]')
            await expect(frost).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
            await page.get_by_label("Window").select_option(label="last 2 h")
            opened_ms: float = await page.evaluate("() => Date.now()")
            # the recorded points come first in the same trace, an hour before the page opened
            await page.wait_for_function(
                """([selector, beforeMs]) => {
                     const trace = document.querySelector(selector);
                     const earliest = Number(trace?.getAttribute("data-earliest-ms"));
                     return earliest > 0 && earliest < beforeMs;
                   }""",
                arg=['[data-trace="inlet:frost"]', opened_ms - (RECORD_FROM_S - 60) * 1000],
            )
            assert any("max_points=" in url and "inlet_dewpoint.frost_point" in url for url in asked), asked
            cursor = page.locator('[data-trend-cursor="inlet:frost"]')

            async def read_at(seconds_ago: float) -> str:
                await page.evaluate(
                    "async (ms) => (await import('/hmi/trends.js')).setTrendCursor(ms)",
                    opened_ms - seconds_ago * 1000,
                )
                await expect(cursor).to_have_text(CURSOR)
                found = CURSOR.search(await cursor.inner_text())
                assert found is not None
                return found.group(1)

            assert await read_at(STEP_AT_S + 300) == f"{BEFORE_C:.1f} °C"
            assert await read_at(STEP_AT_S - 300) == f"{AFTER_C:.1f} °C"
            assert await read_at(RECORD_TO_S / 2) == f"{AFTER_C:.1f} °C"  # held: within 1.5 heartbeats
            assert await read_at(100) == "no value (nothing recorded)"  # not held past them
            # the live end of the same trace still reads the page's own samples
            await expect(page.locator('[data-trend-latest="inlet:frost"]')).to_have_text(
                re.compile(r"^latest: -?\d+\.\d °C$")
            )
            assert await read_at(STEP_AT_S - 300) == f"{AFTER_C:.1f} °C"  # the cursor on the record
            # the holder, not a chart: the charts are redrawn twice a second
            await page.locator("#trends").screenshot(path=artifact("hmi-trend-record.png"))
            await save_for_readme(page.locator("#trends").locator(".."), "hmi-trends.png")
    finally:
        await historian.stop()
