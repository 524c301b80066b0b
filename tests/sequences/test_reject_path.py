"""A job rejected after its containers were opened finishes its way out: the glove work that makes
the outer door allowed (the electrode and targets back into their box, closed) is asked of a person,
never waited for on a refused door, and the job ends REJECTED with every item sealed and out."""

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
from sequences.batch_store import BatchStore
from sequences.operator_desk import OperatorDesk, Request
from sequences.plant_clock import PlantClock
from sim_hardware.faults import Fault, inject
from sim_hardware.line import InitialAtmosphere, SimLine

SPEED = 500.0
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


ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("line_file", "gate"),
    [
        (None, "inlet_gate"),
        # one antechamber as inlet and outlet: the reject path used to open its outer door for the
        # outlet container with the electrode lying open behind it, and wait on the refusal for ever
        (ROOT / "deploy" / "lines" / "shared_antechamber.toml", "antechamber_gate"),
    ],
)
async def test_a_job_rejected_after_its_containers_were_opened_ends_with_every_item_sealed_and_out(
    tmp_path: Path, line_file: Path | None, gate: str
) -> None:
    base = load_line_config(line_file)
    config = dataclasses.replace(
        base, database=dataclasses.replace(base.database, url=f"sqlite:///{tmp_path}/l.db")
    )
    (tmp_path / "thin.toml").write_text(RECIPE, encoding="utf-8")
    (tmp_path / "q.toml").write_text(
        'on_failure = "skip"\n[[jobs]]\nrecipe = "thin.toml"\n', encoding="utf-8"
    )
    sims: list[SimLine] = []
    heal: list[object] = []

    @contextlib.asynccontextmanager
    async def line() -> AsyncIterator[LineConfig]:
        initial = {s.name: InitialAtmosphere("ar", 101_700.0, DRY_S) for s in config.spaces}
        async with SimLine(config, speed=SPEED, initial=initial) as sim:
            sims.append(sim)
            yield sim.simulated_config()

    desk = OperatorDesk(clock=CLOCK, simulated_glove_work_s=60.0)

    def prompted(request: Request) -> None:
        if request.key.endswith(":open"):  # the containers are being opened: the inlet gate jams
            heal.append(inject(sims[-1], Fault("stuck_actuator", actuator=gate)))

    desk.listeners.append(prompted)
    await upgrade(config.database.url)  # the schema first: a loaded machine migrating mid-start locks SQLite
    out = io.StringIO()
    result = await run_batch(
        config, load_queue(tmp_path / "q.toml", line=config), line, clock=CLOCK, desk=desk, out=out,
        plan=simulated_plan(config),
    )  # fmt: skip
    [job] = result.jobs
    assert job.outcome == "rejected", out.getvalue()
    assert gate in job.message
    async with BatchStore(config.database.url, line=config.name) as store:
        events = await store.events(job.id)
    prompts = [str(e["detail"]["key"]).rsplit(":", 1)[1] for e in events if e["kind"] == "confirm"]
    assert prompts[-2:] == ["reseal", "take_back"]  # glove work asked for, then the box taken out
    historian = Historian(config.database.url, line=config.name, spill_dir=tmp_path / "spill")
    await historian.start()
    try:
        inventory = {item.id: item for item in (await historian.inventory()).items}
        record = await historian.exposure_record(job.items.base)
    finally:
        await historian.stop()
    box = inventory[job.items.container]
    assert box.sealed
    assert box.location == "room"
    for item in (job.items.base, *job.items.targets.values()):
        assert inventory[item].location == job.items.container, item
    assert record is not None
    assert not record.ever_exposed_to_non_inert
