"""The operator HMI in a real browser: Debian's Chromium driven by Playwright, against a real controller
serving the page over a real socket, with the simulated line behind it.

Never `playwright install`: the machine cannot download Playwright's browser, and the plant PC would
not either; /usr/bin/chromium is the Debian package `make test` installs. Every wait is Playwright's
bounded auto-wait (`expect(...)`, WAIT_MS), never a sleep-and-hope.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright, expect

from controller.api.trend_history import TrendHistory
from controller.config.line_config import LineConfig, load_line_config
from controller.historian.store import Historian
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from sim_hardware.line import SimLine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
DOCS = Path(__file__).resolve().parents[2] / "docs"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hmi"  # git ignores it
ATMOSPHERE_WORDS = {
    "air": "AIR",
    "vacuum": "VACUUM",
    "inert_in_spec": "INERT (in spec)",
    "unknown": "UNKNOWN",
}


def artifact(name: str) -> Path:
    """Where a test keeps a screenshot for people to look at after the run (CI collects the folder)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


async def save_for_readme(view: Page | Locator, name: str) -> None:
    """The README's pictures are refreshed only on request (DEPLINE_UPDATE_SCREENSHOTS=1): a test run
    never edits the repository."""
    if os.environ.get("DEPLINE_UPDATE_SCREENSHOTS"):
        await view.screenshot(path=DOCS / name)


@dataclasses.dataclass
class Hmi:
    sim: SimLine
    ctl: LineController
    url: str
    browser: Browser


@contextlib.asynccontextmanager
async def served_line(
    chromium_path: str,
    base: LineConfig,
    *,
    trends: TrendHistory | None = None,
    historian: Historian | None = None,
) -> AsyncIterator[tuple[Hmi, ControllerService]]:
    """The simulated line at 200x, its controller and API on a free port, and a browser to open pages."""
    async with SimLine(base, speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with (
            LineController(config, plan=plan, travel_timeout_s=5.0) as ctl,
            ControllerService(
                ctl, state_interval_s=0.2, telemetry_interval_s=0.5, trends=trends, historian=historian
            ) as service,
            HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                yield Hmi(sim, ctl, server.url, browser), service
            finally:
                await browser.close()


@pytest.fixture
async def hmi(chromium_path: str) -> AsyncIterator[Hmi]:
    base = load_line_config()
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with served_line(chromium_path, base) as (line, _):
        yield line


async def open_page(hmi: Hmi) -> Page:
    page = await hmi.browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(WAIT_MS)
    await page.goto(hmi.url + "/")
    return page


async def log_in(page: Page, user: str, password: str) -> None:
    await page.get_by_label("User").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("who")).to_have_text(f"Logged in: {user} (operator)")


async def register_items(page: Page, hmi: Hmi) -> None:
    """A sealed container with an electrode in the inlet, registered through the API as an engineer."""
    login = await page.request.post(hmi.url + "/api/login", data={"user": "eng1", "password": "eng1-demo"})
    assert login.ok, await login.text()
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    for body in (
        {"id": "C1", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True},
        {"id": "E1", "kind": "electrode", "material": "Li/Cu", "location": "C1"},
    ):
        response = await page.request.post(hmi.url + "/api/items", data=body, headers=headers)
        assert response.status == 201, await response.text()


READING_STATUS = "reading the line every 1 s (log in for the live feed)"


async def test_synoptic_shows_every_space_with_its_atmosphere_in_words_and_live_values(hmi: Hmi) -> None:
    page = await open_page(hmi)
    await expect(page.locator("#feed-status")).to_have_text(READING_STATUS)  # nobody logged in yet
    for space in hmi.ctl.config.spaces:
        await expect(page.locator(f'[data-space="{space.name}"]')).to_be_visible()
    for port in hmi.ctl.config.ports:
        await expect(page.locator(f'[data-port="{port.name}"]')).to_contain_text("meas:")
    # the inlet starts in room air; the words say so, not only the colour
    await expect(page.locator('[data-atmosphere="inlet"]')).to_have_text("AIR")
    inlet = page.locator('[data-space="inlet"]')
    await expect(inlet).to_contain_text("pressure: ")
    await expect(inlet).not_to_contain_text("pressure: unknown")  # once the gauge has been read
    await expect(inlet).to_contain_text("frost point: ")
    await expect(inlet).to_contain_text("O2: ")
    readings = hmi.ctl.model.readings
    sensed = set(readings.frost) | set(readings.o2)
    for state in hmi.ctl.gate.state().spaces.values():  # the page agrees with the controller
        word = ATMOSPHERE_WORDS.get(state.atmosphere.value)
        if state.name not in sensed and state.atmosphere.value in ("air", "unknown"):
            word = "UNKNOWN (no sensor)"  # only a sensor tells air from argon: no guess on screen
        if word is not None:
            await expect(page.locator(f'[data-atmosphere="{state.name}"]')).to_have_text(word)
    # items are drawn where they are, with their container's seal
    await register_items(page, hmi)
    await expect(inlet).to_contain_text("C1: container sealed")
    await expect(inlet).to_contain_text("E1: electrode in C1")
    await expect(inlet).not_to_contain_text("UNSEALED")  # sealed: nothing is out of its container
    # nobody logged in: no command can be sent from the page
    await expect(page.locator('[data-command="port:inlet_gate:open"]')).to_be_disabled()
    await expect(page.locator("#login-user")).to_be_visible()
    await page.screenshot(path=artifact("hmi-synoptic.png"), full_page=True)
    await save_for_readme(page, "hmi-synoptic.png")


async def test_the_page_reads_the_line_for_anybody_and_gets_the_live_feed_once_somebody_logs_in(
    chromium_path: str,
) -> None:
    async with served_line(chromium_path, load_line_config()) as (line, service):
        page = await open_page(line)
        status = page.locator("#feed-status")
        await expect(status).to_have_text(READING_STATUS)
        await expect(page.locator('[data-atmosphere="inlet"]')).to_have_text("AIR")  # read over HTTP
        assert service.feed.clients == 0

        await log_in(page, "op1", "op1-demo")
        await expect(status).to_have_text("live feed: connected")
        async with asyncio.timeout(WAIT_MS / 1000):
            while service.feed.users() != {"op1": 1}:  # noqa: ASYNC110 (the feed has no event to wait on)
                await asyncio.sleep(0.05)
        # the feed keeps the page current: state messages arrive at the service's rate (0.2 s here)
        received = "async () => (await import('/hmi/live.js')).hmi.stateReceivedMs"
        first = await page.evaluate(received)
        await page.wait_for_function(f"async () => ({received})() > {first} + 500")
        await expect(page.locator('[data-space="inlet"]')).not_to_contain_text("STALE")

        await page.get_by_role("button", name="Log out").click()
        await expect(status).to_have_text(READING_STATUS)
        async with asyncio.timeout(WAIT_MS / 1000):
            while service.feed.clients:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def test_operator_logs_in_sees_a_refused_gate_with_its_reason_and_acknowledges_an_alarm(
    hmi: Hmi,
) -> None:
    page = await open_page(hmi)
    await expect(page.locator('[data-atmosphere="inlet"]')).to_have_text("AIR")
    await log_in(page, "op1", "op1-demo")

    # keyboard alone is enough to command the line
    close_gate = page.locator('[data-command="port:inlet_gate:close"]')
    await expect(close_gate).to_be_enabled()
    await close_gate.focus()
    await page.keyboard.press("Enter")
    result = page.locator("#command-result")
    await expect(result).to_contain_text("Done: close inlet_gate (by op1)")
    # the inlet is in room air and the process chamber is not: the gate would refuse, so the button is
    # disabled; sent anyway (by a script) the gate refuses it and the page says why
    await expect(page.locator('[data-command="port:inlet_gate:open"]')).to_be_disabled()
    await page.evaluate(
        """async () => (await import("/hmi/commands.js")).sendCommand(
            { type: "SetPort", port: "inlet_gate", open: true })"""
    )
    await expect(result).to_contain_text("REFUSED: open inlet_gate (by op1)")
    record = next(r for r in reversed(hmi.ctl.gate.records) if r.command.user == "op1")
    assert record.outcome == "refused"
    assert record.command.origin == "hmi"
    for refusal in record.verdict.refusals:
        await expect(result.locator(".refusal").filter(has_text=refusal.reason)).to_have_count(1)
    # the readings behind it in words and units, not as the API's field names
    assert record.verdict.refusals[0].evidence
    await expect(result).to_contain_text("(inlet: air; process: air)")
    await expect(result).not_to_contain_text("_pa")
    await expect(result).not_to_contain_text("type=")
    words = await page.evaluate(
        """async () => {
            const { evidenceText } = await import("/hmi/commands.js");  // the page's own instance
            return [evidenceText("pressure_pa", 101325), evidenceText("dp_pa", 250),
                    evidenceText("limit_c", 179), evidenceText("predicted_o2_ppmv", 12.3456),
                    evidenceText("items", ["E1", "E2"])];
        }"""
    )
    assert words == [
        "pressure: 101 kPa",
        "pressure difference: 250 Pa",
        "limit: 179 °C",
        "predicted O2: 12.35 ppm",
        "items: E1, E2",
    ]
    await expect(page.locator('[data-port="inlet_gate"]')).to_contain_text("meas: closed")
    await page.screenshot(path=artifact("hmi-refused.png"), full_page=True)

    hmi.ctl.alarms.define(AlarmDefinition("test.horn", Severity.HIGH, "horn test", "Acknowledge it."))
    hmi.ctl.alarms.raise_alarm("test.horn", time.time(), {"text": "the horn sounds", "pressure_pa": math.inf})
    banner = page.locator("#alarm-banner")
    # not an exact count: on a loaded machine a link alarm ("device not answering") may be up as well
    await expect(banner).to_contain_text(re.compile(r"[1-9]\d* unacknowledged"))
    row = page.locator('tr[data-alarm="test.horn"]')
    await expect(row).to_contain_text("HIGH")
    await expect(row).to_contain_text("the horn sounds")
    await expect(row).to_contain_text("Acknowledge it.")
    await page.screenshot(path=artifact("hmi-alarm.png"), full_page=True)
    await row.get_by_role("button", name="Acknowledge test.horn").click()
    await expect(row).to_contain_text("acknowledged by op1")
    await expect(row.get_by_role("button", name="Acknowledge test.horn")).to_have_count(0)
    assert hmi.ctl.alarms.get("test.horn").acked_by == "op1"


async def test_page_and_assets_come_from_the_controller_with_no_outside_source(hmi: Hmi) -> None:
    page = await hmi.browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(WAIT_MS)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = await page.goto(hmi.url + "/")
    assert response is not None
    assert "default-src 'self'" in response.headers["content-security-policy"]
    await expect(page.locator('[data-atmosphere="inlet"]')).to_have_text("AIR")
    assert requested, "the page made no requests"
    outside = [url for url in requested if not url.startswith((hmi.url, hmi.url.replace("http", "ws", 1)))]
    assert outside == []
    missing = await page.request.get(hmi.url + "/hmi/nothing.js")
    assert missing.status == 404
