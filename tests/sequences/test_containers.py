"""Containers after their contents went into the chamber: an inlet container reused as the job's storage
container (the method allows it, on a line whose inlet is its outlet), and an emptied one recorded as
parked where it stands until an outer door of its space next opens and it is taken out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from sequences.batch_queue import load_queue
from sequences.recipe_on_line import RecipeDoesNotFitLine
from tests.sequences.rig import LINES, Rig, kinds, line_config

SHARED = LINES / "shared_antechamber.toml"
EX2 = 'recipe = "ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil"\n'


def test_reusing_the_inlet_container_is_refused_where_the_inlet_is_not_the_outlet(tmp_path: Path) -> None:
    queue = tmp_path / "q.toml"
    queue.write_text(
        '[[jobs]]\nrecipe = "ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil"\nreuse_container = true\n',
        encoding="utf-8",
    )
    with pytest.raises(RecipeDoesNotFitLine) as refused:
        load_queue(queue, line=load_line_config())
    assert "jobs[0].reuse_container = true: the line's inlet (inlet) is not its outlet (outlet)" in str(
        refused.value
    )
    assert load_queue(queue, line=load_line_config(SHARED)).jobs[0].reuse_container


def test_reuse_and_an_out_container_together_are_refused(tmp_path: Path) -> None:
    queue = tmp_path / "q.toml"
    queue.write_text(
        f'[[jobs]]\n{EX2}reuse_container = true\nout_container = "BOX-1"\n',
        encoding="utf-8",
    )
    with pytest.raises(Exception, match="either reuse_container or an out_container"):
        load_queue(queue)


def test_a_queue_written_for_another_line_is_refused_naming_both(tmp_path: Path) -> None:
    queue = tmp_path / "q.toml"
    queue.write_text(
        'line = "line-shared"\n[[jobs]]\nrecipe = "ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil"\n',
        encoding="utf-8",
    )
    with pytest.raises(RecipeDoesNotFitLine) as refused:
        load_queue(queue, line=load_line_config())
    assert "line = 'line-shared': the queue is written for line line-shared, this is line line1" in str(
        refused.value
    )
    assert "line.name" in str(refused.value)


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_an_emptied_inlet_container_is_parked_and_the_next_load_takes_it_out(tmp_path: Path) -> None:
    rig = Rig(line_config(tmp_path), tmp_path, speed=1000.0)
    out = io.StringIO()
    result = await rig.run(rig.queue('[[jobs]]\nrecipe = "thin.toml"\ncount = 2\n'), out)
    first, second = result.jobs
    assert (first.outcome, second.outcome) == ("done", "done"), out.getvalue()
    [parked] = kinds(await rig.events(first), "container_parked")
    assert parked == {"container": first.items.container, "space": "inlet", "as": "parked"}
    [taken] = kinds(await rig.events(second), "container_out")
    assert (taken["container"], taken["space"]) == (first.items.container, "inlet")
    _, inventory = await rig.records(second.items.base)
    final = {item.id: item for item in inventory.items}
    assert final[first.items.container].location == "room"  # out with the next load
    assert final[second.items.container].location == "inlet"  # the last one stays, parked, on record
    assert not [i for i in final.values() if i.location == second.items.container]  # and empty


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_the_inlet_container_is_the_storage_container_on_a_shared_antechamber(tmp_path: Path) -> None:
    """One job reuses its box, the next does not: its emptied box leaves when the outlet box comes in."""
    rig = Rig(line_config(tmp_path, SHARED), tmp_path, speed=1000.0)
    queue = rig.queue(
        '[[jobs]]\nrecipe = "thin.toml"\nreuse_container = true\n[[jobs]]\nrecipe = "thin.toml"\n'
    )
    out = io.StringIO()
    result = await rig.run(queue, out)
    reused, fresh = result.jobs
    assert (reused.outcome, fresh.outcome) == ("done", "done"), out.getvalue()
    assert reused.items.out_container == reused.items.container
    events = await rig.events(reused)
    assert kinds(events, "container_parked") == [
        {"container": reused.items.container, "space": "antechamber", "as": "storage"}
    ]
    prompts = [str(d["key"]).rsplit(":", 1)[1] for d in kinds(events, "confirm")]
    assert "place_out_container" not in prompts  # no second box was brought in
    [taken] = kinds(await rig.events(fresh), "container_out")
    assert taken["container"] == fresh.items.container
    record, inventory = await rig.records(reused.items.base)
    final = {item.id: item for item in inventory.items}
    box = final[reused.items.container]
    assert (box.location, box.sealed) == ("room", True)
    assert final[reused.items.base].location == reused.items.container
    assert final[fresh.items.container].location == "room"
    assert record is not None
    assert not record.ever_exposed_to_non_inert
