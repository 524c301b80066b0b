"""Crash safety, for real: the controller is killed with SIGKILL and restarted on the same database while
the simulated plant (another process) keeps running.

`depline sim` plays the plant and outlives the controller; `depline run` is given a copy of the standard
line whose links point at the endpoints the simulator announced. What a restart must get right: the
interrupted run is marked incomplete, the items are where they were without being registered again,
no committed command is lost, and the hardware is read as it is (the pump the dead controller started
is still running: the new one must not assume it off). Timeouts only keep a broken run from hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
STANDARD_LINE = ROOT / "controller" / "config" / "standard_line.toml"
START_TIMEOUT_S = 60.0
WAIT_S = 60.0
STOP_TIMEOUT_S = 30.0


class Process:
    """A `depline` subprocess: stdout piped (its announcements), stderr to a file (never a full pipe)."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path, stderr: IO[bytes]) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self._stderr = stderr

    @classmethod
    async def start(cls, stderr_path: Path, *args: str) -> Process:
        stderr = stderr_path.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller.cli", *args,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT,
            )  # fmt: skip
        except BaseException:
            stderr.close()
            raise
        return cls(proc, stderr_path, stderr)

    async def line(self, timeout_s: float = START_TIMEOUT_S) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        assert line, f"the process ended early:\n{self.stderr()}"
        return line.decode()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")  # the child writes it; we only hold it open

    async def kill(self) -> int:
        """SIGKILL: no handler runs, nothing is flushed, as in a crash or a power cut of the process."""
        self.proc.kill()
        return await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)

    async def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not end in time. Always closes what it opened."""
        try:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
                except TimeoutError:
                    self.proc.kill()
                    await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        finally:
            self._stderr.close()
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def process(stderr_path: Path, *args: str) -> AsyncIterator[Process]:
    started = await Process.start(stderr_path, *args)
    try:
        yield started
    finally:
        await started.stop()


async def announced_endpoints(sim: Process, devices: set[str]) -> dict[str, str]:
    """Device -> the URL its controller link must use (the gateway's is the other way to the same bus)."""
    urls: dict[str, str] = {}
    while set(urls) != devices:
        record = json.loads(await sim.line())
        if record["protocol"] != "modbus-tcp-gateway":
            urls[record["device"]] = record["url"]
    return urls


def line_config_for(endpoints: dict[str, str], path: Path) -> Path:
    """The standard line with every [links.X] url replaced by the simulator's endpoint for it."""
    text = STANDARD_LINE.read_text()
    standard = tomllib.loads(text)
    link_url = {d["link"]: endpoints[d["name"]] for d in standard["devices"]}  # devices on a bus share it
    for link, url in link_url.items():
        pattern = rf'(\[links\.{re.escape(link)}\]\nurl = )"[^"]*"'
        text, found = re.subn(pattern, _quoted(url), text)
        assert found == 1, link
    path.write_text(text)
    return path


def _quoted(url: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return f'{match.group(1)}"{url}"'

    return replace


async def serving_url(ctl: Process) -> str:
    banner = await ctl.line()
    found = re.fullmatch(r"depline: serving (http://127\.0\.0\.1:\d+) \(line '\w+'\)\n", banner)
    assert found, banner
    return found.group(1)


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


async def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    def run() -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(database, timeout=10.0)) as db:
            return db.execute(sql).fetchall()

    return await asyncio.to_thread(run)


async def login(http: httpx.AsyncClient, user: str, password: str) -> dict[str, str]:
    response = await http.post("/api/login", json={"user": user, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def inlet(http: httpx.AsyncClient) -> dict[str, Any]:
    state = (await http.get("/api/state")).json()
    return next(s for s in state["spaces"] if s["name"] == "inlet")


async def all_devices_reported(http: httpx.AsyncClient) -> bool:
    devices = (await http.get("/api/health")).json()["devices"]
    return all(d["last_success_ts"] is not None for d in devices)


ITEMS = [
    {"id": "C1", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True},
    {"id": "F1", "kind": "base_material", "material": "Li/Cu", "location": "C1"},
    {"id": "CU1", "kind": "base_material", "material": "Cu", "location": "inlet"},
]
COMMANDS = [
    {"type": "SetPump", "space": "inlet", "running": True},
    {"type": "MoveItem", "item": "CU1", "to": "C1"},
    {"type": "SetValve", "space": "inlet", "valve": "gas_fill", "open": False},
]


async def test_a_controller_killed_with_sigkill_comes_back_from_its_records(tmp_path: Path) -> None:
    database = tmp_path / "line.db"
    devices = {d["name"] for d in tomllib.loads(STANDARD_LINE.read_text())["devices"]}
    async with process(tmp_path / "sim.err", "sim") as sim:
        config = line_config_for(await announced_endpoints(sim, devices), tmp_path / "line.toml")
        run = ("run", "--config", str(config), "--database", f"sqlite:///{database}", "--port", "0")

        # -- first life: items in, commands done and committed, then SIGKILL --------------------------
        first = await Process.start(tmp_path / "first.err", *run)
        try:
            url = await serving_url(first)
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
                await eventually(lambda: all_devices_reported(http), "every device answers")
                engineer = await login(http, "eng1", "eng1-demo")  # operators may not register items
                operator = await login(http, "op1", "op1-demo")
                for body in ITEMS:
                    response = await http.post("/api/items", json=body, headers=engineer)
                    assert response.status_code == 201, response.text
                for action in COMMANDS:
                    response = await http.post("/api/commands", json=action, headers=operator)
                    assert response.json()["outcome"] == "done", response.text
                await eventually(lambda: _pump_running(http), "the plant runs the inlet pump")
                items_before = {i["id"]: i for i in (await http.get("/api/items")).json()}
            await eventually(
                lambda: _committed(database, len(ITEMS) + len(COMMANDS)), "the commands committed"
            )
            committed = {row[0] for row in await query(database, "SELECT id FROM commands")}
            [(dead_run,)] = await query(database, "SELECT id FROM runs WHERE status = 'running'")
            assert await first.kill() == -signal.SIGKILL
        finally:
            await first.stop()
        assert "Traceback" not in first.stderr(), first.stderr()

        # -- second life on the same database, the plant untouched in between --------------------------
        async with process(tmp_path / "second.err", *run) as second:
            url = await serving_url(second)
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
                runs = {r["id"]: r["status"] for r in (await http.get("/api/runs")).json()}
                assert runs.pop(dead_run) == "incomplete"
                assert list(runs.values()) == ["running"]

                items_after = {i["id"]: i for i in (await http.get("/api/items")).json()}
                assert items_after == items_before  # where they were, not registered again
                assert items_after["CU1"]["location"] == "C1"  # moved by a command, not by registration
                assert items_after["F1"]["exposed"] is False

                state = await eventually(
                    lambda: _inlet_read(http), "the restarted controller reads the inlet"
                )
                assert state["pump_running"] is True  # read from the plant, which kept it running
                await eventually(lambda: _station(http, "inlet", "fault"), "the inlet put in its safe state")

                detail = (await http.get(f"/api/runs/{dead_run}")).json()
                assert {c["id"] for c in detail["commands"]} == committed
            still_there = {row[0] for row in await query(database, "SELECT id FROM commands")}
            assert committed <= still_there
            assert await second.stop() == 0
        assert "Traceback" not in second.stderr(), second.stderr()
        [(count,)] = await query(database, "SELECT count(*) FROM runs WHERE status = 'complete'")
        assert count == 1
        assert await sim.stop() == 0
    assert "Traceback" not in sim.stderr(), sim.stderr()


async def _pump_running(http: httpx.AsyncClient) -> bool:
    return (await inlet(http))["pump_running"] is True


async def _inlet_read(http: httpx.AsyncClient) -> dict[str, Any] | None:
    found = await inlet(http)
    return found if found["pump_running"] is not None else None


async def _station(http: httpx.AsyncClient, name: str, state: str) -> bool:
    stations = (await http.get("/api/state")).json()["stations"]
    return any(s["name"] == name and s["state"] == state for s in stations)


async def _committed(database: Path, done: int) -> bool:
    try:
        rows = await query(database, "SELECT count(*) FROM commands WHERE outcome = 'done'")
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
    return int(rows[0][0]) >= done
