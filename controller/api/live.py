"""The live WebSocket at /ws: one connection per HMI screen, fed from `controller.api.live_feed`.

Why it is shaped this way: a connection is its handler plus one sender task around the client's
bounded outbox. The sender drains the outbox (with a send timeout, so a stalled client ends its own
connection and nothing else) and tells the client how many messages it lost; the handler ignores what
comes in (commands go through POST /api/commands) and only notices the end. A new screen gets the
state at once, with no wait for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Final

from fastapi import APIRouter, WebSocket

from controller.api.context import context_of
from controller.api.live_feed import FeedClient, FeedFull, encode
from controller.api.views import state_view

log = logging.getLogger(__name__)

WS_SEND_TIMEOUT_S: Final = 5.0
WS_RECEIVE_POLL_S: Final = 1.0

router = APIRouter()


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    """Pushes {"type": "state"|"telemetry"|"alarm"|"command"|"overflow", "data": {...}} messages."""
    ctx = context_of(websocket)
    try:
        client = ctx.feed.connect()
    except FeedFull as exc:
        await websocket.close(code=1013, reason=str(exc))  # 1013: try again later
        return
    try:
        await websocket.accept()
        client.offer(encode("state", state_view(ctx.controller)))  # a new screen needs no wait to draw
        sender = asyncio.create_task(_send_loop(websocket, client), name="ws-sender")
        try:
            await _receive_until_closed(websocket, client, sender)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    finally:
        ctx.feed.disconnect(client)


async def _send_loop(websocket: WebSocket, client: FeedClient) -> None:
    reported = 0
    try:
        while not client.closed:
            text = await client.next(WS_RECEIVE_POLL_S)
            if client.dropped != reported:
                reported = client.dropped
                await _send(websocket, json.dumps({"type": "overflow", "data": {"dropped": reported}}))
            if text is not None:
                await _send(websocket, text)
    except Exception as exc:  # the client went away or stalled: end this connection, nothing else
        log.info("live client dropped", extra={"error": f"{type(exc).__name__}: {exc}"})
    with contextlib.suppress(Exception):
        await websocket.close(code=1001)


async def _send(websocket: WebSocket, text: str) -> None:
    async with asyncio.timeout(WS_SEND_TIMEOUT_S):
        await websocket.send_text(text)


async def _receive_until_closed(websocket: WebSocket, client: FeedClient, sender: asyncio.Task[None]) -> None:
    """Incoming messages are ignored (commands go through POST); this only notices the end."""
    while not client.closed and not sender.done():
        try:
            async with asyncio.timeout(WS_RECEIVE_POLL_S):
                message = await websocket.receive()
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            return
