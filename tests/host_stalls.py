"""A watch on the host itself, for reading a failed CI run: when a machine stops running the suite's
processes (a VM descheduled, CPU starved), every test in flight fails at once of timeouts that say
nothing of why. A thread in pytest's own (idle) process wakes every `TICK_S`; a wake-up late by more
than `STALL_S` is a stretch the host did not run it, listed at the end of the run with its time."""

from __future__ import annotations

import threading
import time
from typing import Final

import pytest

TICK_S: Final = 0.5
STALL_S: Final = 3.0
SHOWN: Final = 8


class HostWatch:
    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (wall clock at the end, seconds lost)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="host-stall-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _watch(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            late_s = now - last - TICK_S
            if late_s > STALL_S:
                self.stalls.append((time.time(), late_s))
            last = now

    def summary(self) -> list[str]:
        if not self.stalls:
            return [f"the host ran the suite without a stall over {STALL_S:.0f} s"]
        worst = sorted(self.stalls, key=lambda s: -s[1])[:SHOWN]
        lines = [f"the host stalled {len(self.stalls)} time(s) over {STALL_S:.0f} s (worst first):"]
        lines += [f"  {time.strftime('%H:%M:%S', time.gmtime(at))} UTC: {lost:.1f} s" for at, lost in worst]
        return lines


WATCH = pytest.StashKey[HostWatch]()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller process watches for all
        return
    watch = HostWatch()
    config.stash[WATCH] = watch
    watch.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    watch = config.stash.get(WATCH, None)
    if watch is not None:
        watch.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    watch = config.stash.get(WATCH, None)
    if watch is not None:
        for line in watch.summary():
            terminalreporter.write_line(line)
