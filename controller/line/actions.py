"""Every actuator command the line accepts, as plain data: from the HMI, the CLI, MQTT or a sequence.

The gate judges these; the actuator layer turns allowed ones into driver calls. Keeping them as
frozen dataclasses makes a command loggable, replayable and easy to generate in property tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ValveName = Literal["rough", "vent", "gas_fill", "turbo_gate"]
VALVES: tuple[ValveName, ...] = ("rough", "vent", "gas_fill", "turbo_gate")


@dataclass(frozen=True, slots=True)
class SetValve:
    space: str
    valve: ValveName
    open: bool


@dataclass(frozen=True, slots=True)
class SetPort:
    """Open or close a door or gate valve (outer doors included)."""

    port: str
    open: bool


@dataclass(frozen=True, slots=True)
class SetPump:
    """The rough pump of an antechamber or the backing pump of a chamber."""

    space: str
    running: bool


@dataclass(frozen=True, slots=True)
class SetTurbo:
    space: str
    running: bool


@dataclass(frozen=True, slots=True)
class SetGasFlow:
    space: str
    flow_sccm: float


@dataclass(frozen=True, slots=True)
class SetHeater:
    space: str
    heater: str
    setpoint_c: float


@dataclass(frozen=True, slots=True)
class SetSource:
    space: str
    source: str
    enabled: bool
    power_w: float = 0.0
    # a source whose power is split over two setpoints (a laser's pulse energy x pulse rate): the rate
    # to split at; None keeps the source's usual one (controller.line.actuators.POWER_SPLITS)
    pulse_rate_hz: float | None = None


@dataclass(frozen=True, slots=True)
class SetShutter:
    space: str
    shutter: str  # a source name, or "substrate"
    open: bool


@dataclass(frozen=True, slots=True)
class SetFilm:
    """Tell a chamber's thickness monitor what the next layer is: the density, Z-ratio and tooling it
    converts crystal mass with (the monitor cannot know the material; told wrong, it reads wrong)."""

    space: str
    material: str
    density_g_cm3: float
    z_ratio: float
    tooling_pct: float = 100.0


@dataclass(frozen=True, slots=True)
class MoveItem:
    """The operator moved an item (with the gloves, through an open port, or into a container)."""

    item: str
    to: str


@dataclass(frozen=True, slots=True)
class SetContainer:
    container: str
    sealed: bool


Action = (
    SetValve
    | SetPort
    | SetPump
    | SetTurbo
    | SetGasFlow
    | SetHeater
    | SetSource
    | SetShutter
    | SetFilm
    | MoveItem
    | SetContainer
)


def opens_or_starts(action: Action) -> bool:
    """Closing, stopping and switching off are the safe direction; the gate still logs them."""
    match action:
        case SetValve(open=o) | SetPort(open=o) | SetShutter(open=o):
            return o
        case SetPump(running=r) | SetTurbo(running=r):
            return r
        case SetSource(enabled=e):
            return e
        case SetGasFlow(flow_sccm=f):
            return f > 0
        case SetContainer(sealed=s):
            return not s
        case _:
            return True


@dataclass(frozen=True, slots=True)
class Command:
    """An action with who asked for it, from where, and why (the record the historian keeps)."""

    action: Action
    user: str
    origin: Literal["hmi", "cli", "mqtt", "sequence", "interlock", "test"]
    reason: str = ""
    meta: dict[str, str] = field(default_factory=dict)
