"""`[recording]`: which readings the historian stores and for how long.

An idle line polled at its interlock rates makes ~400 readings a second, nearly all equal to the one
before: stored raw that is ~35 M rows a day. So a reading is stored when it has moved by more than
its channel class's deadband since the last stored one, when its quality changed, or when the
channel's heartbeat is due; raw samples older than `retention_days` leave (events, alarms, commands,
the ledger and the certificates' records are kept). How: `controller.historian.deadband`,
`controller.historian.retention`.

The deadbands are per channel class, by unit, in the terms that class is judged in: pressures
relative (a gauge spans decades; 2 % is well inside a Pirani's or a cold cathode's accuracy),
temperatures, frost and dew points in kelvin (0.2 K: far finer than the 1-2 K excursions the
atmosphere limits care about), concentrations in ppmv, everything else relative. Switches and
positions (`bool`) are stored on every change.

A channel may override its class (`[recording.channels."DEVICE.CHANNEL"]`): `deadband` in the
channel's own unit (what its trend shows: K, ppmv, W), or `deadband_relative` (a fraction of the last
stored value, for a gauge spanning decades), and `heartbeat_s`. The key names a configured device, so a
misspelt one fails the load instead of silently keeping the class default. A channel's heartbeat may be
shorter than the line's, never longer: a replay holds a recorded value for 1.5 line heartbeats before
calling it stale (`controller.flight_recorder.rejudge`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from controller.config.reader import TableReader
from controller.errors import MISSING

MAX_ABSOLUTE_DEADBAND: Final = 1e6  # in the channel's unit; anything larger is a typo, not a choice


@dataclass(frozen=True, slots=True)
class ChannelRecording:
    """One channel's override of its class deadband and of the line's heartbeat; None: the default."""

    deadband: float | None = None  # in the channel's own unit
    deadband_relative: float | None = None  # a fraction of the last stored value
    heartbeat_s: float | None = None


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    deadband: bool = True  # false: every reading is stored, as polled
    heartbeat_s: float = 600.0  # a channel is stored at least this often, however still
    pressure_relative: float = 0.02  # Pa, hPa, mbar
    temperature_k: float = 0.2  # degC, K: temperatures, frost and dew points
    concentration_ppmv: float = 0.2  # O2, H2O
    other_relative: float = 0.01  # W, A, V, Hz, rpm, sccm, nm, % ...
    retention_days: float = 400.0  # raw samples older than this leave; 0 keeps them for ever
    # per-channel overrides by (device, channel), as the driver names the channel
    channels: Mapping[tuple[str, str], ChannelRecording] = field(default_factory=lambda: MappingProxyType({}))


def read_recording(t: TableReader, devices: Collection[str]) -> RecordingConfig:
    """`[recording]`; `devices` are the configured device names a channel override may name."""
    d = RecordingConfig()
    heartbeat_s = t.number("heartbeat_s", d.heartbeat_s, min=1.0, max=86_400.0)
    config = RecordingConfig(
        deadband=t.flag("deadband", d.deadband),
        heartbeat_s=heartbeat_s,
        pressure_relative=t.number("pressure_relative", d.pressure_relative, min=0.0, max=0.5),
        temperature_k=t.number("temperature_k", d.temperature_k, min=0.0, max=5.0),
        concentration_ppmv=t.number("concentration_ppmv", d.concentration_ppmv, min=0.0, max=10.0),
        other_relative=t.number("other_relative", d.other_relative, min=0.0, max=0.5),
        retention_days=t.number("retention_days", d.retention_days, min=0.0, max=36_500.0),
        channels=_channels(t.table_reader("channels"), devices, heartbeat_s),
    )
    t.finish()
    return config


def _channels(
    t: TableReader, devices: Collection[str], heartbeat_s: float
) -> Mapping[tuple[str, str], ChannelRecording]:
    out: dict[tuple[str, str], ChannelRecording] = {}
    for key in list(t.table):
        device, dot, channel = key.partition(".")
        if not dot or not channel or device not in devices:
            known = ", ".join(sorted(devices))
            raise t.fail(key, t.table[key], f'a "DEVICE.CHANNEL" key naming a configured device ({known})')
        out[(device, channel)] = _channel(t.table_reader(key), heartbeat_s)
    t.finish()
    return MappingProxyType(out)


def _channel(t: TableReader, heartbeat_s: float) -> ChannelRecording:
    if t.has("deadband") and t.has("deadband_relative"):
        given = t.table["deadband_relative"]
        raise t.fail("deadband_relative", given, "give deadband or deadband_relative, not both")
    found = ChannelRecording(
        deadband=t.number("deadband", min=0.0, max=MAX_ABSOLUTE_DEADBAND) if t.has("deadband") else None,
        deadband_relative=(
            t.number("deadband_relative", min=0.0, max=0.5) if t.has("deadband_relative") else None
        ),
        heartbeat_s=t.number("heartbeat_s", min=1.0, max=heartbeat_s) if t.has("heartbeat_s") else None,
    )
    t.finish()
    if found == ChannelRecording():
        raise t.fail("deadband", MISSING, "give at least one of deadband, deadband_relative, heartbeat_s")
    return found


__all__ = ["MAX_ABSOLUTE_DEADBAND", "ChannelRecording", "RecordingConfig", "read_recording"]
