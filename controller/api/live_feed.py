"""What the API keeps in memory about the moving line: a short telemetry history and the live feed.

Why it is shaped this way:

- **The live feed never stalls the controller.** Publishing into a WebSocket client is a synchronous
  append to that client's bounded queue; a client that falls behind loses its oldest messages (counted,
  and told with an "overflow" message), never the poller's or the gate's time. State snapshots and
  telemetry are pushed at a bounded rate (telemetry coalesced to the latest value per channel) by the
  service's ticker; alarm and command records go out as they happen. A message is encoded once, for
  every client.
- **Telemetry history here is short and in memory** (`TelemetryHistory`, a ring buffer per channel fed
  from a poller subscription); the historian serves anything longer.
- **The 32 slots are for logged-in screens.** A client takes a slot only once its token is checked
  (`connect(user)`); until then it waits in a bounded lobby of its own (`awaiting_token`), so anonymous
  sockets can never crowd out an operator. One user holds at most `max_per_user` slots: a screen more
  supersedes that user's oldest (a person at one desk, or a login shared by a panel, cannot take the
  whole feed, and a browser that reopened its tab gets its feed back without waiting for the old one
  to time out).
- Both are plain objects with no web framework in them: the line service feeds them, the routes
  (`controller.api.app`, `controller.api.live`) read them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Iterator

from pydantic import BaseModel

from controller.api.views import TelemetryView, channel_view
from controller.errors import ControllerError
from drivers.reading import Reading


class TelemetryHistory:
    """The last `points_per_channel` readings of every channel, for trend plots on the HMI.

    Bounded twice: per channel (a ring buffer) and in the number of channels, so a device that invents
    channel names cannot grow memory without limit.
    """

    def __init__(self, *, points_per_channel: int = 2400, max_channels: int = 2000) -> None:
        if points_per_channel < 1 or max_channels < 1:
            raise ValueError("points_per_channel and max_channels must be >= 1")
        self.points_per_channel = points_per_channel
        self.max_channels = max_channels
        self.refused_channels = 0
        self._series: dict[tuple[str, str], collections.deque[Reading]] = {}

    def add(self, device: str, channel: str, reading: Reading) -> None:
        series = self._series.get((device, channel))
        if series is None:
            if len(self._series) >= self.max_channels:
                self.refused_channels += 1
                return
            series = self._series[(device, channel)] = collections.deque(maxlen=self.points_per_channel)
        series.append(reading)

    def recent(self, device: str, channel: str, seconds: float, *, now_mono: float) -> list[Reading] | None:
        """Readings of the last `seconds` (monotonic clock), oldest first; None for an unknown channel."""
        series = self._series.get((device, channel))
        if series is None:
            return None
        horizon = now_mono - seconds
        return [r for r in series if r.mono >= horizon]


class FeedFull(ControllerError):
    """Too many WebSocket clients; the newcomer is turned away rather than slow everyone down."""


class FeedClient:
    """One logged-in WebSocket client's bounded outbox of encoded messages."""

    def __init__(self, maxsize: int, user: str) -> None:
        self.maxsize = maxsize
        self.user = user
        self.dropped = 0
        self.closed = False
        self.superseded = False  # closed because its user opened more than their share of screens
        self._queue: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, text: str) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(text)
        self._ready.set()

    async def next(self, timeout_s: float) -> str | None:
        """The oldest queued message, or None when none came within `timeout_s` or the client closed."""
        if not self._queue and not self.closed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
        return self._queue.popleft() if self._queue and not self.closed else None

    def close(self, *, superseded: bool = False) -> None:
        self.superseded = self.superseded or superseded
        self.closed = True
        self._queue.clear()
        self._ready.set()


def encode(kind: str, payload: BaseModel) -> str:
    """One feed message, `{"type": kind, "data": payload}`, encoded once for every client."""
    return f'{{"type":{json.dumps(kind)},"data":{payload.model_dump_json()}}}'


class LiveFeed:
    """Fans encoded messages out to WebSocket clients; never waits, whatever the clients do."""

    def __init__(
        self,
        *,
        client_queue: int = 256,
        max_clients: int = 32,
        max_per_user: int = 8,
        max_waiting: int = 32,
        max_waiting_per_address: int = 8,
    ) -> None:
        limits = (client_queue, max_clients, max_per_user, max_waiting, max_waiting_per_address)
        if min(limits) < 1:
            raise ValueError(f"every client limit must be >= 1, got {limits}")
        self.client_queue = client_queue
        self.max_clients = max_clients
        self.max_per_user = max_per_user
        self.max_waiting = max_waiting
        self.max_waiting_per_address = max_waiting_per_address
        self._waiting: collections.Counter[str] = collections.Counter()
        self._clients: dict[FeedClient, None] = {}  # oldest first
        self._pending: dict[tuple[str, str], Reading] = {}
        self._dropped_gone = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def dropped(self) -> int:
        """Messages lost to slow clients, since start (clients gone included)."""
        return self._dropped_gone + sum(c.dropped for c in self._clients)

    def users(self) -> dict[str, int]:
        """How many clients each logged-in user holds."""
        return dict(collections.Counter(c.user for c in self._clients))

    @property
    def waiting(self) -> int:
        """Connections accepted that have not yet shown a token."""
        return sum(self._waiting.values())

    @contextlib.contextmanager
    def awaiting_token(self, address: str) -> Iterator[None]:
        """The lobby: a connection holds a place here, not a slot, until its token is checked.

        Bounded in all and per client address, so one machine opening sockets it never logs in on cannot
        keep everybody else's screens out of the lobby either."""
        if self.waiting >= self.max_waiting:
            raise FeedFull(f"{self.max_waiting} live connections already waiting for their token")
        if self._waiting[address] >= self.max_waiting_per_address:
            raise FeedFull(f"{self.max_waiting_per_address} live connections from {address} already waiting")
        self._waiting[address] += 1
        try:
            yield
        finally:
            self._waiting[address] -= 1
            if not self._waiting[address]:
                del self._waiting[address]

    def connect(self, user: str) -> FeedClient:
        """A slot for a logged-in `user`; their oldest screens close if they would hold too many."""
        mine = [c for c in self._clients if c.user == user]
        for oldest in mine[: max(0, len(mine) + 1 - self.max_per_user)]:
            self.disconnect(oldest, superseded=True)
        if len(self._clients) >= self.max_clients:
            raise FeedFull(f"{self.max_clients} live clients already connected")
        client = FeedClient(self.client_queue, user)
        self._clients[client] = None
        return client

    def disconnect(self, client: FeedClient, *, superseded: bool = False) -> None:
        if client in self._clients:
            del self._clients[client]
            self._dropped_gone += client.dropped
        client.close(superseded=superseded)

    def publish(self, kind: str, payload: BaseModel) -> None:
        if not self._clients:
            return
        text = encode(kind, payload)
        for client in self._clients:
            client.offer(text)

    def offer_sample(self, device: str, channel: str, reading: Reading) -> None:
        """Keep only the newest value per channel until the next flush (the coalescing)."""
        if self._clients:
            self._pending[(device, channel)] = reading

    def flush_telemetry(self, now_mono: float) -> int:
        """Send the channels that changed since the last flush as one message; returns how many."""
        if not self._pending:
            return 0
        channels = [channel_view(d, c, r, now_mono) for (d, c), r in self._pending.items()]
        self._pending.clear()
        self.publish("telemetry", TelemetryView(channels=channels))
        return len(channels)

    def close(self) -> None:
        for client in list(self._clients):
            self.disconnect(client)
        self._pending.clear()
