"""`GET /api/trends`: the controller's trend history (`controller.api.trend_history`), so the HMI's charts
start with the last two hours instead of empty.

Each series is downsampled to at most `MAX_DRAWN` points for the asked window (what the page draws at
most), so a two-hour answer stays a few tens of kilobytes. A gap is `null`, never a drawn-through value.
`now` is the controller's epoch seconds when it answered: the page shifts the points by its own clock's
difference, so a browser with a wrong clock still joins history and live samples in order.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from controller.api.context import Ctx
from controller.api.trend_history import DEFAULT_KEEP_S, MAX_DRAWN

MIN_WINDOW_S = 300.0


class TrendSeriesView(BaseModel):
    space: str
    kind: str = Field(description='"pressure", "frost" (frost point) or "substrate" (substrate temperature)')
    unit: str
    points: list[tuple[float, float | None]] = Field(
        description="[epoch seconds, value or null for a gap], oldest first"
    )


class TrendsView(BaseModel):
    now: float = Field(description="the controller's epoch seconds when it answered")
    sample_s: float = Field(description="the history's sampling interval")
    series: list[TrendSeriesView]


router = APIRouter()


@router.get("/api/trends", response_model=TrendsView, tags=["read"])
async def get_trends(
    ctx: Ctx,
    window_s: Annotated[
        float, Query(ge=MIN_WINDOW_S, le=DEFAULT_KEEP_S, description="how far back, in seconds")
    ] = DEFAULT_KEEP_S,
) -> TrendsView:
    history = ctx.trends
    if history is None:
        raise HTTPException(503, "this controller keeps no trend history")
    now = time.time()
    return TrendsView(
        now=now,
        sample_s=history.sample_s,
        series=[
            TrendSeriesView(space=w.space, kind=w.kind, unit=w.unit, points=w.points)
            for w in history.window(window_s, now, MAX_DRAWN)
        ],
    )
