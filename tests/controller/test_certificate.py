"""`depline report`: certificates made from a real record.

The record is made once for the module the way production makes it: a batch and its job in a real
SQLite file (`BatchStore`), the simulated line at 200x with the controller and the recorder writing
samples, commands and the exposure ledger; a sealed container with a lithium foil and a sulfide
target registered at the inlet, the inlet and the chamber purged, the container opened, foil and
target carried through the gate into the chamber, the foil back and sealed in. Then everything stops
and the report reads the file, as `depline report` would a day later.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.errors import UserError
from controller.historian.recorder import Recorder
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.line.actions import Command, MoveItem, SetContainer, SetPort
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.items import ItemKind
from controller.line.ledger import LedgerEntry
from controller.line.poller import PollPlan, Priority
from controller.reports.command import add_report_command, read_report
from controller.reports.gather import PLOT_POINTS, gather_report, non_inert_episodes
from controller.reports.html_page import render_html
from controller.reports.pdf import render_pdf
from controller.reports.record import RunReport
from controller.reports.text import render_text
from sequences.batch_queue import parse_queue
from sequences.batch_store import BatchStore
from sequences.steps import pump_purge, submit, wait_for
from sim_hardware.line import SimLine

FOIL, BOX_IN, BOX_OUT = "FOIL-0042", "BOX-0042", "BOX-0142"
BARE = "FOIL-0043"  # registered out of its box in the room: in air from the start
WAIT_S = 30.0
QUEUE = f"""
[[jobs]]
recipe = "ex1-sputter-heated-LiSiPO-on-Li-foil.toml"
base = "{FOIL}"
container = "{BOX_IN}"
out_container = "{BOX_OUT}"

[[jobs]]
recipe = "ex1-sputter-heated-LiSiPO-on-Li-foil.toml"
base = "{BARE}"
container = "BOX-0043"
out_container = "BOX-0143"
"""


@dataclasses.dataclass(frozen=True)
class Recorded:
    url: str
    folder: Path
    batch_id: str
    job_id: str
    bare_job_id: str
    target: str
    started_at: float
    ended_at: float


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    folder = tmp_path_factory.mktemp("certificate")
    return asyncio.run(_record(folder))


async def _record(folder: Path) -> Recorded:
    url = f"sqlite:///{folder / 'line.db'}"
    queue = parse_queue(QUEUE, str(folder / "night.toml"), folder)
    async with BatchStore(url, line="line1") as store:
        batch = await store.create_batch(queue, "op1")
        job, bare_job = await store.jobs(batch.id)
    target = job.items.targets["T1"]
    base = load_line_config()
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with SimLine(base, speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        ctl = LineController(config, plan=plan, travel_timeout_s=5.0)
        recorder = Recorder(ctl, url=url, spill_dir=folder / "spill")
        await recorder.start()  # before the controller, as the service does
        try:
            async with ctl:
                started_at = time.time()
                await _work_the_line(ctl, target)
                ended_at = time.time()
            assert await recorder.historian.flush(WAIT_S)
        finally:
            await recorder.stop()
    async with BatchStore(url, line="line1") as store:
        for done in (job, bare_job):
            await store.update_job(
                done.id,
                started_at=started_at,
                ended_at=ended_at,
                state="complete",
                outcome="done",
                attempts=1,
            )
        await store.add_event(job.id, "checkpoint", {"phase": "loaded"}, ts=started_at + 1)
        confirm = {
            "prompt": "Open the container with the gloves",
            "user": "op1",
            "via": "terminal",
            "asked_at": started_at + 2,
            "confirmed_at": started_at + 4.5,
            "waited_s": 2.5,
        }
        await store.add_event(job.id, "confirm", confirm, ts=started_at + 4.5)
        await store.add_event(job.id, "state", {"from": "execute", "to": "complete"}, ts=ended_at)
        await store.end_batch(batch.id, "complete")
    return Recorded(url, folder, batch.id, job.id, bare_job.id, target, started_at, ended_at)


async def _work_the_line(ctl: LineController, target: str) -> None:
    gate = ctl.gate
    ctl.model.register(BOX_IN, ItemKind.CONTAINER, "SUS", "inlet", sealed=True, user="op1", origin="test")
    ctl.model.register(FOIL, ItemKind.BASE_MATERIAL, "Li/Cu", BOX_IN, user="op1", origin="test")
    ctl.model.register(target, ItemKind.TARGET, "57Li2S-38SiS2-5Li3PO4", BOX_IN, user="op1", origin="test")
    ctl.model.register(BOX_OUT, ItemKind.CONTAINER, "SUS", "outlet", user="op1", origin="test")
    ctl.model.register(BARE, ItemKind.BASE_MATERIAL, "Li/Cu", "room", user="op1", origin="test")
    for item in (FOIL, target, BARE):
        ctl.ledger.registered(gate.state(), item, time.time())
    early = await gate.submit(Command(SetPort("inlet_gate", True), "op1", "hmi", "a look inside"))
    assert early.outcome == "refused"  # neither side shown inert yet: a refusal for the events section
    await pump_purge(gate, "inlet", cycles=3, evacuate_to_pa=20.0, timeout_s=WAIT_S, user="op1")
    await pump_purge(gate, "process", cycles=2, evacuate_to_pa=10.0, timeout_s=WAIT_S, user="op1")
    await wait_for(
        gate,
        lambda s: all(s.spaces[n].atmosphere is Atmosphere.INERT_IN_SPEC for n in ("inlet", "process")),
        WAIT_S,
        "inlet and chamber inert",
    )
    await submit(gate, SetContainer(BOX_IN, False), "op1", "open the box with the gloves")
    await submit(gate, SetPort("inlet_gate", True), "op1", "transfer in")
    await wait_for(gate, lambda s: s.ports["inlet_gate"].valve.confirmed_open, WAIT_S, "inlet gate open")
    await submit(gate, MoveItem(FOIL, "process"), "op1", "foil to the chamber")
    await submit(gate, MoveItem(target, "process"), "op1", "target to the chamber")
    await asyncio.sleep(1.0)  # some samples of the chamber while the foil is in it
    await submit(gate, MoveItem(FOIL, "inlet"), "op1", "foil back")
    await submit(gate, MoveItem(FOIL, BOX_IN), "op1", "foil into its box")
    await submit(gate, SetContainer(BOX_IN, True), "op1", "seal the box")
    await submit(gate, SetPort("inlet_gate", False), "op1", "transfer done")
    await wait_for(gate, lambda s: s.ports["inlet_gate"].valve.confirmed_closed, WAIT_S, "inlet gate closed")


async def _report(recorded: Recorded, run: str, plot_points: int = PLOT_POINTS) -> RunReport:
    async with Historian.reader(recorded.url, line="line1") as historian:
        return await gather_report(historian, load_line_config(), run, plot_points=plot_points)


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="depline")
    add_report_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["report", *argv])


# --- the record ----------------------------------------------------------------------------------


async def test_the_electrode_never_met_air_and_the_report_says_so(recorded: Recorded) -> None:
    report = await _report(recorded, recorded.job_id)
    (job,) = report.jobs
    assert job.name == "ex1-sputter-heated-LiSiPO-on-Li-foil"
    assert job.outcome == "done"
    assert job.good, job.verdict
    assert [c.waited_s for c in job.confirmations] == [2.5]
    items = {i.item: i for i in job.items}
    assert list(items) == [FOIL, BOX_IN, BOX_OUT, recorded.target]
    foil = items[FOIL]
    assert [s.space for s in foil.path] == ["inlet", "process", "inlet"]
    assert foil.non_inert_s == 0.0
    assert foil.good
    assert foil.exposed_s > 0.0  # out of its box, in inert gas: allowed, and on record
    assert foil.verdict.startswith("never exposed to air")
    assert next(e.event for e in foil.entries) == "registered"
    assert foil.entries[-1].event == "sealed"
    assert not foil.entries[-1].exposed
    exposed = [e for e in foil.entries if e.exposed]
    assert exposed
    assert all(e.atmosphere == "inert_in_spec" for e in exposed), exposed
    assert any("frost_point_c" in e.evidence and "o2_ppmv" in e.evidence for e in exposed)
    box = items[BOX_IN]
    assert [h.what for h in box.handling] == [
        "registered in inlet (sealed)",
        "opened",
        f"{FOIL} put in",
        "sealed",
    ]
    assert items[recorded.target].entries[-1].space == "process"

    plot = job.plot
    assert plot is not None
    assert plot.since_ts <= foil.entries[0].ts
    assert plot.until_ts >= foil.entries[-1].ts
    assert [m.space for m in plot.moves] == ["process", "inlet"]  # into the box is not a change of space
    assert plot.spaces == ("inlet", "process", "outlet")  # every space, not only the foil's path
    quantities = {(s.space, s.quantity) for s in plot.series if s.points}
    assert {("inlet", "pressure"), ("inlet", "frost_point"), ("process", "pressure")} <= quantities
    assert ("process", "substrate_temp") in quantities
    assert {("outlet", "pressure"), ("outlet", "frost_point")} <= quantities  # never entered, still drawn

    commands = [e for e in job.events if e.source == "command"]
    assert commands
    assert not [e for e in commands if e.text.startswith("sequence ")]  # the routine moves are left out
    [refused] = [e for e in commands if e.kind == "refused"]
    assert not refused.first_out
    assert "hmi op1 SetPort inlet_gate True -> refused: I" in refused.text
    assert [e.kind for e in job.events if e.source == "job"] == ["checkpoint", "state"]
    assert [e.ts for e in job.events] == sorted(e.ts for e in job.events)


async def test_a_batch_reports_every_job_and_plots_stay_bounded_with_their_extremes(
    recorded: Recorded,
) -> None:
    report = await _report(recorded, recorded.batch_id, plot_points=40)
    assert [j.id for j in report.jobs] == [recorded.job_id, recorded.bare_job_id]
    assert report.batch is not None
    assert report.batch["status"] == "complete"
    plot = report.jobs[0].plot
    assert plot is not None
    inlet = next(s for s in plot.series if s.space == "inlet" and s.quantity == "pressure")
    assert 2 <= len(inlet.points) <= 21  # 20 buckets (+1 for a sample on the window's end)
    with sqlite3.connect(recorded.folder / "line.db") as db:
        raw = db.execute(
            "SELECT min(value), max(value), count(*) FROM samples JOIN channels ON channels.id = channel_id "
            "WHERE device = 'antechamber_gauges' AND channel = 'pressure_ch1' AND ts BETWEEN ? AND ? "
            "AND quality IN ('ok', 'under_range')",
            (plot.since_ts, plot.until_ts),
        ).fetchone()
    assert raw[2] > len(inlet.points) * 2  # there was something to reduce
    assert min(lo for _t, lo, _hi in inlet.points) == raw[0]  # the purge's deepest vacuum is kept
    assert max(hi for _t, _lo, hi in inlet.points) == raw[1]


async def test_a_foil_left_out_of_its_box_in_room_air_fails_with_the_time_it_spent_there(
    recorded: Recorded,
) -> None:
    report = await _report(recorded, recorded.bare_job_id)
    (job,) = report.jobs
    assert job.outcome == "done"
    assert not job.good
    bare = job.items[0]
    assert bare.item == BARE
    assert not bare.good
    assert bare.verdict.startswith("EXPOSED to a non-inert atmosphere for ")
    assert "in room (air)" in bare.verdict
    (episode,) = bare.episodes
    assert episode.open_at_end  # never sealed: it counts to the job's end
    assert episode.since_ts == bare.entries[0].ts
    assert episode.until_ts == recorded.ended_at
    assert bare.non_inert_s == pytest.approx(recorded.ended_at - bare.entries[0].ts)
    assert job.plot is not None  # the line's curves over the job, though the foil never entered it
    assert (job.plot.spaces, job.plot.moves) == (("inlet", "process", "outlet"), ())
    assert [i.verdict for i in job.items[1:3]] == ["container: not on record (never registered)"] * 2


def test_text_report_names_the_items_spaces_confirmations_and_verdicts(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cli(recorded.job_id, "--database", recorded.url)
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    for text in (
        recorded.job_id,
        "ex1-sputter-heated-LiSiPO-on-Li-foil",
        FOIL,
        BOX_IN,
        BOX_OUT,
        recorded.target,
    ):
        assert text in out
    assert "verdict: certified" in out
    assert f"electrode (base): {FOIL}" in out
    assert "verdict: never exposed to air" in out
    assert "time exposed to a non-inert atmosphere: 0.0 s" in out
    assert "path: inlet (" in out
    assert "-> process (" in out
    assert "inert_in_spec" in out
    assert "frost point" in out
    assert "op1 via terminal: 'Open the container with the gloves' (waited 2.5 s)" in out
    assert "   events:" in out
    assert "job     checkpoint: loaded" in out
    assert "execute -> complete" in out
    assert "command hmi op1 SetPort inlet_gate True -> refused: I" in out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_and_pdf_certificates_are_written(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    html_path, pdf_path = recorded.folder / "cert.html", recorded.folder / "cert.pdf"
    args = _cli(
        recorded.batch_id, "--database", recorded.url, "--html", str(html_path), "--pdf", str(pdf_path)
    )
    assert args.handler(args) == 0
    out, err = capsys.readouterr()
    assert f"wrote {html_path}" in err
    assert out.count("verdict: certified") == 1
    assert f"verdict: NOT CERTIFIED: {BARE}: EXPOSED to a non-inert atmosphere" in out

    parser = _Tags()
    parser.feed(html_path.read_text(encoding="utf-8"))
    parser.close()
    names = [tag for tag, _attrs in parser.tags]
    assert names.count("svg") == 2  # the bare foil never entered the line: the line is drawn all the same
    moves = [a for tag, a in parser.tags if tag == "line" and a.get("class") == "move"]
    assert [m.get("data-space") for m in moves] == ["process", "inlet"]
    traces = {
        a.get("data-space") for tag, a in parser.tags if tag == "polyline" and a.get("class") == "trace"
    }
    assert traces == {"inlet", "process", "outlet"}
    events = [a for tag, a in parser.tags if tag == "tr" and "event" in str(a.get("class"))]
    assert {a.get("data-source") for a in events} == {"job", "command", "alarm"}  # the gauges' range alarms
    text = " ".join(parser.text)
    assert FOIL in text
    assert "never exposed to air" in text
    assert "Open the container with the gloves" in text

    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert FOIL.encode() in pdf  # in the document's subject, which is not compressed
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") >= 1


def test_reading_leaves_a_live_controllers_run_running(recorded: Recorded) -> None:
    """A report printed while the line runs must not close the controller's run (`start()` would)."""
    with sqlite3.connect(recorded.folder / "line.db") as db:
        db.execute(
            "INSERT INTO runs (id, line, started_at, status, config_hash, config_text, user) "
            "VALUES ('live-run', 'line1', ?, 'running', '', '', 'service')",
            (time.time(),),
        )
    report = asyncio.run(read_report(recorded.url, load_line_config(), recorded.job_id))
    assert report.jobs[0].good
    with sqlite3.connect(recorded.folder / "line.db") as db:
        status = db.execute("SELECT status FROM runs WHERE id = 'live-run'").fetchone()
        db.execute("DELETE FROM runs WHERE id = 'live-run'")
    assert status == ("running",)


# --- what the user gets wrong --------------------------------------------------------------------


def test_an_unknown_run_is_named(recorded: Recorded) -> None:
    args = _cli("B20000101T000000Z-dead-J01", "--database", recorded.url)
    with pytest.raises(UserError, match="no production job or batch 'B20000101T000000Z-dead-J01'"):
        args.handler(args)


def test_a_missing_database_file_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    args = _cli("B1-J01", "--database", url)
    with pytest.raises(UserError, match="no such database file"):
        args.handler(args)
    assert not (tmp_path / "typo.db").exists()


def test_a_database_older_than_the_production_tables_asks_for_an_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    asyncio.run(upgrade(url, "0002"))  # the schema before batches and jobs
    args = _cli("B1-J01", "--database", url)
    with pytest.raises(UserError, match=r"batches, job_events, jobs missing.*depline db upgrade"):
        args.handler(args)
    with sqlite3.connect(tmp_path / "old.db") as db:  # the reader did not migrate it
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)


def test_an_unwritable_output_is_a_user_error(recorded: Recorded) -> None:
    args = _cli(
        recorded.job_id, "--database", recorded.url, "--pdf", str(recorded.folder / "nowhere" / "c.pdf")
    )
    with pytest.raises(UserError, match="does not exist"):
        args.handler(args)


# --- the verdict's rule, on ledger entries -------------------------------------------------------


def _entry(ts: float, event: str, atmosphere: str, exposed: bool, **evidence: float) -> LedgerEntry:
    return LedgerEntry(ts, "F1", event, "inlet", atmosphere, exposed, dict(evidence))


def test_time_in_a_non_inert_atmosphere_runs_until_the_item_is_sealed_or_the_space_is_inert() -> None:
    entries = [
        _entry(0.0, "registered", "air", False),
        _entry(10.0, "opened", "inert_in_spec", True),
        _entry(20.0, "atmosphere", "evacuating", True),  # judged live: no non_inert entry, so safe
        _entry(30.0, "atmosphere", "air", True),
        _entry(30.0, "non_inert", "air", True, frost_point_c=-5.0),
        _entry(35.0, "atmosphere", "back_filling", True),  # neither starts nor ends it
        _entry(42.0, "atmosphere", "inert_in_spec", True),
        _entry(50.0, "atmosphere", "inert_out_of_spec", True),
        _entry(53.0, "sealed", "inert_out_of_spec", False),
    ]
    episodes = non_inert_episodes(entries, end_ts=100.0)
    assert [(e.since_ts, e.until_ts, e.atmosphere) for e in episodes] == [
        (30.0, 42.0, "air"),
        (50.0, 53.0, "inert_out_of_spec"),
    ]
    assert not any(e.open_at_end for e in episodes)


def test_a_restart_counts_the_unwatched_time_and_an_open_exposure_runs_to_the_end() -> None:
    entries = [
        _entry(0.0, "opened", "inert_in_spec", True),
        _entry(500.0, "restored", "unknown", True, unwatched_since_ts=100.0),
    ]
    (episode,) = non_inert_episodes(entries, end_ts=800.0)
    assert (episode.since_ts, episode.until_ts, episode.open_at_end) == (100.0, 800.0, True)
    assert non_inert_episodes([_entry(0.0, "opened", "inert_in_spec", True)], end_ts=800.0) == []


def test_a_line_not_for_production_says_so_on_every_form_of_the_certificate() -> None:
    report = RunReport("R1", "bench", "sqlite:///x.db", 0.0, None, (), not_for_production=True)
    assert "NOT FOR PRODUCTION: line bench" in render_text(report)
    assert "NOT FOR PRODUCTION: line bench" in render_html(report)
    assert RunReport("R1", "line1", "sqlite:///x.db", 0.0, None).production_note is None
    assert render_pdf(report).startswith(b"%PDF")
