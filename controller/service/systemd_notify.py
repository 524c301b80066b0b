"""Telling systemd how the line service is doing: readiness, the watchdog, status text, stopping.

Why by hand: the notify protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (sd_notify(3); a leading ``@`` names an abstract socket), and a dependency for that
would be a C extension on the control host for ten lines of code. Without ``$NOTIFY_SOCKET`` (a
terminal, a test, the demo) every call does nothing.

`Type=notify` units wait for ``READY=1``, which the service sends once the first complete poll is in
(every device has answered or is faulted: the line is known, not assumed). With ``WatchdogSec=`` set,
systemd passes ``$WATCHDOG_USEC``; a task on the service's event loop, the loop that runs the poller and
the interlocks, sends ``WATCHDOG=1`` at half that period, so a blocked event loop stops the pings and
systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """The service's side of sd_notify; inert when the service was not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = _watchdog_period_s(env)
        self.ready_sent = False
        self._last_ping = -float("inf")

    @property
    def active(self) -> bool:
        return bool(self._address)

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines; False (logged once per call) when systemd could not be told."""
        if not self._address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            log.warning("systemd notification failed", extra={"fields": sorted(fields), "error": str(exc)})
            return False
        return True

    def ready(self, status: str) -> None:
        if not self.ready_sent:
            self.ready_sent = self.notify(READY="1", STATUS=status) or not self.active

    def keep_alive(self, now_mono: float | None = None) -> None:
        """``WATCHDOG=1`` when half the watchdog period has passed since the last one."""
        if self.watchdog_s is None:
            return
        now = time.monotonic() if now_mono is None else now_mono
        if now - self._last_ping >= self.watchdog_s / 2:
            self._last_ping = now
            self.notify(WATCHDOG="1")

    async def keep_watchdog(self) -> None:
        """Ping at half the watchdog period for as long as the event loop runs this task: from start-up
        (a database that takes its time to answer is not a hang) through the stop (batches made safe,
        the historian flushed). Returns at once when systemd set no watchdog."""
        if self.ping_interval_s is None:
            return
        while True:
            self.keep_alive()
            await asyncio.sleep(self.ping_interval_s)

    def stopping(self) -> None:
        self.notify(STOPPING="1")

    @property
    def ping_interval_s(self) -> float | None:
        return None if self.watchdog_s is None else self.watchdog_s / 2


def _watchdog_period_s(env: Mapping[str, str]) -> float | None:
    """``$WATCHDOG_USEC`` in seconds, if it is meant for this process (``$WATCHDOG_PID``, when given)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6
