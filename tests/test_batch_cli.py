"""`depline batch`, `depline report` and `depline demo` as processes: exit codes, resume after kill -9."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest

from controller.config.line_config import load_line_config
from tests.sequences.test_production import THIN_ANNEALED
from tests.test_cli import ROOT, depline
from tests.worker_groups import LINE_PROCESSES

pytestmark = pytest.mark.timeout(600)

QUEUE = """
name = "resume-test"
on_failure = "stop"

[[jobs]]
recipe = "thin.toml"
count = 2
"""

THIN = THIN_ANNEALED


def checkpoint(db: Path) -> tuple[str, int]:
    """The first job's checkpoint and how many jobs have ended, read the way an engineer would."""
    if not db.exists():
        return "", 0
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT checkpoint, outcome FROM jobs ORDER BY position").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return "", 0
    if not rows:
        return "", 0
    return rows[0][0], sum(outcome is not None for _, outcome in rows)


@pytest.mark.heavy
@pytest.mark.xdist_group(LINE_PROCESSES)
async def test_a_batch_killed_with_sigkill_resumes_and_finishes(tmp_path: Path) -> None:
    (tmp_path / "thin.toml").write_text(THIN)
    queue = tmp_path / "queue.toml"
    queue.write_text(QUEUE)
    db = tmp_path / "line.db"
    args = ["batch", str(queue), "--sim", "--speed", "500", "--database", f"sqlite:///{db}"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(240):
            while checkpoint(db)[0] not in (  # around the containers' opening (the transfer is short:
                "open_containers:done",  # on a loaded machine the kill may land in the pump-down after it)
                "transfer_in:started",
                "transfer_in:done",
                "pump_down_1:started",
            ):
                assert proc.returncode is None, "the batch ended before it was killed"
                await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up of any kind: the power-cut case
        await proc.wait()
    killed_at, ended = checkpoint(db)
    assert ended == 0
    code, out, err = await depline(*args, timeout_s=400)
    assert code == 0, out + err
    assert "resuming batch" in out
    assert re.search(r"totals: 2 done", out), out
    assert out.count("never exposed to a non-inert atmosphere") == 2
    with sqlite3.connect(db) as conn:
        attempts = [a for (a,) in conn.execute("SELECT attempts FROM jobs ORDER BY position")]
        statuses = [s for (s,) in conn.execute("SELECT status FROM batches")]
    assert attempts == [2, 1], killed_at  # job 1 was started twice, from its checkpoint
    assert statuses == ["complete"]
    batch_id = re.search(r"batch (B\S+): COMPLETE", out)
    assert batch_id is not None
    code, report, err = await depline("report", batch_id.group(1), "--database", f"sqlite:///{db}")
    assert code == 0, err
    verdicts = re.findall(r"-- electrode \(base\): \S+ .*\n\s+verdict: (.*)", report)
    assert len(verdicts) == 2
    assert verdicts[1].startswith("never exposed to air")
    # job 1 was killed around the container's opening: if it was already open, the seconds nobody
    # watched are not proven inert, and the certificate says so rather than assuming
    assert verdicts[0].startswith("never exposed to air") or "unwatched" in verdicts[0]


async def test_bad_batch_input_exits_2_with_one_line(tmp_path: Path) -> None:
    queue = tmp_path / "queue.toml"
    queue.write_text('[[jobs]]\nrecipe = "no-such-recipe.toml"\n')
    code, _out, err = await depline(
        "batch", str(queue), "--sim", "--database", f"sqlite:///{tmp_path / 'x.db'}"
    )
    assert code == 2
    assert "jobs[0].recipe = 'no-such-recipe.toml'" in err
    assert "Traceback" not in err
    code, _, err = await depline("batch", str(queue), "--speed", "10")
    assert code == 2
    assert "--speed" in err
    assert "--sim" in err
    code, _, err = await depline("report", "B-nope", "--database", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2
    assert "no such database file" in err


@pytest.mark.heavy
@pytest.mark.xdist_group(LINE_PROCESSES)
async def test_the_demo_runs_three_shipped_recipes_and_prints_the_records(tmp_path: Path) -> None:
    code, out, err = await depline("demo", "--database", f"sqlite:///{tmp_path / 'demo.db'}", timeout_s=500)
    assert code == 0, out[-3000:] + err[-3000:]
    assert "the line's API is at http://127.0.0.1:" in out
    assert re.search(r"totals: 3 done", out), out[-3000:]
    assert out.count("never exposed to a non-inert atmosphere") == 3


async def test_the_hmi_demo_waits_for_a_person_and_a_sigterm_leaves_their_batch_resumable(
    tmp_path: Path,
) -> None:
    database = tmp_path / "demo.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "demo", "--operator", "hmi", "--database", f"sqlite:///{database}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"the HMI is at (http://127\.0\.0\.1:\d+)/ -- log in", banner)
        assert found, banner
        async with httpx.AsyncClient(base_url=found.group(1), timeout=30) as http:
            assert "demo" in [q["name"] for q in (await http.get("/api/batch/queues")).json()]
            idle = (await http.get("/api/batch")).json()
            assert (idle["runs_here"], idle["running"], idle["batch"]) == (
                True,
                False,
                None,
            )  # nothing by itself
            login = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            started = await http.post("/api/batch/start", json={"queue": "demo"}, headers=headers)
            assert started.status_code == 201, started.text
            key = await _first_prompt(http)
            confirmed = await http.post(f"/api/prompts/{key}/confirm", headers=headers)
            assert confirmed.status_code == 200, confirmed.text
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err, err.decode()
    with sqlite3.connect(database) as conn:
        [(status, user)] = conn.execute("SELECT status, user FROM batches").fetchall()
        jobs = conn.execute("SELECT outcome FROM jobs ORDER BY position").fetchall()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM job_events ORDER BY id")]
    assert (status, user) == ("running", "op1")  # unfinished: starting the queue again resumes it
    assert jobs == [(None,), (None,), (None,)]
    assert "confirm" in kinds
    assert "safe_state" in kinds  # the stop on SIGTERM took the route to its safe state


async def _first_prompt(http: httpx.AsyncClient) -> str:
    for _ in range(600):
        prompts = (await http.get("/api/prompts")).json()
        if prompts:
            return str(prompts[0]["key"])
        await asyncio.sleep(0.1)
    raise AssertionError("no glove-work prompt within 60 s of the start")


async def test_the_demo_serves_on_a_free_port_when_its_configured_one_is_taken(tmp_path: Path) -> None:
    """The README's promise: a dev machine with something on the configured port still runs the demo."""
    config = load_line_config()
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(300):  # another test's demo may hold it for a while: this test holds it itself
        try:
            taken.bind((config.hmi.host, config.hmi.port))
            break
        except OSError:
            await asyncio.sleep(0.1)
    taken.listen()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "demo", "--operator", "hmi",
        "--database", f"sqlite:///{tmp_path / 'demo.db'}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"the HMI is at http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner
        assert int(found.group(1)) != config.hmi.port
    finally:
        taken.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
