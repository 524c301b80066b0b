"""The safe state of a station, and the switch-off that ends every process step.

Anything a step energises (heater, process gas, sources, shutters) is switched off again when the
step ends, however it ends: completion, a refusal, a timeout or cancellation. That clean-up, and
`make_safe`, run in a shielded inner task, so a cancelled sequence still finishes switching off
before the cancellation goes on up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from controller.line.actions import (
    Action,
    Command,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetShutter,
    SetSource,
    SetValve,
)
from controller.line.gate import CommandGate, GateRecord
from controller.line.stations import safe_actions
from sequences.steps import ProcessFault, StepFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

SAFE_EXIT_TIMEOUT_S = 30.0  # wall seconds for a whole safe exit (the gate bounds each command too)


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run to completion even if the caller is cancelled meanwhile; then re-raise the cancellation."""
    task = asyncio.create_task(coro, name="process-safe-exit")
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():  # the inner task itself was cancelled (loop shutdown): nothing to wait for
                raise
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    return task.result()


async def _submit_all(
    gate: CommandGate, actions: list[Action], user: str, reason: str, timeout_s: float
) -> list[GateRecord]:
    """Submit every action in turn; a refusal, failure or bug is logged and the next one still goes."""
    records: list[GateRecord] = []
    try:
        async with asyncio.timeout(timeout_s):
            for action in actions:
                try:
                    record = await gate.submit(Command(action, user, "sequence", reason))
                except Exception:
                    log.exception("safe-state command raised", extra={"command": str(action)})
                    continue
                records.append(record)
                if record.outcome != "done":
                    detail = record.verdict.reason if record.outcome == "refused" else record.error
                    log.warning(
                        "safe-state command not done",
                        extra={"command": str(action), "outcome": record.outcome, "detail": detail},
                    )
    except TimeoutError:
        log.error("safe-state commands did not finish", extra={"reason": reason, "timeout_s": timeout_s})
    return records


_SAFE_ORDER = (SetSource, SetShutter, SetGasFlow, SetHeater, SetValve, SetPort)


def safe_state_actions(gate: CommandGate, space: str) -> list[Action]:
    """The station safe state (`controller.line.stations.safe_actions`) plus shutters and vent, in the order
    that stops emission first: sources, shutters, gas, heater, then valves and ports."""
    actions = safe_actions(gate.model.config, space)
    sources = [a.source for a in actions if isinstance(a, SetSource)]
    shutters: list[Action] = [SetShutter(space, s, False) for s in sources]
    if sources:
        shutters.append(SetShutter(space, "substrate", False))
    actions = [*actions, *shutters, SetValve(space, "vent", False)]
    return sorted(actions, key=lambda a: _SAFE_ORDER.index(type(a)))


def _energy_off_actions(gate: CommandGate, space: str) -> list[Action]:
    """What a process step may have energised: sources, shutters, gas and heater (no valve, no port)."""
    keep = (SetSource, SetShutter, SetGasFlow, SetHeater)
    return [a for a in safe_state_actions(gate, space) if isinstance(a, keep)]


async def make_safe(
    gate: CommandGate, space: str, *, user: str = "sequence", timeout_s: float = SAFE_EXIT_TIMEOUT_S
) -> list[GateRecord]:
    """The safe exit of a station: sources off, shutters closed, gas off, heater to a safe setpoint,
    rough / gas-fill / vent valves and the station's inner ports closed.

    Closing and switching off only: it never vents and never opens anything, so it cannot expose an
    item. It never raises for a refused or failed command (each is logged; the records are returned),
    and it completes even if the calling task is cancelled meanwhile, re-raising the cancellation
    afterwards. The turbo gate stays as it is: a pumped chamber is the safer place for an exposed
    item, and the supervisor closes the gate by itself if the pressure rises. `timeout_s` is wall time.
    """
    actions = safe_state_actions(gate, space)
    return await _shielded(_submit_all(gate, actions, user, f"{space}: safe state", timeout_s))


async def switch_off(gate: CommandGate, space: str, user: str, step: str, *, strict: bool) -> None:
    """A step's clean-up; `strict` (after a step that otherwise succeeded) raises if something stayed on."""
    actions = _energy_off_actions(gate, space)
    records = await _shielded(_submit_all(gate, actions, user, f"{step}: switch off", SAFE_EXIT_TIMEOUT_S))
    if strict:
        bad = next((r for r in records if r.outcome != "done"), None)
        if bad is not None:
            raise StepFailed(bad)
        if len(records) < len(actions):
            raise ProcessFault(f"{step}: the switch-off commands did not all complete")
