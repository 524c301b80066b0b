"""Device faults become named alarms with decoded texts, quickly; cascades are marked first-out.

The line is the simulated one at 500x plant speed with the controller in the loop. "Quickly" is the
issue's bound: one poll period plus the alarm delay. The alarm layer adds no on-delay of its own, so
for a value the device reports the delay is the evaluation that follows the poll; for a device that
goes silent it is the reply timeout after which a poll counts as failed (`MODBUS_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.api.views import alarm_record_view, alarm_row_view, alarm_view
from controller.config.line_config import load_line_config
from controller.historian.spill import COLUMNS, K_ALARM, read_spill_file
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmBoard, AlarmDefinition, AlarmRecord
from controller.line.controller import LineController
from controller.line.device_faults import device_conditions
from controller.line.items import ItemKind
from controller.line.poller import PollPlan, Priority
from drivers.reading import Quality, Reading
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine

INTERLOCK_PERIOD_S = 0.1
MODBUS_TIMEOUT_S = 0.5  # build_line_devices' reply timeout: when a silent Modbus device counts as failed
SLACK_S = 0.4  # the event loop of a loaded 2-core machine, on top of the bound


@pytest.fixture
async def line() -> AsyncIterator[tuple[SimLine, LineController]]:
    base = load_line_config()
    base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.5))
    async with SimLine(base, speed=500.0) as sim:
        config = sim.simulated_config()
        plan = PollPlan.for_line(
            config, periods_s={Priority.INTERLOCK: INTERLOCK_PERIOD_S, Priority.PROCESS: 0.5}
        )
        async with LineController(config, plan=plan) as ctl:
            await _until_armed(ctl)
            yield sim, ctl


async def _until_armed(ctl: LineController) -> None:
    deadline = time.monotonic() + 20.0
    while not ctl.supervisor.armed:
        assert time.monotonic() < deadline, "the supervisor never armed"
        await asyncio.sleep(0.02)


async def _raised(ctl: LineController, alarm_id: str, timeout_s: float = 10.0) -> AlarmRecord:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            r for r in ctl.alarms.journal if r.alarm_id == alarm_id and r.event.value == "condition_raised"
        ]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{alarm_id} was never raised"
        await asyncio.sleep(0.005)


async def test_gas_supply_low_raises_its_named_alarm_within_one_poll_period(
    line: tuple[SimLine, LineController],
) -> None:
    sim, ctl = line
    injected = time.time()
    inject(sim, Fault("gas_supply_empty"))
    record = await _raised(ctl, "device.inlet_glovebox.gas_supply_low")
    latency = record.ts - injected
    assert latency <= INTERLOCK_PERIOD_S + SLACK_S, latency
    status = ctl.alarms.get("device.inlet_glovebox.gas_supply_low")
    assert status.definition.text == "inlet_glovebox: gas supply low"
    assert status.definition.severity is Severity.HIGH
    # nothing else was going on: whichever glovebox (one supply feeds both) was read first opens the
    # cascade, and the other follows it
    outlet = await _raised(ctl, "device.outlet_glovebox.gas_supply_low")
    first, then = (record, outlet) if record.first_out else (outlet, record)
    assert first.first_out
    assert then.follows == first.alarm_id


async def test_a_silent_dewpoint_transmitter_raises_its_named_alarm_within_a_poll_and_a_timeout(
    line: tuple[SimLine, LineController],
) -> None:
    sim, ctl = line
    injected = time.time()
    inject(sim, Fault("no_reply", device="inlet_dewpoint"))
    record = await _raised(ctl, "comms.inlet_dewpoint")
    latency = record.ts - injected
    assert latency <= INTERLOCK_PERIOD_S + MODBUS_TIMEOUT_S + SLACK_S, latency
    assert "inlet_dewpoint is not answering" in str(record.evidence["text"])


async def test_a_heater_sensor_break_is_alarmed_and_clears_when_repaired(
    line: tuple[SimLine, LineController],
) -> None:
    sim, ctl = line
    repair = inject(sim, Fault("heater_sensor_break", device="substrate_heater"))
    await _raised(ctl, "device.substrate_heater.sensor_break")
    assert ctl.alarms.get("device.substrate_heater.sensor_break").definition.text == (
        "substrate_heater: sensor break"
    )
    repair()
    deadline = time.monotonic() + 10.0
    while ctl.alarms.get("device.substrate_heater.sensor_break").condition_active:
        assert time.monotonic() < deadline, "the sensor break alarm never cleared"
        await asyncio.sleep(0.02)


def _reading(value: float, quality: Quality = Quality.OK) -> Reading:
    return Reading(value, "", quality, 0.0, 0.0)


def test_turbo_codes_are_decoded_with_the_manuals_words() -> None:
    [error, warning] = device_conditions(
        "pfeiffer_turbo", {"error_code": _reading(107.0), "warning_code": _reading(45.0)}
    )
    assert (error.key, error.text, error.severity) == (
        "Err107",
        "Err107 collective fault of the power stage",
        Severity.HIGH,
    )
    assert (warning.key, warning.text) == ("Wrn045", "Wrn045 high motor temperature")
    [unknown] = device_conditions("pfeiffer_turbo", {"error_code": _reading(250.0)})
    assert unknown.text.startswith("Err250 not in the decoded list")
    assert (
        device_conditions("pfeiffer_turbo", {"error_code": _reading(0.0), "warning_code": _reading(0.0)})
        == []
    )


def test_gauge_mfc_and_transmitter_status_are_decoded() -> None:
    gauge = device_conditions(
        "tpg36x",
        {"pressure_ch1": _reading(1e5, Quality.OVER_RANGE), "pressure_ch2": _reading(0.0, Quality.ERROR)},
    )
    assert [(c.key, c.severity, c.latching) for c in gauge] == [
        ("pressure_ch1.over_range", Severity.LOW, False),
        ("pressure_ch2.sensor_error", Severity.HIGH, True),
    ]
    mfc = device_conditions("mass_flow_controller", {"status": _reading(1 + 16 + 32)})  # MOV LCK HLD
    assert [c.key for c in mfc] == ["mov", "hld"]  # a locked front panel is a setting, not a fault
    transmitter = device_conditions(
        "dewpoint_transmitter",
        {
            "device_status": _reading(0x0002),
            "error_code": _reading(0x0004),
            "dew_frost_point_status": _reading(0x0080),
            "online": _reading(1.0),
        },
    )
    assert [c.text for c in transmitter] == [
        "device: error, may recover by itself",
        "errors active (error code 0x00000004)",
        "Td/f: sensor failure",
    ]


def _board() -> AlarmBoard:
    return AlarmBoard(
        [
            AlarmDefinition("device.turbo.Err107", Severity.HIGH, "turbo", "g"),
            AlarmDefinition("interlock.I4.process", Severity.HIGH, "trip", "g"),
            AlarmDefinition("device.gauge.under_range", Severity.LOW, "advisory", "g", latching=False),
            AlarmDefinition("comms.qcm", Severity.HIGH, "qcm", "g"),
        ],
        cascade_window_s=60.0,
    )


def test_the_first_alarm_of_a_cascade_is_first_out_and_later_ones_follow_it() -> None:
    board = _board()
    board.raise_alarm("device.gauge.under_range", 0.0, {})  # an advisory opens nothing
    turbo = board.raise_alarm("device.turbo.Err107", 1.0, {})
    trip = board.raise_alarm("interlock.I4.process", 2.0, {})
    assert turbo is not None
    assert trip is not None
    assert (turbo.first_out, turbo.follows) == (True, None)
    assert (trip.first_out, trip.follows) == (False, "device.turbo.Err107")
    assert board.get("interlock.I4.process").follows == "device.turbo.Err107"
    assert trip.as_dict()["follows"] == "device.turbo.Err107"
    assert board.get("device.gauge.under_range").first_out is False


def test_a_cascade_ends_when_its_conditions_are_gone_or_its_window_has_passed() -> None:
    board = _board()
    board.raise_alarm("device.turbo.Err107", 0.0, {})
    board.clear("device.turbo.Err107", 5.0)
    later = board.raise_alarm("comms.qcm", 6.0, {})  # nothing of the first cascade is active any more
    assert later is not None
    assert later.first_out
    stale = board.raise_alarm("interlock.I4.process", 100.0, {})  # comms.qcm still active, but 94 s on
    assert stale is not None
    assert stale.first_out
    assert stale.follows is None


async def test_a_space_a_batch_needs_and_a_space_with_an_exposed_item_alarm_when_out_of_spec(
    line: tuple[SimLine, LineController],
) -> None:
    sim, ctl = line
    ctl.supervisor.need_spaces("batch B1", ["inlet"])
    inject(sim, Fault("no_reply", device="inlet_dewpoint"))  # the inlet becomes unknown: never in spec
    needed = await _raised(ctl, "space.inlet.needed_out_of_spec")
    assert needed.evidence["needed_by"] == "batch B1"
    assert needed.evidence["atmosphere"] == "unknown"
    ctl.model.register("C1", ItemKind.CONTAINER, "SUS", "inlet", sealed=False)
    ctl.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
    exposed = await _raised(ctl, "space.inlet.exposed_out_of_spec")
    assert exposed.severity is Severity.HIGH
    assert "F1" in str(exposed.evidence["items"])
    ctl.supervisor.release_spaces("batch B1")
    deadline = time.monotonic() + 10.0
    while ctl.alarms.get("space.inlet.needed_out_of_spec").condition_active:
        assert time.monotonic() < deadline, "the batch's space alarm outlived the batch"
        await asyncio.sleep(0.02)


def test_the_api_views_carry_first_out_and_what_an_alarm_follows() -> None:
    board = _board()
    board.raise_alarm("device.turbo.Err107", 1.0, {"text": "turbo reports Err107"})
    trip = board.raise_alarm("interlock.I4.process", 2.0, {})
    assert trip is not None
    assert alarm_view(board.get("device.turbo.Err107")).model_dump()["first_out"] is True
    assert alarm_view(board.get("interlock.I4.process")).model_dump()["follows"] == "device.turbo.Err107"
    assert alarm_record_view(trip).model_dump()["follows"] == "device.turbo.Err107"
    row = {k: v for k, v in trip.as_dict().items() if k not in ("first_out", "follows")}  # before 0005
    old = alarm_row_view(row).model_dump()
    assert (old["first_out"], old["follows"]) == (False, None)


def test_an_alarm_row_spilled_before_first_out_existed_is_read_back_with_neither(tmp_path: Path) -> None:
    """A spill file written by the version before migration 0005 (12 alarm columns) still replays."""
    old = [K_ALARM, 1.0, "comms.qcm", "condition_raised", "normal", "active_unacked", None, None, "high"]
    old += ["{}", None, None, True]
    path = tmp_path / "spill-old.jsonl"
    path.write_text(json.dumps({"v": 1, "batches": [["alarm", 1]]}) + "\n" + json.dumps(old) + "\n")
    [(_key, [row])] = read_spill_file(path)
    assert isinstance(row, tuple)
    kind, values = row
    assert kind == K_ALARM
    assert dict(zip(COLUMNS[K_ALARM], values, strict=True))["follows"] is None
