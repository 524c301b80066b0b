"""One running service per line: the lease a historian holds on its line's row in the `lines` table.

Two services writing as the same line would close each other's runs, resume each other's batches and
send safe-state commands on each other's records; so a service refuses to start while its line is
held. Why a lease row and not a PostgreSQL advisory lock: it works the same on SQLite, it survives a
dropped connection (an advisory lock dies with its session, so a network blip would free the line
while its service still runs), and it says *who* holds the line, which the refusal names.

- **Claimed by compare-and-set.** The row is taken only if it is free, stale, or held by a process
  known to be dead, with an UPDATE that matches the holder read just before: of two services starting
  at once, exactly one wins.
- **Heartbeat.** The holder renews `heartbeat_at` every `LEASE_HEARTBEAT_S`; a lease not renewed for
  `LEASE_EXPIRY_S` is stale (a host that died, a database that was unreachable that long).
- **A `kill -9` does not lock the line out.** A holder on this host whose process no longer exists is
  dead at once (systemd's restart comes within seconds); so is one of this very process that released
  its lease or never finished stopping (`_LIVE`). Clocks of different hosts must agree to well within
  `LEASE_EXPIRY_S` (NTP), as they must anyway for the records' times.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import UserError
from controller.historian.schema import lines

LEASE_HEARTBEAT_S: Final = 2.0
LEASE_EXPIRY_S: Final = 15.0

_LIVE: set[str] = set()  # holders of this process whose lease is held right now


class LineHeld(UserError):
    """Another running service holds this line: this one must not start (and says which holds it)."""


class LineLease:
    """The lease of one service on one line; `claim`, `renew` (the heartbeat), `release`."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def claim(self, conn: AsyncConnection, now: float | None = None) -> None:
        """Take the line, registering it on first use; `LineHeld` if a live service holds it."""
        now = time.time() if now is None else now
        dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
        await conn.execute(
            dialect.insert(lines).on_conflict_do_nothing(index_elements=[lines.c.name]),
            {"name": self.line, "registered_at": now},
        )
        row = (
            await conn.execute(select(lines.c.holder, lines.c.heartbeat_at).where(lines.c.name == self.line))
        ).one()
        holder, heartbeat_at = row.holder, row.heartbeat_at
        if holder is not None and holder != self.holder and not _gone(holder, heartbeat_at, now):
            raise LineHeld(_held_message(self.line, holder, now - float(heartbeat_at or now)))
        same = lines.c.holder.is_(None) if holder is None else lines.c.holder == holder
        taken = await conn.execute(
            update(lines).where(lines.c.name == self.line, same).values(holder=self.holder, heartbeat_at=now)
        )
        if taken.rowcount != 1:  # another service took it between our read and our write
            raise LineHeld(f"line {self.line!r} was claimed by another service while this one started")
        _LIVE.add(self.holder)

    async def renew(self, conn: AsyncConnection) -> bool:
        """The heartbeat; False when the lease was lost (taken over after it went stale)."""
        result = await conn.execute(
            update(lines)
            .where(lines.c.name == self.line, lines.c.holder == self.holder)
            .values(heartbeat_at=time.time())
        )
        if result.rowcount == 1:
            return True
        _LIVE.discard(self.holder)
        return False

    async def release(self, conn: AsyncConnection) -> None:
        _LIVE.discard(self.holder)
        await conn.execute(
            update(lines)
            .where(lines.c.name == self.line, lines.c.holder == self.holder)
            .values(holder=None, heartbeat_at=None)
        )

    def forget(self) -> None:
        """The lease could not be released (database down): this process no longer counts as its holder,
        so a restart in it may take the line; another process waits for the lease to go stale."""
        _LIVE.discard(self.holder)


def _gone(holder: str, heartbeat_at: float | None, now: float) -> bool:
    """Whether a lease's holder can be taken over: stale, or a process on this host that is not running."""
    if heartbeat_at is None or now - float(heartbeat_at) > LEASE_EXPIRY_S:
        return True
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return holder not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def _held_message(line: str, holder: str, age_s: float) -> str:
    return (
        f"line {line!r} is held by another running service ({holder}, heartbeat {age_s:.0f} s ago): "
        "one line, one service: stop that one first (a service that died on another host frees it "
        f"after {LEASE_EXPIRY_S:g} s), or give this configuration its own [line] name"
    )


__all__ = ["LEASE_EXPIRY_S", "LEASE_HEARTBEAT_S", "LineHeld", "LineLease"]
