"""The Vaisala transmitter's status block (0x0200..0x020A) as the controller acts on it.

The block, per the Modbus reference of Vaisala's current probes (HMP4 User Guide, Appendix A, §A.4.3
Table 78; DMT340 User's Guide M210704EN, "Status registers": "Fault status 1 = No errors")::

    0x0200  error status     0001 = no errors, 0000 = one or more errors active   (inverted, yes)
    0x0201  online status    0001 = online data available, 0000 = output locked
    0x0203  error code       32 bits, the sum of the active error codes
    0x0205  security hash    32 bits, changes with any change of settings or adjustments
    0x0207  RH measurement status     \\
    0x0208  T measurement status       > 0 OK, 1 not available, 2 not reliable, 4 under range,
    0x0209  Td/f measurement status   /  8 over range, 0x20 value locked, 0x80 sensor failure, 0x100 not ready
    0x020A  device status    0 OK, 1 critical error (maintenance needed), 2 error (may recover by
                             itself), 4 warning, 8 notification, 0x10 calibration mode active

Reading the polarity the intuitive way round flags every healthy reading as an error and hides a real
fault, which is the defect this module exists to prevent. Which status register covers a channel:
RH and its relatives the RH one, the gas temperature the T one, everything derived from the dew/frost
point (Td, Td at 1 atm, H2O ppmv, mixing ratio, ...) the Td/f one.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.reading import Quality
from drivers.register_map import Value

STATUS_FIELDS = (
    "error_status",
    "online_status",
    "error_code",
    "security_hash",
    "rh_status",
    "temperature_status",
    "dew_frost_point_status",
    "device_status",
)
NO_ERRORS = 0x0001
ONLINE = 0x0001


class MeasurementStatus(enum.IntFlag):
    """One measured quantity's status register (0 = OK)."""

    NOT_AVAILABLE = 0x0001
    NOT_RELIABLE = 0x0002
    UNDER_RANGE = 0x0004
    OVER_RANGE = 0x0008
    LOCKED = 0x0020
    SENSOR_FAILURE = 0x0080
    NOT_READY = 0x0100


class DeviceStatus(enum.IntFlag):
    """The device status register (0 = OK)."""

    CRITICAL = 0x0001
    ERROR = 0x0002
    WARNING = 0x0004
    NOTIFICATION = 0x0008
    CALIBRATION_MODE = 0x0010


_MEASUREMENT_TEXT = {
    MeasurementStatus.NOT_AVAILABLE: "not available",
    MeasurementStatus.NOT_RELIABLE: "not reliable",
    MeasurementStatus.UNDER_RANGE: "under range",
    MeasurementStatus.OVER_RANGE: "over range",
    MeasurementStatus.LOCKED: "value locked",
    MeasurementStatus.SENSOR_FAILURE: "sensor failure",
    MeasurementStatus.NOT_READY: "not ready",
}
_DEVICE_TEXT = {
    DeviceStatus.CRITICAL: "critical error, maintenance needed",
    DeviceStatus.ERROR: "error, may recover by itself",
    DeviceStatus.WARNING: "warning",
    DeviceStatus.NOTIFICATION: "notification",
    DeviceStatus.CALIBRATION_MODE: "calibration mode active",
}
_QUANTITY_TEXT = {"rh": "RH", "temperature": "T", "dew_frost_point": "Td/f"}
_UNUSABLE = MeasurementStatus.SENSOR_FAILURE | MeasurementStatus.NOT_RELIABLE
_NOT_MEASURING = MeasurementStatus.NOT_AVAILABLE | MeasurementStatus.NOT_READY


def status_quantity(channel: str) -> str:
    """The measured quantity whose status register covers a map channel."""
    if channel.startswith("rh") or channel in ("water_activity", "relative_saturation"):
        return "rh"
    if channel.startswith("temperature") or channel == "saturation_pressure":
        return "temperature"
    return "dew_frost_point"


@dataclass(frozen=True, slots=True)
class TransmitterStatus:
    """The decoded status block; `faults()` names what is wrong so that an alarm can quote it."""

    errors_active: bool
    online: bool
    error_code: int
    device: DeviceStatus
    measurement: Mapping[str, MeasurementStatus]
    security_hash: int = 0

    @classmethod
    def from_values(cls, values: Mapping[str, Value]) -> TransmitterStatus:
        return cls(
            errors_active=int(values["error_status"]) != NO_ERRORS,
            online=int(values["online_status"]) == ONLINE,
            error_code=int(values["error_code"]),
            device=DeviceStatus(int(values["device_status"])),
            measurement={q: MeasurementStatus(int(values[f"{q}_status"])) for q in _QUANTITY_TEXT},
            security_hash=int(values["security_hash"]),
        )

    def quality(self, channel: str, value: float) -> Quality:
        """How far a channel's value can be trusted, from the device-wide and the quantity's status."""
        status = self.measurement.get(status_quantity(channel), MeasurementStatus(0))
        if (
            self.errors_active
            or status & _UNUSABLE
            or self.device & (DeviceStatus.CRITICAL | DeviceStatus.ERROR)
        ):
            return Quality.ERROR
        if status & _NOT_MEASURING or self.device & DeviceStatus.CALIBRATION_MODE:
            return Quality.SENSOR_OFF
        if math.isnan(value):
            return Quality.ERROR if self.online else Quality.SENSOR_OFF
        if status & MeasurementStatus.UNDER_RANGE:
            return Quality.UNDER_RANGE
        if status & MeasurementStatus.OVER_RANGE:
            return Quality.OVER_RANGE
        if not self.online or status & MeasurementStatus.LOCKED:
            return Quality.STALE  # the output is held: a value, but not today's
        return Quality.OK

    def faults(self) -> tuple[str, ...]:
        """Everything the block reports as not OK, in words ("Td/f: sensor failure", ...)."""
        out: list[str] = []
        if self.errors_active:
            out.append(f"errors active (error code 0x{self.error_code:08X})")
        if not self.online:
            out.append("output locked")
        out += [f"device: {text}" for flag, text in _DEVICE_TEXT.items() if self.device & flag]
        for quantity, status in self.measurement.items():
            label = _QUANTITY_TEXT[quantity]
            out += [f"{label}: {text}" for flag, text in _MEASUREMENT_TEXT.items() if status & flag]
        return tuple(out)


def device_status_texts(flags: int) -> dict[DeviceStatus, str]:
    """Each flag set in a device status register, with its words (an alarm per flag)."""
    return {flag: text for flag, text in _DEVICE_TEXT.items() if flags & flag}


def measurement_status_texts(flags: int) -> dict[MeasurementStatus, str]:
    """Each flag set in a measurement status register, with its words."""
    return {flag: text for flag, text in _MEASUREMENT_TEXT.items() if flags & flag}
