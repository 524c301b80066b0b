"""Alarm shelving and an item's exposure record, in a real browser against the simulated line.

Shelving is a judgement about the plant: the page offers it only to roles that may (engineers), and
the shelved list must say who hid the alarm, why and until when. The exposure record is opened from the
item's label in the synoptic, the place an operator sees the item.
"""

from __future__ import annotations

import time

from playwright.async_api import Page, expect

from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from tests.hmi import test_hmi_browser as browser_tests
from tests.hmi.test_hmi_browser import Hmi, open_page, save_for_readme

hmi = browser_tests.hmi  # the same fixture, so both files run the same line and browser


async def log_in_as(page: Page, user: str, password: str, role: str) -> None:
    await page.get_by_label("User").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("who")).to_have_text(f"Logged in: {user} ({role})")


async def log_out(page: Page) -> None:
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator("#login-user")).to_be_visible()


async def register(page: Page, hmi: Hmi, *bodies: dict[str, object]) -> None:
    login = await page.request.post(hmi.url + "/api/login", data={"user": "eng1", "password": "eng1-demo"})
    assert login.ok, await login.text()
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    for body in bodies:
        response = await page.request.post(hmi.url + "/api/items", data=body, headers=headers)
        assert response.status == 201, await response.text()


async def test_only_an_engineer_may_shelve_and_the_shelf_says_who_why_and_until_when(hmi: Hmi) -> None:
    page = await open_page(hmi)
    hmi.ctl.alarms.define(AlarmDefinition("test.horn", Severity.HIGH, "horn test", "Acknowledge it."))
    hmi.ctl.alarms.define(
        AlarmDefinition(
            "test.trip", Severity.CRITICAL, "trip test", "Safe the line.", trip="safe", shelvable=False
        )
    )
    hmi.ctl.alarms.raise_alarm("test.horn", time.time(), {"text": "the horn sounds"})
    hmi.ctl.alarms.raise_alarm("test.trip", time.time(), {"text": "the trip fired"})
    row = page.locator('tr[data-alarm="test.horn"]')

    await log_in_as(page, "op1", "op1-demo", "operator")
    await expect(row.get_by_role("button", name="Acknowledge test.horn")).to_be_visible()
    await expect(page.locator("[data-shelve]")).to_have_count(0)
    await log_out(page)

    await log_in_as(page, "eng1", "eng1-demo", "engineer")
    # the server's refusal reaches the engineer in words
    await page.get_by_role("button", name="Shelve test.trip", exact=True).click()
    await page.get_by_label("Reason", exact=True).fill("testing a trip")
    await page.get_by_role("button", name="Shelve alarm").click()
    await expect(page.locator("#shelve-error")).to_contain_text("Not shelved: ")
    assert hmi.ctl.alarms.get("test.trip").shelf is None
    await page.get_by_role("button", name="Cancel").click()

    await row.get_by_role("button", name="Shelve test.horn", exact=True).click()
    await page.get_by_label("Reason", exact=True).fill("horn under repair")
    await page.get_by_label("Expiry", exact=True).select_option(label="1 h")
    before = time.time()
    await page.get_by_role("button", name="Shelve alarm").click()
    shelved = page.locator('tr[data-shelved="test.horn"]')
    await expect(shelved).to_contain_text("eng1")
    await save_for_readme(page.locator("#alarms").locator(".."), "hmi-alarms.png")
    await expect(shelved).to_contain_text("horn under repair")
    await expect(row).to_have_count(0)
    shelf = hmi.ctl.alarms.get("test.horn").shelf
    assert shelf is not None
    assert (shelf.user, shelf.reason) == ("eng1", "horn under repair")
    assert before + 3000 < shelf.until_s < time.time() + 3700
    await expect(shelved.locator("td").nth(3)).not_to_have_text("—")  # until when, as a time of day

    await shelved.get_by_role("button", name="Unshelve test.horn").click()
    await expect(shelved).to_have_count(0)
    await expect(row).to_be_visible()
    assert hmi.ctl.alarms.get("test.horn").shelf is None


async def test_an_item_in_the_synoptic_opens_its_exposure_record(hmi: Hmi) -> None:
    page = await open_page(hmi)
    await expect(page.locator('[data-atmosphere="inlet"]')).to_have_text("AIR")
    await register(
        page,
        hmi,
        {"id": "C1", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True},
        {"id": "E1", "kind": "electrode", "material": "Li/Cu", "location": "C1"},
        {"id": "E2", "kind": "electrode", "material": "Li/Cu", "location": "inlet"},
    )
    panel = page.locator("#item-panel")
    await expect(panel).to_be_hidden()

    await page.locator('#synoptic [data-item="E1"]').click()
    await expect(page.locator("#item-verdict")).to_have_text("E1: never exposed to a non-inert atmosphere")
    await expect(panel.locator("#item-path tbody tr")).to_have_count(1)
    await expect(panel.locator("#item-path tbody tr")).to_contain_text("inlet")
    await expect(panel.locator("#item-entries tbody")).to_have_text("none")

    # the keyboard way: the focus stays on the item while the synoptic is redrawn around it
    await page.locator("#item-close").click()
    await expect(panel).to_be_hidden()
    drawing = await page.locator("#synoptic svg").element_handle()
    await page.locator('#synoptic [data-item="E1"]').focus()
    await page.wait_for_function("(old) => !old.isConnected", arg=drawing)  # redrawn by a state message
    focused = await page.evaluate("() => document.activeElement.getAttribute('data-item')")
    assert focused == "E1"
    await page.keyboard.press("Enter")
    await expect(page.locator("#item-verdict")).to_have_text("E1: never exposed to a non-inert atmosphere")

    # a bare electrode registered in room air: the ledger marks it exposed from its registration on
    await page.locator('#synoptic [data-item="E2"]').click()
    verdict = page.locator("#item-verdict")
    await expect(verdict).to_contain_text("E2: EXPOSED to a non-inert atmosphere")
    await expect(panel.locator("#item-path tbody tr")).to_contain_text("inlet")
    entry = panel.locator('#item-entries tr[data-entry="non_inert"]')
    await expect(entry).to_contain_text("exposed in a non-inert atmosphere")
    await expect(entry).to_contain_text("inlet")
    await expect(entry).to_contain_text("AIR")
    await expect(entry.locator("td").nth(4)).to_have_text("yes")
    record = hmi.ctl.ledger.records["E2"]
    assert record.ever_exposed_to_non_inert

    await page.locator('#synoptic [data-item="C1"]').click()  # a container carries no record: said so
    await expect(verdict).to_contain_text("No exposure record: item 'C1': it has no exposure record")
    await page.get_by_role("button", name="Close exposure record").click()
    await expect(panel).to_be_hidden()
