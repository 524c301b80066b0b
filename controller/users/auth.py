"""Who may do what through the HTTP API: roles, the permissions table, and login sessions.

Reading the line is open (the API binds to localhost unless a site binds it to the plant network);
anything that moves hardware or acts on alarms needs a logged-in user, because every command and every
acknowledgement is recorded with a name. What each role may do is decided in ONE table,
`PERMISSIONS`, so a review of the access rules is a review of that table.

Sessions are bearer tokens held in memory only: a controller restart logs everybody out, which is the
safe direction. The store keeps a SHA-256 digest of each token, not the token itself, so a memory or
debug dump does not hand out live sessions; tokens expire (`ttl_s`, a shift by default) and the
number of live sessions is bounded so a login loop cannot grow memory without limit.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from controller.config.line_config import ROLES, UserConfig

log = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 8 * 3600.0  # one shift: a forgotten session does not outlive the person's day
MAX_SESSIONS: Final = 256


class Permission(enum.StrEnum):
    COMMAND = "command"  # any actuator command or item move, judged by the gate like every other origin
    ACKNOWLEDGE_ALARM = "alarm.acknowledge"
    SHELVE_ALARM = "alarm.shelve"  # hiding an alarm is a judgement about the plant: engineers and up
    UNSHELVE_ALARM = "alarm.unshelve"
    REGISTER_ITEM = "item.register"  # creates records the exposure ledger must later prove
    UNLOCK_LOGIN = "login.unlock"  # lifts a lockout after wrong passwords: someone must have looked into it
    CHANGE_MODE = "mode.change"  # manual <-> production for a held batch
    MAINTAIN = "mode.maintenance"  # maintenance mode and devices out of service: engineers and up


_OPERATOR: Final = frozenset({Permission.COMMAND, Permission.ACKNOWLEDGE_ALARM, Permission.CHANGE_MODE})
_ENGINEER: Final = _OPERATOR | {
    Permission.MAINTAIN,
    Permission.SHELVE_ALARM,
    Permission.UNSHELVE_ALARM,
    Permission.REGISTER_ITEM,
    Permission.UNLOCK_LOGIN,
}

PERMISSIONS: Final[Mapping[str, frozenset[Permission]]] = MappingProxyType(
    {
        "operator": _OPERATOR,
        "engineer": _ENGINEER,
        "maintenance": frozenset(Permission),  # everything, including permissions added later
    }
)
"""Role -> what it may do. Every role of `line_config.ROLES` has a row (checked at import)."""

_missing = set(ROLES) ^ set(PERMISSIONS)
if _missing:  # a role added to the config without a row here would silently have no rights, or vice versa
    raise RuntimeError(f"PERMISSIONS and config.ROLES disagree on roles: {sorted(_missing)}")


def allowed(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    issued_at: float
    expires_at: float

    def may(self, permission: Permission) -> bool:
        return allowed(self.role, permission)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Live sessions by token digest; `clock` gives epoch seconds (injectable so expiry is testable)."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 s, got {ttl_s!r}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions!r}")
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._sessions)

    def issue(self, user: UserConfig, *, now: float | None = None) -> tuple[str, Session]:
        """A new random token for an authenticated user; the oldest session goes when the store is full."""
        issued = self._clock() if now is None else now
        self._purge(issued)
        while len(self._sessions) >= self.max_sessions:
            _, evicted = self._sessions.popitem(last=False)
            log.warning("session store full; oldest session ended", extra={"user": evicted.user})
        token = secrets.token_urlsafe(32)
        session = Session(user.name, user.role, issued, issued + self.ttl_s)
        self._sessions[_digest(token)] = session
        return token, session

    def resolve(self, token: str, *, now: float | None = None) -> Session | None:
        """The session a token opens, or None if it is unknown or expired (an expired one is dropped)."""
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        if (self._clock() if now is None else now) >= session.expires_at:
            del self._sessions[key]
            return None
        return session

    def revoke(self, token: str) -> bool:
        return self._sessions.pop(_digest(token), None) is not None

    def _purge(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now >= s.expires_at]:
            del self._sessions[key]
