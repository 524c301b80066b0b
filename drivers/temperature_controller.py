"""Eurotherm 3216-style temperature controller on Modbus RTU (devices.md §5).

Reference: Eurotherm "2000 Series Communications" HA026230 issue 3 (the Modbus handbook the 3200 series
shares: functions 01/02 read bits, 03/04 read words, 05 write a bit, 06 write a word, 07 fast status,
08 loopback, 16 write words; exceptions 02 and 03 only; no reply at all to an unsupported function)
and the 3200 Series User Manual HA028651 issue 7 §15.5 for the 3216's parameter addresses (1 PV.IN,
2 TG.SP, 3 MAN.OP, 4 WRK.OP, 5 WKG.SP, 26 Rm.SP, 35 SP.RAT, 75 StAt).

Values are read and written in the IEEE float region: address = 0x8000 + 2 x (parameter address),
float32 MSW first, read with FC03 and written with FC16 only (the device refuses FC06 there, so
`MappedDevice` never sends it for a two-register field). Status and mode parameters are read in the
16-bit integer region, where they are plain integers; the integer-region copies of PV and setpoints
are mapped too (rounded to integers, or scaled by the display decimal places in "full resolution"
mode, which both ends must agree on: `eurotherm_map(decimal_places=...)`).

Write the target setpoint 300.0 as a float (golden frame, devices.md §5)::

    host    01 10 80 04 00 02 04 43 96 00 00 66 32    unit 1, FC16, 0x8004 (= 0x8000 + 2 x 2), 2 regs, 4 bytes
    device  01 10 80 04 00 02 29 C9                   echo of address and count

Summary status word (address 75, HA028651 §15.5 "StAt"): bit 0-3 alarm 1-4 active, 4 manual, 5 sensor
break, 6 loop break, 7 CT low load current, 8 CT high leakage current, 9 program end, 10 PV over-range,
11 CT overcurrent, 12 new alarm, 13 timer/ramp running, 14 remote SP fail, 15 auto-tune active. A
sensor break or PV out of range makes the PV reading ERROR. Setpoint-rate units (531): see
`drivers.setpoint_rate_units`; a ramp is refused until the site has stated them.
"""

from __future__ import annotations

import enum

from drivers.errors import ConfigError
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
from drivers.setpoint_rate_units import RATE_UNIT_ORDERS, rate_unit

DEFAULT_UNIT = 1
FLOAT_REGION = 0x8000
BIT_PARAMETERS = range(0, 16)
"""The bit (coil) addresses read as one block; 2, 5 and 10 carry meaning (HA026230 §5.6)."""


class ControllerStatus(enum.IntFlag):
    """The 3216's instrument status word "StAt" (HA028651 §15.5, address 75); 1 = active."""

    ALARM_1 = 1 << 0
    ALARM_2 = 1 << 1
    ALARM_3 = 1 << 2
    ALARM_4 = 1 << 3
    MANUAL = 1 << 4
    SENSOR_BREAK = 1 << 5
    LOOP_BREAK = 1 << 6
    LOAD_CURRENT_LOW = 1 << 7
    LEAKAGE_CURRENT_HIGH = 1 << 8
    PROGRAM_END = 1 << 9
    PV_OUT_OF_RANGE = 1 << 10
    OVERCURRENT = 1 << 11
    NEW_ALARM = 1 << 12
    RAMP_RUNNING = 1 << 13
    REMOTE_SP_FAIL = 1 << 14
    AUTOTUNE_ACTIVE = 1 << 15


ANY_ALARM = (
    ControllerStatus.ALARM_1 | ControllerStatus.ALARM_2 | ControllerStatus.ALARM_3 | ControllerStatus.ALARM_4
)
PV_INVALID = ControllerStatus.SENSOR_BREAK | ControllerStatus.PV_OUT_OF_RANGE


# name, parameter address, SI unit, access, description
_PARAMETERS: tuple[tuple[str, int, str, Access, str], ...] = (
    ("pv", 1, "degC", Access.R, "process variable PV.IN"),
    ("target_sp", 2, "degC", Access.RW, "target setpoint TG.SP"),
    ("manual_output", 3, "%", Access.RW, "manual output value MAN.OP (used in manual mode)"),
    ("working_output", 4, "%", Access.R, "working output WRK.OP"),
    ("working_sp", 5, "degC", Access.R, "working setpoint WRK.SP (ramps towards the target)"),
    ("remote_sp", 26, "degC", Access.RW, "comms remote setpoint"),
    (
        "sp_rate_limit",
        35,
        "",
        Access.RW,
        "setpoint rate limit SP.RAT, degC per rate unit (address 531); 0 = off",
    ),
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
            description="instrument status StAt: bit 0-3 alarm 1-4, 4 manual, 5 sensor break, 6 loop break, "
            "7 CT low load current, 8 CT high leakage, 9 program end, 10 PV over-range (> 5 % of span), "
            "11 CT overcurrent, 12 new alarm, 13 timer/ramp running, 14 remote SP fail, 15 auto-tune",
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
            description="setpoint-rate units: enum NOT SETTLED for the 3216 (see the note above); "
            "HA026230 (2000 series): 0 per s, 1 per min, 2 per h; a public 3200 driver: 0 per min, 1 per h, "
            "2 per s",
        ),
        Field("manual_bit", Table.COIL, 2, DataType.BOOL, access=Access.RW, description="0 auto, 1 manual"),
        Field("alarm_1_bit", Table.COIL, 5, DataType.BOOL, description="1 = alarm 1 active"),
        Field("sensor_break_bit", Table.COIL, 10, DataType.BOOL, description="1 = sensor break"),
    ]
    return RegisterMap(
        "eurotherm_3216",
        fields,
        word_order="big",
        title="Temperature controller (Eurotherm 3216-style, Modbus RTU)",
        notes=(
            "devices.md §5; Eurotherm HA026230 (2000 Series Communications) §3 and HA028651 (3200 Series "
            "User Manual) §15.5. Functions 01/02 read bits (the same bits), 03/04 read words (the same "
            "words), 05 write a bit (FF00 or 0100 = 1), 06 write a word, 07 fast status (the low byte of "
            "the status word), 08 loopback (diagnostic code 0 only), 16 write words; no reply at all to "
            "any other function; exceptions 02 and 03 only. FC03 reads, FC16 writes in the IEEE region "
            "(0x8000 + 2 x parameter address, float32 MSW first); FC06 into that region is refused with "
            "exception 03. Units 1 and 2 on the shared 19200 8N2 bus. Integer region shown with "
            f"{decimal_places} decimal place(s).\n\n"
            "**Setpoint-rate units (531) are not settled for the 3216.** The 2000-series handbook "
            "HA026230 §5.7 lists rmP.V at 531 as 0 /s, 1 /min, 2 /h; a public 3200-series driver reads "
            "0 /min, 1 /h, 2 /s; the page of the 3216's own address list (HA028651 §15.5) that holds "
            "531 could not be reached. A wrong guess is a 60x ramp-rate error, so the driver reads 531 "
            "back and refuses to ramp (`RateUnitsUnknown`) until `params.rate_units_order` "
            "(`s-min-h` or `min-h-s`) states what the site has checked on its instrument."
        ),
        blocks={Table.COIL: [BIT_PARAMETERS]},
    )


POLL_CHANNELS = ("pv", "target_sp", "working_output", "working_sp", "status")


class TemperatureController:
    """One heater loop: PV and setpoints in degC, output in %, alarms and sensor break as flags.

    `rate_units_order` is the site's reading of the setpoint-rate units enum (`s-min-h` or `min-h-s`,
    `drivers.setpoint_rate_units`); None refuses every ramp but "no limit".
    """

    def __init__(
        self,
        client: RegisterClient,
        *,
        name: str,
        unit: int = DEFAULT_UNIT,
        rate_units_order: str | None = None,
    ) -> None:
        if rate_units_order is not None and rate_units_order not in RATE_UNIT_ORDERS:
            raise ConfigError(
                f"{name}: rate_units_order {rate_units_order!r}: one of {', '.join(RATE_UNIT_ORDERS)}"
            )
        self.name = name
        self.regmap = eurotherm_map()
        self.device = MappedDevice(client, self.regmap, unit)
        self.rate_units_order = rate_units_order

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
        """Limit how fast the working setpoint follows the target (0 = no limit).

        The units are read back from the controller every time (a panel change must not turn 60 degC/min
        into 60 degC/s); `RateUnitsUnknown` refuses the ramp while their meaning is not known.
        """
        if rate_c_per_min == 0:
            await self.device.write("sp_rate_limit", 0.0)
            return
        code = int(await self.device.read_value("sp_rate_units"))
        unit = rate_unit(self.name, code, self.rate_units_order)
        await self.device.write("sp_rate_limit", rate_c_per_min * unit.seconds / 60.0)

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
            # the whole word, so that an alarm can name a sensor or loop break (`ControllerStatus`)
            "status": Reading.now(float(int(status)), ""),
        }

    @staticmethod
    def _pv_reading(pv_c: float, status: ControllerStatus) -> Reading:
        return Reading.now(pv_c, "degC", Quality.ERROR if status & PV_INVALID else Quality.OK)
