"""The `depline` command line as a user meets it: help everywhere, exit 2 on bad input, real processes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = [
    [], ["demo"], ["sim"], ["batch"], ["report"], ["config"], ["config", "check"], ["user"], ["user", "hash"]
]  # fmt: skip


async def depline(*args: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
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


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "depline")
async def test_every_subcommand_has_help(words: list[str]) -> None:
    code, out, _ = await depline(*words, "--help")
    assert code == 0
    assert "usage: depline" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["config", "check", "/nonexistent/line.toml"], "/nonexistent/line.toml: (file)"),
        (["demo", "--speed", "0"], "--speed 0 outside the allowed range 0.1 .. 10000"),
        (["sim", "--speed", "fast"], "--speed 'fast' is not a number"),
        (["sim", "--scenario", "/nonexistent/scenario.toml"], "/nonexistent/scenario.toml: (file)"),
    ],
)
async def test_user_errors_exit_2_with_one_clear_line(args: list[str], expected: str) -> None:
    code, _, err = await depline(*args)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


async def test_bad_config_value_names_file_field_value_and_range(tmp_path: Path) -> None:
    text = (ROOT / "controller" / "config" / "standard_line.toml").read_text()
    bad = tmp_path / "line.toml"
    bad.write_text(text.replace("max_frost_point_c = -50.0", "max_frost_point_c = 5.0"))
    code, _, err = await depline("config", "check", str(bad))
    assert code == 2
    assert err.strip().splitlines() == [
        f"depline: {bad}: limits.max_frost_point_c = 5.0: allowed range is -100 .. -20"
    ]


async def test_shipped_configurations_are_valid() -> None:
    files = [
        str(ROOT / "controller" / "config" / "standard_line.toml"),
        *map(str, sorted((ROOT / "deploy").rglob("*.toml"))),
    ]
    code, out, err = await depline("config", "check", *files)
    assert code == 0, err
    assert out.count(": ok:") == len(files)


@pytest.mark.skipif(
    shutil.which("mbpoll") is None, reason="Debian's mbpoll is not installed (make test installs it)"
)
async def test_mbpoll_reads_the_inlet_frost_point_from_depline_sim() -> None:
    """An independent Modbus master on the pty that `depline sim` announces (devices.md §4 map)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "sim",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        records: list[dict[str, Any]] = []
        while not any(r["device"] == "sources" for r in records):
            line = await asyncio.wait_for(proc.stdout.readline(), 20.0)
            assert line, "depline sim exited before announcing its endpoints"
            records.append(json.loads(line))
        inlet = next(r for r in records if r["device"] == "inlet_dewpoint" and r["protocol"] == "modbus-rtu")
        assert inlet["unit"] == 240
        tty = inlet["url"].removeprefix("rtu://").split("?")[0]
        mbpoll = await asyncio.create_subprocess_exec(
            "mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-s", "2", "-a", "240",
            "-0", "-r", "8", "-c", "2", "-t", "4:float", "-1", tty,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(mbpoll.communicate(), 20.0)
        assert mbpoll.returncode == 0, err.decode()
        match = re.search(r"^\[8\]:\s+(-?[\d.]+)", out.decode(), re.MULTILINE)
        assert match, out.decode()
        assert 8.0 < float(match.group(1)) < 11.0  # Td/f of 20 °C, 50 % RH room air: 9.3 °C
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 20.0)
    assert proc.returncode == 0, err_bytes.decode()
    assert "Traceback" not in err_bytes.decode()


@pytest.mark.parametrize("command", ["recipe check", "config check", "--help"])
async def test_the_checking_commands_start_without_the_web_stack_or_the_database_layer(
    command: str, tmp_path: Path
) -> None:
    """They run at an engineer's prompt and, in the suite, by the hundred: the parser is built without
    importing what only serving, recording and replaying need (two seconds of imports before this)."""
    target = tmp_path / "r.toml"
    target.write_text('[recipe]\nname = "x"\n')
    args = [*command.split(), *([str(target)] if command == "recipe check" else [])]
    probe = (
        "import contextlib, io, sys\n"
        "from controller.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main({args!r})\n"
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240.0)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "[]", err.decode()
