"""Glovebox / purifier controller on Modbus TCP (project-defined map, devices.md §8).

No vendor publishes a wire protocol for these boxes (MBraun, Inert and Vigor use PLC + HMI), so the
map is ours, following PLC conventions: float32 in two registers MSW first, a status word, a fault
code, alarm bits as discrete inputs, commands as coils.

Box pressure is a **gauge** pressure (box minus room; positive = overpressure, as glovebox panels
show it). On the wire it is mbar(g); the driver reports Pa(g) (1 mbar = 100 Pa) and the Reading's
unit stays "Pa" - the channel name `box_pressure` and this docstring carry the "gauge" part.

Alarms latch: a discrete input stays set until the condition is gone *and* the host wrote the
acknowledge coil. Purifier regeneration is started and aborted with coil 1; the controller refuses
(exception 04) starting it while circulation is on, and circulation while regenerating.
"""

from __future__ import annotations

import enum

from drivers.reading import Quality, Reading
from drivers.register_map import Access, DataType, Field, MappedDevice, RegisterClient, RegisterMap, Table

DEFAULT_UNIT = 1


class GloveboxStatus(enum.IntFlag):
    CIRCULATION_RUNNING = 1 << 0
    REGENERATION_ACTIVE = 1 << 1
    PRESSURE_CONTROL_ACTIVE = 1 << 2
    O2_SENSOR_FAULT = 1 << 3
    H2O_SENSOR_FAULT = 1 << 4
    ALARM_ACTIVE = 1 << 5


class RegenerationStep(enum.IntEnum):
    IDLE = 0
    HEATING = 1
    REGENERATING = 2
    EVACUATING = 3
    COOLING = 4


class GloveboxFault(enum.IntEnum):
    NONE = 0
    O2_SENSOR = 1
    H2O_SENSOR = 2
    BLOWER = 3
    PURIFIER_OVER_TEMPERATURE = 4
    GAS_SUPPLY_LOW = 5
    PRESSURE_CONTROL = 6


ALARMS = ("o2_high", "h2o_high", "pressure_out_of_window", "glove_breach")

GLOVEBOX_MAP = RegisterMap(
    "glovebox_controller",
    [
        Field("o2", Table.INPUT, 0, DataType.FLOAT32, "ppmv", description="O2 concentration"),
        Field("h2o", Table.INPUT, 2, DataType.FLOAT32, "ppmv", description="H2O concentration"),
        Field(
            "box_pressure",
            Table.INPUT,
            4,
            DataType.FLOAT32,
            "Pa",
            100.0,
            wire_unit="mbar",
            description="box pressure, gauge (box minus room, + = overpressure)",
        ),
        Field(
            "status",
            Table.INPUT,
            6,
            DataType.UINT16,
            description="bit 0 circulation running, 1 regeneration active, 2 pressure control active, "
            "3 O2 sensor fault, 4 H2O sensor fault, 5 alarm active",
        ),
        Field(
            "regeneration_step",
            Table.INPUT,
            7,
            DataType.UINT16,
            description="0 idle, 1 heating, 2 regenerating (forming gas), 3 evacuating, 4 cooling",
        ),
        Field(
            "regeneration_remaining",
            Table.INPUT,
            8,
            DataType.UINT32,
            "s",
            description="time left in the regeneration",
        ),
        Field(
            "fault_code",
            Table.INPUT,
            10,
            DataType.UINT16,
            description="0 none, 1 O2 sensor, 2 H2O sensor, 3 blower, 4 purifier over-temperature, "
            "5 gas supply low, 6 pressure control",
        ),
        Field(
            "o2_limit",
            Table.HOLDING,
            0,
            DataType.FLOAT32,
            "ppmv",
            access=Access.RW,
            description="O2 alarm limit",
        ),
        Field(
            "h2o_limit",
            Table.HOLDING,
            2,
            DataType.FLOAT32,
            "ppmv",
            access=Access.RW,
            description="H2O alarm limit",
        ),
        Field(
            "pressure_low",
            Table.HOLDING,
            4,
            DataType.FLOAT32,
            "Pa",
            100.0,
            Access.RW,
            "pressure window, lower limit (gauge)",
            wire_unit="mbar",
        ),
        Field(
            "pressure_high",
            Table.HOLDING,
            6,
            DataType.FLOAT32,
            "Pa",
            100.0,
            Access.RW,
            "pressure window, upper limit (gauge)",
            wire_unit="mbar",
        ),
        Field(
            "circulation",
            Table.COIL,
            0,
            DataType.BOOL,
            "bool",
            access=Access.RW,
            description="blower and purifier circulation on; refused (04) while regenerating",
        ),
        Field(
            "regeneration",
            Table.COIL,
            1,
            DataType.BOOL,
            "bool",
            access=Access.RW,
            description="1 starts purifier regeneration (refused (04) while circulating), 0 aborts",
        ),
        Field(
            "alarm_ack",
            Table.COIL,
            2,
            DataType.BOOL,
            "bool",
            access=Access.W,
            description="write 1 to acknowledge latched alarms",
        ),
        Field("o2_high", Table.DISCRETE, 0, DataType.BOOL, "bool", description="alarm: O2 above its limit"),
        Field("h2o_high", Table.DISCRETE, 1, DataType.BOOL, "bool", description="alarm: H2O above its limit"),
        Field(
            "pressure_out_of_window",
            Table.DISCRETE,
            2,
            DataType.BOOL,
            "bool",
            description="alarm: box pressure outside the window",
        ),
        Field(
            "glove_breach",
            Table.DISCRETE,
            3,
            DataType.BOOL,
            "bool",
            description="alarm: glove breach / sudden leak detected",
        ),
        Field(
            "regeneration_active",
            Table.DISCRETE,
            4,
            DataType.BOOL,
            "bool",
            description="regeneration running",
        ),
        Field(
            "circulation_running", Table.DISCRETE, 5, DataType.BOOL, "bool", description="circulation running"
        ),
    ],
    word_order="big",
    title="Glovebox controller (project-defined, Modbus TCP)",
    notes=(
        "Project-defined (no public vendor protocol, devices.md §8). Modbus TCP, unit 1, one per glovebox. "
        "Box pressure is gauge: mbar(g) on the wire, Pa(g) at the driver boundary. Alarms latch until "
        "the condition is gone and `alarm_ack` was written."
    ),
)

_POLL_FIELDS = (
    "o2",
    "h2o",
    "box_pressure",
    "status",
    "regeneration_step",
    "fault_code",
    *ALARMS,
    "regeneration_active",
    "circulation_running",
)


class GloveboxController:
    """Atmosphere (O2, H2O, box pressure), circulation, regeneration and alarms of one glovebox."""

    def __init__(self, client: RegisterClient, *, name: str, unit: int = DEFAULT_UNIT) -> None:
        self.name = name
        self.regmap = GLOVEBOX_MAP
        self.device = MappedDevice(client, GLOVEBOX_MAP, unit)

    async def read_status(self) -> GloveboxStatus:
        return GloveboxStatus(int(await self.device.read_value("status")))

    async def read_fault(self) -> GloveboxFault:
        code = int(await self.device.read_value("fault_code"))
        return GloveboxFault(code) if code in GloveboxFault._value2member_map_ else GloveboxFault.NONE

    async def read_regeneration(self) -> tuple[RegenerationStep, float]:
        """The regeneration step and the seconds left in it."""
        values = await self.device.read(("regeneration_step", "regeneration_remaining"))
        return RegenerationStep(int(values["regeneration_step"])), float(values["regeneration_remaining"])

    async def read_alarms(self) -> dict[str, bool]:
        return {n: bool(v) for n, v in (await self.device.read(ALARMS)).items()}

    async def set_circulation(self, on: bool) -> None:
        await self.device.write("circulation", on)

    async def start_regeneration(self) -> None:
        await self.device.write("regeneration", True)

    async def abort_regeneration(self) -> None:
        await self.device.write("regeneration", False)

    async def acknowledge_alarms(self) -> None:
        await self.device.write("alarm_ack", True)

    async def set_alarm_limits(self, *, o2_ppmv: float | None = None, h2o_ppmv: float | None = None) -> None:
        if o2_ppmv is not None:
            await self.device.write("o2_limit", o2_ppmv)
        if h2o_ppmv is not None:
            await self.device.write("h2o_limit", h2o_ppmv)

    async def set_pressure_window_pa(self, low_pa: float, high_pa: float) -> None:
        await self.device.write("pressure_low", low_pa)
        await self.device.write("pressure_high", high_pa)

    async def poll(self) -> dict[str, Reading]:
        """`o2`, `h2o` (ppmv), `box_pressure` (Pa gauge), alarm and state bits as 0/1 readings."""
        values = await self.device.read(_POLL_FIELDS)
        status = GloveboxStatus(int(values["status"]))
        o2_q = Quality.ERROR if status & GloveboxStatus.O2_SENSOR_FAULT else Quality.OK
        h2o_q = Quality.ERROR if status & GloveboxStatus.H2O_SENSOR_FAULT else Quality.OK
        out = {
            "o2": Reading.now(float(values["o2"]), "ppmv", o2_q),
            "h2o": Reading.now(float(values["h2o"]), "ppmv", h2o_q),
            "box_pressure": Reading.now(float(values["box_pressure"]), "Pa"),
            "regeneration_step": Reading.now(float(values["regeneration_step"]), ""),
            "fault": Reading.now(float(values["fault_code"]), ""),
        }
        for n in (*ALARMS, "regeneration_active", "circulation_running"):
            out[n] = Reading.now(1.0 if values[n] else 0.0, "bool")
        return out
