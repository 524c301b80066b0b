"""The line's unit mode over HTTP: read by anyone, changed by the people the mode is for.

`GET /api/mode` says who acts on the line now (and, in production, which batch); `POST /api/mode`
switches it, every change with a reason and the user on record: to manual (a held batch lets go),
back to production (only the held batch takes the line back, with every manual change since on its
record), to maintenance (engineers). `POST /api/devices/{name}/service` takes a device out of service
or puts it back (maintenance, engineers). A refused change answers 409 with the reason.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from controller.api.context import ApiContext, Ctx, require
from controller.historian.errors import HistorianUnavailable
from controller.line.modes import ModeChange, ModeRefused, ModeState, UnitMode
from controller.users.auth import Permission, Session
from sequences.batch_host import BatchHost, BatchRefused

log = logging.getLogger(__name__)
router = APIRouter()


class ModeView(BaseModel):
    mode: Literal["production", "manual", "maintenance"]
    owner: str | None = Field(description="the batch that owns the line in production")
    since: float
    user: str
    reason: str
    out_of_service: list[str] = Field(description="devices an engineer took out of service")
    words: str = Field(description="the mode as the HMI shows it")


class ModeChangeView(BaseModel):
    ts: float
    mode: str
    previous: str
    user: str
    reason: str
    owner: str | None
    device: str | None = Field(description="set when a device was taken out of or put back into service")
    in_service: bool | None


class ModeRequest(BaseModel):
    mode: Literal["production", "manual", "maintenance"]
    reason: str = Field(min_length=1, max_length=500)


class ServiceRequest(BaseModel):
    in_service: bool
    reason: str = Field(min_length=1, max_length=500)


def mode_view(state: ModeState) -> ModeView:
    return ModeView(
        mode=state.mode.value,
        owner=state.owner,
        since=state.since_ts,
        user=state.user,
        reason=state.reason,
        out_of_service=sorted(state.out_of_service),
        words=state.words(),
    )


@router.get("/api/mode", response_model=ModeView, tags=["read"])
async def get_mode(ctx: Ctx) -> ModeView:
    """The line's unit mode: production (a batch owns the actuators), manual or maintenance."""
    return mode_view(ctx.controller.modes.current)


@router.get("/api/mode/journal", response_model=list[ModeChangeView], tags=["read"])
async def get_mode_journal(
    ctx: Ctx,
    since: Annotated[float, Query(description="epoch seconds; only newer changes")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ModeChangeView]:
    """Who had the line when: every mode change and device service change, the processes before this
    one's included (from the historian), oldest first."""
    live = [_change_view(c) for c in ctx.controller.modes.journal if c.ts > since]
    stored: list[ModeChangeView] = []
    if ctx.historian is not None:
        try:
            stored = [ModeChangeView(**row) for row in await ctx.historian.mode_journal(since, limit)]
        except HistorianUnavailable as exc:
            log.warning("mode journal served from memory only", extra={"error": str(exc)})
    seen = {(v.ts, v.mode, v.user) for v in stored}
    merged = sorted(stored + [v for v in live if (v.ts, v.mode, v.user) not in seen], key=lambda v: v.ts)
    return merged[-limit:]


def _change_view(change: ModeChange) -> ModeChangeView:
    return ModeChangeView(
        ts=change.ts,
        mode=change.mode.value,
        previous=change.previous.value,
        user=change.user,
        reason=change.reason,
        owner=change.owner,
        device=change.device,
        in_service=change.in_service,
    )


@router.post("/api/mode", response_model=ModeView, tags=["act"])
async def change_mode(
    ctx: Ctx, body: ModeRequest, session: Annotated[Session, require(Permission.CHANGE_MODE)]
) -> ModeView:
    """Switch the mode; maintenance needs an engineer; production is taken back by the held batch."""
    to = UnitMode(body.mode)
    if UnitMode.MAINTENANCE in (to, ctx.controller.modes.current.mode) and not session.may(
        Permission.MAINTAIN
    ):
        raise HTTPException(403, f"role {session.role!r} may not enter or leave maintenance")
    try:
        if to is UnitMode.PRODUCTION:
            state = await _batches(ctx).reclaim(session.user, body.reason)
        else:
            state = ctx.controller.modes.change(to, session.user, body.reason)
    except (ModeRefused, BatchRefused) as exc:
        raise HTTPException(409, str(exc)) from None
    log.warning("unit mode changed", extra={"mode": to.value, "user": session.user})
    return mode_view(state)


@router.post("/api/devices/{name}/service", response_model=ModeView, tags=["act"])
async def set_service(
    ctx: Ctx, name: str, body: ServiceRequest, session: Annotated[Session, require(Permission.MAINTAIN)]
) -> ModeView:
    """Take a device out of service (its readings count as unknown) or put it back; maintenance only."""
    if name not in {d.name for d in ctx.controller.config.devices}:
        raise HTTPException(404, f"no device {name!r} on line {ctx.controller.config.name!r}")
    try:
        state = ctx.controller.modes.set_in_service(name, body.in_service, session.user, body.reason)
    except ModeRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return mode_view(state)


def _batches(ctx: ApiContext) -> BatchHost:
    if ctx.batches is None:
        raise HTTPException(409, "this controller runs no batches: production is a batch's mode")
    return ctx.batches
