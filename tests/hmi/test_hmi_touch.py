"""The HMI on a touch panel: Debian's Chromium with touch emulation at 1280x800, driven by taps only.

An operator taps a symbol of the process picture to open its faceplate and taps a command there; both
targets are at least 40 px each way (the symbols' hit squares, the faceplate's buttons), and the
command reaches the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Locator, expect

from controller.config.line_config import load_line_config
from tests.hmi.test_hmi_browser import VIEWPORT, WAIT_MS, Hmi, artifact, served_line

MIN_TARGET_PX = 40.0


@pytest.fixture
async def line(chromium_path: str) -> AsyncIterator[Hmi]:
    async with served_line(chromium_path, load_line_config()) as (hmi, _):
        yield hmi


async def finger_sized(target: Locator) -> None:
    box = None
    for _ in range(50):  # the picture is redrawn with every state message: ask until one is laid out
        box = await target.bounding_box()
        if box is not None:
            break
        await asyncio.sleep(0.1)
    assert box is not None
    assert box["width"] >= MIN_TARGET_PX, box
    assert box["height"] >= MIN_TARGET_PX, box


async def test_a_tap_on_a_symbol_opens_its_faceplate_and_a_tap_there_commands(line: Hmi) -> None:
    context = await line.browser.new_context(viewport=VIEWPORT, has_touch=True, is_mobile=False)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(line.url + "/")
    assert await page.evaluate("() => navigator.maxTouchPoints") > 0
    await page.get_by_label("User").fill("op1")
    await page.get_by_label("Password").fill("op1-demo")
    await page.get_by_role("button", name="Log in").tap()
    await expect(page.get_by_test_id("who")).to_have_text("Logged in: op1 (operator)")

    pump = page.locator('#synoptic [data-pump="inlet"]')
    await expect(pump).to_have_attribute("data-running", "off")
    await finger_sized(pump)
    await pump.tap()
    await expect(page.locator("#faceplate-title")).to_have_text("inlet pump")
    start = page.locator('#faceplate [data-faceplate-command="pump:inlet:on"]')
    await expect(start).to_be_enabled()
    await finger_sized(start)
    await start.tap()
    await expect(pump).to_have_attribute("data-running", "running")
    await expect(page.locator("#faceplate-readings")).to_contain_text("pump: running")

    # a chamber's source is as easy to hit
    source = page.locator('#synoptic [data-source="process:dc_sputter"]')
    await finger_sized(source)
    await source.tap()
    await expect(page.locator("#faceplate-title")).to_contain_text("process source dc_sputter")
    await page.screenshot(path=artifact("hmi-touch-1280x800.png"))
    await context.close()
