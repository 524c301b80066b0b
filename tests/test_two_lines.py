"""Two lines, one PostgreSQL database: each service sees, resumes and recovers its own line only.

Two `depline run --sim` processes (lines `line_a` and `line_b`, each with its own simulated plant) share
one database of a real PostgreSQL cluster. Both run the same queue file (same hash, same base item id
"E1"), so every place where an unscoped query would mix the lines has something to mix: the batch to
resume, the item ids, the channels, the runs a start closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench.postgres_cluster import PgCluster, unavailable_reason
from controller.historian.store import Historian
from tests.sequences.test_production import THIN_ANNEALED

ROOT = Path(__file__).resolve().parents[1]
STANDARD_LINE = ROOT / "controller" / "config" / "standard_line.toml"
START_TIMEOUT_S = 60.0
WAIT_S = 240.0
SPEED = 500.0
QUEUE = 'name = "one thin"\n[[jobs]]\nrecipe = "thin.toml"\nbase = "E1"\n'
pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def line_folder(base: Path, line: str, url: str, port: int) -> Path:
    """A site folder for one line: its configuration (own name, shared database), queues, spill."""
    folder = base / line
    queues = folder / "queues"
    queues.mkdir(parents=True)
    (queues / "thin.toml").write_text(THIN_ANNEALED)
    (queues / "one-thin.toml").write_text(QUEUE)
    text = STANDARD_LINE.read_text().replace('queue_dir = "queues"', f'queue_dir = "{queues}"')
    text = text.replace('name = "line1"', f'name = "{line}"', 1)
    text = text.replace('url = "sqlite:///data/line1.db"', f'url = "{url}"')
    text = text.replace("port = 8080", f"port = {port}")
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


async def test_two_lines_share_one_database_without_seeing_each_other(pg: PgCluster, tmp_path: Path) -> None:
    url = await asyncio.to_thread(pg.create_database, "site")
    line_a = line_folder(tmp_path, "line_a", url, 8081)
    line_b = line_folder(tmp_path, "line_b", url, 8082)

    async with service(line_a) as a:
        op_a = await login(a)
        batch_a = await start_batch(a, op_a)
        # one batch works at a time (two simulated plants at full tilt starve a 2-core runner): line a's
        # is held once loaded, its rows 'running' and its items on the line, while line b works
        await hold(a, op_a)
        async with service(line_b) as b:
            # line b's start closed nothing of line a's: a's run is live, its batch is a's own
            assert await run_status(url, "line_a") == ["running"]
            op_b = await login(b)
            batch_b = await start_batch(b, op_b)  # the same queue file: not a resume of line a's batch
            assert batch_b != batch_a
            view_b = await finish_batch(b, op_b)
            assert view_b["batch"]["id"] == batch_b
            assert ran_to_its_end(view_b), view_b["jobs"]

            # a second service for line a's name is refused, and touches nothing
            intruder = line_folder(tmp_path / "again", "line_a", url, 8083)
            proc = await launch(intruder)
            _, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT_S)
            assert proc.returncode != 0
            assert "line 'line_a' is held by another running service" in err.decode(), err.decode()[-2000:]

            for http, line, batch in ((a, "line_a", batch_a), (b, "line_b", batch_b)):
                await sees_only_its_own(http, url, line, batch)
        # line b stopped cleanly; line a's batch waits mid-line, its items loaded
        b_commands = len(await query(url, "SELECT id FROM commands WHERE line = 'line_b'"))
        async with service(line_b) as b:
            assert await run_status(url, "line_a") == ["running"]  # b's restart marked nothing of a's
            assert await run_status(url, "line_b") == ["complete", "running"]
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
            after = await query(url, "SELECT action FROM commands WHERE line = 'line_b' ORDER BY id")
            assert not [r["action"] for r in after[b_commands:] if batch_a in r["action"]]
        assert await run_status(url, "line_a") == ["running"]
        assert (await a.post("/api/batch/resume", headers=op_a)).status_code == 202
        view_a = await finish_batch(a, op_a)
        assert view_a["batch"]["id"] == batch_a
        assert ran_to_its_end(view_a), view_a["jobs"]
    assert await run_status(url, "line_a") == ["complete"]
    # the item id both lines registered is two rows, one per line
    assert sorted(r["line"] for r in await query(url, "SELECT line FROM items WHERE id = 'E1'")) == [
        "line_a",
        "line_b",
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
