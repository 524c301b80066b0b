"""Debian's mosquitto on a free port, with passwords and an ACL, for the tests and the MQTT benchmark.

Why a real broker: the bridge's contract is with a broker, not with a Python object; authentication,
the ACL that decides who may publish commands, retained messages, wills and a broker restart are
the broker's behaviour, and only the broker can show them (DESIGN.md §6).

How it is run (stack.md §2):
- mosquitto 2.x needs an explicit `listener` line; anonymous clients are refused here
  (`allow_anonymous false`), every client logs in with a user from `mosquitto_passwd -b`.
- The port is picked free once and kept, so `restart()` comes back on the SAME port: that is what
  a reconnecting client sees when the plant broker restarts. Where systemd runs, installing the
  package also starts a system broker on 1883; we never use that port.
- `persistence` (off by default) keeps retained messages and persistent sessions across a restart:
  the database is saved on every change (a test fixture can afford it), so even SIGKILL loses nothing
  a subscriber had set up.
- The broker is stopped by its PID, never by name; its log goes to a file in the work directory,
  which `log_text()` returns for failure messages.
- Started as root, mosquitto would switch to the `mosquitto` user and lose access to the files in
  the work directory, so the config names the current user (ignored when not root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.02


class BrokerError(RuntimeError):
    """mosquitto is missing, did not start, or did not stop."""


def mosquitto_binary(name: str = "mosquitto") -> str:
    """Debian puts the broker in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise BrokerError(f"{name} not found: apt-get install mosquitto mosquitto-clients")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MosquittoBroker:
    """One mosquitto child process; `users` maps broker user -> password, `acl` is the ACL file text."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str],
        acl: str,
        persistence: bool = False,
        port: int | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.users = dict(users)
        self.persistence = persistence
        self.extra_config = list(extra_config)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._config = workdir / "mosquitto.conf"
        self._log = workdir / "mosquitto.log"
        self._write_files(acl)

    def _write_files(self, acl: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwords = self.workdir / "passwords"
        passwords.write_text("", encoding="utf-8")
        tool = mosquitto_binary("mosquitto_passwd")
        for user, password in self.users.items():
            subprocess.run(
                [tool, "-b", str(passwords), user, password], check=True, capture_output=True, timeout=10
            )
        acl_file = self.workdir / "acl"
        acl_file.write_text(acl, encoding="utf-8")
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            f"password_file {passwords}",
            f"acl_file {acl_file}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # save on every change, so that even SIGKILL keeps the sessions and retained messages
            "autosave_on_changes true",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type all",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            *self.extra_config,
        ]
        self._config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        """Start the broker and return once it accepts TCP connections on its port."""
        if self.running:
            raise BrokerError("broker already running")
        self.process = self._spawn()
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await self._accepts():
            if self.process.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.process.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                await self.stop(signal.SIGKILL)
                raise BrokerError(f"mosquitto did not listen on {self.port}:\n{self.log_text()}")
            await asyncio.sleep(POLL_S)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """fork+exec only (the output goes to a file): it returns at once, the loop is not held up."""
        with self._log.open("ab") as log:
            return subprocess.Popen(
                [mosquitto_binary(), "-c", str(self._config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def _accepts(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop by PID: SIGTERM saves the persistence database, SIGKILL is a crash."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process.poll() is None:
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT_S)
                    break
                await asyncio.sleep(POLL_S)
        self.process = None

    async def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        await self.stop(sig)
        await self.start()

    def log_text(self) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""

    async def __aenter__(self) -> MosquittoBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def line_acl(prefix: str, line: str, *, bridge: str, commanders: list[str], viewers: list[str]) -> str:
    """The plant ACL the bridge expects: only the bridge writes the line's tree, commanders write its
    command topics (one level: never the `/reply` topics under them), everyone listed may read."""
    root = f"{prefix}/{line}"
    parts = [f"user {bridge}", f"topic readwrite {root}/#", "topic readwrite reply/#", ""]
    for user in commanders:
        parts += [
            f"user {user}",
            f"topic write {root}/cmd/+",
            f"topic read {root}/#",
            "topic read reply/#",
            "",
        ]
    for user in viewers:
        parts += [f"user {user}", f"topic read {root}/#", ""]
    return "\n".join(parts)
