"""Two lines, one PostgreSQL database, one broker: each service sees, resumes and recovers its own line
only, and publishes and obeys on its own line's topics only.

Two `depline run --sim` processes (lines `line1` and `line2`, each with its own simulated plant) share
one database of a real PostgreSQL cluster and one mosquitto with the site ACL of deploy/mosquitto (each
line's bridge user writes its own tree only). Both run the same queue file (same hash, same base item id
"E1"), so every place where an unscoped query would mix the lines has something to mix: the batch to
resume, the item ids, the channels, the runs a start closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import httpx
import pytest

from bench.mosquitto_broker import MosquittoBroker
from bench.postgres_cluster import PgCluster
from controller.historian.store import Historian
from tests.sequences.test_production import THIN_ANNEALED
from tests.worker_groups import LINE_PROCESSES

ROOT = Path(__file__).resolve().parents[1]
STANDARD_LINE = ROOT / "controller" / "config" / "standard_line.toml"
START_TIMEOUT_S = 60.0
WAIT_S = 240.0
SPEED = 500.0
QUEUE = 'name = "one thin"\n[[jobs]]\nrecipe = "thin.toml"\nbase = "E1"\n'
SITE_ACL = ROOT / "deploy" / "mosquitto" / "depline.acl"
# the shipped ACL's users, and one more: a SCADA account that commands line2 only (the shipped file's
# `scada` commands line1 only)
BROKER_USERS = {"depline-line1": "l1-pw", "depline-line2": "l2-pw", "scada": "scada-pw",
                "viewer": "viewer-pw", "scada-line2": "s2-pw"}  # fmt: skip
LINE2_COMMANDER = "\nuser scada-line2\ntopic read depline/#\ntopic write depline/line2/cmd/+\n"
VENT_CLOSED = {"type": "SetValve", "space": "outlet", "valve": "vent", "open": False}
pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900), pytest.mark.xdist_group(LINE_PROCESSES)]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    """Debian's mosquitto with the site's password file and ACL (deploy/mosquitto/depline.acl)."""
    acl = SITE_ACL.read_text(encoding="utf-8") + LINE2_COMMANDER
    async with MosquittoBroker(tmp_path / "broker", users=BROKER_USERS, acl=acl) as started:
        yield started


@dataclass
class Heard:
    """Everything the plant's viewer account received on `depline/#`, in order."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [body for t, body in self.messages if t == topic]

    def has(self, topic: str) -> Callable[[], bool]:
        return lambda: bool(self.on(topic))

    def under(self, line: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t, body) for t, body in self.messages if t.startswith(f"depline/{line}/")]


@contextlib.asynccontextmanager
async def viewer(broker: MosquittoBroker) -> AsyncIterator[Heard]:
    heard = Heard()
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client(
            broker.host, broker.port, username="viewer", password=BROKER_USERS["viewer"], timeout=10.0
        ) as client:
            await client.subscribe("depline/#", qos=1)
            subscribed.set()
            async for message in client.messages:
                try:
                    body = json.loads(bytes(message.payload)) if isinstance(message.payload, bytes) else {}
                except ValueError:  # not JSON: kept by its topic
                    body = {}
                heard.messages.append((message.topic.value, body if isinstance(body, dict) else {}))

    task = asyncio.create_task(listen(), name="two-lines-viewer")
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await subscribed.wait()
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_heard(heard: Heard, done: Callable[[], bool], what: str) -> None:
    """Wait for what the viewer heard to satisfy `done` (its listener appends as messages come)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            while True:
                if done():
                    return
                await asyncio.sleep(0.1)
    raise AssertionError(f"never heard: {what}; {len(heard.messages)} messages")


def online(heard: Heard, line: str) -> bool:
    states = heard.on(f"depline/{line}/status")
    return bool(states) and states[-1].get("state") == "online"


def line_folder(base: Path, line: str, url: str, port: int, broker: MosquittoBroker) -> Path:
    """A site folder for one line: its configuration (own name, shared database and broker), queues."""
    folder = base / line
    queues = folder / "queues"
    queues.mkdir(parents=True)
    (queues / "thin.toml").write_text(THIN_ANNEALED)
    (queues / "one-thin.toml").write_text(QUEUE)
    text = STANDARD_LINE.read_text().replace('queue_dir = "queues"', f'queue_dir = "{queues}"')
    text = text.replace('name = "line1"', f'name = "{line}"', 1)
    text = text.replace('url = "sqlite:///data/line1.db"', f'url = "{url}"')
    text = text.replace("port = 8080", f"port = {port}")
    user = f"depline-{line}"
    text += (
        f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nusername = "{user}"\n'
        f'password = "{BROKER_USERS[user]}"\ncommand_users = ["op1"]\ncommands = ["set_valve"]\n'
    )
    (folder / "line.toml").write_text(text)
    return folder


async def launch(folder: Path) -> asyncio.subprocess.Process:
    args = ["run", "--sim", "--config", str(folder / "line.toml"), "--port", "0", "--speed", f"{SPEED:g}"]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=folder,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def service(folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A line service until SIGTERM; its API client."""
    proc = await launch(folder)
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)).decode()
        found = re.match(r"depline: serving (http://127\.0\.0\.1:\d+) ", banner)
        assert found, banner + (await proc.stderr.read()).decode()
        async with httpx.AsyncClient(base_url=found.group(1), timeout=30.0) as http:
            yield http
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 120.0)
        assert b"Traceback" not in err, err.decode()[-3000:]


async def login(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def start_batch(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    started = await http.post("/api/batch/start", json={"queue": "one-thin"}, headers=headers)
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


async def hold(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Hold the batch once its load is done (a hold takes effect when the running phase ends)."""
    assert (await http.post("/api/batch/hold", headers=headers)).status_code == 202
    async with asyncio.timeout(WAIT_S):
        while True:
            for prompt in (await http.get("/api/prompts")).json():
                await http.post(f"/api/prompts/{prompt['key']}/confirm", headers=headers)
            current = (await http.get("/api/batch")).json()["current"]
            if current and current["state"] == "held":
                return
            await asyncio.sleep(0.2)


async def finish_batch(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """Do the glove work the batch asks for until it has ended; its last view."""
    async with asyncio.timeout(WAIT_S):
        while True:
            for prompt in (await http.get("/api/prompts")).json():
                await http.post(f"/api/prompts/{prompt['key']}/confirm", headers=headers)
            view: dict[str, Any] = (await http.get("/api/batch")).json()
            if not view["running"] and view["batch"] is not None:
                return view
            await asyncio.sleep(0.2)


def ran_to_its_end(view: dict[str, Any]) -> bool:
    """The batch's job ended by the sequence's own judgement: a loaded runner at 500x may deposit a film
    off its thickness window and reject the electrode, which is the line working, not the lines mixing."""
    return view["failure"] is None and [j["outcome"] for j in view["jobs"]] in (["done"], ["rejected"])


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def run_status(url: str, line: str) -> list[str]:
    return [
        r["status"]
        for r in await query(url, "SELECT status FROM runs WHERE line = $1 ORDER BY started_at", line)
    ]


async def test_two_lines_share_one_database_and_broker_without_seeing_each_other(
    pg: PgCluster, broker: MosquittoBroker, tmp_path: Path
) -> None:
    url = await asyncio.to_thread(pg.create_database, "site")
    line_a = line_folder(tmp_path, "line1", url, 8081, broker)
    line_b = line_folder(tmp_path, "line2", url, 8082, broker)

    async with viewer(broker) as heard, service(line_a) as a:
        op_a = await login(a)
        batch_a = await start_batch(a, op_a)
        # one batch works at a time (two simulated plants at full tilt starve a 2-core runner): line a's
        # is held once loaded, its rows 'running' and its items on the line, while line b works
        await hold(a, op_a)
        async with service(line_b) as b:
            # line b's start closed nothing of line a's: a's run is live, its batch is a's own
            assert await run_status(url, "line1") == ["running"]
            op_b = await login(b)
            batch_b = await start_batch(b, op_b)  # the same queue file: not a resume of line a's batch
            assert batch_b != batch_a
            view_b = await finish_batch(b, op_b)
            assert view_b["batch"]["id"] == batch_b
            assert ran_to_its_end(view_b), view_b["jobs"]

            # a second service for line a's name is refused, and touches nothing
            intruder = line_folder(tmp_path / "again", "line1", url, 8083, broker)
            proc = await launch(intruder)
            _, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT_S)
            assert proc.returncode != 0
            assert "line 'line1' is held by another running service" in err.decode(), err.decode()[-2000:]

            for http, line, batch in ((a, "line1", batch_a), (b, "line2", batch_b)):
                await sees_only_its_own(http, url, line, batch)
            await each_line_on_its_own_topics(heard, url, broker)
        # line b stopped cleanly; line a's batch waits mid-line, its items loaded
        b_commands = len(await query(url, "SELECT id FROM commands WHERE line = 'line2'"))
        async with service(line_b) as b:
            assert await run_status(url, "line1") == ["running"]  # b's restart marked nothing of a's
            assert await run_status(url, "line2") == ["complete", "running"]
            # b's inventory is rebuilt from b's records: its E1 and its boxes, none of line a's
            items = {i["id"] for i in (await b.get("/api/items")).json()}
            assert "E1" in items, items
            assert not any(batch_a in i for i in items), items
            # what b's restart found and made safe is b's own: no interrupted run (a's live run is not
            # one), none of a's items, and no command of b's names anything of line a's
            journal = (await b.get("/api/alarms/journal", params={"limit": 1000})).json()
            found = [
                j["evidence"]
                for j in journal
                if j["alarm_id"] == "recovery.restart" and j["event"] == "condition_raised"
            ]
            for evidence in found:
                assert evidence["interrupted_runs"] == "", evidence
                assert batch_a not in evidence["text"], evidence
            after = await query(url, "SELECT action FROM commands WHERE line = 'line2' ORDER BY id")
            assert not [r["action"] for r in after[b_commands:] if batch_a in r["action"]]
        assert await run_status(url, "line1") == ["running"]
        assert (await a.post("/api/batch/resume", headers=op_a)).status_code == 202
        view_a = await finish_batch(a, op_a)
        assert view_a["batch"]["id"] == batch_a
        assert ran_to_its_end(view_a), view_a["jobs"]
    assert await run_status(url, "line1") == ["complete"]
    # the item id both lines registered is two rows, one per line
    assert sorted(r["line"] for r in await query(url, "SELECT line FROM items WHERE id = 'E1'")) == [
        "line1",
        "line2",
    ]


async def sees_only_its_own(http: httpx.AsyncClient, url: str, line: str, batch: str) -> None:
    """The service's API answers with its line's rows only, each of which the database files under it."""
    runs = (await http.get("/api/runs")).json()
    assert [r["status"] for r in runs] == ["running"]
    assert {r["id"] for r in await query(url, "SELECT id FROM runs WHERE line = $1", line)} == {runs[0]["id"]}
    # batches and jobs
    assert [r["id"] for r in await query(url, "SELECT id FROM batches WHERE line = $1", line)] == [batch]
    jobs = await query(url, "SELECT id FROM jobs WHERE line = $1", line)
    assert [r["id"] for r in jobs] == [f"{batch}-J01"]
    # alarms: nothing of the other line's journal reaches this line's
    others = await query(url, "SELECT ts, alarm_id, event FROM alarm_events WHERE line <> $1", line)
    journal = (await http.get("/api/alarms/journal", params={"limit": 1000})).json()
    assert not {(r["ts"], r["alarm_id"], r["event"]) for r in others} & {
        (j["ts"], j["alarm_id"], j["event"]) for j in journal
    }
    # samples: the MQTT back-fill reads this line's channels only
    async with Historian.reader(url, line=line) as historian:
        backfill = await historian.samples_since(time.time() - 3600, max_rows=10_000_000)
    channels = await query(url, "SELECT id FROM channels WHERE line = $1", line)
    own = await query(
        url,
        "SELECT count(*) AS n FROM samples WHERE channel_id = ANY($1::int[])",
        [r["id"] for r in channels],
    )
    total = await query(url, "SELECT count(*) AS n FROM samples")
    assert 0 < len(backfill) <= own[0]["n"] < total[0]["n"]


async def each_line_on_its_own_topics(heard: Heard, url: str, broker: MosquittoBroker) -> None:
    """Both bridges publish on the one broker, each under its own tree and only what its own line did; a
    command on a line's topic is answered by that line alone, and one sent astray (a SCADA account on
    the other line's topic) is dropped by the site ACL before any line could act on it."""
    await until_heard(heard, lambda: online(heard, "line1") and online(heard, "line2"), "both bridges online")
    for line, account in (("line1", "scada"), ("line2", "scada-line2")):
        other = "line2" if line == "line1" else "line1"
        request = {"user": "op1", "action": VENT_CLOSED, "id": f"for-{line}", "reason": f"{line} only"}
        async with aiomqtt.Client(
            broker.host, broker.port, username=account, password=BROKER_USERS[account], timeout=10.0
        ) as scada:
            await scada.publish(f"depline/{line}/cmd/set_valve", json.dumps(request), qos=1)
            astray = {**request, "id": "astray", "reason": "astray"}
            await scada.publish(f"depline/{other}/cmd/set_valve", json.dumps(astray), qos=1)
        reply_topic = f"depline/{line}/cmd/set_valve/reply"
        await until_heard(heard, heard.has(reply_topic), f"{line}'s reply")
        reply = heard.on(reply_topic)[0]
        assert reply["id"] == f"for-{line}"
        # done, or refused by the line's own judgement (line1's batch is held mid-line)
        assert reply["outcome"] in ("done", "refused"), reply
    assert not [
        t for t, body in heard.messages if body.get("id") == "astray" or body.get("reason") == "astray"
    ]
    for line in ("line1", "line2"):
        async with asyncio.timeout(WAIT_S):
            while True:
                if await mqtt_commands(url, line):
                    break
                await asyncio.sleep(0.2)
        assert [r["request_reason"] for r in await mqtt_commands(url, line)] == [f"{line} only"]

    for line, other in (("line1", "line2"), ("line2", "line1")):
        assert any("/telemetry/" in t for t, _ in heard.under(line)), f"no telemetry from {line}"
        published = {body["ts"] for body in heard.on(f"depline/{line}/event")}
        assert published, f"no command events from {line}"
        # every command event a line published is a command of its own record (the historian writes
        # them a moment later), none of the other line's
        async with asyncio.timeout(WAIT_S):
            while True:
                if published <= await command_times(url, line):
                    break
                await asyncio.sleep(0.2)
        assert not published & await command_times(url, other)


async def command_times(url: str, line: str) -> set[float]:
    return {r["ts"] for r in await query(url, "SELECT ts FROM commands WHERE line = $1", line)}


async def mqtt_commands(url: str, line: str) -> list[asyncpg.Record]:
    return await query(url, "SELECT request_reason FROM commands WHERE line = $1 AND origin = 'mqtt'", line)
