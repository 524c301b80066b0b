"""The batch record's failures are typed: a database that will not take a checkpoint stops the batch
with a message naming the line, never a bare TimeoutError or a driver's exception."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sequences import batch_store
from sequences.batch_store import BatchStore, BatchStoreUnavailable


async def test_a_write_lock_held_past_the_retries_is_a_typed_error_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_store, "LOCKED_PAUSE_S", 0.01)
    path = tmp_path / "line.db"
    async with BatchStore(f"sqlite:///{path}", line="line7", timeout_s=0.4) as store:
        await store.end_batch("no-such-batch", "complete")  # free: the write goes through
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = r"line 'line7': a write refused it: OperationalError: database is locked$"
            with pytest.raises(BatchStoreUnavailable, match=refused):
                await store.end_batch("no-such-batch", "complete")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await store.end_batch("no-such-batch", "complete")  # released: the store writes again
