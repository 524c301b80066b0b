"""The MQTT bridge against Debian's mosquitto and the simulated line, controller in the loop.

Every broker test runs a real mosquitto (tests/mqtt_broker.py) with a password file and an ACL on a
free port, the SimLine, and a LineController; subscribers and command senders are plain aiomqtt
clients logged in as plant users. Nothing is timed: every wait is "until this is seen" with a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiomqtt
import pytest

from bench.mosquitto_broker import MosquittoBroker, line_acl
from controller.config.line_config import LineConfig, MqttConfig, load_line_config
from controller.errors import ConfigFileError
from controller.line.actions import SetPort, SetValve
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.line.controller import LineController
from controller.line.poller import Poller, PollPlan, Priority, Sample
from controller.mqtt.bridge import MqttBridge
from controller.mqtt.commands import (
    OUTCOME_INVALID,
    OUTCOME_REJECTED,
    CommandRejected,
    decode_action,
    parse_command,
)
from controller.mqtt.options import BridgeOptions
from controller.mqtt.outbox import Lane, Outbox, Outgoing
from controller.mqtt.payloads import telemetry_payload
from controller.mqtt.topics import Topics
from drivers.reading import Quality, Reading
from sim_hardware.line import SimLine

WAIT_S = 20.0
PASSWORDS = {"bridge": "bridge-pw", "op1": "op1-pw", "mallory": "mallory-pw", "viewer": "viewer-pw"}
COMMANDS = ("set_pump", "set_port", "set_valve")
FAST = BridgeOptions(
    telemetry_min_interval_s=0.2,
    telemetry_heartbeat_s=2.0,
    tick_s=0.05,
    reconnect_min_s=0.05,
    reconnect_max_s=0.5,
    keepalive_s=5,
    operation_timeout_s=3.0,
    stop_timeout_s=3.0,
)


# -- helpers -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def body(self) -> dict[str, object]:
        loaded = json.loads(self.payload)
        assert isinstance(loaded, dict)
        return loaded

    @property
    def seq(self) -> int | None:
        if not self.payload:
            return None
        seq = self.body.get("seq")
        return seq if isinstance(seq, int) else None


class Watcher:
    """A plant subscriber with its own reconnect loop; keeps every message it receives, in order.

    `persistent` asks for a broker session that outlives the connection (clean_session false), so
    the broker queues QoS 1 messages for it while it is away — as a SCADA that must miss nothing would.
    """

    def __init__(
        self,
        broker: MosquittoBroker,
        user: str,
        filters: Sequence[str],
        *,
        identifier: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.broker = broker
        self.user = user
        self.filters = list(filters)
        self.identifier = identifier
        self.persistent = persistent
        self.messages: list[Received] = []
        self.subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run(), name=f"watcher:{self.user}")
        async with asyncio.timeout(WAIT_S):
            await self.subscribed.wait()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for _ in range(3):
            await asyncio.sleep(0)

    async def _run(self) -> None:
        while True:
            try:
                client = aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.user,
                    password=PASSWORDS[self.user],
                    identifier=self.identifier,
                    clean_session=not self.persistent,
                    timeout=3.0,
                    keepalive=5,
                )
                async with client:
                    for topic in self.filters:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        self.messages.append(Received(str(message.topic), payload, message.retain))
                        self._changed.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

    async def until(
        self, predicate: Callable[[list[Received]], bool], what: str, timeout_s: float = WAIT_S
    ) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never received: {what}; got {len(self.messages)} messages"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._changed.wait()
        return self.messages

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]


async def publish_as(broker: MosquittoBroker, user: str, topic: str, payload: bytes | str) -> None:
    """One QoS 1 publication, acknowledged by the broker before this returns."""
    async with aiomqtt.Client(
        broker.host, broker.port, username=user, password=PASSWORDS[user], timeout=3.0
    ) as client:
        await client.publish(topic, payload, qos=1)


async def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.02)


class PollerTail:
    """A real `SampleArchive`: every sample the poller fanned out since this was created, in memory.

    It drains its own poller subscription when asked, so it needs no task; the historian is the
    production archive, this is the smallest one that holds real samples."""

    def __init__(self, poller: Poller) -> None:
        self.subscription = poller.subscribe("test-archive", maxsize=1_000_000)
        self.samples: list[Sample] = []
        self.queries: list[float] = []

    async def samples_since(self, ts: float) -> Sequence[Sample]:
        self.queries.append(ts)
        while (event := self.subscription.get_nowait()) is not None:
            if isinstance(event, Sample):
                self.samples.append(event)
        return [s for s in self.samples if s.reading.ts >= ts]


@dataclass
class Rig:
    broker: MosquittoBroker
    sim: SimLine
    ctl: LineController
    config: LineConfig
    health: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def online(self) -> bool:
        return bool(self.health) and self.health[-1][0]

    @property
    def topics(self) -> Topics:
        assert self.config.mqtt is not None
        return Topics.for_line(self.config, self.config.mqtt)

    def bridge(self, **kwargs: object) -> MqttBridge:
        options = kwargs.pop("options", FAST)
        assert isinstance(options, BridgeOptions)
        archive = kwargs.pop("archive", None)
        assert archive is None or isinstance(archive, PollerTail)
        return MqttBridge(
            self.config,
            self.ctl,
            archive=archive,
            options=options,
            on_health=lambda ok, detail: self.health.append((ok, detail)),
        )


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    acl = line_acl("depline", "line1", bridge="bridge", commanders=["op1", "mallory"], viewers=["viewer"])
    async with MosquittoBroker(tmp_path / "broker", users=PASSWORDS, acl=acl, persistence=True) as running:
        yield running


@pytest.fixture
async def rig(broker: MosquittoBroker) -> AsyncIterator[Rig]:
    base = load_line_config()
    assert base.name == "line1", "the broker fixture's ACL names the line"
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with SimLine(base, speed=200.0) as sim:
        mqtt = MqttConfig(
            host=broker.host,
            port=broker.port,
            username="bridge",
            password=PASSWORDS["bridge"],
            topic_prefix="depline",
            command_users=("op1",),
            commands=COMMANDS,
        )
        config = dataclasses.replace(sim.simulated_config(), mqtt=mqtt)
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with LineController(config, plan=plan, travel_timeout_s=5.0) as ctl:
            yield Rig(broker, sim, ctl, config)


def per_topic_in_order(messages: Sequence[Received], key: str = "seq") -> None:
    """Within every topic, `key` never goes backwards (a repeat after a reconnect is allowed)."""
    last: dict[str, float] = {}
    for m in messages:
        if not m.payload or m.retain:
            continue
        value = m.body.get(key)
        if not isinstance(value, int | float):
            continue
        assert value >= last.get(m.topic, -math.inf), f"{m.topic}: {key} {value} after {last[m.topic]}"
        last[m.topic] = value


# -- pure parts: payloads, commands, the outbox ------------------------------------------------------------


def test_non_finite_values_are_null_and_the_quality_says_why() -> None:
    over = telemetry_payload(Reading(math.inf, "Pa", Quality.OVER_RANGE, 1.0, 1.0), 7)
    assert over == {
        "seq": 7,
        "ts": 1.0,
        "value": None,
        "unit": "Pa",
        "quality": "over_range",
        "nonfinite": "inf",
    }
    nan_ok = telemetry_payload(Reading(math.nan, "degC", Quality.OK, 2.0, 2.0), 8)
    assert nan_ok["value"] is None
    assert nan_ok["quality"] == "error"
    assert nan_ok["nonfinite"] == "nan"
    fine = telemetry_payload(Reading(12.5, "Pa", Quality.OK, 3.0, 3.0), None, archived=True)
    assert fine == {"seq": None, "ts": 3.0, "value": 12.5, "unit": "Pa", "quality": "ok", "archived": True}
    json.dumps(over, allow_nan=False)


def _mqtt(commands: tuple[str, ...] = COMMANDS) -> MqttConfig:
    return MqttConfig(host="h", command_users=("op1",), commands=commands)


TOPICS = Topics("depline/line1")


def _parse(name: str, body: object) -> CommandRejected:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(CommandRejected) as caught:
        parse_command(TOPICS, _mqtt(), name, payload, max_bytes=4096)
    return caught.value


def test_a_command_payload_becomes_a_typed_action() -> None:
    body = {"user": "op1", "action": {"type": "SetValve", "space": "inlet", "valve": "rough", "open": True}}
    command = parse_command(
        TOPICS, _mqtt(), "set_valve", json.dumps({**body, "id": 4}).encode(), max_bytes=4096
    )
    assert command.action == SetValve("inlet", "rough", True)
    assert command.user == "op1"
    assert command.request_id == 4
    assert command.reply_topic == "depline/line1/cmd/set_valve/reply"
    untyped = {"user": "op1", "action": {"port": "inlet_gate", "open": False}, "reply_to": "plant/replies/9"}
    command = parse_command(TOPICS, _mqtt(), "set_port", json.dumps(untyped).encode(), max_bytes=4096)
    assert command.action == SetPort("inlet_gate", False)
    assert command.reply_topic == "plant/replies/9"


@pytest.mark.parametrize(
    ("name", "body", "outcome", "words"),
    [
        ("set_heater", {"user": "op1", "action": {}}, OUTCOME_REJECTED, "not enabled"),
        ("set_valve", {"user": "eve", "action": {}}, OUTCOME_REJECTED, "may not command"),
        ("set_valve", b"\xff not json", OUTCOME_INVALID, "not JSON"),
        ("set_valve", [1, 2], OUTCOME_INVALID, "JSON object"),
        ("set_valve", {"action": {}}, OUTCOME_INVALID, "'user'"),
        ("set_valve", {"user": "op1", "action": "open"}, OUTCOME_INVALID, "'action'"),
        (
            "set_valve",
            {"user": "op1", "action": {"space": "inlet", "valve": "rough", "open": "yes"}},
            OUTCOME_INVALID,
            "true or false",
        ),
        (
            "set_valve",
            {"user": "op1", "action": {"space": "inlet", "valve": "exhaust", "open": True}},
            OUTCOME_INVALID,
            "one of rough",
        ),
        (
            "set_valve",
            {"user": "op1", "action": {"space": "inlet", "open": True}},
            OUTCOME_INVALID,
            "missing",
        ),
        (
            "set_valve",
            {"user": "op1", "action": {"type": "SetPort", "port": "x", "open": True}},
            OUTCOME_INVALID,
            "does not match",
        ),
        (
            "set_valve",
            {"user": "op1", "action": {"space": "inlet", "valve": "rough", "open": True, "force": 1}},
            OUTCOME_INVALID,
            "no field",
        ),
        (
            "set_valve",
            {"user": "op1", "action": {}, "reply_to": "depline/line1/state/inlet"},
            OUTCOME_INVALID,
            "reply_to",
        ),
        ("set_valve", {"user": "op1", "action": {}, "reply_to": "a/+/b"}, OUTCOME_INVALID, "reply_to"),
        ("set_valve", {"user": "op1", "action": {}, "id": [1]}, OUTCOME_INVALID, "'id'"),
    ],
)
def test_bad_command_messages_are_answered_not_raised(
    name: str, body: object, outcome: str, words: str
) -> None:
    rejected = _parse(name, body)
    assert rejected.outcome == outcome
    assert words in rejected.reason
    assert rejected.reply_topic == f"depline/line1/cmd/{name}/reply"


def test_oversized_payloads_and_non_finite_numbers_are_invalid() -> None:
    with pytest.raises(CommandRejected, match="exceeds"):
        parse_command(TOPICS, _mqtt(), "set_valve", b"{" + b" " * 5000 + b"}", max_bytes=4096)
    with pytest.raises(ValueError, match="finite number"):
        decode_action("set_gas_flow", {"space": "process", "flow_sccm": math.inf})
    with pytest.raises(ValueError, match="no action"):
        decode_action("open_everything", {})


def _msg(seq: int, lane: Lane, channel: tuple[str, str] | None = None, ts: float = 0.0) -> Outgoing:
    return Outgoing(seq, f"t/{channel or lane.value}", b"{}", False, lane, channel, ts)


def test_outbox_keeps_order_bounds_each_lane_and_records_the_telemetry_gap() -> None:
    box = Outbox({Lane.TELEMETRY: 3, Lane.RECORDS: 10})
    box.put(_msg(1, Lane.RECORDS))
    for seq in range(2, 8):
        box.put(_msg(seq, Lane.TELEMETRY, ("gauge", "p1"), ts=float(seq)))
    box.put(_msg(8, Lane.RECORDS))
    assert box.dropped == {Lane.TELEMETRY: 3, Lane.RECORDS: 0}
    gap = box.gaps[("gauge", "p1")]
    assert (gap.first_ts, gap.last_ts, gap.dropped) == (2.0, 4.0, 3)
    batch = box.head(3)
    assert [m.seq for m in batch] == [1, 5, 6]
    box.confirm(batch[:2])  # the broker acknowledged the first two only
    assert [m.seq for m in box.head(10)] == [6, 7, 8]


async def test_off_without_an_mqtt_table() -> None:
    config = load_line_config()
    assert config.mqtt is None
    ctl = LineController(config)
    try:
        bridge = MqttBridge(config, ctl)
        await bridge.start()
        assert not bridge.enabled
        await bridge.stop()
    finally:
        await ctl.devices.close()


async def test_unknown_command_names_in_the_config_are_refused() -> None:
    config = dataclasses.replace(load_line_config(), mqtt=_mqtt(("set_valve", "open_everything")))
    ctl = LineController(config)
    try:
        with pytest.raises(ConfigFileError, match=r"mqtt\.commands"):
            MqttBridge(config, ctl)
    finally:
        await ctl.devices.close()


# -- against the broker ------------------------------------------------------------------------------------


async def test_telemetry_arrives_with_the_json_shape(rig: Rig) -> None:
    topics = rig.topics
    async with Watcher(rig.broker, "viewer", [f"{topics.root}/telemetry/#", topics.status]) as plant:
        async with rig.bridge():
            messages = await plant.until(
                lambda ms: any(m.topic == topics.telemetry("inlet_dewpoint", "frost_point") for m in ms),
                "the inlet frost point",
            )
            await plant.until(lambda ms: bool(plant.on(topics.status)), "the online status")
        await plant.until(
            lambda ms: plant.on(topics.status)[-1].body["state"] == "offline", "the offline status on stop"
        )
    frost = next(m for m in messages if m.topic == topics.telemetry("inlet_dewpoint", "frost_point"))
    body = frost.body
    assert set(body) == {"seq", "ts", "value", "unit", "quality"}
    assert body["unit"] == "degC"
    assert body["quality"] == "ok"
    assert isinstance(body["value"], float)
    assert isinstance(body["ts"], float)
    devices = {d.name for d in rig.config.devices}
    for m in messages:
        if m.topic.startswith(f"{topics.root}/telemetry/"):
            device = m.topic.split("/")[3]
            assert device in devices
            assert m.body["value"] is not None or m.body["quality"] != "ok"
    statuses = [m.body for m in plant.on(topics.status)]
    assert statuses[0]["state"] == "online"
    assert statuses[-1]["reason"] == "stopped"
    per_topic_in_order(messages)


async def test_a_late_subscriber_sees_the_retained_station_states(rig: Rig) -> None:
    topics = rig.topics
    stations = rig.ctl.supervisor.stations
    async with rig.bridge() as bridge:
        state_topics = {topics.state(name) for name in stations}
        await wait_for(lambda: state_topics <= bridge.retained.keys(), "every station state published")
        await stations["inlet"].fire("open_outer_door")  # sealed -> vented: a change is published
        await wait_for(
            lambda: b'"vented"' in bridge.retained[topics.state("inlet")],
            "the inlet's new state acknowledged",
        )
        async with Watcher(rig.broker, "viewer", [f"{topics.root}/state/+"]) as late:
            await late.until(lambda ms: len(ms) >= len(stations), "one retained state per station")
    seen = {m.topic: m for m in late.messages}
    assert set(seen) == state_topics
    assert all(m.retain for m in seen.values())
    assert seen[topics.state("inlet")].body["state"] == "vented"
    assert seen[topics.state("process")].body == {
        "seq": seen[topics.state("process")].body["seq"],
        "ts": seen[topics.state("process")].body["ts"],
        "station": "process",
        "kind": "process_chamber",
        "state": stations["process"].state,
    }


async def test_alarms_are_retained_while_not_normal_and_cleared_after(rig: Rig) -> None:
    topics = rig.topics
    board = rig.ctl.alarms
    for alarm_id in ("test.leak", "test.marker"):
        board.define(AlarmDefinition(alarm_id, Severity.HIGH, f"{alarm_id} text", "guidance", latching=False))
    async with rig.bridge() as bridge:
        board.raise_alarm("test.leak", time.time(), {"pressure_pa": math.nan})
        board.raise_alarm("test.marker", time.time(), {})
        await wait_for(lambda: topics.alarm("test.marker") in bridge.retained, "the marker alarm")
        async with Watcher(rig.broker, "viewer", [topics.alarm("test.leak")]) as late:
            await late.until(lambda ms: len(ms) == 1, "the active alarm, retained")
        active = late.messages[0]
        assert active.retain
        assert active.body["alarm_id"] == "test.leak"
        assert active.body["to_state"] == "active_unacked"
        assert active.body["evidence"] == {"pressure_pa": None}  # NaN evidence is valid JSON
        async with Watcher(rig.broker, "viewer", [topics.alarm("test.leak")]) as live:
            await live.until(lambda ms: len(ms) == 1, "the retained alarm")
            board.clear("test.leak", time.time())
            await live.until(lambda ms: len(ms) == 3, "the normal record and the clearing")
        normal, cleared = live.messages[1:]
        assert normal.body["to_state"] == "normal"
        assert cleared.payload == b""
        # subscribing to the cleared topic first and the marker second: the marker's retained record
        # arrives after anything retained on the first, so its arrival proves the first had none
        async with Watcher(
            rig.broker, "viewer", [topics.alarm("test.leak"), topics.alarm("test.marker")]
        ) as w:
            await w.until(lambda ms: any(m.topic == topics.alarm("test.marker") for m in ms), "the marker")
        assert [m.topic for m in w.messages] == [topics.alarm("test.marker")]


def _command(user: str, action: dict[str, object], request_id: str, **extra: object) -> bytes:
    return json.dumps({"user": user, "action": action, "id": request_id, **extra}).encode()


async def test_an_allowed_user_commands_through_the_gate_and_gets_a_reply(rig: Rig) -> None:
    topics = rig.topics
    filters = [topics.reply("set_pump"), topics.event]
    async with Watcher(rig.broker, "op1", filters) as op1, rig.bridge():
        await wait_for(lambda: rig.online, "the bridge online")
        payload = _command("op1", {"space": "inlet", "running": True}, "c1", reason="start the inlet pump")
        await publish_as(rig.broker, "op1", topics.command("set_pump"), payload)
        await op1.until(lambda ms: bool(op1.on(topics.reply("set_pump"))), "the reply")
        await op1.until(
            lambda ms: any(m.topic == topics.event and m.body["origin"] == "mqtt" for m in ms), "the event"
        )
    reply = op1.on(topics.reply("set_pump"))[0].body
    assert reply["id"] == "c1"
    assert reply["outcome"] == "done"
    assert reply["user"] == "op1"
    assert reply["action"] == {"type": "SetPump", "space": "inlet", "running": True}
    record = next(r for r in rig.ctl.gate.records if r.command.origin == "mqtt")
    assert record.command.user == "op1"
    assert record.command.reason == "start the inlet pump"
    # the command user is a line user: the gate learns the role (maintenance mode admits engineers only)
    assert record.command.meta == {"topic": topics.command("set_pump"), "id": "c1", "role": "operator"}
    event = next(m.body for m in op1.messages if m.topic == topics.event and m.body["origin"] == "mqtt")
    assert event["command"] == {"type": "SetPump", "space": "inlet", "running": True}
    assert (event["user"], event["outcome"], event["reason"]) == ("op1", "done", "")


async def test_a_refused_command_replies_with_the_invariant(rig: Rig) -> None:
    topics = rig.topics
    async with Watcher(rig.broker, "op1", ["reply/op1/#"]) as op1, rig.bridge():
        await wait_for(lambda: rig.online, "the bridge online")
        payload = _command("op1", {"port": "inlet_gate", "open": True}, "c2", reply_to="reply/op1/c2")
        await publish_as(rig.broker, "op1", topics.command("set_port"), payload)
        await op1.until(lambda ms: bool(ms), "the reply on reply_to")
    reply = op1.messages[0]
    assert reply.topic == "reply/op1/c2"
    body = reply.body
    assert body["outcome"] == "refused"
    refusals = body["refusals"]
    assert isinstance(refusals, list)
    assert refusals[0]["invariant"] == "I2"
    assert "I2" in str(body["reason"])
    assert not rig.sim.plant.doors["inlet_gate"].is_open


async def test_unknown_users_unknown_commands_and_garbage_are_rejected_and_the_bridge_carries_on(
    rig: Rig,
) -> None:
    topics = rig.topics
    async with Watcher(rig.broker, "op1", [f"{topics.root}/cmd/+/reply"]) as op1, rig.bridge() as bridge:
        await wait_for(lambda: rig.online, "the bridge online")
        sends = [  # mallory may publish commands on the broker but is no command user of the line
            ("mallory", "set_pump", _command("mallory", {"space": "inlet", "running": True}, "unknown-user")),
            (
                "op1",
                "set_heater",
                _command("op1", {"space": "process", "heater": "sub", "setpoint_c": 90}, "off"),
            ),
            ("op1", "set_pump", b"{not json"),
            (
                "op1",
                "set_valve",
                _command("op1", {"space": "inlet", "valve": "rough", "open": 1}, "bad-type"),
            ),
            ("op1", "set_pump", _command("op1", {"space": "inlet", "running": True}, "good")),
        ]
        for sender, name, payload in sends:
            await publish_as(rig.broker, sender, topics.command(name), payload)
        await op1.until(lambda ms: len(ms) == len(sends), "a reply to every message")
    replies = {m.body["id"]: m.body for m in op1.messages}
    assert replies["unknown-user"]["outcome"] == OUTCOME_REJECTED
    assert replies["off"]["outcome"] == OUTCOME_REJECTED
    assert replies[None]["outcome"] == OUTCOME_INVALID
    assert replies["bad-type"]["outcome"] == OUTCOME_INVALID
    assert replies["good"]["outcome"] == "done"
    assert [r.command.user for r in rig.ctl.gate.records if r.command.origin == "mqtt"] == ["op1"]
    assert bridge.stats.commands_rejected == 4
    assert bridge.stats.commands_submitted == 1
    assert bridge.stats.crashes == 0


async def test_the_broker_acl_keeps_unauthorised_publishers_away_from_the_bridge(rig: Rig) -> None:
    topics = rig.topics
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            rig.broker.host, rig.broker.port, username="op1", password="wrong", timeout=3
        ):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(rig.broker.host, rig.broker.port, timeout=3):  # anonymous
            pass
    async with Watcher(rig.broker, "op1", [f"{topics.root}/cmd/+/reply"]) as op1, rig.bridge() as bridge:
        await wait_for(lambda: rig.online, "the bridge online")
        # viewer may read the line but not write its cmd topics: the broker acknowledges and discards
        await publish_as(
            rig.broker,
            "viewer",
            topics.command("set_pump"),
            _command("op1", {"space": "inlet", "running": True}, "v"),
        )
        # mosquitto handled the viewer's message before acknowledging it; the marker comes after it,
        # so had the viewer's reached the bridge, its reply would be there before the marker's
        await publish_as(
            rig.broker,
            "op1",
            topics.command("set_pump"),
            _command("op1", {"space": "inlet", "running": True}, "m"),
        )
        await op1.until(lambda ms: bool(ms), "the marker's reply")
    assert [m.body["id"] for m in op1.messages] == ["m"]
    assert bridge.stats.commands_received == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_broker_restart_is_survived_and_nothing_produced_meanwhile_is_lost(
    rig: Rig, sig: signal.Signals
) -> None:
    topics = rig.topics
    async with (
        Watcher(rig.broker, "viewer", [f"{topics.root}/#"], identifier="scada", persistent=True) as scada,
        rig.bridge() as bridge,
    ):
        await scada.until(lambda ms: any("/telemetry/" in m.topic for m in ms), "telemetry")
        await wait_for(lambda: rig.online, "the bridge online")
        await rig.broker.stop(sig)  # by PID; the broker saved the SCADA's session when it was made
        await wait_for(lambda: not rig.online, "the bridge noticing")
        down_seq = bridge.last_seq
        await wait_for(lambda: bridge.last_seq > down_seq + 50 and bridge.buffered > 0, "messages while down")
        up_seq = bridge.last_seq
        await rig.broker.start()  # the same port
        await wait_for(lambda: rig.online, "the bridge reconnected")
        produced_while_down = set(range(down_seq + 1, up_seq + 1))
        messages = await scada.until(
            lambda ms: produced_while_down <= {m.seq for m in ms}, "everything produced while down"
        )
    assert [ok for ok, _ in rig.health] == [True, False, True]
    assert bridge.stats.dropped_telemetry == 0
    assert bridge.stats.connects == 2
    per_topic_in_order(messages)
    per_topic_in_order(messages, key="ts")


async def test_an_overflow_drops_the_oldest_counts_them_and_the_archive_fills_the_gap(rig: Rig) -> None:
    topics = rig.topics
    archive = PollerTail(rig.ctl.poller)
    options = dataclasses.replace(FAST, telemetry_buffer=10)
    try:
        async with (
            Watcher(rig.broker, "viewer", [f"{topics.root}/#"], identifier="scada", persistent=True) as scada,
            rig.bridge(options=options, archive=archive) as bridge,
        ):
            await wait_for(lambda: rig.online, "the bridge online")
            await rig.broker.stop()
            await wait_for(lambda: not rig.online, "the bridge noticing")
            await wait_for(lambda: bridge.stats.dropped_telemetry > 200, "the telemetry lane overflowing")
            await rig.broker.start()
            await wait_for(lambda: rig.online, "the bridge reconnected")
            messages = await scada.until(
                lambda ms: any(m.payload and m.body.get("archived") for m in ms), "back-filled telemetry"
            )
            await wait_for(lambda: bridge.buffered == 0, "the outbox drained")
    finally:
        rig.ctl.poller.unsubscribe(archive.subscription)
    assert archive.queries, "the archive was asked"
    assert bridge.stats.gap_filled > 0
    # (with a 10-message lane the outbox overflows while connected too: those gaps wait for the next
    # connection, so `bridge.gaps` need not be empty here)
    online = [m.body for m in messages if m.topic == topics.status and m.body["state"] == "online"]
    dropped = online[-1]["dropped"]
    assert isinstance(dropped, dict)
    assert dropped["telemetry"] > 0
    filled = [m for m in messages if m.payload and m.body.get("archived")]
    assert all(m.body["seq"] is None and "/telemetry/" in m.topic for m in filled)
    per_topic_in_order(messages, key="ts")  # back-fill lands between what was sent and what was kept


BRIDGE_PROCESS = """
import asyncio, dataclasses, sys
from controller.config.line_config import MqttConfig, load_line_config
from controller.line.controller import LineController
from controller.mqtt.bridge import MqttBridge

async def main(port: int) -> None:
    mqtt = MqttConfig("127.0.0.1", port, "bridge", "bridge-pw")
    config = dataclasses.replace(load_line_config(), mqtt=mqtt)
    async with MqttBridge(config, LineController(config)):
        await asyncio.sleep(120)

asyncio.run(main(int(sys.argv[1])))
"""


def _spawn_bridge_process(port: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-c", BRIDGE_PROCESS, str(port)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()  # by PID: no DISCONNECT reaches the broker
    process.wait(timeout=10)


async def test_the_will_says_offline_when_the_bridge_process_dies(broker: MosquittoBroker) -> None:
    status = "depline/line1/status"
    assert PASSWORDS["bridge"] == "bridge-pw"
    process = _spawn_bridge_process(broker.port)
    try:
        async with Watcher(broker, "viewer", [status]) as plant:
            await plant.until(lambda ms: any(m.body["state"] == "online" for m in ms), "the bridge online")
            _kill(process)
            await plant.until(lambda ms: ms[-1].body["state"] == "offline", "the Will")
    finally:
        _kill(process)
    assert plant.messages[-1].body == {"state": "offline", "reason": "connection lost"}
    assert not plant.messages[-1].retain  # live delivery; the broker keeps it retained for late subscribers
    async with Watcher(broker, "viewer", [status]) as late:
        await late.until(lambda ms: bool(ms), "the retained status")
    assert late.messages[0].retain
    assert late.messages[0].body["state"] == "offline"
