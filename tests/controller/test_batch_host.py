"""What the batch host refuses, and which queue files it offers, without a plant: none of this may move
anything, so the controller is built but never started (a request that slipped through would fail on the
unopened drivers instead of passing)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.line.controller import LineController
from sequences.batch_host import BatchHost, BatchRefused
from sequences.batch_queue import shipped_recipe
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock

CLOCK = PlantClock(1.0)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[BatchHost]:
    base = load_line_config()
    database = dataclasses.replace(base.database, url=f"sqlite:///{tmp_path / 'line.db'}")
    ctl = LineController(dataclasses.replace(base, database=database))
    folder = tmp_path / "queues"
    folder.mkdir()
    recipe = shipped_recipe("ex8-bare-Cu-lithium-free-Ar-etch.toml")
    (folder / "site-one.toml").write_text(
        f'name = "site queue"\n[[jobs]]\nrecipe = "{recipe}"\ncount = 2\n', encoding="utf-8"
    )
    (folder / "broken.toml").write_text('[[jobs]]\nrecipe = "no-such-recipe.toml"\n', encoding="utf-8")
    (folder / "demo.toml").write_text(f'[[jobs]]\nrecipe = "{recipe}"\n', encoding="utf-8")
    async with BatchHost(
        ctl, database.url, clock=CLOCK, desk=OperatorDesk(clock=CLOCK), queue_folders=(folder,)
    ) as batches:
        yield batches


async def test_the_shipped_and_site_queues_are_offered_and_an_invalid_file_is_left_out(
    host: BatchHost,
) -> None:
    choices = {c.name: c for c in await host.choices()}
    assert set(choices) == {"demo", "site-one"}
    assert choices["demo"].jobs == 3  # the shipped demo queue: a site file of the same name cannot shadow it
    assert "sequences" in str(choices["demo"].path)
    site = choices["site-one"]
    assert (site.title, site.jobs, site.recipes) == (
        "site queue",
        2,
        ("ex8-bare-Cu-lithium-free-Ar-etch",) * 2,
    )


async def test_requests_with_nothing_running_are_refused_with_a_reason(host: BatchHost) -> None:
    assert not host.running
    assert host.busy() is None
    for request in (host.hold, host.resume, host.abort):
        with pytest.raises(BatchRefused, match="no job is running"):
            request("op1")
    with pytest.raises(BatchRefused, match="no batch is running"):
        host.stop()
    host.stop_if_running()  # a signal with nothing running is not an error


async def test_a_start_is_refused_for_an_unknown_queue_and_while_a_manual_operation_runs(
    host: BatchHost,
) -> None:
    with pytest.raises(BatchRefused, match="no queue 'broken'"):
        await host.start("broken", "op1")
    host.blocked_by = lambda: "a manual operation runs (cycle on inlet by op2): wait for it or cancel it"
    with pytest.raises(BatchRefused, match="cycle on inlet by op2"):
        await host.start("demo", "op1")
    assert not host.running  # nothing was started or recorded
    assert host.row is None
