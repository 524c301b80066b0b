"""The shipped topology variants start and run a job: one antechamber serving as inlet and outlet."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.config.line_config import LineConfig, load_line_config
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.service.batch_run import run_batch, simulated_plan
from sequences.batch_queue import load_queue
from sequences.line_route import route_of
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sim_hardware.line import InitialAtmosphere, SimLine

ROOT = Path(__file__).parents[2]
SPEED = 1000.0
CLOCK = PlantClock(SPEED)
DRY_S = 7 * 24 * 3600.0
RECIPE = """
name = "thin"
description = "50 nm electrolyte on lithium foil"
[base]
material = "Li/Cu"
thickness_um = 60.0
[[targets]]
id = "T1"
material = "57Li2S-38SiS2-5Li3PO4"
[[steps]]
kind = "deposit"
layer = "electrolyte"
method = "sputtering"
target = "T1"
thickness_um = 0.05
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
"""


def test_the_shared_antechamber_is_inlet_and_outlet_of_its_route() -> None:
    route = route_of(load_line_config(ROOT / "deploy" / "lines" / "shared_antechamber.toml"))
    assert (route.inlet, route.process, route.outlet) == ("antechamber", "process", "antechamber")
    assert route.inlet_door == route.outlet_door == "antechamber.outer"


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_a_job_runs_to_done_on_the_shared_antechamber_line(tmp_path: Path) -> None:
    shipped = load_line_config(ROOT / "deploy" / "lines" / "shared_antechamber.toml")
    database = dataclasses.replace(shipped.database, url=f"sqlite:///{tmp_path}/l.db")
    config = dataclasses.replace(shipped, database=database)
    (tmp_path / "thin.toml").write_text(RECIPE, encoding="utf-8")
    (tmp_path / "q.toml").write_text('[[jobs]]\nrecipe = "thin.toml"\n', encoding="utf-8")

    @contextlib.asynccontextmanager
    async def line() -> AsyncIterator[LineConfig]:
        initial = {s.name: InitialAtmosphere("ar", 101_700.0, DRY_S) for s in config.spaces}
        async with SimLine(config, speed=SPEED, initial=initial) as sim:
            yield sim.simulated_config()

    await upgrade(config.database.url)
    out = io.StringIO()
    result = await run_batch(
        config, load_queue(tmp_path / "q.toml", line=config), line, clock=CLOCK,
        desk=OperatorDesk(clock=CLOCK, simulated_glove_work_s=60.0), out=out, plan=simulated_plan(config),
    )  # fmt: skip
    [job] = result.jobs
    assert job.outcome == "done", out.getvalue()
    historian = Historian(config.database.url, line=config.name, spill_dir=tmp_path / "spill")
    await historian.start()
    try:
        record = await historian.exposure_record(job.items.base)
    finally:
        await historian.stop()
    assert record is not None
    assert not record.ever_exposed_to_non_inert
    assert [s.space for s in record.path][:3] == ["room", "antechamber", "process"]
