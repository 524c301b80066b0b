"""The HMI served read-only on a historian: what `depline replay` runs (`create_replay_app`).

Why it is shaped this way:

- **No controller behind it.** No poller, no device links, no gate: the app holds a line
  configuration and a historian opened read-only (`Historian.reader(read_only=True)`), and every
  answer is a query of the records. The live routes that act have no counterpart here: every POST,
  PUT, PATCH or DELETE answers 405 with "replay is read-only" and the database it replays, and so
  does a log-in (no session can exist, so no command can be sent); the live WebSocket does not exist.
- **The same page, the same state body.** `/` is the live HMI page marked `data-mode="replay"`, so
  `hmi.js` starts the time cursor (`replay.js`) instead of the live feed; the state at the cursor
  (`GET /api/replay/state?at=`) is the live `StateView`, built by the live serializer
  (`line_state_view`) from the line rebuilt at that instant (`controller.flight_recorder.line_at`),
  so the process picture draws it unchanged. The flight recorder's routes (history, timeline,
  samples, rejudge) are the live app's, on this historian.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection, Request

from controller.api.flight_record import FlightRecords
from controller.api.flight_record import router as flight_record_router
from controller.api.page import marked_page
from controller.api.page import router as hmi_router
from controller.api.topology import TopologyView, topology_view
from controller.api.views import (
    LedgerView,
    StateView,
    StationView,
    TelemetryView,
    channel_view,
    ledger_view,
    line_state_view,
    unowned_in,
)
from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.flight_recorder.line_at import LineAt, alarms_at, line_at
from controller.flight_recorder.line_records import line_records
from controller.flight_recorder.time_range import parse_instant
from controller.historian.errors import HistorianUnavailable
from controller.historian.store import Historian
from controller.line.ledger import exposure_from_entries
from controller.line.model import LineModel
from controller.line.stations import TABLES

READ_ONLY: Final = "replay is read-only: it shows the records of {database} and commands nothing"
TRAVEL_TIMEOUT_S: Final = 20.0  # the live default: the picture only uses it to word a door in travel


@dataclass(frozen=True)
class ReplayContext:
    config: LineConfig
    historian: Historian
    database: str  # as shown: a file name, or a URL without its password

    @property
    def refusal(self) -> str:
        return READ_ONLY.format(database=self.database)


def replay_of(connection: HTTPConnection) -> ReplayContext:
    found = connection.app.state.replay
    assert isinstance(found, ReplayContext)
    return found


Replayed = Annotated[ReplayContext, Depends(replay_of)]
router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return marked_page("replay")


@router.get("/api/replay", tags=["replay"])
async def get_replay(replay: Replayed) -> dict[str, Any]:
    """What is replayed: the database, the line, and the span of its records (the runs' start and end)."""
    try:
        runs = await replay.historian.runs(limit=100_000)
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    starts = [float(r["started_at"]) for r in runs]
    ends = [float(r["ended_at"] if r["ended_at"] is not None else r["started_at"]) for r in runs]
    return {
        "mode": "replay",
        "database": replay.database,
        "line": replay.config.name,
        "read_only": replay.refusal,
        "first_ts": min(starts) if starts else None,
        "last_ts": max(ends) if ends else None,
    }


@router.get("/api/state", tags=["replay"])
async def get_state_now() -> None:
    """A replay has no "now": the live route says where the recorded instants are."""
    raise HTTPException(404, "replay: the line at an instant is GET /api/replay/state?at=T")


@router.get("/api/topology", response_model=TopologyView, tags=["read"])
async def get_topology(replay: Replayed) -> TopologyView:
    return topology_view(replay.config, TRAVEL_TIMEOUT_S)


async def _line_at(replay: ReplayContext, at: str) -> LineAt:
    try:
        instant = parse_instant("at", at)
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        records = await line_records(replay.historian, replay.config, instant)
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    # CPU work (the warm-up walks the records): in a thread, so the page's other requests are served
    return await asyncio.to_thread(line_at, replay.config, records)


@router.get("/api/replay/state", response_model=StateView, tags=["replay"])
async def get_state_at(
    replay: Replayed, at: Annotated[str, Query(description="ISO 8601 (UTC unless an offset) or epoch s")]
) -> StateView:
    """The line at `at`, rebuilt from the records, in the live GET /api/state's shape."""
    return state_view_at(replay.config, await _line_at(replay, at))


@router.get("/api/replay/telemetry", response_model=TelemetryView, tags=["replay"])
async def get_telemetry_at(replay: Replayed, at: str) -> TelemetryView:
    """Every channel the line state reads, its last reading at or before `at` with its quality and its
    age then (the live GET /api/telemetry's shape)."""
    found = await _line_at(replay, at)
    return TelemetryView(
        channels=[channel_view(d, c, r, found.at) for (d, c), r in sorted(found.snapshot.items())]
    )


@router.get("/api/items/{item_id}/ledger", response_model=LedgerView, tags=["read"])
async def get_item_ledger(replay: Replayed, item_id: str) -> LedgerView:
    """The item's exposure record over the whole of the records (the page's item panel): where it has
    been, and every entry in a non-inert atmosphere; a stay still open at the last record says "now"."""
    try:
        entries = (await replay.historian.ledger_entries([item_id]))[item_id]
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    if not entries:
        raise HTTPException(404, f"item {item_id!r}: no ledger entry in {replay.database}")
    return ledger_view(exposure_from_entries(item_id, entries), max(e.ts for e in entries))


@router.get("/api/replay/board", tags=["replay"])
async def get_board_at(replay: Replayed, at: str) -> dict[str, Any]:
    """The alarms on the board and the unit mode at `at`, each from its newest record before it."""
    try:
        instant = parse_instant("at", at)
        alarms = await replay.historian.latest_rows_at("alarm", "alarm_id", instant)
        modes = await replay.historian.latest_rows_at("mode", "line", instant)
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    return {
        "at": instant,
        "alarms": [{**asdict(a), "unacknowledged": a.unacknowledged} for a in alarms_at(alarms)],
        "mode": _mode_view(modes[-1] if modes else None),
    }


def _mode_view(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The mode as the status bar's `renderMode` takes it (out of service is not folded: left empty)."""
    if row is None:
        return None
    return {
        "mode": row["mode"],
        "owner": row.get("owner"),
        "out_of_service": [],
        "since": row["ts"],
        "user": row["user"],
        "reason": row["reason"],
    }


def state_view_at(config: LineConfig, found: LineAt) -> StateView:
    readings = LineModel(config).readings
    stations = [
        StationView(name=s.name, kind=s.kind, state=found.stations.get(s.name, TABLES[s.kind][2]))
        for s in config.spaces
        if s.kind in TABLES
    ]
    production = found.mode == "production"
    return line_state_view(
        readings,
        found.state,
        found.snapshot,
        now_mono=found.at,
        ts=found.at,
        stations=stations,
        items=found.items,
        unowned=[] if production else unowned_in(found.items, [s.name for s in config.spaces]),
    )


async def _read_only(request: Request) -> JSONResponse:
    replay = replay_of(request)
    return JSONResponse({"detail": replay.refusal}, status_code=405, headers={"Allow": "GET, HEAD"})


def create_replay_app(replay: ReplayContext) -> FastAPI:
    app = FastAPI(
        title=f"depline replay: line {replay.config.name!r} from {replay.database}",
        description="The HMI on recorded data, read-only: nothing here writes or commands.",
    )
    app.state.replay = replay
    app.state.flight_records = FlightRecords(replay.historian, replay.config)
    app.include_router(router)
    app.include_router(flight_record_router)
    app.include_router(hmi_router)  # after "/" above: its page is the live one
    app.add_api_route(
        "/{path:path}", _read_only, methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    app.add_api_route("/{path:path}", _not_replayed, methods=["GET"], include_in_schema=False)
    return app


async def _not_replayed(request: Request) -> JSONResponse:
    """A live route a replay does not have (the mode, the command availability): 404, not the 405 the
    catch-all above would otherwise answer for its path."""
    return JSONResponse({"detail": f"replay: no {request.url.path} on recorded data"}, status_code=404)
