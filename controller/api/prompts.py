"""Operator prompts over the API: what the running job waits for, and the operator's confirmation.

Glove work (opening a container, sealing the electrode, placing a box) is done by a person; the
production sequence asks through its `OperatorDesk` and waits. These routes let the HMI show the open
prompts and let a logged-in operator confirm one; the confirmation is recorded with the user's name
and `via="hmi"` in the job's events, next to how long the run waited.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from controller.api.context import Ctx, require
from controller.users.auth import Permission, Session

log = logging.getLogger(__name__)
router = APIRouter()


class PromptView(BaseModel):
    key: str = Field(description="identifies the prompt: <job id>:<step>")
    prompt: str = Field(description="what the operator is asked to do, in the plant's words")
    asked_at: float = Field(description="epoch seconds when the run started waiting")


class ConfirmationView(BaseModel):
    key: str
    user: str


@router.get("/api/prompts", response_model=list[PromptView], tags=["read"])
async def get_prompts(ctx: Ctx) -> list[PromptView]:
    """The glove-work prompts the running job waits for (empty when it waits for nothing)."""
    if ctx.desk is None:
        return []
    return [PromptView(key=r.key, prompt=r.prompt, asked_at=r.asked_at) for r in ctx.desk.pending()]


@router.post("/api/prompts/{key}/confirm", response_model=ConfirmationView, tags=["act"])
async def confirm_prompt(
    ctx: Ctx, key: str, session: Annotated[Session, require(Permission.COMMAND)]
) -> ConfirmationView:
    """Confirm that the glove work of prompt `key` is done; the run goes on and records who said so."""
    desk = ctx.desk
    if desk is None:
        raise HTTPException(503, "no production run in this controller process: nothing asks for glove work")
    if not desk.answer(key, session.user, "hmi"):
        raise HTTPException(404, f"no open prompt {key!r} (already confirmed, or not asked)")
    log.info("operator prompt confirmed", extra={"key": key, "user": session.user})
    return ConfirmationView(key=key, user=session.user)
