"""What a restart after a crash (`kill -9`, power loss) rebuilds from the historian's records.

Why it is built this way:

- **Interrupted runs are closed by the writer.** Right after the spill files a dead process left
  are replayed (so its rows are in), and before any row of this process, runs still 'running' that
  started before this historian are marked 'incomplete', ending at their last record (command,
  transition, alarm, ledger entry or sample) or, with none, now (`close_runs_started_before`, which
  the writer calls as one of its steps: it needs no database at start and counts in no statistic;
  `Historian.interrupted_runs` says which).
  Only the service's own line's runs are looked at (many lines may share the database), and only
  once the service holds the line's lease (`controller.historian.lease`): a run another live service
  of the same line is recording is never taken for an interrupted one.
- **The inventory is a fold of records.** A registration is kept as a done "RegisterItem" command
  (`Historian.record_registration`: who, where, sealed or not) besides its `items` row, and every
  done MoveItem, SetContainer and "CoatItem" command carries its action; replayed in id order
  (`fold_inventory`) they give every item's last location, seal and material exactly. The writer
  writes those rows, and run starts and ends, at once rather than after its batch time, so a crash
  just after an item moved does not lose the move. The query that feeds the fold is
  `Historian.inventory()`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.historian.schema import alarm_events, channels, commands, ledger, runs, samples, transitions
from controller.line.items import Item, ItemKind

REGISTER_ITEM: Final = "RegisterItem"  # the action type a registration is recorded under
COAT_ITEM: Final = "CoatItem"
INVENTORY_ACTIONS: Final = (REGISTER_ITEM, "MoveItem", "SetContainer", COAT_ITEM)


@dataclass(frozen=True, slots=True)
class InterruptedRun:
    """A run a previous process left 'running', now 'incomplete'.

    `ended_at` is its last record's time; `found_end` is False when it had none and `ended_at` is
    the time it was closed.
    """

    id: str
    started_at: float
    ended_at: float
    found_end: bool


@dataclass(frozen=True, slots=True)
class RecoveredInventory:
    """The inventory rebuilt from the records.

    `approximate`: items that had no registration record (written by an older depline, or lost), put
    in the space their ledger last saw, outside any container: unprotected, so the interlocks treat
    them as exposed (the safe error). `unlocated`: items no record places at all; not in `items`.
    """

    items: tuple[Item, ...]
    approximate: tuple[str, ...] = ()
    unlocated: tuple[str, ...] = ()


# --- closing interrupted runs -----------------------------------------------------------------------


async def close_runs_started_before(
    conn: AsyncConnection, line: str, before: float, own: Iterable[str]
) -> list[InterruptedRun]:
    """`line`'s runs still 'running' that started before `before` (and are not `own`) become
    'incomplete', ending at their last record.

    A run's records are looked for between its start and the next run's start (or `before`), so
    two interrupted runs in a row do not share records. Idempotent (only 'running' rows change), so
    a commit in doubt is simply done again.
    """
    open_runs = (
        await conn.execute(
            select(runs.c.id, runs.c.started_at)
            .where(
                runs.c.line == line,
                runs.c.status == "running",
                runs.c.started_at < before,
                runs.c.id.not_in(list(own)),
            )
            .order_by(runs.c.started_at)
        )
    ).all()
    if not open_runs:
        return []
    starts = sorted((await conn.execute(select(runs.c.started_at).where(runs.c.line == line))).scalars())
    channel_ids = list((await conn.execute(select(channels.c.id).where(channels.c.line == line))).scalars())
    closed: list[InterruptedRun] = []
    for run_id, started_at in open_runs:
        upper = min([s for s in starts if s > started_at] + [before])
        last = await _last_record_ts(conn, line, run_id, started_at, upper, channel_ids)
        ended_at = last if last is not None else time.time()
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.line == line, runs.c.status == "running")
            .values(status="incomplete", ended_at=ended_at)
        )
        closed.append(InterruptedRun(run_id, started_at, ended_at, last is not None))
    return closed


async def _last_record_ts(
    conn: AsyncConnection, line: str, run_id: str, since: float, until: float, channel_ids: Sequence[int]
) -> float | None:
    """The newest record of a run: its commands and transitions by id, the rest by time window.

    Samples are asked per channel, newest first with LIMIT 1, so the `(channel_id, ts)` index answers
    each in one seek however long the run was.
    """
    statements: list[Select[Any]] = [
        select(func.max(commands.c.ts)).where(commands.c.run_id == run_id),
        select(func.max(transitions.c.ts)).where(transitions.c.run_id == run_id),
        select(func.max(alarm_events.c.ts)).where(
            alarm_events.c.line == line, alarm_events.c.ts >= since, alarm_events.c.ts < until
        ),
        select(func.max(ledger.c.ts)).where(ledger.c.line == line, ledger.c.ts >= since, ledger.c.ts < until),
    ]
    statements += [
        select(samples.c.ts)
        .where(samples.c.channel_id == channel_id, samples.c.ts >= since, samples.c.ts < until)
        .order_by(samples.c.ts.desc())
        .limit(1)
        for channel_id in channel_ids
    ]
    found = [await conn.scalar(statement) for statement in statements]
    times = [float(ts) for ts in found if ts is not None]
    return max(times) if times else None


# --- rebuilding the inventory (pure) ----------------------------------------------------------------


def fold_inventory(
    known: Iterable[tuple[str, str, str]], actions: Iterable[dict[str, Any]]
) -> dict[str, Item]:
    """Replay registrations, moves and seals in order. `known` are the items table's (id, kind,
    material): an item with no registration record starts there, with no location yet ("")."""
    out = {item_id: Item(item_id, ItemKind(kind), material, "") for item_id, kind, material in known}
    for action in actions:
        kind = action.get("type")
        if kind == REGISTER_ITEM:
            item = Item(
                str(action["id"]),
                ItemKind(action["kind"]),
                str(action["material"]),
                str(action["location"]),
                bool(action["sealed"]),
            )
            out[item.id] = item
        elif kind == "MoveItem" and action.get("item") in out:
            out[action["item"]] = dataclasses.replace(out[action["item"]], location=str(action["to"]))
        elif kind == COAT_ITEM and action.get("item") in out:
            out[action["item"]] = dataclasses.replace(out[action["item"]], material=str(action["material"]))
        elif kind == "SetContainer" and action.get("container") in out:
            out[action["container"]] = dataclasses.replace(
                out[action["container"]], sealed=bool(action["sealed"])
            )
    return out


def placed_items(folded: dict[str, Item]) -> dict[str, Item]:
    """The items whose chain of containers ends in a place (not in an unknown item or nowhere)."""
    placed: dict[str, Item] = {}
    for item_id, item in folded.items():
        chain: set[str] = set()
        location = item.location
        while location in folded and location not in chain:
            chain.add(location)
            location = folded[location].location
        if location and location not in folded:
            placed[item_id] = item
    return placed


__all__ = [
    "COAT_ITEM",
    "INVENTORY_ACTIONS",
    "REGISTER_ITEM",
    "InterruptedRun",
    "RecoveredInventory",
    "close_runs_started_before",
    "fold_inventory",
    "placed_items",
]
