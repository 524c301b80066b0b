"""`depline run`, `status` and `alarms` as an operator meets them: real processes, real sockets, signals."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


async def depline(*args: str, timeout_s: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", ["run", "status", "alarms"])
async def test_every_new_subcommand_has_help(command: str) -> None:
    code, out, _ = await depline(command, "--help")
    assert code == 0
    assert f"usage: depline {command}" in out


async def test_run_sim_serves_status_and_alarms_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    database = tmp_path / "line.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "run", "--sim", "--port", "0", "--speed", "20",
        "--database", f"sqlite:///{database}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)).decode()
        found = re.fullmatch(
            r"depline: serving (http://127\.0\.0\.1:\d+) \(line '(\w+)', simulated at 20x\)\n", banner
        )
        assert found, banner
        url = found.group(1)

        code, out, err = await depline("status", "--url", url)
        assert code == 0, err
        assert f"line {found.group(2)!r}" in out
        for space_name in ("inlet", "process", "outlet"):
            assert re.search(rf"^{space_name}\s", out, re.MULTILINE), out
        assert "ports: inlet.outer" in out

        code, out, err = await depline("alarms", "--url", url)
        assert code == 0, err
        assert out.strip()

        proc.send_signal(signal.SIGTERM)
        rest, err_bytes = await asyncio.wait_for(proc.communicate(), 30.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert rest == b""  # one line on stdout, and only one
    assert b"Traceback" not in err_bytes, err_bytes.decode()
    with contextlib.closing(sqlite3.connect(database)) as db:  # the run is on record, closed cleanly
        runs = db.execute("SELECT status, config_text FROM runs").fetchall()
        samples = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert [status for status, _ in runs] == ["complete"]
    assert "[[spaces]]" in runs[0][1]
    assert samples > 0


async def test_status_of_a_controller_that_is_not_there_is_one_clear_line() -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound here, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        code, out, err = await depline("status", "--url", f"http://127.0.0.1:{port}")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"depline: cannot reach the line service at http://127.0.0.1:{port}: Connection refused"
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--speed", "5"], "--speed sets the simulated plant's clock; it needs --sim"),
        (["run", "--sim", "--port", "70000"], "--port 70000 outside 0 .. 65535"),
        (["alarms", "--url", "file:///etc/passwd"], "give the service's http:// address"),
    ],
)
async def test_bad_options_exit_2_with_the_reason(args: list[str], expected: str) -> None:
    code, _, err = await depline(*args)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


async def test_run_on_a_busy_port_exits_2_before_starting_anything() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, out, err = await depline(
            "run", "--sim", "--port", str(port), "--database", "sqlite:///:memory:"
        )
    assert code == 2
    assert out == ""
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
