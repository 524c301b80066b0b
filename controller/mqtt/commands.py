"""Commands from the broker: reading a ``<root>/cmd/<name>`` message into an action for the gate, or
into the reason it is refused, and the reply either way (pure; the bridge runs them).

- **Commands**: accepted only when `<name>` is in `mqtt.commands` and the payload's user is in
  `mqtt.command_users`; every accepted command goes through `gate.submit(Command(action, user,
  "mqtt"))` and its outcome is the reply. Command names are the action types in snake case
  (`set_valve` -> `SetValve`); the payload's `action.type` may be omitted and must match if given.
  WHO may publish is the broker's job (password file + ACL on `<root>/cmd/+`): MQTT 3.1.1 does not
  tell a subscriber who published, so the payload's user is a claim the ACL makes trustworthy only
  as far as each command account is one person. `reply_to` may not point into the line's own tree
  (it could forge a state or an alarm) except below the default reply topic.
  Commands run one at a time in their own task, so a command in the gate is never cancelled by a
  lost connection; its reply waits in the outbox instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from controller.config.line_config import MqttConfig
from controller.line.actions import Action
from controller.line.gate import GateRecord
from controller.mqtt.payloads import action_dict
from controller.mqtt.topics import Topics

OUTCOME_REJECTED: Final = "rejected"  # the bridge did not accept it (command or user not enabled, busy)
OUTCOME_INVALID: Final = "invalid"  # the payload could not be read as a command
ACTION_TYPES: Final[Mapping[str, type[Any]]] = {cls.__name__: cls for cls in typing.get_args(Action)}


def command_name(action_type: str) -> str:
    """`SetGasFlow` -> `set_gas_flow`: the `<name>` of its command topic."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action_type).lower()


COMMAND_TYPES: Final[Mapping[str, type[Any]]] = {command_name(n): cls for n, cls in ACTION_TYPES.items()}


@dataclass(frozen=True, slots=True)
class MqttCommand:
    """A command the bridge accepted: it goes to the gate, its outcome to `reply_topic`."""

    name: str
    user: str
    action: Action
    reply_topic: str
    request_id: str | int | None = None
    reason: str = ""


class CommandRejected(Exception):
    """A command message the bridge answers without asking the gate (`outcome` rejected or invalid)."""

    def __init__(
        self,
        outcome: str,
        reason: str,
        reply_topic: str,
        *,
        request_id: str | int | None = None,
        user: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.reply_topic = reply_topic
        self.request_id = request_id
        self.user = user


def parse_command(
    topics: Topics, mqtt: MqttConfig, name: str, payload: bytes, *, max_bytes: int
) -> MqttCommand:
    """Read one command message; raises `CommandRejected` with what to tell the sender."""
    reply = topics.reply(name)

    def invalid(why: str, request_id: str | int | None = None, user: str | None = None) -> CommandRejected:
        return CommandRejected(OUTCOME_INVALID, why, reply, request_id=request_id, user=user)

    if len(payload) > max_bytes:
        raise invalid(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("payload must be a JSON object")
    request_id = body.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise invalid("'id' must be a string or an integer")
    raw_user = body.get("user")
    user = raw_user if isinstance(raw_user, str) else None
    reply = _reply_topic(topics, name, body.get("reply_to"), request_id, user)
    if name not in mqtt.commands:
        enabled = ", ".join(mqtt.commands) or "none"
        raise CommandRejected(
            OUTCOME_REJECTED,
            f"command {name!r} is not enabled over MQTT (enabled: {enabled})",
            reply,
            request_id=request_id,
            user=user,
        )
    if not user:
        raise CommandRejected(
            OUTCOME_INVALID, "'user' must be a non-empty string", reply, request_id=request_id
        )
    if user not in mqtt.command_users:
        raise CommandRejected(
            OUTCOME_REJECTED,
            f"user {user!r} may not command over MQTT",
            reply,
            request_id=request_id,
            user=user,
        )
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise CommandRejected(
            OUTCOME_INVALID, "'reason' must be a string", reply, request_id=request_id, user=user
        )
    try:
        action = decode_action(name, body.get("action"))
    except ValueError as exc:
        raise CommandRejected(OUTCOME_INVALID, str(exc), reply, request_id=request_id, user=user) from None
    unknown = sorted(set(body) - {"user", "action", "id", "reply_to", "reason"})
    if unknown:
        raise CommandRejected(
            OUTCOME_INVALID, f"unknown key(s) {', '.join(unknown)}", reply, request_id=request_id, user=user
        )
    return MqttCommand(name, user, action, reply, request_id, reason)


def _reply_topic(
    topics: Topics, name: str, reply_to: object, request_id: str | int | None, user: str | None
) -> str:
    default = topics.reply(name)
    if reply_to is None:
        return default
    own_tree = reply_to.startswith(f"{topics.root}/") if isinstance(reply_to, str) else False
    if (
        not isinstance(reply_to, str)
        or not reply_to
        or len(reply_to) > 1024
        or any(c in reply_to for c in "+#\x00")
        or reply_to.startswith("$")
        or (own_tree and reply_to != default and not reply_to.startswith(f"{default}/"))
    ):
        raise CommandRejected(
            OUTCOME_INVALID,
            f"'reply_to' must be a topic name without wildcards, outside {topics.root}/ or below {default}/",
            default,
            request_id=request_id,
            user=user,
        )
    return reply_to


def decode_action(name: str, raw: object) -> Action:
    """The action a command names, strictly typed from JSON: a wrong type is an error, not a guess."""
    cls = COMMAND_TYPES.get(name)
    if cls is None:
        raise ValueError(f"no action is called {name!r}")
    if not isinstance(raw, dict):
        raise ValueError("'action' must be a JSON object")
    given_type = raw.get("type", cls.__name__)
    if given_type != cls.__name__:
        raise ValueError(f"action type {given_type!r} does not match command {name!r} ({cls.__name__})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields) - {"type"})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; it has {', '.join(fields)}")
    kwargs: dict[str, object] = {}
    for fname, f in fields.items():
        if fname in raw:
            kwargs[fname] = _field_value(cls.__name__, fname, hints[fname], raw[fname])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{cls.__name__}.{fname} is missing")
    action: Action = cls(**kwargs)
    return action


def _field_value(type_name: str, fname: str, hint: object, value: object) -> object:
    where = f"{type_name}.{fname}"
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{where} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where} must be a non-empty string, not {value!r}")
        return value
    raise ValueError(f"{where}: fields of type {hint} cannot be set over MQTT")


def reply_payload(
    seq: int,
    *,
    name: str,
    request_id: str | int | None,
    user: str | None,
    outcome: str,
    reason: str,
    record: GateRecord | None = None,
) -> dict[str, object]:
    refusals = record.verdict.refusals if record is not None else ()
    return {
        "seq": seq,
        "ts": time.time(),
        "id": request_id,
        "command": name,
        "user": user,
        "outcome": outcome,
        "reason": reason,
        "refusals": [{"invariant": r.invariant, "rule": r.rule, "reason": r.reason} for r in refusals],
        "error": record.error if record is not None else "",
        "action": action_dict(record.command.action) if record is not None else None,
    }
