"""A job rejected after its containers were opened finishes its way out: the glove work that makes
the outer door allowed (the electrode and targets back into their box, closed) is asked of a person,
never waited for on a refused door, and the job ends REJECTED with every item sealed and out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from controller.historian.store import Historian
from sequences.operator_desk import Request
from sim_hardware.faults import Fault, inject
from tests.sequences.line_rig import THIN_ELECTROLYTE, rig_on


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("line_file", "gate"),
    [
        (None, "inlet_gate"),
        # one antechamber as inlet and outlet: the reject path used to open its outer door for the
        # outlet container with the electrode lying open behind it, and wait on the refusal for ever
        ("shared_antechamber.toml", "antechamber_gate"),
    ],
)
async def test_a_job_rejected_after_its_containers_were_opened_ends_with_every_item_sealed_and_out(
    tmp_path: Path, line_file: str | None, gate: str
) -> None:
    rig = rig_on(line_file, tmp_path, thin=THIN_ELECTROLYTE)
    heal: list[object] = []

    def jam(_: Request) -> None:  # the containers are being opened: the inlet gate jams
        assert rig.sim is not None
        heal.append(inject(rig.sim, Fault("stuck_actuator", actuator=gate)))

    rig.on_prompt["open"] = jam
    out = io.StringIO()
    result = await rig.run(rig.queue('on_failure = "skip"\n[[jobs]]\nrecipe = "thin.toml"\n'), out)
    [job] = result.jobs
    assert job.outcome == "rejected", out.getvalue()
    assert gate in job.message
    events = await rig.events(job)
    confirmed = [e["detail"] for e in events if e["kind"] == "confirm"]
    prompts = [str(d["key"]).rsplit(":", 1)[1] for d in confirmed if isinstance(d, dict)]
    assert prompts[-2:] == ["reseal", "take_back"]  # glove work asked for, then the box taken out
    historian = Historian(rig.config.database.url, line=rig.config.name, spill_dir=tmp_path / "spill")
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
