"""A batch run from the browser alone: the controller serves the HMI with nothing started, nobody simulates
the operator; a person logs in, starts the queue from the run panel, holds and resumes it, answers every
glove-work prompt by clicking it in Debian's Chromium, and reads the end-of-run record. The records must
name who clicked.

The rig (the simulated line at 500x with every space dry argon, the thin annealed recipe) is the one of
tests/sequences/rig.py, imported rather than copied so both run the same plant. The line is
served by `serve_line`, exactly what `depline run` and `depline demo --operator hmi` run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from controller.api.app import ApiContext, LiveFeed, TelemetryHistory, create_app
from controller.config.line_config import load_line_config
from controller.line.controller import LineController
from controller.service.batch_run import simulated_plan
from controller.service.line_service import bind_listener, serve_line, url_of
from controller.users.auth import TokenStore
from sequences.batch_store import JobRow
from tests.hmi.test_hmi_browser import CHROMIUM_ARGS, VIEWPORT, WAIT_MS, artifact, log_in, save_for_readme
from tests.sequences.rig import Rig, kinds
from tests.sequences.test_production import SPEED, THIN_ANNEALED

pytestmark = pytest.mark.timeout(240)
PROMPT_WAIT_MS = 90_000  # the plant time between two prompts (pump-down, layer, anneal) at 500x
SERVE_TIMEOUT_S = 60.0
EXPOSED = "UNSEALED IN A NON-INERT ATMOSPHERE"  # what the process picture says of such an item
RUN_HELD = "HELD — waiting for a person to resume, stop or abort"
QUEUE = "thin-job"
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
    url: str
    browser: Browser

    async def jobs(self) -> list[JobRow]:
        """The batch's jobs as recorded (the one batch this rig's database holds)."""
        rows = await self.rig.batches()
        assert len(rows) == 1, rows
        return await self.rig.jobs(rows[0])


@pytest.fixture
async def batch_hmi(tmp_path: Path, chromium_path: str) -> AsyncIterator[BatchHmi]:
    """The served line with a one-job queue of the thin recipe in its queue folder, nothing started."""
    base = load_line_config()
    queues = tmp_path / "queues"
    queues.mkdir()
    database = dataclasses.replace(base.database, url=f"sqlite:///{tmp_path / 'line.db'}")
    sequence = dataclasses.replace(
        base.sequence, base_pressure_timeout_s=3600.0, suspend_settle_s=60.0, queue_dir=str(queues)
    )
    rig = Rig(dataclasses.replace(base, database=database, sequence=sequence), queues, speed=SPEED)
    rig.file("thin.toml", THIN_ANNEALED)
    rig.queue('name = "one thin job"\n[[jobs]]\nrecipe = "thin.toml"\n', name=f"{QUEUE}.toml")
    listener = bind_listener("127.0.0.1", 0)
    url = url_of(listener)
    stop, ready = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with rig.line()() as line:
            plan = simulated_plan(line)
            await serve_line(line, listener, stop, announce=lambda _: ready.set(), plan=plan, clock=rig.clock)

    task = asyncio.create_task(serve())
    try:
        up = asyncio.ensure_future(ready.wait())
        await asyncio.wait({up, task}, timeout=SERVE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if task.done():
            task.result()  # raises what kept the line from being served
        assert ready.is_set(), f"the line was not served within {SERVE_TIMEOUT_S:.0f} s"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                yield BatchHmi(rig, url, browser)
            finally:
                await browser.close()
    finally:
        stop.set()  # an orderly end: a running batch is stopped safe, then the line
        await asyncio.wait([task], timeout=120)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled():
            task.exception()  # retrieved: the test already said what went wrong
        listener.close()


async def start_queue(page: Page) -> None:
    """Start the thin job from the run panel, answering the page's own confirmation."""
    await expect(page.locator(f'#queue-select option[value="{QUEUE}"]')).to_have_count(1)
    await page.locator("#queue-select").select_option(QUEUE)
    await expect(page.locator("#start-batch")).to_be_enabled()
    await page.locator("#start-batch").click()
    await expect(page.locator("#start-question")).to_contain_text(f"Start queue {QUEUE} (1 job: ")
    await expect(page.locator("#start-no")).to_be_focused()  # the safe answer is the default
    await page.locator("#start-yes").click()
    # the start is answered once every recipe is held against the line: seconds on a loaded machine
    await expect(page.locator("#command-result")).to_contain_text("started by op1", timeout=WAIT_MS)


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


# In the long profile only (-m slow): under `make test`'s four workers on two cores its simulated devices
# miss their 0.5 s reply time often enough (remote I/O, MFC, QCM) that the line, correctly, faults or
# aborts the job; it failed 2 of 3 fresh-clone runs on 2026-12-07. The demo batch driven from the browser
# (test_hmi_demo.py) keeps the same path in `make test`.
@pytest.mark.slow
async def test_an_operator_starts_holds_resumes_and_finishes_a_job_from_the_browser_alone(
    batch_hmi: BatchHmi,
) -> None:
    page = await open_hmi(batch_hmi)
    await expect(page.locator("#run-batch")).to_contain_text("No batch has run yet")
    await expect(page.locator("#start-batch")).to_be_disabled()  # nobody logged in
    await log_in(page, "op1", "op1-demo")
    await start_queue(page)
    await expect(page.locator("#run-batch")).to_contain_text("started by op1: running; 0 of 1 jobs finished")
    phase = page.get_by_test_id("run-phase")
    state = page.get_by_test_id("run-state")
    bar = page.locator("#run-progress")
    percents: list[float] = []
    confirmed: list[str] = []
    for step, title in PROMPTED_PHASES:
        prompt = page.locator(f'#prompts li[data-prompt$=":{step}"]')
        await expect(prompt).to_be_visible(timeout=PROMPT_WAIT_MS)
        # at 1280x800 the prompt is on screen without scrolling, and the page itself cannot scroll
        await expect(prompt).to_be_in_viewport()
        assert await page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight")
        await expect(page.locator("#prompts-title")).to_have_text("The line is waiting for you")
        assert await exposures_seen(page) == []
        # the run panel shows the phase that waits for the glove work, running, further along each time
        await expect(phase).to_contain_text(title)
        await expect(state).to_have_text("RUNNING")
        await expect(page.locator("#run-queue tbody tr")).to_have_count(1)
        await expect(page.locator("#run-queue tbody tr").first).to_contain_text("running")
        percents.append(float(await bar.evaluate("(node) => node.value")))
        if step == "seal":
            await page.locator("#run-panel").screenshot(path=artifact("hmi-run-panel.png"))
            await page.screenshot(path=artifact("hmi-run.png"), full_page=True)
        key = await prompt.get_attribute("data-prompt")
        assert key is not None
        if step == "open":  # asked while waiting for the gloves: it holds once this phase has ended
            await page.locator("#hold-batch").click()
            await expect(page.locator("#run-hold-note")).to_contain_text("Hold asked by op1")
        await prompt.get_by_role("button", name="Confirm").click()
        await expect(prompt).to_have_count(0)
        confirmed.append(key)
        if step == "open":
            await expect(state).to_have_text(RUN_HELD, timeout=PROMPT_WAIT_MS)
            await expect(page.locator("#run-hold-note")).to_be_hidden()
            await page.screenshot(path=artifact("hmi-held.png"), full_page=True)
            await page.locator("#resume-batch").click()
            await expect(state).to_have_text("RUNNING")
    assert all(a < b for a, b in itertools.pairwise(percents)), percents  # the bar only moves forward

    # the end-of-run record: the job done, its electrode never exposed, its certificate one click away
    record = page.locator("#run-queue")
    await expect(page.locator("#run-queue-title")).to_have_text("End-of-run record", timeout=PROMPT_WAIT_MS)
    await expect(page.locator("#run-batch")).to_contain_text(
        "COMPLETE — every job done; 1 of 1 jobs finished"
    )
    row = record.locator("tbody tr").first
    await expect(row.locator("td[data-outcome]")).to_have_attribute("data-outcome", "done")
    await expect(row.locator("td[data-exposed]")).to_have_attribute("data-exposed", "false")
    await expect(row).to_contain_text(
        "never exposed to a non-inert atmosphere; path room -> inlet -> process"
    )
    await expect(page.locator("#run-start")).to_be_visible()  # the next batch can be started
    await expect(page.locator("#run-current")).to_be_hidden()  # no job runs: no stale phase or state shown
    await expect(page.locator("#run-actions")).to_be_hidden()
    assert await exposures_seen(page) == []
    await page.screenshot(path=artifact("hmi-end-of-run.png"), full_page=True)
    await save_for_readme(page.locator("#run-panel"), "hmi-run-panel.png")
    async with page.expect_popup() as popup_info:
        await row.get_by_role("link", name="Certificate 1").click()
    certificate = await popup_info.value
    await expect(certificate.locator("body")).to_contain_text("never exposed")
    [job] = await batch_hmi.jobs()
    await expect(certificate.locator("body")).to_contain_text(job.id)
    await page.close()

    assert job.outcome == "done"
    events = await batch_hmi.rig.events(job)
    records = kinds(events, "confirm")
    assert [r["key"] for r in records] == confirmed
    assert all(r["user"] == "op1" and r["via"] == "hmi" for r in records)
    assert [r["by"] for r in kinds(events, "hold")] == ["op1"]
    assert [r["by"] for r in kinds(events, "unhold")] == ["op1"]
    assert [(r["user"], r["via"]) for r in kinds(events, "hold_requested")] == [("op1", "hmi")]
    assert kinds(events, "safe_state") == []  # an operator's hold at a phase boundary needs no safe state


async def a_batch_owns_the_line(page: Page, hmi: BatchHmi) -> None:
    """While the batch runs: the mode says production and which batch, every manual command button is
    disabled with the mode's reason, and one sent anyway from the page is refused with it, on record."""
    [batch_id] = await hmi.rig.batches()
    mode = page.get_by_test_id("mode")
    # the batch by its short name (its start time and tag), the full id in the tooltip
    short = rf"Batch \d\d:\d\d \({batch_id.rsplit('-', 1)[1]}\)"
    await expect(mode.locator(".mode-word")).to_have_text(re.compile(rf"^PRODUCTION \({short}\)$"))
    await expect(mode).to_have_attribute("title", batch_id)
    batch_state = page.get_by_test_id("batch-state")
    await expect(batch_state).to_contain_text(re.compile(rf"^{short}: RUNNING — job 1 of 1"))
    await expect(batch_state).to_have_attribute("title", batch_id)
    reason = f"batch {batch_id} owns the line: hold it and switch to manual"
    said = rf"^Manual commands refused now: “{short}” owns the line: hold it and switch to manual$"
    await expect(page.locator("#controls-mode")).to_have_text(re.compile(said))
    outer = page.locator('[data-command="port:outlet.outer:open"]')
    await expect(outer).to_be_disabled()
    await expect(outer).to_have_attribute("title", reason)
    sent = await page.evaluate(
        """async () => (await import("/hmi/commands.js")).sendCommand(
            { type: "SetPort", port: "outlet.outer", open: true })"""
    )
    assert sent is None
    await expect(page.locator("#command-result")).to_contain_text("REFUSED: open outlet.outer (by op1)")
    await expect(page.locator("#command-result")).to_contain_text(reason)
    records = await page.request.get(hmi.url + "/api/commands")
    mine = [
        r for r in await records.json() if r["user"] == "op1" and r["action"].get("port") == "outlet.outer"
    ]
    assert [(r["outcome"], r["origin"], r["reason"]) for r in mine] == [
        ("refused", "hmi", f"[MODE production] {reason}")
    ]


# In the slow profile too: it failed in each of three fresh-clone `make test` runs of 2026-12-07 at a
# different point (the start's and the stop's answers past 5 s, then a job phase failing with devices
# missing their reply time and the plant behind its clock), all load on 2 cores with 4 workers.
@pytest.mark.slow
async def test_stop_asks_first_a_restart_resumes_and_abort_ends_the_queue(batch_hmi: BatchHmi) -> None:
    page = await open_hmi(batch_hmi)
    await log_in(page, "op1", "op1-demo")
    anonymous = await page.request.post(batch_hmi.url + "/api/batch/start", data={"queue": QUEUE})
    assert anonymous.status == 401  # starting a run is a person's decision, made logged in
    await start_queue(page)
    load = page.locator('#prompts li[data-prompt$=":load"]')
    await expect(load).to_be_visible(timeout=PROMPT_WAIT_MS)
    # 1280x800: the prompt panel is on screen without scrolling, the page itself cannot scroll
    await expect(load).to_be_in_viewport()
    assert await page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight")
    await expect(page.locator("#prompts-title")).to_have_text("The line is waiting for you")
    await expect(load.locator(".prompt-job")).to_contain_text("step load")
    await expect(load).to_contain_text("put the closed container “inlet container of J01” into inlet")
    await page.screenshot(path=artifact("hmi-prompt-1280x800.png"))
    await a_batch_owns_the_line(page, batch_hmi)
    confirm = page.locator("#stop-confirm")
    await page.locator("#stop-batch").click()
    await expect(confirm).to_be_visible()
    await expect(page.locator("#stop-no")).to_be_focused()  # the safe answer is the default
    await page.screenshot(path=artifact("hmi-stop-confirm.png"), full_page=True)
    await page.keyboard.press("Enter")  # "No, keep running"
    await expect(confirm).to_be_hidden()
    await page.locator("#stop-batch").click()
    await page.locator("#stop-yes").click()
    result = page.locator("#command-result")
    # the stop is answered once the sequence has reached a safe point: seconds on a loaded machine
    await expect(result).to_contain_text("the batch can be resumed (asked by op1, job ", timeout=WAIT_MS)
    await expect(page.locator("#run-batch")).to_contain_text("STOPPED — start the same queue to resume it")
    [job] = await batch_hmi.jobs()
    assert job.outcome is None  # unfinished: starting the queue again resumes it
    assert job.checkpoint == "load:started"

    await start_queue(page)  # the same batch resumes: the load is asked for again
    await expect(load).to_be_visible(timeout=PROMPT_WAIT_MS)
    await load.get_by_role("button", name="Confirm").click()
    # the resumed job goes on past the load (at the plant speed of this rig the purge may last less than
    # one refresh of the run panel, so the phase shown is "the purge or later", never the load again)
    await page.wait_for_function(
        "() => Number(document.getElementById('run-phase').dataset.phaseIndex) >= 1", timeout=PROMPT_WAIT_MS
    )
    await page.locator("#abort-batch").click()
    await expect(page.locator("#abort-no")).to_be_focused()
    await page.locator("#abort-yes").click()
    await expect(page.locator("#run-batch")).to_contain_text("ended with failures", timeout=PROMPT_WAIT_MS)
    row = page.locator("#run-queue tbody tr").first
    await expect(row.locator("td[data-outcome]")).to_have_attribute("data-outcome", "aborted")
    await expect(row).to_contain_text("aborted by op1")
    await page.close()

    [job] = await batch_hmi.jobs()
    assert (job.outcome, job.message) == ("aborted", "aborted by op1")
    assert job.attempts == 2
    events = await batch_hmi.rig.events(job)
    assert [(r["user"], r["via"]) for r in kinds(events, "stop_requested")] == [("op1", "hmi")]  # once
    assert [(r["user"], r["via"]) for r in kinds(events, "abort_requested")] == [("op1", "hmi")]
    assert ("stopping", "stopped") in [(d["from"], d["to"]) for d in kinds(events, "state")]
    assert ("aborting", "aborted") in [(d["from"], d["to"]) for d in kinds(events, "state")]
    assert len(kinds(events, "safe_state")) == 2  # the stop and the abort each made the route safe


async def test_a_controller_without_batches_says_so_and_refuses_requests() -> None:
    ctl = LineController(load_line_config())  # built, never started: the routes need no plant here
    app = create_app(ApiContext(ctl, TokenStore(), TelemetryHistory(), LiveFeed()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hmi") as http:
        view = (await http.get("/api/batch")).json()
        assert view["runs_here"] is False
        assert (view["running"], view["batch"], view["jobs"], view["current"]) == (False, None, [], None)
        login = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        for request in ("stop", "hold", "resume", "abort"):
            answer = await http.post(f"/api/batch/{request}", headers=headers)
            assert answer.status_code == 503
            assert "runs no production batches" in answer.json()["detail"]
        start = await http.post("/api/batch/start", json={"queue": "demo"}, headers=headers)
        assert start.status_code == 503
