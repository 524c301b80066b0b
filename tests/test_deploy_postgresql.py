"""deploy/postgresql/roles.sql on a real PostgreSQL cluster: the owner role migrates, the runtime role
runs a line service (it records its run and samples) and can do nothing else: no new tables, no drops,
no change of the schema revision. The script is run twice, as the README says (before and after the
first `depline db upgrade`), so it is also shown to be idempotent. Retention with those roles: the
owner's `depline db retain` makes and drops the sample partitions, the service deletes its old rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.postgres_cluster import SUPERUSER, PgCluster
from controller.historian.retention import partition_name
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.line.poller import Sample
from controller.service.db_retain import retain
from drivers.reading import Quality, Reading
from tests.controller import test_historian as th

REPO = Path(__file__).resolve().parents[1]
ROLES_SQL = REPO / "deploy" / "postgresql" / "roles.sql"
DAY_S = 86_400.0


def _psql(pg: PgCluster, user: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(pg.bin_dir / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", user]
    return subprocess.run(
        [*command, "-d", database, "-v", "ON_ERROR_STOP=1", *args], capture_output=True, text=True, timeout=60
    )


def _roles(pg: PgCluster) -> None:
    done = _psql(pg, SUPERUSER, "postgres", "-v", "owner_password=owner-pw", "-v", "runtime_password=run-pw",
                 "-f", str(ROLES_SQL))  # fmt: skip
    assert done.returncode == 0, done.stderr


def _depline(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.heavy  # ~25 s: a cluster, a migration and a line service started as a process
def test_owner_migrates_runtime_records_and_can_change_nothing_else(pg: PgCluster, tmp_path: Path) -> None:
    _roles(pg)
    owner_url = f"postgresql://depline_owner:owner-pw@127.0.0.1:{pg.port}/depline"
    runtime_url = f"postgresql://depline_runtime:run-pw@127.0.0.1:{pg.port}/depline"
    upgrade = _depline("db", "upgrade", "--database", owner_url, cwd=tmp_path)
    out, err = upgrade.communicate(timeout=120)
    assert upgrade.returncode == 0, err
    assert "schema at revision" in out
    _roles(pg)  # again after the upgrade: idempotent, and it takes the revision table back

    service = _depline(
        "run", "--sim", "--speed", "500", "--port", "0", "--database", runtime_url, cwd=tmp_path
    )
    try:
        assert service.stdout is not None
        line = service.stdout.readline()  # "depline: serving http://..." once up, or EOF if it failed
        assert "serving http://" in line, service.stderr.read() if service.stderr else ""
        time.sleep(3.0)  # a few polls of the whole line reach the historian
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=90)
    assert service.returncode == 0, err

    counts = _psql(
        pg,
        SUPERUSER,
        "depline",
        "-At",
        "-c",
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM samples)",
    )
    runs, samples = (int(n) for n in counts.stdout.strip().split("|"))
    assert runs >= 1
    assert samples > 0

    forbidden = {
        "CREATE TABLE intruder (i int)": "permission denied for schema public",
        "DROP TABLE samples": "must be owner of table samples",
        "UPDATE alembic_version SET version_num = version_num": "permission denied for table alembic_version",
        "TRUNCATE samples": "permission denied for table samples",
    }
    for statement, refusal in forbidden.items():
        done = _psql(pg, "depline_runtime", "depline", "-c", statement)
        assert done.returncode != 0, statement
        assert refusal in done.stderr, (statement, done.stderr)
    allowed = _psql(pg, "depline_runtime", "depline", "-At", "-c", "SELECT count(*) FROM alembic_version")
    assert allowed.stdout.strip() == "1", allowed.stderr


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _sample(ts: float) -> Sample:
    return Sample("antechamber_gauges", "pressure_ch1", Reading(1.0, "Pa", Quality.OK, ts, time.monotonic()))


async def _tables(superuser_url: str) -> dict[str, str]:
    """The sample partitions and their owners."""
    found = await th.rows(
        superuser_url, "SELECT tablename, tableowner FROM pg_tables WHERE tablename LIKE 'samples_p%'"
    )
    return {r["tablename"]: r["tableowner"] for r in found}


async def _retain_process(tmp_path: Path, url: str, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "db", "retain", "--database", url, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90.0)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_partitions_are_the_owner_s_and_the_runtime_role_deletes_its_old_rows(
    pg: PgCluster, tmp_path: Path
) -> None:
    """The runtime role cannot make or drop partitions: `depline db retain` as the owner does (the
    daily timer of deploy/systemd), and the service's own retention pass keeps to row deletes, which
    it may do, instead of failing whole on a DROP it may not."""
    await asyncio.to_thread(_roles, pg)
    owner_url = f"postgresql://depline_owner:owner-pw@127.0.0.1:{pg.port}/depline"
    runtime_url = f"postgresql://depline_runtime:run-pw@127.0.0.1:{pg.port}/depline"
    superuser_url = pg.url("depline")
    await upgrade(owner_url, line="line1")
    await asyncio.to_thread(_roles, pg)

    code, _, err = await _retain_process(tmp_path, runtime_url)
    assert code == 2, err
    assert "depline_runtime may not make or drop the samples table's partitions" in err, err
    assert "run-pw" not in err
    # a service that ran before any partition existed (the test above) left today's rows in the default
    # partition, where PostgreSQL refuses a partition for today: cleared, as the bounded deletes will
    assert _psql(pg, SUPERUSER, "depline", "-c", "DELETE FROM samples_default").returncode == 0
    password_file = tmp_path / "db-owner"
    password_file.write_text("owner-pw\n")
    owner_without_password = f"postgresql://depline_owner@127.0.0.1:{pg.port}/depline"
    code, out, err = await _retain_process(
        tmp_path, owner_without_password, "--password-file", str(password_file)
    )
    assert code == 0, err
    now = time.time()
    today = partition_name(dt.datetime.fromtimestamp(now, dt.UTC).date())
    assert today in out
    assert (await _tables(superuser_url)).get(today) == "depline_owner"

    # a day every line's retention has passed, as the owner made it long ago
    expired_day = dt.datetime.fromtimestamp(now - 500 * DAY_S, dt.UTC).date()
    expired = partition_name(expired_day)
    start = _day_start(expired_day)
    bounds = f"FROM ({start!r}) TO ({start + DAY_S!r})"
    created = _psql(
        pg,
        "depline_owner",
        "depline",
        "-c",
        f"CREATE TABLE {expired} PARTITION OF samples FOR VALUES {bounds}",
    )
    assert created.returncode == 0, created.stderr

    # no retention until the old rows are seen written: the writer's own pass would race the count
    service = Historian(runtime_url, line="line_r", spill_dir=tmp_path / "spill", retention_s=None,
                        batch_s=0.05, timeout_s=10.0, retry_s=0.1)  # fmt: skip
    old_rows = f"SELECT count(*) AS n FROM samples WHERE ts < {now - DAY_S!r}"
    await service.start()
    try:
        for i in range(30):
            service.record_sample(_sample(now - 3 * DAY_S + i))  # old: into the default partition
            service.record_sample(_sample(now - 60 + i))  # today's: into the owner's partition
        assert await service.flush(th.WAIT_S)
        # every line lets the expired day go
        assert _psql(pg, SUPERUSER, "depline", "-c", "UPDATE lines SET retention_s = 86400").returncode == 0
        assert (await th.rows(superuser_url, old_rows))[0]["n"] == 30
        service.retention_s = DAY_S
        while True:  # the writer's own pass may take some of them: the table says what went
            dropped, deleted = await service.apply_retention()
            assert dropped == []  # not the runtime role's to drop, and not tried
            if not deleted:
                break
        assert (await th.rows(superuser_url, old_rows))[0]["n"] == 0
    finally:
        await service.stop()
    assert expired in await _tables(superuser_url)
    in_today = await th.rows(superuser_url, f"SELECT count(*) AS n FROM {today}")
    assert in_today[0]["n"] >= 30  # the runtime role writes into the partitions the owner makes

    made_dropped = await retain(owner_url, time.time())
    assert made_dropped is not None
    assert made_dropped[1] == [expired]
    assert expired not in await _tables(superuser_url)
