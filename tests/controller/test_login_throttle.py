"""Login throttling: the pure throttle on a fake clock, then wrong passwords against a real uvicorn server.

The server tests use short waits (a policy of tenths of seconds) so a hundred attempts take seconds; they
assert lower bounds only (the server refuses an attempt before its wait is over, whatever the load), never
how fast anything answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from controller.api.session import lockout_alarm_id
from controller.config.line_config import load_line_config
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.service.line_service import ControllerService, HttpServer, bind_listener
from controller.users.auth import PERMISSIONS, Permission
from controller.users.login_throttle import (
    Allowed,
    Counted,
    Locked,
    Lockout,
    LoginThrottle,
    ThrottlePolicy,
    Wait,
)
from sim_hardware.line import SimLine

PASSWORDS = {"op1": "op1-demo", "eng1": "eng1-demo"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, user: str, address: str) -> list[Lockout]:
    assert throttle.attempt(user, address) == Allowed()
    return throttle.failed(user, address)


# -- the throttle alone -------------------------------------------------------------------------------


def test_waits_start_after_the_free_failures_double_and_are_capped() -> None:
    policy = ThrottlePolicy(free_failures=2, first_wait_s=1.0, max_wait_s=30.0, lockout_after=10)
    assert [policy.wait_after(n) for n in range(1, 10)] == [0, 0, 1, 2, 4, 8, 16, 30, 30]
    assert policy.wait_after(10_000) == 30.0
    with pytest.raises(ValueError, match="waits"):
        ThrottlePolicy(first_wait_s=0.0)
    with pytest.raises(ValueError, match="lockout_after"):
        ThrottlePolicy(lockout_after=0)


def test_an_attempt_before_its_wait_is_refused_unchecked_and_a_user_locks_after_ten() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    waits: list[float] = []
    lockouts: list[Lockout] = []
    while not lockouts:
        verdict = throttle.attempt("op1", "10.0.0.7")
        if isinstance(verdict, Wait):
            assert verdict.counted is Counted.USER
            waits.append(verdict.retry_after_s)
            assert throttle.attempt("op1", "10.0.0.7") == verdict  # refusals are not counted
            clock.now += verdict.retry_after_s
            continue
        assert verdict == Allowed()
        lockouts = throttle.failed("op1", "10.0.0.7")
    assert waits == [1, 2, 4, 8, 16, 30, 30]  # after failures 3..9
    assert lockouts == [Lockout(Counted.USER, "op1", 10)]
    clock.now += 3600.0  # a lockout does not wear off
    assert throttle.attempt("op1", "10.0.0.7") == Locked(Counted.USER, "op1")
    assert throttle.attempt("op1", "10.0.0.8") == Locked(Counted.USER, "op1")
    assert throttle.attempt("eng1", "10.0.0.7") == Allowed()  # the address is not locked: 10 < 30
    throttle.succeeded("eng1", "10.0.0.7")  # and a success from it clears its count
    assert throttle.locked(Counted.USER) == ["op1"]
    assert throttle.unlock(Counted.USER, "op1")
    assert throttle.attempt("op1", "10.0.0.7") == Allowed()
    assert not throttle.unlock(Counted.USER, "op1")


def test_a_success_clears_the_user_and_the_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(2):
        fail(throttle, "op1", "10.0.0.7")
    assert throttle.failures(Counted.USER, "op1") == 2
    assert throttle.attempt("op1", "10.0.0.7") == Allowed()
    throttle.succeeded("op1", "10.0.0.7")
    assert throttle.failures(Counted.USER, "op1") == 0
    assert throttle.failures(Counted.ADDRESS, "10.0.0.7") == 0


def test_parallel_attempts_meet_the_same_waits_as_attempts_in_a_row() -> None:
    throttle = LoginThrottle(clock=FakeClock())
    verdicts = [throttle.attempt("op1", "10.0.0.7") for _ in range(10)]  # none answered yet
    assert verdicts[:3] == [Allowed()] * 3
    assert all(isinstance(v, Wait) for v in verdicts[3:])
    throttle.abandoned("op1", "10.0.0.7")  # one found no login slot: it counts for nothing
    assert throttle.failures(Counted.USER, "op1") == 2


def test_an_address_locks_across_user_names_and_unknown_names_count_too() -> None:
    clock = FakeClock()
    policy = ThrottlePolicy(free_failures=1, first_wait_s=0.5, max_wait_s=0.5, lockout_after=4)
    throttle = LoginThrottle(
        user_policy=ThrottlePolicy(lockout_after=100), address_policy=policy, clock=clock
    )
    found: list[Lockout] = []
    for name in ("root", "admin", "guest", "op1"):
        clock.now += 1.0
        found += fail(throttle, name, "10.0.0.66")
    assert found == [Lockout(Counted.ADDRESS, "10.0.0.66", 4)]
    assert throttle.attempt("eng1", "10.0.0.66") == Locked(Counted.ADDRESS, "10.0.0.66")
    assert throttle.attempt("eng1", "10.0.0.1") == Allowed()
    assert throttle.failures(Counted.USER, "root") == 1
    assert throttle.unlock(Counted.ADDRESS, "10.0.0.66")


def test_the_tables_stay_bounded_and_keep_their_lockouts_longest() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(user_policy=ThrottlePolicy(lockout_after=2), max_tracked=3, clock=clock)
    assert fail(throttle, "op1", "10.0.0.1") == []
    assert fail(throttle, "op1", "10.0.0.1") == [Lockout(Counted.USER, "op1", 2)]
    for i in range(10):
        fail(throttle, f"guess{i}", f"10.0.1.{i}")
    assert throttle.locked(Counted.USER) == ["op1"]  # the unlocked entries went first
    assert [throttle.failures(Counted.USER, f"guess{i}") for i in (0, 8, 9)] == [0, 1, 1]


def test_lockout_alarm_ids_are_mqtt_topic_levels_whatever_the_name() -> None:
    assert lockout_alarm_id(Counted.USER, "op1") == "login.lockout.op1"
    assert lockout_alarm_id(Counted.ADDRESS, "::1") == "login.address-lockout.::1"
    odd = lockout_alarm_id(Counted.USER, "o p/1#")
    assert odd.startswith("login.lockout.sha256-")
    assert odd != lockout_alarm_id(Counted.USER, "o p/1+")


def test_only_engineers_and_up_may_unlock_a_login() -> None:
    assert Permission.UNLOCK_LOGIN not in PERMISSIONS["operator"]
    assert Permission.UNLOCK_LOGIN in PERMISSIONS["engineer"]
    assert Permission.UNLOCK_LOGIN in PERMISSIONS["maintenance"]


# -- against a real server ----------------------------------------------------------------------------

FAST_USER_POLICY = ThrottlePolicy(free_failures=2, first_wait_s=0.4, max_wait_s=2.0, lockout_after=10)
LENIENT_ADDRESS_POLICY = ThrottlePolicy(free_failures=50, lockout_after=100)  # one user's guesses only
# a refused guess is tried again after this; a checked one at once, so that the next arrives inside its
# wait however slowly the server answered (a machine under make test's load once took longer to answer
# than the whole 1.6 s a wait then lasted, and no guess was ever throttled)
ATTEMPT_PACE_S = 0.2


@contextlib.asynccontextmanager
async def served(throttle: LoginThrottle) -> AsyncIterator[tuple[LineController, httpx.AsyncClient]]:
    async with SimLine(load_line_config(), speed=200.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with (
            LineController(config, plan=plan) as ctl,
            ControllerService(ctl, login_throttle=throttle) as service,
            HttpServer(service.app, bind_listener("127.0.0.1", 0)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
        ):
            yield ctl, http


async def log_in(http: httpx.AsyncClient, user: str) -> dict[str, str]:
    response = await http.post("/api/login", json={"user": user, "password": PASSWORDS[user]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def journal(http: httpx.AsyncClient, alarm_id: str) -> list[dict[str, Any]]:
    records = (await http.get("/api/alarms/journal")).json()
    return [r for r in records if r["alarm_id"] == alarm_id]


async def test_a_hundred_wrong_passwords_are_throttled_locked_out_on_record_and_an_engineer_unlocks() -> None:
    throttle = LoginThrottle(user_policy=FAST_USER_POLICY, address_policy=LENIENT_ADDRESS_POLICY)
    async with served(throttle) as (ctl, http):
        engineer = await log_in(http, "eng1")
        operator = await log_in(http, "op1")  # a session from before the guessing
        wrong = {"user": "op1", "password": "not-the-password"}
        statuses: list[int] = []
        checked: list[tuple[float, float]] = []  # (sent, answered) of every password really checked
        for _ in range(100):
            before = time.monotonic()
            answer = await http.post("/api/login", json=wrong)
            statuses.append(answer.status_code)
            if answer.status_code == 401:
                checked.append((before, time.monotonic()))
                continue
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                assert "try again in" in answer.json()["detail"]
            else:
                assert answer.status_code == 423, answer.text
                assert "an engineer must unlock" in answer.json()["detail"]
            await asyncio.sleep(ATTEMPT_PACE_S)

        assert statuses.count(401) == FAST_USER_POLICY.lockout_after  # ten guesses, no more
        assert 429 in statuses
        first_locked = statuses.index(423)
        assert set(statuses[first_locked:]) == {423}  # locked for good
        # the waits grow: the server checked each password no sooner than its wait after the one before
        # (it received one between sending and answering, so answered(k+1) - sent(k) bounds the gap)
        gaps = [(b[1] - a[0]) for a, b in itertools.pairwise(checked)]
        for failures, gap in enumerate(gaps, start=1):
            assert gap >= FAST_USER_POLICY.wait_after(failures), (failures, gaps)
        assert max(gaps) >= FAST_USER_POLICY.max_wait_s > 4 * FAST_USER_POLICY.first_wait_s
        # the right password does not get through a lockout either
        right = {"user": "op1", "password": PASSWORDS["op1"]}
        assert (await http.post("/api/login", json=right)).status_code == 423

        # on record: an alarm raised and journaled with the count
        alarm_id = lockout_alarm_id(Counted.USER, "op1")
        active = (await http.get("/api/alarms")).json()["active"]
        assert [a["severity"] for a in active if a["id"] == alarm_id] == ["medium"]
        raised = await journal(http, alarm_id)
        assert [r["to_state"] for r in raised] == ["active_unacked"]
        assert raised[0]["evidence"]["failures"] == 10

        # an operator may not unlock; an engineer may, and that is recorded with their name
        unlock = "/api/users/op1/unlock"
        assert (await http.post(unlock)).status_code == 401
        assert (await http.post(unlock, headers=operator)).status_code == 403
        answer = await http.post(unlock, headers=engineer)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"counted": "user", "key": "op1", "was_locked": True, "alarm_id": alarm_id}
        records = await journal(http, alarm_id)
        assert any(r["evidence"].get("unlocked_by") == "eng1" for r in records)
        assert any(r["user"] == "eng1" for r in records)  # acknowledged by whoever unlocked
        assert ctl.alarms.get(alarm_id).unacknowledged is False
        assert alarm_id not in {a["id"] for a in (await http.get("/api/alarms")).json()["active"]}

        assert (await http.post("/api/login", json=right)).status_code == 200


async def test_an_address_guessing_many_names_is_locked_and_an_engineer_unlocks_it() -> None:
    address_policy = ThrottlePolicy(free_failures=5, first_wait_s=0.1, max_wait_s=0.1, lockout_after=5)
    async with served(LoginThrottle(address_policy=address_policy)) as (_, http):
        engineer = await log_in(http, "eng1")
        for name in ("root", "admin", "guest", "op2", "op3"):
            answer = await http.post("/api/login", json={"user": name, "password": "x"})
            assert answer.status_code == 401, answer.text
        refused = await http.post("/api/login", json={"user": "op1", "password": PASSWORDS["op1"]})
        assert refused.status_code == 423
        assert "127.0.0.1" in refused.json()["detail"]
        alarm_id = lockout_alarm_id(Counted.ADDRESS, "127.0.0.1")
        assert [r["to_state"] for r in await journal(http, alarm_id)] == ["active_unacked"]

        answer = await http.post("/api/addresses/127.0.0.1/unlock", headers=engineer)
        assert answer.status_code == 200, answer.text
        assert answer.json()["was_locked"] is True
        assert (await http.post("/api/login", json={"user": "op1", "password": PASSWORDS["op1"]})).is_success
