"""The MQTT bridge itself: it produces the line's messages into the outbox, publishes them over one
supervised connection, and runs the commands it receives (the contract is in the package docstring).

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
  never waits for MQTT: producers only append to the outbox (see `outbox` for its order and bounds).
  `on_health(ok, detail)` is called on every change of connection health (the lead maps it to an
  alarm).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiomqtt

from controller.config.broker_tls import BrokerTls, BrokerTlsError, broker_tls_context
from controller.config.line_config import LineConfig
from controller.errors import ConfigFileError
from controller.line.actions import Command
from controller.line.alarm_states import AlarmState
from controller.line.alarms import AlarmRecord
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.poller import PollEvent, Sample, Subscription, SubscriptionClosed
from controller.mqtt.commands import (
    COMMAND_TYPES,
    OUTCOME_REJECTED,
    CommandRejected,
    MqttCommand,
    parse_command,
    reply_payload,
)
from controller.mqtt.options import BridgeOptions, BridgeStats, HealthCallback, SampleArchive
from controller.mqtt.outbox import Gap, Lane, Outbox, Outgoing
from controller.mqtt.payloads import encode, gate_record_payload, telemetry_payload
from controller.mqtt.topics import Topics
from drivers.reading import Reading

log = logging.getLogger(__name__)

QOS: Final = 1
SUBSCRIBER: Final = "mqtt"


# -- telemetry pacing ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Channel:
    published: Reading | None = None
    published_mono: float = -math.inf
    pending: Reading | None = None


def _same_value(a: Reading, b: Reading) -> bool:
    return a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))


# -- the bridge ----------------------------------------------------------------------------------------------


def _tls_context(config: LineConfig, tls: BrokerTls | None) -> ssl.SSLContext | None:
    """Built again here (the files were checked when the configuration was read, but may have changed
    since): one context for every connection attempt."""
    if tls is None:
        return None
    try:
        return broker_tls_context(tls)
    except BrokerTlsError as exc:
        raise ConfigFileError(config.path, f"mqtt.{exc.field}", exc.value, str(exc)) from None


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
        self._roles = {u.name: u.role for u in config.users}  # a command user who is a line user has a role
        self.archive = archive
        self.on_health = on_health
        self.options = options if options is not None else BridgeOptions()
        self.stats = BridgeStats()
        self.health: tuple[bool | None, str] = (None, "not started")
        self.topics = Topics.for_line(config, self.mqtt) if self.mqtt is not None else Topics("")
        self._tls_context = _tls_context(config, self.mqtt.tls) if self.mqtt is not None else None
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
            meta = {"topic": self.topics.command(command.name), "role": self._roles.get(command.user, "")}
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
            tls_context=self._tls_context,
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
