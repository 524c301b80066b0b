"""What every route of the API depends on: the live parts of the running controller, and who is asking.

Why it is shaped this way:

- **Route modules import this, never `controller.api.app`**: `controller.api.app` includes their routers, so
  the context and the auth dependencies live below both, and no route group imports another.
- **Reading over HTTP is open, acting needs a token** (`controller.users.auth`): `require(permission)`
  answers 401 without a valid session and 403 when the role may not; a route that acts takes its session
  from it. The live WebSocket checks its token itself (`controller.api.live`).
- **The past comes from the historian** (`ApiContext.historian`, None when the controller runs without
  one: those routes answer 503), and the optional parts (desk, batches, operations, trends) are None
  when this process does not offer them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, cast

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from controller.api.live_feed import LiveFeed, TelemetryHistory
from controller.api.trend_history import TrendHistory
from controller.historian.store import Historian
from controller.line.controller import LineController
from controller.users.auth import Permission, Session, TokenStore
from controller.users.login_throttle import LoginThrottle
from sequences.batch_host import BatchHost
from sequences.operator_desk import OperatorDesk
from sequences.space_operations import SpaceOperations

LOGIN_SLOTS: Final = 2  # PBKDF2 costs ~0.1 s of CPU; a login flood queues instead of starving the loop


@dataclass
class ApiContext:
    """Everything the routes reach; owned and started by the line service (`ControllerService`)."""

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
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)  # in memory: a restart clears it


def context_of(connection: HTTPConnection) -> ApiContext:
    return cast(ApiContext, connection.app.state.depline)


Ctx = Annotated[ApiContext, Depends(context_of)]
bearer = HTTPBearer(auto_error=False, description="the token from POST /api/login")


def require(permission: Permission) -> Any:
    """A dependency that yields the caller's session, or answers 401/403."""

    async def dependency(
        ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
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
