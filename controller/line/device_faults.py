"""What each device says is wrong with itself, decoded into alarm conditions with the manual's words.

The poller already records every status channel the drivers read (turbo error and warning numbers,
gauge measurement status, MFC status tokens, QCM frequency and crystal life, the heater controller's
status word, the glovebox fault code and purifier bits, the dew-point transmitter's status block). A
code that only sits in the samples is a root cause nobody sees: a turbo can report Err107 for minutes
before the chamber pressure trips the interlock. Here each family's channels become `DeviceCondition`s;
the supervisor raises one alarm per condition (`device.<device>.<key>`) and clears it when the device
stops reporting it.

Why the severities are what they are: a fault that stops the device doing its job (turbo error, gauge
sensor error, sensor or loop break, glovebox fault, transmitter error) is HIGH; a warning or a
degraded reading the process can live with for a while is MEDIUM; a reading outside its measuring
range is LOW and not latching (a Pirani channel sits under its range at base vacuum every night). LOW
alarms are advisories: they never open or join a cascade (`controller.line.alarms`).

Pure: readings in, conditions out. Stale readings are the caller's business (a silent device has its
"not answering" alarm; what it last reported stays as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from controller.line.alarm_states import Severity
from drivers.dewpoint_status import (
    DeviceStatus,
    MeasurementStatus,
    device_status_texts,
    measurement_status_texts,
)
from drivers.glovebox_controller import GloveboxFault
from drivers.mass_flow_controller import OTHER_STATUS, STATUS_BITS
from drivers.pfeiffer_error_codes import error_text, warning_text
from drivers.reading import Quality, Reading
from drivers.temperature_controller import ControllerStatus

CRYSTAL_END_OF_LIFE_PCT: Final = 5.0


@dataclass(frozen=True, slots=True)
class DeviceCondition:
    """One fault a device reports: `key` is stable for the condition, `text` the decoded words."""

    key: str
    severity: Severity
    text: str
    guidance: str
    latching: bool = True

    def alarm_id(self, device: str) -> str:
        return f"device.{device}.{self.key}"


Decoder = Callable[[Mapping[str, Reading]], list[DeviceCondition]]


def _number(readings: Mapping[str, Reading], channel: str) -> int | None:
    reading = readings.get(channel)
    if reading is None or reading.value != reading.value:  # NaN: nothing was decoded
        return None
    return int(reading.value)


def turbo(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    out = []
    error = _number(readings, "error_code")
    if error:
        out.append(
            DeviceCondition(
                f"Err{error:03d}",
                Severity.HIGH,
                error_text(error),
                "The drive has stopped the pump: remove the cause, then acknowledge the error on the drive "
                "(some errors need the pump serviced). The chamber is no longer pumped.",
            )
        )
    warning = _number(readings, "warning_code")
    if warning:
        out.append(
            DeviceCondition(
                f"Wrn{warning:03d}",
                Severity.MEDIUM,
                warning_text(warning),
                "The pump still runs; remove the cause before it becomes an error.",
            )
        )
    return out


_GAUGE: Final = {
    Quality.ERROR: (
        "sensor_error",
        Severity.HIGH,
        "sensor error or identification error",
        "The channel's pressure is unknown: check the gauge head and its cable.",
    ),
    Quality.SENSOR_OFF: (
        "sensor_off",
        Severity.MEDIUM,
        "sensor off or no sensor",
        "The channel's pressure is unknown: switch the sensor on or connect the head.",
    ),
    Quality.UNDER_RANGE: (
        "under_range",
        Severity.LOW,
        "under range",
        "The pressure is below what this head measures; the value is a limit, not a reading.",
    ),
    Quality.OVER_RANGE: (
        "over_range",
        Severity.LOW,
        "over range",
        "The pressure is above what this head measures; the value is a limit, not a reading.",
    ),
}


def gauge_controller(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """TPG 36x: a channel's status (BG 5510 BEN, "PRx": 1 under range ... 6 identification error)."""
    out = []
    for channel, reading in sorted(readings.items()):
        found = _GAUGE.get(reading.quality)
        if not channel.startswith("pressure") or found is None:
            continue
        key, severity, words, guidance = found
        latching = severity is not Severity.LOW
        out.append(DeviceCondition(f"{channel}.{key}", severity, f"{channel}: {words}", guidance, latching))
    return out


_MFC_FLAGS: Final = {
    "MOV": ("mass flow over range", Severity.MEDIUM),
    "VOV": ("volumetric flow over range", Severity.MEDIUM),
    "POV": ("pressure over range", Severity.MEDIUM),
    "TOV": ("temperature over range", Severity.MEDIUM),
    "HLD": ("valve held: flow not controlled", Severity.MEDIUM),
    "EXH": ("exhaust: valve fully open", Severity.MEDIUM),
}


def mass_flow_controller(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """Alicat status tokens (LCK, a locked front panel, is a setting, not a fault)."""
    bits = _number(readings, "status")
    if not bits:
        return []
    out = [
        DeviceCondition(
            token.lower(), severity, f"{token} {words}", "Check the gas supply and the setpoint; see the MFC."
        )
        for token, (words, severity) in _MFC_FLAGS.items()
        if bits & STATUS_BITS[token]
    ]
    if bits & OTHER_STATUS:
        out.append(
            DeviceCondition(
                "unknown_status", Severity.LOW, "a status token this version does not know", "See the MFC."
            )
        )
    return out


def thickness_monitor(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """SQM-160: a crystal that stopped oscillating (frequency below the minimum), and its life left."""
    out = []
    frequency = readings.get("frequency")
    if frequency is not None and frequency.quality is Quality.ERROR:
        out.append(
            DeviceCondition(
                "crystal_fail",
                Severity.HIGH,
                "crystal fail: the sensor crystal does not oscillate",
                "Rate and thickness are unknown: replace the crystal or check the sensor cable.",
            )
        )
    life = readings.get("crystal_life")
    if life is not None and life.ok and life.value <= CRYSTAL_END_OF_LIFE_PCT:
        out.append(
            DeviceCondition(
                "crystal_life",
                Severity.MEDIUM,
                f"crystal at the end of its life (at most {CRYSTAL_END_OF_LIFE_PCT:g} % left)",
                "Replace the crystal before the next deposition.",
            )
        )
    return out


_HEATER_FLAGS: Final = {
    ControllerStatus.SENSOR_BREAK: ("sensor_break", Severity.HIGH, "sensor break"),
    ControllerStatus.LOOP_BREAK: ("loop_break", Severity.HIGH, "loop break: the output does not move the PV"),
    ControllerStatus.PV_OUT_OF_RANGE: ("pv_over_range", Severity.MEDIUM, "PV over range"),
    ControllerStatus.LOAD_CURRENT_LOW: ("load_current_low", Severity.MEDIUM, "CT: low load current"),
    ControllerStatus.LEAKAGE_CURRENT_HIGH: ("leakage_current", Severity.MEDIUM, "CT: high leakage current"),
    ControllerStatus.OVERCURRENT: ("overcurrent", Severity.HIGH, "CT: overcurrent"),
    ControllerStatus.REMOTE_SP_FAIL: ("remote_sp_fail", Severity.MEDIUM, "remote setpoint failed"),
    ControllerStatus.ALARM_1: ("alarm_1", Severity.LOW, "instrument alarm 1 active"),
    ControllerStatus.ALARM_2: ("alarm_2", Severity.LOW, "instrument alarm 2 active"),
    ControllerStatus.ALARM_3: ("alarm_3", Severity.LOW, "instrument alarm 3 active"),
    ControllerStatus.ALARM_4: ("alarm_4", Severity.LOW, "instrument alarm 4 active"),
}


def temperature_controller(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """Eurotherm 3216 status word StAt (HA028651 §15.5); manual, ramp, program end and auto-tune are
    states an operator chose, not faults."""
    word = _number(readings, "status")
    if not word:
        return []
    return [
        DeviceCondition(
            key, severity, words, "The heater loop cannot be trusted: check thermocouple, heater and wiring."
        )
        for flag, (key, severity, words) in _HEATER_FLAGS.items()
        if word & flag
    ]


_GLOVEBOX_FAULTS: Final = {
    GloveboxFault.O2_SENSOR: "O2 sensor fault",
    GloveboxFault.H2O_SENSOR: "H2O sensor fault",
    GloveboxFault.BLOWER: "blower fault",
    GloveboxFault.PURIFIER_OVER_TEMPERATURE: "purifier over temperature",
    GloveboxFault.GAS_SUPPLY_LOW: "gas supply low",
    GloveboxFault.PRESSURE_CONTROL: "pressure control fault",
}
_GLOVEBOX_ALARMS: Final = {"glove_breach": ("glove breach or sudden leak", Severity.HIGH)}
"""The panel's O2, H2O and box-pressure bits are left out: the line classifies the box atmosphere from
the values themselves, and the bits latch in the panel until someone acknowledges them there (a box
that started up wet would hold one condition active all day, and every later alarm would "follow" it)."""


def glovebox_controller(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """The controller's fault code, its own alarm bits, and whether the purifier is cleaning the box."""
    out = []
    code = _number(readings, "fault")
    if code:
        words = (
            _GLOVEBOX_FAULTS.get(GloveboxFault(code)) if code in GloveboxFault._value2member_map_ else None
        )
        key = GloveboxFault(code).name.lower() if words is not None else f"fault_{code}"
        out.append(
            DeviceCondition(
                key,
                Severity.HIGH,
                words or f"fault code {code}",
                "Check the glovebox panel: its inert gas supply, purifier and blower.",
            )
        )
    for channel, (words, severity) in _GLOVEBOX_ALARMS.items():
        if _number(readings, channel):
            out.append(
                DeviceCondition(channel, severity, words, "See the glovebox panel; acknowledge there.")
            )
    regenerating = _number(readings, "regeneration_active")
    circulating = _number(readings, "circulation_running")
    if regenerating:
        out.append(
            DeviceCondition(
                "purifier_regenerating",
                Severity.LOW,
                "purifier regenerating: the box is not purified meanwhile",
                "Keep the box closed until the regeneration ends.",
                latching=False,
            )
        )
    elif circulating == 0:
        out.append(
            DeviceCondition(
                "purifier_stopped",
                Severity.MEDIUM,
                "purifier circulation stopped: the box is not purified",
                "Switch the circulation on, or find why the panel stopped it.",
            )
        )
    return out


_TRANSMITTER_DEVICE: Final = {
    DeviceStatus.CRITICAL: Severity.HIGH,
    DeviceStatus.ERROR: Severity.HIGH,
    DeviceStatus.WARNING: Severity.LOW,
    DeviceStatus.CALIBRATION_MODE: Severity.MEDIUM,
}
_TRANSMITTER_TDF: Final = {
    MeasurementStatus.SENSOR_FAILURE: Severity.HIGH,
    MeasurementStatus.NOT_RELIABLE: Severity.HIGH,
    MeasurementStatus.NOT_AVAILABLE: Severity.MEDIUM,
    MeasurementStatus.NOT_READY: Severity.MEDIUM,
    MeasurementStatus.LOCKED: Severity.MEDIUM,
    MeasurementStatus.UNDER_RANGE: Severity.LOW,
    MeasurementStatus.OVER_RANGE: Severity.LOW,
}
_TRANSMITTER_GUIDANCE: Final = "The frost point is not trusted while this lasts: see the transmitter."


def dewpoint_transmitter(readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    """The Vaisala status block (`drivers.dewpoint_status`): device flags, error code, Td/f status."""
    out = []
    device = _number(readings, "device_status") or 0
    for device_flag, words in device_status_texts(device).items():
        severity = _TRANSMITTER_DEVICE.get(device_flag)
        if severity is not None and device_flag.name is not None:
            out.append(
                DeviceCondition(device_flag.name.lower(), severity, f"device: {words}", _TRANSMITTER_GUIDANCE)
            )
    code = _number(readings, "error_code")
    if code:
        out.append(
            DeviceCondition(
                f"error_0x{code:08X}",
                Severity.HIGH,
                f"errors active (error code 0x{code:08X})",
                _TRANSMITTER_GUIDANCE,
            )
        )
    tdf = _number(readings, "dew_frost_point_status") or 0
    for flag, words in measurement_status_texts(tdf).items():
        severity = _TRANSMITTER_TDF.get(flag)
        if severity is not None and flag.name is not None:
            out.append(
                DeviceCondition(
                    f"tdf_{flag.name.lower()}",
                    severity,
                    f"Td/f: {words}",
                    _TRANSMITTER_GUIDANCE,
                    latching=severity is not Severity.LOW,
                )
            )
    if _number(readings, "online") == 0:
        out.append(DeviceCondition("output_locked", Severity.MEDIUM, "output locked", _TRANSMITTER_GUIDANCE))
    return out


DECODERS: Final[Mapping[str, Decoder]] = MappingProxyType(
    {
        "pfeiffer_turbo": turbo,
        "tpg36x": gauge_controller,
        "mass_flow_controller": mass_flow_controller,
        "thickness_monitor": thickness_monitor,
        "temperature_controller": temperature_controller,
        "glovebox_controller": glovebox_controller,
        "dewpoint_transmitter": dewpoint_transmitter,
    }
)
"""Families whose drivers report a status; remote I/O and the deposition sources report none of
their own (their faults show as position disagreements and failed commands)."""


def device_conditions(family: str, readings: Mapping[str, Reading]) -> list[DeviceCondition]:
    decoder = DECODERS.get(family)
    return decoder(readings) if decoder is not None else []
