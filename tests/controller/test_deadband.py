"""Deadband and heartbeat recording: far fewer rows, and nothing that matters lost.

The rules on hand-made readings, then the simulated standard line at rest, polled as a real line is on
the plant's clock (`bench.recording`): the rows stored per plant hour fall at least tenfold against
every poll stored, and a 2 K frost-point excursion is in the rows kept.
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from bench.recording import excursion_rise, idle_stream, kept, nominal_rows_per_day
from controller.config.line_config import load_line_config
from controller.config.recording import ChannelRecording, RecordingConfig
from controller.historian.deadband import Deadband
from controller.line.poller import Sample
from drivers.reading import Quality, Reading

SETTINGS = RecordingConfig(heartbeat_s=60.0)
STANDARD_LINE = Path(__file__).resolve().parents[2] / "controller" / "config" / "standard_line.toml"


def reading(ts: float, value: float, unit: str, quality: Quality = Quality.OK) -> Sample:
    return Sample("dev", unit, Reading(value, unit, quality, ts, ts))


def stored(deadband: Deadband, *samples: Sample) -> list[tuple[float, float]]:
    return [(s.reading.ts, s.reading.value) for sample in samples for s in deadband.admit(sample)]


def test_pressures_move_by_a_fraction_of_their_value_temperatures_by_kelvin() -> None:
    deadband = Deadband(SETTINGS)
    pressures = [reading(t, v, "Pa") for t, v in enumerate([1e-4, 1.01e-4, 1.019e-4, 1.03e-4, 100.0, 101.0])]
    # 2 % of the last stored: 1.03e-4 is 3 % above 1e-4 (stored with the reading before it), 101 is 1 %
    assert stored(deadband, *pressures) == [(0, 1e-4), (2, 1.019e-4), (3, 1.03e-4), (4, 100.0)]
    temperatures = [reading(t, v, "degC") for t, v in enumerate([-60.0, -59.9, -59.85, -59.7, -57.7])]
    assert stored(deadband, *temperatures) == [(0, -60.0), (2, -59.85), (3, -59.7), (4, -57.7)]


def test_a_quality_change_is_always_stored_and_a_still_channel_at_its_heartbeat() -> None:
    deadband = Deadband(SETTINGS)
    still = [reading(t, 5.0, "ppmv") for t in (0.0, 30.0, 59.0, 61.0, 90.0)]
    assert stored(deadband, *still) == [(0.0, 5.0), (61.0, 5.0)]
    silenced = reading(95.0, math.nan, "ppmv", Quality.STALE)
    back = reading(96.0, 5.0, "ppmv")
    kept_now = [s for sample in (silenced, back) for s in deadband.admit(sample)]
    assert [(s.reading.ts, s.reading.quality) for s in kept_now] == [
        (90.0, Quality.OK),  # the last good value before it went stale
        (95.0, Quality.STALE),
        (96.0, Quality.OK),
    ]
    switch = [reading(t, v, "bool") for t, v in ((0.0, 0.0), (1.0, 0.0), (2.0, 1.0))]
    assert stored(Deadband(SETTINGS), *switch) == [(0.0, 0.0), (1.0, 0.0), (2.0, 1.0)]


def test_what_was_held_back_is_stored_when_recording_stops() -> None:
    deadband = Deadband(SETTINGS)
    stored(deadband, reading(0.0, 20.0, "degC"), reading(1.0, 20.1, "degC"))
    assert [(s.reading.ts, s.reading.value) for s in deadband.release()] == [(1.0, 20.1)]
    assert deadband.release() == []


def test_a_reading_a_decision_was_taken_on_is_stored_and_later_ones_are_judged_against_it() -> None:
    deadband = Deadband(SETTINGS)
    # a fill: 2 % of the last stored is the band, so 99 000 Pa is held back after 97 500 Pa
    assert stored(deadband, reading(0.0, 97_500.0, "Pa"), reading(1.0, 99_000.0, "Pa")) == [(0.0, 97_500.0)]
    # the gate decides at t = 1.5 on 99 000 Pa: released, it is the value later readings are judged by
    assert [(s.reading.ts, s.reading.value) for s in deadband.release()] == [(1.0, 99_000.0)]
    assert stored(deadband, reading(2.0, 100_500.0, "Pa")) == []  # 1.5 % from 99 000, 3.1 % from 97 500
    # a reading of before the decision that reaches the recorder after it is kept, with what it held back
    kept_late = deadband.admit(reading(1.4, 100_600.0, "Pa"), keep=True)
    assert [(s.reading.ts, s.reading.value) for s in kept_late] == [(2.0, 100_500.0), (1.4, 100_600.0)]


def test_a_channel_s_own_deadband_and_heartbeat_win_over_its_class() -> None:
    overrides = {
        ("dev", "degC"): ChannelRecording(deadband=1.0, heartbeat_s=10.0),
        ("dev", "Pa"): ChannelRecording(deadband_relative=0.10),
    }
    deadband = Deadband(RecordingConfig(heartbeat_s=60.0, channels=MappingProxyType(overrides)))
    # 1 K instead of the class's 0.2 K, and a 10 s heartbeat instead of the line's 60 s
    temperatures = [
        reading(t, v, "degC") for t, v in [(0, 20.0), (1, 20.5), (2, 20.9), (3, 21.2), (15, 21.2)]
    ]
    assert stored(deadband, *temperatures) == [(0, 20.0), (2, 20.9), (3, 21.2), (15, 21.2)]
    # 10 % of the last stored instead of the class's 2 %
    pressures = [reading(t, v, "Pa") for t, v in [(0, 100.0), (1, 105.0), (2, 108.0), (3, 111.0)]]
    assert stored(deadband, *pressures) == [(0, 100.0), (2, 108.0), (3, 111.0)]
    # a channel without an override keeps its class's band and the line's heartbeat
    others = [reading(t, v, "ppmv") for t, v in [(0, 5.0), (1, 5.3), (30, 5.3), (61, 5.3)]]
    assert stored(Deadband(RecordingConfig(heartbeat_s=60.0)), *others) == [(0, 5.0), (1, 5.3), (61, 5.3)]


async def test_a_bad_channel_override_exits_2_naming_file_field_value_and_range(tmp_path: Path) -> None:
    bad = tmp_path / "line.toml"
    override = '\n[recording.channels."inlet_dewpoint.frost_point"]\ndeadband = 0.5\nheartbeat_s = 900\n'
    bad.write_text(STANDARD_LINE.read_text().replace("\n[hmi]\n", override + "\n[hmi]\n", 1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "config", "check", str(bad),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60.0)
    assert proc.returncode == 2
    field = 'recording.channels."inlet_dewpoint.frost_point".heartbeat_s'
    assert err.decode().strip() == f"depline: {bad}: {field} = 900: allowed range is 1 .. 600"


def test_off_stores_every_reading() -> None:
    deadband = Deadband(RecordingConfig(deadband=False))
    assert len(stored(deadband, *(reading(t, 1.0, "Pa") for t in range(5)))) == 5


@pytest.mark.heavy  # ~17 s alone, over 20 s on a loaded runner
async def test_an_idle_line_stores_a_tenth_of_the_rows_and_keeps_a_2_k_frost_point_excursion() -> None:
    stream = await idle_stream(speed=100.0, plant_h=0.25)
    assert stream.excursion is not None
    rows = kept(stream, RecordingConfig())
    every_poll_per_day = nominal_rows_per_day(load_line_config(), stream)
    kept_per_day = len(rows) / stream.plant_s * 86_400.0
    assert kept_per_day * 10 <= every_poll_per_day, (kept_per_day, every_poll_per_day)
    # against the polls the simulated line really made (fewer than a real line's: conservative)
    assert len(rows) * 5 <= len(stream.samples)
    assert excursion_rise(rows, stream.excursion) >= 1.9
