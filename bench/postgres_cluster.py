"""A throwaway PostgreSQL cluster for the tests and the historian benchmark: Debian's own server, not a mock.

Debian keeps `initdb` and `pg_ctl` under /usr/lib/postgresql/<version>/bin (not on PATH), and
PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` system user
(`runuser -u postgres --`, which the Debian package creates; made here if it is missing) in a
directory under /tmp that user owns (pytest's own tmp dirs are root-only, 0700). The server listens
on 127.0.0.1 at a free port, with its Unix socket in the cluster directory (never /var/run), trusts
local connections, and is stopped with `pg_ctl stop -m fast`.

Everything here is synchronous (subprocess with timeouts): use it from sync fixtures, or through
`asyncio.to_thread` from a test that must keep its event loop running (stopping the server mid-run).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
OS_USER = "postgres"
COMMAND_TIMEOUT_S = 60.0


def find_bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian layout), or one on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (None when it can): the text for pytest.skip."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql; `make test` does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and `runuser` is missing: cannot start PostgreSQL as a non-root user"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_os_user() -> None:
    try:
        subprocess.run(["id", "-u", OS_USER], check=True, capture_output=True, timeout=10)
    except subprocess.CalledProcessError:
        log.info("creating system user %s for PostgreSQL", OS_USER)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            check=True,
            capture_output=True,
            timeout=30,
        )


class PgCluster:
    """One cluster in its own directory; `start()`, `stop()` (keeps the data), `destroy()`."""

    def __init__(self, *, fsync: bool = False, port: int | None = None) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_os_user()
        self.root = Path(tempfile.mkdtemp(prefix="depline-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        if self.as_root:
            shutil.chown(self.root, OS_USER, OS_USER)
        self._initialised = False
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=self.root)
        if result.returncode != 0:
            tail = self._log_tail()
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                + (f"\nserver log:\n{tail}" if tail else "")
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    def start(self) -> None:
        if not self._initialised:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            self._initialised = True
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root}"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop")
            self.running = False

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL (the plain `postgresql://` form the config uses)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster(*, fsync: bool = False) -> Iterator[PgCluster]:
    """A started cluster, stopped and deleted on the way out whatever happens."""
    cluster = PgCluster(fsync=fsync)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
