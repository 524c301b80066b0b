"""Dew-point transmitter with the Vaisala Modbus RTU map (DMT143 / DMT152 class), devices.md §4.

References: DMT143 User Guide M211435EN-J, Appendix A (§A.4.4 Table 30 test registers, §A.4.5 Table 31
device identification objects); the status block as in the HMP4 User Guide, Appendix A §A.4.3 Table 78
(`drivers.dewpoint_status`); the function codes as DPT145/DPT146 User's Guides M211371EN-D /
M211372EN-D Table 20/21 list them for this transmitter generation: 03 read holding registers, 16 write
multiple registers, 43/14 read device identification, and nothing else (so one-register writes go out
as FC 16 too). The measurement map is the generic Vaisala one (code-verified for HMP/Indigo probes;
that the DMT143/DMT152 use every address is [U]), so the word order is a parameter: LSW first by
default. Defaults: unit 240, 19200 baud 8N2.

A float read, frost point -60.0 degC, LSW first (golden frame, devices.md §4)::

    host    F0 03 00 08 00 02 50 E8        unit 240, FC03, 2 registers from 0x0008, CRC
    device  F0 03 04 00 00 C2 70 4A 78     4 bytes: LSW 0x0000, MSW 0xC270 (= 0xC2700000), CRC

Every poll reads the whole status block with the values (one more request) and grades each value by
it (`TransmitterStatus.quality`); `status` keeps the last decoded block, and a poll reports the parts
an alarm names as channels of their own (`STATUS_CHANNELS`: device status flags, the active error
code or 0, the Td/f measurement status, online 1/0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

from drivers.dewpoint_status import STATUS_FIELDS, TransmitterStatus
from drivers.errors import ProtocolError
from drivers.modbus import DeviceIdentification
from drivers.modbus_pdu import ReadDeviceIdCode
from drivers.reading import Reading
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
SELF_TEST_TEXT = b"-123.45"
STATUS_BLOCK = range(0x0200, 0x020B)
TEST_BLOCK = range(0x1F00, 0x1F07)
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
    fields += _status_fields()
    fields += [
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
            f"devices.md §4; DMT143 User Guide M211435EN-J Appendix A. Functions 03, 16 and 43/14 (read "
            "device identification: VendorName, ProductCode, MajorMinorVersion, VendorUrl, ProductName, "
            "ModelName, SerialNumber 0x80, CalibrationDate 0x81, CalibrationText 0x82); any other "
            f"function is exception 01. Unit 240 / 241, 19200 8N2. Floats {order} (configurable per "
            "device: `params.word_order`). The int16 registers at 0x0100 + n mirror the float at address "
            "2n; 0x8000 = unavailable. **Status polarity: 0x0200 reads 1 when there are no errors and 0 "
            "when errors are active; 0x0201 reads 1 when online data is available and 0 when the output "
            "is locked** (HMP4 User Guide Table 78, DMT340 User's Guide). The status block 0x0200..0x020A "
            'and the test block 0x1F00..0x1F06 (0x1F03..0x1F06: the text "-123.45") are read whole.'
        ),
        blocks={Table.HOLDING: [STATUS_BLOCK, TEST_BLOCK]},
        single_register_writes=False,
    )


_MEASUREMENT_STATUS_TEXT = (
    "0 OK; bits: 1 not available, 2 not reliable, 4 under range, 8 over range, 0x20 value locked, "
    "0x80 sensor failure, 0x100 not ready"
)


def _status_fields() -> list[Field]:
    """The status block, in the transmitter's own polarity (see `drivers.dewpoint_status`)."""
    h = Table.HOLDING
    return [
        Field("error_status", h, 0x0200, DataType.UINT16, description="1 = no errors, 0 = errors active"),
        Field(
            "online_status",
            h,
            0x0201,
            DataType.UINT16,
            description="1 = online data available, 0 = output locked",
        ),
        Field(
            "error_code",
            h,
            0x0203,
            DataType.UINT32,
            description="sum of the active error codes (the transmitter's error table)",
        ),
        Field(
            "security_hash",
            h,
            0x0205,
            DataType.UINT32,
            description="changes with any change of device settings or adjustments",
        ),
        Field(
            "rh_status",
            h,
            0x0207,
            DataType.UINT16,
            description=f"RH measurement status: {_MEASUREMENT_STATUS_TEXT}",
        ),
        Field(
            "temperature_status",
            h,
            0x0208,
            DataType.UINT16,
            description="T measurement status, bits as RH",
        ),
        Field(
            "dew_frost_point_status",
            h,
            0x0209,
            DataType.UINT16,
            description="Td/f measurement status, bits as RH (covers every Td/f-derived quantity)",
        ),
        Field(
            "device_status",
            h,
            0x020A,
            DataType.UINT16,
            description="0 OK; bits: 1 critical error, 2 error (may recover), 4 warning, 8 notification, "
            "0x10 calibration mode",
        ),
    ]


_ORDERS: tuple[WordOrder, ...] = ("little", "big")
POLL_CHANNELS = ("temperature", "frost_point", "frost_point_atm", "h2o")


class IdentifyingClient(RegisterClient, Protocol):
    """A register client that also reads FC 43/14 (`drivers.modbus.ModbusClient` does)."""

    async def read_device_identification(
        self, unit: int, read_code: int = ReadDeviceIdCode.BASIC, object_id: int = 0
    ) -> DeviceIdentification: ...


@dataclass(frozen=True, slots=True)
class TransmitterIdentity:
    """What the transmitter says it is (DMT143 User Guide Table 31)."""

    vendor: str
    product_code: str
    firmware: str
    product_name: str
    model: str
    serial_number: str
    calibration_date: str
    calibration_text: str

    @classmethod
    def from_identification(cls, ident: DeviceIdentification) -> TransmitterIdentity:
        return cls(
            vendor=ident.vendor_name,
            product_code=ident.product_code,
            firmware=ident.revision,
            product_name=ident.text(0x04),
            model=ident.text(0x05),
            serial_number=ident.text(0x80),
            calibration_date=ident.text(0x81),
            calibration_text=ident.text(0x82),
        )


class DewPointTransmitter:
    """Frost point and H2O ppmv of one antechamber atmosphere."""

    def __init__(
        self,
        client: IdentifyingClient,
        *,
        name: str,
        unit: int = DEFAULT_UNIT,
        word_order: WordOrder = "little",
    ) -> None:
        self.name = name
        self.client = client
        self.unit = unit
        self.regmap = dewpoint_map(word_order)
        self.device = MappedDevice(client, self.regmap, unit)
        self.status: TransmitterStatus | None = None
        """The status block as last read: what an alarm quotes (`faults()`)."""

    async def read_status(self) -> TransmitterStatus:
        self.status = TransmitterStatus.from_values(await self.device.read(STATUS_FIELDS))
        return self.status

    async def read_error_code(self) -> int:
        return int(await self.device.read_value("error_code"))

    async def identify(self) -> TransmitterIdentity:
        """FC 43/14, extended stream: vendor, product, firmware, serial number, calibration."""
        ident = await self.client.read_device_identification(self.unit, ReadDeviceIdCode.EXTENDED)
        return TransmitterIdentity.from_identification(ident)

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
        readings = await self._read(POLL_CHANNELS)
        return {**readings, **status_readings(self.status)} if self.status is not None else readings

    async def _read(self, names: tuple[str, ...]) -> dict[str, Reading]:
        values = await self.device.read((*names, *STATUS_FIELDS))
        status = self.status = TransmitterStatus.from_values(values)
        out: dict[str, Reading] = {}
        for n in names:
            value = float(values[n])
            out[n] = Reading.now(value, self.regmap[n].unit, status.quality(n, value))
        return out


STATUS_CHANNELS = ("device_status", "error_code", "dew_frost_point_status", "online")


def status_readings(status: TransmitterStatus) -> dict[str, Reading]:
    """The status block as plain numbers (`STATUS_CHANNELS`): recorded with the values, alarmed on."""
    values = (
        int(status.device),
        status.error_code if status.errors_active else 0,
        int(status.measurement.get("dew_frost_point", 0)),
        1 if status.online else 0,
    )
    return {name: Reading.now(float(value), "") for name, value in zip(STATUS_CHANNELS, values, strict=True)}
