"""Every shipped queue (`sequences/queues/`) and every shipped recipe (`sequences/recipes/`) runs to the
end on the line it names, at 1000x plant speed, and no electrode is ever exposed.

A queue names its line (`line = ...`, the embedded standard line when it names none); a recipe named
by a shipped queue runs in that queue's run, and the others each as a one-job queue on the standard
line, so the suite pays for no recipe twice here. The demo queue is run by `depline demo`'s own test
(`RUN_ELSEWHERE`). Each run is its own test (one
simulated line each: the rig starts one per batch), so xdist spreads them over its workers.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from sequences.batch_queue import load_queue, parse_queue
from sequences.line_route import route_of
from sequences.recipe import DepositStep
from tests.sequences.rig import LINES, ROOT, Rig, kinds, line_config

RECIPES = sorted((ROOT / "sequences" / "recipes").glob("*.toml"))
QUEUES = sorted((ROOT / "sequences" / "queues").glob("*.toml"))
# a queue another test already runs to the end on its line: `depline demo` runs demo.toml, three jobs
# of minutes each, and checks every job done and never exposed; running it twice buys nothing
RUN_ELSEWHERE = {
    "demo": (
        ROOT / "tests" / "test_batch_cli.py",
        "test_the_demo_runs_three_shipped_recipes_and_prints_the_records",
    )
}
LINE_FILES: dict[str, Path | None] = {
    load_line_config(path).name: path for path in [None, *sorted(LINES.glob("*.toml"))]
}


@dataclasses.dataclass(frozen=True)
class ShippedRun:
    """One batch the suite runs: a shipped queue, or a shipped recipe no queue names, alone."""

    name: str
    queue: Path | None  # None: a one-job queue of `recipe`
    recipe: Path | None
    line: str


def _queue_line(path: Path) -> str:
    queue = parse_queue(path.read_text(encoding="utf-8"), str(path), path.parent)
    return queue.line or load_line_config().name


def _recipes_of(path: Path) -> set[str]:
    queue = parse_queue(path.read_text(encoding="utf-8"), str(path), path.parent)
    return {Path(job.recipe_path).name for job in queue.jobs}


def shipped_runs() -> list[ShippedRun]:
    runs = [
        ShippedRun(f"queue:{q.stem}", q, None, _queue_line(q)) for q in QUEUES if q.stem not in RUN_ELSEWHERE
    ]
    queued = set().union(*(_recipes_of(q) for q in QUEUES))
    runs += [
        ShippedRun(f"recipe:{r.stem}", None, r, load_line_config().name)
        for r in RECIPES
        if r.name not in queued
    ]
    return runs


def test_the_runs_cover_every_shipped_recipe_and_queue() -> None:
    runs = shipped_runs()
    queued = set().union(*(_recipes_of(q) for q in QUEUES))
    alone = {r.recipe.name for r in runs if r.recipe is not None}
    assert queued | alone == {r.name for r in RECIPES}
    assert {r.queue for r in runs if r.queue is not None} | {
        q for q in QUEUES if q.stem in RUN_ELSEWHERE
    } == set(QUEUES)
    for test_file, test in RUN_ELSEWHERE.values():
        assert f"async def {test}(" in test_file.read_text(encoding="utf-8")
    assert all(r.line in LINE_FILES for r in runs), "a shipped queue names a line that is not shipped"


@pytest.mark.heavy
@pytest.mark.timeout(600)
@pytest.mark.parametrize("run", shipped_runs(), ids=lambda r: r.name)
async def test_a_shipped_run_ends_done_on_its_line_and_never_exposes_an_electrode(
    run: ShippedRun, tmp_path: Path
) -> None:
    rig = Rig(line_config(tmp_path, LINE_FILES[run.line]), tmp_path, speed=1000.0)
    if run.queue is not None:
        queue = run.queue
    else:
        assert run.recipe is not None
        queue = rig.file("queue.toml", f'on_failure = "stop"\n[[jobs]]\nrecipe = "{run.recipe.name}"\n')
    out = io.StringIO()
    result = await rig.run(queue, out)
    assert result.exit_code == 0, out.getvalue()[-3000:]
    specs = load_queue(queue, line=rig.config).jobs
    route = route_of(rig.config)
    assert len(result.jobs) == len(specs)
    for job, spec in zip(result.jobs, specs, strict=True):
        assert job.outcome == "done", (job.name, job.message)
        record, _ = await rig.records(job.items.base)
        assert record is not None
        assert not record.ever_exposed_to_non_inert, job.name
        assert [s.space for s in record.path][:3] == ["room", route.inlet, route.process]
        layers = [s for s in spec.recipe.steps if isinstance(s, DepositStep)]
        reports = [d for d in kinds(await rig.events(job), "step_report") if d["step"] == "deposit"]
        assert [r["layer"] for r in reports] == [s.layer for s in layers]
        for report, layer in zip(reports, layers, strict=True):
            assert float(str(report["thickness_nm"])) == pytest.approx(layer.thickness_um * 1000.0, rel=0.1)
