"""Command availability in Debian's Chromium: a button the gate would refuse now is disabled with the
gate's reason beside it, the mode is on screen at all times, and asking does not record a command.

The verdicts on screen are compared with the gate's own (`CommandGate.judge`) and with what `submit`
answers for the same command, so the dry run cannot drift from the real judgement. Production mode
during a real batch is covered in tests/hmi/test_hmi_batch.py (the stop/abort test).
"""

from __future__ import annotations

from playwright.async_api import expect

from controller.line.actions import Command, SetPort
from tests.hmi import test_hmi_alarms_items as alarms_items
from tests.hmi import test_hmi_browser as browser_tests
from tests.hmi.test_hmi_browser import Hmi, artifact, open_page

hmi = browser_tests.hmi  # the same fixture as the other browser tests: one line and browser per test


async def test_a_refused_command_is_disabled_with_the_gates_reason_and_a_dry_run_records_nothing(
    hmi: Hmi,
) -> None:
    page = await open_page(hmi)
    await alarms_items.log_in_as(page, "op1", "op1-demo", "operator")
    mode = page.get_by_test_id("mode")
    await expect(mode.locator(".mode-word")).to_have_text("MANUAL")
    await expect(mode).to_contain_text("operators command through the gate")

    # the inlet is in room air and the process chamber is not inert: the gate would refuse the gate valve
    open_gate = page.locator('[data-command="port:inlet_gate:open"]')
    await expect(open_gate).to_be_disabled()
    verdict = hmi.ctl.gate.judge(
        Command(SetPort("inlet_gate", True), "op1", "hmi", meta={"role": "operator"})
    )
    assert not verdict.allowed
    why = page.locator('[data-why="port:inlet_gate:open"]')
    for refusal in verdict.refusals:
        await expect(why).to_contain_text(refusal.reason)
    # closing is the safe direction: allowed, enabled, no reason beside it
    await expect(page.locator('[data-command="port:inlet_gate:close"]')).to_be_enabled()
    await expect(page.locator('[data-why="port:inlet_gate:close"]')).to_have_text("")

    before = len(hmi.ctl.gate.records)
    for _ in range(3):
        response = await page.request.get(hmi.url + "/api/commands/availability")
        assert response.ok
    assert len(hmi.ctl.gate.records) == before  # a dry run is not a command
    body = await response.json()
    assert body["login"] == "log in to command the line"  # asked without a token
    entry = next(c for c in body["commands"] if c["key"] == "port:inlet_gate:open")
    assert entry["allowed"] is False
    assert [r["reason"] for r in entry["refusals"]] == [r.reason for r in verdict.refusals]

    # sent anyway from the page (a script, not the disabled button): the gate judges it the same way
    await page.evaluate(
        """async () => (await import("/hmi/commands.js")).sendCommand(
            { type: "SetPort", port: "inlet_gate", open: true })"""
    )
    result = page.locator("#command-result")
    await expect(result).to_contain_text("REFUSED: open inlet_gate (by op1)")
    record = hmi.ctl.gate.records[-1]
    assert (record.command.user, record.command.origin, record.outcome) == ("op1", "hmi", "refused")
    assert [r.reason for r in record.verdict.refusals] == [r.reason for r in verdict.refusals]
    await page.screenshot(path=artifact("hmi-availability.png"), full_page=True)

    # the gate valve's faceplate, opened from its symbol with the keyboard: its readings, and its open
    # command disabled with the same reasons beside it
    await page.locator('#synoptic [data-port="inlet_gate"]').focus()
    await page.keyboard.press("Enter")
    faceplate = page.locator("#faceplate")
    await expect(faceplate).to_be_visible()
    await expect(page.locator("#faceplate-title")).to_have_text("inlet_gate (gate valve)")
    await expect(page.locator("#faceplate-readings")).to_contain_text("position: ")
    disabled = faceplate.locator('[data-faceplate-command="port:inlet_gate:open"]')
    await expect(disabled).to_be_disabled()
    for refusal in verdict.refusals:
        await expect(disabled.locator("xpath=following-sibling::span")).to_contain_text(refusal.reason)
    await expect(faceplate.locator('[data-faceplate-command="port:inlet_gate:close"]')).to_be_enabled()
    await faceplate.screenshot(path=artifact("hmi-faceplate.png"))
    await page.keyboard.press("Escape")  # the focus is in the picture, not the faceplate: it stays
    await page.get_by_role("button", name="Close faceplate").click()
    await expect(faceplate).to_be_hidden()


async def test_maintenance_greys_out_every_command_for_an_operator_with_the_modes_reason_once(
    hmi: Hmi,
) -> None:
    page = await open_page(hmi)
    login = await page.request.post(hmi.url + "/api/login", data={"user": "eng1", "password": "eng1-demo"})
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    changed = await page.request.post(
        hmi.url + "/api/mode", data={"mode": "maintenance", "reason": "gauge swap"}, headers=headers
    )
    assert changed.ok, await changed.text()
    await alarms_items.log_in_as(page, "op1", "op1-demo", "operator")
    mode = page.get_by_test_id("mode")
    await expect(mode.locator(".mode-word")).to_have_text("MAINTENANCE")
    await expect(mode).to_contain_text("eng1: gauge swap")
    shared = page.locator("#controls-mode")
    await expect(shared).to_have_text(
        "Manual commands refused now: the line is in maintenance: engineers only"
    )
    buttons = page.locator("[data-command]")
    await expect(buttons.first).to_be_disabled()
    states = await buttons.evaluate_all(
        "(nodes) => nodes.map((b) => [b.disabled, b.getAttribute('aria-describedby')])"
    )
    assert len(states) > 10
    assert all(state == [True, "controls-mode"] for state in states), states
    # an engineer may: the same close command is enabled for them
    await alarms_items.log_out(page)
    await alarms_items.log_in_as(page, "eng1", "eng1-demo", "engineer")
    await expect(shared).to_be_hidden()
    await expect(page.locator('[data-command="port:inlet_gate:close"]')).to_be_enabled()
