"""deploy/postgresql/roles.sql on a real PostgreSQL cluster: the owner role migrates, the runtime role
runs a line service (it records its run and samples) and can do nothing else: no new tables, no drops,
no change of the schema revision. The script is run twice, as the README says (before and after the
first `depline db upgrade`), so it is also shown to be idempotent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.postgres_cluster import SUPERUSER, PgCluster, unavailable_reason

REPO = Path(__file__).resolve().parents[1]
ROLES_SQL = REPO / "deploy" / "postgresql" / "roles.sql"


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    if (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


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
