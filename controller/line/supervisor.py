"""The supervisor: permissives evaluated continuously, alarms raised, the ledger kept, faults made safe.

It wakes on every batch of fresh samples from the poller, builds the line state, and:
- records atmosphere changes around exposed items in the ledger (and raises a critical alarm if an
  exposed item ever sits in something not safe);
- runs `interlocks.watch` and sends each safe action through the *same* gate as any command (origin
  "interlock"), raising an alarm that carries the reason;
- checks that doors and gate valves reached the position they were commanded to within their travel
  time (limit switches), and alarms when they disagree;
- turns device faults from the poller into "comms lost" alarms, and recoveries into clears;
- decodes what every device reports about itself (`controller.line.device_faults`) into one alarm
  per condition, cleared when the device stops reporting it (an out-of-service device's are cleared
  and not raised: maintenance suppresses them, with the reason on the mode record);
- raises a space alarm when a space holding an exposed air-sensitive item leaves spec (HIGH), and
  when a space a running batch needs (`need_spaces`) is inert out of spec or unknown.

Device conditions are judged before the interlocks in every evaluation, so that a root cause the
device reported is raised before the trip it leads to and opens the cascade (first-out).

After a restart the recorder queues stations with `fault_on_arming`: their safe state is commanded at
the first evaluation after arming, before the first `watch`, i.e. once the hardware has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from controller.line.actions import Command, MoveItem, SetContainer, SetPort, SetValve
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmBoard, AlarmDefinition, UnknownAlarm
from controller.line.atmosphere import Atmosphere
from controller.line.device_faults import DeviceCondition, device_conditions
from controller.line.gate import CommandGate, GateRecord
from controller.line.interlocks import SafeAction, watch
from controller.line.ledger import ExposureLedger
from controller.line.poller import DeviceFault, DeviceRecovered, Poller, Sample, Subscription
from controller.line.state import LineState
from controller.line.stations import Station, safe_actions
from drivers.reading import Reading

log = logging.getLogger(__name__)

WAKE_TIMEOUT_S = 1.0  # evaluate at least this often even if no sample arrives (stale readings age)
TRAVEL_TIMEOUT_S = 20.0
OUT_OF_SPEC_FOR_A_BATCH = frozenset({Atmosphere.INERT_OUT_OF_SPEC, Atmosphere.UNKNOWN})


@dataclass
class _PositionCheck:
    target: str
    want_open: bool
    deadline: float
    is_port: bool


class Supervisor:
    def __init__(
        self,
        gate: CommandGate,
        poller: Poller,
        alarms: AlarmBoard,
        ledger: ExposureLedger,
        *,
        travel_timeout_s: float = TRAVEL_TIMEOUT_S,
    ) -> None:
        self.gate = gate
        self.model = gate.model
        self.poller = poller
        self.alarms = alarms
        self.ledger = ledger
        self.travel_timeout_s = travel_timeout_s
        self.stations = {s.name: Station(s.name, s.kind) for s in self.model.config.spaces}
        self._positions: dict[str, _PositionCheck] = {}
        self._task: asyncio.Task[None] | None = None
        self._active_trips: set[str] = set()
        self._ready = False
        self._faults_on_arming: dict[str, str] = {}  # space -> reason
        self._applying_arming_faults = False
        self.safe_actions_sent: list[tuple[float, SafeAction]] = []
        self._device_alarms: dict[str, set[str]] = {}  # device -> the condition alarms it has raised
        self._device_readings: dict[str, dict[str, Reading]] = {}  # the latest of each, as they came
        self._dirty: set[str] = set()  # devices that reported since the last evaluation
        self._families = {d.name: d.family for d in self.model.config.devices}
        self._space_alarms: set[str] = set()
        self._needed: dict[str, str] = {}  # space -> who needs it in spec (a running batch)
        gate.subscribe(self._on_record)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        subscription = self.poller.subscribe("supervisor", maxsize=10_000)
        self._task = asyncio.create_task(self._run(subscription), name="supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.poller.unsubscribe("supervisor")

    async def _run(self, subscription: Subscription) -> None:
        while True:
            try:
                event = await subscription.get(WAKE_TIMEOUT_S)
                self._on_event(event)
                while len(subscription):  # drain the batch, evaluate once
                    self._on_event(subscription.get_nowait())
            except TimeoutError:
                pass
            try:
                await self.evaluate()
            except Exception:  # a bug here must be loud but must not end supervision
                log.exception("supervisor evaluation failed")

    # -- one evaluation ----------------------------------------------------------------------------

    def ready(self) -> bool:
        """Every device has answered once or been declared faulted: the line is known, not assumed.

        Until then `watch` would judge "unknown" everywhere and slam gates on a controller that just
        restarted in the middle of a transfer; the gate itself still refuses everything unknown.
        """
        if self._ready:
            return True
        health = self.poller.health().values()
        self._ready = all(h.last_success_ts is not None or h.faulted for h in health)
        if self._ready:
            log.info("supervisor armed: every device has reported or is faulted")
        return self._ready

    @property
    def armed(self) -> bool:
        """Ready, and the safe states a restart queued are applied: a sequence may start commanding
        (before that, the restart's own interlock actions would look like a trip of the new run)."""
        return self._ready and not self._faults_on_arming and not self._applying_arming_faults

    async def evaluate(self) -> list[SafeAction]:
        """Judge the current state and enforce what it requires; returns the safe actions sent."""
        if not self.ready():
            return []
        self._applying_arming_faults = bool(self._faults_on_arming)
        try:
            while self._faults_on_arming:
                space = next(iter(self._faults_on_arming))  # in the order they were queued
                await self.fault(space, self._faults_on_arming.pop(space))
        finally:
            self._applying_arming_faults = False
        self._check_devices()
        state = self.gate.state()
        now = time.time()
        self._check_spaces(state)
        for entry in self.ledger.observe(state, now):
            self._raise(
                f"exposure.{entry.space}",
                Severity.CRITICAL,
                f"air-sensitive {entry.item} exposed to {entry.atmosphere} in {entry.space}",
                "Seal the container or restore the inert atmosphere; the item's record is marked.",
                {"item": entry.item, **entry.evidence},
            )
        self._check_positions(state)
        required = watch(state)
        wanted = {self._trip_id(s) for s in required}
        for trip in self._active_trips - wanted:
            self._clear(trip)
        self._active_trips = wanted
        for safe in required:
            self._raise(
                self._trip_id(safe), Severity.HIGH, safe.reason, "The interlock acted; check the cause.", {}
            )
            record = await self.gate.submit(Command(safe.action, "interlock", "interlock", safe.reason))
            self.safe_actions_sent.append((time.monotonic(), safe))
            if record.outcome != "done":
                log.error(
                    "safe action did not complete", extra={"action": str(safe.action), "error": record.error}
                )
        return required

    @staticmethod
    def _trip_id(safe: SafeAction) -> str:
        action = safe.action
        target = getattr(action, "port", None) or f"{getattr(action, 'space', '')}.{type(action).__name__}"
        return f"interlock.{safe.invariant}.{target}".replace(" ", "_")

    def fault_on_arming(self, space: str, reason: str) -> None:
        """Put a station in its safe state as soon as every device has reported (a restart).

        Not now: before the line is read, the gate would judge an unknown state and the station's
        real positions are not known; the fault path only closes and switches off, so it cannot hurt
        whatever the hardware turns out to be doing.
        """
        if space not in self.stations:
            raise KeyError(f"no station {space!r}")
        self._faults_on_arming[space] = reason

    async def fault(self, space: str, reason: str) -> None:
        """Put a station into its safe state: isolate, sources and heaters off, stay inert."""
        station = self.stations[space]
        if station.state != "fault":
            await station.fire("fault")
        for action in safe_actions(self.model.config, space):
            await self.gate.submit(Command(action, "interlock", "interlock", f"safe state: {reason}"))

    def need_spaces(self, owner: str, spaces: list[str] | tuple[str, ...]) -> None:
        """`owner` (a running batch) needs these spaces in spec: alarm when one leaves it."""
        for space in spaces:
            self._needed[space] = owner

    def release_spaces(self, owner: str) -> None:
        self._needed = {space: who for space, who in self._needed.items() if who != owner}

    # -- device conditions and spaces ----------------------------------------------------------------

    def _check_devices(self) -> None:
        """Decode the devices that reported since the last evaluation (a silent one keeps what it last
        reported: its comms alarm speaks), and clear the alarms of devices taken out of service."""
        out_of_service = self.gate.modes.current.out_of_service
        suppressed = {d for d in out_of_service if self._device_alarms.get(d)}
        due, self._dirty = self._dirty | suppressed, set()
        for name, family in self._families.items():  # in the configuration's order: a stable journal
            if name not in due:
                continue
            if name in out_of_service:
                conditions: list[DeviceCondition] = []
            else:
                conditions = device_conditions(family, self._device_readings.get(name, {}))
            raised = set()
            for condition in conditions:
                alarm_id = condition.alarm_id(name)
                raised.add(alarm_id)
                self.alarms.define(
                    AlarmDefinition(
                        alarm_id,
                        condition.severity,
                        f"{name}: {condition.text}",
                        condition.guidance,
                        latching=condition.latching,
                    )
                )
                self.alarms.raise_alarm(
                    alarm_id,
                    time.time(),
                    {"text": f"{name} reports {condition.text}", "device": name},
                )
            for gone in self._device_alarms.get(name, set()) - raised:
                self._clear(gone)
            self._device_alarms[name] = raised

    def _check_spaces(self, state: LineState) -> None:
        wanted: set[str] = set()
        for name, space in state.spaces.items():
            exposed = state.exposed_in(name)
            if exposed and not space.safe_for_exposed:
                alarm_id = f"space.{name}.exposed_out_of_spec"
                wanted.add(alarm_id)
                self._raise(
                    alarm_id,
                    Severity.HIGH,
                    f"{name} holds exposed {', '.join(exposed)} and is {space.atmosphere.value}: "
                    f"{space.classification.reason}",
                    "Restore the inert atmosphere or seal the items; their records show the exposure.",
                    {"space": name, "atmosphere": space.atmosphere.value, "items": ", ".join(exposed)},
                )
            owner = self._needed.get(name)
            if owner is not None and space.atmosphere in OUT_OF_SPEC_FOR_A_BATCH:
                alarm_id = f"space.{name}.needed_out_of_spec"
                wanted.add(alarm_id)
                self._raise(
                    alarm_id,
                    Severity.MEDIUM,
                    f"{name}, needed by {owner}, is {space.atmosphere.value}: {space.classification.reason}",
                    "The batch waits or fails while this lasts: restore the space's atmosphere.",
                    {"space": name, "atmosphere": space.atmosphere.value, "needed_by": owner},
                )
        for gone in self._space_alarms - wanted:
            self._clear(gone)
        self._space_alarms = wanted

    # -- inputs --------------------------------------------------------------------------------------

    def _on_event(self, event: object) -> None:
        if isinstance(event, DeviceFault):
            self._raise(
                f"comms.{event.device}",
                Severity.HIGH,
                f"{event.device} is not answering ({event.error_type}: {event.text})",
                "Its readings go stale and count as unknown; check cable, power and address.",
                {"error": event.error_type},
            )
        elif isinstance(event, DeviceRecovered):
            self._clear(f"comms.{event.device}")
        elif isinstance(event, Sample):
            self._device_readings.setdefault(event.device, {})[event.channel] = event.reading
            self._dirty.add(event.device)
        else:
            log.warning("unexpected poller event", extra={"event": repr(event)})

    def _on_record(self, record: GateRecord) -> None:
        action = record.command.action
        now = time.time()
        if record.outcome == "failed":
            self._raise(
                f"command.{_target(action)}",
                Severity.MEDIUM,
                f"{action} failed: {record.error}",
                "The device did not confirm the command; its state is read back, never assumed.",
                {"user": record.command.user},
            )
            return
        if record.outcome != "done":
            return
        # the device did what it was told this time: the earlier disagreement on this target is gone
        self._clear(f"command.{_target(action)}")
        if isinstance(action, SetPort):
            self._positions[action.port] = _PositionCheck(
                action.port, action.open, time.monotonic() + self.travel_timeout_s, True
            )
        elif isinstance(action, SetValve) and action.valve == "turbo_gate":
            key = f"{action.space}.turbo_gate"
            self._positions[key] = _PositionCheck(
                key, action.open, time.monotonic() + self.travel_timeout_s, False
            )
        elif isinstance(action, MoveItem | SetContainer):
            state = self.gate.state()
            if isinstance(action, MoveItem):
                self.ledger.moved(state, action.item, now)
            else:
                self.ledger.container_changed(state, action.container, now)

    def _check_positions(self, state: LineState) -> None:
        now_mono = time.monotonic()
        for key, check in list(self._positions.items()):
            if check.is_port:
                valve = state.ports[key].valve
            else:
                space, _, _ = key.partition(".")
                valve = state.spaces[space].valves["turbo_gate"]
            reached = valve.confirmed_open if check.want_open else valve.confirmed_closed
            alarm_id = f"position.{key}"
            if reached:
                del self._positions[key]
                self._clear(alarm_id)
            elif now_mono > check.deadline:
                del self._positions[key]
                self._raise(
                    alarm_id,
                    Severity.HIGH,
                    f"{key} commanded {'open' if check.want_open else 'closed'} "
                    "but its limit switches disagree",
                    "Check the actuator, its air supply and the limit switches before using this port.",
                    {"open_ls": str(valve.open_ls), "closed_ls": str(valve.closed_ls)},
                )

    def _clear(self, alarm_id: str) -> None:
        with contextlib.suppress(UnknownAlarm):  # a condition that never raised has nothing to clear
            self.alarms.clear(alarm_id, time.time())

    def _raise(
        self, alarm_id: str, severity: Severity, text: str, guidance: str, evidence: dict[str, object]
    ) -> None:
        self.alarms.define(AlarmDefinition(alarm_id, severity, _first_words(alarm_id), guidance))
        self.alarms.raise_alarm(alarm_id, time.time(), {"text": text, **evidence})


def _target(action: object) -> str:
    """What a command acts on, as an alarm id part: the port, item or container, else the space's
    valve, source, shutter or heater (one alarm each, so one success clears only its own failure)."""
    for attr in ("port", "item", "container"):
        if hasattr(action, attr):
            return str(getattr(action, attr))
    space = getattr(action, "space", "line")
    for attr in ("valve", "source", "shutter", "heater"):
        if hasattr(action, attr):
            return f"{space}.{getattr(action, attr)}"
    return f"{space}.{type(action).__name__}"


def _first_words(alarm_id: str) -> str:
    kind, _, target = alarm_id.partition(".")
    texts = {
        "exposure": "exposed air-sensitive item in a non-inert atmosphere",
        "comms": "device not answering",
        "interlock": "interlock acted",
        "position": "position disagreement",
        "command": "command failed",
        "space": "space out of spec",
    }
    return f"{texts.get(kind, kind)}: {target}"
