"""Eurotherm 3216-style temperature controller on Modbus RTU (devices.md §5).

Values are read and written in the IEEE float region: address = 0x8000 + 2 x (parameter address),
float32 MSW first, read with FC03 and written with FC16 only (the device refuses FC06 there, so
`MappedDevice` never sends it for a two-register field). Status and mode parameters are read in the
16-bit integer region, where they are plain integers; the integer-region copies of PV and setpoints
are mapped too (rounded to integers, or scaled by the display decimal places in "full resolution"
mode, which both ends must agree on: `eurotherm_map(decimal_places=...)`).

Write the target setpoint 300.0 as a float (golden frame, devices.md §5)::

    host    01 10 80 04 00 02 04 43 96 00 00 66 32    unit 1, FC16, 0x8004 (= 0x8000 + 2 x 2), 2 regs, 4 bytes
    device  01 10 80 04 00 02 29 C9                   echo of address and count

Summary status word (address 75): bit 0-3 alarm 1-4 active, 4 manual, 5 sensor break, 6 loop break,
7 heater fail, 8 tune active, 9 ramp/program complete, 10 PV out of range, 12 new alarm, 13 ramp
running, 14 remote SP fail. A sensor break or PV out of range makes the PV reading ERROR.
Addresses 3 (manual output), 273 (auto/manual) and 531 (rate units) on a 3216 are [U] (2400 layout).
"""

from __future__ import annotations

import enum

from drivers.reading import Quality, Reading
from drivers.register_map import (
    Access,
    DataType,
    Field,
    MappedDevice,
    RegisterClient,
    RegisterMap,
    Table,
)

DEFAULT_UNIT = 1
FLOAT_REGION = 0x8000


class ControllerStatus(enum.IntFlag):
    ALARM_1 = 1 << 0
    ALARM_2 = 1 << 1
    ALARM_3 = 1 << 2
    ALARM_4 = 1 << 3
    MANUAL = 1 << 4
    SENSOR_BREAK = 1 << 5
    LOOP_BREAK = 1 << 6
    HEATER_FAIL = 1 << 7
    TUNE_ACTIVE = 1 << 8
    RAMP_COMPLETE = 1 << 9
    PV_OUT_OF_RANGE = 1 << 10
    NEW_ALARM = 1 << 12
    RAMP_RUNNING = 1 << 13
    REMOTE_SP_FAIL = 1 << 14


ANY_ALARM = (
    ControllerStatus.ALARM_1 | ControllerStatus.ALARM_2 | ControllerStatus.ALARM_3 | ControllerStatus.ALARM_4
)
PV_INVALID = ControllerStatus.SENSOR_BREAK | ControllerStatus.PV_OUT_OF_RANGE


class RateUnits(enum.IntEnum):
    PER_SECOND = 0
    PER_MINUTE = 1
    PER_HOUR = 2


_MINUTES_PER = {RateUnits.PER_SECOND: 1 / 60, RateUnits.PER_MINUTE: 1.0, RateUnits.PER_HOUR: 60.0}

# name, parameter address, SI unit, access, description
_PARAMETERS: tuple[tuple[str, int, str, Access, str], ...] = (
    ("pv", 1, "degC", Access.R, "process variable PV.IN"),
    ("target_sp", 2, "degC", Access.RW, "target setpoint TG.SP"),
    ("manual_output", 3, "%", Access.RW, "manual output level (used in manual mode) [U]"),
    ("working_output", 4, "%", Access.R, "working output WRK.OP"),
    ("working_sp", 5, "degC", Access.R, "working setpoint WRK.SP (ramps towards the target)"),
    ("remote_sp", 26, "degC", Access.RW, "comms remote setpoint"),
    ("sp_rate_limit", 35, "", Access.RW, "setpoint rate limit, degC per rate unit (address 531); 0 = off"),
)


def float_address(parameter: int) -> int:
    return FLOAT_REGION + 2 * parameter


def eurotherm_map(decimal_places: int = 0) -> RegisterMap:
    """The 3216 map; `decimal_places` is the integer region's resolution (0 = integer mode)."""
    int_scale = 10.0**-decimal_places
    fields: list[Field] = []
    for name, parameter, unit, access, text in _PARAMETERS:
        fields.append(
            Field(name, Table.HOLDING, float_address(parameter), DataType.FLOAT32, unit, 1.0, access, text)
        )
        fields.append(
            Field(
                f"{name}_i16",
                Table.HOLDING,
                parameter,
                DataType.INT16,
                unit,
                int_scale,
                access,
                f"{text}; integer region",
            )
        )
    fields += [
        Field(
            "status",
            Table.HOLDING,
            75,
            DataType.UINT16,
            description="summary status word: bit 0-3 alarm 1-4, 4 manual, 5 sensor break, 6 loop break, "
            "7 heater fail, 9 ramp complete, 10 PV out of range, 12 new alarm, 13 ramp running",
        ),
        Field(
            "auto_manual",
            Table.HOLDING,
            273,
            DataType.UINT16,
            access=Access.RW,
            description="0 = auto, 1 = manual [U on a 3216]",
        ),
        Field(
            "acknowledge_alarms",
            Table.HOLDING,
            274,
            DataType.UINT16,
            access=Access.W,
            description="write 1 to acknowledge all alarms",
        ),
        Field(
            "sp_rate_units",
            Table.HOLDING,
            531,
            DataType.UINT16,
            access=Access.RW,
            description="rate-limit unit: 0 per s, 1 per min, 2 per h [U on a 3216]",
        ),
    ]
    return RegisterMap(
        "eurotherm_3216",
        fields,
        word_order="big",
        title="Temperature controller (Eurotherm 3216-style, Modbus RTU)",
        notes=(
            "devices.md §5. FC03 reads, FC16 writes in the IEEE region (0x8000 + 2 x parameter address, "
            "float32 MSW first); FC06 into that region is refused with exception 03. Units 1 and 2 on "
            f"the shared 19200 8N2 bus. Integer region shown with {decimal_places} decimal place(s)."
        ),
    )


POLL_CHANNELS = ("pv", "target_sp", "working_output", "working_sp", "status")


class TemperatureController:
    """One heater loop: PV and setpoints in degC, output in %, alarms and sensor break as flags."""

    def __init__(self, client: RegisterClient, *, name: str, unit: int = DEFAULT_UNIT) -> None:
        self.name = name
        self.regmap = eurotherm_map()
        self.device = MappedDevice(client, self.regmap, unit)
        self._rate_units: RateUnits | None = None

    async def read_pv(self) -> Reading:
        values = await self.device.read(("pv", "status"))
        return self._pv_reading(float(values["pv"]), ControllerStatus(int(values["status"])))

    async def read_status(self) -> ControllerStatus:
        return ControllerStatus(int(await self.device.read_value("status")))

    async def read_setpoint_c(self) -> float:
        return float(await self.device.read_value("target_sp"))

    async def read_working_setpoint_c(self) -> float:
        return float(await self.device.read_value("working_sp"))

    async def read_output_pct(self) -> Reading:
        return Reading.now(float(await self.device.read_value("working_output")), "%")

    async def set_setpoint_c(self, setpoint_c: float) -> None:
        await self.device.write("target_sp", setpoint_c)

    async def set_rate_limit_c_per_min(self, rate_c_per_min: float) -> None:
        """Limit how fast the working setpoint follows the target (0 = no limit)."""
        if self._rate_units is None:
            self._rate_units = RateUnits(int(await self.device.read_value("sp_rate_units")))
        await self.device.write("sp_rate_limit", rate_c_per_min * _MINUTES_PER[self._rate_units])

    async def set_manual(self, manual: bool) -> None:
        await self.device.write("auto_manual", 1 if manual else 0)

    async def set_manual_output_pct(self, output_pct: float) -> None:
        await self.device.write("manual_output", output_pct)

    async def acknowledge_alarms(self) -> None:
        await self.device.write("acknowledge_alarms", 1)

    async def poll(self) -> dict[str, Reading]:
        values = await self.device.read(POLL_CHANNELS)
        status = ControllerStatus(int(values["status"]))
        return {
            "temperature": self._pv_reading(float(values["pv"]), status),
            "setpoint": Reading.now(float(values["target_sp"]), "degC"),
            "working_setpoint": Reading.now(float(values["working_sp"]), "degC"),
            "output": Reading.now(float(values["working_output"]), "%"),
            "alarm": Reading.now(1.0 if status & ANY_ALARM else 0.0, "bool"),
            "manual": Reading.now(1.0 if status & ControllerStatus.MANUAL else 0.0, "bool"),
        }

    @staticmethod
    def _pv_reading(pv_c: float, status: ControllerStatus) -> Reading:
        return Reading.now(pv_c, "degC", Quality.ERROR if status & PV_INVALID else Quality.OK)
