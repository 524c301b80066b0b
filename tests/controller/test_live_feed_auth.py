"""Who may watch the live WebSocket /ws: a real uvicorn server, the `websockets` client, the simulated line.

A socket that shows no token, a bad one, or a foreign Origin gets nothing and is closed (or never
opened); a logged-in one is fed until its session ends; the slots are for logged-in screens and one user
holds at most eight of them. Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.api.live import (
    CLOSE_SUPERSEDED,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHENTICATED,
    TOKEN_WAIT_S,
    same_origin,
)
from controller.config.line_config import load_line_config
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from sim_hardware.line import SimLine

PASSWORDS = {"op1": "op1-demo", "eng1": "eng1-demo", "maint1": "maint1-demo"}
WAIT_S = 30.0


class Line:
    def __init__(self, service: ControllerService, url: str, http: httpx.AsyncClient) -> None:
        self.service = service
        self.ws_url = url.replace("http://", "ws://") + "/ws"
        self.url = url
        self.http = http

    async def token(self, user: str) -> str:
        response = await self.http.post("/api/login", json={"user": user, "password": PASSWORDS[user]})
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def open(self, **kwargs: Any) -> Any:
        return connect(self.ws_url, open_timeout=10, close_timeout=5, **kwargs)


@contextlib.asynccontextmanager
async def served(*, max_clients: int = 32) -> AsyncIterator[Line]:
    async with SimLine(load_line_config(), speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with (
            LineController(config, plan=plan) as ctl,
            ControllerService(
                ctl, state_interval_s=0.1, telemetry_interval_s=0.1, max_clients=max_clients
            ) as svc,
            HttpServer(svc.app, bind_listener("127.0.0.1", 0)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10.0) as http,
        ):
            yield Line(svc, server.url, http)


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    async with served() as found:
        yield found


async def authenticate(ws: ClientConnection, token: str) -> None:
    await ws.send(json.dumps({"type": "auth", "token": token}))


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    return message


async def until_closed(ws: ClientConnection, timeout_s: float = WAIT_S) -> tuple[int | None, list[Any]]:
    """The close code the server sent, and what arrived before it."""
    received: list[Any] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout_s):
            async for message in ws:
                received.append(message)
    return ws.close_code, received


async def eventually(check: Any, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():  # noqa: ASYNC110 (the feed has no event to wait on)
            await asyncio.sleep(0.05)
    assert check(), what


# -- refused -------------------------------------------------------------------------------------------


async def test_a_socket_without_a_token_or_with_a_bad_one_gets_nothing_and_is_closed(line: Line) -> None:
    async def says_hello() -> tuple[int | None, list[Any]]:
        async with line.open() as ws:
            await ws.send(json.dumps({"type": "hello"}))
            return await until_closed(ws)

    async def bad_token() -> tuple[int | None, list[Any]]:
        async with line.open() as ws:
            await authenticate(ws, "not-a-token")
            return await until_closed(ws)

    async def says_nothing() -> tuple[int | None, list[Any]]:
        async with line.open() as ws:
            await eventually(lambda: line.service.feed.waiting >= 1, "the idle socket waits in the lobby")
            assert line.service.feed.clients == 0  # holding no slot meanwhile
            return await until_closed(ws, TOKEN_WAIT_S + WAIT_S)

    async def expired_token() -> tuple[int | None, list[Any]]:
        user = next(u for u in line.service.controller.config.users if u.name == "op1")
        stale, _ = line.service.tokens.issue(user, now=0.0)
        async with line.open() as ws:
            await authenticate(ws, stale)
            return await until_closed(ws)

    results = await asyncio.gather(says_hello(), bad_token(), says_nothing(), expired_token())
    assert list(results) == [(CLOSE_UNAUTHENTICATED, [])] * 4
    assert (line.service.feed.clients, line.service.feed.waiting) == (0, 0)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"])
async def test_a_handshake_from_a_foreign_origin_is_refused_before_any_socket_opens(
    line: Line, origin: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with line.open(origin=origin):
            pass
    assert refused.value.response.status_code == 403
    assert line.service.feed.waiting == 0


def test_same_origin_means_scheme_host_and_port() -> None:
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", "ws")
    assert same_origin("http://PLANT-HMI", "plant-hmi:80", "ws")
    assert same_origin("https://plant-hmi", "plant-hmi", "wss")
    assert same_origin("http://[::1]:8080", "[::1]:8080", "ws")
    assert not same_origin("https://plant-hmi", "plant-hmi", "ws")
    assert not same_origin("http://plant-hmi:8081", "plant-hmi:8080", "ws")
    assert not same_origin("http://evil.example:8080", "plant-hmi:8080", "ws")
    assert not same_origin("null", "plant-hmi", "ws")
    assert not same_origin("file://", "plant-hmi", "ws")
    assert not same_origin("http://plant-hmi:port", "plant-hmi:8080", "ws")


# -- fed ------------------------------------------------------------------------------------------------


async def test_a_logged_in_screen_from_the_same_origin_is_fed_until_its_session_ends(line: Line) -> None:
    token = await line.token("op1")
    async with line.open(origin=line.url) as ws:  # what a browser on the HMI page sends
        await authenticate(ws, token)
        first = await next_message(ws)
        assert first["type"] == "state"
        assert {s["name"] for s in first["data"]["spaces"]} == {"inlet", "process", "outlet"}
        kinds = {(await next_message(ws))["type"] for _ in range(6)}
        assert {"state", "telemetry"} <= kinds
        assert line.service.feed.users() == {"op1": 1}

        logout = await line.http.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
        assert logout.status_code == 204
        code, _ = await until_closed(ws)
        assert code == CLOSE_UNAUTHENTICATED
    await eventually(lambda: line.service.feed.clients == 0, "the server forgets the closed client")


async def test_one_user_holds_at_most_eight_screens_and_a_ninth_closes_the_oldest(line: Line) -> None:
    token = await line.token("op1")
    async with contextlib.AsyncExitStack() as stack:
        screens = []
        for _ in range(9):
            ws = await stack.enter_async_context(line.open())
            await authenticate(ws, token)
            assert (await next_message(ws))["type"] == "state"
            screens.append(ws)
        code, _ = await until_closed(screens[0])
        assert code == CLOSE_SUPERSEDED
        assert line.service.feed.users() == {"op1": 8}
        for ws in screens[1:]:  # the others are still fed
            await next_message(ws)
        other = await stack.enter_async_context(line.open())
        await authenticate(other, await line.token("eng1"))
        assert (await next_message(other))["type"] == "state"
        assert line.service.feed.users() == {"op1": 8, "eng1": 1}


async def test_anonymous_sockets_hold_no_slot_and_the_lobby_is_bounded_per_address() -> None:
    async with served(max_clients=2) as line, contextlib.AsyncExitStack() as stack:
        feed = line.service.feed
        for _ in range(6):
            await stack.enter_async_context(line.open())  # connected, never logged in
        await eventually(lambda: feed.waiting == 6, "six sockets wait for their token")
        fed = []
        for user in ("op1", "eng1"):  # both slots still go to people who logged in
            ws = await stack.enter_async_context(line.open())
            await authenticate(ws, await line.token(user))
            assert (await next_message(ws))["type"] == "state"
            fed.append(ws)
        assert (feed.clients, feed.waiting) == (2, 6)
        third = await stack.enter_async_context(line.open())
        await authenticate(third, await line.token("maint1"))
        code, received = await until_closed(third)
        assert (code, received) == (CLOSE_TRY_AGAIN, [])  # the feed is full of logged-in screens
        for _ in range(feed.max_waiting_per_address - 6):
            await stack.enter_async_context(line.open())
        await eventually(lambda: feed.waiting == feed.max_waiting_per_address, "the lobby fills up")
        with pytest.raises(InvalidStatus):
            await stack.enter_async_context(line.open())  # one address cannot fill the lobby further
