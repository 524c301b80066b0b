"""Restarting from the records: interrupted runs, the inventory, the archive, and a controller that
comes back after its predecessor died.

The historian parts run on SQLite and PostgreSQL (the fixtures of test_historian). "Died" here means
the run was never ended and nothing more was written after its rows were committed, which is what a
`kill -9` leaves; tests/test_crash_recovery.py does the real kill on real processes. Waits poll a
condition with a timeout; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.config.line_config import LineConfig, load_line_config
from controller.historian.recorder import Recorder, RecoveryError
from controller.historian.recovery import RecoveredInventory
from controller.historian.store import Historian
from controller.line.actions import Command, MoveItem, SetContainer, SetPump
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.interlocks import Refusal, Verdict
from controller.line.items import Item, ItemKind
from controller.line.ledger import LedgerEntry, exposure_from_entries
from controller.line.poller import PollPlan, Priority, Sample
from controller.mqtt.options import SampleArchive
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from drivers.reading import Quality, Reading
from sim_hardware.line import SimLine
from tests.controller import test_historian as th

WAIT_S = 30.0
FAST: dict[str, Any] = th.FAST
db = th.db  # the fixtures, reused: a fresh SQLite file or PostgreSQL database per test
pg = th.pg
spill_dir = th.spill_dir


def gate_record(action: Any, *, outcome: str = "done", user: str = "op1") -> GateRecord:
    command = Command(action, user, "hmi")
    if outcome == "refused":
        verdict = Verdict(False, (Refusal("I1", "exposed-move", "would expose"),))
        return GateRecord(time.time(), command, verdict, executed=False)
    if outcome == "failed":
        return GateRecord(time.time(), command, Verdict(True), executed=False, error="DeviceTimeout")
    return GateRecord(time.time(), command, Verdict(True), executed=True)


def sample_at(ts: float, value: float, channel: str = "pressure_ch1") -> Sample:
    return Sample("antechamber_gauges", channel, Reading(value, "Pa", Quality.OK, ts, time.monotonic()))


# --- the historian ----------------------------------------------------------------------------------


async def test_a_run_left_running_is_closed_at_its_last_record_by_the_next_start(
    db: th.Db, spill_dir: Path
) -> None:
    first = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await first.start()
    run_id = first.start_run("[line]\nname = 'test'\n", "service")
    record = gate_record(SetPump("inlet", True))
    first.record_command(record)
    last_sample = time.time()
    first.record_sample(sample_at(last_sample - 0.001, 1.0))
    first.record_sample(sample_at(last_sample, 2.0, "pressure_ch2"))
    assert await first.flush(WAIT_S), first.stats
    await first.stop()  # no end_run: what a killed process leaves
    [left] = await th.rows(db.url, "SELECT status, ended_at FROM runs")
    assert left == {"status": "running", "ended_at": None}

    second = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await second.start()
    try:
        own = second.start_run("[line]\nname = 'test'\n", "service")
        assert await second.flush(WAIT_S), second.stats
        [closed] = second.interrupted_runs
        assert closed.id == run_id
        assert closed.found_end
        assert closed.ended_at == pytest.approx(max(last_sample, record.ts), abs=1e-6)
        summary = {r["id"]: r for r in await second.runs()}
        assert (summary[run_id]["status"], summary[own]["status"]) == ("incomplete", "running")
        assert summary[run_id]["ended_at"] == closed.ended_at
        second.end_run(own)
    finally:
        await second.stop()
    assert [r["status"] for r in await th.rows(db.url, "SELECT status FROM runs ORDER BY started_at")] == [
        "incomplete",
        "complete",
    ]


async def test_closing_waits_for_the_rows_a_dead_process_spilled(db: th.Db, spill_dir: Path) -> None:
    """The run's own row, and its registration, were only in a spill file: both count."""
    first = Historian(db.url, line="line1", spill_dir=spill_dir, max_buffer=30, **FAST)
    await first.start()
    await db.break_()
    run_id = first.start_run("[line]\n", "service")
    foil = Item("foil-1", ItemKind.BASE_MATERIAL, "Li/Cu", "inlet")
    first.record_registration(foil, "eng1", "hmi")
    await th.until(lambda: not first.healthy, "the outage to be noticed", first)
    await first.stop(flush_timeout_s=0.5)
    assert th.spill_files(spill_dir)
    await db.heal()

    second = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await second.start()
    try:
        assert await second.flush(WAIT_S), second.stats
        assert [r.id for r in second.interrupted_runs] == [run_id]
        assert (await second.run(run_id) or {}).get("status") == "incomplete"
        assert (await second.inventory()).items == (foil,)
    finally:
        await second.stop()


async def test_no_run_of_a_clean_stop_is_closed(db: th.Db, spill_dir: Path) -> None:
    first = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await first.start()
    first.end_run(first.start_run("[line]\n", "service"))
    await first.stop()
    second = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await second.start()
    try:
        assert await second.flush(WAIT_S)
        assert second.interrupted_runs == ()
    finally:
        await second.stop()


async def test_the_inventory_is_the_registrations_and_done_item_commands_in_order(
    db: th.Db, spill_dir: Path
) -> None:
    historian = Historian(db.url, line="line1", spill_dir=spill_dir, **FAST)
    await historian.start()
    try:
        historian.start_run("[line]\n", "service")
        box = Item("box-1", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
        foil = Item("foil-1", ItemKind.BASE_MATERIAL, "Li/Cu", "box-1")
        copper = Item("cu-1", ItemKind.BASE_MATERIAL, "Cu", "inlet")
        for item in (box, foil, copper):
            historian.record_registration(item, "eng1", "hmi")
        historian.record_command(gate_record(MoveItem("cu-1", "box-1")))
        historian.record_command(gate_record(MoveItem("box-1", "process")))
        historian.record_command(gate_record(SetContainer("box-1", False)))
        historian.record_command(gate_record(MoveItem("foil-1", "outlet"), outcome="refused"))
        historian.record_command(gate_record(SetContainer("box-1", True), outcome="failed"))
        # recorded by an older depline: an items row and a ledger, but no registration record
        legacy = Item("old-1", ItemKind.BASE_MATERIAL, "Li", "inlet")
        historian.record_item(legacy)
        historian.record_ledger(LedgerEntry(time.time(), "old-1", "moved", "outlet", "inert_in_spec", True))
        historian.record_item(Item("lost-1", ItemKind.BASE_MATERIAL, "Cu", "inlet"))
        assert await historian.flush(WAIT_S), historian.stats
        inventory = await historian.inventory()
    finally:
        await historian.stop()
    assert inventory == RecoveredInventory(
        (
            dataclasses.replace(box, location="process", sealed=False),
            foil,
            dataclasses.replace(copper, location="box-1"),
            dataclasses.replace(legacy, location="outlet"),  # outside any box: counted as exposed
        ),
        approximate=("old-1",),
        unlocated=("lost-1",),
    )


async def test_samples_since_serves_committed_samples_in_time_order_per_channel(
    db: th.Db, spill_dir: Path
) -> None:
    historian = Historian(
        db.url, line="line1", spill_dir=spill_dir, batch_s=60.0
    )  # written only when flushed
    archive: SampleArchive = historian  # what the MQTT bridge is given
    await historian.start()
    try:
        for ts in (104.0, 101.0, 103.0, 100.0, 102.0):  # recorded out of time order
            historian.record_sample(sample_at(ts, ts * 10))
            historian.record_sample(sample_at(ts + 0.5, math.nan, "pressure_ch2"))
        assert await historian.flush(WAIT_S)
        historian.record_sample(sample_at(105.0, 1050.0))  # not committed: not served
        got = await archive.samples_since(102.0)
        bounded = await historian.samples_since(0.0, max_rows=4)
    finally:
        await historian.stop()
    by_channel: dict[str, list[Reading]] = {}
    for s in got:
        by_channel.setdefault(s.channel, []).append(s.reading)
    assert [(r.ts, r.value) for r in by_channel["pressure_ch1"]] == [
        (102.0, 1020.0),
        (103.0, 1030.0),
        (104.0, 1040.0),
    ]
    assert [r.ts for r in by_channel["pressure_ch2"]] == [102.5, 103.5, 104.5]
    assert all(math.isnan(r.value) and r.unit == "Pa" for r in by_channel["pressure_ch2"])
    assert [(s.channel, s.reading.ts) for s in bounded] == [
        ("pressure_ch1", 100.0),
        ("pressure_ch1", 101.0),
        ("pressure_ch2", 100.5),
        ("pressure_ch2", 101.5),
    ]


def test_an_exposure_record_is_replayed_from_ledger_entries() -> None:
    def entry(ts: float, event: str, space: str, exposed: bool, frost: float = -70.0) -> LedgerEntry:
        return LedgerEntry(ts, "F1", event, space, "inert_in_spec", exposed, {"frost_point_c": frost})

    entries = [
        entry(10.0, "registered", "inlet", False, frost=-20.0),  # not exposed: its air does not count
        entry(20.0, "opened", "inlet", True, frost=-65.0),
        entry(30.0, "moved", "process", True, frost=-80.0),
        entry(35.0, "non_inert", "process", True, frost=-40.0),
        entry(50.0, "sealed", "process", False),
        entry(60.0, "opened", "process", True),
    ]
    record = exposure_from_entries("F1", entries)
    assert [(s.space, s.since_ts, s.until_ts) for s in record.path] == [
        ("inlet", 10.0, 30.0),
        ("process", 30.0, None),
    ]
    assert record.exposed_s == 30.0
    assert record.exposed_seconds(100.0) == 70.0  # exposed since its last entry: still counting
    assert record.worst_frost_point_c == -40.0
    assert [e.ts for e in record.non_inert] == [35.0]


# --- a controller that restarts after its predecessor died ------------------------------------------

PASSWORDS = {"op1": "op1-demo", "eng1": "eng1-demo"}


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def http_api(ctl: LineController, historian: Historian) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        ControllerService(ctl, historian=historian, state_interval_s=0.1) as service,
        HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10.0) as http,
    ):
        yield http


async def login(http: httpx.AsyncClient, user: str) -> dict[str, str]:
    response = await http.post("/api/login", json={"user": user, "password": PASSWORDS[user]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def inlet(http: httpx.AsyncClient) -> dict[str, Any]:
    state = (await http.get("/api/state")).json()
    return next(s for s in state["spaces"] if s["name"] == "inlet")


async def station(http: httpx.AsyncClient, name: str) -> str:
    state = (await http.get("/api/state")).json()
    return str(next(s["state"] for s in state["stations"] if s["name"] == name))


def fast_controller(config: LineConfig) -> LineController:
    plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
    return LineController(config, plan=plan, travel_timeout_s=5.0)


async def first_life(config: LineConfig, url: str, spill: Path) -> tuple[str, set[int]]:
    """Register items and command the line, then die: returns the run id and the committed command ids."""
    ctl = fast_controller(config)
    recorder = Recorder(ctl, url=url, spill_dir=spill)
    await recorder.start()
    try:
        async with ctl, http_api(ctl, recorder.historian) as http:
            engineer, operator = await login(http, "eng1"), await login(http, "op1")
            for body in (
                {"id": "C1", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True},
                {"id": "F1", "kind": "base_material", "material": "Li/Cu", "location": "C1"},
                {"id": "CU1", "kind": "base_material", "material": "Cu", "location": "inlet"},
            ):
                response = await http.post("/api/items", json=body, headers=engineer)
                assert response.status_code == 201, response.text
            for action in (
                {"type": "SetPump", "space": "inlet", "running": True},
                {"type": "MoveItem", "item": "CU1", "to": "C1"},
            ):
                response = await http.post("/api/commands", json=action, headers=operator)
                assert response.json()["outcome"] == "done", response.text
            await eventually(lambda: _pump_is(http, True), "the inlet pump runs")
        assert await recorder.historian.flush(WAIT_S)
        run_id = recorder.run_id
        assert run_id is not None
        ids = {r["id"] for r in await th.rows(url, "SELECT id FROM commands")}
        recorder.run_id = None  # dies here: the run is never ended
    finally:
        await recorder.stop()
    return run_id, ids


async def _pump_is(http: httpx.AsyncClient, running: bool) -> bool:
    return (await inlet(http))["pump_running"] is running


async def test_a_controller_restarts_where_its_predecessor_died(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'line.db'}"
    spill = tmp_path / "spill"
    async with SimLine(load_line_config(), speed=200.0) as sim:  # the plant outlives both controllers
        config = sim.simulated_config()
        dead_run, committed = await first_life(config, url, spill)

        ctl = fast_controller(config)
        recorder = Recorder(ctl, url=url, spill_dir=spill)
        await recorder.start()
        try:
            # restored before the controller runs: nothing polled, nothing judged yet
            items = {i.id: (i.location, i.sealed) for i in ctl.model.items.values()}
            assert items == {"C1": ("inlet", True), "F1": ("C1", False), "CU1": ("C1", False)}
            recovery = recorder.recovery
            assert recovery is not None
            assert [r.id for r in recovery.interrupted_runs] == [dead_run]
            assert recovery.safe_spaces == ("inlet",)  # the dead run worked the inlet's pump
            assert ctl.supervisor.stations["inlet"].state == "sealed"  # not before the line is read
            async with ctl, http_api(ctl, recorder.historian) as http:
                await eventually(lambda: _station_is(http, "inlet", "fault"), "the inlet's safe state")
                state = await eventually(lambda: _read(http), "the inlet is read")
                assert state["pump_running"] is True  # read, not assumed: the plant kept it running
                assert state["valves"]["rough"]["commanded_open"] is False
                assert await station(http, "process") == "idle"  # untouched by the dead run

                runs = {r["id"]: r for r in (await http.get("/api/runs")).json()}
                assert runs[dead_run]["status"] == "incomplete"
                assert runs[recorder.run_id or ""]["status"] == "running"
                detail = (await http.get(f"/api/runs/{dead_run}")).json()
                assert {c["id"] for c in detail["commands"]} == committed
                types = [c["action"]["type"] for c in detail["commands"] if c["origin"] != "interlock"]
                assert types == ["RegisterItem"] * 3 + ["SetPump", "MoveItem"]
                assert [e["item"] for e in detail["ledger"] if e["event"] == "registered"] == ["F1", "CU1"]
                assert (await http.get("/api/runs/no-such-run")).status_code == 404

                ledger = (await http.get("/api/items/F1/ledger")).json()
                assert ledger["path"][0]["since_ts"] < recovery.interrupted_runs[0].ended_at
                alarms = (await http.get("/api/alarms")).json()
                assert "recovery.restart" in {a["id"] for a in alarms["active"]}
            assert await recorder.historian.flush(WAIT_S)
            transitions = await th.rows(url, 'SELECT station, source, dest, "trigger" FROM transitions')
            fault = {"station": "inlet", "source": "sealed", "dest": "fault", "trigger": "fault"}
            assert fault in transitions
        finally:
            await recorder.stop()

    # a controller with no record of F1 of its own (never started) serves the historian's replay
    bystander = LineController(config)
    history = Historian(url, line="line1", spill_dir=spill)
    await history.start()
    try:
        async with http_api(bystander, history) as http:
            assert (await http.get("/api/items/F1/ledger")).json()["path"] == ledger["path"]
            assert (await http.get("/api/items/C1/ledger")).status_code == 404  # containers carry none
    finally:
        await history.stop()
        await bystander.devices.close()
    ledger_rows = await th.rows(url, "SELECT event FROM ledger WHERE item = 'F1' ORDER BY id")
    events = [r["event"] for r in ledger_rows]
    assert events[:2] == ["registered", "restored"]  # registered once; the gap is on record
    assert events.count("registered") == 1
    statuses = await th.rows(url, "SELECT status FROM runs ORDER BY started_at")
    assert [r["status"] for r in statuses] == ["incomplete", "complete"]


async def _station_is(http: httpx.AsyncClient, name: str, state: str) -> bool:
    return await station(http, name) == state


async def _read(http: httpx.AsyncClient) -> dict[str, Any] | None:
    found = await inlet(http)
    return found if found["pump_running"] is not None else None


async def test_without_its_records_the_controller_does_not_start(tmp_path: Path) -> None:
    config = load_line_config()
    not_a_db = tmp_path / "db-is-a-directory"
    not_a_db.mkdir()
    ctl = LineController(config)
    recorder = Recorder(
        ctl, url=f"sqlite:///{not_a_db}", spill_dir=tmp_path / "spill", recovery_timeout_s=1.0
    )
    with pytest.raises(RecoveryError, match="without knowing where every item is"):
        await recorder.start()
    await ctl.devices.close()
