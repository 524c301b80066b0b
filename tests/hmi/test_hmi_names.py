"""Short human names for the ids an operator sees (`format.js` humanName / humanText), as the page's own
module computes them in Debian's Chromium: a batch by its start and tag, a job by its recipe, an item by
its role in the job, the full id kept for the tooltip."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page

from controller.config.line_config import load_line_config
from tests.hmi.test_hmi_browser import open_page, served_line

BATCH = "B20261206T183028Z-24c1"
FORMAT = "(await import('/hmi/format.js'))"


@pytest.fixture
async def page(chromium_path: str) -> AsyncIterator[Page]:
    async with served_line(chromium_path, load_line_config()) as (hmi, _):
        yield await open_page(hmi)


async def name(page: Page, id_: str) -> str:
    shown: str = await page.evaluate(f"async (id) => {FORMAT}.humanName(id)", id_)
    return shown


async def test_every_kind_of_id_has_a_short_name(page: Page) -> None:
    # the page's time zone is the test's; the batch's start in it
    local = await page.evaluate(
        "() => new Date(Date.UTC(2026, 11, 6, 18, 30, 28)).toLocaleTimeString([], "
        "{ hour: '2-digit', minute: '2-digit', hour12: false })"
    )
    # not today: the day is said too (in the browser's locale's order)
    assert re.fullmatch(rf"Batch (Dec 6|6 Dec) {local} \(24c1\)", await name(page, BATCH))
    assert await name(page, f"{BATCH}-J01") == "J01"
    await page.evaluate(f"async (id) => {FORMAT}.recipeOfJob.set(id, 'thin cell')", f"{BATCH}-J01")
    assert await name(page, f"{BATCH}-J01") == "J01 thin cell"
    assert await name(page, f"{BATCH}-J01-base") == "electrode of J01"
    assert await name(page, f"{BATCH}-J02-box-in") == "inlet container of J02"
    assert await name(page, f"{BATCH}-J02-box-out") == "outlet container of J02"
    assert await name(page, f"{BATCH}-J01-li_foil") == "target li_foil of J01"
    await page.evaluate(f"async (id) => {FORMAT}.materialOf.set(id, 'Li')", f"{BATCH}-J02-T1")
    assert await name(page, f"{BATCH}-J02-T1") == "Li target T1 of J02"
    assert await name(page, "C1") == "C1"  # registered by hand: its own short name
    said = await page.evaluate(
        f"async (text) => {FORMAT}.humanText(text)",
        f"batch {BATCH} owns the line; put the closed container {BATCH}-J01-box-in into inlet",
    )
    batch = await name(page, BATCH)
    assert said == f"“{batch}” owns the line; put the closed container “inlet container of J01” into inlet"
