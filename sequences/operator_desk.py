"""Manual steps: the run asks a person, waits, and records who confirmed and how long it waited.

Glove work (opening a container, sealing the electrode, placing a box through an outer door) cannot
be automated on this line, so the sequence stops and asks. The answer may come from the terminal of
`depline batch`, from the HMI (a later API route calls `answer`), or, on the simulated line, from a
simulated operator that takes a plausible time for the glove work. Every confirmation says which it
was (`via`), so a record never passes a simulated confirmation off as a person's.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from sequences.plant_clock import PlantClock
from sequences.steps import StepTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    key: str
    prompt: str
    asked_at: float


@dataclass(frozen=True, slots=True)
class Confirmation:
    key: str
    prompt: str
    user: str
    via: str  # "terminal", "hmi", "simulated"
    asked_at: float
    confirmed_at: float

    @property
    def waited_s(self) -> float:
        return self.confirmed_at - self.asked_at

    def as_detail(self) -> dict[str, object]:
        return {
            "key": self.key,
            "prompt": self.prompt,
            "user": self.user,
            "via": self.via,
            "asked_at": self.asked_at,
            "confirmed_at": self.confirmed_at,
            "waited_s": round(self.waited_s, 3),
        }


class OperatorDesk:
    """Open requests and their answers. `simulated_glove_work_s` (plant seconds) makes a simulated
    operator answer every request after that long; None waits for a person."""

    def __init__(
        self,
        *,
        clock: PlantClock | None = None,
        simulated_glove_work_s: float | None = None,
        simulated_user: str = "sim-operator",
    ) -> None:
        self.clock = clock or PlantClock()
        self.simulated_glove_work_s = simulated_glove_work_s
        self.simulated_user = simulated_user
        self.listeners: list[Callable[[Request], None]] = []
        self._open: dict[str, tuple[Request, asyncio.Future[tuple[str, str]]]] = {}

    def pending(self) -> list[Request]:
        return [request for request, _ in self._open.values()]

    def answer(self, key: str, user: str, via: str) -> bool:
        """Confirm an open request; False when there is none under that key (already answered)."""
        entry = self._open.get(key)
        if entry is None or entry[1].done():
            return False
        entry[1].set_result((user, via))
        return True

    async def confirm(self, key: str, prompt: str, *, timeout_s: float) -> Confirmation:
        """Wait for the confirmation of `prompt`; `timeout_s` is wall time (StepTimeout when it passes)."""
        request = Request(key, prompt, time.time())
        future: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._open[key] = (request, future)
        for listener in list(self.listeners):
            listener(request)
        helper = None
        if self.simulated_glove_work_s is not None:
            helper = asyncio.create_task(self._simulate(key), name=f"operator-sim:{key}")
        try:
            async with asyncio.timeout(timeout_s):
                user, via = await future
        except TimeoutError:
            raise StepTimeout(f"nobody confirmed {prompt!r} within {timeout_s:.0f} s") from None
        finally:
            self._open.pop(key, None)
            if helper is not None:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        return Confirmation(key, prompt, user, via, request.asked_at, time.time())

    async def _simulate(self, key: str) -> None:
        assert self.simulated_glove_work_s is not None
        await self.clock.sleep(self.simulated_glove_work_s)
        self.answer(key, self.simulated_user, "simulated")


class TerminalAnswers:
    """Answers requests from a terminal: the prompt is printed, Enter confirms as the logged-in user
    (or the name typed before Enter). Reads stdin through the event loop, never a blocking read."""

    def __init__(self, desk: OperatorDesk, *, stream: TextIO = sys.stdin, out: TextIO = sys.stderr) -> None:
        self.desk = desk
        self.stream = stream
        self.out = out
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> TerminalAnswers:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.stream.fileno(), self._on_line)
        self.desk.listeners.append(self._show)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.stream.fileno())
        with contextlib.suppress(ValueError):
            self.desk.listeners.remove(self._show)

    def _show(self, request: Request) -> None:
        print(f"\n>>> operator: {request.prompt} — press Enter to confirm (or type your name)", file=self.out)

    def _on_line(self) -> None:
        line = self.stream.readline()
        pending = self.desk.pending()
        if not pending:
            return
        user = line.strip() or getpass.getuser()
        self.desk.answer(pending[0].key, user, "terminal")
