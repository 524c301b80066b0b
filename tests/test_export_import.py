"""`depline export` and `depline import` on two batches recorded by the simulated line.

Two batches run one after the other (`depline batch --sim` at 1000x, real processes writing one real
SQLite historian): the second one's export must answer history, timeline, samples and rejudge alone as
the source does; imported into a fresh SQLite and into a real PostgreSQL that already holds the first
batch, the same answers come back; a second import changes nothing; bad files and bad targets are one
line, exit 2, and leave the target as it was.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.postgres_cluster import PgCluster
from controller.errors import UserError
from controller.flight_recorder.importing import import_export
from tests.sequences.test_production import THIN_ANNEALED
from tests.test_flight_recorder import QUEUE, cli, digest

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(600), pytest.mark.xdist_group("export_import")]


@dataclass(frozen=True, slots=True)
class Night:
    db: Path
    first: Path  # the export of the first batch
    second: Path  # the export of the second batch, the one the answers are compared on
    batch: str  # the second batch's id
    job: str
    started: float
    ended: float


def sqlite_url(path: Path) -> list[str]:
    return ["--database", f"sqlite:///{path}"]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    folder = tmp_path_factory.mktemp("night")
    (folder / "thin.toml").write_text(THIN_ANNEALED)
    (folder / "queue.toml").write_text(QUEUE)
    db = folder / "line.db"
    for _ in range(2):
        done = cli("batch", str(folder / "queue.toml"), "--sim", "--speed", "1000", *sqlite_url(db),
                   timeout_s=400)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT batch_id, id, started_at, ended_at FROM jobs ORDER BY started_at"
        ).fetchall()
    assert len(rows) == 2
    exports = []
    for batch_id, *_rest in rows:
        out = folder / f"{batch_id}.depline"
        done = cli("export", batch_id, "-o", str(out), *sqlite_url(db))
        assert done.returncode == 0, done.stderr
        exports.append(out)
    batch, job, started, ended = rows[1]
    return Night(db, exports[0], exports[1], batch, job, started, ended)


def answers(night: Night, database: list[str]) -> dict[str, list[Any]]:
    """What an engineer asks about the second batch: its history entry, its timeline, the process
    chamber's samples over its job."""
    history = cli("history", *database, "--json")
    assert history.returncode == 0, history.stderr
    window = ["--from", str(night.started), "--to", str(night.ended)]
    samples = cli("samples", *database, "--space", "process", *window, "--format", "jsonl")
    assert samples.returncode == 0, samples.stderr
    return {
        "history": [b for b in json.loads(history.stdout) if b["id"] == night.batch],
        "timeline": cli("timeline", *database, night.batch, "--json").stdout.splitlines(),
        "samples": samples.stdout.splitlines(),
    }


def rejudged(night: Night, database: list[str]) -> object:
    judged = cli("rejudge", *database, night.job, "--json")
    assert judged.returncode in (0, 1), judged.stderr
    return json.loads(judged.stdout)


@pytest.fixture(scope="module")
def source_answers(night: Night) -> dict[str, list[Any]]:
    before = digest(night.db)
    found = answers(night, sqlite_url(night.db))
    assert digest(night.db) == before
    assert found["history"]
    assert len(found["samples"]) > 100
    assert len(found["timeline"]) > 100
    return found


def test_the_export_alone_answers_as_the_source(
    night: Night, source_answers: dict[str, list[Any]], tmp_path: Path
) -> None:
    copy = tmp_path / "alone.depline"  # the readers open it in WAL mode; the export itself stays as sent
    shutil.copy(night.second, copy)
    assert not Path(f"{night.second}-wal").exists()
    with sqlite3.connect(night.second) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert [b for (b,) in conn.execute("SELECT id FROM batches")] == [night.batch]
        assert conn.execute("SELECT count(*) FROM lines WHERE holder IS NOT NULL").fetchone() == (0,)
    assert answers(night, sqlite_url(copy)) == source_answers
    # the lead-in before the batch (from its service run's start) is in the export: today's rules replay
    # the same readings and commands and reach the same verdicts
    assert rejudged(night, sqlite_url(copy)) == rejudged(night, sqlite_url(night.db))
    # no certificate is stored: the export renders the batch's as the source does (its header names the
    # database and the time it was generated)
    reports = [cli("report", night.batch, *sqlite_url(db)) for db in (night.db, copy)]
    assert [r.returncode for r in reports] == [0, 0]
    assert reports[0].stdout.splitlines()[2:] == reports[1].stdout.splitlines()[2:]
    assert "verdict:" in reports[1].stdout


def test_export_refuses_an_unknown_run_and_an_existing_file(night: Night, tmp_path: Path) -> None:
    out = tmp_path / "x.depline"
    unknown = cli("export", "B19990101T000000Z-0000", "-o", str(out), *sqlite_url(night.db))
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1
    assert "no batch, job or service run 'B19990101T000000Z-0000'" in unknown.stderr
    assert list(tmp_path.iterdir()) == []
    out.write_text("keep me")
    kept = cli("export", night.batch, "-o", str(out), *sqlite_url(night.db))
    assert kept.returncode == 2
    assert "--force" in kept.stderr
    assert out.read_text() == "keep me"
    forced = cli("export", night.job, "-o", str(out), *sqlite_url(night.db), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "exported job" in forced.stdout
    assert "samples" in forced.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.depline"]


def test_an_import_into_a_fresh_sqlite_answers_the_same_and_a_second_is_a_no_op(
    night: Night, source_answers: dict[str, list[Any]], tmp_path: Path
) -> None:
    target = tmp_path / "site.db"
    first = cli("import", str(night.second), *sqlite_url(target))
    assert first.returncode == 0, first.stderr
    assert "imported" in first.stdout
    assert answers(night, sqlite_url(target)) == source_answers
    before = digest(target)
    again = cli("import", str(night.second), *sqlite_url(target))
    assert again.returncode == 0, again.stderr
    assert "nothing imported" in again.stdout
    assert digest(target) == before


def added(summary: str, table: str) -> tuple[int, int]:
    """(added, already there) of one table in an import's printout."""
    [row] = [line.split() for line in summary.splitlines() if line.split()[:1] == [table]]
    return int(row[1]), int(row[3])


def test_a_service_run_exported_over_its_batch_loads_to_their_union(
    night: Night, source_answers: dict[str, list[Any]], tmp_path: Path
) -> None:
    """The service run that executed the second batch overlaps it: imported over the batch's export,
    the records both hold are kept once and the run's timeline is the source's."""
    [run_id] = source_answers["history"][0]["jobs"][0]["service_runs"]
    target = tmp_path / "site.db"
    assert cli("import", str(night.second), *sqlite_url(target)).returncode == 0
    run_file = tmp_path / "run.depline"
    exported = cli("export", run_id, "-o", str(run_file), *sqlite_url(night.db))
    assert exported.returncode == 0, exported.stderr
    assert f"exported service run {run_id}" in exported.stdout
    loaded = cli("import", str(run_file), *sqlite_url(target))
    assert loaded.returncode == 0, loaded.stderr
    assert added(loaded.stdout, "batches") == (0, 1)
    assert added(loaded.stdout, "samples")[1] > 100
    with sqlite3.connect(target) as conn:  # no command is there twice
        assert conn.execute(
            "SELECT count(*) FROM (SELECT ts, action FROM commands GROUP BY ts, action HAVING count(*) > 1)"
        ).fetchone() == (0,)
    timelines = [cli("timeline", *sqlite_url(db), run_id, "--json").stdout for db in (night.db, target)]
    assert timelines[0].splitlines() == timelines[1].splitlines()
    assert len(timelines[0].splitlines()) >= len(source_answers["timeline"])


async def row_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        names = [
            r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return {n: int(await conn.fetchval(f'SELECT count(*) FROM "{n}"')) for n in sorted(names)}
    finally:
        await conn.close()


async def test_an_import_into_postgresql_beside_another_run_answers_the_same(
    night: Night, source_answers: dict[str, list[Any]], pg: PgCluster, tmp_path: Path
) -> None:
    url = pg.url()
    database = ["--database", url]
    other = cli("import", str(night.first), *database)  # the target already holds another run
    assert other.returncode == 0, other.stderr
    loaded = cli("import", str(night.second), *database)
    assert loaded.returncode == 0, loaded.stderr
    # the first batch's service run and items are named in the second's export (the handling before
    # it): the same records, kept once
    assert any(line.split()[0] == "runs" and "1 already there" in line for line in loaded.stdout.splitlines())
    assert answers(night, database) == source_answers
    history = json.loads(cli("history", *database, "--json").stdout)
    assert len(history) == 2
    before = await row_counts(url)
    again = cli("import", str(night.second), *database)
    assert again.returncode == 0, again.stderr
    assert "nothing imported" in again.stdout
    assert await row_counts(url) == before
    back = tmp_path / "from-postgresql.depline"  # and the way back: a site's PostgreSQL exports it again
    exported = cli("export", night.batch, "-o", str(back), *database)
    assert exported.returncode == 0, exported.stderr
    assert (
        cli("timeline", *sqlite_url(back), night.batch, "--json").stdout.splitlines()
        == (source_answers["timeline"])
    )


async def test_bad_files_and_targets_are_one_line_and_leave_the_target_as_it_was(
    night: Night, tmp_path: Path
) -> None:
    """Each refusal is checked on the loading itself (what the command runs, without a process start
    each); the command's exit 2 and single line on two of them."""
    target = tmp_path / "site.db"
    await import_export(night.first, f"sqlite:///{target}")
    before = digest(target)
    truncated = tmp_path / "truncated.depline"
    truncated.write_bytes(night.second.read_bytes()[: night.second.stat().st_size * 2 // 3])
    text = tmp_path / "notes.depline"
    text.write_text("not a database\n" * 100)
    photos = tmp_path / "photos.db"
    with sqlite3.connect(photos) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    newer = tmp_path / "newer.depline"
    newer.write_bytes(night.second.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    differing = tmp_path / "differing.depline"
    differing.write_bytes(night.first.read_bytes())
    with sqlite3.connect(differing) as conn:  # another record under the id of one the target holds
        conn.execute("UPDATE batches SET status = 'failed'")
    for file, why in (
        (truncated, "truncated"),
        (text, "not an SQLite database"),
        (photos, "not a depline export"),
        (newer, "newer depline"),
        (differing, "differs in status"),
        (tmp_path / "missing.depline", "no such file"),
    ):
        with pytest.raises(UserError) as refused:
            await import_export(file, f"sqlite:///{target}")
        assert why in str(refused.value)
        assert "\n" not in str(refused.value)
        assert digest(target) == before
    photos_before = digest(photos)
    with pytest.raises(UserError, match="not a depline historian"):
        await import_export(night.second, f"sqlite:///{photos}")
    assert digest(photos) == photos_before
    fresh = tmp_path / "fresh.db"
    with pytest.raises(UserError, match="truncated"):
        await import_export(truncated, f"sqlite:///{fresh}")
    assert not fresh.exists()
    for got in (
        cli("import", str(truncated), *sqlite_url(target)),
        cli("import", str(night.first), "--database", "postgresql://postgres@127.0.0.1:1/nowhere"),
    ):
        assert got.returncode == 2
        assert got.stderr.count("\n") == 1, got.stderr
    assert digest(target) == before


async def test_a_batch_exported_while_it_ran_is_brought_forward_by_its_later_export(
    night: Night, tmp_path: Path
) -> None:
    """An engineer exports the batch at night while it runs, imports it at the office, and imports the
    finished batch's export the next day: the records come to the finished state, whichever came first."""
    live = tmp_path / "live.depline"
    live.write_bytes(night.first.read_bytes())
    with sqlite3.connect(live) as conn:  # the same batch as exported half-way through its job
        started, ended = conn.execute("SELECT started_at, ended_at FROM jobs").fetchone()
        cut = (started + ended) / 2
        conn.execute("UPDATE batches SET status = 'running', ended_at = NULL")
        conn.execute(
            "UPDATE jobs SET state = 'running', checkpoint = 'transfer_in:started', outcome = NULL, "
            "ended_at = NULL, message = '', updated_at = ?",
            (cut,),
        )
        for table in (
            "job_events",
            "commands",
            "ledger",
            "alarm_events",
            "transitions",
            "mode_changes",
            "samples",
        ):
            conn.execute(f"DELETE FROM {table} WHERE ts > ?", (cut,))
    finished = (
        "SELECT b.status, b.ended_at, j.state, j.checkpoint, j.outcome, j.ended_at FROM batches b JOIN jobs j"
    )
    with sqlite3.connect(night.first) as conn:
        expected = conn.execute(finished).fetchall()

    forward = tmp_path / "forward.db"
    await import_export(live, f"sqlite:///{forward}")
    later = await import_export(night.first, f"sqlite:///{forward}")
    assert later.advanced == {"batches": 1, "jobs": 1}
    assert later.added["commands"] > 0  # the second half of the night
    assert "(1 brought to a later state)" in later.render()
    with sqlite3.connect(forward) as conn:
        assert conn.execute(finished).fetchall() == expected

    backward = tmp_path / "backward.db"
    await import_export(night.first, f"sqlite:///{backward}")
    before = digest(backward)
    earlier = await import_export(live, f"sqlite:///{backward}")
    assert earlier.nothing_new
    assert not earlier.advanced
    assert digest(backward) == before
