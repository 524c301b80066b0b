"""The MQTT bridge: the line's telemetry, states, alarms and command records on the plant broker, and
operator commands from it into the command gate.

Off unless the line configuration has an `[mqtt]` table (DESIGN.md §5). Topic contract, with
``<root>`` = ``<topic_prefix>/<line name>``; every payload is UTF-8 JSON, QoS 1:

- ``<root>/status`` (retained): ``{"state": "online", "ts", "dropped": {"telemetry", "records"}}`` on
  every connection; the Will (sent by the broker if the bridge vanishes) and a clean stop leave
  ``{"state": "offline", "reason"}``.
- ``<root>/telemetry/<device>/<channel>``: ``{"seq", "ts", "value", "unit", "quality"}``. A non-finite
  value is ``null`` with the quality saying why (the driver's "over_range", "sensor_off" ...; an "ok"
  reading that is not finite becomes "error") and ``"nonfinite": "nan" | "inf" | "-inf"``. Archive
  back-fill adds ``"archived": true`` and has ``"seq": null``.
- ``<root>/state/<station>`` (retained): ``{"seq", "ts", "station", "kind", "state"}`` on every change.
- ``<root>/alarm/<alarm id>`` (retained while not normal, see below): ``{"seq", **AlarmRecord.as_dict()}``
  for every journal record.
- ``<root>/event``: every gate record, whatever its origin: ``{"seq", "ts", "command": {"type", ...},
  "user", "origin", "outcome", "reason", "refusals": [{"invariant", "rule", "reason"}],
  "request_reason", "duration_s"}``.
- ``<root>/cmd/<name>`` (in): ``{"user", "action": {"type"?, ...fields}, "id"?, "reply_to"?, "reason"?}``;
  the answer goes to ``<root>/cmd/<name>/reply`` or ``reply_to``: ``{"seq", "ts", "id", "command",
  "user", "outcome", "reason", "refusals", "error", "action"}`` with outcome "done", "refused",
  "failed" (the gate's) or "rejected", "invalid" (the bridge's).

``seq`` numbers every message the bridge produces, in production order; it restarts at 1 when the
bridge does (the "online" status marks that).

Decisions, and why:

- **Alarms are retained while they are not normal** (on display or shelved): a SCADA that connects
  late sees exactly the alarms an operator would see. The record that returns an alarm to normal is
  published live (not retained) and followed by an empty retained payload that clears the topic;
  subscribers ignore empty payloads.
- **Telemetry is paced per channel**, because the poller runs interlock devices at 4-10 Hz and a
  plant broker does not need that: a channel is published when its value changed and at least
  `telemetry_min_interval_s` (1 s) passed since its last publication (the latest value is kept and
  sent when the interval ends, so a change is never lost, only coalesced); a change of quality is
  published at once, since a sensor going bad must not wait; a channel that stays unchanged is
  re-published every `telemetry_heartbeat_s` (10 s) with the poller's latest value aged against the
  stale limit, so a device that stops answering shows "stale" on MQTT too.
- **One supervised connection task** with reconnect back-off (aiomqtt has no auto-reconnect,
  stack.md §2): a fresh client per attempt, so paho never re-sends behind our back. The controller
  never waits for MQTT: producers only append to the outbox. `on_health(ok, detail)` is called on
  every change of connection health (the lead maps it to an alarm).
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
- **Commands**: accepted only when `<name>` is in `mqtt.commands` and the payload's user is in
  `mqtt.command_users`; every accepted command goes through `gate.submit(Command(action, user,
  "mqtt"))` and its outcome is the reply. Command names are the action types in snake case
  (`set_valve` -> `SetValve`); the payload's `action.type` may be omitted and must match if given.
  WHO may publish is the broker's job (password file + ACL on `<root>/cmd/+`): MQTT 3.1.1 does not
  tell a subscriber who published, so the payload's user is a claim the ACL makes trustworthy only
  as far as each command account is one person. `reply_to` may not point into the line's own tree
  (it could forge a state or an alarm) except below the default reply topic.
  Commands run one at a time in their own task, so a command in the gate is never cancelled by a
  lost connection; its reply waits in the outbox instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import heapq
import itertools
import json
import logging
import math
import re
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import aiomqtt

from controller.config.line_config import LineConfig, MqttConfig
from controller.errors import ConfigFileError
from controller.line.actions import Action, Command
from controller.line.alarm_states import AlarmState
from controller.line.alarms import AlarmRecord
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.poller import PollEvent, Sample, Subscription, SubscriptionClosed
from drivers.reading import Quality, Reading

log = logging.getLogger(__name__)

QOS: Final = 1
SUBSCRIBER: Final = "mqtt"
OUTCOME_REJECTED: Final = "rejected"  # the bridge did not accept it (command or user not enabled, busy)
OUTCOME_INVALID: Final = "invalid"  # the payload could not be read as a command
ACTION_TYPES: Final[Mapping[str, type[Any]]] = {cls.__name__: cls for cls in typing.get_args(Action)}


def command_name(action_type: str) -> str:
    """`SetGasFlow` -> `set_gas_flow`: the `<name>` of its command topic."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action_type).lower()


COMMAND_TYPES: Final[Mapping[str, type[Any]]] = {command_name(n): cls for n, cls in ACTION_TYPES.items()}


# -- options, stats, the archive hook ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    """Tuning that is not plant configuration (the config file says where the broker is, not this)."""

    telemetry_min_interval_s: float = 1.0
    telemetry_heartbeat_s: float = 10.0
    tick_s: float = 0.25  # pacing and station-state checks; also the bound on every idle wait
    telemetry_buffer: int = 20_000
    record_buffer: int = 5_000
    publish_batch: int = 20  # paho's default in-flight window
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    keepalive_s: int = 10  # also how long a silently dead broker can go unnoticed (1.5 x)
    operation_timeout_s: float = 5.0  # CONNACK, PUBACK, SUBACK
    command_queue: int = 100
    max_command_bytes: int = 16_384
    archive_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0  # for the command in the gate and for flushing the outbox on stop
    client_id: str = ""  # default: depline-<line>-bridge

    def __post_init__(self) -> None:
        positive = ("telemetry_min_interval_s", "telemetry_heartbeat_s", "tick_s", "reconnect_min_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if min(self.telemetry_buffer, self.record_buffer, self.publish_batch, self.command_queue) < 1:
            raise ValueError("buffer sizes, publish_batch and command_queue must be >= 1")


@dataclass(slots=True)
class BridgeStats:
    """Counters for the HMI and the health endpoint; `dropped_*` are lifetime totals."""

    produced: int = 0
    published: int = 0
    dropped_telemetry: int = 0
    dropped_records: int = 0
    gap_filled: int = 0
    connects: int = 0
    connection_failures: int = 0
    commands_received: int = 0
    commands_submitted: int = 0
    commands_rejected: int = 0
    crashes: int = 0


class SampleArchive(Protocol):
    """Where the bridge back-fills telemetry it had to drop (the historian implements it)."""

    async def samples_since(self, ts: float) -> Sequence[Sample]:
        """Every sample with `reading.ts >= ts` the archive holds, in any order (the bridge sorts)."""
        ...


HealthCallback = Callable[[bool, str], None]


# -- topics and payloads (pure) ------------------------------------------------------------------------------


def _level(text: str) -> str:
    """One topic level: the separators and wildcards MQTT forbids in a name become '_'."""
    return re.sub(r"[/+#\x00]", "_", text) or "_"


@dataclass(frozen=True, slots=True)
class Topics:
    root: str

    @classmethod
    def for_line(cls, config: LineConfig, mqtt: MqttConfig) -> Topics:
        prefix = mqtt.topic_prefix
        if not prefix or any(c in prefix for c in "+#\x00") or "" in prefix.split("/"):
            raise ConfigFileError(
                config.path, "mqtt.topic_prefix", prefix, "topic levels without '+', '#' or empty levels"
            )
        if not config.name or any(c in config.name for c in "/+#\x00"):
            raise ConfigFileError(
                config.path, "line.name", config.name, "one MQTT topic level: no '/', '+', '#'"
            )
        return cls(f"{prefix}/{config.name}")

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    def telemetry(self, device: str, channel: str) -> str:
        return f"{self.root}/telemetry/{_level(device)}/{_level(channel)}"

    def state(self, station: str) -> str:
        return f"{self.root}/state/{_level(station)}"

    def alarm(self, alarm_id: str) -> str:
        return f"{self.root}/alarm/{_level(alarm_id)}"

    @property
    def event(self) -> str:
        return f"{self.root}/event"

    @property
    def commands(self) -> str:
        return f"{self.root}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def reply(self, name: str) -> str:
        return f"{self.root}/cmd/{name}/reply"


def plain(value: object) -> object:
    """JSON-safe values: non-finite floats become null, enums their value, anything else unknown a str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def encode(obj: Mapping[str, object]) -> bytes:
    return json.dumps(plain(obj), separators=(",", ":"), allow_nan=False).encode()


def telemetry_payload(reading: Reading, seq: int | None, *, archived: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "seq": seq,
        "ts": reading.ts,
        "value": reading.value,
        "unit": reading.unit,
        "quality": reading.quality.value,
    }
    if not math.isfinite(reading.value):
        body["value"] = None
        body["nonfinite"] = str(reading.value)  # 'nan', 'inf', '-inf'
        if reading.quality is Quality.OK:
            body["quality"] = Quality.ERROR.value
    if archived:
        body["archived"] = True
    return body


def action_dict(action: Action) -> dict[str, object]:
    return {"type": type(action).__name__, **dataclasses.asdict(action)}


def gate_record_payload(record: GateRecord, seq: int) -> dict[str, object]:
    verdict = record.verdict
    reason = verdict.reason if not verdict.allowed else record.error
    return {
        "seq": seq,
        "ts": record.ts,
        "command": action_dict(record.command.action),
        "user": record.command.user,
        "origin": record.command.origin,
        "outcome": record.outcome,
        "reason": reason,
        "refusals": [
            {"invariant": r.invariant, "rule": r.rule, "reason": r.reason} for r in verdict.refusals
        ],
        "request_reason": record.command.reason,
        "duration_s": record.duration_s,
    }


# -- commands (pure) -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttCommand:
    """A command the bridge accepted: it goes to the gate, its outcome to `reply_topic`."""

    name: str
    user: str
    action: Action
    reply_topic: str
    request_id: str | int | None = None
    reason: str = ""


class CommandRejected(Exception):
    """A command message the bridge answers without asking the gate (`outcome` rejected or invalid)."""

    def __init__(
        self,
        outcome: str,
        reason: str,
        reply_topic: str,
        *,
        request_id: str | int | None = None,
        user: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.reply_topic = reply_topic
        self.request_id = request_id
        self.user = user


def parse_command(
    topics: Topics, mqtt: MqttConfig, name: str, payload: bytes, *, max_bytes: int
) -> MqttCommand:
    """Read one command message; raises `CommandRejected` with what to tell the sender."""
    reply = topics.reply(name)

    def invalid(why: str, request_id: str | int | None = None, user: str | None = None) -> CommandRejected:
        return CommandRejected(OUTCOME_INVALID, why, reply, request_id=request_id, user=user)

    if len(payload) > max_bytes:
        raise invalid(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("payload must be a JSON object")
    request_id = body.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise invalid("'id' must be a string or an integer")
    raw_user = body.get("user")
    user = raw_user if isinstance(raw_user, str) else None
    reply = _reply_topic(topics, name, body.get("reply_to"), request_id, user)
    if name not in mqtt.commands:
        enabled = ", ".join(mqtt.commands) or "none"
        raise CommandRejected(
            OUTCOME_REJECTED,
            f"command {name!r} is not enabled over MQTT (enabled: {enabled})",
            reply,
            request_id=request_id,
            user=user,
        )
    if not user:
        raise CommandRejected(
            OUTCOME_INVALID, "'user' must be a non-empty string", reply, request_id=request_id
        )
    if user not in mqtt.command_users:
        raise CommandRejected(
            OUTCOME_REJECTED,
            f"user {user!r} may not command over MQTT",
            reply,
            request_id=request_id,
            user=user,
        )
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise CommandRejected(
            OUTCOME_INVALID, "'reason' must be a string", reply, request_id=request_id, user=user
        )
    try:
        action = decode_action(name, body.get("action"))
    except ValueError as exc:
        raise CommandRejected(OUTCOME_INVALID, str(exc), reply, request_id=request_id, user=user) from None
    unknown = sorted(set(body) - {"user", "action", "id", "reply_to", "reason"})
    if unknown:
        raise CommandRejected(
            OUTCOME_INVALID, f"unknown key(s) {', '.join(unknown)}", reply, request_id=request_id, user=user
        )
    return MqttCommand(name, user, action, reply, request_id, reason)


def _reply_topic(
    topics: Topics, name: str, reply_to: object, request_id: str | int | None, user: str | None
) -> str:
    default = topics.reply(name)
    if reply_to is None:
        return default
    own_tree = reply_to.startswith(f"{topics.root}/") if isinstance(reply_to, str) else False
    if (
        not isinstance(reply_to, str)
        or not reply_to
        or len(reply_to) > 1024
        or any(c in reply_to for c in "+#\x00")
        or reply_to.startswith("$")
        or (own_tree and reply_to != default and not reply_to.startswith(f"{default}/"))
    ):
        raise CommandRejected(
            OUTCOME_INVALID,
            f"'reply_to' must be a topic name without wildcards, outside {topics.root}/ or below {default}/",
            default,
            request_id=request_id,
            user=user,
        )
    return reply_to


def decode_action(name: str, raw: object) -> Action:
    """The action a command names, strictly typed from JSON: a wrong type is an error, not a guess."""
    cls = COMMAND_TYPES.get(name)
    if cls is None:
        raise ValueError(f"no action is called {name!r}")
    if not isinstance(raw, dict):
        raise ValueError("'action' must be a JSON object")
    given_type = raw.get("type", cls.__name__)
    if given_type != cls.__name__:
        raise ValueError(f"action type {given_type!r} does not match command {name!r} ({cls.__name__})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields) - {"type"})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; it has {', '.join(fields)}")
    kwargs: dict[str, object] = {}
    for fname, f in fields.items():
        if fname in raw:
            kwargs[fname] = _field_value(cls.__name__, fname, hints[fname], raw[fname])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{cls.__name__}.{fname} is missing")
    action: Action = cls(**kwargs)
    return action


def _field_value(type_name: str, fname: str, hint: object, value: object) -> object:
    where = f"{type_name}.{fname}"
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{where} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where} must be a non-empty string, not {value!r}")
        return value
    raise ValueError(f"{where}: fields of type {hint} cannot be set over MQTT")


def reply_payload(
    seq: int,
    *,
    name: str,
    request_id: str | int | None,
    user: str | None,
    outcome: str,
    reason: str,
    record: GateRecord | None = None,
) -> dict[str, object]:
    refusals = record.verdict.refusals if record is not None else ()
    return {
        "seq": seq,
        "ts": time.time(),
        "id": request_id,
        "command": name,
        "user": user,
        "outcome": outcome,
        "reason": reason,
        "refusals": [{"invariant": r.invariant, "rule": r.rule, "reason": r.reason} for r in refusals],
        "error": record.error if record is not None else "",
        "action": action_dict(record.command.action) if record is not None else None,
    }


# -- the outbox ----------------------------------------------------------------------------------------------


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


# -- telemetry pacing ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Channel:
    published: Reading | None = None
    published_mono: float = -math.inf
    pending: Reading | None = None


def _same_value(a: Reading, b: Reading) -> bool:
    return a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))


# -- the bridge ----------------------------------------------------------------------------------------------


class MqttBridge:
    """See the module docstring. `start()`/`stop()`, or `async with`; nothing happens without `[mqtt]`."""

    def __init__(
        self,
        config: LineConfig,
        controller: LineController,
        *,
        archive: SampleArchive | None = None,
        on_health: HealthCallback | None = None,
        options: BridgeOptions | None = None,
    ) -> None:
        self.config = config
        self.mqtt = config.mqtt
        self.controller = controller
        self.archive = archive
        self.on_health = on_health
        self.options = options if options is not None else BridgeOptions()
        self.stats = BridgeStats()
        self.health: tuple[bool | None, str] = (None, "not started")
        self.topics = Topics.for_line(config, self.mqtt) if self.mqtt is not None else Topics("")
        if self.mqtt is not None:
            unknown = [n for n in self.mqtt.commands if n not in COMMAND_TYPES]
            if unknown:
                raise ConfigFileError(
                    config.path, "mqtt.commands", unknown, f"command names are {', '.join(COMMAND_TYPES)}"
                )
        self._outbox = Outbox(
            {Lane.TELEMETRY: self.options.telemetry_buffer, Lane.RECORDS: self.options.record_buffer}
        )
        self._last_seq = 0
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._stations: dict[str, str] = {}
        self._retained: dict[str, Outgoing] = {}  # last published retained payload per topic
        self._last_published_ts: dict[tuple[str, str], float] = {}
        self._commands: asyncio.Queue[MqttCommand] = asyncio.Queue(self.options.command_queue)
        self._subscription: Subscription | None = None
        self._unsubscribe_alarms: Callable[[], None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._closing = asyncio.Event()  # stop(): no new commands or samples
        self._draining = asyncio.Event()  # stop(): producers are done, flush and disconnect

    @property
    def enabled(self) -> bool:
        return self.mqtt is not None

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest message produced (0 before the first)."""
        return self._last_seq

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    @property
    def retained(self) -> dict[str, bytes]:
        """Retained payloads the broker acknowledged, by topic: what a late subscriber gets (the bridge
        re-sends them on every reconnect)."""
        return {topic: m.payload for topic, m in self._retained.items()}

    @property
    def buffered(self) -> int:
        return len(self._outbox)

    @property
    def gaps(self) -> dict[tuple[str, str], Gap]:
        return dict(self._outbox.gaps)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.mqtt is None:
            log.info("MQTT is off: no [mqtt] table in the line configuration")
            return
        if self._running:
            raise RuntimeError("MQTT bridge already started")
        self._running = True
        self._subscription = self.controller.poller.subscribe(SUBSCRIBER, maxsize=10_000)
        self.controller.gate.subscribe(self._on_gate_record)
        self._unsubscribe_alarms = self.controller.alarms.subscribe(self._on_alarm_record)
        for name, body in (
            ("produce", self._produce),
            ("commands", self._run_commands),
            ("connection", self._run_connection),
        ):
            self._tasks[name] = asyncio.create_task(self._supervise(name, body), name=f"mqtt-bridge:{name}")

    async def stop(self) -> None:
        """Finish the command in the gate, flush what can be flushed, say offline, disconnect.

        Each step is bounded by `stop_timeout_s`; whatever is still queued after that is lost (and
        counted as buffered in `stats`, not as dropped)."""
        if not self._running:
            return
        self._running = False  # gate and alarm callbacks are ignored from here (the gate has no unsubscribe)
        self._closing.set()
        if self._unsubscribe_alarms is not None:
            self._unsubscribe_alarms()
        self.controller.poller.unsubscribe(SUBSCRIBER)
        await self._end("produce", cancel=True)
        await self._end("commands", cancel=False)
        self._draining.set()
        await self._end("connection", cancel=False)
        for _ in range(3):  # aiomqtt cancels its keepalive task thread-safely: let that callback run
            await asyncio.sleep(0)

    async def _end(self, name: str, *, cancel: bool) -> None:
        task = self._tasks.pop(name, None)
        if task is None:
            return
        if not cancel:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.options.stop_timeout_s)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self.options.stop_timeout_s):
                    await task

    async def __aenter__(self) -> MqttBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Keep a task alive across bugs (logged with traceback and counted), with a growing back-off."""
        delay = self.options.reconnect_min_s
        while True:
            try:
                await body()
                return
            except Exception as exc:
                self.stats.crashes += 1
                log.exception(
                    "MQTT bridge task crashed; restarting", extra={"task": name, "backoff_s": delay}
                )
                if name == "connection":
                    self._set_health(False, f"bridge fault: {type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_max_s)

    def _set_health(self, ok: bool, detail: str) -> None:
        if self.health[0] is ok:
            return
        self.health = (ok, detail)
        (log.info if ok else log.warning)("MQTT broker %s", detail, extra={"mqtt_ok": ok})
        if self.on_health is not None:
            try:
                self.on_health(ok, detail)
            except Exception:
                log.exception("MQTT health callback failed")

    # -- producing (never waits for the broker) --------------------------------------------------------------

    def _enqueue(
        self,
        topic: str,
        body: dict[str, object],
        *,
        retain: bool,
        lane: Lane = Lane.RECORDS,
        channel: tuple[str, str] | None = None,
        ts: float = 0.0,
    ) -> None:
        seq = body["seq"]
        assert isinstance(seq, int), "every live payload carries its sequence number"
        self._put(Outgoing(seq, topic, encode(body), retain, lane, channel, ts))

    def _put(self, message: Outgoing) -> None:
        self.stats.produced += 1
        self._outbox.put(message)
        self.stats.dropped_telemetry = self._outbox.dropped[Lane.TELEMETRY]
        self.stats.dropped_records = self._outbox.dropped[Lane.RECORDS]

    def _on_gate_record(self, record: GateRecord) -> None:
        if self._running:
            self._enqueue(self.topics.event, gate_record_payload(record, self._next_seq()), retain=False)

    def _on_alarm_record(self, record: AlarmRecord) -> None:
        if not self._running:
            return
        topic = self.topics.alarm(record.alarm_id)
        seq = self._next_seq()
        body: dict[str, object] = {"seq": seq, **record.as_dict()}
        if record.to_state is AlarmState.NORMAL:
            self._enqueue(topic, body, retain=False)
            # clears the retained record; it shares the record's seq so the numbers stay contiguous
            self._put(Outgoing(seq, topic, b"", True, Lane.RECORDS))
        else:
            self._enqueue(topic, body, retain=True)

    async def _produce(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        while not self._closing.is_set():
            try:
                self._on_poll_event(await subscription.get(self.options.tick_s))
                while (event := subscription.get_nowait()) is not None:
                    self._on_poll_event(event)
            except TimeoutError:
                pass
            except SubscriptionClosed:
                if not self._closing.is_set():
                    log.info("poller stopped: the MQTT bridge publishes no more telemetry")
                return
            self._tick(time.monotonic())

    def _on_poll_event(self, event: PollEvent) -> None:
        if isinstance(event, Sample):
            self._on_sample(event.device, event.channel, event.reading, time.monotonic())
        # device faults and recoveries reach MQTT as the supervisor's comms alarms

    def _on_sample(self, device: str, channel: str, reading: Reading, now: float) -> None:
        state = self._channels.setdefault((device, channel), _Channel())
        last = state.published
        if last is not None and reading.mono <= last.mono:
            return  # a heartbeat already sent the poller's newer value: never go back in time
        if last is None or reading.quality is not last.quality:
            self._publish_sample(device, channel, state, reading, now)
        elif now - state.published_mono >= self.options.telemetry_min_interval_s:
            if (
                not _same_value(reading, last)
                or now - state.published_mono >= self.options.telemetry_heartbeat_s
            ):
                self._publish_sample(device, channel, state, reading, now)
            else:
                state.pending = None
        else:
            state.pending = None if _same_value(reading, last) else reading

    def _tick(self, now: float) -> None:
        """Coalesced changes whose interval has passed, heartbeats, and station states."""
        opts = self.options
        for (device, channel), state in self._channels.items():
            since = now - state.published_mono
            if state.pending is not None and since >= opts.telemetry_min_interval_s:
                self._publish_sample(device, channel, state, state.pending, now)
            elif state.pending is None and since >= opts.telemetry_heartbeat_s:
                latest = self.controller.poller.latest(device, channel, now_mono=now)
                if latest is not None:
                    self._publish_sample(device, channel, state, latest, now)
        for name, station in self.controller.supervisor.stations.items():
            if self._stations.get(name) != station.state:
                self._stations[name] = station.state
                body: dict[str, object] = {
                    "seq": self._next_seq(),
                    "ts": time.time(),
                    "station": name,
                    "kind": station.kind,
                    "state": station.state,
                }
                self._enqueue(self.topics.state(name), body, retain=True)

    def _publish_sample(
        self, device: str, channel: str, state: _Channel, reading: Reading, now: float
    ) -> None:
        state.published, state.published_mono, state.pending = reading, now, None
        self._enqueue(
            self.topics.telemetry(device, channel),
            telemetry_payload(reading, self._next_seq()),
            retain=False,
            lane=Lane.TELEMETRY,
            channel=(device, channel),
            ts=reading.ts,
        )

    # -- commands --------------------------------------------------------------------------------------------

    def _on_command_message(self, message: aiomqtt.Message) -> None:
        """Runs in the receive loop: never raises for anything a sender can put in a message."""
        assert self.mqtt is not None
        name = str(message.topic).rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        self.stats.commands_received += 1
        try:
            if self._closing.is_set():
                raise CommandRejected(OUTCOME_REJECTED, "the bridge is stopping", self.topics.reply(name))
            command = parse_command(
                self.topics, self.mqtt, name, bytes(payload), max_bytes=self.options.max_command_bytes
            )
            try:
                self._commands.put_nowait(command)
            except asyncio.QueueFull:
                raise CommandRejected(
                    OUTCOME_REJECTED,
                    f"{self.options.command_queue} commands are already waiting",
                    command.reply_topic,
                    request_id=command.request_id,
                    user=command.user,
                ) from None
        except CommandRejected as rejected:
            self.stats.commands_rejected += 1
            log.warning(
                "MQTT command rejected",
                extra={"command": name, "outcome": rejected.outcome, "reason": rejected.reason},
            )
            body = reply_payload(
                self._next_seq(),
                name=name,
                request_id=rejected.request_id,
                user=rejected.user,
                outcome=rejected.outcome,
                reason=rejected.reason,
            )
            self._enqueue(rejected.reply_topic, body, retain=False)

    async def _run_commands(self) -> None:
        while not self._closing.is_set():
            try:
                async with asyncio.timeout(self.options.tick_s):
                    command = await self._commands.get()
            except TimeoutError:
                continue
            meta = {"topic": self.topics.command(command.name)}
            if command.request_id is not None:
                meta["id"] = str(command.request_id)
            # the gate bounds its own lock wait and execution; an outer timeout here would cancel an
            # actuation half-way, which is worse than waiting for the gate's own verdict
            record = await self.controller.gate.submit(
                Command(command.action, command.user, "mqtt", command.reason, meta)
            )
            self.stats.commands_submitted += 1
            reason = record.verdict.reason if not record.verdict.allowed else record.error or "done"
            body = reply_payload(
                self._next_seq(),
                name=command.name,
                request_id=command.request_id,
                user=command.user,
                outcome=record.outcome,
                reason=reason,
                record=record,
            )
            self._enqueue(command.reply_topic, body, retain=False)

    # -- the connection --------------------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        mqtt = self.mqtt
        assert mqtt is not None
        will = aiomqtt.Will(
            self.topics.status,
            encode({"state": "offline", "reason": "connection lost"}),
            qos=QOS,
            retain=True,
        )
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            username=mqtt.username or None,
            password=mqtt.password or None,
            identifier=self.options.client_id or f"depline-{self.config.name}-bridge",
            will=will,
            keepalive=self.options.keepalive_s,
            timeout=self.options.operation_timeout_s,
            logger=logging.getLogger(f"{__name__}.client"),
            # paho leaves Nagle on, so a small publication written while the previous one is not yet
            # ACKed by TCP can wait for a delayed ACK (40 ms on Linux). The broker's direction needs
            # `set_tcp_nodelay true` in mosquitto.conf: bench/mqtt.py shows those 40 ms steps without it.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        client.pending_calls_threshold = 2 * self.options.publish_batch  # batches are ours, not a leak
        return client

    async def _run_connection(self) -> None:
        mqtt = self.mqtt
        assert mqtt is not None
        backoff = self.options.reconnect_min_s
        where = f"{mqtt.host}:{mqtt.port}"
        while not self._draining.is_set():
            detail = ""
            try:
                async with self._client() as client:
                    self.stats.connects += 1
                    backoff = self.options.reconnect_min_s
                    await self._session(client, where)
                return
            except* aiomqtt.MqttError as group:
                detail = "; ".join(f"{type(e).__name__}: {e}" for e in group.exceptions)
            self.stats.connection_failures += 1
            self._set_health(False, f"lost or refused at {where}: {detail}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._draining.wait()
            backoff = min(backoff * 2, self.options.reconnect_max_s)

    async def _session(self, client: aiomqtt.Client, where: str) -> None:
        """The receiver runs from the start: it is what notices a lost connection at once (a publish
        only notices when its acknowledgement times out)."""
        async with asyncio.TaskGroup() as group:
            receiver = group.create_task(self._receive(client), name="mqtt-bridge:receive")
            group.create_task(self._publish(client, receiver, where), name="mqtt-bridge:publish")

    async def _publish(self, client: aiomqtt.Client, receiver: asyncio.Task[None], where: str) -> None:
        dropped = {"telemetry": self.stats.dropped_telemetry, "records": self.stats.dropped_records}
        online = {"state": "online", "ts": time.time(), "dropped": dropped}
        await client.publish(self.topics.status, encode(online), qos=QOS, retain=True)
        retained = sorted(self._retained.values(), key=lambda m: m.seq)
        for i in range(0, len(retained), self.options.publish_batch):
            await self._publish_batch(client, retained[i : i + self.options.publish_batch])
        await self._fill_gaps(client)
        assert self.mqtt is not None
        if self.mqtt.commands:
            await client.subscribe(self.topics.commands, qos=QOS)
        self._set_health(True, f"connected to {where}")
        await self._publish_until_drained(client)
        receiver.cancel()

    async def _receive(self, client: aiomqtt.Client) -> None:
        # no timeout of ours: the loop ends when the connection does, which the keepalive bounds
        async for message in client.messages:
            if message.topic.matches(self.topics.commands):
                self._on_command_message(message)

    async def _publish_until_drained(self, client: aiomqtt.Client) -> None:
        while True:
            batch = self._outbox.head(self.options.publish_batch)
            if batch:
                await self._publish_batch(client, batch)
                self._outbox.confirm(batch)
            elif self._draining.is_set():
                break
            else:
                await self._outbox.wait(self.options.tick_s)
        stopped = {"state": "offline", "reason": "stopped", "ts": time.time()}
        await client.publish(self.topics.status, encode(stopped), qos=QOS, retain=True)

    async def _publish_batch(self, client: aiomqtt.Client, batch: Sequence[Outgoing]) -> None:
        """Publish in order (paho sends them in call order); raise on the first that was not acknowledged.

        A message counts as possibly published for the back-fill's ordering as soon as it is handed to
        the client: the broker may have delivered it although its acknowledgement was lost with the
        connection, and back-filling older readings after it would reorder the channel."""
        for message in batch:
            if message.channel is not None:
                seen = self._last_published_ts.get(message.channel, -math.inf)
                self._last_published_ts[message.channel] = max(seen, message.ts)
        results = await asyncio.gather(
            *(client.publish(m.topic, m.payload, qos=QOS, retain=m.retain) for m in batch),
            return_exceptions=True,
        )
        for message, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            self.stats.published += 1
            if message.retain:
                self._retained[message.topic] = message

    async def _fill_gaps(self, client: aiomqtt.Client) -> None:
        """Back-fill dropped telemetry from the archive, before anything newer of those channels goes out."""
        gaps = {key: dataclasses.replace(gap) for key, gap in self._outbox.gaps.items()}  # a snapshot
        if not gaps:
            return
        messages: list[Outgoing] = []
        if self.archive is None:
            log.warning(
                "telemetry was dropped and there is no archive to fill the gap", extra={"channels": len(gaps)}
            )
        else:
            try:
                async with asyncio.timeout(self.options.archive_timeout_s):
                    samples = await self.archive.samples_since(min(g.first_ts for g in gaps.values()))
            except Exception:
                log.exception("archive back-fill failed; the gap stays open until the next connection")
                return
            messages = self._gap_messages(gaps, samples)
        for i in range(0, len(messages), self.options.publish_batch):
            batch = messages[i : i + self.options.publish_batch]
            await self._publish_batch(client, batch)
            self.stats.gap_filled += len(batch)
        for key, gap in gaps.items():
            if self._outbox.gaps.get(key) == gap:  # a gap that grew meanwhile stays for the next time
                del self._outbox.gaps[key]

    def _gap_messages(self, gaps: Mapping[tuple[str, str], Gap], samples: Sequence[Sample]) -> list[Outgoing]:
        last: dict[tuple[str, str], float] = {}
        messages: list[Outgoing] = []
        for sample in sorted(samples, key=lambda s: s.reading.ts):
            key = (sample.device, sample.channel)
            gap = gaps.get(key)
            ts = sample.reading.ts
            if gap is None or not gap.first_ts <= ts <= gap.last_ts:
                continue
            if ts <= self._last_published_ts.get(key, -math.inf):
                continue  # the channel already published something newer: filling it in now would reorder
            if ts - last.get(key, -math.inf) < self.options.telemetry_min_interval_s:
                continue  # paced like live telemetry
            last[key] = ts
            body = telemetry_payload(sample.reading, None, archived=True)
            topic = self.topics.telemetry(*key)
            messages.append(Outgoing(0, topic, encode(body), False, Lane.TELEMETRY, key, ts))
        return messages
