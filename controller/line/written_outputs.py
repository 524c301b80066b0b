"""Outputs the gate has just written, as readings: what the line is known to be commanded to before
the next poll reads the output back.

Why a module of its own: the gate overlays these on the polled snapshot, so the next command is
judged against the valve it just closed rather than a read-back one poll old; a replay of the
records (`controller.flight_recorder.rejudge`) must overlay the very same readings at each recorded
command, or today's rules would be judged against a line the live gate never saw.
"""

from __future__ import annotations

from controller.line.actions import Action, SetPort, SetPump, SetShutter, SetSource, SetValve
from controller.line.actuators import io_point
from controller.line.model import LineModel
from drivers.reading import Quality, Reading

Key = tuple[str, str]  # (device, channel), as in a snapshot


def written_outputs(
    model: LineModel, io_device: str | None, action: Action, ts: float, mono: float
) -> dict[Key, Reading]:
    """The readings `action`, once executed, makes true at (`ts`, `mono`); empty for actions that
    write no output the snapshot carries (a heater setpoint, a move)."""
    match action:
        case SetValve() | SetPort() | SetPump() | SetShutter():
            if io_device is None:
                return {}
            on = action.running if isinstance(action, SetPump) else action.open
            point = io_point(model.config, action)
            return {(io_device, point): Reading(float(on), "bool", Quality.OK, ts, mono)}
        case SetSource(space=space, source=source, enabled=enabled):
            rack = model.readings.sources.get(space)
            if rack is None:
                return {}
            return {(rack, f"{source}.output_on"): Reading(float(enabled), "bool", Quality.OK, ts, mono)}
        case _:
            return {}
