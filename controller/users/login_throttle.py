"""Login throttling: a growing wait after wrong passwords, and a lockout only an engineer lifts.

Why it is shaped this way:

- **Counted twice, per user name and per client address**, so guessing one person's password from many
  addresses, and many people's from one address, both meet a limit. Every name is counted, configured or
  not: a name that never locks would tell a guesser which names are real.
- **A wait is a refusal, not a sleep.** An attempt made before the wait is over is answered at once
  (429 with Retry-After) and its password is never checked: no PBKDF2 time is spent on it and the guesser
  learns nothing. An attempt is counted as failed *when it starts* (`attempt`) and forgiven when it
  succeeds, so a hundred attempts fired in parallel meet the same waits as a hundred in a row.
- **The waits** (`ThrottlePolicy`): none for the first few failures (people mistype), then 1, 2, 4 ...
  seconds, capped. After `lockout_after` failures in a row the name (or address) is locked until an
  engineer unlocks it: waits alone let a patient guesser go on for ever, a lockout puts a person in the
  loop. A user name locks after 10 (an operator who mistyped ten times will call someone anyway); an
  address after 30, because several people log in from one panel and a panel locked out of the line
  is worse than one person locked out.
- **A success clears the name's and the address's counts**: whoever logs in from that panel has shown it
  is not a guesser's.
- **In memory only**: a restart clears every count and every lockout, like the sessions
  (`controller.users.auth`). That is acceptable because a restart is itself an engineer's act and is
  recorded; it is also the way back in when every engineer is locked out. The tables are bounded
  (`max_tracked` each): the oldest unlocked entries go first.
- **Pure**: no I/O and an injectable monotonic clock; the API (`controller.api.session`) answers the HTTP
  and records every lockout and every unlock as an alarm.
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

IN_FLIGHT_RETRY_S: Final = 1.0  # a lockout may be decided by an attempt still being checked


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How long to wait after the n-th wrong password in a row, and when to lock."""

    free_failures: int = 2
    first_wait_s: float = 1.0
    max_wait_s: float = 30.0
    lockout_after: int = 10

    def __post_init__(self) -> None:
        if self.free_failures < 0 or self.lockout_after < 1:
            raise ValueError("free_failures must be >= 0 and lockout_after >= 1")
        if not (0 < self.first_wait_s <= self.max_wait_s and math.isfinite(self.max_wait_s)):
            raise ValueError("waits must be finite and 0 < first_wait_s <= max_wait_s")

    def wait_after(self, failures: int) -> float:
        """0 for the free failures, then first_wait_s doubling each time, capped at max_wait_s."""
        beyond = failures - self.free_failures
        if beyond <= 0:
            return 0.0
        return min(self.first_wait_s * 2.0 ** min(beyond - 1, 60), self.max_wait_s)


USER_POLICY: Final = ThrottlePolicy()
ADDRESS_POLICY: Final = ThrottlePolicy(free_failures=5, lockout_after=30)


class Counted(enum.StrEnum):
    USER = "user"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class Allowed:
    """Check the password now."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Too soon after a wrong password: try again in `retry_after_s`."""

    counted: Counted
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Locked:
    """Locked out until an engineer unlocks `key` (a user name or an address)."""

    counted: Counted
    key: str


Verdict = Allowed | Wait | Locked


@dataclass(frozen=True, slots=True)
class Lockout:
    """A lockout that has just begun: the caller records it."""

    counted: Counted
    key: str
    failures: int


@dataclass(slots=True)
class _Failures:
    count: int = 0
    not_before: float = 0.0
    locked: bool = False


class _Counts:
    """The failures of one kind of key (user names or addresses), bounded in number."""

    def __init__(self, counted: Counted, policy: ThrottlePolicy, max_tracked: int) -> None:
        self.counted = counted
        self.policy = policy
        self.max_tracked = max_tracked
        self._entries: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first

    def verdict(self, key: str, now: float) -> Verdict:
        entry = self._entries.get(key)
        if entry is None:
            return Allowed()
        if entry.locked:
            return Locked(self.counted, key)
        if entry.count >= self.policy.lockout_after:  # the attempt that decides is still being checked
            return Wait(self.counted, IN_FLIGHT_RETRY_S)
        if now < entry.not_before:
            return Wait(self.counted, entry.not_before - now)
        return Allowed()

    def count_failure(self, key: str, now: float) -> None:
        entry = self._entries.pop(key, None) or _Failures()
        self._entries[key] = entry  # now the most recent
        entry.count += 1
        entry.not_before = now + self.policy.wait_after(entry.count)
        self._bound()

    def forgive(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.locked:
            return
        entry.count -= 1
        if entry.count <= 0:
            del self._entries[key]
        else:
            entry.not_before = 0.0

    def lock_if_due(self, key: str) -> Lockout | None:
        entry = self._entries.get(key)
        if entry is None or entry.locked or entry.count < self.policy.lockout_after:
            return None
        entry.locked = True
        return Lockout(self.counted, key, entry.count)

    def clear(self, key: str) -> bool:
        """Forget `key`'s failures; True if it was locked."""
        entry = self._entries.pop(key, None)
        return entry is not None and entry.locked

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.count if entry is not None else 0

    def locked(self) -> list[str]:
        return [key for key, entry in self._entries.items() if entry.locked]

    def _bound(self) -> None:
        while len(self._entries) > self.max_tracked:
            victim = next((k for k, e in self._entries.items() if not e.locked), None)
            if victim is None:
                victim = next(iter(self._entries))
            del self._entries[victim]


class LoginThrottle:
    """Per user name and per client address: `attempt`, then `failed` or `succeeded`, for every login.

    `clock` gives monotonic seconds (injectable so waits are testable without waiting).
    """

    def __init__(
        self,
        *,
        user_policy: ThrottlePolicy = USER_POLICY,
        address_policy: ThrottlePolicy = ADDRESS_POLICY,
        max_tracked: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be >= 1, got {max_tracked!r}")
        self._users = _Counts(Counted.USER, user_policy, max_tracked)
        self._addresses = _Counts(Counted.ADDRESS, address_policy, max_tracked)
        self._clock = clock

    def attempt(self, user: str, address: str) -> Verdict:
        """May this login be checked now? If so it counts as failed until `succeeded` says otherwise."""
        now = self._clock()
        verdicts = (self._users.verdict(user, now), self._addresses.verdict(address, now))
        for verdict in verdicts:
            if isinstance(verdict, Locked):
                return verdict
        waits = [v for v in verdicts if isinstance(v, Wait)]
        if waits:
            return max(waits, key=lambda w: w.retry_after_s)
        self._users.count_failure(user, now)
        self._addresses.count_failure(address, now)
        return Allowed()

    def failed(self, user: str, address: str) -> list[Lockout]:
        """The password was wrong (already counted by `attempt`): the lockouts this failure began."""
        found = (self._users.lock_if_due(user), self._addresses.lock_if_due(address))
        return [lockout for lockout in found if lockout is not None]

    def succeeded(self, user: str, address: str) -> None:
        self._users.clear(user)
        self._addresses.clear(address)

    def abandoned(self, user: str, address: str) -> None:
        """The check could not be made (no login slot): the attempt counts for nothing."""
        self._users.forgive(user)
        self._addresses.forgive(address)

    def unlock(self, counted: Counted, key: str) -> bool:
        """Forget `key`'s failures and lift its lockout; True if it was locked."""
        return (self._users if counted is Counted.USER else self._addresses).clear(key)

    def failures(self, counted: Counted, key: str) -> int:
        return (self._users if counted is Counted.USER else self._addresses).failures(key)

    def locked(self, counted: Counted) -> list[str]:
        return (self._users if counted is Counted.USER else self._addresses).locked()
