"""The line at one instant, rebuilt from the records alone: what `depline replay`'s cursor draws.

Why it is built this way:

- **A pure function of recorded rows** (`line_at(config, records)`): the rows are gathered by
  `controller.flight_recorder.line_records`, so this can be tested on hand-written rows and cannot
  touch the database it explains.
- **Today's rules, not a stored verdict.** Each channel's last reading at or before the instant is put
  in a snapshot, the outputs of the commands done just before it are laid over it as the live gate did
  (`controller.line.written_outputs`, via the rejudge's `Replay`), and the atmosphere classes come out
  of the same pure `LineModel.state` the gate judges with. A sensorless chamber's class depends on its
  history (its provenance), so the replay walks the records from the start of the service run the
  instant is in (at most `WARMUP_S` before it) on a grid of `WARMUP_STEP_S` plus every command's own
  instant: within that the memory is what the records show; a fill older than that is not seen, and
  the chamber is then classed as conservatively as after a restart.
- **Every reading keeps its age.** The snapshot handed on keeps the recorded time, so the page shows a
  value the records last saw minutes earlier as old, never as current.
- **Where things were** is the inventory folded from the recorded registrations, moves and seals up to
  the instant (`fold_inventory`); an item registered later is not there yet. Stations, the unit mode
  and alarms are each one's newest record at or before the instant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from controller.config.line_config import LineConfig
from controller.flight_recorder.rejudge import Replay, decode_action
from controller.historian.record_search import SampleRow
from controller.historian.recovery import fold_inventory
from controller.line.items import Item
from controller.line.state import LineState
from drivers.reading import Reading

WARMUP_S: Final = 120.0  # wall seconds of records walked before the instant for the atmosphere memory
WARMUP_STEP_S: Final = 0.5
ACTIVE_STATES: Final = frozenset({"active_unacked", "active_acked", "cleared_unacked", "shelved"})

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class LineRecords:
    """The rows the line at `at` is rebuilt from."""

    at: float
    warm_from: float
    channels: Mapping[int, tuple[str, str, str]]  # id -> (device, channel, unit)
    seed: Sequence[SampleRow]  # each channel's last sample at or before warm_from
    samples: Sequence[SampleRow]  # every sample in (warm_from, at], oldest first
    commands: Sequence[Mapping[str, Any]]  # commands in (warm_from, at], oldest first (ts, action, outcome)
    known_items: Sequence[tuple[str, str, str]]  # the items table: (id, kind, material)
    inventory_actions: Sequence[Mapping[str, Any]]  # done inventory actions up to at, oldest first
    transitions: Sequence[Mapping[str, Any]]  # each station's newest transition up to at
    alarm_events: Sequence[Mapping[str, Any]]  # each alarm's newest event up to at
    mode: Mapping[str, Any] | None  # the newest mode change up to at


@dataclass(frozen=True, slots=True)
class AlarmAt:
    """An alarm that was on the board at the instant, as its newest record before it says."""

    id: str
    severity: str
    state: str  # active_unacked | active_acked | cleared_unacked | shelved
    since_ts: float  # its newest record's time
    event: str
    user: str | None  # who acknowledged or shelved it, when that was the newest record
    text: str
    first_out: bool
    evidence: Mapping[str, Any]

    @property
    def unacknowledged(self) -> bool:
        return self.state in ("active_unacked", "cleared_unacked")


@dataclass(frozen=True, slots=True)
class LineAt:
    at: float
    state: LineState
    snapshot: Mapping[Key, Reading]  # every reading with its recorded time (mono = ts: age = at - ts)
    stations: Mapping[str, str]  # station -> state (only those with a recorded transition)
    items: Mapping[str, Item]
    alarms: list[AlarmAt]
    mode: str  # "" before any mode change was recorded
    owner: str | None


def line_at(config: LineConfig, records: LineRecords, *, step_s: float = WARMUP_STEP_S) -> LineAt:
    """The line at `records.at` as today's rules see the recorded readings, items and commands."""
    at = records.at
    replay = Replay(config, dict(records.channels))
    for row in records.seed:
        replay.apply_sample(row)
    items = _items_at(records)
    replay.set_items(items)
    samples = sorted(records.samples, key=lambda r: (r.ts, r.id))
    s = 0
    for tick, command in _instants(records, step_s):
        fed = s
        while s < len(samples) and samples[s].ts <= tick:
            replay.apply_sample(samples[s])
            s += 1
        if command is None and s == fed:
            continue  # nothing new since the last instant: the memory would not move (its steps repeat)
        replay.state(tick)  # carries the atmosphere memory forward
        action = None if command is None else decode_action(command["action"])
        if action is not None:
            replay.apply_command(tick, action)
            replay.state(tick)  # a valve just opened or closed is an activity the memory must see
    while s < len(samples) and samples[s].ts <= at:
        replay.apply_sample(samples[s])
        s += 1
    held = replay.held(at)
    state = replay.model.state(held, now_mono=at)
    snapshot = {key: dataclasses.replace(r, mono=r.ts) for key, r in held.items()}
    mode = records.mode
    return LineAt(
        at=at,
        state=state,
        snapshot=snapshot,
        stations={str(t["station"]): str(t["dest"]) for t in records.transitions},
        items=items,
        alarms=alarms_at(records.alarm_events),
        mode="" if mode is None else str(mode["mode"]),
        owner=None if mode is None or mode.get("owner") is None else str(mode["owner"]),
    )


def _instants(records: LineRecords, step_s: float) -> list[tuple[float, Mapping[str, Any] | None]]:
    """The grid through the warm-up and every done command's own instant, in time order: at 1000x a
    back-fill lasts a few hundredths of a second, which a grid alone steps over (and the memory would
    then see a chamber go from vacuum to atmosphere with no fill: air)."""
    count = int((records.at - records.warm_from) / step_s)
    ticks: list[tuple[float, Mapping[str, Any] | None]] = [
        (records.warm_from + i * step_s, None) for i in range(1, count + 1)
    ]
    ticks += [
        (float(c["ts"]), c)
        for c in records.commands
        if c.get("outcome") == "done" and records.warm_from < float(c["ts"]) <= records.at
    ]
    return sorted(ticks, key=lambda t: (t[0], t[1] is not None))


def _items_at(records: LineRecords) -> dict[str, Item]:
    """The inventory at the instant; an item of the items table with no registration yet is left out."""
    actions = [row["action"] for row in records.inventory_actions if float(row["ts"]) <= records.at]
    folded = fold_inventory(records.known_items, actions)
    return {item_id: item for item_id, item in folded.items() if item.location}


def alarms_at(newest: Sequence[Mapping[str, Any]]) -> list[AlarmAt]:
    """The alarms on the board, from each alarm's newest record: raised and not cleared (or latched and
    not acknowledged, or shelved); most urgent first."""
    out = []
    for row in newest:
        state = str(row["to_state"])
        if state not in ACTIVE_STATES:
            continue
        evidence = row.get("evidence")
        text = evidence.get("text") if isinstance(evidence, Mapping) else None
        out.append(
            AlarmAt(
                id=str(row["alarm_id"]),
                severity=str(row["severity"]),
                state=state,
                since_ts=float(row["ts"]),
                event=str(row["event"]),
                user=None if row.get("user") is None else str(row["user"]),
                text=text if isinstance(text, str) else "",
                first_out=bool(row.get("first_out")),
                evidence=evidence if isinstance(evidence, Mapping) else {},
            )
        )
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    return sorted(out, key=lambda a: (rank.get(a.severity, 9), a.since_ts, a.id))
