"""`depline history` and `depline samples` on the records of a batch run on the simulated line.

One batch runs once per module (`depline batch --sim` at 1000x, a real process writing a real SQLite
historian); every test then asks the records what an engineer would, as a separate process, and the
database must come out of it byte for byte as it went in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.flight_recorder.rejudge import rejudge
from controller.flight_recorder.timeline import window_of_run
from controller.historian.store import Historian
from tests.sequences.test_production import THIN_ANNEALED
from tests.test_cli import ROOT
from tests.test_line_service import service

# one worker runs the module, so the night is run once (`--dist loadgroup` in the Makefile)
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("flight_recorder")]

QUEUE = """
name = "flight-recorder-test"
on_failure = "stop"

[[jobs]]
recipe = "thin.toml"
"""


def cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout_s, check=False,
    )  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database of one finished batch of one job."""
    folder = tmp_path_factory.mktemp("night")
    (folder / "thin.toml").write_text(THIN_ANNEALED)
    (folder / "queue.toml").write_text(QUEUE)
    db = folder / "line.db"
    done = cli("batch", str(folder / "queue.toml"), "--sim", "--speed", "1000", "--database", f"sqlite:///{db}",
               timeout_s=400)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return db


def db_args(db: Path) -> list[str]:
    return ["--database", f"sqlite:///{db}"]


def job_row(db: Path) -> tuple[str, str, float, float, str]:
    with sqlite3.connect(db) as conn:
        job_id, batch_id, started, ended, items = conn.execute(
            "SELECT id, batch_id, started_at, ended_at, items FROM jobs"
        ).fetchone()
    return job_id, batch_id, started, ended, json.loads(items)["base"]


@pytest.mark.heavy
def test_history_lists_the_batch_its_job_verdict_plant_time_and_service_run(night: Path) -> None:
    before = digest(night)
    job_id, batch_id, started, ended, electrode = job_row(night)
    found = cli("history", *db_args(night), "--json")
    assert found.returncode == 0, found.stderr
    [batch] = json.loads(found.stdout)
    assert batch["id"] == batch_id
    assert batch["status"] == "complete"
    [job] = batch["jobs"]
    assert (job["id"], job["outcome"], job["electrode"], job["certified"]) == (
        job_id,
        "done",
        electrode,
        True,
    )
    assert job["wall_s"] == pytest.approx(ended - started)
    assert job["plant_s"] == pytest.approx(1000 * (ended - started))  # the attempt recorded its speed
    with sqlite3.connect(night) as conn:
        runs = [r for (r,) in conn.execute("SELECT id FROM runs")]
    assert job["service_runs"] == runs  # the one run of `depline batch --sim` executed it
    table = cli("history", *db_args(night))
    assert table.returncode == 0
    assert job_id in table.stdout
    assert "certified" in table.stdout
    assert digest(night) == before


@pytest.mark.heavy
def test_an_item_finds_its_batch_and_filters_narrow_the_listing(night: Path) -> None:
    _job_id, batch_id, *_rest, electrode = job_row(night)
    by_item = json.loads(cli("history", *db_args(night), "--item", electrode, "--json").stdout)
    assert [b["id"] for b in by_item] == [batch_id]
    rejected = cli("history", *db_args(night), "--outcome", "rejected")
    assert rejected.returncode == 0
    assert rejected.stdout == "no batch matches\n"
    later = cli("history", *db_args(night), "--since", "2100-01-01T00:00", "--json")
    assert json.loads(later.stdout) == []
    unknown = cli("history", *db_args(night), "--item", "no-such-foil")
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1
    assert "no-such-foil" in unknown.stderr


@pytest.mark.heavy
def test_samples_of_a_space_are_every_recorded_reading_of_its_instruments(
    night: Path, tmp_path: Path
) -> None:
    before = digest(night)
    _job, _batch, started, ended, _electrode = job_row(night)
    out = tmp_path / "process.csv"
    got = cli("samples", *db_args(night), "--space", "process", "--from", str(started), "--to", str(ended),
              "-o", str(out))  # fmt: skip
    assert got.returncode == 0, got.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["space"] for r in rows} == {"process"}
    devices = {r["device"] for r in rows}
    with sqlite3.connect(night) as conn:  # the same range counted by plain SQL over those devices
        marks = ",".join("?" * len(devices))
        expected = conn.execute(
            f"SELECT count(*) FROM samples JOIN channels ON channels.id = samples.channel_id "
            f"WHERE channels.device IN ({marks}) AND ts >= ? AND ts <= ?",
            (*sorted(devices), started, ended),
        ).fetchone()[0]
    assert expected > 100
    assert len(rows) <= expected  # a multi-channel device may serve other spaces through its other channels
    assert [float(r["ts"]) for r in rows] == sorted(float(r["ts"]) for r in rows)
    assert all(r["quality"] for r in rows)
    assert all(r["unit"] is not None for r in rows)
    assert digest(night) == before


@pytest.mark.heavy
def test_samples_of_one_channel_as_json_lines_match_the_table(night: Path) -> None:
    _job, _batch, started, ended, _electrode = job_row(night)
    with sqlite3.connect(night) as conn:
        device, channel, cid = conn.execute(
            "SELECT device, channel, id FROM channels WHERE channel LIKE 'frost%' LIMIT 1"
        ).fetchone()
        expected = conn.execute(
            "SELECT ts, value, quality FROM samples"
            " WHERE channel_id = ? AND ts BETWEEN ? AND ? ORDER BY ts, id",
            (cid, started, ended),
        ).fetchall()
    got = cli("samples", *db_args(night), "--channel", f"{device}.{channel}", "--from", str(started),
              "--to", str(ended), "--format", "jsonl")  # fmt: skip
    assert got.returncode == 0, got.stderr
    lines = [json.loads(line) for line in got.stdout.splitlines()]
    assert [(r["ts"], r["value"], r["quality"]) for r in lines] == [tuple(e) for e in expected]


@pytest.mark.heavy
def test_bad_questions_are_one_line_and_write_nothing(night: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.csv"
    empty = cli("samples", *db_args(night), "--space", "process", "--from", "2001-01-01",
                "--to", "2001-01-02", "-o", str(out))  # fmt: skip
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1
    assert "no reading" in empty.stderr
    assert not out.exists()
    assert not list(tmp_path.iterdir())
    for bad, word in (
        (["--channel", "nothing.here"], "no such recorded channel"),
        (["--space", "attic"], "not a space"),
    ):
        got = cli("samples", *db_args(night), *bad, "--from", "0", "--to", "1")
        assert got.returncode == 2, got.stderr
        assert got.stderr.count("\n") == 1
        assert word in got.stderr
    when = cli("history", *db_args(night), "--since", "yesterday-ish")
    assert when.returncode == 2
    assert "ISO 8601" in when.stderr
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    got = cli("history", *db_args(foreign))
    assert got.returncode == 2
    assert "not a depline historian" in got.stderr
    assert got.stderr.count("\n") == 1
    newer = tmp_path / "newer.db"
    newer.write_bytes(night.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    got = cli("history", *db_args(newer))
    assert got.returncode == 2, got.stderr
    assert "newer depline" in got.stderr


@pytest.mark.heavy
def test_the_timeline_of_a_job_interleaves_every_record_of_its_window(night: Path) -> None:
    before = digest(night)
    job_id, _batch, started, ended, electrode = job_row(night)
    got = cli("timeline", *db_args(night), job_id, "--json")
    assert got.returncode == 0, got.stderr
    entries = [json.loads(line) for line in got.stdout.splitlines()]
    with sqlite3.connect(night) as conn:  # what plain SQL finds in the same window, table by table
        counted = {
            source: conn.execute(
                f"SELECT count(*) FROM {table} WHERE ts BETWEEN ? AND ?", (started, ended)
            ).fetchone()[0]
            for source, table in (("job", "job_events"), ("command", "commands"), ("item", "ledger"))
        }
    for source, count in counted.items():
        assert count > 0
        assert sum(e["source"] == source for e in entries) == count, source
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries)
    assert entries[-1]["plant_s"] == pytest.approx(1000 * (entries[-1]["ts"] - started))
    assert any(e["source"] == "item" and electrode in e["text"] for e in entries)
    inlet = [
        json.loads(line)
        for line in cli("timeline", *db_args(night), job_id, "--space", "inlet", "--json").stdout.splitlines()
    ]
    assert 0 < len(inlet) < len(entries)
    assert all("inlet" in json.dumps(e["detail"]) for e in inlet)
    table = cli("timeline", *db_args(night), job_id)
    assert table.returncode == 0
    assert "(plant time at 1000x)" in table.stdout
    assert digest(night) == before


@pytest.mark.heavy
def test_a_timeline_of_nothing_known_is_one_line(night: Path) -> None:
    unknown = cli("timeline", *db_args(night), "B19990101T000000Z-0000")
    assert unknown.returncode == 2
    assert "no job, batch or service run" in unknown.stderr
    half = cli("timeline", *db_args(night), "--from", "2026-01-01")
    assert half.returncode == 2
    assert half.stderr.count("\n") == 1


# At 1000x one 0.05 s step of the replay's grid is 50 plant seconds of a back-fill: until the replay took
# the supervisor's look right after each recorded write, it saw a fill start at the next tick's pressure,
# credited no dilution and judged the gate the sequence opened next on "process is air" (1 run in 3).
@pytest.mark.heavy
def test_rejudged_with_the_rules_it_ran_under_the_night_agrees_with_its_record(night: Path) -> None:
    before = digest(night)
    job_id, *_rest = job_row(night)
    # at 1000x a 0.25 s step is minutes of plant time; the live supervisor judged at every poll
    got = cli("rejudge", *db_args(night), job_id, "--json", "--step", "0.05")
    assert got.returncode == 0, got.stdout + got.stderr
    body = json.loads(got.stdout)
    assert body["disagreements"] == []
    assert body["commands_judged"] > 50  # every door, valve, move and seal of the job was judged again
    assert body["samples_replayed"] > 100  # deadband recording keeps a still channel on its heartbeat only
    assert digest(night) == before


@pytest.mark.heavy
def test_a_stricter_frost_point_limit_rejudged_lists_what_it_would_have_refused(
    night: Path, tmp_path: Path
) -> None:
    """The use of rejudge: a rule change checked against a recorded night before it is deployed."""
    job_id, *_rest = job_row(night)
    standard = (ROOT / "controller" / "config" / "standard_line.toml").read_text()
    assert "max_frost_point_c = -50.0" in standard
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(standard.replace("max_frost_point_c = -50.0", "max_frost_point_c = -70.0"))
    got = cli("rejudge", "--config", str(stricter), *db_args(night), job_id, "--json")
    assert got.returncode == 1, got.stdout + got.stderr
    refused = [d for d in json.loads(got.stdout)["disagreements"] if d["kind"] == "allowed_then_refused_now"]
    assert refused
    assert all(d["then"] == "done" for d in refused)
    assert any("I1" in d["now"] or "I2" in d["now"] for d in refused), refused
    table = cli("rejudge", "--config", str(stricter), *db_args(night), job_id)
    assert table.returncode == 1
    assert "allowed_then_refused_now" in table.stdout


@pytest.mark.heavy
async def test_event_driven_rejudge_lists_what_judging_every_instant_lists(
    night: Path, tmp_path: Path
) -> None:
    """The recorded night, judged with a stricter frost-point limit (so there is something to list) at the
    live supervisor's cadence: skipping the instants whose inputs did not change decides the same."""
    job_id, *_rest = job_row(night)
    standard = (ROOT / "controller" / "config" / "standard_line.toml").read_text()
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(standard.replace("max_frost_point_c = -50.0", "max_frost_point_c = -70.0"))
    config = load_line_config(stricter)
    async with Historian.reader(f"sqlite:///{night}", line=config.name) as historian:
        window = await window_of_run(historian, job_id)
        skipping = await rejudge(historian, config, window, step_s=0.05)
        every = await rejudge(historian, config, window, step_s=0.05, every_instant=True)
    assert skipping.disagreements
    assert skipping.disagreements == every.disagreements
    assert skipping.commands_judged == every.commands_judged
    assert skipping.instants_watched == every.instants_watched
    assert skipping.instants_skipped > 0


@pytest.mark.heavy
def test_compare_lists_phases_in_plant_time_and_overlays_a_pump_down(night: Path, tmp_path: Path) -> None:
    job_id, *_rest = job_row(night)
    with sqlite3.connect(night) as conn:  # the first pump-down's start and end, read from its checkpoints
        events = conn.execute(
            "SELECT ts, detail FROM job_events WHERE kind = 'checkpoint' ORDER BY id"
        ).fetchall()
    marks = {(d["phase"], d["status"]): ts for ts, d in ((ts, json.loads(d)) for ts, d in events)}
    plant_s = 1000 * (marks[("pump_down_1", "done")] - marks[("pump_down_1", "started")])
    page = tmp_path / "compare.html"
    got = cli("compare", *db_args(night), job_id, job_id, "--html", str(page))
    assert got.returncode == 0, got.stderr
    [row] = [line for line in got.stdout.splitlines() if line.startswith("pump_down_1 ")]
    hours, minutes = divmod(int(plant_s // 60), 60)
    assert f"{hours} h {minutes:02d} min" in row if hours else f"{minutes} min" in row
    assert row.rstrip().endswith("+0.0 s")
    svg = page.read_text()
    assert "<svg" in svg
    assert svg.count('class="trace"') >= 2  # both jobs drawn
    unknown = cli("compare", *db_args(night), job_id, "B19990101T000000Z-0000-J01")
    assert unknown.returncode == 2
    assert "no production job" in unknown.stderr


@pytest.mark.heavy
async def test_the_api_answers_the_same_questions_as_the_command_line(night: Path, tmp_path: Path) -> None:
    """A running service on (a copy of) the night's database serves history, timeline, samples and
    rejudge over HTTP from the same queries the CLI runs; the answers agree."""
    job_id, batch_id, started, ended, _electrode = job_row(night)
    shutil.copy(night, tmp_path / "line.db")
    window = ["--from", str(started), "--to", str(ended)]
    cli_timeline = cli("timeline", *db_args(night), job_id, "--json").stdout.splitlines()
    cli_samples = cli("samples", *db_args(night), "--space", "process", *window, "--format", "jsonl")
    params = {"from": str(started), "to": str(ended), "space": "process", "format": "jsonl"}
    async with service(tmp_path) as http:
        history = (await http.get("/api/history")).json()
        timeline = (await http.get("/api/timeline", params={"run": job_id})).json()
        samples = (await http.get("/api/samples", params=params)).text.splitlines()
        judged = (await http.get(f"/api/rejudge/{job_id}")).json()
        assert (await http.get("/api/timeline", params={"run": "nothing"})).status_code == 404
        assert (await http.get("/api/samples", params={**params, "space": "attic"})).status_code == 404
    assert [b["id"] for b in history] == [batch_id]
    assert history[0]["jobs"][0]["certified"] is True, history[0]["jobs"][0]["verdict"]
    assert [json.dumps(e) for e in timeline["entries"]] == [
        json.dumps(json.loads(line)) for line in cli_timeline
    ]
    assert samples == cli_samples.stdout.splitlines()
    config = str(tmp_path / "line.toml")  # the service's own rules (its line file) give the CLI's answer
    assert judged == json.loads(cli("rejudge", "--config", config, *db_args(night), job_id, "--json").stdout)
