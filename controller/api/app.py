"""The controller's HTTP surface: the line's core routes under /api/, and `create_app`, which assembles
every route group (this module's, the live WebSocket's, batch, prompts, operations, reports, trends,
the HMI page) into one app.

Why it is shaped this way:

- **One concept per module.** Request bodies are in `controller.api.requests`, response bodies and their
  builders in `controller.api.views`, the in-memory telemetry history and the live feed in
  `controller.api.live_feed`, the context and the auth dependencies every route takes in
  `controller.api.context`, the WebSocket at /ws in `controller.api.live`, log-in, log-out and the
  unlock of a locked-out login in `controller.api.session`, the service's health (ok, degraded, failed,
  with the reasons) in `controller.api.health`. This module keeps the core routes (state, telemetry,
  alarms, items, commands, runs) and re-exports the names tests and older callers import from here
  (`__all__`).
- **One door for commands.** `POST /api/commands` turns the JSON body into the same `Action` dataclass
  any other origin builds and hands it to `CommandGate.submit` with the logged-in user and origin "hmi".
  The API judges nothing itself: a refusal is an ordinary answer (200, outcome "refused", with the
  invariants that spoke), not an HTTP error, because the request was well formed and was recorded.
- **Reading over HTTP is open, acting needs a token** (`controller.api.context.require`): 401 without a
  valid session, 403 when the role may not. The live WebSocket needs a token too (`controller.api.live`).
  Alarm actions the alarm board refuses answer 409 with the board's sentence.
- **The past comes from the historian** (`ApiContext.historian`, None when the controller runs without
  one: those routes answer 503): runs with their commands, alarm events and ledger entries, and the
  exposure record of an item this process has no record of. Only committed rows are seen (a row
  recorded in the last `batch_s` may not be there yet).
- **A malformed request answers 422** with FastAPI's shape, made safe for a NaN in the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from controller.api.availability import router as availability_router
from controller.api.batch import router as batch_router
from controller.api.context import ApiContext, Ctx, require
from controller.api.devices import router as devices_router
from controller.api.flight_record import router as flight_record_router
from controller.api.health import router as health_router
from controller.api.live import router as live_router
from controller.api.live_feed import LiveFeed, TelemetryHistory
from controller.api.modes import router as modes_router
from controller.api.operations import router as operations_router
from controller.api.page import router as hmi_router
from controller.api.prompts import router as prompts_router
from controller.api.reports import router as reports_router
from controller.api.requests import (
    ACTION_REQUESTS,
    ACTION_TYPES,
    ActionRequest,
    ItemRequest,
    ShelveRequest,
)
from controller.api.session import router as session_router
from controller.api.topology import router as topology_router
from controller.api.trends import router as trends_router
from controller.api.views import (
    AlarmRecordView,
    AlarmsView,
    CommandView,
    HistoryPoint,
    HistoryView,
    ItemView,
    LedgerView,
    RunCommandView,
    RunLedgerEntryView,
    RunSummaryView,
    RunView,
    StateView,
    TelemetryView,
    alarm_record_view,
    alarm_row_view,
    alarm_view,
    channel_view,
    command_row_view,
    command_view,
    finite,
    item_views,
    jsonable,
    ledger_view,
    state_view,
)
from controller.errors import UserError
from controller.historian.errors import HistorianUnavailable
from controller.historian.store import Historian
from controller.line.actions import Command
from controller.line.alarms import AlarmActionRefused, UnknownAlarm
from controller.users.auth import Permission, Session

__all__ = [
    "ACTION_REQUESTS",
    "ACTION_TYPES",
    "API_VERSION",
    "ApiContext",
    "LiveFeed",
    "TelemetryHistory",
    "create_app",
    "router",
]

log = logging.getLogger(__name__)

API_VERSION: Final = "1"
MAX_LIST: Final = 1000
_T = TypeVar("_T")
_V = TypeVar("_V", AlarmRecordView, CommandView)  # a journal entry as the API shows it


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
    points = [HistoryPoint(ts=r.ts, value=finite(r.value), quality=r.quality.value) for r in readings]
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
    """The alarm journal, from the historian (so last night's alarms and who acknowledged them survive a
    restart), completed with this process's newest records the historian has not written yet."""
    live = [
        alarm_record_view(r) for r in _recent(ctx.controller.alarms.journal, lambda r: r.ts, since, limit)
    ]
    stored = await _stored(ctx, lambda h: h.alarm_journal(since, limit), alarm_row_view)
    return _merged(stored, live, lambda v: (v.ts, v.alarm_id, v.event), limit)


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
    """Every command the gate judged, from the historian (earlier processes' too), completed with this
    process's newest records the historian has not written yet."""
    live = [command_view(r) for r in _recent(ctx.controller.gate.records, lambda r: r.ts, since, limit)]
    stored = await _stored(ctx, lambda h: h.command_records(since, limit), command_row_view)
    return _merged(stored, live, lambda v: (v.ts, v.user, v.origin), limit)


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


@router.post("/api/commands", response_model=CommandView, tags=["act"])
async def post_command(
    ctx: Ctx, body: ActionRequest, session: Annotated[Session, require(Permission.COMMAND)]
) -> CommandView:
    command = Command(body.to_action(), session.user, "hmi", body.reason, meta={"role": session.role})
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


async def _stored(
    ctx: ApiContext,
    query: Callable[[Historian], Awaitable[list[dict[str, Any]]]],
    view: Callable[[dict[str, Any]], _V],
) -> list[_V]:
    """Rows from the historian as views; none without one, or while it cannot answer (this process's
    own records are still served then, and the log says why the older ones are missing)."""
    if ctx.historian is None:
        return []
    try:
        return [view(row) for row in await query(ctx.historian)]
    except HistorianUnavailable as exc:
        log.warning("journal served from memory only", extra={"error": str(exc)})
        return []


def _merged(stored: list[_V], live: list[_V], key: Callable[[_V], object], limit: int) -> list[_V]:
    """Both sources in time order, each record once (the live one is also on its way to the historian)."""
    seen = {key(v) for v in stored}
    merged = stored + [v for v in live if key(v) not in seen]
    merged.sort(key=lambda v: v.ts)
    return merged[-limit:]


def _recent(records: Iterable[_T], ts: Callable[[_T], float], since: float, limit: int) -> list[_T]:
    """Records newer than `since`, oldest first, at most the `limit` most recent of them."""
    newer = [r for r in records if ts(r) > since]
    return newer[-limit:]


def create_app(context: ApiContext) -> FastAPI:
    """The ASGI app for one running controller; `context` carries the live parts the routes read."""
    app = FastAPI(
        title=f"depline controller: line {context.controller.config.name!r}",
        version=API_VERSION,
        description=(
            "Read the line freely over HTTP; log in (POST /api/login) to command it, act on alarms or "
            "watch the live WebSocket /ws (the token is its first message)."
        ),
    )
    app.state.depline = context
    app.include_router(availability_router)  # before /api/commands/... routes could shadow it
    app.include_router(router)
    app.include_router(session_router)
    app.include_router(live_router)
    app.include_router(prompts_router)
    app.include_router(batch_router)
    app.include_router(reports_router)
    app.include_router(flight_record_router)
    app.include_router(operations_router)
    app.include_router(trends_router)
    app.include_router(modes_router)
    app.include_router(health_router)
    app.include_router(topology_router)
    app.include_router(devices_router)
    app.include_router(hmi_router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but safe for a NaN in the input (its default handler would fail with a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [str(exc)]
    return JSONResponse(status_code=422, content={"detail": jsonable(jsonable_encoder(errors))})
