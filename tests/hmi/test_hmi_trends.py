"""The HMI's live trends in a real browser, against a real controller and the simulated line.

The charts are fed by the page's own WebSocket state messages; the test reads what an operator reads (the
axis label and the latest value text) and compares it with the controller's own state.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from controller.config import load_line_config
from controller.line_controller import LineController
from controller.poller import PollPlan, Priority
from controller.service import ControllerService, HttpServer, bind_listener
from sim_hardware.line import SimLine
from tests.hmi.test_hmi_browser import CHROMIUM, CHROMIUM_ARGS, Hmi, open_page, save_for_readme

PRESSURE_FACTOR = 3.0  # the sim drifts between the page's sample and the gate's state; air stays air
LATEST = re.compile(r"latest: ([-+0-9.e]+) Pa$")


@pytest.fixture
def chromium_path() -> str:
    """Fail, never skip, without the browser (as in test_hmi_browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs Debian's chromium")
    return CHROMIUM


@pytest.fixture
async def line(chromium_path: str) -> AsyncIterator[Hmi]:
    async with SimLine(load_line_config(), speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with (
            LineController(config, plan=plan, travel_timeout_s=5.0) as ctl,
            ControllerService(ctl, state_interval_s=0.2, telemetry_interval_s=0.5) as service,
            HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                yield Hmi(sim, ctl, server.url, browser)
            finally:
                await browser.close()


async def test_inlet_pressure_trend_is_log_scale_in_pa_and_agrees_with_the_controller(
    line: Hmi, tmp_path: Path
) -> None:
    page = await open_page(line)
    chart = page.locator('[data-trend="inlet:pressure"] svg')
    await expect(chart).to_have_attribute("data-points", re.compile(r"^([3-9]|\d{2,})$"))
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
    await expect(page.locator('[data-trend="inlet:pressure"]')).to_contain_text("-30 min")
    await expect(chart).to_have_attribute("data-points", re.compile(r"^([3-9]|\d{2,})$"))
    await expect(chart.locator("path.trend-line")).to_have_attribute("d", re.compile(r"^M[\d.]+ [\d.]+ L"))
    await page.screenshot(path=tmp_path / "hmi-trends.png", full_page=True)
    await save_for_readme(page.locator("#trends").locator(".."), "hmi-trends.png")
