"""`depline replay`: the HMI on a recorded night, read-only, with a time cursor.

One batch runs once per module (`depline batch --sim` at 1000x into a real SQLite file, the flight
recorder tests' `night`); `depline replay` then serves it as a separate process on a port it picks, and
the database must come out of it byte for byte as it went in, with no -wal or -shm file left beside it.
The line at an instant is checked against what the live controller recorded then (the ledger's
atmosphere of the space the electrode was in, the item's place, the last valve command); the page is
driven to that instant in Debian's Chromium. The state-at-an-instant function is also tested alone on
hand-written rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bench.postgres_cluster import PgCluster, unavailable_reason
from controller.cli import main
from controller.config.line_config import load_line_config
from controller.errors import UserError
from controller.flight_recorder.database_choice import recorded_config
from controller.flight_recorder.line_at import LineRecords, line_at
from controller.flight_recorder.line_records import line_records
from controller.flight_recorder.rejudge import channels_read
from controller.historian.record_search import SampleRow
from controller.historian.schema import make_engine
from controller.historian.store import Historian
from controller.historian.upgrade import require_readable, upgrade
from controller.line.model import LineModel
from tests.hmi.test_hmi_browser import CHROMIUM_ARGS, VIEWPORT, WAIT_MS, artifact
from tests.test_cli import ROOT
from tests.test_flight_recorder import db_args, digest, job_row, night  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("replay")]
READY = re.compile(r"depline: replay of .* on (http://\S+) \(read-only\)")
START_TIMEOUT_S = 60.0


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    db: Path


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def replay_of(db: Path) -> Iterator[Served]:
    """`depline replay` on DB, on a port of its choosing (--port 0; the URL is in its ready line).
    At the end it must stop cleanly on SIGTERM and leave the database exactly as it was."""
    before = digest(db)
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "replay", *db_args(db), "--port", "0"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = process.stderr.readline()
    while not READY.match(line) and time.monotonic() < deadline and process.poll() is None:
        line = process.stderr.readline()
    found = READY.match(line)
    assert found, f"no ready line from depline replay: {line!r}"
    try:
        yield Served(found.group(1), process, db)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert digest(db) == before, "the replay changed the database it replayed"
        assert not [p.name for p in db.parent.glob(db.name + "-*")], "the replay left files beside it"


@pytest.fixture(scope="module")
def served(night: Path) -> Iterator[Served]:  # noqa: F811
    with replay_of(night) as replay:
        yield replay


def mid_job_instant(db: Path) -> tuple[float, str, str]:
    """The middle of the longest stretch the electrode spent in the process chamber under one recorded
    atmosphere: (instant, the electrode, the atmosphere the live controller recorded for it then)."""
    *_, electrode = job_row(db)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT ts, space, atmosphere FROM ledger WHERE item = ? ORDER BY ts, id", (electrode,)
        ).fetchall()
    stretches = [(b[0] - a[0], a, b) for a, b in itertools.pairwise(rows) if a[1] == "process"]
    _length, start, end = max(stretches)
    return (start[0] + end[0]) / 2, electrode, start[2]


def last_valve_command(db: Path, at: float, space: str, valve: str) -> bool:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT action FROM commands WHERE outcome = 'done' AND ts <= ? ORDER BY ts, id", (at,)
        ).fetchall()
    actions = [json.loads(a) for (a,) in rows]
    wanted = [a for a in actions if a["type"] == "SetValve" and a["space"] == space and a["valve"] == valve]
    return bool(wanted[-1]["open"])


@pytest.mark.heavy
def test_the_line_at_an_instant_is_what_was_recorded_then(served: Served) -> None:
    at, electrode, atmosphere = mid_job_instant(served.db)
    state = _get(f"{served.url}/api/replay/state?at={at}")
    assert state["ts"] == pytest.approx(at)
    process = next(s for s in state["spaces"] if s["name"] == "process")
    assert process["atmosphere"] == atmosphere  # recomputed with today's rules from the readings
    [item] = [i for i in state["items"] if i["id"] == electrode]
    assert item["space"] == "process"
    assert electrode in process["exposed_items"]
    gate = process["valves"]["turbo_gate"]
    assert gate["commanded_open"] is last_valve_command(served.db, at, "process", "turbo_gate")
    ports = {p["name"]: p["valve"] for p in state["ports"]}
    assert ports["inlet_gate"]["confirmed_closed"]  # measured by its limit switches
    assert process["pressure_pa"] is not None
    telemetry = _get(f"{served.url}/api/replay/telemetry?at={at}")["channels"]
    assert telemetry
    assert all(c["ts"] <= at and c["age_s"] == pytest.approx(at - c["ts"]) for c in telemetry)
    board = _get(f"{served.url}/api/replay/board?at={at}")
    assert board["mode"]["mode"] == "production"
    # before the batch registered it, the electrode was nowhere on the line
    _job, _batch, started, _ended, _electrode = job_row(served.db)
    early = _get(f"{served.url}/api/replay/state?at={started - 5}")
    assert electrode not in [i["id"] for i in early["items"]]


@pytest.mark.heavy
def test_commands_and_log_ins_are_refused_as_read_only(served: Served) -> None:
    for path, body in (
        ("/api/commands", {"type": "SetPort", "port": "inlet.outer", "open": True}),
        ("/api/login", {"user": "op1", "password": "op1-demo"}),
        ("/api/items", {"id": "X", "kind": "electrode", "material": "Li/Cu", "location": "inlet"}),
    ):
        request = urllib.request.Request(
            served.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 405
        assert "replay is read-only" in json.loads(refused.value.read())["detail"]


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            opened = await browser.new_page(viewport=VIEWPORT)
            opened.set_default_timeout(WAIT_MS)
            yield opened
        finally:
            await browser.close()


@pytest.fixture
async def page(served: Served) -> AsyncIterator[Page]:
    async with chromium_page() as opened:
        yield opened


@pytest.mark.heavy
async def test_the_cursor_draws_the_line_as_it_was_at_that_instant(served: Served, page: Page) -> None:
    at, electrode, atmosphere = mid_job_instant(served.db)
    job_id, *_ = job_row(served.db)
    await page.goto(f"{served.url}/#run={job_id}&at={at}")
    banner = page.get_by_test_id("replay-banner")
    await expect(banner).to_contain_text("REPLAY")
    await expect(banner).to_contain_text(served.db.name)
    synoptic = page.locator("#synoptic")
    await expect(synoptic).to_have_attribute("data-at", str(at), timeout=WAIT_MS)
    vessel = synoptic.locator('[data-space="process"]')
    words = {"vacuum": "VACUUM", "process": "PROCESS GAS", "inert_in_spec": "INERT (predicted, no sensor)"}
    await expect(vessel.locator("[data-atmosphere]")).to_have_text(words.get(atmosphere, atmosphere.upper()))
    await expect(synoptic.locator(f'[data-item="{electrode}"]')).to_have_count(1)
    # the timeline marks the last event at or before the cursor
    current = page.locator("#replay-timeline li.at-cursor")
    await expect(current).to_have_count(1)
    assert float(await current.get_attribute("data-ts") or "inf") <= at
    # every command button says why it cannot be used
    login = page.locator("#login-button")
    await expect(login).to_be_disabled()
    await expect(login).to_have_attribute("title", re.compile("replay is read-only"))
    await vessel.click(position={"x": 30, "y": 30})  # its faceplate: the readings at the instant
    await expect(page.locator("#faceplate-readings")).to_contain_text("pressure")
    await expect(page.locator("#faceplate-commands")).not_to_contain_text("Open")
    await synoptic.locator(f'[data-item="{electrode}"]').click()  # its exposure record, from the ledger
    await expect(page.locator("#item-path tbody")).to_contain_text("process")
    await expect(page.locator("#item-verdict")).to_contain_text("never exposed")
    await synoptic.screenshot(path=artifact("replay-mid-job.png"))
    await page.screenshot(path=artifact("replay-page.png"), full_page=True)
    # the arrow keys step the cursor, and a click on an event moves it there
    cursor = page.locator("#replay-at")
    await page.locator("#replay-cursor").focus()
    await page.keyboard.press("ArrowRight")
    await expect(cursor).not_to_have_attribute("data-at", str(at))
    first = page.locator("#replay-timeline li").first
    first_ts = await first.get_attribute("data-ts")
    await first.locator("button").click()
    await expect(cursor).to_have_attribute("data-at", str(float(first_ts or "nan")))
    await expect(synoptic).to_have_attribute("data-at", str(float(first_ts or "nan")), timeout=WAIT_MS)
    await expect(page.locator("#trends [data-trend-space='process']")).to_be_visible(timeout=WAIT_MS)


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`depline replay ARGS` in this process (the CLI's own entry point, without a second interpreter's
    start-up): exit 2 and one line on standard error, which is returned."""
    assert main(["replay", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database\n")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text)")
    good = tmp_path / "good.db"
    assert main(["db", "upgrade", "--database", f"sqlite:///{good}"]) == 0
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    capsys.readouterr()
    cases = {
        tmp_path / "missing.db": "no such database file",
        garbage: "not a depline historian",
        foreign: "not a depline historian",
        newer: "newer depline",
    }
    for path, why in cases.items():
        before = path.read_bytes() if path.exists() else None
        assert why in _refused(capsys, "--database", f"sqlite:///{path}", "--port", "0")
        assert (path.read_bytes() if path.exists() else None) == before
    assert not (tmp_path / "missing.db").exists()
    assert "holds no record of line 'line1'" in _refused(capsys, "--database", f"sqlite:///{good}")
    assert "holds no record of line 'line1'" in _refused(
        capsys,
        "--database",
        f"sqlite:///{good}",
        "--config",
        str(ROOT / "controller" / "config" / "standard_line.toml"),
    )
    _record_run(good, "r0", "line1", 0.5, "[line]\nname = 'line1'\n[[spaces]]\n")  # a configuration gone bad
    why = _refused(capsys, "--database", f"sqlite:///{good}")
    assert "run r0's configuration" in why
    assert "--config" in why
    # a run of line1: now only the port is in the way
    _record_run(good, "r1", "line1", 1.0, load_line_config().text)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        why = _refused(capsys, "--database", f"sqlite:///{good}", "--host", "127.0.0.1", "--port", str(port))
    assert f"127.0.0.1:{port}" in why
    assert "in use" in why
    assert "not a TCP port" in _refused(capsys, "--database", f"sqlite:///{good}", "--port", "70000")


def _record_run(db: Path, run_id: str, line: str, started_at: float, config_text: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO runs (id, line, started_at, ended_at, status, config_hash, config_text, user) "
            "VALUES (?, ?, ?, ?, 'complete', '', ?, 'test')",
            (run_id, line, started_at, started_at + 1.0, config_text),
        )


async def test_without_a_file_the_line_is_drawn_as_its_newest_run_recorded_it(tmp_path: Path) -> None:
    """An export from a site with another line replays as that line with nothing but the file; a
    database two lines share needs --line, and an unknown one is named with the lines it holds."""
    db = tmp_path / "site.db"
    assert await asyncio.to_thread(main, ["db", "upgrade", "--database", f"sqlite:///{db}"]) == 0
    two = (ROOT / "deploy" / "lines" / "two_chambers.toml").read_text(encoding="utf-8")
    url = f"sqlite:///{db}"
    assert await recorded_config(url, None) is None  # no run yet: read as the standard line
    _record_run(db, "old", "line1", 1.0, load_line_config().text)
    first = await recorded_config(url, None)
    assert first is not None
    assert [s.name for s in first.spaces] == ["inlet", "process", "outlet"]
    named = load_line_config(ROOT / "deploy" / "lines" / "two_chambers.toml").name
    _record_run(db, "new", named, 2.0, two)
    with pytest.raises(UserError, match="choose one with --line"):
        await recorded_config(url, None)
    drawn = await recorded_config(url, named)
    assert drawn is not None
    assert any(s.kind == "transfer_chamber" for s in drawn.spaces)
    assert drawn.text == two
    with pytest.raises(UserError, match=r"no record of line 'elsewhere' \(lines recorded: "):
        await recorded_config(url, "elsewhere")


# --- the state at an instant, alone, on hand-written rows ---------------------------------------------


def _sample(row_id: int, ts: float, channel_id: int, value: float, quality: str = "ok") -> SampleRow:
    return SampleRow(row_id, ts, channel_id, value, quality)


def test_line_at_rebuilds_readings_positions_items_and_alarms_from_rows_alone() -> None:
    config = load_line_config()
    readings = LineModel(config).readings
    io = readings.io
    assert io is not None
    gate_points = {(io, "inlet_gate"), (io, "inlet_gate.open"), (io, "inlet_gate.closed")}  # channels 4-6
    # every other valve, door, pump: closed, off (one channel id per point, as the channels table keeps)
    outputs = [key for key in channels_read(config) if key[0] == io and key not in gate_points]
    channels = {
        1: (*readings.gauges["inlet"][0], "Pa"),
        2: (*readings.frost["inlet"], "degC"),
        3: (*readings.o2["inlet"], "ppmv"),
        4: (io, "inlet_gate", "bool"),
        5: (io, "inlet_gate.open", "bool"),
        6: (io, "inlet_gate.closed", "bool"),
        7: (*readings.gauges["process"][0], "Pa"),
        **{100 + n: (device, point, "bool") for n, (device, point) in enumerate(outputs)},
    }
    t0 = 1_800_000_000.0
    at = t0 + 60.0
    seed = [  # recorded long before: deadband recording stores a still channel on its heartbeat only
        _sample(1, t0 - 400, 1, 101_300.0),
        _sample(2, t0 - 400, 2, -62.0),
        _sample(3, t0 - 400, 3, 0.4),
        _sample(7, t0 - 400, 7, 2e-4),
        *(
            _sample(100 + n, t0 - 400, channel_id, float(point.endswith(".closed")))
            for n, (channel_id, (_device, point, _unit)) in enumerate(channels.items())
            if channel_id >= 4 and channel_id != 7
        ),
    ]
    samples = [_sample(8, t0 + 40, 5, 1.0), _sample(9, t0 + 40.1, 6, 0.0)]  # the gate's switches: open
    commands = [
        {"ts": t0 + 39.0, "action": {"type": "SetPort", "port": "inlet_gate", "open": True},
         "outcome": "done"},
        {"ts": t0 + 59.0, "action": {"type": "SetValve", "space": "inlet", "valve": "vent", "open": True},
         "outcome": "refused"},
    ]  # fmt: skip
    actions = [
        {"ts": t0, "action": {"type": "RegisterItem", "id": "C1", "kind": "container", "material": "SUS",
                              "location": "inlet", "sealed": True}},
        {"ts": t0 + 1, "action": {"type": "RegisterItem", "id": "E1", "kind": "electrode",
                                  "material": "Li/Cu", "location": "C1", "sealed": False}},
        {"ts": t0 + 50, "action": {"type": "SetContainer", "container": "C1", "sealed": False}},
        {"ts": at + 5, "action": {"type": "MoveItem", "item": "E1", "to": "process"}},  # after the instant
    ]  # fmt: skip
    alarm: dict[str, Any] = {
        "line": "line1", "from_state": "normal", "severity": "high", "reason": None, "evidence": {}
    }  # fmt: skip
    alarms = [
        {**alarm, "ts": t0 + 10, "alarm_id": "a.raised", "event": "condition_raised",
         "to_state": "active_unacked", "user": None, "first_out": True},
        {**alarm, "ts": t0 + 20, "alarm_id": "a.acked", "event": "acknowledge", "to_state": "active_acked",
         "user": "op1"},
        {**alarm, "ts": t0 + 30, "alarm_id": "a.gone", "event": "condition_cleared", "to_state": "normal",
         "user": None},
    ]  # fmt: skip
    records = LineRecords(
        at=at,
        warm_from=t0,
        channels=channels,
        seed=seed,
        samples=samples,
        commands=commands,
        known_items=[("C1", "container", "SUS"), ("E1", "electrode", "Li/Cu"), ("E2", "electrode", "Li/Cu")],
        inventory_actions=actions,
        transitions=[{"station": "inlet", "dest": "purging", "ts": t0 + 5}],
        alarm_events=alarms,
        mode={"mode": "production", "owner": "B1", "ts": t0},
    )
    found = line_at(config, records)
    inlet = found.state.spaces["inlet"]
    assert inlet.atmosphere.value == "inert_in_spec"  # frost point and O2 in spec at atmosphere
    assert found.state.spaces["process"].atmosphere.value == "vacuum"
    gate = found.state.ports["inlet_gate"].valve
    assert (gate.commanded_open, gate.open_ls, gate.closed_ls) == (True, True, False)
    assert inlet.valves["vent"].commanded_open is not True  # a refused command wrote nothing
    assert {i: (item.location, item.sealed) for i, item in found.items.items()} == {
        "C1": ("inlet", False),
        "E1": ("C1", False),
    }  # E2 was never registered before the instant; E1 moves only after it
    frost = found.snapshot[readings.frost["inlet"]]
    assert at - frost.mono == pytest.approx(460.0)  # its age: recorded 460 s before the instant
    assert [(a.id, a.state, a.user, a.first_out) for a in found.alarms] == [
        ("a.raised", "active_unacked", None, True),
        ("a.acked", "active_acked", "op1", False),
    ]
    assert found.stations == {"inlet": "purging"}
    assert (found.mode, found.owner) == ("production", "B1")


# --- read-only on both databases ----------------------------------------------------------------------


@pytest.mark.heavy  # a PostgreSQL cluster's start and two migrations: ~20 s on a loaded machine
async def test_a_read_only_engine_reads_and_cannot_write_on_sqlite_and_postgresql(tmp_path: Path) -> None:
    """What `depline replay` opens: queries work (the line at an instant, from an empty historian), any
    write is refused by the database itself, and the SQLite file's bytes do not change."""
    if unavailable_reason() is not None:
        pytest.fail(f"PostgreSQL is needed here: {unavailable_reason()}")
    cluster = PgCluster()
    try:
        await asyncio.to_thread(cluster.start)
        postgresql = await asyncio.to_thread(cluster.create_database, "replay")
        for url in (f"sqlite:///{tmp_path / 'line.db'}", postgresql):
            await upgrade(url)
            before = (tmp_path / "line.db").read_bytes()
            await require_readable(url, read_only=True)
            async with Historian.reader(url, line="line1", read_only=True) as historian:
                found = line_at(load_line_config(), await line_records(historian, load_line_config(), 1e9))
                assert found.items == {}
                assert found.alarms == []
            engine = make_engine(url, read_only=True, poolclass=NullPool)
            try:
                async with engine.connect() as conn:
                    assert (await conn.execute(text("SELECT count(*) FROM runs"))).scalar() == 0
                    with pytest.raises(DBAPIError, match=r"read.only|readonly"):
                        await conn.execute(text("CREATE TABLE written (a INTEGER)"))
            finally:
                await engine.dispose()
            assert (tmp_path / "line.db").read_bytes() == before
    finally:
        await asyncio.to_thread(cluster.destroy)
