"""The Vaisala status block as the manual writes it, decoded by the driver (no simulator, no map encoder).

Register values are typed in from the HMP4 User Guide, Appendix A, Table 78 (error status 0001 = no
errors, 0000 = one or more errors active; online status 0001 = online data available, 0000 = output
locked; measurement and device status bits) and the float from devices.md §4's golden frame
(Td/f -60.0 = LSW 0000, MSW C270).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from drivers.dewpoint_status import DeviceStatus, MeasurementStatus, TransmitterStatus, status_quantity
from drivers.dewpoint_transmitter import DewPointTransmitter
from drivers.modbus import DeviceIdentification
from drivers.reading import Quality

TDF_MINUS_60_LSW_FIRST = [0x0000, 0xC270]


def status_block(
    *, error_status: int = 0x0001, online: int = 0x0001, tdf: int = 0, device: int = 0, code: int = 0
) -> list[int]:
    """0x0200..0x020A: error, online, (unused), error code LSW/MSW, hash LSW/MSW, RH, T, Td/f, device."""
    return [error_status, online, 0x0000, code & 0xFFFF, code >> 16, 0x5678, 0x1234, 0, 0, tdf, device]


class ManualRegisters:
    """A register client answering with register values typed in from the manual."""

    def __init__(self, status: list[int]) -> None:
        self.holding: dict[int, int] = {}
        self.holding.update(zip(range(0x0000, 0x0030), [0] * 0x30, strict=True))
        self.holding.update({0x0008: TDF_MINUS_60_LSW_FIRST[0], 0x0009: TDF_MINUS_60_LSW_FIRST[1]})
        self.holding.update(zip(range(0x0200, 0x020B), status, strict=True))

    async def read_holding_registers(self, unit: int, address: int, count: int) -> list[int]:
        return [self.holding[a] for a in range(address, address + count)]

    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        raise AssertionError("the transmitter has no FC 04")

    async def read_coils(self, unit: int, address: int, count: int) -> list[bool]:
        raise AssertionError("the transmitter has no FC 01")

    async def read_discrete_inputs(self, unit: int, address: int, count: int) -> list[bool]:
        raise AssertionError("the transmitter has no FC 02")

    async def write_register(self, unit: int, address: int, value: int) -> None:
        raise AssertionError("the transmitter has no FC 06")

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        self.holding.update(zip(range(address, address + len(values)), values, strict=True))

    async def write_coil(self, unit: int, address: int, value: bool) -> None:
        raise AssertionError("the transmitter has no FC 05")

    async def write_coils(self, unit: int, address: int, values: Sequence[bool]) -> None:
        raise AssertionError("the transmitter has no FC 15")

    async def read_device_identification(
        self, unit: int, read_code: int = 1, object_id: int = 0
    ) -> DeviceIdentification:
        return DeviceIdentification(0x83, {0: b"Vaisala", 1: b"DMT143", 2: b"1.4.2"})


async def frost_point(status: list[int]) -> tuple[float, Quality]:
    reading = await DewPointTransmitter(ManualRegisters(status), name="inlet").read_frost_point()
    return reading.value, reading.quality


async def test_a_healthy_transmitter_reads_healthy() -> None:
    assert await frost_point(status_block()) == (-60.0, Quality.OK)


async def test_errors_active_reads_as_error() -> None:
    assert (await frost_point(status_block(error_status=0x0000)))[1] is Quality.ERROR


@pytest.mark.parametrize(
    ("block", "quality"),
    [
        (status_block(online=0x0000), Quality.STALE),  # output locked: a held value
        (status_block(tdf=0x0004), Quality.UNDER_RANGE),
        (status_block(tdf=0x0008), Quality.OVER_RANGE),
        (status_block(tdf=0x0002), Quality.ERROR),  # not reliable
        (status_block(tdf=0x0080), Quality.ERROR),  # sensor failure
        (status_block(tdf=0x0001), Quality.SENSOR_OFF),  # not available
        (status_block(tdf=0x0100), Quality.SENSOR_OFF),  # not ready
        (status_block(tdf=0x0020), Quality.STALE),  # value locked
        (status_block(device=0x0001), Quality.ERROR),  # critical error, maintenance needed
        (status_block(device=0x0002), Quality.ERROR),  # error, may recover by itself
        (status_block(device=0x0004), Quality.OK),  # a warning leaves the value usable
        (status_block(device=0x0010), Quality.SENSOR_OFF),  # calibration mode: not measuring the gas
    ],
)
async def test_status_bits_grade_the_reading(block: list[int], quality: Quality) -> None:
    assert (await frost_point(block))[1] is quality


async def test_status_names_every_fault_for_an_alarm() -> None:
    transmitter = DewPointTransmitter(
        ManualRegisters(status_block(error_status=0, online=0, tdf=0x0084, device=0x0001, code=0x00010004)),
        name="inlet",
    )
    status = await transmitter.read_status()
    assert status.error_code == 0x00010004  # 32 bits, least significant word first like the floats
    assert status.security_hash == 0x12345678
    assert status.device == DeviceStatus.CRITICAL
    assert (
        status.measurement["dew_frost_point"]
        == MeasurementStatus.UNDER_RANGE | MeasurementStatus.SENSOR_FAILURE
    )
    assert status.faults() == (
        "errors active (error code 0x00010004)",
        "output locked",
        "device: critical error, maintenance needed",
        "Td/f: under range",
        "Td/f: sensor failure",
    )
    assert transmitter.status == status


def test_each_channel_is_graded_by_its_own_quantity() -> None:
    assert [status_quantity(c) for c in ("rh", "rh_i16", "temperature", "frost_point_atm", "h2o")] == [
        "rh",
        "rh",
        "temperature",
        "dew_frost_point",
        "dew_frost_point",
    ]
    status = TransmitterStatus(
        errors_active=False,
        online=True,
        error_code=0,
        device=DeviceStatus(0),
        measurement={
            "rh": MeasurementStatus.NOT_AVAILABLE,
            "temperature": MeasurementStatus(0),
            "dew_frost_point": MeasurementStatus(0),
        },
    )
    assert status.quality("rh", float("nan")) is Quality.SENSOR_OFF
    assert status.quality("temperature", 22.0) is Quality.OK
    assert status.quality("h2o", float("nan")) is Quality.ERROR  # NaN nobody explains: not trusted
