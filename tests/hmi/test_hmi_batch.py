"""A batch run from the browser alone: `run_batch` serves the API and the HMI, nobody simulates the operator,
and every glove-work prompt is answered by clicking it in Debian's Chromium; the run panel is watched on the
way and the records must name the person who clicked.

The rig (the simulated line at 500x with every space dry argon, the thin annealed recipe) is the one of
tests/sequences/test_production.py, imported rather than copied so both run the same plant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from controller.api import ApiContext, LiveFeed, TelemetryHistory, create_app
from controller.auth import TokenStore
from controller.batch_run import run_batch, simulated_plan
from controller.config import load_line_config
from controller.line_controller import LineController
from controller.service import bind_listener, url_of
from sequences.batch import BatchResult
from sequences.batch_queue import load_queue
from sequences.operator_desk import OperatorDesk
from tests.hmi.test_hmi_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WAIT_MS, log_in
from tests.sequences.test_production import CLOCK, Rig, kinds

pytestmark = pytest.mark.timeout(180)
PROMPT_WAIT_MS = 90_000  # the plant time between two prompts (pump-down, layer, anneal) at 500x
EXPOSED = "EXPOSED TO NON-INERT"
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "hmi-run-panel.png"
# every prompt of a fresh one-job run, in order, with the title of the phase that asks it
PROMPTED_PHASES = [
    ("load", "load through the outer door"),
    ("open", "open the containers (gloves)"),
    ("place_out_container", "place the outlet container"),
    ("seal", "seal the electrode (gloves)"),
    ("unload", "unload through the outer door"),
]
# Any moment the page shows an exposed item in a non-inert space is kept, not only the moments polled.
WATCH_EXPOSURE = """(marker) => {
  window.__exposedSeen = [];
  const check = () => {
    const text = document.body.textContent;
    const at = text.indexOf(marker);
    if (at >= 0) window.__exposedSeen.push(text.slice(Math.max(0, at - 80), at + marker.length));
  };
  new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
  check();
}"""


@dataclasses.dataclass
class BatchHmi:
    rig: Rig
    task: asyncio.Task[BatchResult]
    url: str
    browser: Browser


@pytest.fixture
def chromium_path() -> str:
    """Fail, never skip, without the browser: a skipped HMI test would pass `make test` untested."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs Debian's chromium")
    return CHROMIUM


@pytest.fixture
async def batch_hmi(tmp_path: Path, chromium_path: str) -> AsyncIterator[BatchHmi]:
    """One job of the thin recipe with the API served and an operator desk that waits for a person."""
    base = load_line_config()
    database = dataclasses.replace(base.database, url=f"sqlite:///{tmp_path / 'line.db'}")
    sequence = dataclasses.replace(base.sequence, base_pressure_timeout_s=3600.0, suspend_settle_s=60.0)
    rig = Rig(dataclasses.replace(base, database=database, sequence=sequence), tmp_path)
    queue = load_queue(rig.queue('[[jobs]]\nrecipe = "thin.toml"\n'))
    listener = bind_listener("127.0.0.1", 0)
    batch = run_batch(
        rig.config,
        queue,
        rig.line(),
        clock=CLOCK,
        desk=OperatorDesk(clock=CLOCK),  # nobody answers by itself
        out=io.StringIO(),
        plan=simulated_plan(rig.config),
        api_listener=listener,
    )
    task = asyncio.create_task(batch)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                yield BatchHmi(rig, task, url_of(listener), browser)
            finally:
                await browser.close()
    finally:
        if not task.done():  # the test failed mid-run: end the batch (and its line) before the checks
            task.cancel()
        await asyncio.wait([task], timeout=60)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the test already said what went wrong
        listener.close()


async def open_hmi(hmi: BatchHmi) -> Page:
    page = await hmi.browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(WAIT_MS)
    await page.goto(hmi.url + "/")
    await page.evaluate(WATCH_EXPOSURE, EXPOSED)
    return page


async def exposures_seen(page: Page) -> list[str]:
    seen: list[str] = await page.evaluate("() => window.__exposedSeen")
    assert EXPOSED not in (await page.locator("body").text_content() or "")
    return seen


async def test_an_operator_runs_a_job_from_the_browser_alone_and_the_record_names_them(
    batch_hmi: BatchHmi, tmp_path: Path
) -> None:
    page = await open_hmi(batch_hmi)
    await log_in(page, "op1", "op1-demo")
    await expect(page.locator("#run-batch")).to_contain_text("started by batch: 0 of 1 jobs finished")
    phase = page.get_by_test_id("run-phase")
    bar = page.locator("#run-progress")
    percents: list[float] = []
    confirmed: list[str] = []
    for step, title in PROMPTED_PHASES:
        prompt = page.locator(f'#prompts li[data-prompt$=":{step}"]')
        await expect(prompt).to_be_visible(timeout=PROMPT_WAIT_MS)
        assert await exposures_seen(page) == []
        # the run panel shows the phase that waits for the glove work, running, further along each time
        await expect(phase).to_contain_text(title)
        await expect(page.get_by_test_id("run-state")).to_have_text("RUNNING")
        await expect(page.locator("#run-queue tbody tr")).to_have_count(1)
        await expect(page.locator("#run-queue tbody tr").first).to_contain_text("running")
        percents.append(float(await bar.evaluate("(node) => node.value")))
        if step == "seal":
            await page.locator("#run-panel").screenshot(path=tmp_path / "hmi-run-panel.png")
            await page.screenshot(path=tmp_path / "hmi-run.png", full_page=True)
            if os.environ.get("DEPLINE_UPDATE_SCREENSHOTS"):  # the README picture; tests never edit it
                await page.locator("#run-panel").screenshot(path=README_SCREENSHOT)
        key = await prompt.get_attribute("data-prompt")
        assert key is not None
        await prompt.get_by_role("button", name="Confirm").click()
        await expect(prompt).to_have_count(0)
        confirmed.append(key)
    assert all(a < b for a, b in itertools.pairwise(percents)), percents  # the bar only moves forward
    assert await exposures_seen(page) == []
    await page.close()  # the API stops with the batch; the page would only reconnect in vain
    result = await asyncio.wait_for(batch_hmi.task, 60)

    [job] = result.jobs
    assert job.outcome == "done"
    assert result.status == "complete"
    records = kinds(await batch_hmi.rig.events(job), "confirm")
    assert [r["key"] for r in records] == confirmed
    assert all(r["user"] == "op1" and r["via"] == "hmi" for r in records)


async def test_stop_from_the_page_asks_first_then_leaves_the_batch_stopped_and_resumable(
    batch_hmi: BatchHmi, tmp_path: Path
) -> None:
    page = await open_hmi(batch_hmi)
    await log_in(page, "op1", "op1-demo")
    load = page.locator('#prompts li[data-prompt$=":load"]')
    await expect(load).to_be_visible(timeout=PROMPT_WAIT_MS)
    anonymous = await page.request.post(batch_hmi.url + "/api/batch/stop")
    assert anonymous.status == 401  # stopping a run is a person's decision, made logged in
    confirm = page.locator("#stop-confirm")
    await page.locator("#stop-batch").click()
    await expect(confirm).to_be_visible()
    await expect(page.locator("#stop-no")).to_be_focused()  # the safe answer is the default
    await page.screenshot(path=tmp_path / "hmi-stop-confirm.png", full_page=True)
    await page.keyboard.press("Enter")  # "No, keep running"
    await expect(confirm).to_be_hidden()
    await page.locator("#stop-batch").click()
    await page.locator("#stop-yes").click()
    await expect(page.locator("#command-result")).to_contain_text("Stop requested by op1: job ")
    await page.close()
    result = await asyncio.wait_for(batch_hmi.task, 60)

    assert result.status == "stopped"
    [job] = result.jobs
    assert job.outcome is None  # unfinished: a new run of the queue resumes it
    assert job.checkpoint == "load:started"
    events = await batch_hmi.rig.events(job)
    assert [(r["user"], r["via"]) for r in kinds(events, "stop_requested")] == [("op1", "hmi")]  # once
    assert ("stopping", "stopped") in [(d["from"], d["to"]) for d in kinds(events, "state")]
    assert kinds(events, "safe_state")
    assert kinds(events, "confirm") == []


async def test_a_controller_without_a_batch_says_so_and_refuses_a_stop() -> None:
    ctl = LineController(load_line_config())  # built, never started: the routes need no plant here
    app = create_app(ApiContext(ctl, TokenStore(), TelemetryHistory(), LiveFeed()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hmi") as http:
        view = (await http.get("/api/batch")).json()
        assert view == {"runs_here": False, "batch": None, "jobs": [], "current": None}
        login = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        stop = await http.post("/api/batch/stop", headers=headers)
        assert stop.status_code == 503
        assert "no batch runs" in stop.json()["detail"]
