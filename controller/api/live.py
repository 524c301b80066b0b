"""The live WebSocket at /ws: one connection per logged-in HMI screen, fed from `controller.api.live_feed`.

Who may watch, and why:

- **A token, as the first message.** The client connects, then sends `{"type": "auth", "token": T}` (the
  token from POST /api/login) within `TOKEN_WAIT_S`; otherwise, or for an unknown or expired token, the
  socket closes with `CLOSE_UNAUTHENTICATED` (4401). Never in the URL, where proxies and access logs keep
  it, and not as a subprotocol either: one way in, one way to test. Until the token is checked a
  connection waits in the feed's bounded lobby and holds none of the 32 slots, so anonymous or idle
  sockets cannot crowd out an operator's screens; each user holds at most 8 slots and a ninth screen
  closes their oldest (`CLOSE_SUPERSEDED`, 4409). The session is checked again every second: a log-out
  or an expiry ends the feed (4401).
- **Same origin only.** A browser sends `Origin` with every WebSocket handshake and, unlike fetch, does not
  stop a page from another site from opening one to us; so a handshake whose Origin is not the Host the
  server was reached at (scheme, host and port) is refused before the upgrade (the ASGI close with 1008
  that uvicorn answers as HTTP 403): no socket, no slot, no token sent. A handshake with no Origin at all
  comes from a non-browser client (a bench, a script); it is let in because it must show a token like
  everyone else, and no browser page can make one.
- **Anonymous viewers read the line over HTTP.** DESIGN §5 keeps reading open and asks for a login only to
  command; what the feed adds is speed (state every 0.5 s) and the push of alarms and command records.
  So the page shows the synoptic, trends and alarms to anyone by polling GET /api/state and
  GET /api/alarms every second or two, and opens this socket once somebody logs in on it (and closes it
  at log-out). The line stays visible at every panel; only the live feed's slots, which cost the
  controller per client, are kept for people who may act on what they see.

How a connection runs: its handler plus one sender task around the client's bounded outbox. The sender
drains the outbox (with a send timeout, so a stalled client ends its own connection and nothing else)
and tells the client how many messages it lost; the handler ignores what comes in after the token
(commands go through POST /api/commands), notices the end and re-checks the session. A new screen gets
the state at once, with no wait for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket

from controller.api.context import context_of
from controller.api.live_feed import FeedClient, FeedFull, encode
from controller.api.views import state_view
from controller.users.auth import Session, TokenStore

log = logging.getLogger(__name__)

WS_SEND_TIMEOUT_S: Final = 5.0
WS_RECEIVE_POLL_S: Final = 1.0  # also how often the session is checked again
TOKEN_WAIT_S: Final = 5.0  # a page sends its token as soon as the socket opens; 5 s is a slow network
MAX_TOKEN_MESSAGE: Final = 1024  # characters; a token is 43

CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008  # before the upgrade: uvicorn answers HTTP 403
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_UNAUTHENTICATED: Final = 4401
CLOSE_SUPERSEDED: Final = 4409
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_SECURE: Final = {"https", "wss"}

router = APIRouter()


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Is a page from `origin` the server reached at `host` (the Host header) over `scheme` (ws, wss)?"""
    try:
        page = urlsplit(origin)
        server = urlsplit(f"//{host}")
        page_port = page.port or _DEFAULT_PORTS.get(page.scheme)
        server_port = server.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        return False
    return (
        page.scheme in _DEFAULT_PORTS
        and (page.scheme in _SECURE) == (scheme in _SECURE)
        and page.hostname is not None
        and page.hostname == server.hostname
        and page_port == server_port
    )


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    """After the token: {"type": "state"|"telemetry"|"alarm"|"command"|"overflow", "data": {...}}."""
    ctx = context_of(websocket)
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host", "")
    if origin is not None and not same_origin(origin, host, websocket.url.scheme):
        log.warning("live feed refused: foreign origin", extra={"origin": origin})
        await websocket.close(code=CLOSE_POLICY, reason="foreign Origin")
        return
    try:
        with ctx.feed.awaiting_token(websocket.client.host if websocket.client else "unknown"):
            await websocket.accept()
            token, session = await _logged_in(websocket, ctx.tokens)
    except FeedFull as exc:  # the lobby is full: refused before the upgrade
        await websocket.close(code=CLOSE_TRY_AGAIN, reason=str(exc))
        return
    if session is None:
        return
    try:
        client = ctx.feed.connect(session.user)
    except FeedFull as exc:
        await _close(websocket, CLOSE_TRY_AGAIN, str(exc))
        return
    try:
        client.offer(encode("state", state_view(ctx.controller)))  # a new screen needs no wait to draw
        sender = asyncio.create_task(_send_loop(websocket, client), name="ws-sender")
        try:
            session_ended = await _receive_until_closed(websocket, client, sender, ctx.tokens, token)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if session_ended:
            await _close(websocket, CLOSE_UNAUTHENTICATED, "session ended: log in again")
    finally:
        ctx.feed.disconnect(client)


async def _logged_in(websocket: WebSocket, tokens: TokenStore) -> tuple[str, Session | None]:
    """The token of the first message and its session; the socket is closed when there is none."""
    token = await _first_message_token(websocket)
    session = tokens.resolve(token) if token else None
    if session is None:
        why = "no token in time" if not token else "unknown or expired token"
        log.info("live feed refused: not logged in", extra={"why": why})
        await _close(websocket, CLOSE_UNAUTHENTICATED, f'log in, then send {{"type": "auth", ...}}: {why}')
    return token, session


async def _first_message_token(websocket: WebSocket) -> str:
    try:
        async with asyncio.timeout(TOKEN_WAIT_S):
            message = await websocket.receive()
    except TimeoutError:
        return ""
    text = message.get("text")
    if message["type"] != "websocket.receive" or not isinstance(text, str) or len(text) > MAX_TOKEN_MESSAGE:
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    token = body.get("token") if isinstance(body, dict) and body.get("type") == "auth" else None
    return token if isinstance(token, str) else ""


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
    if client.superseded:
        why = f"user {client.user!r} opened more live screens than one user may hold; this was the oldest"
        await _close(websocket, CLOSE_SUPERSEDED, why)
    else:
        await _close(websocket, CLOSE_GOING_AWAY, "")


async def _send(websocket: WebSocket, text: str) -> None:
    async with asyncio.timeout(WS_SEND_TIMEOUT_S):
        await websocket.send_text(text)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        # a close frame's reason is at most 123 bytes
        await websocket.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))


async def _receive_until_closed(
    websocket: WebSocket, client: FeedClient, sender: asyncio.Task[None], tokens: TokenStore, token: str
) -> bool:
    """Incoming messages are ignored (commands go through POST); True when the session ended meanwhile."""
    while not client.closed and not sender.done():
        if tokens.resolve(token) is None:
            return True
        try:
            async with asyncio.timeout(WS_RECEIVE_POLL_S):
                message = await websocket.receive()
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            return False
    return False
