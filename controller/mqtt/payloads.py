"""The JSON bodies the bridge publishes (their shapes are in the package docstring), built by pure
functions so the contract can be tested without a broker."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping

from controller.line.actions import Action
from controller.line.gate import GateRecord
from drivers.reading import Quality, Reading


def plain(value: object) -> object:
    """JSON-safe values: non-finite floats become null, enums their value, anything else unknown a str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def encode(obj: Mapping[str, object]) -> bytes:
    return json.dumps(plain(obj), separators=(",", ":"), allow_nan=False).encode()


def telemetry_payload(reading: Reading, seq: int | None, *, archived: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "seq": seq,
        "ts": reading.ts,
        "value": reading.value,
        "unit": reading.unit,
        "quality": reading.quality.value,
    }
    if not math.isfinite(reading.value):
        body["value"] = None
        body["nonfinite"] = str(reading.value)  # 'nan', 'inf', '-inf'
        if reading.quality is Quality.OK:
            body["quality"] = Quality.ERROR.value
    if archived:
        body["archived"] = True
    return body


def action_dict(action: Action) -> dict[str, object]:
    return {"type": type(action).__name__, **dataclasses.asdict(action)}


def gate_record_payload(record: GateRecord, seq: int) -> dict[str, object]:
    verdict = record.verdict
    reason = verdict.reason if not verdict.allowed else record.error
    return {
        "seq": seq,
        "ts": record.ts,
        "command": action_dict(record.command.action),
        "user": record.command.user,
        "origin": record.command.origin,
        "outcome": record.outcome,
        "reason": reason,
        "refusals": [
            {"invariant": r.invariant, "rule": r.rule, "reason": r.reason} for r in verdict.refusals
        ],
        "request_reason": record.command.reason,
        "duration_s": record.duration_s,
    }
