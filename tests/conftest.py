"""Suite-wide fixtures: every test must give back the tasks, sockets and ptys it opened; the one browser
every HMI test drives is Debian's Chromium (Playwright's own download cannot be fetched on the line's
machines)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bench.postgres_cluster import PgCluster

pytest_plugins = ["tests.host_stalls"]


def _open_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue
    return fds


def _leakable(target: str) -> bool:
    """Sockets and terminals are what a driver or simulator can leak; pipes belong to pytest itself."""
    return "socket:" in target or "/dev/pts/" in target or "/dev/ptmx" in target


@pytest.fixture(autouse=True)
def no_leaked_descriptors() -> Iterator[None]:
    before = _open_fds()
    yield
    gc.collect()
    leaked = {fd for fd in _open_fds() - before if _leakable(fd)}
    if leaked:
        # an event loop's own self-pipe sockets close with the loop; give it one more collection
        gc.collect()
        leaked = {fd for fd in _open_fds() - before if _leakable(fd)}
    assert not leaked, f"test leaked descriptors: {sorted(leaked)}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"test leaked tasks: {[t.get_name() for t in leftover]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `heavy` run first: with workers in parallel (`-n`), a test that runs for minutes
    overlaps everything else instead of starting last and keeping the whole suite waiting for it."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # stable: order kept otherwise


@pytest.fixture
def chromium_path() -> str:
    """Fail, never skip, without the browser: a skipped HMI test would pass `make test` untested."""
    from tests.hmi.test_hmi_browser import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs Debian's chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    """A real PostgreSQL cluster of the module's own on a free port, destroyed after it; skipped only
    where the machine has no PostgreSQL server binaries (`unavailable_reason` names what is missing)."""
    from bench.postgres_cluster import PgCluster, unavailable_reason

    if (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
