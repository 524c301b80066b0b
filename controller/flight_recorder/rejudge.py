"""`depline rejudge`: the recorded readings and commands fed through today's pure rules.

The interlocks and the atmosphere classification are pure functions of readings, items and the
request (`controller.line.interlocks`, `controller.line.state`), so a recorded night can be judged
again: the samples are replayed in time order into a snapshot, the inventory is folded from the
recorded registrations, moves and seal changes, and at every recorded command the gate's check is
asked again; on a grid of instants the supervisor's `watch` says which safe actions today's rules
want. What is listed is every disagreement with the record:

- a command allowed then and refused now, or refused then by an interlock and allowed now (a refusal
  by the unit mode or a busy gate is not an interlock verdict, so it is not re-judged);
- a safe action today's rules want that the supervisor did not send, sent later or earlier than
  today's rules would (beyond the grid's resolution), or sent when today's rules want nothing.

Why this can be trusted only so far: the live gate also saw the outputs it had just written before
the next poll read them back, and it judged at the poller's instants; the replay sees the recorded
samples and judges on its own grid (`step_s`). Disagreements within one step are not reported. On
the simulated line at a high plant speed one step of wall time is minutes of plant time: a chamber
evacuated and back-filled within one step is then not seen evacuated by the replay, and its
atmosphere memory (a sensorless chamber's provenance) can differ from the live one's — a false
disagreement that a smaller `--step` removes.
"""

from __future__ import annotations

import bisect
import json
import math
import time
import typing
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from controller.config.line_config import LineConfig
from controller.flight_recorder.timeline import Window
from controller.historian.record_search import SampleRow
from controller.historian.recovery import fold_inventory
from controller.historian.store import Historian
from controller.line.actions import Action
from controller.line.interlocks import check, watch
from controller.line.items import Item
from controller.line.model import LineModel
from controller.line.state import LineState
from controller.line.written_outputs import written_outputs
from controller.reports.wording import utc
from drivers.reading import Quality, Reading

ACTION_TYPES: Final = {cls.__name__: cls for cls in typing.get_args(Action)}
MATCH_WINDOW_S: Final = 120.0  # a safe action sent this close to today's wish is "earlier/later", not missing
PRELOAD_S: Final = 30.0  # samples before the window that set the snapshot it starts from


@dataclass(frozen=True, slots=True)
class Disagreement:
    ts: float
    kind: str  # allowed_then_refused_now | refused_then_allowed_now | safe_action_not_sent |
    # safe_action_sent_earlier | safe_action_sent_later | safe_action_not_wanted_now
    action: str
    then: str
    now: str


@dataclass(slots=True)
class Rejudgement:
    window: Window
    commands_judged: int = 0
    instants_watched: int = 0
    samples_replayed: int = 0
    instants_skipped: int = 0  # instants whose inputs had not changed: today's wish was the one before
    disagreements: list[Disagreement] = field(default_factory=list)


def decode_action(recorded: Any) -> Action | None:
    """The recorded JSON of a gate command back as the action it was; None for records that are not
    gate actions (inventory registrations) or that no longer decode (a field renamed since)."""
    if not isinstance(recorded, dict):
        return None
    cls = ACTION_TYPES.get(str(recorded.get("type")))
    if cls is None:
        return None
    fields = {k: v for k, v in recorded.items() if k != "type"}
    try:
        action: Action = cls(**fields)
    except TypeError:
        return None
    return action


def action_key(action: Action) -> str:
    return f"{type(action).__name__} " + " ".join(f"{k}={v}" for k, v in _fields(action))


def _fields(action: Action) -> Iterator[tuple[str, Any]]:
    for name in action.__slots__:
        yield name, getattr(action, name)


def channels_read(config: LineConfig) -> list[tuple[str, str]]:
    """Every (device, channel) a line state of this line reads, found by asking a snapshot that
    records what it is asked for: the replay then reads only those samples from the database."""
    asked: list[tuple[str, str]] = []

    class Recording(dict[tuple[str, str], Reading]):
        def get(self, key: tuple[str, str], default: Any = None) -> Any:
            asked.append(key)
            return super().get(key, default)

    LineModel(config).state(Recording(), now_mono=0.0)
    return list(dict.fromkeys(asked))


class Replay:
    """The line as the records show it at an instant: a snapshot of the latest samples with the outputs
    each recorded command wrote laid over it (as the live gate does), the inventory folded from the
    recorded commands, and the atmosphere memory the classification keeps.

    It also keeps what the event-driven judging needs (`_Settled`): whether any input the rules read
    changed since the last judged instant (`changed`), and which readings have aged into staleness."""

    def __init__(self, config: LineConfig, channels: dict[int, tuple[str, str, str]]) -> None:
        self.model = LineModel(config)
        self.io = self.model.readings.io
        self.channels = channels
        self.rows: dict[int, SampleRow] = {}  # each channel's last sample
        self.overlay: dict[tuple[str, str], Reading] = {}
        self.overlaid: dict[int, tuple[str, str]] = {}  # channels with a written output over their poll
        self.keys = {
            channel_id: (device, channel) for channel_id, (device, channel, _unit) in channels.items()
        }
        self.qualities = {q.value: q for q in Quality}
        recording = config.recording
        self.hold_s = recording.heartbeat_s * 1.5 if recording.deadband else config.limits.stale_after_s
        self.stale_after_s = config.limits.stale_after_s
        # a reading older than this at an instant is stale then (neither held nor young enough)
        self.expires_s = max(self.hold_s, self.stale_after_s)
        self.changed = True

    def apply_sample(self, row: SampleRow) -> None:
        self.apply_samples([row])

    def apply_samples(self, rows: Sequence[SampleRow]) -> None:
        """The samples, oldest first (read by position: see `_SampleFeed`)."""
        latest, overlaid, wanted = self.rows, self.overlaid, self.channels
        for row in rows:
            _id, ts, channel_id, value, quality = row
            if channel_id not in wanted:
                continue
            before = latest.get(channel_id)
            latest[channel_id] = row
            if before is None or before[3] != value or before[4] != quality:
                self.changed = True
            if channel_id in overlaid:
                key = overlaid[channel_id]
                if ts >= self.overlay[key].ts:  # the gate's rule: the newer of poll and write wins
                    del self.overlay[key], overlaid[channel_id]  # polls only get newer: for good
                    self.changed = True

    def apply_command(self, ts: float, action: Action) -> None:
        written = written_outputs(self.model, self.io, action, ts, ts)
        self.overlay.update(written)
        by_key = {key: channel_id for channel_id, key in self.keys.items()}
        self.overlaid.update({by_key[key]: key for key in written if key in by_key})
        self.changed = True

    def set_items(self, items: dict[str, Item]) -> None:
        self.model.items = dict(items)

    def merged(self) -> dict[tuple[str, str], Reading]:
        """The latest sample of every channel as the reading the live controller held, the outputs
        written since laid over it."""
        merged: dict[tuple[str, str], Reading] = {}
        for channel_id, (_id, ts, _channel, value, quality) in self.rows.items():
            device, channel, unit = self.channels[channel_id]
            number = math.nan if value is None else value
            merged[(device, channel)] = Reading(
                number, unit, self.qualities.get(quality, Quality.ERROR), ts, ts
            )
        for key, written in self.overlay.items():
            polled = merged.get(key)
            if polled is None or polled.ts < written.ts:
                merged[key] = written
        return merged

    def stale(self, ts: float) -> frozenset[Any]:
        """The readings (channel ids, written outputs' keys) stale at `ts`: none, in a line polled as
        recorded, found by one look at the oldest."""
        times = [r[1] for r in self.rows.values()] + [r.ts for r in self.overlay.values()]
        if not times or ts - min(times) <= self.expires_s:
            return frozenset()
        rows = (c for c, r in self.rows.items() if ts - r[1] > self.expires_s)
        written = (k for k, r in self.overlay.items() if ts - r.ts > self.expires_s)
        return frozenset((*rows, *written))

    def state(self, ts: float) -> LineState:
        return self.model.state(self.held(ts), now_mono=ts)

    def held(self, ts: float) -> dict[tuple[str, str], Reading]:
        """The snapshot the rules see at `ts` (monotonic time is the recorded wall time here)."""
        # The records hold a reading until the next one (deadband recording stores a channel only when it
        # moves, its quality changes or its heartbeat is due): within the hold it is what the live
        # controller read at `ts`; past it, nothing was recorded and the reading ages as it would have.
        hold = self.hold_s
        return {  # the constructor, not dataclasses.replace: this runs for every channel at every instant
            key: Reading(r.value, r.unit, r.quality, r.ts, ts) if ts - r.ts <= hold else r
            for key, r in self.merged().items()
        }

    def memory(self) -> dict[str, tuple[Any, ...]]:
        """The atmosphere memory's values (its fields hold immutable values, so a shallow copy keeps it)."""
        return {name: tuple(vars(mem).values()) for name, mem in self.model.memory.items()}


async def rejudge(
    historian: Historian,
    config: LineConfig,
    window: Window,
    *,
    step_s: float = 0.25,
    every_instant: bool = False,
) -> Rejudgement:
    """Judge `window` again. The replay starts where the live controller started (the service run the
    window begins in), so the atmosphere memory it judges with has seen what the live one saw; only
    the window's instants are compared."""
    until = min(window.until_ts, time.time())
    started = await historian.run_start_at(window.since_ts)
    start = window.since_ts - PRELOAD_S if started is None else started
    read = set(channels_read(config))
    channels = {
        int(r["id"]): (str(r["device"]), str(r["channel"]), str(r["unit"]))
        for r in await historian.channel_rows()
        if (r["device"], r["channel"]) in read  # what the rules never read need not be replayed
    }
    replay = Replay(config, channels)
    known = [
        (str(r["id"]), str(r["kind"]), str(r["material"])) for r in await historian.items(limit=1_000_000)
    ]
    folded = _InventoryAt(known, await historian.inventory_actions_until(until))
    commands = (await historian.timeline_rows(start, until))["command"]
    result = Rejudgement(window)
    wanted_since: dict[str, float] = {}
    wishes: list[tuple[float, str, str]] = []  # (rising edge, key, today's reason)
    samples = _SampleFeed(historian.sample_pages(list(channels), start - PRELOAD_S, until, named=False))
    settled = _Settled(skip=not every_instant)
    for ts, command in _instants(start, until, step_s, commands):
        result.samples_replayed += await samples.until(ts, replay)
        items = folded.at(ts)
        now_wanted = settled.wanted(replay, items, ts) if command is None else None
        if now_wanted is None:
            replay.set_items(items)
            state = settled.judged(replay, items, ts)
        judged = ts >= window.since_ts
        if command is not None:
            action = decode_action(command["action"])
            if action is None:
                continue
            if judged:
                _judge_command(result, state, command, action)
            if command["origin"] == "interlock":
                # the supervisor acted on the readings of this instant: they are watched before its action
                # changes them, or a trip between two grid ticks would look unwanted
                wanted_since = _watch(_wish(state), ts, judged, wanted_since, wishes, result)
            if command["outcome"] == "done":
                replay.apply_command(ts, action)
                # the supervisor's next look, on the readings of the write: a fill is seen to start at
                # the pressure it started from, not at the next tick's (50 plant s of filling at 1000x,
                # which the memory would credit with no dilution: "process is air")
                settled.judged(replay, items, ts)
            continue
        if now_wanted is None:
            now_wanted = _wish(state)
            settled.watched(now_wanted)
        else:
            result.instants_skipped += 1
        wanted_since = _watch(now_wanted, ts, judged, wanted_since, wishes, result)
    sent = [
        (float(c["ts"]), action_key(a))
        for c in commands
        if c["origin"] == "interlock"
        and float(c["ts"]) >= window.since_ts
        and (a := decode_action(c["action"]))
    ]
    result.disagreements += _safe_action_disagreements(wishes, sent, step_s)
    result.disagreements.sort(key=lambda d: d.ts)
    return result


def _wish(state: LineState) -> dict[str, str]:
    """Today's safe actions at one line state, by action, with the rule and its reason."""
    return {action_key(s.action): f"[{s.invariant}] {s.reason}" for s in watch(state)}


def _watch(
    now_wanted: dict[str, str],
    ts: float,
    judged: bool,
    wanted_since: dict[str, float],
    wishes: list[tuple[float, str, str]],
    result: Rejudgement,
) -> dict[str, float]:
    """Each safe action newly wanted at `ts` is a wish (its rising edge); returns what is wanted from
    now on, with the instant each began."""
    if not judged:
        return dict.fromkeys(now_wanted, ts)
    result.instants_watched += 1
    for key, reason in now_wanted.items():
        if key not in wanted_since:
            wanted_since[key] = ts
            wishes.append((ts, key, reason))
    return {k: v for k, v in wanted_since.items() if k in now_wanted}


class _Settled:
    """Event-driven judging on the stepped grid: an instant is judged again only when something the
    rules read changed since the last judged one.

    An instant's line state is a function of its inputs (each reading's value, unit and quality as the
    rules see it then), the items, and the atmosphere memory. When all three are what they were at the
    last instant judged, and that judging left the memory as it found it, the state, and so today's
    wish, is the same: the wish is taken over instead of computed. A sample that changes a value or a
    quality, a poll that overtakes a written output, a reading ageing into staleness, a recorded command
    (judged at its own instant, and the outputs it wrote) or an inventory change makes the next instant
    judged in full (`Replay.changed`, `Replay.stale`). The decisions are then those of judging every
    instant (tests compare both on a recorded night and on the benchmark's)."""

    def __init__(self, *, skip: bool) -> None:
        self.skip = skip
        self.stale: frozenset[Any] = frozenset()
        self.items: dict[str, Item] | None = None
        self.moved = True  # the last judging changed the memory (or nothing was judged yet)
        self.wish: dict[str, str] | None = None  # today's wish at the last judged instant, if watched

    def wanted(self, replay: Replay, items: dict[str, Item], ts: float) -> dict[str, str] | None:
        """The last wish when nothing it was computed from has changed by `ts`; None: judge in full."""
        if not self.skip or self.moved or self.wish is None or replay.changed or items is not self.items:
            return None
        return self.wish if replay.stale(ts) == self.stale else None

    def judged(self, replay: Replay, items: dict[str, Item], ts: float) -> LineState:
        before = replay.memory()
        state = replay.state(ts)
        self.moved = replay.memory() != before
        self.stale, self.items, self.wish = replay.stale(ts), items, None
        replay.changed = False
        return state

    def watched(self, wish: dict[str, str]) -> None:
        self.wish = wish


class _SampleFeed:
    """The recorded samples handed to the replay in time order, a page at a time. Rows are read by
    position (id, ts, channel_id, value, quality): a driver row's fields by name cost more than the
    rest of the replay's reading."""

    def __init__(self, pages: AsyncIterator[list[SampleRow]]) -> None:
        self.pages = pages
        self.pending: list[SampleRow] = []
        self.at = 0  # pending[at:] not yet applied
        self.exhausted = False

    async def until(self, ts: float, replay: Replay) -> int:
        while not self.exhausted and (self.at == len(self.pending) or self.pending[-1][1] <= ts):
            page = await anext(self.pages, None)
            if page is None:
                self.exhausted = True
            else:
                self.pending = self.pending[self.at :] + page
                self.at = 0
        end = bisect.bisect_right(self.pending, ts, lo=self.at, key=_ts)
        replay.apply_samples(self.pending[self.at : end])
        applied, self.at = end - self.at, end
        return applied


def _ts(row: SampleRow) -> float:
    return row[1]


def _instants(
    since: float, until: float, step_s: float, commands: list[dict[str, Any]]
) -> list[tuple[float, dict[str, Any] | None]]:
    """The grid ticks and the commands' own instants, in time order (a command just before a tick)."""
    ticks: list[tuple[float, dict[str, Any] | None]] = []
    n = int((until - since) / step_s)
    ticks += [(since + i * step_s, None) for i in range(n + 1)]
    ticks += [(float(c["ts"]), c) for c in commands]
    return sorted(ticks, key=lambda t: (t[0], t[1] is None))


class _InventoryAt:
    """The inventory folded from the recorded actions before an instant; refolded only when an action
    was passed since the last instant asked (instants come in time order)."""

    def __init__(self, known: list[tuple[str, str, str]], actions: list[dict[str, Any]]) -> None:
        self.known = known
        self.actions = actions
        self.times = [float(row["ts"]) for row in actions]
        self.passed = -1
        self.items: dict[str, Item] = {}

    def at(self, ts: float) -> dict[str, Item]:
        passed = bisect.bisect_left(self.times, ts)
        if passed != self.passed:
            self.passed = passed
            self.items = fold_inventory(self.known, (row["action"] for row in self.actions[:passed]))
        return self.items


def _judge_command(result: Rejudgement, state: LineState, row: dict[str, Any], action: Action) -> None:
    if row["origin"] == "interlock":  # the supervisor's safe actions are compared as such, below
        return
    then = str(row["outcome"])
    refusals = row.get("refusals")
    refused_by_interlock = then == "refused" and bool(refusals) and not _refused_by_mode(refusals)
    if then not in ("done", "failed") and not refused_by_interlock:
        return
    result.commands_judged += 1
    verdict = check(state, action)
    allowed_then = then in ("done", "failed")
    if allowed_then and not verdict.allowed:
        result.disagreements.append(
            Disagreement(
                float(row["ts"]), "allowed_then_refused_now", action_key(action), then, verdict.reason
            )
        )
    elif not allowed_then and verdict.allowed:
        result.disagreements.append(
            Disagreement(
                float(row["ts"]),
                "refused_then_allowed_now",
                action_key(action),
                str(row["reason"]),
                "allowed",
            )
        )


def _refused_by_mode(refusals: Any) -> bool:
    text = json.dumps(refusals)
    return '"mode"' in text or "owns the line" in text


def _safe_action_disagreements(
    wishes: list[tuple[float, str, str]], sent: list[tuple[float, str]], step_s: float
) -> list[Disagreement]:
    out: list[Disagreement] = []
    unmatched = list(sent)
    tolerance = 2 * step_s
    for wished_ts, key, reason in wishes:
        near = [s for s in unmatched if s[1] == key and abs(s[0] - wished_ts) <= MATCH_WINDOW_S]
        if not near:
            out.append(Disagreement(wished_ts, "safe_action_not_sent", key, "not sent", reason))
            continue
        best = min(near, key=lambda s: abs(s[0] - wished_ts))
        unmatched.remove(best)
        delta = best[0] - wished_ts
        if delta > tolerance:
            out.append(
                Disagreement(wished_ts, "safe_action_sent_later", key, f"sent {delta:.1f} s later", reason)
            )
        elif delta < -tolerance:
            out.append(
                Disagreement(best[0], "safe_action_sent_earlier", key, f"sent {-delta:.1f} s earlier", reason)
            )
    out += [
        Disagreement(ts, "safe_action_not_wanted_now", key, "sent", "not wanted") for ts, key in unmatched
    ]
    return out


def render_rejudgement(result: Rejudgement) -> str:
    w = result.window
    lines = [
        f"rejudged {w.what} with today's rules: {result.commands_judged} commands, "
        f"{result.instants_watched} instants watched, {result.samples_replayed} samples replayed",
    ]
    if not result.disagreements:
        lines.append("today's rules agree with every recorded verdict and safe action")
    for d in result.disagreements:
        lines.append(f"{utc(d.ts, digits=1)}  {d.kind}: {d.action}; then: {d.then}; now: {d.now}")
    return "\n".join(lines) + "\n"
