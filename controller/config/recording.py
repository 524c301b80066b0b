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
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.reader import TableReader


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    deadband: bool = True  # false: every reading is stored, as polled
    heartbeat_s: float = 600.0  # a channel is stored at least this often, however still
    pressure_relative: float = 0.02  # Pa, hPa, mbar
    temperature_k: float = 0.2  # degC, K: temperatures, frost and dew points
    concentration_ppmv: float = 0.2  # O2, H2O
    other_relative: float = 0.01  # W, A, V, Hz, rpm, sccm, nm, % ...
    retention_days: float = 400.0  # raw samples older than this leave; 0 keeps them for ever


def read_recording(t: TableReader) -> RecordingConfig:
    d = RecordingConfig()
    config = RecordingConfig(
        deadband=t.flag("deadband", d.deadband),
        heartbeat_s=t.number("heartbeat_s", d.heartbeat_s, min=1.0, max=86_400.0),
        pressure_relative=t.number("pressure_relative", d.pressure_relative, min=0.0, max=0.5),
        temperature_k=t.number("temperature_k", d.temperature_k, min=0.0, max=5.0),
        concentration_ppmv=t.number("concentration_ppmv", d.concentration_ppmv, min=0.0, max=10.0),
        other_relative=t.number("other_relative", d.other_relative, min=0.0, max=0.5),
        retention_days=t.number("retention_days", d.retention_days, min=0.0, max=36_500.0),
    )
    t.finish()
    return config


__all__ = ["RecordingConfig", "read_recording"]
