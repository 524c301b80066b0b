"""Which manual commands the gate would refuse now, and why: the HMI greys those buttons out.

`GET /api/commands/availability` lists every actuator command the HMI offers on this line (each port
opened or closed, each space's valves, pump and turbo) with the gate's verdict on it if the caller sent
it now from the HMI.

Why it is shaped this way:

- **The gate's own judgement, dry.** Each verdict is `CommandGate.judge`: the mode's refusal first, then
  the interlocks, against one state of the line; nothing moves and nothing is recorded as a command, so
  polling this route leaves the command record as it was. A disabled button is a courtesy, never the
  safety: `POST /api/commands` judges again whatever a page sends.
- **Judged as the caller.** The mode asks who is commanding (maintenance admits engineers only), so the
  verdict is for the caller's role when a valid token comes with the request; an anonymous reader gets
  the verdict for nobody in particular and a `login` sentence saying a person must log in to act.
- **Keys a page can find its buttons by** (`port:inlet.outer:open`, `valve:process:vent:close`,
  `pump:inlet:on`, `turbo:process:off`): the HMI tags each button with its key.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from controller.api.context import Ctx, bearer
from controller.api.views import RefusalView, action_fields, jsonable
from controller.line.actions import VALVES, Action, Command, SetPort, SetPump, SetTurbo, SetValve
from controller.line.state import LineState
from controller.users.auth import Permission

router = APIRouter()


class CommandAvailability(BaseModel):
    key: str = Field(description="what the HMI tags the command's button with")
    action: dict[str, Any] = Field(description='the action with its "type", as POST /api/commands takes it')
    allowed: bool
    reason: str = Field(description='"allowed", or the sentence the gate would refuse it with')
    refusals: list[RefusalView]


class AvailabilityView(BaseModel):
    mode: str = Field(description="the unit mode the verdicts were judged in")
    login: str = Field(description='"" when the caller may command; otherwise why not (log in, role)')
    commands: list[CommandAvailability]


def offered_commands(state: LineState, turbos: Collection[str]) -> list[tuple[str, Action]]:
    """Every manual actuator command the HMI offers on this line, each with its button's key: every
    space has a pump (rough or backing), the spaces in `turbos` a turbo."""
    offered: list[tuple[str, Action]] = []
    for port in state.ports.values():
        for open_ in (True, False):
            offered.append((f"port:{port.name}:{'open' if open_ else 'close'}", SetPort(port.name, open_)))
    for space in state.spaces.values():
        for on in (True, False):
            offered.append((f"pump:{space.name}:{'on' if on else 'off'}", SetPump(space.name, on)))
        if space.name in turbos:
            for on in (True, False):
                offered.append((f"turbo:{space.name}:{'on' if on else 'off'}", SetTurbo(space.name, on)))
        for valve in (v for v in VALVES if v in space.valves):
            for open_ in (True, False):
                key = f"valve:{space.name}:{valve}:{'open' if open_ else 'close'}"
                offered.append((key, SetValve(space.name, valve, open_)))
    return offered


@router.get("/api/commands/availability", response_model=AvailabilityView, tags=["read"])
async def get_availability(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> AvailabilityView:
    """Each command the HMI offers, allowed or with the gate's reason, judged now and not recorded."""
    session = ctx.tokens.resolve(credentials.credentials) if credentials is not None else None
    user, role = (session.user, session.role) if session is not None else ("", "")
    if session is None:
        login = "log in to command the line"
    elif not session.may(Permission.COMMAND):
        login = f"role {session.role!r} may not command the line"
    else:
        login = ""
    gate = ctx.controller.gate
    state = gate.state()  # one state for every verdict, so they agree with each other
    commands = []
    for key, action in offered_commands(state, ctx.controller.model.readings.turbo):
        verdict = gate.judge(Command(action, user, "hmi", meta={"role": role}), state)
        commands.append(
            CommandAvailability(
                key=key,
                action=action_fields(action),
                allowed=verdict.allowed,
                reason="; ".join(r.reason for r in verdict.refusals) or "allowed",
                refusals=[
                    RefusalView(
                        invariant=r.invariant, rule=r.rule, reason=r.reason, evidence=jsonable(r.evidence)
                    )
                    for r in verdict.refusals
                ],
            )
        )
    return AvailabilityView(mode=gate.modes.current.words(), login=login, commands=commands)
