"""Sessions over HTTP: log in (throttled), log out, and the engineer's unlock of a locked-out login.

Why it is shaped this way:

- **The throttle speaks first** (`controller.users.login_throttle`): an attempt that comes too soon after
  wrong passwords answers 429 with Retry-After, one from a locked user name or address answers 423, and
  neither costs a password check. Only then does the attempt queue for a login slot (PBKDF2 is ~0.1 s of
  CPU, off the event loop, `LOGIN_SLOTS` at a time).
- **Every lockout and every unlock is on record as an alarm** (`login.lockout.<user>`,
  `login.address-lockout.<address>`, MEDIUM): the alarm board journals it, the historian keeps it, the
  HMI shows it and the MQTT bridge publishes it, like any other event a person must look into. The
  engineer's unlock clears the condition with their name in the evidence and acknowledges it: they
  have looked into it. Nothing else is kept: the counts live in memory and a restart clears them.
- **The client address is the socket's peer** as uvicorn reports it: behind a reverse proxy on this
  host that is the proxy's forwarded address (uvicorn trusts X-Forwarded-For from 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import time
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from controller.api.context import ApiContext, Ctx, bearer, require
from controller.api.requests import LoginRequest
from controller.api.views import LoginResponse
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmActionRefused, AlarmDefinition, AlarmDefinitionError
from controller.users.auth import PERMISSIONS, Permission, Session
from controller.users.login_throttle import Allowed, Counted, Locked, Lockout, Wait
from controller.users.passwords import authenticate

log = logging.getLogger(__name__)

LOGIN_QUEUE_TIMEOUT_S: Final = 5.0
_ALARM_LEVEL: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")  # what an alarm id (an MQTT topic level) allows
_ALARM_PREFIX: Final = {Counted.USER: "login.lockout.", Counted.ADDRESS: "login.address-lockout."}

router = APIRouter(tags=["session"])


class UnlockView(BaseModel):
    counted: str  # "user" or "address"
    key: str
    was_locked: bool
    alarm_id: str


def lockout_alarm_id(counted: Counted, key: str) -> str:
    """`login.lockout.op1`; a name no alarm id can carry becomes its digest (the evidence keeps the name)."""
    level = key if _ALARM_LEVEL.fullmatch(key) else "sha256-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return _ALARM_PREFIX[counted] + level


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


@router.post("/api/login", response_model=LoginResponse)
async def login(ctx: Ctx, body: LoginRequest, request: Request) -> LoginResponse:
    address = _client_address(request)
    verdict = ctx.login_throttle.attempt(body.user, address)
    if not isinstance(verdict, Allowed):
        raise _refusal(verdict, body.user, address)
    try:
        async with asyncio.timeout(LOGIN_QUEUE_TIMEOUT_S):
            await ctx.login_slots.acquire()
    except TimeoutError:
        ctx.login_throttle.abandoned(body.user, address)  # no password was checked
        raise HTTPException(503, "too many logins at once; try again") from None
    user = None
    try:  # PBKDF2 is CPU work: off the event loop, or acquisition and interlocks would wait for it
        user = await asyncio.to_thread(authenticate, ctx.controller.config, body.user, body.password)
    finally:
        ctx.login_slots.release()
        if user is not None:
            ctx.login_throttle.succeeded(body.user, address)
        else:  # a wrong password, or the check broke: either way it counts (fail closed)
            for lockout in ctx.login_throttle.failed(body.user, address):
                _record_lockout(ctx, lockout, body.user, address)
    if user is None:
        failures = ctx.login_throttle.failures(Counted.USER, body.user)
        log.warning("login refused", extra={"user": body.user, "address": address, "failures": failures})
        raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"})
    token, session = ctx.tokens.issue(user)
    log.info("login", extra={"user": user.name, "role": user.role, "address": address})
    return LoginResponse(
        token=token,
        user=session.user,
        role=session.role,
        expires_at=session.expires_at,
        permissions=sorted(p.value for p in PERMISSIONS[session.role]),
    )


def _refusal(verdict: Wait | Locked, user: str, address: str) -> HTTPException:
    """429 with Retry-After for a wait, 423 for a lockout; the password was not checked."""
    if isinstance(verdict, Wait):
        retry_s = max(1, math.ceil(verdict.retry_after_s))
        log.info("login throttled", extra={"user": user, "address": address, "retry_after_s": retry_s})
        return HTTPException(
            429,
            f"too many wrong passwords for this {verdict.counted.value}: try again in {retry_s} s",
            headers={"Retry-After": str(retry_s)},
        )
    log.warning("login refused: locked out", extra={"user": user, "address": address})
    if verdict.counted is Counted.USER:
        return HTTPException(
            423, f"user {user!r} is locked after too many wrong passwords: an engineer must unlock it"
        )
    return HTTPException(
        423, f"logins from {address} are locked after too many wrong passwords: an engineer must unlock them"
    )


def _record_lockout(ctx: ApiContext, lockout: Lockout, user: str, address: str) -> None:
    """Raise (and so journal) the lockout's alarm; the evidence says who, from where, how often."""
    alarm_id = lockout_alarm_id(lockout.counted, lockout.key)
    what = f"user {lockout.key!r}" if lockout.counted is Counted.USER else f"address {lockout.key}"
    unlock = "users" if lockout.counted is Counted.USER else "addresses"
    board = ctx.controller.alarms
    with contextlib.suppress(AlarmDefinitionError):  # an id taken otherwise: raise it as it stands
        board.define(
            AlarmDefinition(
                alarm_id,
                Severity.MEDIUM,
                f"Login locked: {what}, after too many wrong passwords",
                "Someone may be guessing a password, or a person cannot log in. Check with them, then an "
                f"engineer unlocks it (POST /api/{unlock}/<name>/unlock); a restart also clears it.",
            )
        )
    text = f"{lockout.failures} wrong passwords in a row for {what} (last: user {user!r} from {address})"
    board.raise_alarm(
        alarm_id,
        time.time(),
        {"text": text, "counted": lockout.counted.value, "key": lockout.key, "failures": lockout.failures},
    )
    log.warning("login locked out", extra={"counted": lockout.counted.value, "key": lockout.key})


@router.post("/api/logout", status_code=204)
async def logout(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    if credentials is not None:
        ctx.tokens.revoke(credentials.credentials)


@router.post("/api/users/{name}/unlock", response_model=UnlockView)
async def unlock_user(
    ctx: Ctx, name: str, session: Annotated[Session, require(Permission.UNLOCK_LOGIN)]
) -> UnlockView:
    """Lift a user name's lockout and forget its wrong passwords; recorded with the engineer's name."""
    return _unlock(ctx, Counted.USER, name, session.user)


@router.post("/api/addresses/{address}/unlock", response_model=UnlockView)
async def unlock_address(
    ctx: Ctx, address: str, session: Annotated[Session, require(Permission.UNLOCK_LOGIN)]
) -> UnlockView:
    """Lift a client address's lockout and forget its wrong passwords; recorded with the engineer's name."""
    return _unlock(ctx, Counted.ADDRESS, address, session.user)


def _unlock(ctx: ApiContext, counted: Counted, key: str, engineer: str) -> UnlockView:
    was_locked = ctx.login_throttle.unlock(counted, key)
    alarm_id = lockout_alarm_id(counted, key)
    board = ctx.controller.alarms
    if any(d.id == alarm_id for d in board.definitions):
        now = time.time()
        board.clear(alarm_id, now, {"unlocked_by": engineer, "text": f"unlocked by {engineer}"})
        if board.get(alarm_id).unacknowledged:
            with contextlib.suppress(AlarmActionRefused):  # e.g. shelved: the clear is on record anyway
                board.acknowledge(alarm_id, engineer, now)  # whoever unlocks has looked into it
    log.warning(
        "login unlocked",
        extra={"counted": counted.value, "key": key, "by": engineer, "was_locked": was_locked},
    )
    return UnlockView(counted=counted.value, key=key, was_locked=was_locked, alarm_id=alarm_id)
