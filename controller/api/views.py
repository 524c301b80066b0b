"""Response bodies of the controller's API, and the builders that turn controller objects into them.

Why it is shaped this way:

- **Responses are pydantic models**, so /openapi.json documents every shape, and the live feed
  (`controller.api.live_feed`) pushes the very same models the GET routes answer with: a screen that draws
  from one can draw from the other.
- **Non-finite numbers go out as null** (strict JSON has no NaN): every float passes `finite`, and the
  loosely typed evidence and refusal details pass `jsonable`.
- **A view is built from one snapshot** (`state_view`), so spaces, ports and raw sensors agree with
  each other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from controller.line.actions import Action
from controller.line.alarms import AlarmRecord, AlarmStatus
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.items import Item, is_exposed, space_of
from controller.line.ledger import ExposureRecord, LedgerEntry
from controller.line.modes import UnitMode
from controller.line.state import LineReadings, LineState, Snapshot, ValveState
from drivers.reading import Reading

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
    unowned_items: list[str] = Field(
        default_factory=list,
        description="items in a space of the line while no batch owns it (not in production): their "
        "ledger keeps running, and the HMI says so",
    )


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
    first_out: bool = Field(False, description="this occurrence opened its cascade: the likely cause")
    follows: str | None = Field(None, description="the first-out alarm of the cascade this one came in")


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
    first_out: bool = Field(False, description="this new occurrence opened a cascade of alarms")
    follows: str | None = Field(None, description="the first-out alarm of the cascade it came in")


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


class HealthReasonView(BaseModel):
    level: Literal["degraded", "failed"]
    kind: Literal["acquisition", "device", "historian", "broker"]
    subject: str = Field(description="what it is about: a device's name, the historian, the broker")
    text: str


class HealthView(BaseModel):
    status: Literal["ok", "degraded", "failed"] = Field(
        description="HTTP 200 for ok and degraded (the line runs and its HMI must stay reachable), 503 failed"
    )
    reasons: list[HealthReasonView]
    ok: bool = Field(description="status is ok")
    problem: str = Field(description="why acquisition is failing, or empty")
    devices: list[DeviceHealthView]
    ws_clients: int
    ws_dropped: int


# =====================================================================================================
# builders: controller objects -> response bodies


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def jsonable(value: object) -> Any:
    """Evidence and refusal details are loosely typed; make them plain JSON (non-finite -> None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _evidence(value: Mapping[str, object]) -> dict[str, Any]:
    return cast(dict[str, Any], jsonable(value))


def reading_view(reading: Reading, now_mono: float) -> ReadingView:
    return ReadingView(
        value=finite(reading.value),
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
    stations = [
        StationView(name=s.name, kind=s.kind, state=s.state) for s in ctl.supervisor.stations.values()
    ]
    items = dict(ctl.model.items)
    production = ctl.modes.current.mode is UnitMode.PRODUCTION
    return line_state_view(
        ctl.model.readings,
        ctl.model.state(snapshot, now_mono),
        snapshot,
        now_mono=now_mono,
        ts=time.time(),
        stations=stations,
        items=items,
        unowned=[] if production else unowned_in(items, ctl.model.spaces),
    )


def line_state_view(
    readings: LineReadings,
    state: LineState,
    snapshot: Snapshot,
    *,
    now_mono: float,
    ts: float,
    stations: list[StationView],
    items: Mapping[str, Item],
    unowned: list[str],
) -> StateView:
    """The state body from a line state and the snapshot it was built from: the live controller's now,
    or a replay's instant rebuilt from the records (`controller.api.replay`), drawn by the same page."""

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
            pressure_pa=finite(s.pressure_pa),
            frost_point=sensor(readings.frost.get(s.name)),
            o2=sensor(readings.o2.get(s.name)),
            evidence=_evidence(s.classification.evidence),
            valves={name: _valve_view(v) for name, v in s.valves.items()},
            pump_running=s.pump_running,
            turbo_speed_hz=finite(s.turbo_speed_hz),
            substrate_temp_c=finite(s.substrate_temp_c),
            sources_on=sorted(s.sources_on),
            gas_flow_sccm=finite(s.gas_flow_sccm),
            base_pressure_reached=s.base_pressure_reached,
            exposed_items=state.exposed_in(s.name),
        )
        for s in state.spaces.values()
    ]
    ports = [
        PortView(name=p.name, kind=p.kind, between=list(p.between), valve=_valve_view(p.valve))
        for p in state.ports.values()
    ]
    return StateView(
        line=readings.config.name,
        ts=ts,
        stations=stations,
        spaces=spaces,
        ports=ports,
        items=item_views_of(items),
        unowned_items=unowned,
    )


def unowned_items(ctl: LineController) -> list[str]:
    """After a batch (or before one) items may stay in the line — a target left in the chamber, a box in
    an antechamber — with nobody's plan covering them; outside production no batch owns them."""
    if ctl.modes.current.mode is UnitMode.PRODUCTION:
        return []
    return unowned_in(ctl.model.items, ctl.model.spaces)


def unowned_in(items: Mapping[str, Item], spaces: Sequence[str]) -> list[str]:
    """The items in a space of the line (in production a batch owns them all)."""
    inside = set(spaces)
    return sorted(i for i in items if space_of(i, items) in inside)


def item_views(ctl: LineController) -> list[ItemView]:
    return item_views_of(ctl.model.items)


def item_views_of(items: Mapping[str, Item]) -> list[ItemView]:
    held = dict(items)
    return [
        ItemView(
            id=item.id,
            kind=item.kind.value,
            material=item.material,
            location=item.location,
            space=space_of(item.id, held),
            sealed=item.sealed,
            exposed=is_exposed(item.id, held),
        )
        for item in held.values()
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
        first_out=status.first_out,
        follows=status.follows,
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
        first_out=record.first_out,
        follows=record.follows,
    )


_LATER_COLUMNS = ("evidence", "first_out", "follows")


def alarm_row_view(row: dict[str, Any]) -> AlarmRecordView:
    """A journal record as the historian keeps it (`Historian.alarm_journal`)."""
    return AlarmRecordView(
        **{k: row[k] for k in AlarmRecordView.model_fields if k not in _LATER_COLUMNS},
        evidence=_evidence(row["evidence"] if isinstance(row["evidence"], dict) else {}),
        first_out=bool(row.get("first_out")),  # NULL in rows written before migration 0005
        follows=row.get("follows"),
    )


def command_row_view(row: dict[str, Any]) -> CommandView:
    """A gate record as the historian keeps it (`Historian.command_records`)."""
    action = {k: v for k, v in row["action"].items() if k != "meta"}
    refusals = row["refusals"] if isinstance(row["refusals"], list) else []
    outcome: Literal["done", "refused", "failed"] = (
        row["outcome"] if row["outcome"] in ("done", "refused", "failed") else "failed"
    )
    return CommandView(
        ts=row["ts"],
        user=row["user"],
        origin=row["origin"],
        action=action,
        command_reason=row["request_reason"],
        outcome=outcome,
        reason=row["reason"],
        refusals=[
            RefusalView(
                invariant=str(r.get("invariant", "")),
                rule=str(r.get("rule", "")),
                reason=str(r.get("reason", "")),
                evidence=_evidence(r.get("evidence") or {}),
            )
            for r in refusals
        ],
        error=row["error"],
        duration_s=row["duration_s"],
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
        worst_frost_point_c=finite(record.worst_frost_point_c),
        worst_o2_ppmv=finite(record.worst_o2_ppmv),
        ever_exposed_to_non_inert=record.ever_exposed_to_non_inert,
        non_inert=[_entry_view(e) for e in record.non_inert],
    )
