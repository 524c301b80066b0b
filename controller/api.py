"""The controller's HTTP surface: a JSON API under /api/ and a live WebSocket at /ws.

Why it is shaped this way:

- **One door for commands.** `POST /api/commands` turns the JSON body into the same `Action` dataclass
  any other origin builds and hands it to `CommandGate.submit` with the logged-in user and origin "hmi".
  The API judges nothing itself: a refusal is an ordinary answer (200, outcome "refused", with the
  invariants that spoke), not an HTTP error, because the request was well formed and was recorded.
- **Request bodies mirror the action dataclasses** field for field, discriminated by ``"type"`` (the
  dataclass name); `tests/controller/test_api.py` fails if the two ever drift apart. Bodies are strict:
  no extra fields, no "yes" for a boolean, no NaN or infinity for a setpoint (a NaN compares false
  against every limit, so it would slip past range checks).
- **Reading is open, acting needs a token** (`controller.auth`): 401 without a valid session, 403 when
  the role may not. Alarm actions the alarm board refuses answer 409 with the board's sentence.
- **Responses are pydantic models**, so /openapi.json documents every shape; non-finite numbers go out
  as null (strict JSON has no NaN).
- **The live feed never stalls the controller.** Publishing into a WebSocket client is a synchronous
  append to that client's bounded queue; a client that falls behind loses its oldest messages (counted,
  and told with an "overflow" message), never the poller's or the gate's time. State snapshots and
  telemetry are pushed at a bounded rate (telemetry coalesced to the latest value per channel) by the
  service's ticker; alarm and command records go out as they happen.
- **Telemetry history here is short and in memory** (`TelemetryHistory`, a ring buffer per channel fed
  from a poller subscription); the historian serves anything longer.
- **The past comes from the historian** (`ApiContext.historian`, None when the controller runs without
  one: those routes answer 503): runs with their commands, alarm events and ledger entries, and the
  exposure record of an item this process has no record of. Only committed rows are seen (a row
  recorded in the last `batch_s` may not be there yet).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, TypeVar, cast, get_args

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from controller.actions import Action, Command, ValveName
from controller.alarms import AlarmActionRefused, AlarmRecord, AlarmStatus, UnknownAlarm
from controller.auth import PERMISSIONS, Permission, Session, TokenStore
from controller.batch_host import BatchHost
from controller.errors import ControllerError, UserError
from controller.gate import GateRecord
from controller.historian import Historian, HistorianUnavailable
from controller.items import ItemKind, is_exposed, space_of
from controller.ledger import ExposureRecord, LedgerEntry
from controller.line_controller import LineController
from controller.line_state import ValveState
from controller.poller import PollerFailure
from controller.trend_history import TrendHistory
from controller.users import authenticate
from drivers.reading import Reading
from sequences.operator_desk import OperatorDesk
from sequences.space_operations import SpaceOperations

log = logging.getLogger(__name__)

API_VERSION: Final = "1"
LOGIN_SLOTS: Final = 2  # PBKDF2 costs ~0.1 s of CPU; a login flood queues instead of starving the loop
LOGIN_QUEUE_TIMEOUT_S: Final = 5.0
MAX_LIST: Final = 1000
WS_SEND_TIMEOUT_S: Final = 5.0
WS_RECEIVE_POLL_S: Final = 1.0
NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_T = TypeVar("_T")

# =====================================================================================================
# request bodies


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _ActionRequest(_Strict):
    type: str
    reason: str = Field("", max_length=500, description="why the operator asks; kept with the record")

    def to_action(self) -> Action:
        action: Action = ACTION_TYPES[self.type](**self.model_dump(exclude={"type", "reason"}))
        return action


_Name = Annotated[str, Field(min_length=1, max_length=64)]


class SetValveRequest(_ActionRequest):
    type: Literal["SetValve"]
    space: _Name
    valve: ValveName
    open: bool


class SetPortRequest(_ActionRequest):
    type: Literal["SetPort"]
    port: _Name
    open: bool


class SetPumpRequest(_ActionRequest):
    type: Literal["SetPump"]
    space: _Name
    running: bool


class SetTurboRequest(_ActionRequest):
    type: Literal["SetTurbo"]
    space: _Name
    running: bool


class SetGasFlowRequest(_ActionRequest):
    type: Literal["SetGasFlow"]
    space: _Name
    flow_sccm: float


class SetHeaterRequest(_ActionRequest):
    type: Literal["SetHeater"]
    space: _Name
    heater: _Name
    setpoint_c: float


class SetSourceRequest(_ActionRequest):
    type: Literal["SetSource"]
    space: _Name
    source: _Name
    enabled: bool
    power_w: float = 0.0


class SetShutterRequest(_ActionRequest):
    type: Literal["SetShutter"]
    space: _Name
    shutter: _Name
    open: bool


class MoveItemRequest(_ActionRequest):
    type: Literal["MoveItem"]
    item: _Name
    to: _Name


class SetContainerRequest(_ActionRequest):
    type: Literal["SetContainer"]
    container: _Name
    sealed: bool


ActionRequest = Annotated[
    SetValveRequest
    | SetPortRequest
    | SetPumpRequest
    | SetTurboRequest
    | SetGasFlowRequest
    | SetHeaterRequest
    | SetSourceRequest
    | SetShutterRequest
    | MoveItemRequest
    | SetContainerRequest,
    Field(discriminator="type"),
]
ACTION_TYPES: Final[Mapping[str, Any]] = {cls.__name__: cls for cls in get_args(Action)}
ACTION_REQUESTS: Final[tuple[type[_ActionRequest], ...]] = get_args(get_args(ActionRequest)[0])


class LoginRequest(_Strict):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ShelveRequest(_Strict):
    reason: str = Field(min_length=1, max_length=500)
    until_s: float = Field(description="epoch seconds when the shelf ends (bounded by the board's maximum)")


class ItemRequest(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=NAME)
    kind: ItemKind = Field(strict=False)  # the enum from its string value
    material: str = Field(min_length=1, max_length=64)
    location: str = Field(min_length=1, max_length=64, description="a space, a container id, or 'room'")
    sealed: bool = False


# =====================================================================================================
# response bodies


class LoginResponse(BaseModel):
    token: str
    user: str
    role: str
    expires_at: float
    permissions: list[str]


class ReadingView(BaseModel):
    value: float | None
    unit: str
    quality: str
    ts: float
    age_s: float


class ChannelView(ReadingView):
    device: str
    channel: str


class TelemetryView(BaseModel):
    channels: list[ChannelView]


class HistoryPoint(BaseModel):
    ts: float
    value: float | None
    quality: str


class HistoryView(BaseModel):
    device: str
    channel: str
    unit: str
    points: list[HistoryPoint]


class ValveView(BaseModel):
    commanded_open: bool | None
    open_ls: bool | None
    closed_ls: bool | None
    confirmed_open: bool
    confirmed_closed: bool


class StationView(BaseModel):
    name: str
    kind: str
    state: str


class SpaceView(BaseModel):
    name: str
    kind: str
    atmosphere: str
    reason: str
    safe_for_exposed: bool
    pressure_pa: float | None
    frost_point: ReadingView | None = Field(description="the space's frost-point sensor, if it has one")
    o2: ReadingView | None = Field(description="the space's O2 sensor, if it has one")
    evidence: dict[str, Any] = Field(description="what the classification rests on (incl. provenance)")
    valves: dict[str, ValveView]
    pump_running: bool | None
    turbo_speed_hz: float | None
    substrate_temp_c: float | None
    sources_on: list[str]
    gas_flow_sccm: float | None
    base_pressure_reached: bool
    exposed_items: list[str]


class PortView(BaseModel):
    name: str
    kind: str
    between: list[str]
    valve: ValveView


class ItemView(BaseModel):
    id: str
    kind: str
    material: str
    location: str
    space: str
    sealed: bool
    exposed: bool


class StateView(BaseModel):
    line: str
    ts: float
    stations: list[StationView]
    spaces: list[SpaceView]
    ports: list[PortView]
    items: list[ItemView]


class ShelfView(BaseModel):
    user: str
    reason: str
    since_s: float
    until_s: float


class AlarmView(BaseModel):
    id: str
    severity: str
    state: str
    text: str
    detail: str = Field(description="the specific sentence of this occurrence, when the raiser gave one")
    guidance: str
    latching: bool
    shelvable: bool
    trip: str | None
    condition_active: bool
    unacknowledged: bool
    evidence: dict[str, Any]
    raised_at_s: float | None
    changed_at_s: float | None
    acked_by: str | None
    acked_at_s: float | None
    shelf: ShelfView | None
    occurrences: int


class AlarmsView(BaseModel):
    active: list[AlarmView]
    shelved: list[AlarmView]
    unacknowledged: bool


class AlarmRecordView(BaseModel):
    ts: float
    alarm_id: str
    event: str
    from_state: str
    to_state: str
    severity: str
    user: str | None
    reason: str | None
    until_s: float | None
    trip: str | None
    condition_active: bool
    evidence: dict[str, Any]


class RefusalView(BaseModel):
    invariant: str
    rule: str
    reason: str
    evidence: dict[str, Any]


class CommandView(BaseModel):
    ts: float
    user: str
    origin: str
    action: dict[str, Any] = Field(description='the action with its "type", as POST /api/commands takes it')
    command_reason: str
    outcome: Literal["done", "refused", "failed"]
    reason: str = Field(description='"allowed", or why the gate refused')
    refusals: list[RefusalView]
    error: str
    duration_s: float


class StayView(BaseModel):
    space: str
    since_ts: float
    until_ts: float | None


class LedgerEntryView(BaseModel):
    ts: float
    event: str
    space: str
    atmosphere: str
    exposed: bool
    evidence: dict[str, Any]


class LedgerView(BaseModel):
    item: str
    path: list[StayView]
    exposed_s: float
    worst_frost_point_c: float | None
    worst_o2_ppmv: float | None
    ever_exposed_to_non_inert: bool
    non_inert: list[LedgerEntryView]


class RunSummaryView(BaseModel):
    id: str
    started_at: float
    ended_at: float | None
    status: str = Field(description='"running", "complete", or "incomplete" (the controller was interrupted)')
    config_hash: str
    recipe_hash: str | None
    user: str


class RunCommandView(BaseModel):
    """A command as the historian keeps it (registrations included, as action type "RegisterItem")."""

    id: int
    ts: float
    user: str
    origin: str
    action: dict[str, Any]
    outcome: str
    reason: str
    invariant: str | None
    error: str
    duration_s: float
    request_reason: str
    refusals: list[dict[str, Any]]


class RunLedgerEntryView(LedgerEntryView):
    item: str


class RunView(RunSummaryView):
    config_text: str
    recipe_text: str | None
    commands: list[RunCommandView] = Field(
        description="the run's commands, oldest first (the latest `limit`)"
    )
    alarm_events: list[AlarmRecordView] = Field(description="alarm journal records between start and end")
    ledger: list[RunLedgerEntryView] = Field(description="ledger entries of every item between start and end")


class DeviceHealthView(BaseModel):
    device: str
    link: str
    faulted: bool
    consecutive_failures: int
    last_error: str
    last_success_ts: float | None


class HealthView(BaseModel):
    ok: bool
    problem: str
    devices: list[DeviceHealthView]
    ws_clients: int
    ws_dropped: int


# =====================================================================================================
# short telemetry history and the live feed


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
    """One WebSocket client's bounded outbox of encoded messages."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
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

    def close(self) -> None:
        self.closed = True
        self._queue.clear()
        self._ready.set()


def encode(kind: str, payload: BaseModel) -> str:
    """One feed message, `{"type": kind, "data": payload}`, encoded once for every client."""
    return f'{{"type":{json.dumps(kind)},"data":{payload.model_dump_json()}}}'


class LiveFeed:
    """Fans encoded messages out to WebSocket clients; never waits, whatever the clients do."""

    def __init__(self, *, client_queue: int = 256, max_clients: int = 32) -> None:
        if client_queue < 1 or max_clients < 1:
            raise ValueError("client_queue and max_clients must be >= 1")
        self.client_queue = client_queue
        self.max_clients = max_clients
        self._clients: set[FeedClient] = set()
        self._pending: dict[tuple[str, str], Reading] = {}
        self._dropped_gone = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def dropped(self) -> int:
        """Messages lost to slow clients, since start (clients gone included)."""
        return self._dropped_gone + sum(c.dropped for c in self._clients)

    def connect(self) -> FeedClient:
        if len(self._clients) >= self.max_clients:
            raise FeedFull(f"{self.max_clients} live clients already connected")
        client = FeedClient(self.client_queue)
        self._clients.add(client)
        return client

    def disconnect(self, client: FeedClient) -> None:
        if client in self._clients:
            self._clients.discard(client)
            self._dropped_gone += client.dropped
        client.close()

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


# =====================================================================================================
# views: controller objects -> response bodies


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def jsonable(value: object) -> Any:
    """Evidence and refusal details are loosely typed; make them plain JSON (non-finite -> None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _evidence(value: Mapping[str, object]) -> dict[str, Any]:
    return cast(dict[str, Any], jsonable(value))


def reading_view(reading: Reading, now_mono: float) -> ReadingView:
    return ReadingView(
        value=_finite(reading.value),
        unit=reading.unit,
        quality=reading.quality.value,
        ts=reading.ts,
        age_s=max(0.0, now_mono - reading.mono),
    )


def channel_view(device: str, channel: str, reading: Reading, now_mono: float) -> ChannelView:
    return ChannelView(device=device, channel=channel, **reading_view(reading, now_mono).model_dump())


def _valve_view(valve: ValveState) -> ValveView:
    return ValveView(
        commanded_open=valve.commanded_open,
        open_ls=valve.open_ls,
        closed_ls=valve.closed_ls,
        confirmed_open=valve.confirmed_open,
        confirmed_closed=valve.confirmed_closed,
    )


def state_view(ctl: LineController) -> StateView:
    """The line now: built from one snapshot, so spaces, ports and raw sensors agree with each other."""
    now_mono = time.monotonic()
    snapshot = ctl.gate.snapshot()
    state = ctl.model.state(snapshot, now_mono)
    readings = ctl.model.readings

    def sensor(key: tuple[str, str] | None) -> ReadingView | None:
        reading = snapshot.get(key) if key is not None else None
        return reading_view(reading, now_mono) if reading is not None else None

    spaces = [
        SpaceView(
            name=s.name,
            kind=s.kind,
            atmosphere=s.atmosphere.value,
            reason=s.classification.reason,
            safe_for_exposed=s.safe_for_exposed,
            pressure_pa=_finite(s.pressure_pa),
            frost_point=sensor(readings.frost.get(s.name)),
            o2=sensor(readings.o2.get(s.name)),
            evidence=_evidence(s.classification.evidence),
            valves={name: _valve_view(v) for name, v in s.valves.items()},
            pump_running=s.pump_running,
            turbo_speed_hz=_finite(s.turbo_speed_hz),
            substrate_temp_c=_finite(s.substrate_temp_c),
            sources_on=sorted(s.sources_on),
            gas_flow_sccm=_finite(s.gas_flow_sccm),
            base_pressure_reached=s.base_pressure_reached,
            exposed_items=state.exposed_in(s.name),
        )
        for s in state.spaces.values()
    ]
    ports = [
        PortView(name=p.name, kind=p.kind, between=list(p.between), valve=_valve_view(p.valve))
        for p in state.ports.values()
    ]
    stations = [
        StationView(name=s.name, kind=s.kind, state=s.state) for s in ctl.supervisor.stations.values()
    ]
    return StateView(
        line=ctl.config.name,
        ts=time.time(),
        stations=stations,
        spaces=spaces,
        ports=ports,
        items=item_views(ctl),
    )


def item_views(ctl: LineController) -> list[ItemView]:
    items = dict(ctl.model.items)
    return [
        ItemView(
            id=item.id,
            kind=item.kind.value,
            material=item.material,
            location=item.location,
            space=space_of(item.id, items),
            sealed=item.sealed,
            exposed=is_exposed(item.id, items),
        )
        for item in items.values()
    ]


def alarm_view(status: AlarmStatus) -> AlarmView:
    definition = status.definition
    detail = status.evidence.get("text")
    shelf = status.shelf
    return AlarmView(
        id=status.id,
        severity=definition.severity.value,
        state=status.state.value,
        text=definition.text,
        detail=detail if isinstance(detail, str) else "",
        guidance=definition.guidance,
        latching=definition.latching,
        shelvable=definition.shelvable,
        trip=definition.trip,
        condition_active=status.condition_active,
        unacknowledged=status.unacknowledged,
        evidence=_evidence(status.evidence),
        raised_at_s=status.raised_at_s,
        changed_at_s=status.changed_at_s,
        acked_by=status.acked_by,
        acked_at_s=status.acked_at_s,
        shelf=ShelfView(user=shelf.user, reason=shelf.reason, since_s=shelf.since_s, until_s=shelf.until_s)
        if shelf is not None
        else None,
        occurrences=status.occurrences,
    )


def alarm_record_view(record: AlarmRecord) -> AlarmRecordView:
    return AlarmRecordView(
        ts=record.ts,
        alarm_id=record.alarm_id,
        event=record.event.value,
        from_state=record.from_state.value,
        to_state=record.to_state.value,
        severity=record.severity.value,
        user=record.user,
        reason=record.reason,
        until_s=record.until_s,
        trip=record.trip,
        condition_active=record.condition_active,
        evidence=_evidence(record.evidence),
    )


def action_fields(action: Action) -> dict[str, Any]:
    """The action as POST /api/commands takes it: its dataclass fields plus `"type"`."""
    fields = {name: getattr(action, name) for name in action.__dataclass_fields__}
    return {"type": type(action).__name__, **cast(dict[str, Any], jsonable(fields))}


def command_view(record: GateRecord) -> CommandView:
    command = record.command
    return CommandView(
        ts=record.ts,
        user=command.user,
        origin=command.origin,
        action=action_fields(command.action),
        command_reason=command.reason,
        outcome=cast(Literal["done", "refused", "failed"], record.outcome),
        reason=record.verdict.reason,
        refusals=[
            RefusalView(invariant=r.invariant, rule=r.rule, reason=r.reason, evidence=_evidence(r.evidence))
            for r in record.verdict.refusals
        ],
        error=record.error,
        duration_s=record.duration_s,
    )


def _entry_view(entry: LedgerEntry) -> LedgerEntryView:
    return LedgerEntryView(
        ts=entry.ts,
        event=entry.event,
        space=entry.space,
        atmosphere=entry.atmosphere,
        exposed=entry.exposed,
        evidence=_evidence(entry.evidence),
    )


def ledger_view(record: ExposureRecord, now_ts: float) -> LedgerView:
    return LedgerView(
        item=record.item,
        path=[StayView(space=s.space, since_ts=s.since_ts, until_ts=s.until_ts) for s in record.path],
        exposed_s=record.exposed_seconds(now_ts),
        worst_frost_point_c=_finite(record.worst_frost_point_c),
        worst_o2_ppmv=_finite(record.worst_o2_ppmv),
        ever_exposed_to_non_inert=record.ever_exposed_to_non_inert,
        non_inert=[_entry_view(e) for e in record.non_inert],
    )


def _recent(records: Iterable[_T], ts: Callable[[_T], float], since: float, limit: int) -> list[_T]:
    """Records newer than `since`, oldest first, at most the `limit` most recent of them."""
    newer = [r for r in records if ts(r) > since]
    return newer[-limit:]


# =====================================================================================================
# the app


@dataclass
class ApiContext:
    """Everything the routes reach; owned and started by `controller.service.ControllerService`."""

    controller: LineController
    tokens: TokenStore
    history: TelemetryHistory
    feed: LiveFeed
    historian: Historian | None = None
    desk: OperatorDesk | None = None  # the production run's glove-work prompts, when one runs here
    batches: BatchHost | None = None  # the production batch this process runs or may start
    operations: SpaceOperations | None = None  # manual antechamber operations, when offered here
    trends: TrendHistory | None = None  # what the HMI trends plot, recorded whether or not anyone watches
    login_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LOGIN_SLOTS))


def _context(connection: HTTPConnection) -> ApiContext:
    return cast(ApiContext, connection.app.state.depline)


Ctx = Annotated[ApiContext, Depends(_context)]
_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/login")


def require(permission: Permission) -> Any:
    """A dependency that yields the caller's session, or answers 401/403."""

    async def dependency(
        ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Session:
        session = ctx.tokens.resolve(credentials.credentials) if credentials is not None else None
        if session is None:
            raise HTTPException(
                401,
                "log in first (POST /api/login): no, unknown or expired token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not session.may(permission):
            raise HTTPException(403, f"role {session.role!r} may not {permission.value}")
        return session

    return Depends(dependency)


router = APIRouter()


@router.get("/api/state", response_model=StateView, tags=["read"])
async def get_state(ctx: Ctx) -> StateView:
    return state_view(ctx.controller)


@router.get("/api/telemetry", response_model=TelemetryView, tags=["read"])
async def get_telemetry(ctx: Ctx) -> TelemetryView:
    now = time.monotonic()
    snapshot = ctx.controller.poller.snapshot(now_mono=now)
    return TelemetryView(channels=[channel_view(d, c, r, now) for (d, c), r in sorted(snapshot.items())])


@router.get("/api/telemetry/{device}/{channel}", response_model=HistoryView, tags=["read"])
async def get_history(
    ctx: Ctx,
    device: str,
    channel: str,
    seconds: Annotated[
        float,
        Query(gt=0, le=86_400, description="how far back; the in-memory buffer holds minutes, not hours"),
    ] = 300.0,
) -> HistoryView:
    readings = ctx.history.recent(device, channel, seconds, now_mono=time.monotonic())
    if readings is None:
        raise HTTPException(404, f"no channel {device}/{channel} has been read")
    unit = readings[-1].unit if readings else ""
    points = [HistoryPoint(ts=r.ts, value=_finite(r.value), quality=r.quality.value) for r in readings]
    return HistoryView(device=device, channel=channel, unit=unit, points=points)


@router.get("/api/alarms", response_model=AlarmsView, tags=["read"])
async def get_alarms(ctx: Ctx) -> AlarmsView:
    board = ctx.controller.alarms
    return AlarmsView(
        active=[alarm_view(a) for a in board.active()],
        shelved=[alarm_view(a) for a in board.shelved()],
        unacknowledged=board.has_unacknowledged(),
    )


@router.get("/api/alarms/journal", response_model=list[AlarmRecordView], tags=["read"])
async def get_alarm_journal(
    ctx: Ctx,
    since: Annotated[float, Query(description="epoch seconds; only newer records")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 200,
) -> list[AlarmRecordView]:
    records = _recent(ctx.controller.alarms.journal, lambda r: r.ts, since, limit)
    return [alarm_record_view(r) for r in records]


@router.get("/api/items", response_model=list[ItemView], tags=["read"])
async def get_items(ctx: Ctx) -> list[ItemView]:
    return item_views(ctx.controller)


@router.get("/api/items/{item_id}/ledger", response_model=LedgerView, tags=["read"])
async def get_item_ledger(ctx: Ctx, item_id: str) -> LedgerView:
    """The live record, which after a restart already starts with the item's earlier history (the
    recorder replays it from the historian); for an item this process has no record of, the
    historian's replay of its committed ledger."""
    record = ctx.controller.ledger.records.get(item_id)
    if record is None and ctx.historian is not None:
        with _historian_errors():
            record = await ctx.historian.exposure_record(item_id)
    if record is None:
        known = item_id in ctx.controller.model.items
        why = "it has no exposure record (containers carry none)" if known else "no such item"
        raise HTTPException(404, f"item {item_id!r}: {why}")
    return ledger_view(record, time.time())


@router.get("/api/commands", response_model=list[CommandView], tags=["read"])
async def get_commands(
    ctx: Ctx,
    since: Annotated[float, Query(description="epoch seconds; only newer records")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[CommandView]:
    return [command_view(r) for r in _recent(ctx.controller.gate.records, lambda r: r.ts, since, limit)]


@router.get("/api/runs", response_model=list[RunSummaryView], tags=["read"])
async def get_runs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50) -> list[RunSummaryView]:
    """The newest runs first; one run per controller process, 'incomplete' if it was interrupted."""
    historian = _historian(ctx)
    with _historian_errors():
        found = await historian.runs(limit)
    return [RunSummaryView.model_validate(run) for run in found]


@router.get("/api/runs/{run_id}", response_model=RunView, tags=["read"])
async def get_run(
    ctx: Ctx, run_id: str, limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST
) -> RunView:
    """A run with its commands, and the alarm events and ledger entries of its time span."""
    historian = _historian(ctx)
    with _historian_errors():
        run = await historian.run(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}")
        commands = await historian.commands(run_id=run_id, limit=limit)
        until = run["ended_at"]
        alarms = await historian.alarm_events(since=run["started_at"], until=until, limit=limit)
        entries = await historian.ledger_between(run["started_at"], until, limit)
    return RunView(
        **run,
        commands=[RunCommandView.model_validate(jsonable(c)) for c in commands],
        alarm_events=[
            AlarmRecordView.model_validate({name: jsonable(a[name]) for name in AlarmRecordView.model_fields})
            for a in alarms
        ],
        ledger=[RunLedgerEntryView.model_validate(jsonable(e)) for e in entries],
    )


def _historian(ctx: ApiContext) -> Historian:
    if ctx.historian is None:
        raise HTTPException(503, "this controller runs without a historian: no records of past runs")
    return ctx.historian


@contextlib.contextmanager
def _historian_errors() -> Iterator[None]:
    try:
        yield
    except HistorianUnavailable as exc:
        raise HTTPException(503, str(exc)) from None


@router.get("/api/health", response_model=HealthView, tags=["read"])
async def get_health(ctx: Ctx) -> HealthView:
    poller = ctx.controller.poller
    problem = ""
    try:
        poller.check()
    except PollerFailure as exc:
        problem = str(exc)
    devices = [
        DeviceHealthView(
            device=h.device,
            link=h.link,
            faulted=h.faulted,
            consecutive_failures=h.consecutive_failures,
            last_error=h.last_error,
            last_success_ts=h.last_success_ts,
        )
        for h in poller.health().values()
    ]
    return HealthView(
        ok=not problem,
        problem=problem,
        devices=devices,
        ws_clients=ctx.feed.clients,
        ws_dropped=ctx.feed.dropped,
    )


@router.post("/api/login", response_model=LoginResponse, tags=["session"])
async def login(ctx: Ctx, body: LoginRequest) -> LoginResponse:
    config = ctx.controller.config
    try:
        async with asyncio.timeout(LOGIN_QUEUE_TIMEOUT_S):
            await ctx.login_slots.acquire()
    except TimeoutError:
        raise HTTPException(503, "too many logins at once; try again") from None
    try:  # PBKDF2 is CPU work: off the event loop, or acquisition and interlocks would wait for it
        user = await asyncio.to_thread(authenticate, config, body.user, body.password)
    finally:
        ctx.login_slots.release()
    if user is None:
        log.warning("login refused", extra={"user": body.user})
        raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"})
    token, session = ctx.tokens.issue(user)
    log.info("login", extra={"user": user.name, "role": user.role})
    return LoginResponse(
        token=token,
        user=session.user,
        role=session.role,
        expires_at=session.expires_at,
        permissions=sorted(p.value for p in PERMISSIONS[session.role]),
    )


@router.post("/api/logout", status_code=204, tags=["session"])
async def logout(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is not None:
        ctx.tokens.revoke(credentials.credentials)


@router.post("/api/commands", response_model=CommandView, tags=["act"])
async def post_command(
    ctx: Ctx, body: ActionRequest, session: Annotated[Session, require(Permission.COMMAND)]
) -> CommandView:
    command = Command(body.to_action(), session.user, "hmi", body.reason)
    # shielded: once the gate has it, the command completes and is recorded even if the client goes away
    record = await asyncio.shield(ctx.controller.gate.submit(command))
    return command_view(record)


@router.post("/api/items", response_model=ItemView, status_code=201, tags=["act"])
async def post_item(
    ctx: Ctx, body: ItemRequest, session: Annotated[Session, require(Permission.REGISTER_ITEM)]
) -> ItemView:
    ctl = ctx.controller
    try:
        item = ctl.model.register(
            body.id,
            body.kind,
            body.material,
            body.location,
            sealed=body.sealed,
            user=session.user,
            origin="hmi",
        )
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    if not item.is_container:  # the ledger keeps records of what can be exposed (as its _ensure does)
        ctl.ledger.registered(ctl.gate.state(), item.id, time.time())
    log.info("item registered", extra={"item": item.id, "user": session.user, "location": item.location})
    return next(view for view in item_views(ctl) if view.id == item.id)


@router.post("/api/alarms/{alarm_id}/acknowledge", response_model=AlarmRecordView, tags=["act"])
async def acknowledge_alarm(
    ctx: Ctx, alarm_id: str, session: Annotated[Session, require(Permission.ACKNOWLEDGE_ALARM)]
) -> AlarmRecordView:
    with _alarm_errors():
        record = ctx.controller.alarms.acknowledge(alarm_id, session.user, time.time())
    return alarm_record_view(record)


@router.post("/api/alarms/{alarm_id}/shelve", response_model=AlarmRecordView, tags=["act"])
async def shelve_alarm(
    ctx: Ctx,
    alarm_id: str,
    body: ShelveRequest,
    session: Annotated[Session, require(Permission.SHELVE_ALARM)],
) -> AlarmRecordView:
    with _alarm_errors():
        record = ctx.controller.alarms.shelve(alarm_id, session.user, body.reason, body.until_s, time.time())
    return alarm_record_view(record)


@router.post("/api/alarms/{alarm_id}/unshelve", response_model=AlarmRecordView, tags=["act"])
async def unshelve_alarm(
    ctx: Ctx, alarm_id: str, session: Annotated[Session, require(Permission.UNSHELVE_ALARM)]
) -> AlarmRecordView:
    with _alarm_errors():
        record = ctx.controller.alarms.unshelve(alarm_id, session.user, time.time())
    return alarm_record_view(record)


@contextlib.contextmanager
def _alarm_errors() -> Iterator[None]:
    try:
        yield
    except UnknownAlarm as exc:
        raise HTTPException(404, str(exc)) from None
    except AlarmActionRefused as exc:
        raise HTTPException(409, str(exc)) from None


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    """Pushes {"type": "state"|"telemetry"|"alarm"|"command"|"overflow", "data": {...}} messages."""
    ctx = _context(websocket)
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


def create_app(context: ApiContext) -> FastAPI:
    """The ASGI app for one running controller; `context` carries the live parts the routes read."""
    app = FastAPI(
        title=f"depline controller: line {context.controller.config.name!r}",
        version=API_VERSION,
        description="Read the line freely; log in (POST /api/login) to command it or act on alarms.",
    )
    app.state.depline = context
    app.include_router(router)
    from controller.api_prompts import router as prompts_router

    app.include_router(prompts_router)
    from controller.api_batch import router as batch_router

    app.include_router(batch_router)
    from controller.api_reports import router as reports_router

    app.include_router(reports_router)
    from controller.api_operations import router as operations_router

    app.include_router(operations_router)
    from controller.api_trends import router as trends_router

    app.include_router(trends_router)
    from controller.hmi_page import router as hmi_router

    app.include_router(hmi_router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but safe for a NaN in the input (its default handler would fail with a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [str(exc)]
    return JSONResponse(status_code=422, content={"detail": jsonable(jsonable_encoder(errors))})
