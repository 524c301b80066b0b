"""The JSON API and live feed against a real uvicorn server, a real controller and the simulated line.

Everything goes over HTTP/WebSocket on a real socket (port 0); the plant is checked directly only to
prove a command really moved it. Waits are bounded loops, never timing assertions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from controller.api.app import ACTION_REQUESTS, ACTION_TYPES, LiveFeed, TelemetryHistory
from controller.config.line_config import ROLES, UserConfig, load_line_config
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from controller.users.auth import PERMISSIONS, Permission, TokenStore
from drivers.reading import Quality, Reading
from sim_hardware.line import SimLine

PASSWORDS = {"op1": "op1-demo", "eng1": "eng1-demo", "maint1": "maint1-demo"}
WAIT_S = 30.0


@dataclasses.dataclass
class Served:
    sim: SimLine
    ctl: LineController
    service: ControllerService
    url: str
    http: httpx.AsyncClient


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    base = load_line_config()
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with SimLine(base, speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with (
            LineController(config, plan=plan, travel_timeout_s=5.0) as ctl,
            ControllerService(ctl, state_interval_s=0.1, telemetry_interval_s=0.1) as service,
            HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10.0) as http,
        ):
            yield Served(sim, ctl, service, server.url, http)


async def login(served: Served, user: str) -> dict[str, str]:
    response = await served.http.post("/api/login", json={"user": user, "password": PASSWORDS[user]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy; fail (not hang) after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def space(served: Served, name: str) -> dict[str, Any]:
    state = (await served.http.get("/api/state")).json()
    return next(s for s in state["spaces"] if s["name"] == name)


# -- reading ------------------------------------------------------------------------------------------


async def test_state_has_every_space_port_and_station_with_its_evidence(served: Served) -> None:
    response = await served.http.get("/api/state")
    assert response.status_code == 200
    state = response.json()
    assert state["line"] == served.ctl.config.name
    assert {s["name"] for s in state["spaces"]} == {"inlet", "process", "outlet"}
    assert {s["name"]: s["state"] for s in state["stations"]} == {
        "inlet": "sealed",
        "process": "idle",
        "outlet": "sealed",
    }
    assert {p["name"] for p in state["ports"]} == {p.name for p in served.ctl.config.ports}
    inlet = await eventually(
        lambda: _with_pressure(served, "inlet"), "the inlet's pressure and sensors are read"
    )
    assert inlet["atmosphere"] == "air"
    assert inlet["safe_for_exposed"] is False
    assert inlet["reason"]
    assert inlet["pressure_pa"] > 90_000
    assert inlet["frost_point"]["unit"] == "degC"
    assert inlet["o2"]["value"] > 100_000  # room air
    assert set(inlet["valves"]) == {"rough", "vent", "gas_fill"}
    assert inlet["valves"]["rough"]["commanded_open"] is False
    process = next(s for s in state["spaces"] if s["name"] == "process")
    assert process["frost_point"] is None  # no such sensor: provenance carries the evidence
    assert "air_fraction_bound" in process["evidence"]
    gate = next(p for p in state["ports"] if p["name"] == "inlet_gate")
    assert set(gate["valve"]) >= {"commanded_open", "open_ls", "closed_ls"}
    assert state["items"] == []


async def _with_pressure(served: Served, name: str) -> dict[str, Any] | None:
    found = await space(served, name)
    ready = found["pressure_pa"] is not None and found["frost_point"] and found["o2"]
    return found if ready else None


async def test_telemetry_latest_values_and_recent_history(served: Served) -> None:
    async def channels() -> list[dict[str, Any]]:
        return list((await served.http.get("/api/telemetry")).json()["channels"])

    latest = await eventually(channels, "telemetry arrives")
    frost = await eventually(
        lambda: _channel(served, "inlet_dewpoint", "frost_point"), "the inlet frost point is read"
    )
    assert frost["quality"] in {q.value for q in Quality}
    assert frost["age_s"] >= 0.0
    assert all({"device", "channel", "value", "unit", "quality", "ts", "age_s"} <= set(c) for c in latest)

    async def history() -> list[dict[str, Any]]:
        response = await served.http.get("/api/telemetry/inlet_dewpoint/frost_point", params={"seconds": 60})
        assert response.status_code == 200
        body = response.json()
        assert body["device"] == "inlet_dewpoint"
        return list(body["points"]) if len(body["points"]) >= 2 else []

    points = await eventually(history, "the history holds two points")
    assert points == sorted(points, key=lambda p: p["ts"])
    missing = await served.http.get("/api/telemetry/inlet_dewpoint/no_such_channel")
    assert missing.status_code == 404
    refused = await served.http.get("/api/telemetry/inlet_dewpoint/frost_point", params={"seconds": -1})
    assert refused.status_code == 422


async def _channel(served: Served, device: str, channel: str) -> dict[str, Any] | None:
    for c in (await served.http.get("/api/telemetry")).json()["channels"]:
        if c["device"] == device and c["channel"] == channel:
            return dict(c)
    return None


async def test_openapi_documents_the_api_and_the_action_bodies(served: Served) -> None:
    spec = (await served.http.get("/openapi.json")).json()
    for path in ("/api/state", "/api/commands", "/api/login", "/api/alarms/{alarm_id}/acknowledge"):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert {f"{name}Request" for name in ACTION_TYPES} <= set(schemas)


# -- sessions and permissions -------------------------------------------------------------------------


async def test_login_gives_a_token_with_the_role_and_refuses_bad_passwords(served: Served) -> None:
    good = await served.http.post("/api/login", json={"user": "eng1", "password": "eng1-demo"})
    assert good.status_code == 200
    body = good.json()
    assert body["role"] == "engineer"
    assert body["expires_at"] > time.time()
    assert len(body["token"]) >= 32
    assert "alarm.shelve" in body["permissions"]
    for wrong in ({"user": "eng1", "password": "op1-demo"}, {"user": "nobody", "password": "x" * 9}):
        refused = await served.http.post("/api/login", json=wrong)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    malformed = await served.http.post("/api/login", json={"user": "eng1"})
    assert malformed.status_code == 422


async def test_acting_needs_a_live_token_and_a_role_that_may(served: Served) -> None:
    action = {"type": "SetPump", "space": "inlet", "running": True}
    assert (await served.http.post("/api/commands", json=action)).status_code == 401
    bogus = {"Authorization": "Bearer not-a-token"}
    assert (await served.http.post("/api/commands", json=action, headers=bogus)).status_code == 401
    user = next(u for u in served.ctl.config.users if u.name == "op1")
    stale, _ = served.service.tokens.issue(user, now=time.time() - served.service.tokens.ttl_s - 1)
    expired = {"Authorization": f"Bearer {stale}"}
    assert (await served.http.post("/api/commands", json=action, headers=expired)).status_code == 401

    operator = await login(served, "op1")
    item = {"id": "C9", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True}
    forbidden = await served.http.post("/api/items", json=item, headers=operator)
    assert forbidden.status_code == 403
    assert "operator" in forbidden.json()["detail"]
    assert served.ctl.gate.records == type(served.ctl.gate.records)()  # nothing reached the gate

    assert (await served.http.post("/api/logout", headers=operator)).status_code == 204
    assert (await served.http.post("/api/commands", json=action, headers=operator)).status_code == 401


async def test_malformed_actions_never_reach_the_gate(served: Served) -> None:
    headers = await login(served, "op1")
    bad_bodies = [
        {"type": "OpenEverything"},
        {"type": "SetValve", "space": "inlet", "valve": "rough", "open": "yes"},
        {"type": "SetValve", "space": "inlet", "valve": "sideways", "open": True},
        {"type": "SetPump", "space": "inlet", "running": True, "force": True},
    ]
    for body in bad_bodies:
        assert (await served.http.post("/api/commands", json=body, headers=headers)).status_code == 422
    nan = b'{"type": "SetHeater", "space": "process", "heater": "substrate", "setpoint_c": NaN}'
    response = await served.http.post(
        "/api/commands", content=nan, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert len(served.ctl.gate.records) == 0


# -- commands -----------------------------------------------------------------------------------------


async def test_an_allowed_command_moves_the_simulated_plant_and_is_recorded_with_its_user(
    served: Served,
) -> None:
    headers = await login(served, "op1")
    body = {"type": "SetPump", "space": "inlet", "running": True, "reason": "start the purge"}
    response = await served.http.post("/api/commands", json=body, headers=headers)
    assert response.status_code == 200
    result = response.json()
    assert result["outcome"] == "done", result
    assert result["reason"] == "allowed"
    assert result["refusals"] == []
    assert result["error"] == ""
    assert result["user"] == "op1"
    assert result["origin"] == "hmi"
    assert result["action"] == {"type": "SetPump", "space": "inlet", "running": True}

    async def pump_runs() -> bool:
        return (await space(served, "inlet"))["pump_running"] is True

    await eventually(pump_runs, "the inlet pump reads back running")
    assert any(pump.running for name, pump in served.sim.plant.pumps.items() if "inlet" in name)
    records = (await served.http.get("/api/commands")).json()
    assert [(r["user"], r["command_reason"], r["outcome"]) for r in records] == [
        ("op1", "start the purge", "done")
    ]
    assert served.ctl.gate.records[-1].command.user == "op1"


async def test_a_refused_command_answers_with_the_invariant_that_spoke(served: Served) -> None:
    headers = await login(served, "op1")
    await eventually(lambda: _with_pressure(served, "inlet"), "the inlet is read")
    gate = {"type": "SetPort", "port": "inlet_gate", "open": True}
    response = await served.http.post("/api/commands", json=gate, headers=headers)
    assert response.status_code == 200
    result = response.json()
    assert result["outcome"] == "refused", result
    assert result["refusals"][0]["invariant"] == "I2"
    assert result["reason"].startswith("[I2 ")
    assert not served.sim.plant.doors["inlet_gate"].is_open


# -- alarms -------------------------------------------------------------------------------------------


def raise_test_alarm(ctl: LineController, alarm_id: str = "test.horn") -> None:
    ctl.alarms.define(AlarmDefinition(alarm_id, Severity.HIGH, "horn test", "Acknowledge it."))
    ctl.alarms.raise_alarm(alarm_id, time.time(), {"text": "the horn sounds", "pressure_pa": math.inf})


async def test_alarm_acknowledge_is_recorded_with_the_user_and_refusals_answer_409(served: Served) -> None:
    raise_test_alarm(served.ctl)
    alarms = (await served.http.get("/api/alarms")).json()
    horn = next(a for a in alarms["active"] if a["id"] == "test.horn")
    assert (horn["severity"], horn["state"], horn["detail"]) == ("high", "active_unacked", "the horn sounds")
    assert horn["evidence"]["pressure_pa"] is None  # infinity is not JSON
    assert alarms["unacknowledged"] is True

    assert (await served.http.post("/api/alarms/test.horn/acknowledge")).status_code == 401
    operator = await login(served, "op1")
    acked = await served.http.post("/api/alarms/test.horn/acknowledge", headers=operator)
    assert acked.status_code == 200
    assert (acked.json()["user"], acked.json()["to_state"]) == ("op1", "active_acked")
    assert served.ctl.alarms.get("test.horn").acked_by == "op1"
    journal = (await served.http.get("/api/alarms/journal", params={"since": acked.json()["ts"] - 1})).json()
    assert any(r["event"] == "acknowledge" and r["user"] == "op1" for r in journal)

    again = await served.http.post("/api/alarms/test.horn/acknowledge", headers=operator)
    assert again.status_code == 409
    assert "nothing to acknowledge" in again.json()["detail"]
    unknown = await served.http.post("/api/alarms/no.such/acknowledge", headers=operator)
    assert unknown.status_code == 404

    shelf = {"reason": "horn under repair", "until_s": time.time() + 600}
    assert (
        await served.http.post("/api/alarms/test.horn/shelve", json=shelf, headers=operator)
    ).status_code == 403
    engineer = await login(served, "eng1")
    past = {"reason": "too late", "until_s": time.time() - 10}
    late = await served.http.post("/api/alarms/test.horn/shelve", json=past, headers=engineer)
    assert late.status_code == 409
    assert "future" in late.json()["detail"]
    shelved = await served.http.post("/api/alarms/test.horn/shelve", json=shelf, headers=engineer)
    assert shelved.status_code == 200
    listed = (await served.http.get("/api/alarms")).json()
    assert [a["shelf"]["user"] for a in listed["shelved"]] == ["eng1"]


# -- items --------------------------------------------------------------------------------------------


async def test_engineers_register_items_and_the_ledger_follows_them(served: Served) -> None:
    engineer = await login(served, "eng1")
    container = {"id": "C1", "kind": "container", "material": "SUS", "location": "inlet", "sealed": True}
    foil = {"id": "F1", "kind": "base_material", "material": "Li/Cu", "location": "C1"}
    for body in (container, foil):
        response = await served.http.post("/api/items", json=body, headers=engineer)
        assert response.status_code == 201, response.text
    assert (await served.http.post("/api/items", json=foil, headers=engineer)).status_code == 409
    unknown = {**foil, "id": "F2", "material": "unobtainium"}
    assert (await served.http.post("/api/items", json=unknown, headers=engineer)).status_code == 409

    items = {i["id"]: i for i in (await served.http.get("/api/items")).json()}
    assert items["F1"]["space"] == "inlet"
    assert items["F1"]["exposed"] is False  # inside a sealed container
    ledger = (await served.http.get("/api/items/F1/ledger")).json()
    assert [stay["space"] for stay in ledger["path"]] == ["inlet"]
    assert ledger["ever_exposed_to_non_inert"] is False
    assert (await served.http.get("/api/items/C1/ledger")).status_code == 404
    assert (await served.http.get("/api/items/nope/ledger")).status_code == 404


# -- the live feed ------------------------------------------------------------------------------------


async def receive_until(ws: ClientConnection, kind: str, match: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind} message came"
        message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        if message["type"] == kind and match(message["data"]):
            return message["data"]


async def test_websocket_streams_state_telemetry_alarms_and_command_records(served: Served) -> None:
    headers = await login(served, "op1")
    ws_url = served.url.replace("http://", "ws://") + "/ws"
    async with connect(ws_url, open_timeout=10, close_timeout=5) as ws:
        await ws.send(json.dumps({"type": "auth", "token": headers["Authorization"].removeprefix("Bearer ")}))
        first = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        assert first["type"] == "state"
        assert {s["name"] for s in first["data"]["spaces"]} == {"inlet", "process", "outlet"}
        await receive_until(ws, "telemetry", lambda data: bool(data["channels"]))

        body = {"type": "SetPump", "space": "inlet", "running": True}
        assert (await served.http.post("/api/commands", json=body, headers=headers)).status_code == 200
        record = await receive_until(ws, "command", lambda data: data["user"] == "op1")
        assert (record["outcome"], record["action"]["type"]) == ("done", "SetPump")

        raise_test_alarm(served.ctl, "test.ws")
        alarm = await receive_until(ws, "alarm", lambda data: data["alarm_id"] == "test.ws")
        assert alarm["to_state"] == "active_unacked"
        await receive_until(ws, "state", lambda data: True)
    await eventually(_no_clients(served), "the server forgets the closed client")


def _no_clients(served: Served) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return served.service.feed.clients == 0

    return check


# -- the parts, without a server ----------------------------------------------------------------------


def test_every_action_dataclass_has_a_request_body_with_the_same_fields() -> None:
    bodies = {get_args(cls.model_fields["type"].annotation)[0]: cls for cls in ACTION_REQUESTS}
    assert set(bodies) == set(ACTION_TYPES)
    for name, action in ACTION_TYPES.items():
        wanted = {f.name: f.default for f in dataclasses.fields(action)}
        given = {
            field: (dataclasses.MISSING if info.is_required() else info.default)
            for field, info in bodies[name].model_fields.items()
            if field not in {"type", "reason"}
        }
        assert given == wanted, name


def test_the_permissions_table_covers_every_role_and_grows_upwards() -> None:
    assert set(PERMISSIONS) == set(ROLES)
    assert PERMISSIONS["operator"] < PERMISSIONS["engineer"] <= PERMISSIONS["maintenance"]
    assert PERMISSIONS["maintenance"] == frozenset(Permission)
    assert Permission.SHELVE_ALARM not in PERMISSIONS["operator"]


def test_tokens_expire_and_the_store_stays_bounded() -> None:
    now = [1000.0]
    store = TokenStore(ttl_s=60.0, max_sessions=2, clock=lambda: now[0])
    user = UserConfig("op1", "operator", "pbkdf2_sha256$1$AA==$AA==")
    first, _ = store.issue(user)
    session = store.resolve(first)
    assert session is not None
    assert session.expires_at == 1060.0
    now[0] = 1060.0
    assert store.resolve(first) is None
    tokens = [store.issue(user)[0] for _ in range(3)]
    assert len(store) == 2
    assert store.resolve(tokens[0]) is None  # the oldest went to make room
    assert store.resolve(tokens[2]) is not None
    assert store.revoke(tokens[2])
    assert store.resolve(tokens[2]) is None


async def test_a_slow_client_loses_its_oldest_messages_and_never_blocks_publishing() -> None:
    feed = LiveFeed(client_queue=3)
    slow = feed.connect("op1")
    fast = feed.connect("op2")
    history = TelemetryHistory(points_per_channel=5)
    for i in range(10):
        reading = Reading.now(float(i), "Pa")
        feed.offer_sample("gauge", "p", reading)
        history.add("gauge", "p", reading)
        feed.flush_telemetry(time.monotonic())
        assert await fast.next(0.01) is not None
    assert (len(slow), slow.dropped, fast.dropped, feed.dropped) == (3, 7, 0, 7)
    newest = await slow.next(0.01)
    assert newest is not None
    assert json.loads(newest)["data"]["channels"][0]["value"] == 7.0
    recent = history.recent("gauge", "p", 60.0, now_mono=time.monotonic())
    assert recent is not None
    assert [r.value for r in recent] == [5.0, 6.0, 7.0, 8.0, 9.0]
    feed.close()
    assert feed.clients == 0
    assert await slow.next(0.01) is None


# -- command availability and topology (what the HMI draws and greys out) -----------------------------


async def test_availability_is_the_gates_verdict_for_the_caller_and_records_nothing(served: Served) -> None:
    operator, engineer = await login(served, "op1"), await login(served, "eng1")
    changed = await served.http.post(
        "/api/mode", json={"mode": "maintenance", "reason": "test"}, headers=engineer
    )
    assert changed.status_code == 200, changed.text
    before = len(served.ctl.gate.records)

    async def verdicts(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        answer = await served.http.get("/api/commands/availability", headers=headers)
        assert answer.status_code == 200, answer.text
        return {c["key"]: c for c in answer.json()["commands"]}

    as_operator, as_engineer = await verdicts(operator), await verdicts(engineer)
    assert set(as_operator) == set(as_engineer)
    assert {
        "port:inlet_gate:open",
        "pump:inlet:on",
        "turbo:process:on",
        "valve:process:turbo_gate:open",
    } <= set(as_operator)
    assert "turbo:inlet:on" not in as_operator  # only the chamber has a turbo
    assert all(not c["allowed"] for c in as_operator.values())  # maintenance: engineers only
    assert {c["reason"] for c in as_operator.values()} == {"the line is in maintenance: engineers only"}
    assert as_engineer["port:inlet_gate:close"]["allowed"]  # the engineer: only the interlocks judge
    refused = as_engineer["port:inlet_gate:open"]
    assert not refused["allowed"]
    assert refused["refusals"][0]["invariant"] != "MODE"
    # the real command is judged the same way, and only that one is on record
    sent = await served.http.post(
        "/api/commands", json={"type": "SetPort", "port": "inlet_gate", "open": True}, headers=engineer
    )
    assert [r["reason"] for r in sent.json()["refusals"]] == [r["reason"] for r in refused["refusals"]]
    assert len(served.ctl.gate.records) == before + 1


async def test_topology_says_what_each_space_has_for_the_process_picture(served: Served) -> None:
    topology = (await served.http.get("/api/topology")).json()
    spaces = {s["name"]: s for s in topology["spaces"]}
    assert spaces["inlet"]["label"] == "inlet antechamber"
    assert spaces["process"]["label"] == "process chamber"
    assert (spaces["process"]["pump"], spaces["process"]["turbo"]) == ("backing", True)
    assert spaces["process"]["valves"] == ["rough", "vent", "gas_fill", "turbo_gate"]
    assert not spaces["process"]["frost_sensor"]
    assert not spaces["process"]["o2_sensor"]
    assert spaces["inlet"]["frost_sensor"]
    assert spaces["inlet"]["o2_sensor"]
    assert [g["head"] for g in spaces["process"]["gauges"]] == ["PKR", "CMR1000"]
    assert topology["travel_timeout_s"] == 5.0
    assert [p["label"] for p in topology["ports"]][:2] == ["inlet outer door", "gate valve inlet–process"]
