"""The HMI's live trends in a real browser, against a real controller and the simulated line.

The charts are fed by the states the page reads (over HTTP until somebody logs in, then from the
WebSocket); the test reads what an operator reads (the axis label and the latest value text) and
compares it with the controller's own state. A page opened later starts with the controller's trend
history (GET /api/trends), recorded while nobody watched.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from controller.api.trend_history import TrendHistory
from controller.config.line_config import load_line_config
from sim_hardware.faults import Fault, inject
from tests.hmi.test_hmi_browser import Hmi, artifact, log_in, open_page, served_line

PRESSURE_FACTOR = 3.0  # the sim drifts between the page's sample and the gate's state; air stays air
LATEST = re.compile(r"latest: ([-+0-9.e]+) Pa$")
HISTORY_BEFORE_PAGE_S = 2.0  # how much history the service records before the page opens
HISTORY_WAIT_S = 20.0


@pytest.fixture
async def line(chromium_path: str) -> AsyncIterator[Hmi]:
    async with served_line(chromium_path, load_line_config()) as (hmi, _):
        yield hmi


async def test_inlet_pressure_trend_is_log_scale_in_pa_and_agrees_with_the_controller(line: Hmi) -> None:
    page = await open_page(line)
    chart = page.locator('[data-trend="inlet"] svg')
    trace = chart.locator('[data-trace="inlet:pressure"]')
    await expect(trace).to_have_attribute("data-points", re.compile(r"^([3-9]|\d{2,})$"))
    await expect(page.locator('[data-trend-axis="inlet:pressure"]')).to_have_text("pressure, Pa (log scale)")
    latest = page.locator('[data-trend-latest="inlet:pressure"]')
    await expect(latest).to_have_text(LATEST)
    match = LATEST.search(await latest.inner_text())
    assert match is not None
    shown_pa = float(match.group(1))
    controller_pa = line.ctl.gate.state().spaces["inlet"].pressure_pa
    assert controller_pa is not None
    assert controller_pa / PRESSURE_FACTOR < shown_pa < controller_pa * PRESSURE_FACTOR
    # the process chamber has a substrate heater: its temperature is trended on a linear scale
    assert line.ctl.gate.state().spaces["process"].substrate_temp_c is not None
    heater_axis = page.locator('[data-trend-axis="process:substrate"]')
    await expect(heater_axis).to_have_text("substrate temperature, °C")
    await expect(page.locator('[data-trend-space="inlet"] [data-trend-axis="inlet:frost"]')).to_have_text(
        "frost point, °C"
    )

    await page.get_by_label("Window").select_option(label="last 30 min")
    await expect(chart).to_have_attribute("aria-label", re.compile(r"last 30 min$"))
    await expect(page.locator('[data-trend="inlet"]')).to_contain_text("-30 min")
    await expect(trace).to_have_attribute("data-points", re.compile(r"^([3-9]|\d{2,})$"))
    await expect(trace.locator("path.trend-line")).to_have_attribute("d", re.compile(r"^M[\d.]+ [\d.]+ L"))
    # one chart per space: the frost point on the same time axis, its own (right) °C axis
    frost = chart.locator('[data-trace="inlet:frost"]')
    await expect(frost).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    await expect(chart.locator("text.tick-right").first).to_be_visible()
    await page.screenshot(path=artifact("hmi-trends.png"), full_page=True)


@pytest.fixture
async def line_with_history(chromium_path: str) -> AsyncIterator[Hmi]:
    """History recorded every 0.1 s before any page opens (the browser is started, no page is)."""
    async with served_line(chromium_path, load_line_config(), trends=TrendHistory(sample_s=0.1)) as (
        hmi,
        service,
    ):
        async with asyncio.timeout(HISTORY_WAIT_S):
            while _trusted_span_s(service.trends, "inlet") < HISTORY_BEFORE_PAGE_S:  # noqa: ASYNC110 (a sampler has no event)
                await asyncio.sleep(0.1)
        assert service.feed.clients == 0  # recorded while nobody watched
        yield hmi


def _trusted_span_s(history: TrendHistory, space: str) -> float:
    series = next((s for s in history.series() if (s.space, s.kind) == (space, "pressure")), None)
    times = [t for t, v in series.points() if v is not None] if series is not None else []
    return times[-1] - times[0] if times else 0.0


# the page's own module instances: a module imported again by its URL is the same one
TRENDS = "(await import('/hmi/trends.js')).trends"
POINT_TIMES = f"async (id) => {TRENDS}.series.get(id).points.map((p) => p.t)"


async def test_a_page_opened_now_starts_with_the_history_recorded_before_it(line_with_history: Hmi) -> None:
    line = line_with_history
    page = await open_page(line)
    # a live sample may draw the chart before the history answer arrives: wait for the history itself
    # (drawn from before the page opened); a page that never loads it fails here
    await page.wait_for_function(
        """([selector, beforeMs]) => {
             const earliest = Number(document.querySelector(selector)?.getAttribute("data-earliest-ms"));
             return earliest > 0 && earliest < performance.timeOrigin - beforeMs;
           }""",
        arg=['[data-trace="inlet:pressure"]', 1000.0 * (HISTORY_BEFORE_PAGE_S / 2)],
    )
    opened_ms = await page.evaluate("performance.timeOrigin")
    # history and live samples meet without a repeat or a step back, and live samples keep coming
    await expect(page.locator('[data-trend-latest="inlet:pressure"]')).to_have_text(LATEST)
    times = await page.evaluate(POINT_TIMES, "inlet:pressure")
    assert times[0] < opened_ms < times[-1]
    assert all(a < b for a, b in itertools.pairwise(times))

    answer = await page.request.get(line.url + "/api/trends?window_s=7200")
    assert answer.ok, await answer.text()
    body = await answer.json()
    kinds = {(s["space"], s["kind"]): s for s in body["series"]}
    assert {("inlet", "pressure"), ("inlet", "frost"), ("process", "substrate")} <= set(kinds)
    assert kinds[("inlet", "pressure")]["unit"] == "Pa"
    assert all(len(s["points"]) <= 300 for s in body["series"])  # downsampled for the window
    assert (await page.request.get(line.url + "/api/trends?window_s=10")).status == 422

    # after a reconnect of the live feed (a logged-in page's) the history fills the silence; the series
    # stays in order
    await log_in(page, "op1", "op1-demo")
    await expect(page.locator("#feed-status")).to_have_text("live feed: connected")
    await page.evaluate("async () => (await import('/hmi/live.js')).hmi.socket.close()")
    await expect(page.locator("#feed-status")).to_contain_text("DISCONNECTED")
    await expect(page.locator("#feed-status")).to_have_text("live feed: connected")
    await page.wait_for_function(
        f"async (id) => {{ const trends = {TRENDS}; "
        "return trends.series.get(id).points.some((p) => p.h && p.t > trends.connectedMs - 3000); }",
        arg="inlet:pressure",
    )
    times = await page.evaluate(POINT_TIMES, "inlet:pressure")
    assert times[0] < opened_ms
    assert all(a < b for a, b in itertools.pairwise(times))


FROST = re.compile(r"latest: (-?[0-9.]+) °C$")
CURSOR = re.compile(r"^at [^:]+:[^:]+:[^:]+: (-?[0-9.]+) °C$")
STEP_C = 30.0
# the frost point itself moves while the test runs (the antechamber's walls take up and give off water):
# a cursor reading is the level of its side of the step to within a tenth of the step
READ_TOLERANCE_C = STEP_C / 10


async def test_the_trend_cursor_reads_a_known_injected_step_at_the_instant_it_is_put(line: Hmi) -> None:
    page = await open_page(line)
    latest = page.locator('[data-trend-latest="inlet:frost"]')
    await expect(latest).to_have_text(FROST)
    before = FROST.search(await latest.inner_text())
    assert before is not None
    before_c = float(before.group(1))
    await asyncio.sleep(1.5)  # a few samples of the level before the step
    before_ms: float = await page.evaluate("() => Date.now()")
    inject(line.sim, Fault("offset_sensor", device="inlet_dewpoint", channel="frost_point", offset=STEP_C))
    await expect(latest).to_have_text(re.compile(r"latest: -?[0-9.]+ °C$"))
    async with asyncio.timeout(20):
        while True:
            after = FROST.search(await latest.inner_text())
            if after is not None and float(after.group(1)) > before_c + STEP_C * 0.8:
                break
            await asyncio.sleep(0.2)
    after_c = float(after.group(1))
    await asyncio.sleep(1.5)  # the new level for a few samples
    after_ms: float = await page.evaluate("() => Date.now() - 1000")
    cursor = page.locator('[data-trend-cursor="inlet:frost"]')

    async def read_at(ms: float) -> float:
        await page.evaluate("async (ms) => (await import('/hmi/trends.js')).setTrendCursor(ms)", ms)
        await expect(cursor).to_have_text(CURSOR)
        found = CURSOR.search(await cursor.inner_text())
        assert found is not None
        return float(found.group(1))

    assert abs(await read_at(before_ms - 500) - before_c) < READ_TOLERANCE_C  # the level before the step
    assert abs(await read_at(after_ms) - after_c) < READ_TOLERANCE_C  # and after it, on the same chart
    # zoomed in on the last half minute, a click on a chart puts the cursor there, reading every trace
    await page.locator("#trend-cursor-clear").click()
    chart = page.locator('[data-trend="inlet"] svg')
    await page.locator("#trend-zoom-in").click()
    await expect(chart).to_have_attribute("aria-label", re.compile(r"last 150 s$"))
    for _ in range(3):
        await page.locator("#trend-zoom-in").click()
    await expect(chart).to_have_attribute("aria-label", re.compile(r"last 30 s$"))
    box = None
    for _ in range(50):  # the chart is redrawn with every state message: ask until one is laid out
        box = await chart.bounding_box()
        if box is not None:
            break
        await asyncio.sleep(0.1)
    assert box is not None
    await chart.click(position={"x": box["width"] * 0.95, "y": box["height"] / 2})  # a moment ago
    readouts = page.locator("[data-trend-cursor]")
    for index in range(await readouts.count()):  # one cursor, every trace read at its instant
        await expect(readouts.nth(index)).to_have_text(re.compile(r"^at \d"))
    await expect(cursor).to_have_text(CURSOR)
    clicked = CURSOR.search(await cursor.inner_text())
    assert clicked is not None
    assert abs(float(clicked.group(1)) - after_c) < READ_TOLERANCE_C  # a moment ago: the level after the step
    await expect(page.locator("#trend-cursor-time")).to_contain_text("cursor at ")
    await page.screenshot(path=artifact("hmi-trend-cursor.png"))
