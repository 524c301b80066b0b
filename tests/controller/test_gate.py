"""The command gate against the simulated line: allowed commands reach the hardware, refused ones don't."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from controller.config.line_config import load_line_config
from controller.line.actions import Command, MoveItem, SetContainer, SetHeater, SetPort, SetPump, SetValve
from controller.line.actuators import Actuators
from controller.line.devices import LineDevices, build_line_devices
from controller.line.gate import CommandGate, GateRecord
from controller.line.items import ItemKind
from controller.line.model import LineModel
from drivers.errors import DriverError
from drivers.reading import Reading
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine


@dataclass
class Rig:
    sim: SimLine
    devices: LineDevices
    model: LineModel
    gate: CommandGate
    readings: dict[tuple[str, str], Reading]

    async def poll(self) -> None:
        for name, driver in self.devices.drivers.items():
            try:
                for channel, reading in (await driver.poll()).items():
                    self.readings[(name, channel)] = reading
            except DriverError:
                continue  # its values age to stale, as the poller does

    async def submit(self, action: object, user: str = "op1") -> GateRecord:
        await self.poll()
        return await self.gate.submit(Command(action, user, "test"))  # type: ignore[arg-type]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with SimLine(load_line_config(), speed=100.0) as sim:
        config = sim.simulated_config()
        devices = build_line_devices(config)
        model = LineModel(config)
        readings: dict[tuple[str, str], Reading] = {}
        gate = CommandGate(model, Actuators(config, devices, model), lambda: readings)
        try:
            yield Rig(sim, devices, model, gate, readings)
        finally:
            await devices.close()


def valve_open(rig: Rig, name: str) -> bool:
    return bool(rig.sim.plant.valves[name].open)


async def eventually(rig: Rig, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        await rig.poll()
        if check():
            return
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_allowed_command_reaches_the_plant_and_refusal_names_the_invariant(rig: Rig) -> None:
    refused = await rig.submit(SetValve("inlet", "rough", True))
    assert refused.outcome == "refused"
    assert refused.verdict.refusals[0].rule == "pump-not-running"
    assert not valve_open(rig, "inlet.rough")  # nothing moved
    assert (await rig.submit(SetPump("inlet", True))).outcome == "done"
    await eventually(rig, lambda: rig.gate.state().spaces["inlet"].pump_running is True)
    assert (await rig.submit(SetValve("inlet", "rough", True))).outcome == "done"
    assert valve_open(rig, "inlet.rough")
    # the vent may not open while roughing: the gate sees its own write before any poll shows it
    vent = await rig.gate.submit(Command(SetValve("inlet", "vent", True), "op1", "test"))
    assert vent.outcome == "refused"
    assert vent.verdict.refusals[0].invariant == "I4"


async def test_outer_door_opens_only_at_atmosphere(rig: Rig) -> None:
    assert (await rig.submit(SetPort("inlet.outer", True))).outcome == "done"
    await eventually(rig, lambda: rig.sim.plant.doors["inlet.outer"].is_open)
    assert (await rig.submit(SetPort("inlet.outer", False))).outcome == "done"
    await eventually(rig, lambda: rig.sim.plant.doors["inlet.outer"].is_closed)
    await rig.submit(SetPump("inlet", True))
    await eventually(rig, lambda: rig.gate.state().spaces["inlet"].pump_running is True)
    await rig.submit(SetValve("inlet", "rough", True))
    await eventually(rig, lambda: (rig.gate.state().spaces["inlet"].pressure_pa or 1e9) < 50_000)
    await rig.submit(SetValve("inlet", "rough", False))
    record = await rig.submit(SetPort("inlet.outer", True))
    assert record.outcome == "refused"
    assert record.verdict.refusals[0].invariant == "I3"


async def test_lithium_caps_the_heater_setpoint(rig: Rig) -> None:
    rig.model.register("C1", ItemKind.CONTAINER, "SUS", "process", sealed=True)
    rig.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
    record = await rig.submit(SetHeater("process", "substrate", 200.0))
    assert record.outcome == "refused"
    assert record.verdict.refusals[0].invariant == "I5"
    assert "179" in record.verdict.reason
    assert (await rig.submit(SetHeater("process", "substrate", 150.0))).outcome == "done"
    assert rig.sim.plant.heaters["substrate"].setpoint_c == 150.0


async def test_exposed_lithium_blocks_venting_and_opening_in_air(rig: Rig) -> None:
    rig.model.register("C1", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
    rig.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
    opened = await rig.submit(SetContainer("C1", False))
    assert opened.outcome == "refused"  # the inlet holds room air
    assert opened.verdict.refusals[0].invariant == "I1"
    rig.model.set_sealed("C1", False)  # as if it had been opened in an inert box: now test the vent rule
    vent = await rig.submit(SetValve("inlet", "vent", True))
    assert vent.outcome == "refused"
    assert "F1" in vent.verdict.reason
    moved = await rig.submit(MoveItem("F1", "process"))
    assert moved.outcome == "refused"


async def test_a_failing_device_is_recorded_not_assumed(rig: Rig) -> None:
    records: list[GateRecord] = []
    rig.gate.subscribe(records.append)
    inject(rig.sim, Fault("modbus_exception", device="remote_io", code=4))
    record = await rig.submit(SetPump("inlet", True))
    assert record.outcome == "failed"
    assert "DeviceRefused" in record.error
    assert records[-1] is record
    assert not rig.sim.plant.pumps["inlet.rough"].running


async def test_a_command_whose_reply_was_lost_is_said_again_and_done(rig: Rig) -> None:
    """One reply lost on the wire (the remote I/O's next answer dropped): the gate says the command again
    and it is done, instead of failing a job's step on a single hiccup."""
    await rig.poll()
    rig.sim.link_of("remote_io").endpoint.faults.drop_replies = 1
    record = await rig.gate.submit(Command(SetPump("inlet", True), "op1", "test"))
    assert record.outcome == "done", record.error
    assert rig.sim.link_of("remote_io").endpoint.faults.drop_replies == 0  # the lost reply was that command's
    assert rig.sim.plant.pumps["inlet.rough"].running


async def test_a_device_that_stays_silent_fails_the_command_after_saying_it_again(rig: Rig) -> None:
    await rig.poll()
    inject(rig.sim, Fault("no_reply", device="remote_io"))
    record = await rig.gate.submit(Command(SetPump("inlet", True), "op1", "test"))
    assert record.outcome == "failed"
    assert "DeviceTimeout" in record.error or "LinkDown" in record.error, record.error
    # (a silent device may still have acted on what it heard: the gate says "failed", never "done", and
    # the read-back of the next poll shows what the pump really does)
