"""Manual antechamber operations over the API: what the HMI's operations panel shows and starts.

The operations themselves (`sequences.space_operations`) act through the command gate in the name of
the logged-in person; these routes only start, cancel and list them. A refusal (a batch is running,
the space already runs one, a space that is no antechamber) is 409 with the reason in words, so the
page can show the operator why without knowing the rules.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from controller.api.context import ApiContext, Ctx, require
from controller.users.auth import Permission, Session
from sequences.space_operations import (
    MAX_CYCLES,
    OperationRefused,
    OperationView,
    SpaceOperations,
    UnknownSpace,
)

log = logging.getLogger(__name__)
router = APIRouter()


class OperationModel(BaseModel):
    id: str
    space: str
    kind: str = Field(description='"cycle", "fill" or "pump_down"')
    user: str = Field(description="who started it; every command it sends is in this name")
    state: str = Field(description='"running", "done", "failed" or "cancelled"')
    step: str = Field(description='what it does now, e.g. "cycle 2 of 3: back-filling"')
    fraction: float = Field(description="0..1, estimated from the pressure")
    message: str = Field(description="why it failed or was cancelled, or what it left when done")
    started_at: float = Field(description="epoch seconds")
    ended_at: float | None = Field(description="epoch seconds; null while running")
    cycles: int | None = Field(description="pump/purge cycles asked for (cycle operations)")


class OperationsView(BaseModel):
    runs_here: bool = Field(description="whether this controller process offers manual operations")
    spaces: list[str] = Field(description="the antechambers the operations work on")
    default_cycles: int = Field(description="the line's purge cycles, the HMI's default")
    max_cycles: int
    operations: list[OperationModel] = Field(description="running first, then recently ended, newest first")


class OperationRequest(BaseModel):
    kind: Literal["cycle", "fill", "pump_down"]
    cycles: int | None = Field(default=None, ge=1, le=MAX_CYCLES, description="cycle operations only")


def _model(view: OperationView) -> OperationModel:
    return OperationModel(
        id=view.id,
        space=view.space,
        kind=view.kind,
        user=view.user,
        state=view.state,
        step=view.step,
        fraction=view.fraction,
        message=view.message,
        started_at=view.started_at,
        ended_at=view.ended_at,
        cycles=view.cycles,
    )


def _operations(ctx: ApiContext) -> SpaceOperations:
    if ctx.operations is None:
        raise HTTPException(503, "this controller process offers no manual operations")
    return ctx.operations


def _refused(exc: OperationRefused) -> HTTPException:
    return HTTPException(404 if isinstance(exc, UnknownSpace) else 409, str(exc))


@router.get("/api/operations", response_model=OperationsView, tags=["read"])
async def list_operations(ctx: Ctx) -> OperationsView:
    """Manual operations: the running ones with their step and progress, then the recently ended ones."""
    ops = ctx.operations
    if ops is None:
        return OperationsView(
            runs_here=False, spaces=[], default_cycles=0, max_cycles=MAX_CYCLES, operations=[]
        )
    return OperationsView(
        runs_here=True,
        spaces=list(ops.spaces),
        default_cycles=ops.default_cycles,
        max_cycles=MAX_CYCLES,
        operations=[_model(v) for v in ops.views()],
    )


@router.post("/api/spaces/{space}/operations", response_model=OperationModel, status_code=202, tags=["act"])
async def start_operation(
    space: str, body: OperationRequest, ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]
) -> OperationModel:
    """Start a manual operation on an antechamber; 202: it runs in the background (GET /api/operations)."""
    ops = _operations(ctx)
    try:
        view = ops.start(space, body.kind, session.user, cycles=body.cycles)
    except OperationRefused as exc:
        log.info("operation refused", extra={"space": space, "user": session.user, "reason": str(exc)})
        raise _refused(exc) from None
    return _model(view)


@router.post("/api/spaces/{space}/operations/cancel", response_model=OperationModel, tags=["act"])
async def cancel_operation(
    space: str, ctx: Ctx, session: Annotated[Session, require(Permission.COMMAND)]
) -> OperationModel:
    """Cancel the operation running on `space`; answers once the space is in its safe state."""
    ops = _operations(ctx)
    try:
        view = await ops.cancel(space, session.user)
    except OperationRefused as exc:
        raise _refused(exc) from None
    return _model(view)
