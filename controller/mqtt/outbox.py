"""The bridge's outbox: what was produced and not yet acknowledged by the broker.

- **The outbox** is FIFO per lane, so order within every topic is kept; publishing takes the oldest
  messages by sequence number across lanes, in batches that paho keeps in order, and drops a message
  from the outbox only once the broker acknowledged it (QoS 1: at least once; a connection lost
  mid-batch may repeat a message, never reorder one; `seq` lets a subscriber drop repeats). Two lanes
  with their own bounds, so chatty telemetry can never push out an alarm or a command record:
  telemetry (`telemetry_buffer`) and records (`record_buffer`: states, alarms, events, replies).
  Beyond a bound the oldest message of that lane is dropped and counted (`stats`, and the next
  "online" status). On reconnect, retained topics are re-published first (a restarted broker without
  persistence forgot them), then the gap left by dropped telemetry is back-filled from the optional
  `archive` (paced like live telemetry, only samples newer than what the channel already published,
  so order is kept), then the outbox drains in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import heapq
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Lane(enum.Enum):
    TELEMETRY = "telemetry"
    RECORDS = "records"


@dataclass(frozen=True, slots=True)
class Outgoing:
    seq: int
    topic: str
    payload: bytes
    retain: bool
    lane: Lane
    channel: tuple[str, str] | None = None  # telemetry: (device, channel)
    ts: float = 0.0  # telemetry: the reading's time, for the back-fill


@dataclass(slots=True)
class Gap:
    """Telemetry of one channel dropped from the outbox: reading times of the first and last dropped."""

    first_ts: float
    last_ts: float
    dropped: int = 0


class Outbox:
    """Two bounded FIFO lanes; see the module docstring for why two and why FIFO."""

    def __init__(self, limits: Mapping[Lane, int]) -> None:
        self.limits = dict(limits)
        self.dropped = dict.fromkeys(Lane, 0)
        self.gaps: dict[tuple[str, str], Gap] = {}
        self._lanes: dict[Lane, collections.deque[Outgoing]] = {lane: collections.deque() for lane in Lane}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    def put(self, message: Outgoing) -> None:
        queue = self._lanes[message.lane]
        queue.append(message)
        if len(queue) > self.limits[message.lane]:
            self._drop(queue.popleft())
        self._ready.set()

    def _drop(self, message: Outgoing) -> None:
        self.dropped[message.lane] += 1
        if self.dropped[message.lane] == 1 or self.dropped[message.lane] % 1000 == 0:
            log.warning(
                "MQTT outbox full; dropping its oldest messages",
                extra={"lane": message.lane.value, "dropped": self.dropped[message.lane]},
            )
        if message.channel is not None:
            gap = self.gaps.setdefault(message.channel, Gap(message.ts, message.ts))
            gap.last_ts = max(gap.last_ts, message.ts)
            gap.dropped += 1

    def head(self, n: int) -> list[Outgoing]:
        """The `n` oldest messages by sequence number, left in place until `confirm`ed."""
        heads = [list(itertools.islice(q, n)) for q in self._lanes.values()]
        return list(itertools.islice(heapq.merge(*heads, key=lambda m: m.seq), n))

    def confirm(self, messages: Sequence[Outgoing]) -> None:
        """Remove messages the broker acknowledged (each lane's part is a prefix of that lane)."""
        sent = {id(m) for m in messages}
        for queue in self._lanes.values():
            while queue and id(queue[0]) in sent:
                queue.popleft()

    async def wait(self, timeout_s: float) -> None:
        """Return when something is queued, or after `timeout_s`."""
        if len(self):
            return
        self._ready.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
