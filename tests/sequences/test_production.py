"""The production sequence end to end: queue file → batch runner → the simulated line over its real
protocols → the historian; then the records are read back as a maintenance engineer would.

Each test runs small jobs (thin films, short anneal) at high plant speed; what is checked is what the
records say happened, never how long it took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from controller.historian.store import Historian
from controller.service.batch_run import run_batch, simulated_plan
from controller.service.line_service import bind_listener, url_of
from sequences.batch import BatchResult
from sequences.batch_queue import load_queue, shipped_recipe
from sequences.operator_desk import OperatorDesk, Request
from sequences.plant_clock import PlantClock
from sim_hardware.faults import Fault, inject, load_scenario, scenario_running
from tests.sequences.line_rig import SPEED, Rig, rig_on

CLOCK = PlantClock(SPEED)
pytestmark = pytest.mark.timeout(300)

THIN_ANNEALED = """
name = "test-thin-electrolyte-annealed"
description = "50 nm of sulfide electrolyte on lithium foil at room temperature, then 5 min at 120 degC"
gas = "Ar"
gas_purity_percent = 99.99
max_frost_point_c = -50.0

[base]
material = "Li/Cu"
thickness_um = 60.0

[[targets]]
id = "T1"
material = "57Li2S-38SiS2-5Li3PO4"

[[steps]]
kind = "deposit"
layer = "electrolyte"
method = "sputtering"
target = "T1"
thickness_um = 0.05
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5

[[steps]]
kind = "anneal"
temp_c = 120.0
duration_s = 300.0
"""


# The same job with a layer five times thicker: a stop aimed at the layer has seconds to land in it,
# not a fraction of one, however loaded the machine running the tests is.
THICK_ANNEALED = THIN_ANNEALED.replace("thickness_um = 0.05", "thickness_um = 0.25")


def _job_rows(db: Path) -> list[dict[str, object]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(
                "SELECT checkpoint, outcome, state, (SELECT group_concat(kind, ' ') FROM job_events "
                "WHERE job_events.job_id = jobs.id) AS events FROM jobs ORDER BY position"
            ).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []
    return [dict(r) for r in rows]


async def wait_for_job(
    rig: Rig, task: asyncio.Task[BatchResult], done: Callable[[list[dict[str, object]]], bool]
) -> None:
    """Read the jobs the way a maintenance engineer would (plain SQL), without migrating anything."""
    db = Path(rig.config.database.url.removeprefix("sqlite:///"))
    while True:
        assert not task.done(), "the batch ended before the awaited job state"
        rows = await asyncio.to_thread(_job_rows, db)
        if rows and done(rows):
            return
        await asyncio.sleep(0.03)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = rig_on(None, tmp_path, thin=THIN_ANNEALED, thick=THICK_ANNEALED)
    sequence = dataclasses.replace(rig.config.sequence, base_pressure_timeout_s=3600.0, suspend_settle_s=60.0)
    return dataclasses.replace(rig, config=dataclasses.replace(rig.config, sequence=sequence))


def kinds(events: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    return [e["detail"] for e in events if e["kind"] == kind]  # type: ignore[misc]


async def test_a_job_runs_every_phase_and_its_electrode_never_sees_air(rig: Rig) -> None:
    out = io.StringIO()
    result = await rig.run(rig.queue('[[jobs]]\nrecipe = "thin.toml"\n'), out)
    assert result.exit_code == 0, out.getvalue()
    [job] = result.jobs
    assert job.outcome == "done"
    assert job.state == "complete"
    events = await rig.events(job)
    done = [d["phase"] for d in kinds(events, "checkpoint") if d["status"] == "done"]
    assert done[:5] == ["load", "purge_inlet", "prepare_process", "open_containers", "transfer_in"]
    assert done[5:] == [
        "pump_down_1",
        "deposit_1",
        "anneal_2",
        "fill_process",
        "prepare_outlet",
        "purge_outlet",
        "transfer_out",
        "seal",
        "unload",
    ]
    confirmations = kinds(events, "confirm")
    assert {str(c["key"]).rsplit(":", 1)[1] for c in confirmations} >= {"load", "open", "seal", "unload"}
    assert all(c["via"] == "simulated" and c["user"] == "sim-operator" for c in confirmations)
    [deposited] = [d for d in kinds(events, "step_report") if d["step"] == "deposit"]
    assert deposited["thickness_nm"] == pytest.approx(50.0, rel=0.25)
    historian = Historian(rig.config.database.url, line=rig.config.name, spill_dir=rig.folder / "spill")
    await historian.start()
    try:
        record = await historian.exposure_record(job.items.base)
        inventory = await historian.inventory()
    finally:
        await historian.stop()
    assert record is not None
    assert not record.ever_exposed_to_non_inert
    assert [s.space for s in record.path][:4] == ["room", "inlet", "process", "outlet"]
    final = {item.id: item for item in inventory.items}
    assert final[job.items.out_container].sealed
    assert final[job.items.out_container].location == "room"
    assert final[job.items.base].location == job.items.out_container
    # the electrode is recorded as what is on it (a restart judges it by its film, not its foil)
    assert final[job.items.base].material == "57Li2S-38SiS2-5Li3PO4/Li/Cu"
    assert "never exposed" in out.getvalue()
    assert "COMPLETE" in out.getvalue()


async def test_a_stop_inside_a_layer_resumes_by_rejecting_the_electrode(rig: Rig) -> None:
    queue = rig.queue('[[jobs]]\nrecipe = "thick.toml"\n')
    first = asyncio.create_task(rig.run(queue))
    # the operator stops the batch once the layer is being deposited
    await wait_for_job(rig, first, lambda rows: rows[0]["checkpoint"] == "deposit_1:started")
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C on `depline batch` does
    stopped = await asyncio.wait_for(first, 120)
    assert stopped.status == "stopped"
    assert stopped.exit_code == 1
    assert stopped.jobs[0].outcome is None
    assert stopped.jobs[0].checkpoint == "deposit_1:started"

    resumed = await rig.run(queue)
    assert resumed.resumed
    assert resumed.batch.id == stopped.batch.id
    [job] = resumed.jobs
    assert job.outcome == "rejected"
    assert "deposit_1" in job.message
    assert job.attempts == 2
    assert resumed.exit_code == 1
    events = await rig.events(job)
    assert kinds(events, "rejected")[0]["phase"] == "deposit_1"
    assert kinds(events, "rejected")[0]["from"] == "process"
    done = [d["phase"] for d in kinds(events, "checkpoint") if d["status"] == "done"]
    # it left the line sealed, along the reject path's own phases
    assert done[-4:] == ["reject_purge_outlet", "reject_transfer_out", "reject_seal", "reject_unload"]


def ctrl_c(_: Request | None = None) -> None:
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C on `depline batch` does


async def until_stopped(task: asyncio.Task[BatchResult], checkpoint: str) -> BatchResult:
    result = await asyncio.wait_for(task, 120)
    assert result.status == "stopped", result
    assert result.jobs[0].checkpoint == checkpoint
    return result


async def test_a_layer_stopped_after_its_shutters_opened_is_recorded_as_a_layer(rig: Rig) -> None:
    """The electrode carries what the monitor measured before the stop, and is judged as that stack."""
    queue = rig.queue('[[jobs]]\nrecipe = "thick.toml"\n')
    first = asyncio.create_task(rig.run(queue))
    await wait_for_job(rig, first, lambda rows: "layer_open" in str(rows[0]["events"]))
    ctrl_c()
    await until_stopped(first, "deposit_1:started")
    result = await rig.run(queue)
    [job] = result.jobs
    assert job.outcome == "rejected"
    events = await rig.events(job)
    [partial] = kinds(events, "partial_layer")
    assert partial["measured"] == "live"
    assert partial["thickness_nm"] == "unknown" or 0.0 < float(str(partial["thickness_nm"])) < 250.0
    assert (partial["layer"], partial["target_nm"]) == ("electrolyte", 250.0)
    historian = Historian(rig.config.database.url, line=rig.config.name, spill_dir=rig.folder / "spill")
    await historian.start()
    try:
        final = {item.id: item for item in (await historian.inventory()).items}
    finally:
        await historian.stop()
    assert final[job.items.base].material == "57Li2S-38SiS2-5Li3PO4/Li/Cu"  # not the bare foil


async def test_a_second_interruption_on_the_reject_path_never_turns_a_rejection_into_done(rig: Rig) -> None:
    """The reject path reuses the unload's steps: a resume must find its checkpoint in the reject path's
    own plan (before, `prepare_outlet:started` was looked up in the normal plan and the job ended done)."""
    queue = rig.queue('[[jobs]]\nrecipe = "thick.toml"\n')
    first = asyncio.create_task(rig.run(queue))
    await wait_for_job(rig, first, lambda rows: rows[0]["checkpoint"] == "deposit_1:started")
    ctrl_c()
    await until_stopped(first, "deposit_1:started")
    rig.on_prompt["place_out_container"] = ctrl_c  # the reject path waits for the outlet container
    await until_stopped(asyncio.create_task(rig.run(queue)), "reject_prepare_outlet:started")
    result = await rig.run(queue)
    [job] = result.jobs
    assert (job.outcome, job.attempts) == ("rejected", 3)
    assert result.exit_code == 1
    events = await rig.events(job)
    phases = [str(d["phase"]) for d in kinds(events, "checkpoint") if d["status"] == "started"]
    after_rejection = phases[phases.index("deposit_1") + 1 :]
    assert after_rejection
    assert all(p.startswith("reject_") for p in after_rejection), after_rejection
    assert len(kinds(events, "rejected")) == 1  # decided once, carried across the second interruption
    seals = [d for d in kinds(events, "confirm") if "close it" in str(d.get("prompt"))]
    assert len(seals) == 1  # the electrode was sealed once, not asked for again


async def test_a_failed_job_is_rejected_and_the_queue_goes_on_with_the_next(rig: Rig) -> None:
    """The turbo dies at job 1's first pump-down (the chamber is evacuated before it is filled): the
    run holds, the "skip" policy takes the electrode back out the way it came, still sealed; the
    turbo is repaired and job 2 runs normally (the queue allows two turbo failures in a row)."""
    queue = rig.queue(
        'on_failure = "skip"\nstop_after_equipment_faults = 2\n[[jobs]]\nrecipe = "thin.toml"\ncount = 2\n'
    )
    task = asyncio.create_task(rig.run(queue))
    await asyncio.wait_for(rig.started.wait(), 60)
    assert rig.sim is not None
    repair = inject(rig.sim, Fault("pump_failure", pump="process.turbo"))
    # repaired while job 1 is on its way out (the reject path needs no turbo), at its prompt to take the
    # container back, so job 2 can never reach its own pump-down first, however slow the machine
    rig.on_prompt["take_back"] = lambda _: repair()
    result = await asyncio.wait_for(task, 240)
    first, second = result.jobs
    assert first.outcome == "rejected"
    assert "turbo" in first.message.lower()
    assert second.outcome == "done", second.message
    assert result.exit_code == 1
    assert result.status == "failed"
    events = await rig.events(first)
    states = [(d["from"], d["to"]) for d in kinds(events, "state")]
    assert ("holding", "held") in states
    assert ("held", "unholding") in states
    assert kinds(events, "safe_state")
    assert [d["phase"] for d in kinds(events, "checkpoint")][-2:] == ["reject_return", "reject_return"]
    [unhold] = kinds(events, "unhold")  # nobody released the hold: the record says so
    assert unhold["automatic"] is True
    assert unhold["by"] is None
    assert unhold["policy"] == "skip"
    assert isinstance(unhold["cause"], dict)
    assert unhold["cause"]["key"] == "device.turbo.Err107"


def _alarm_rows(rig: Rig) -> list[dict[str, object]]:
    db = Path(rig.config.database.url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM alarm_events WHERE event = 'condition_raised' ORDER BY id"
        ).fetchall()
    return [dict(r) for r in rows]


@pytest.mark.heavy
async def test_a_dead_turbo_stops_a_skip_queue_after_the_first_job_with_an_alarm(rig: Rig) -> None:
    """Default memory: one failure caused by an equipment fault stops a "skip" queue; the job is taken
    out as a reject (un-held automatically, on record), its record and an alarm (following the turbo's)
    say why the queue stopped."""
    queue = rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "thin.toml"\ncount = 3\n')
    task = asyncio.create_task(rig.run(queue))
    await asyncio.wait_for(rig.started.wait(), 60)
    assert rig.sim is not None
    inject(rig.sim, Fault("pump_failure", pump="process.turbo"))
    result = await asyncio.wait_for(task, 240)
    first, second, third = result.jobs
    assert first.outcome == "rejected"
    assert (second.outcome, third.outcome) == (None, None)  # never started on the dead turbo
    assert result.exit_code == 1
    events = await rig.events(first)
    [policy] = kinds(events, "failure_policy")
    assert policy["stops_queue"] is True
    assert isinstance(policy["cause"], dict)
    assert policy["cause"]["key"] == "device.turbo.Err107"
    [unhold] = kinds(events, "unhold")
    assert unhold["automatic"] is True
    rows = await asyncio.to_thread(_alarm_rows, rig)
    [stop] = [r for r in rows if r["alarm_id"] == "batch.failure_policy"]
    assert stop["follows"] == "device.turbo.Err107"


@pytest.mark.heavy
async def test_a_turbo_fault_mid_deposition_is_alarmed_first_and_the_trip_follows_it(
    rig: Rig, tmp_path: Path
) -> None:
    """Done-when #3: the turbo's decoded error is raised before the interlock trips, the trip is marked
    as following it (first-out on the turbo) in the record, and the "skip" queue stops after that job."""
    queue = rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "thick.toml"\ncount = 3\n')
    scenario = tmp_path / "turbo.toml"
    scenario.write_text('[[events]]\nat_s = 0.0\nfault = "pump_failure"\npump = "process.turbo"\n')
    task = asyncio.create_task(rig.run(queue))
    await wait_for_job(rig, task, lambda rows: rows[0]["checkpoint"] == "deposit_1:started")
    assert rig.sim is not None
    async with scenario_running(rig.sim, load_scenario(scenario, rig.sim)):  # at 0 s: at once
        result = await asyncio.wait_for(task, 240)
    first, second, third = result.jobs
    assert first.outcome in ("aborted", "rejected")
    assert (second.outcome, third.outcome) == (None, None)
    rows = await asyncio.to_thread(_alarm_rows, rig)
    turbo = next(r for r in rows if r["alarm_id"] == "device.turbo.Err107")
    trip = next(r for r in rows if str(r["alarm_id"]).startswith("interlock."))
    assert "Err107 collective fault of the power stage" in str(turbo["evidence"])
    assert float(str(turbo["ts"])) <= float(str(trip["ts"]))
    assert int(str(turbo["id"])) < int(str(trip["id"]))
    assert turbo["first_out"] == 1
    assert trip["follows"] == "device.turbo.Err107"


async def test_a_gas_supply_outage_suspends_the_run_until_it_has_stayed_clear(rig: Rig) -> None:
    queue = rig.queue('[[jobs]]\nrecipe = "thin.toml"\n')
    task = asyncio.create_task(rig.run(queue))
    await asyncio.wait_for(rig.started.wait(), 60)
    assert rig.sim is not None
    refill = inject(rig.sim, Fault("gas_supply_empty"))
    await wait_for_job(rig, task, lambda rows: rows[0]["state"] == "suspended")
    refill()
    result = await asyncio.wait_for(task, 240)
    [job] = result.jobs
    assert job.outcome == "done"
    events = await rig.events(job)
    assert "gas supply low" in str(kinds(events, "suspended")[0]["conditions"])
    assert kinds(events, "unsuspended")


def test_the_shipped_demo_queue_names_shipped_recipes() -> None:
    from controller.service.demo import demo_queue_path

    queue = load_queue(demo_queue_path())
    assert len(queue.jobs) == 3
    assert all(shipped_recipe(Path(j.recipe_path).name) is not None for j in queue.jobs)


async def test_an_antechamber_that_does_not_dry_is_a_purge_fault_not_an_endless_loop(rig: Rig) -> None:
    """A leak into the inlet: each pump/purge cycle lets in as much moisture as it removes. After the
    configured cycles the sequence sees no progress, faults, and returns the still-sealed container."""
    queue = rig.queue('[[jobs]]\nrecipe = "thin.toml"\n')
    task = asyncio.create_task(rig.run(queue))
    await asyncio.wait_for(rig.started.wait(), 60)
    assert rig.sim is not None
    inject(rig.sim, Fault("leak", space="inlet", rate_pa_m3_s=2e-3))
    result = await asyncio.wait_for(task, 240)
    [job] = result.jobs
    assert job.outcome == "rejected"
    assert "not converging" in job.message or "not in spec after" in job.message
    events = await rig.events(job)
    cycles = kinds(events, "purge_cycle")
    assert rig.config.sequence.purge_cycles <= len(cycles) <= rig.config.sequence.purge_max_cycles
    assert kinds(events, "checkpoint")[-1] == {"phase": "reject_return", "status": "done"}


async def test_a_forced_interlock_action_during_a_layer_aborts_the_run_and_stops_the_queue(rig: Rig) -> None:
    """A leak during the deposition pushes the chamber out of the source's pressure window: the
    supervisor switches the source off through the gate, which is a safety trip: ABORTED, queue over."""
    queue = rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "thick.toml"\ncount = 2\n')
    task = asyncio.create_task(rig.run(queue))
    await wait_for_job(rig, task, lambda rows: rows[0]["checkpoint"] == "deposit_1:started")
    assert rig.sim is not None
    inject(rig.sim, Fault("leak", space="process", rate_pa_m3_s=0.5))
    result = await asyncio.wait_for(task, 240)
    first, second = result.jobs
    assert first.outcome == "aborted"
    assert "interlock acted" in first.message
    assert second.outcome is None  # never started: a trip stops the queue whatever the policy
    assert result.status == "failed"
    assert result.exit_code == 1
    events = await rig.events(first)
    assert ("aborting", "aborted") in [(d["from"], d["to"]) for d in kinds(events, "state")]


async def test_an_operator_confirms_glove_work_through_the_api_and_the_record_names_them(rig: Rig) -> None:
    """No simulated operator: the run waits on each prompt until op1 confirms it over HTTP."""
    queue = load_queue(rig.queue('[[jobs]]\nrecipe = "thin.toml"\n'))
    desk = OperatorDesk(clock=CLOCK)  # nobody answers by itself
    listener = bind_listener("127.0.0.1", 0)
    url = url_of(listener)
    task = asyncio.create_task(
        run_batch(
            rig.config,
            queue,
            rig.line(),
            clock=CLOCK,
            desk=desk,
            out=io.StringIO(),
            plan=simulated_plan(rig.config),
            api_listener=listener,
        )
    )
    confirmed: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            while not task.done():
                try:
                    prompts = (await http.get("/api/prompts")).json()
                except httpx.TransportError:  # the API is not up yet, or already down
                    await asyncio.sleep(0.05)
                    continue
                if prompts:
                    anonymous = await http.post(f"/api/prompts/{prompts[0]['key']}/confirm")
                    assert anonymous.status_code == 401  # glove work is confirmed by a person
                    login = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
                    token = login.json()["token"]
                    answer = await http.post(
                        f"/api/prompts/{prompts[0]['key']}/confirm",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert answer.status_code == 200, answer.text
                    confirmed.append(prompts[0]["key"])
                await asyncio.sleep(0.05)
        result = await task
    finally:
        listener.close()
    [job] = result.jobs
    assert job.outcome == "done"
    assert len(confirmed) >= 4  # load, open, place the outlet box, seal, unload
    records = kinds(await rig.events(job), "confirm")
    assert [r["key"] for r in records] == confirmed
    assert all(r["user"] == "op1" and r["via"] == "hmi" for r in records)


async def test_after_an_abort_an_unsealed_electrode_in_an_out_of_spec_outlet_is_purged_back_to_spec(
    rig: Rig,
) -> None:
    """While the electrode waits, unsealed, in the outlet for the operator to seal it, a leak spoils the
    outlet and the run is aborted: the abort's safe state purges the outlet back to inert gas by
    itself and the record says so (it used to leave the electrode there until a person came)."""
    queue = load_queue(rig.queue('[[jobs]]\nrecipe = "thin.toml"\n'))
    desk = OperatorDesk(clock=CLOCK)  # glove work answered here, except the seal
    listener = bind_listener("127.0.0.1", 0)
    aborted = asyncio.Event()

    async def leak_then_abort() -> None:
        assert rig.sim is not None
        heal = inject(rig.sim, Fault("leak", space="outlet", rate_pa_m3_s=2e-3))
        async with httpx.AsyncClient(base_url=url_of(listener), timeout=10.0) as http:

            async def outlet() -> str:
                spaces = (await http.get("/api/state")).json()["spaces"]
                return str(next(s["atmosphere"] for s in spaces if s["name"] == "outlet"))

            while await outlet() == "inert_in_spec":  # noqa: ASYNC110 (the line's state, read over HTTP)
                await asyncio.sleep(0.02)
            heal()  # the leak is found and fixed; the moisture it let in is still there
            login = await http.post("/api/login", json={"user": "op1", "password": "op1-demo"})
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            assert (await http.post("/api/batch/abort", headers=headers)).status_code == 202
        aborted.set()

    helpers: list[asyncio.Task[None]] = []

    def glove_work(request: Request) -> None:
        if request.key.endswith(":seal"):
            helpers.append(asyncio.create_task(leak_then_abort()))
        else:
            desk.answer(request.key, "op1", "test")

    desk.listeners.append(glove_work)
    try:
        result = await run_batch(
            rig.config,
            queue,
            rig.line(),
            clock=CLOCK,
            desk=desk,
            out=io.StringIO(),
            plan=simulated_plan(rig.config),
            api_listener=listener,
        )
    finally:
        listener.close()
    await asyncio.gather(*helpers)
    assert aborted.is_set()
    [job] = result.jobs
    assert job.outcome == "aborted"
    events = await rig.events(job)
    [restored] = kinds(events, "restored_inert")
    assert restored["space"] == "outlet"
    assert restored["items"] == [job.items.base]
    assert restored["from"] != "inert_in_spec"
    assert restored["to"] == "inert_in_spec"
    assert kinds(events, "purge_cycle")[-1]["space"] == "outlet"


async def test_a_reject_path_that_cannot_be_planned_fails_the_job_and_ends_the_batch(rig: Rig) -> None:
    """A container id the inventory cannot place ("room": the container sits in a cycle of itself) is
    refused when a queue file is read; a queue built past that check still must not leave its batch
    "running" with every rerun crashing the same way: the job ends FAILED saying why, the batch FAILED."""
    queue = load_queue(rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "thin.toml"\n'))
    hostile = dataclasses.replace(queue, jobs=(dataclasses.replace(queue.jobs[0], container="room"),))
    desk = OperatorDesk(clock=CLOCK, simulated_glove_work_s=60.0)
    result = await run_batch(
        rig.config, hostile, rig.line(), clock=CLOCK, desk=desk, out=io.StringIO(),
        plan=simulated_plan(rig.config),
    )  # fmt: skip
    (job,) = result.jobs
    assert job.outcome == "failed"
    assert "the reject path cannot be planned" in job.message
    assert "cycle of containers" in job.message
    assert result.status == "failed"
    assert result.batch.status == "failed"
    assert result.exit_code == 1
