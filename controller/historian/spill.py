"""The historian's rows as values, and the spill files that keep them while the database is away.

Why it is built this way:

- **One row format for memory, spill files and the writer.** A sample stays a `Sample` in memory
  (cheapest to record); every other kind is a `(kind, column values)` tuple from the moment it is
  recorded, so spilling it is `json.dumps` and replaying it is a check of its length against
  `COLUMNS`.
- **Spill files carry their batches' keys.** The header line lists each batch's key and size, then
  one row per line follows. The keys are made from the file's name and a fixed batch size
  (`REPLAY_BATCH_ROWS`, never a setting), so a file left behind by a stopped or crashed process is
  replayed at the next start batch by batch, and a batch whose commit was in doubt is found by its
  key in `write_batches` instead of being written twice.
- **A file is whole or absent.** It is written to a `.tmp` name, fsynced and renamed into place; a
  `.tmp` found at start is a write that never finished (its rows were counted as dropped) and is
  deleted. A file that cannot be read is renamed `rejected-*`, as is a row the database refused
  (`rejected-*.jsonl`, with the error), so nothing is deleted unread.
- **Thread side.** Every function here does blocking file I/O and is called through
  `asyncio.to_thread` by the writer; none touches the event loop or the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from controller.line.poller import Sample
from drivers.reading import Quality

SPILL_PREFIX: Final = "spill-"
REJECTED_PREFIX: Final = "rejected-"
REPLAY_BATCH_ROWS: Final = 5000  # fixed: a spill file's batch keys must not depend on settings
QUALITY_TEXT: Final = {q: q.value for q in Quality}

# Row kinds in the buffer and in spill files.
K_SAMPLE: Final = "s"
K_RUN: Final = "run"
K_RUN_END: Final = "run_end"
K_COMMAND: Final = "cmd"
K_ALARM: Final = "alarm"
K_ITEM: Final = "item"
K_LEDGER: Final = "ledger"
K_TRANSITION: Final = "tr"
K_MODE: Final = "mode"
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    K_SAMPLE: ("device", "channel", "unit", "ts", "value", "quality"),
    K_RUN: ("id", "started_at", "status", "config_hash", "config_text", "recipe_hash", "recipe_text", "user"),
    K_RUN_END: ("id", "ended_at", "status"),
    K_COMMAND: (
        "ts",
        "run_id",
        "user",
        "origin",
        "action",
        "outcome",
        "reason",
        "invariant",
        "error",
        "duration_s",
        "request_reason",
        "refusals",
    ),
    K_ALARM: (
        "ts",
        "alarm_id",
        "event",
        "from_state",
        "to_state",
        "user",
        "reason",
        "severity",
        "evidence",
        "trip",
        "until_s",
        "condition_active",
        "first_out",
        "follows",
    ),
    K_ITEM: ("id", "kind", "material", "registered_at"),
    K_LEDGER: ("ts", "item", "event", "space", "atmosphere", "exposed", "evidence"),
    K_TRANSITION: ("ts", "run_id", "station", "source", "dest", "trigger", "reason"),
    K_MODE: ("ts", "run_id", "mode", "previous", "user", "reason", "owner", "device", "in_service"),
}

Row = tuple[str, tuple[Any, ...]]
Entry = Sample | Row


@dataclass(slots=True)
class SpillFile:
    path: Path
    rows: int


def to_json(value: object) -> str:
    """Compact JSON, anything unknown as its text: spill lines and the rows' JSON columns."""
    return json.dumps(value, default=str, separators=(",", ":"))


def spill_path(spill_dir: Path, instance: str, seq: int) -> Path:
    """Names sort in replay order: by the process that wrote them, then by its sequence number."""
    return spill_dir / f"{SPILL_PREFIX}{instance}-{seq:06d}.jsonl"


def rejected_path(spill_dir: Path, instance: str, key: str) -> Path:
    return spill_dir / f"{REJECTED_PREFIX}{instance}-{key}.jsonl"


def spill_batches(path: Path, chunk: list[Entry]) -> list[tuple[str, list[Entry]]]:
    """The rows of a new spill file cut into batches keyed by the file's name and their position."""
    return [
        (f"{path.name}#{i}", chunk[start : start + REPLAY_BATCH_ROWS])
        for i, start in enumerate(range(0, len(chunk), REPLAY_BATCH_ROWS))
    ]


def entry_json(entry: Entry) -> list[Any]:
    if isinstance(entry, Sample):
        r = entry.reading
        return [K_SAMPLE, entry.device, entry.channel, r.unit, r.ts, r.value, QUALITY_TEXT[r.quality]]
    kind, values = entry
    return [kind, *values]


# columns added to a kind after spill files of it may have been written: a row written before has
# none of them, and reads as NULL there (alarm first-out, migration 0005)
_ADDED_LATER: Final = {K_ALARM: 2}


def _entry_from_json(line: list[Any]) -> Row:
    kind = str(line[0])
    values = line[1:]
    if kind in COLUMNS and len(values) == len(COLUMNS[kind]) - _ADDED_LATER.get(kind, 0):
        values = [*values, *([None] * _ADDED_LATER[kind])] if kind in _ADDED_LATER else values
    if kind not in COLUMNS or len(values) != len(COLUMNS[kind]):
        raise ValueError(f"not a historian row: {line[:3]!r}")
    return kind, tuple(values)


def write_lines(path: Path, lines: Iterable[object]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(to_json(line) + "\n")


def write_spill_file(path: Path, batches: Sequence[tuple[str, Sequence[Entry]]]) -> None:
    """Header line (batch keys and sizes), then one row per line; renamed into place when complete."""
    tmp = path.with_name(path.name + ".tmp")
    header = {"v": 1, "batches": [[key, len(entries)] for key, entries in batches]}
    with tmp.open("w", encoding="utf-8") as f:
        f.write(to_json(header) + "\n")
        for _key, entries in batches:
            f.writelines(to_json(entry_json(e)) + "\n" for e in entries)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _spill_file_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        try:
            header = json.loads(f.readline())
            return sum(int(n) for _key, n in header["batches"])
        except (ValueError, KeyError, TypeError):
            return 0


def read_spill_file(path: Path) -> list[tuple[str, list[Entry]]]:
    with path.open(encoding="utf-8") as f:
        header = json.loads(f.readline())
        if header.get("v") != 1:
            raise ValueError(f"unknown spill file version {header.get('v')!r}")
        loaded: list[tuple[str, list[Entry]]] = []
        for key, count in header["batches"]:
            entries: list[Entry] = [_entry_from_json(json.loads(f.readline())) for _ in range(int(count))]
            loaded.append((str(key), entries))
    return loaded


def find_spill_files(spill_dir: Path) -> list[SpillFile]:
    """The spill files an earlier process left, oldest first; unfinished `.tmp` files are deleted."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    found: list[SpillFile] = []
    for path in sorted(spill_dir.glob(f"{SPILL_PREFIX}*")):
        if path.suffix == ".tmp":  # a write that never finished; its rows were counted as dropped
            path.unlink(missing_ok=True)
            continue
        found.append(SpillFile(path, _spill_file_rows(path)))
    return found


__all__ = [
    "COLUMNS",
    "K_ALARM",
    "K_COMMAND",
    "K_ITEM",
    "K_LEDGER",
    "K_MODE",
    "K_RUN",
    "K_RUN_END",
    "K_SAMPLE",
    "K_TRANSITION",
    "QUALITY_TEXT",
    "REJECTED_PREFIX",
    "REPLAY_BATCH_ROWS",
    "SPILL_PREFIX",
    "Entry",
    "Row",
    "SpillFile",
    "entry_json",
    "find_spill_files",
    "read_spill_file",
    "rejected_path",
    "spill_batches",
    "spill_path",
    "to_json",
    "write_lines",
    "write_spill_file",
]
