"""A process chamber's equipment on the process picture, and the faceplates of its devices, in Debian's
Chromium against a real controller and the simulated line.

The sources of the chamber's source table, its substrate heater and its gas inlet are drawn as symbols
with their state; selecting one opens its faceplate with the device's readings, a trend of them, whether
the device answers, and the faults it reports decoded into the manual's words (a heater controller's
sensor break, injected in the simulator's controller, reads "sensor break" there; a source supply's
latched fault code reads as the supply's fault).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from controller.config.line_config import load_line_config
from drivers.deposition_sources import FaultCode
from sim_hardware.faults import Fault, inject
from tests.hmi.test_hmi_browser import WAIT_MS, Hmi, artifact, open_page, served_line

SOME_POINTS = re.compile(r"^([2-9]|\d{2,})$")


@pytest.fixture
async def line(chromium_path: str) -> AsyncIterator[Hmi]:
    async with served_line(chromium_path, load_line_config()) as (hmi, _):
        yield hmi


async def test_sources_heater_and_gas_inlet_are_drawn_on_the_chamber_with_their_state(line: Hmi) -> None:
    page = await open_page(line)
    topology = await (await page.request.get(line.url + "/api/topology")).json()
    [chamber] = [s for s in topology["spaces"] if s["kind"] == "process_chamber"]
    assert [s.name for s in line.ctl.config.sources_in("process")] == [
        e["name"] for e in chamber["source_table"]
    ]
    picture = page.locator("#synoptic svg.picture")
    for entry in chamber["source_table"]:
        symbol = picture.locator(f'[data-source="process:{entry["name"]}"]')
        # all off at start, read from the device
        await expect(symbol).to_have_attribute("data-state", "off", timeout=WAIT_MS)
        await expect(symbol.locator("title")).to_contain_text(re.compile(r": off, 0 W"))
    heater = picture.locator('[data-heater="process"]')
    await expect(heater).to_contain_text(re.compile(r"SP -?\d+ · PV -?\d+\.\d °C"))
    await expect(heater).not_to_have_class(re.compile("eq-fault"))
    await expect(picture.locator('[data-gas="process"]')).to_contain_text(
        re.compile(r"Ar: 0\.0 sccm \(SP 0\.0\)")
    )
    # the antechambers have none of it
    await expect(
        picture.locator('[data-space="inlet"] [data-source], [data-space="inlet"] [data-heater]')
    ).to_have_count(0)

    await picture.locator('[data-source="process:rf_sputter"]').click()
    faceplate = page.locator("#faceplate")
    await expect(page.locator("#faceplate-title")).to_have_text(
        re.compile(r"^process source rf_sputter \(rf sputter, ")
    )
    await expect(page.locator("#faceplate-readings")).to_contain_text("rf_sputter.power: 0 W")
    await expect(page.locator("#faceplate-readings")).not_to_contain_text(
        "dc_sputter"
    )  # its own channels only
    sources_device = chamber["devices"]["deposition_sources"]
    await expect(page.locator("#faceplate-device")).to_contain_text(
        f"{sources_device} (deposition sources): answering"
    )
    await expect(page.locator("#faceplate-trend svg")).to_have_attribute("data-points", SOME_POINTS)
    await faceplate.screenshot(path=artifact("hmi-faceplate-source.png"))

    # the supply trips on its cooling water: the symbol goes abnormal, the faceplate says why in its words
    line.sim.bound[sources_device].sim.trip("rf_sputter", FaultCode.COOLING_WATER)
    symbol = picture.locator('[data-source="process:rf_sputter"]')
    await expect(symbol).to_have_attribute("data-state", "fault", timeout=WAIT_MS)
    await expect(symbol).to_contain_text("FAULT")
    await expect(page.locator("#faceplate-readings")).to_contain_text(
        "rf_sputter: FAULT latched: cooling water (code 7)"
    )
    await expect(picture.locator('[data-source="process:dc_sputter"]')).to_have_attribute("data-state", "off")
    await page.locator("#synoptic").screenshot(path=artifact("hmi-picture-source-fault.png"))


async def test_a_heater_fault_is_decoded_in_its_symbol_and_faceplate(line: Hmi) -> None:
    page = await open_page(line)
    topology = await (await page.request.get(line.url + "/api/topology")).json()
    [chamber] = [s for s in topology["spaces"] if s["kind"] == "process_chamber"]
    heater_device = chamber["devices"]["temperature_controller"]
    heater = page.locator('#synoptic [data-heater="process"]')
    await heater.click()
    await expect(page.locator("#faceplate-title")).to_have_text("process substrate heater")
    device = page.locator("#faceplate-device")
    await expect(device).to_contain_text("reports no fault", timeout=WAIT_MS)
    await expect(page.locator("#faceplate-trend svg path[data-channel='temperature']")).to_have_count(1)

    inject(line.sim, Fault("heater_sensor_break", device=heater_device))
    # the controller's status word, decoded as the alarms decode it, on the faceplate itself
    await expect(device.locator("li.fault")).to_contain_text(["HIGH: sensor break"], timeout=WAIT_MS)
    await expect(device).not_to_contain_text("reports no fault")
    await expect(heater).to_have_class(re.compile("eq-fault"))
    await expect(heater).to_contain_text("FAULT")
    await page.locator("#faceplate").screenshot(path=artifact("hmi-faceplate-heater-fault.png"))
    await page.locator("#synoptic").screenshot(path=artifact("hmi-picture-heater-fault.png"))
