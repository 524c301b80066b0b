"""The flight recorder over HTTP: history, timeline, samples and rejudge, the same queries as the CLI.

Why it is built this way:

- **One query per question, three ways in.** The routes call the functions `depline history`,
  `timeline`, `samples` and `rejudge` call (`controller.flight_recorder`), on the service's own
  historian, so a screen and a terminal cannot disagree about the past.
- **Reading is open** like every read route; nothing here writes. The routes read `FlightRecords`
  (a historian and the line's configuration): the live service's, or a replay's
  (`controller.api.replay`), which has no controller behind it.
- **Bounded.** A sample export streams page by page and stops at `MAX_SAMPLE_ROWS` (a day of a
  space's instruments fits); a rejudge runs at most one at a time, since it is CPU work on the loop
  that also serves the line.
- **Downsampled for a chart** (`max_points`): the HMI's trends show hours or days of the record in a few
  hundred pixels. Each channel's range is cut into equal time buckets and each bucket keeps its lowest
  and highest trusted reading and its first untrusted one: a spike and a gap survive what an average
  or every-n-th row would hide. Done here, on the pages as they stream, so memory is the buckets
  (`depline samples --max-points` groups min and max in the database instead: a summary for a file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from starlette.requests import HTTPConnection

from controller.api.context import context_of
from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.flight_recorder.history import HistoryFilter, find_history
from controller.flight_recorder.rejudge import rejudge
from controller.flight_recorder.sample_export import (
    csv_text,
    jsonl_text,
    sample_record,
    select_channels,
)
from controller.flight_recorder.time_range import parse_instant
from controller.flight_recorder.timeline import Window, timeline, window_of_run
from controller.historian.errors import HistorianUnavailable
from controller.historian.record_search import SampleRow
from controller.historian.store import Historian

router = APIRouter()
MAX_SAMPLE_ROWS: Final = 2_000_000
MAX_CHART_POINTS: Final = 6000
_REJUDGE = asyncio.Semaphore(1)


@dataclass(frozen=True)
class FlightRecords:
    historian: Historian | None
    config: LineConfig


def records_of(connection: HTTPConnection) -> FlightRecords:
    """A replay's app sets its records; the live app's come from its context."""
    found = getattr(connection.app.state, "flight_records", None)
    if isinstance(found, FlightRecords):
        return found
    ctx = context_of(connection)
    return FlightRecords(ctx.historian, ctx.controller.config)


Ctx = Annotated[FlightRecords, Depends(records_of)]


def _historian(ctx: FlightRecords) -> Historian:
    if ctx.historian is None:
        raise HTTPException(503, "this controller process keeps no records")
    return ctx.historian


def _instant(name: str, text: str | None) -> float | None:
    try:
        return None if text is None else parse_instant(name, text)
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/api/history", tags=["read"])
async def get_history(
    ctx: Ctx,
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    recipe: str | None = None,
    item: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """Batches and their jobs, newest first, with each electrode's certificate verdict."""
    wanted = HistoryFilter(_instant("since", since), _instant("until", until), outcome, recipe, item, limit)
    try:
        found = await find_history(_historian(ctx), ctx.config, wanted)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    return [b.as_json() for b in found]


async def _window(historian: Historian, run: str | None, since: str | None, until: str | None) -> Window:
    if run is not None:
        return await window_of_run(historian, run)
    start, end = _instant("from", since), _instant("to", until)
    if start is None or end is None or end <= start:
        raise HTTPException(422, "give run, or from and to with to after from")
    return Window(start, end, 1.0, "range")


@router.get("/api/timeline", tags=["read"])
async def get_timeline(
    ctx: Ctx,
    run: str | None = None,
    since: Annotated[str | None, Query(alias="from")] = None,
    until: Annotated[str | None, Query(alias="to")] = None,
    space: str | None = None,
) -> dict[str, Any]:
    """Every recorded event of a job, batch, service run or range in one time order."""
    historian = _historian(ctx)
    try:
        window = await _window(historian, run, since, until)
        entries = await timeline(historian, window, space=space)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    except HistorianUnavailable as exc:
        raise HTTPException(503, f"the records cannot be read: {exc}") from None
    shown = dataclasses.asdict(window)
    shown["until_ts"] = None if window.until_ts == float("inf") else window.until_ts  # JSON has no infinity
    return {"window": shown, "entries": [e.as_json() for e in entries]}


@router.get("/api/samples", tags=["read"])
async def get_samples(
    ctx: Ctx,
    since: Annotated[str, Query(alias="from")],
    until: Annotated[str, Query(alias="to")],
    space: str | None = None,
    channel: str | None = None,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
    max_points: Annotated[int | None, Query(ge=3, le=MAX_CHART_POINTS)] = None,
) -> StreamingResponse:
    """Every recorded reading of a space (all its instruments) or a channel (DEVICE.CHANNEL) in a range;
    with `max_points`, at most that many per channel: the lowest, the highest and the first untrusted
    reading of each of max_points/3 equal time buckets."""
    historian = _historian(ctx)
    start, end = _instant("from", since), _instant("to", until)
    if start is None or end is None or end <= start:
        raise HTTPException(422, "to must be after from")
    if (space is None) == (channel is None):
        raise HTTPException(422, "give exactly one of space and channel")
    try:
        chosen = await select_channels(historian, ctx.config, space=space, channel=channel)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    by_id = {c.id: c for c in chosen}
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    if max_points is not None:
        buckets = ChartBuckets(start, end, max_points // 3)
        async for page in historian.sample_pages(list(by_id), start, end):
            buckets.add(page)
        records = [sample_record(r, by_id[r.channel_id]) for r in buckets.rows()]
        text = csv_text(records, header=True) if fmt == "csv" else jsonl_text(records)
        return StreamingResponse(iter([text] if records else []), media_type=media)

    async def rows() -> AsyncIterator[str]:
        sent = 0
        async for page in historian.sample_pages(list(by_id), start, end):
            records = [sample_record(r, by_id[r.channel_id]) for r in page[: MAX_SAMPLE_ROWS - sent]]
            yield csv_text(records, header=sent == 0) if fmt == "csv" else jsonl_text(records)
            sent += len(records)
            if sent >= MAX_SAMPLE_ROWS:
                return

    return StreamingResponse(rows(), media_type=media)


class ChartBuckets:
    """Per channel and time bucket: the lowest and highest trusted sample and the first untrusted one."""

    def __init__(self, since_ts: float, until_ts: float, buckets: int) -> None:
        self.since_ts = since_ts
        self.width_s = (until_ts - since_ts) / max(1, buckets)
        self.last = max(1, buckets) - 1
        self.kept: dict[tuple[int, int], list[SampleRow | None]] = {}

    def add(self, page: list[SampleRow]) -> None:
        for row in page:
            bucket = min(self.last, int((row.ts - self.since_ts) / self.width_s))
            kept = self.kept.setdefault((row.channel_id, bucket), [None, None, None])
            value = row.value
            if value is None or math.isnan(value) or row.quality != "ok":
                kept[2] = kept[2] or row
                continue
            low, high = kept[0], kept[1]
            if low is None or low.value is None or value < low.value:
                kept[0] = row
            if high is None or high.value is None or value > high.value:
                kept[1] = row

    def rows(self) -> list[SampleRow]:
        """The kept samples, each once, oldest first (as an export is)."""
        kept = {r.id: r for found in self.kept.values() for r in found if r is not None}
        return sorted(kept.values(), key=lambda r: (r.ts, r.id))


@router.get("/api/rejudge/{run}", tags=["read"])
async def get_rejudge(ctx: Ctx, run: str) -> dict[str, Any]:
    """A recorded job, batch or run judged again with this service's rules: the disagreements."""
    historian = _historian(ctx)
    if _REJUDGE.locked():
        raise HTTPException(429, "a rejudge is already running: try again when it has ended")
    async with _REJUDGE:
        try:
            window = await window_of_run(historian, run)
            result = await rejudge(historian, ctx.config, window)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None
        except HistorianUnavailable as exc:
            raise HTTPException(503, f"the records cannot be read: {exc}") from None
    return {
        "run": run,
        "commands_judged": result.commands_judged,
        "instants_watched": result.instants_watched,
        "samples_replayed": result.samples_replayed,
        "disagreements": [dataclasses.asdict(d) for d in result.disagreements],
    }
