"""The line service owns the line: `depline run` as a process, batches and manual work as modes inside it.

Each test starts `depline run --sim` (the simulated line in the service's process, no simulated
operator: glove work waits for a person, who answers over the API) and talks to it as the HMI, the
CLI and a maintenance engineer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import async_playwright, expect

from bench.mosquitto_broker import MosquittoBroker, line_acl
from tests.hmi.test_hmi_browser import CHROMIUM_ARGS, VIEWPORT, WAIT_MS, artifact, log_in
from tests.sequences.test_production import THIN_ANNEALED
from tests.worker_groups import LINE_PROCESSES

ROOT = Path(__file__).resolve().parents[1]
STANDARD_LINE = ROOT / "controller" / "config" / "standard_line.toml"
START_TIMEOUT_S = 60.0
WAIT_S = 120.0
pytestmark = pytest.mark.timeout(600)


MQTT_PASSWORDS = {"bridge": "bridge-pw", "op1": "op1-mqtt-pw"}


@contextlib.asynccontextmanager
async def service(
    folder: Path,
    *,
    scenario: str | None = None,
    speed: float = 200.0,
    broker: MosquittoBroker | None = None,
    run_args: Sequence[str] = (),
    stderr: list[str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """`depline run --sim` on the folder's line (its database and queue folder), until SIGTERM; with a
    broker, the line's MQTT bridge connects to it and accepts op1's valve and port commands. `run_args`
    go to `depline run`; what it wrote to stderr is appended to `stderr` when it has stopped."""
    config = folder / "line.toml"
    if not config.exists():
        queues = folder / "queues"
        queues.mkdir()
        (queues / "thin.toml").write_text(THIN_ANNEALED)
        (queues / "one-thin.toml").write_text('name = "one thin"\n[[jobs]]\nrecipe = "thin.toml"\n')
        text = STANDARD_LINE.read_text().replace('queue_dir = "queues"', f'queue_dir = "{queues}"')
        text = text.replace('url = "sqlite:///data/line1.db"', f'url = "sqlite:///{folder}/line.db"')
        if broker is not None:
            text += (
                f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nusername = "bridge"\n'
                f'password = "{MQTT_PASSWORDS["bridge"]}"\ncommand_users = ["op1"]\n'
                'commands = ["set_valve", "set_port"]\n'
            )
        config.write_text(text)
    args = ["run", "--sim", "--config", str(config), "--port", "0", "--speed", f"{speed:g}", *run_args]
    if scenario is not None:
        (folder / "scenario.toml").write_text(scenario)
        args += ["--scenario", str(folder / "scenario.toml")]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=folder,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)).decode()
        found = re.match(r"depline: serving (http://127\.0\.0\.1:\d+) ", banner)
        assert found, banner + (await proc.stderr.read()).decode() if proc.stderr else banner
        async with httpx.AsyncClient(base_url=found.group(1), timeout=30.0) as http:
            yield http
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 120.0)
        if stderr is not None:
            stderr.append(err.decode())
        assert b"Traceback" not in err, err.decode()[-3000:]


async def login(http: httpx.AsyncClient, user: str) -> dict[str, str]:
    answer = await http.post("/api/login", json={"user": user, "password": f"{user}-demo"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def until(
    http: httpx.AsyncClient, path: str, done: Callable[[Any], bool], timeout_s: float = WAIT_S
) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            body = (await http.get(path)).json()
            if done(body):
                return body
            await asyncio.sleep(0.1)


async def answer_prompt(http: httpx.AsyncClient, headers: dict[str, str], suffix: str) -> None:
    prompts = await until(http, "/api/prompts", lambda p: any(q["key"].endswith(suffix) for q in p))
    key = next(q["key"] for q in prompts if q["key"].endswith(suffix))
    confirmed = await http.post(f"/api/prompts/{key}/confirm", headers=headers)
    assert confirmed.status_code == 200, confirmed.text


VENT_CLOSED = {"type": "SetValve", "space": "outlet", "valve": "vent", "open": False}
OUTER_CLOSED = {"type": "SetPort", "port": "outlet.outer", "open": False}


@contextlib.asynccontextmanager
async def plant_broker(folder: Path) -> AsyncIterator[MosquittoBroker]:
    """Debian's mosquitto with the line's ACL: the bridge writes the line's tree, op1 its commands."""
    acl = line_acl("depline", "line1", bridge="bridge", commanders=["op1"], viewers=[])
    async with MosquittoBroker(folder / "broker", users=MQTT_PASSWORDS, acl=acl) as broker:
        yield broker


class MqttOperator:
    """op1 at a plant client: publishes a command and waits for the bridge's reply to it."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.sent = 0

    async def command(self, name: str, action: dict[str, object], reason: str) -> dict[str, Any]:
        self.sent += 1
        request = f"r{self.sent}"
        payload = json.dumps({"user": "op1", "action": action, "id": request, "reason": reason})
        await self.client.publish(f"depline/line1/cmd/{name}", payload, qos=1)
        async with asyncio.timeout(WAIT_S):
            async for message in self.client.messages:
                body = json.loads(message.payload) if isinstance(message.payload, bytes) else {}
                if message.topic.matches(f"depline/line1/cmd/{name}/reply") and body.get("id") == request:
                    assert isinstance(body, dict)
                    return body
        raise AssertionError(f"no reply to {request}")


@contextlib.asynccontextmanager
async def mqtt_operator(broker: MosquittoBroker) -> AsyncIterator[MqttOperator]:
    """Connected and subscribed to the replies once the bridge says it is online (its retained status)."""
    async with aiomqtt.Client(
        broker.host, broker.port, username="op1", password=MQTT_PASSWORDS["op1"], timeout=5.0
    ) as client:
        await client.subscribe("depline/line1/cmd/+/reply", qos=1)
        await client.subscribe("depline/line1/status", qos=1)
        async with asyncio.timeout(WAIT_S):
            async for message in client.messages:
                status = message.topic.matches("depline/line1/status")
                if status and json.loads(bytes(message.payload or b"{}")).get("state") == "online":
                    break
        yield MqttOperator(client)


async def test_a_manual_command_during_a_batch_is_refused_until_the_batch_is_held_and_the_line_is_manual(
    tmp_path: Path,
) -> None:
    """From the API (the HMI's path) and from MQTT alike: refused while the batch owns the line, allowed
    once it is held and the line is manual, and every attempt is in the command record."""
    async with (
        plant_broker(tmp_path) as broker,
        service(tmp_path, broker=broker) as http,
        mqtt_operator(broker) as plant,
    ):
        op1 = await login(http, "op1")
        assert (await http.get("/api/mode")).json()["mode"] == "manual"
        started = await http.post("/api/batch/start", json={"queue": "one-thin"}, headers=op1)
        assert started.status_code == 201, started.text
        batch = started.json()["id"]
        mode = (await http.get("/api/mode")).json()
        assert (mode["mode"], mode["owner"]) == ("production", batch)
        owned = f"[MODE production] batch {batch} owns the line: hold it and switch to manual"

        refused = (await http.post("/api/commands", json=VENT_CLOSED, headers=op1)).json()
        assert refused["outcome"] == "refused"
        assert refused["reason"] == owned
        for name, action in (("set_valve", VENT_CLOSED), ("set_port", OUTER_CLOSED)):
            over_mqtt = await plant.command(name, action, "during the batch")
            assert (over_mqtt["outcome"], over_mqtt["reason"]) == ("refused", owned), over_mqtt
        early = await http.post("/api/mode", json={"mode": "manual", "reason": "a look"}, headers=op1)
        assert early.status_code == 409
        assert "hold it before switching" in early.json()["detail"]

        # hold: it takes effect when the running phase ends (the operator finishes loading)
        assert (await http.post("/api/batch/hold", headers=op1)).status_code == 202
        await answer_prompt(http, op1, ":load")
        await until(http, "/api/batch", lambda b: b["current"] and b["current"]["state"] == "held")
        manual = await http.post(
            "/api/mode", json={"mode": "manual", "reason": "check the outlet vent"}, headers=op1
        )
        assert manual.status_code == 200, manual.text
        assert (await http.post("/api/batch/resume", headers=op1)).status_code == 409  # not in production
        done = (await http.post("/api/commands", json=VENT_CLOSED, headers=op1)).json()
        assert done["outcome"] == "done", done
        for name, action in (("set_valve", VENT_CLOSED), ("set_port", OUTER_CLOSED)):
            over_mqtt = await plant.command(name, action, "held and manual")
            assert over_mqtt["outcome"] == "done", over_mqtt
        assert (await http.post("/api/batch/resume", headers=op1)).status_code == 409  # still manual

        back = await http.post(
            "/api/mode", json={"mode": "production", "reason": "vent checked"}, headers=op1
        )
        assert back.status_code == 200, back.text
        assert back.json()["owner"] == batch
        assert (await http.post("/api/batch/resume", headers=op1)).status_code == 202
        await until(http, "/api/batch", lambda b: b["current"] and b["current"]["state"] == "execute")

        commands = (await http.get("/api/commands", params={"limit": 500})).json()
        mine = [c for c in commands if c["origin"] == "hmi" and c["action"] == VENT_CLOSED]
        assert [c["outcome"] for c in mine] == ["refused", "done"]
        for action in (VENT_CLOSED, OUTER_CLOSED):
            remote = [c for c in commands if c["origin"] == "mqtt" and c["action"] == action]
            assert [(c["outcome"], c["user"]) for c in remote] == [("refused", "op1"), ("done", "op1")]
            assert remote[0]["reason"] == owned
        changes = (await http.get("/api/mode/journal")).json()
        assert [(c["mode"], c["user"]) for c in changes][-3:] == [
            ("production", "op1"),  # the batch took the line (its id once its rows were read)
            ("manual", "op1"),
            ("production", "op1"),
        ]
        stop = await http.post("/api/batch/abort", headers=op1)
        assert stop.status_code == 202
        await until(http, "/api/mode", lambda m: m["mode"] == "manual")  # the batch ended: manual again


async def test_the_alarm_journal_read_after_a_restart_holds_the_night_before(tmp_path: Path) -> None:
    silent = '[[events]]\nat_s = 0.0\nfault = "no_reply"\ndevice = "inlet_dewpoint"\n'
    async with service(tmp_path, scenario=silent) as http:
        await until(
            http, "/api/alarms", lambda a: any(x["id"] == "comms.inlet_dewpoint" for x in a["active"])
        )
        op1, eng1 = await login(http, "op1"), await login(http, "eng1")
        acked = await http.post("/api/alarms/comms.inlet_dewpoint/acknowledge", headers=op1)
        assert acked.status_code == 200, acked.text
        shelf = {"reason": "transmitter out for calibration", "until_s": time.time() + 3600.0}
        shelved = await http.post("/api/alarms/comms.inlet_dewpoint/shelve", json=shelf, headers=eng1)
        assert shelved.status_code == 200, shelved.text
    async with service(tmp_path) as http:  # the service restarted on the same historian
        journal = (await http.get("/api/alarms/journal", params={"limit": 1000})).json()
    dew = [(j["event"], j["user"], j["reason"]) for j in journal if j["alarm_id"] == "comms.inlet_dewpoint"]
    assert ("acknowledge", "op1", None) in dew
    assert ("shelve", "eng1", "transmitter out for calibration") in dew
    assert dew[0][0] == "condition_raised"


@pytest.mark.xdist_group(LINE_PROCESSES)
async def test_a_batch_submitted_to_the_service_runs_to_the_end_and_the_service_goes_on_supervising(
    tmp_path: Path, chromium_path: str
) -> None:
    """`depline batch QUEUE --url` runs a one-job queue inside the running service and exits 0; a leak
    after the batch has ended raises an alarm that op1 acknowledges in the browser; one service all along."""
    # The chamber is left filled 500 Pa above the room (the regulator's delivery), so a leak first only
    # exchanges gas; the pressure rises once the walls it wets give off water, and the rule takes that
    # for gas come in past 2 %: ~45 000 plant s after the leak starts (the plant alone, bench-checked).
    # The batch ends near 15 000 plant s; the leak starts soon after and the alarm is awaited for long
    # enough (it came at the very end of a 120 s wait when the leak started at 30 000).
    leak_later = '[[events]]\nat_s = 20000.0\nfault = "leak"\nspace = "process"\nrate_pa_m3_s = 0.05\n'
    async with service(tmp_path, scenario=leak_later, speed=500.0) as http:
        op1 = await login(http, "op1")
        env = {**os.environ, "DEPLINE_USER": "op1", "DEPLINE_PASSWORD": "op1-demo"}
        batch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller.cli", "batch", str(tmp_path / "queues" / "one-thin.toml"),
            "--config", str(tmp_path / "line.toml"), "--url", str(http.base_url),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        answered: set[str] = set()
        try:
            async with asyncio.timeout(WAIT_S * 2):
                while batch.returncode is None:  # nobody at the batch's terminal: glove work is done here
                    for prompt in (await http.get("/api/prompts")).json():
                        if prompt["key"] not in answered:
                            confirmed = await http.post(f"/api/prompts/{prompt['key']}/confirm", headers=op1)
                            assert confirmed.status_code == 200, confirmed.text
                            answered.add(prompt["key"])
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(batch.wait(), 0.2)
        finally:
            if batch.returncode is None:
                batch.kill()
        out, err = await batch.communicate()
        assert batch.returncode == 0, out.decode()[-3000:] + err.decode()[-3000:]
        assert re.search(r"totals: 1 done", out.decode()), out.decode()
        assert (await http.get("/api/mode")).json()["mode"] == "manual"  # the line handed back, supervised
        left = (await http.get("/api/state")).json()["unowned_items"]
        assert any(item.endswith("-T1") for item in left), left  # the target stays in the chamber, said so

        alarm = await until(
            http, "/api/alarms", lambda a: _process_alarm(a) is not None, timeout_s=3 * WAIT_S
        )
        alarm_id = _process_alarm(alarm)
        assert alarm_id
        await _acknowledge_in_the_browser(str(http.base_url), chromium_path, alarm_id)
        acked = next(a for a in (await http.get("/api/alarms")).json()["active"] if a["id"] == alarm_id)
        assert acked["acked_by"] == "op1"
        runs = (await http.get("/api/runs")).json()
        assert len(runs) == 1  # the service was never restarted


def _process_alarm(alarms: Any) -> str | None:
    """The alarm the leak raised: the target left in the chamber is exposed to what comes in."""
    found = [a for a in alarms["active"] if a["id"].startswith("exposure.process")]
    return str(found[0]["id"]) if found else None


async def _acknowledge_in_the_browser(url: str, chromium: str, alarm_id: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(WAIT_MS)
            await page.goto(url + "/")
            await log_in(page, "op1", "op1-demo")
            row = page.locator(f'tr[data-alarm="{alarm_id}"]')
            await row.get_by_role("button", name=f"Acknowledge {alarm_id}").click()
            await expect(row).to_contain_text("acknowledged by op1")
            await expect(page.get_by_test_id("unowned-items")).to_contain_text("no batch owns them")
            await page.screenshot(path=artifact("service-alarm-after-batch.png"), full_page=True)
        finally:
            await browser.close()
