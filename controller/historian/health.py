"""The historian's health: whether it is writing, why not, and how many rows it has lost.

Why it is built this way:

- **Health is a signal, not a log line.** `on_health(healthy, detail)` is called when the writer goes
  from writing to failing and back (and when the reason for failing changes, e.g. rows start being
  dropped), so the controller can raise and clear an alarm.
- **One object, shared.** The writer, the spiller and the recording side all report to it: a row
  lost anywhere (spill failed, rejected by the database, recorded after stop, over the hard memory
  cap) is counted, logged and shown in the same place, never silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

HealthCallback = Callable[[bool, str], None]


class HistorianHealth:
    """The state `HistorianStats` shows; `key` names the reason for being unhealthy ("db", "dropped", ...).

    `on_health` is called on the event loop's thread and must return at once (raise or clear an alarm,
    nothing slower).
    """

    def __init__(self, on_health: HealthCallback | None) -> None:
        self.healthy = True
        self.key = ""
        self.detail = "not started"
        self.dropped = 0
        self.last_error = ""
        self._on_health = on_health

    def set(self, healthy: bool, key: str, detail: str) -> None:
        """Tell the controller when health flips, or when the reason for being unhealthy changes."""
        was_healthy, was_key = self.healthy, self.key
        self.healthy, self.key, self.detail = healthy, key, detail
        if was_healthy == healthy and (healthy or was_key == key):
            return
        log.log(
            logging.INFO if healthy else logging.WARNING,
            "historian health changed",
            extra={"healthy": healthy, "detail": detail},
        )
        if self._on_health is not None:
            try:
                self._on_health(healthy, detail)
            except Exception:  # a broken alarm hook must not stop the historian
                log.exception("historian health callback failed")

    def drop(self, rows: int, why: str) -> None:
        first = self.dropped == 0
        self.dropped += rows
        if first or rows > 1:
            log.error("historian dropped rows", extra={"rows": rows, "dropped": self.dropped, "why": why})
        self.set(False, "dropped", f"{self.dropped} rows dropped ({why})")

    def writing_again(self) -> None:
        if not self.healthy:
            dropped = f"; {self.dropped} rows dropped since start" if self.dropped else ""
            self.set(True, "ok", f"writing{dropped}")


__all__ = ["HealthCallback", "HistorianHealth"]
