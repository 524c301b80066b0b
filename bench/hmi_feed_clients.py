"""The watching HMI clients of `bench.hmi_feed`, run in a child process of their own.

A module apart so that the child imports only `websockets` (no controller, no simulator): it starts
in a tenth of a second, and its CPU never counts as the controller's. Protocol: on stdin, one session
token per client, one a line (each client sends its token as its first message, as the HMI page does);
on stdout, one line "ready" once every client is connected, has had its first message and a settling
second, then one JSON line with the `ClientCounts` of the window.

    python -m bench.hmi_feed_clients URL CLIENTS WINDOW_S  < tokens
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect

KINDS = ("state", "telemetry", "other")
CONNECT_TIMEOUT_S = 30.0
SETTLE_S = 1.0  # the first state messages and the connection burst pass before the window
MAX_MESSAGE_BYTES = 1 << 24
READY = "ready"


@dataclass(frozen=True, slots=True)
class ClientCounts:
    """What the clients received over one window, summed over the clients, and the process's own CPU."""

    clients: int
    window_s: float
    messages: Mapping[str, int]
    byte_counts: Mapping[str, int]
    cpu_s: float

    def per_client_rate(self, kind: str, *, of_bytes: bool = False) -> float:
        total = (self.byte_counts if of_bytes else self.messages).get(kind, 0)
        return total / self.clients / self.window_s if self.clients and self.window_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ClientCounts:
        raw = json.loads(text)
        return cls(
            clients=int(raw["clients"]),
            window_s=float(raw["window_s"]),
            messages={str(k): int(v) for k, v in raw["messages"].items()},
            byte_counts={str(k): int(v) for k, v in raw["byte_counts"].items()},
            cpu_s=float(raw["cpu_s"]),
        )


def kind_of(message: bytes) -> str:
    """The feed encodes `{"type":...` first (controller.api.live_feed.encode): no JSON parsing per message."""
    head = message[:24]
    if head.startswith(b'{"type":"state"'):
        return "state"
    if head.startswith(b'{"type":"telemetry"'):
        return "telemetry"
    return "other"


def _zero() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


async def _count(
    ws: ClientConnection, until_mono: float, messages: dict[str, int], sizes: dict[str, int]
) -> None:
    while (remaining := until_mono - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(ws.recv(decode=False), remaining)
        except TimeoutError:
            return
        data = message if isinstance(message, bytes) else message.encode()
        kind = kind_of(data)
        messages[kind] += 1
        sizes[kind] += len(data)


async def watch(url: str, tokens: Sequence[str], window_s: float) -> ClientCounts:
    """Connect a client per token to `url`, let them settle, announce READY, count for `window_s`."""
    clients = len(tokens)
    async with contextlib.AsyncExitStack() as stack:
        sockets: list[ClientConnection] = []
        for token in tokens:
            connecting = connect(
                url, open_timeout=CONNECT_TIMEOUT_S, close_timeout=5, max_size=MAX_MESSAGE_BYTES
            )
            ws = await stack.enter_async_context(connecting)
            await ws.send(json.dumps({"type": "auth", "token": token}))
            sockets.append(ws)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            for ws in sockets:
                await ws.recv(decode=False)  # the state a new screen gets on connecting
        settled = time.monotonic() + SETTLE_S
        await asyncio.gather(*(_count(ws, settled, _zero(), _zero()) for ws in sockets))
        sys.stdout.write(f"{READY}\n")
        sys.stdout.flush()
        cpu0, t0 = time.process_time(), time.monotonic()
        messages, sizes = _zero(), _zero()
        await asyncio.gather(*(_count(ws, t0 + window_s, messages, sizes) for ws in sockets))
        return ClientCounts(clients, time.monotonic() - t0, messages, sizes, time.process_time() - cpu0)


def main(argv: Sequence[str] | None = None) -> int:
    url, clients, window_s = list(sys.argv[1:] if argv is None else argv)
    tokens = [sys.stdin.readline().strip() for _ in range(int(clients))]
    if not all(tokens):
        sys.stderr.write(f"expected {clients} tokens on stdin, one a line\n")
        return 2
    counts = asyncio.run(watch(url, tokens, float(window_s)))
    sys.stdout.write(counts.to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
