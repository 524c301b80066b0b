"""The antechamber operations panel in a real browser (Debian's Chromium via Playwright), against a real
controller serving the page, with the simulated line behind it and manual operations offered.

Every wait is Playwright's bounded auto-wait (`expect(...)`), never a sleep-and-hope.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import async_playwright, expect

from controller.config.line_config import load_line_config
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from sequences.plant_clock import PlantClock
from sequences.space_operations import SpaceOperations
from sim_hardware.line import SimLine
from sim_hardware.plant import VirtualClock
from tests.hmi.test_hmi_browser import CHROMIUM_ARGS, Hmi, artifact, log_in, open_page, save_for_readme

SPEED = 200.0
VIRTUAL = VirtualClock(SPEED)  # the simulator's clock, read by the operations' deadlines too


@dataclasses.dataclass
class OpsHmi:
    hmi: Hmi
    ops: SpaceOperations


@pytest.fixture
async def ops_hmi(chromium_path: str) -> AsyncIterator[OpsHmi]:
    async with SimLine(load_line_config(), speed=SPEED, clock=VIRTUAL) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with LineController(config, plan=plan, travel_timeout_s=5.0) as ctl:
            ops = SpaceOperations(ctl, PlantClock(SPEED, source=VIRTUAL.now_s))
            try:
                async with (
                    ControllerService(
                        ctl, state_interval_s=0.2, telemetry_interval_s=0.5, operations=ops
                    ) as service,
                    HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
                    async_playwright() as pw,
                ):
                    browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                    try:
                        yield OpsHmi(Hmi(sim, ctl, server.url, browser), ops)
                    finally:
                        await browser.close()
            finally:
                await ops.close()


async def test_logged_out_the_operation_buttons_are_disabled_and_say_why(ops_hmi: OpsHmi) -> None:
    page = await open_page(ops_hmi.hmi)
    await expect(page.locator("#operations-hint")).to_contain_text("Log in with command permission")
    for space in ("inlet", "outlet"):
        fieldset = page.locator(f'[data-op-space="{space}"]')
        await expect(fieldset.locator("legend")).to_have_text(f"Antechamber {space}")
        for operation in ("cycle", "fill", "pump_down"):
            await expect(fieldset.locator(f'[data-operation="{space}:{operation}"]')).to_be_disabled()
    await expect(page.locator('[data-op-space="process"]')).to_have_count(0)  # antechambers only


async def test_an_operator_cycles_the_inlet_once_from_the_page_and_sees_progress_then_done(
    ops_hmi: OpsHmi,
) -> None:
    page = await open_page(ops_hmi.hmi)
    await log_in(page, "op1", "op1-demo")
    inlet = page.locator('[data-op-space="inlet"]')
    cycles = inlet.get_by_label("Cycles")
    await cycles.fill("1")
    start = inlet.locator('[data-operation="inlet:cycle"]')
    await expect(start).to_have_text("Cycle ×1")
    await expect(start).to_be_enabled()
    await start.focus()
    await page.keyboard.press("Enter")  # keyboard alone is enough
    step = inlet.locator('[data-op-part="step"]')
    await expect(step).to_contain_text("Running: Cycle ×1 by op1 — cycle 1 of 1")
    await expect(inlet.locator("progress")).to_be_visible()
    await expect(start).to_be_disabled()  # one operation per space
    await expect(inlet.locator('[data-operation="inlet:cancel"]')).to_be_visible()
    await page.screenshot(path=artifact("hmi-operation-running.png"), full_page=True)
    await save_for_readme(page.locator("#operations-panel"), "hmi-operations.png")
    last = inlet.locator('[data-op-part="last"]')
    await expect(last).to_contain_text("Last: Cycle ×1 by op1 done", timeout=40_000)
    await expect(step).to_have_text("Idle.")
    await expect(inlet.locator("progress")).to_be_hidden()
    records = [r for r in ops_hmi.hmi.ctl.gate.records if r.command.user == "op1"]
    assert records
    assert all(r.outcome == "done" for r in records)
    await page.screenshot(path=artifact("hmi-operation-done.png"), full_page=True)


async def test_cancel_asks_first_and_the_answer_shows_who_cancelled(ops_hmi: OpsHmi) -> None:
    page = await open_page(ops_hmi.hmi)
    await log_in(page, "op1", "op1-demo")
    outlet = page.locator('[data-op-space="outlet"]')
    await outlet.get_by_label("Cycles").fill("3")
    await outlet.locator('[data-operation="outlet:cycle"]').click()
    await expect(outlet.locator('[data-op-part="step"]')).to_contain_text("Running: Cycle ×3")
    await outlet.locator('[data-operation="outlet:cancel"]').click()
    confirm = outlet.locator('[data-op-part="confirm"]')
    await expect(confirm).to_be_visible()
    await expect(outlet.locator('[data-op-part="cancel-no"]')).to_be_focused()  # the safe answer
    await outlet.locator('[data-op-part="cancel-yes"]').click()
    last = outlet.locator('[data-op-part="last"]')
    await expect(last).to_contain_text("CANCELLED")
    await expect(last).to_contain_text("cancelled by op1")
    await expect(last).to_contain_text("safe state")
    valves = ops_hmi.hmi.ctl.gate.state().spaces["outlet"].valves
    assert valves["rough"].commanded_open is False
    assert valves["gas_fill"].commanded_open is False


async def test_the_api_answers_refusals_with_their_reason_and_status(ops_hmi: OpsHmi) -> None:
    page = await open_page(ops_hmi.hmi)
    url = ops_hmi.hmi.url
    anonymous = await page.request.post(f"{url}/api/spaces/inlet/operations", data={"kind": "fill"})
    assert anonymous.status == 401
    login = await page.request.post(f"{url}/api/login", data={"user": "op1", "password": "op1-demo"})
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    chamber = await page.request.post(
        f"{url}/api/spaces/process/operations", data={"kind": "fill"}, headers=headers
    )
    assert chamber.status == 409
    assert "antechambers only" in (await chamber.json())["detail"]
    unknown = await page.request.post(
        f"{url}/api/spaces/attic/operations", data={"kind": "fill"}, headers=headers
    )
    assert unknown.status == 404
    too_many = await page.request.post(
        f"{url}/api/spaces/inlet/operations", data={"kind": "cycle", "cycles": 11}, headers=headers
    )
    assert too_many.status == 422
    idle = await page.request.post(f"{url}/api/spaces/inlet/operations/cancel", headers=headers)
    assert idle.status == 409
    listing = await (await page.request.get(f"{url}/api/operations")).json()
    assert listing["runs_here"] is True
    assert listing["spaces"] == ["inlet", "outlet"]
    assert listing["operations"] == []
