"""The process picture in Debian's Chromium: drawn from each line's own topology, with its symbols showing
what the controller knows (a door whose limit switches disagree with its command is drawn so).

Screenshots of every line's picture are kept in the artifacts folder; the README's picture of the
standard line is refreshed on request (DEPLINE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from controller.config.line_config import LineConfig, load_line_config
from sim_hardware.faults import Fault, inject
from tests.hmi.test_hmi_browser import WAIT_MS, artifact, open_page, save_for_readme, served_line

LINES = Path(__file__).resolve().parents[2] / "deploy" / "lines"
CONFIGS = [None, *sorted(p.name for p in LINES.glob("*.toml"))]


def line_config(name: str | None) -> LineConfig:
    return load_line_config(None if name is None else LINES / name)


@pytest.mark.parametrize("config_name", CONFIGS, ids=lambda n: n or "standard")
async def test_the_process_picture_of_each_line_is_drawn_from_its_topology(
    chromium_path: str, config_name: str | None
) -> None:
    async with served_line(chromium_path, line_config(config_name)) as (line, _):
        config = line.ctl.config
        page = await open_page(line)
        picture = page.locator("#synoptic svg.picture")
        await expect(picture).to_be_visible()
        topology = await (await page.request.get(line.url + "/api/topology")).json()
        assert [s["name"] for s in topology["spaces"]] == [s.name for s in config.spaces]
        for space in topology["spaces"]:
            vessel = picture.locator(f'[data-space="{space["name"]}"]')
            await expect(vessel).to_contain_text(space["label"])
            if config_name is None:  # the variants' chamber gauges are over-range at atmosphere: unknown
                await expect(vessel).not_to_contain_text("pressure: unknown", timeout=WAIT_MS)
            await expect(picture.locator(f'[data-pump="{space["name"]}"]')).to_have_attribute(
                "data-running", "off"
            )
            await expect(picture.locator(f'[data-turbo="{space["name"]}"]')).to_have_count(
                int(space["turbo"])
            )
            for valve in space["valves"]:
                symbol = picture.locator(f'[data-valve="{space["name"]}:{valve}"]')
                # the small valves have no limit switch: their position is unknown, never guessed
                expected = "closed" if valve == "turbo_gate" else "unknown"
                await expect(symbol).to_have_attribute("data-position", expected)
            if not (space["frost_sensor"] or space["o2_sensor"]):  # no sensor: no guess at the atmosphere
                await expect(vessel.locator("[data-atmosphere]")).to_have_text("UNKNOWN (no sensor)")
        for port in config.ports:
            symbol = picture.locator(f'[data-port="{port.name}"]')
            await expect(symbol).to_have_attribute("data-position", "closed")
            await expect(symbol).to_contain_text("meas: closed")
        # the holder, not the drawing: the drawing is replaced at every state message
        await page.locator("#synoptic").screenshot(path=artifact(f"hmi-picture-{config.name}.png"))
        if config_name is None:
            await save_for_readme(page.locator("#synoptic"), "hmi-process-picture.png")


async def test_a_door_whose_limit_switches_disagree_with_its_command_is_drawn_so(chromium_path: str) -> None:
    base = load_line_config()
    async with served_line(chromium_path, base) as (line, _):
        page = await open_page(line)
        door = page.locator('#synoptic [data-port="inlet.outer"]')
        await expect(door).to_have_attribute("data-position", "closed")
        inject(line.sim, Fault("stuck_actuator", actuator="inlet.outer"))
        login = await page.request.post(line.url + "/api/login", data={"user": "op1", "password": "op1-demo"})
        headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
        sent = await page.request.post(
            line.url + "/api/commands",
            data={"type": "SetPort", "port": "inlet.outer", "open": True},
            headers=headers,
        )
        assert (await sent.json())["outcome"] == "done", await sent.text()
        await expect(door).to_have_attribute("data-commanded", "open")
        # within its travel time it is moving; past it the supervisor's alarm says it is stuck
        await expect(door).to_have_attribute("data-position", "disagree", timeout=15_000)
        assert await door.get_attribute("data-measured") in ("closed", "between")  # stuck: not open
        await expect(door).to_contain_text("DISAGREES")
        await expect(door.locator("title")).to_contain_text("commanded open but limit switches say ")
        assert any(a.id == "position.inlet.outer" for a in line.ctl.alarms.active())
        await page.locator("#synoptic").screenshot(path=artifact("hmi-picture-disagree.png"))
