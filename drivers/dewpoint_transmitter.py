"""Dew-point transmitter with the Vaisala-style Modbus RTU map (DMT143 / DMT152 class), devices.md §4.

The map is the generic Vaisala one (code-verified for HMP/Indigo probes; that the DMT143/DMT152
use it is [U]), so the word order is a parameter: LSW first by default, as that client decodes.
Defaults: unit 240, 19200 baud 8N2, FC03 holding registers.

A float read, frost point -60.0 degC, LSW first (golden frame, devices.md §4)::

    host    F0 03 00 08 00 02 50 E8        unit 240, FC03, 2 registers from 0x0008, CRC
    device  F0 03 04 00 00 C2 70 4A 78     4 bytes: LSW 0x0000, MSW 0xC270 (= 0xC2700000), CRC

Quality: a NaN value (the transmitter's "unavailable") is SENSOR_OFF while the device reports
itself not online (start-up, [U] meaning of online status 0), ERROR otherwise; a non-zero error
status makes every value ERROR. The per-quantity status registers 0x0207..0x020A are not mapped:
their bit meanings are not known [U].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from drivers.errors import ProtocolError
from drivers.reading import Quality, Reading
from drivers.register_map import (
    Access,
    DataType,
    Field,
    MappedDevice,
    RegisterClient,
    RegisterMap,
    Table,
    WordOrder,
)
from drivers.transport import SerialSettings

DEFAULT_UNIT = 240
DEFAULT_SERIAL = SerialSettings(baudrate=19200, bytesize=8, parity="N", stopbits=2)
SELF_TEST_INT = -12345
SELF_TEST_FLOAT = -123.45
INT16_UNAVAILABLE = 0x8000

# name, float address, SI unit, wire unit, scale, description, int16 mirror scale (None: no mirror)
_FLOATS: tuple[tuple[str, int, str, str, float, str, float | None], ...] = (
    ("rh", 0x0000, "%", "", 1.0, "relative humidity", 0.01),
    ("temperature", 0x0002, "degC", "", 1.0, "gas temperature T", 0.01),
    ("dew_point", 0x0006, "degC", "", 1.0, "dew point Td (over water)", 0.01),
    ("frost_point", 0x0008, "degC", "", 1.0, "dew/frost point Td/f (over ice below 0 degC)", 0.01),
    ("frost_point_atm", 0x000A, "degC", "", 1.0, "Td/f converted to 1 atm", 0.01),
    ("dew_point_atm", 0x000C, "degC", "", 1.0, "Td converted to 1 atm", 0.01),
    ("abs_humidity", 0x000E, "g/m3", "", 1.0, "absolute humidity", None),
    ("mixing_ratio", 0x0010, "g/kg", "", 1.0, "mixing ratio", None),
    ("wet_bulb", 0x0012, "degC", "", 1.0, "wet-bulb temperature", None),
    ("h2o", 0x0014, "ppmv", "", 1.0, "water content by volume", 1.0),
    ("vapour_pressure", 0x0016, "Pa", "hPa", 100.0, "water vapour partial pressure Pw", None),
    ("saturation_pressure", 0x0018, "Pa", "hPa", 100.0, "saturation vapour pressure Pws at T", None),
    ("enthalpy", 0x001A, "kJ/kg", "", 1.0, "enthalpy", None),
    ("water_activity", 0x001C, "", "", 1.0, "water activity aw", None),
    ("relative_saturation", 0x0028, "%", "", 1.0, "relative saturation RS", None),
    ("rh_dew_frost", 0x002C, "%", "", 1.0, "RH relative to ice below 0 degC", None),
)


def dewpoint_map(word_order: WordOrder = "little") -> RegisterMap:
    """The Vaisala-style map with the float word order the installed transmitter uses."""
    fields: list[Field] = []
    for name, address, unit, wire_unit, scale, text, mirror_scale in _FLOATS:
        fields.append(
            Field(
                name,
                Table.HOLDING,
                address,
                DataType.FLOAT32,
                unit,
                scale,
                description=text,
                wire_unit=wire_unit,
            )
        )
        if mirror_scale is not None:
            tag = "" if mirror_scale == 1 else f" x{1 / mirror_scale:g}"
            guess = " [U: scale]" if name.endswith("_atm") else ""
            fields.append(
                Field(
                    f"{name}_i16",
                    Table.HOLDING,
                    0x0100 + address // 2,
                    DataType.INT16,
                    unit,
                    mirror_scale,
                    description=f"{text}, int16{tag}{guess}",
                    unavailable=INT16_UNAVAILABLE,
                )
            )
    fields += [
        Field(
            "error_status",
            Table.HOLDING,
            0x0200,
            DataType.UINT16,
            description="0 = no errors, 1 = error active",
        ),
        Field(
            "online_status",
            Table.HOLDING,
            0x0201,
            DataType.UINT16,
            description="1 = measurement data available, 0 = not yet (start-up) [U]",
        ),
        Field(
            "error_code",
            Table.HOLDING,
            0x0203,
            DataType.UINT32,
            description="error bit mask [U: bit meanings]; bit 0 sensor, bit 1 temperature, bit 2 memory",
        ),
        Field(
            "pressure_compensation",
            Table.HOLDING,
            0x0300,
            DataType.FLOAT32,
            "Pa",
            100.0,
            Access.RW,
            "process pressure used for the 1 atm conversions",
            wire_unit="hPa",
        ),
        Field(
            "modbus_address",
            Table.HOLDING,
            0x0600,
            DataType.UINT16,
            access=Access.RW,
            description="unit id 1..247",
        ),
        Field("bit_rate", Table.HOLDING, 0x0601, DataType.UINT16, access=Access.RW, description="enum [U]"),
        Field(
            "serial_format",
            Table.HOLDING,
            0x0602,
            DataType.UINT16,
            access=Access.RW,
            description="parity / data / stop bits, enum [U]",
        ),
        Field(
            "response_delay",
            Table.HOLDING,
            0x0603,
            DataType.UINT16,
            "ms",
            access=Access.RW,
            description="reply delay",
        ),
        Field("self_test_int", Table.HOLDING, 0x1F00, DataType.INT16, description="always -12345 (0xCFC7)"),
        Field(
            "self_test_float",
            Table.HOLDING,
            0x1F01,
            DataType.FLOAT32,
            description="always -123.45: checks the word order",
        ),
    ]
    order = "LSW first" if word_order == "little" else "MSW first"
    return RegisterMap(
        "vaisala_dewpoint",
        fields,
        word_order=word_order,
        title="Dew-point transmitter (Vaisala-style, Modbus RTU)",
        notes=(
            f"devices.md §4. FC03 holding registers; unit 240 / 241, 19200 8N2. Floats {order} "
            "(configurable per device: `params.word_order`). The int16 registers at 0x0100 + n mirror "
            "the float at address 2n; 0x8000 = unavailable."
        ),
    )


_ORDERS: tuple[WordOrder, ...] = ("little", "big")
POLL_CHANNELS = ("temperature", "frost_point", "frost_point_atm", "h2o")


@dataclass(frozen=True, slots=True)
class TransmitterStatus:
    error: bool
    online: bool

    def quality(self, value: float) -> Quality:
        if self.error:
            return Quality.ERROR
        if math.isnan(value):
            return Quality.ERROR if self.online else Quality.SENSOR_OFF
        return Quality.OK


class DewPointTransmitter:
    """Frost point and H2O ppmv of one antechamber atmosphere."""

    def __init__(
        self,
        client: RegisterClient,
        *,
        name: str,
        unit: int = DEFAULT_UNIT,
        word_order: WordOrder = "little",
    ) -> None:
        self.name = name
        self.regmap = dewpoint_map(word_order)
        self.device = MappedDevice(client, self.regmap, unit)

    async def read_status(self) -> TransmitterStatus:
        values = await self.device.read(("error_status", "online_status"))
        return TransmitterStatus(error=values["error_status"] != 0, online=values["online_status"] != 0)

    async def read_error_code(self) -> int:
        return int(await self.device.read_value("error_code"))

    async def read_frost_point(self) -> Reading:
        return (await self._read(("frost_point",)))["frost_point"]

    async def read_h2o(self) -> Reading:
        return (await self._read(("h2o",)))["h2o"]

    async def set_pressure_compensation_pa(self, pressure_pa: float) -> None:
        await self.device.write("pressure_compensation", pressure_pa)

    async def check_word_order(self) -> WordOrder:
        """Read the self-test float and say which word order the device actually uses.

        Raises ProtocolError when neither order yields -123.45 (not this map at all).
        """
        regs = await self.device.read_raw(Table.HOLDING, 0x1F00, 3)
        probe = self.regmap["self_test_float"]
        if self.regmap["self_test_int"].from_raw(regs[:1]) == SELF_TEST_INT:
            for order in _ORDERS:
                value = replace(probe, word_order=order).from_raw(regs[1:3])
                if math.isclose(value, SELF_TEST_FLOAT, rel_tol=1e-6):
                    return order
        raise ProtocolError(f"{self.name}: self-test registers read {[hex(int(r)) for r in regs]}")

    async def poll(self) -> dict[str, Reading]:
        return await self._read(POLL_CHANNELS)

    async def _read(self, names: tuple[str, ...]) -> dict[str, Reading]:
        values = await self.device.read((*names, "error_status", "online_status"))
        status = TransmitterStatus(error=values["error_status"] != 0, online=values["online_status"] != 0)
        out: dict[str, Reading] = {}
        for n in names:
            value = float(values[n])
            out[n] = Reading.now(value, self.regmap[n].unit, status.quality(value))
        return out
