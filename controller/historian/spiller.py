"""The event loop's side of the spill files: rows out of memory into files, and files back into batches.

`controller.historian.spill` is the file format and the blocking I/O; this is what the historian's
tasks do with it. Why it is built this way:

- **Never the database, never the loop's thread.** The spiller task calls `spill` only, which writes
  in an executor thread bounded by `SPILL_WRITE_TIMEOUT_S`; nothing here talks to the database, so a
  hung database call cannot stop rows from leaving memory.
- **Counted while in a file.** `rows` covers the files waiting to be replayed (and the batches
  loaded from one and not yet written), `in_flight` the rows being written right now: the
  historian's `spilled` figure and its "everything is written" test read both, so a row is never
  out of sight between memory and a file.
- **Nothing deleted unread.** A file is deleted once its last batch is in; one that cannot be read
  is renamed `rejected-*`, as is a row the database refused (with the error). A spill that fails
  drops its rows loudly (`HistorianHealth.drop`) so that memory stays bounded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from controller.historian.commit import Batch
from controller.historian.errors import describe_error
from controller.historian.health import HistorianHealth
from controller.historian.spill import (
    REJECTED_PREFIX,
    Entry,
    SpillFile,
    entry_json,
    find_spill_files,
    read_spill_file,
    rejected_path,
    spill_batches,
    spill_path,
    write_lines,
    write_spill_file,
)

log = logging.getLogger(__name__)

SPILL_WRITE_TIMEOUT_S: Final = 60.0


class Spiller:
    """The spill files of one historian, oldest first, and the rows in them.

    `instance` (the start time in ns) names this process's files, so they sort after those of any
    earlier run; `total` counts the rows spilled since start; `done` is set when a write ends.
    """

    def __init__(self, spill_dir: Path, health: HistorianHealth) -> None:
        self.spill_dir = spill_dir
        self.instance = f"{time.time_ns():020d}"
        self.files: collections.deque[SpillFile] = collections.deque()
        self.rows = 0
        self.in_flight = 0
        self.total = 0
        self.done = asyncio.Event()
        self._seq = 0
        self._health = health

    async def queue_leftovers(self, timeout_s: float) -> None:
        """At start: the files an earlier run left, to be replayed before any row of this one."""
        try:
            leftovers = await asyncio.wait_for(asyncio.to_thread(find_spill_files, self.spill_dir), timeout_s)
        except OSError as exc:  # the database may still work; a spill will fail loudly if it comes to that
            leftovers = []
            log.error("spill directory unusable", extra={"spill_dir": str(self.spill_dir), "error": str(exc)})
        self.files.extend(leftovers)
        self.rows += sum(f.rows for f in leftovers)
        if leftovers:
            log.warning(
                "replaying spill files left by an earlier run",
                extra={"files": len(leftovers), "rows": self.rows, "spill_dir": str(self.spill_dir)},
            )

    async def spill(self, chunk: list[Entry]) -> None:
        """Oldest rows to a new file; if that fails they are dropped and counted (memory stays bounded)."""
        self._seq += 1
        path = spill_path(self.spill_dir, self.instance, self._seq)
        batches = spill_batches(path, chunk)
        error = await self._write(path, batches, len(chunk))
        if error is not None:
            self._health.drop(len(chunk), f"spill to {self.spill_dir} failed: {error}")
            return
        self.files.append(SpillFile(path, len(chunk)))
        self.rows += len(chunk)
        self.total += len(chunk)
        log.info("rows spilled to disk", extra={"path": str(path), "rows": len(chunk)})

    async def spill_pending(self, pending: list[Batch]) -> None:
        """At stop: batches not yet written go to a file, ahead of the rows still in memory.

        Pending batches keep their keys, so a batch whose commit was in doubt is still found by its key.
        Batches from a spill file are written back over that file (minus the batches already in);
        batches from memory are older than every spill file of this run, so they get sequence 0.
        """
        batches = [(b.key, b.entries) for b in pending]
        rows = sum(len(entries) for _key, entries in batches)
        source = pending[0].source
        if source is None:
            path = spill_path(self.spill_dir, self.instance, 0)
            error = await self._write(path, batches, rows)
            if error is None:
                self.rows += rows
                self.total += rows
            else:
                self._health.drop(rows, f"spill at stop failed: {error}")
        else:
            # on failure the source file is still there, whole: replaying it is safe (batch keys)
            await self._write(source, batches, rows)

    async def _write(self, path: Path, batches: list[tuple[str, list[Entry]]], rows: int) -> str | None:
        """Write one spill file off the loop; the error text if it failed."""
        self.in_flight += rows
        try:
            await asyncio.wait_for(asyncio.to_thread(write_spill_file, path, batches), SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self._health.last_error = describe_error(exc)
            log.error(
                "spill failed", extra={"path": str(path), "rows": rows, "error": self._health.last_error}
            )
            return self._health.last_error
        finally:
            self.in_flight -= rows
            self.done.set()
        return None

    async def load_oldest(self) -> list[Batch]:
        """The oldest spill file as batches to write; it is deleted once the last one is in (`replayed`)."""
        spill = self.files[0]  # stays queued while it is read, so a flush never sees it gone
        try:
            reading = asyncio.to_thread(read_spill_file, spill.path)
            loaded = await asyncio.wait_for(reading, SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            self.files.popleft()
            self.rows -= spill.rows
            await self._file_op(spill.path.replace, spill.path.with_name(REJECTED_PREFIX + spill.path.name))
            self._health.drop(
                spill.rows, f"spill file {spill.path.name} unreadable ({describe_error(exc)}); renamed"
            )
            return []
        self.files.popleft()
        self.rows += sum(len(entries) for _key, entries in loaded) - spill.rows
        if not loaded:
            await self._unlink(spill.path)
        return [
            Batch(key, entries, True, spill.path, i == len(loaded) - 1)
            for i, (key, entries) in enumerate(loaded)
        ]

    async def replayed(self, batch: Batch) -> None:
        """A batch loaded from a file is done with (written or rejected); the file goes with its last."""
        self.rows -= len(batch.entries)
        if batch.source is not None and batch.last_of_source:
            await self._unlink(batch.source)

    async def keep_rejected(self, key: str, entry: Entry, error: str) -> Path:
        """A row the database refused, with the error, in a `rejected-*.jsonl` file beside the spill files."""
        path = rejected_path(self.spill_dir, self.instance, key)
        line = [entry_json(entry), error]
        try:
            await asyncio.wait_for(asyncio.to_thread(write_lines, path, [line]), SPILL_WRITE_TIMEOUT_S)
        except Exception:
            log.exception("could not keep a rejected row", extra={"path": str(path)})
        return path

    async def _unlink(self, path: Path) -> None:
        await self._file_op(path.unlink, True)

    async def _file_op(self, fn: Callable[..., object], *args: object) -> None:
        """Housekeeping on spill files: off the loop, and never a reason to stop writing."""
        try:
            await asyncio.wait_for(asyncio.to_thread(fn, *args), SPILL_WRITE_TIMEOUT_S)
        except Exception as exc:
            log.error(
                "spill file housekeeping failed", extra={"op": getattr(fn, "__name__", ""), "error": str(exc)}
            )


__all__ = ["SPILL_WRITE_TIMEOUT_S", "Spiller"]
