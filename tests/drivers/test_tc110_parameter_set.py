"""The simulated TC 110 (and a TPG 36x in Pfeiffer-protocol mode) answer every parameter of their tables.

Golden data fields are the data-type examples of BG 5510 BEN §2.3 and the TC 110 defaults of its
parameter tables; the test fails for any parameter of the driver's table the drive would answer
``NO_DEF``.
"""

from __future__ import annotations

import pytest

from drivers.pfeiffer_vacuum_protocol import (
    PARAMETERS,
    Access,
    DataType,
    Telegram,
    TelegramDecoder,
    decode_value,
    encode_read,
    encode_write,
    parse_error_code,
)
from sim_hardware.devices.pfeiffer_vacuum_protocol import (
    PfeifferProtocolSession,
    TurboPumpDevice,
    tpg36x_bus_devices,
)
from tests.drivers.test_pfeiffer_vacuum_protocol import FixedSpeedTurbo

TPG_ONLY = {8, 40, 41, 45, 46, 47, 48}  # BG 5510 BEN §2.4: not in the TC 110's set
TC110_PARAMETERS = sorted(set(PARAMETERS) - TPG_ONLY)
WIDTH = {
    DataType.BOOLEAN_OLD: 6,
    DataType.U_INTEGER: 6,
    DataType.U_REAL: 6,
    DataType.STRING: 6,
    DataType.BOOLEAN_NEW: 1,
    DataType.U_SHORT_INT: 3,
    DataType.U_EXPO_NEW: 6,
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reply(session: PfeifferProtocolSession, request: bytes) -> str:
    decoder = TelegramDecoder()
    decoder.feed(session.receive(request))
    telegram = decoder.next_frame()
    assert isinstance(telegram, Telegram)
    return telegram.data


def drive(speed_hz: float = 820.0, **kwargs: object) -> tuple[PfeifferProtocolSession, FixedSpeedTurbo]:
    turbo = FixedSpeedTurbo(speed_hz)
    device = TurboPumpDevice(turbo, address=1, **kwargs)  # type: ignore[arg-type]
    return PfeifferProtocolSession([device]), turbo


@pytest.mark.parametrize("number", TC110_PARAMETERS)
def test_the_drive_answers_every_parameter_of_the_table_in_its_data_type(number: int) -> None:
    session, _ = drive(gauge_pa=lambda: 2.5e-4)
    p = PARAMETERS[number]
    data = reply(session, encode_read(1, number))
    if p.access is Access.W:
        assert data == "_LOGIC"
        return
    assert data not in ("NO_DEF", "_RANGE", "_LOGIC")
    assert len(data) == WIDTH[p.dtype]
    decode_value(p.dtype, data)  # raises if the field is not of the table's type


@pytest.mark.parametrize(
    ("number", "data"),
    [
        (1, "000000"),  # heating off
        (4, "111111"),  # run-up time control on
        (23, "111111"),  # motor on by default
        (19, "001"),
        (700, "000008"),  # run-up time 8 min
        (701, "000080"),
        (707, "006500"),  # 65.00 % (u_real, like 001570 = 15.70 in §2.3)
        (717, "006670"),
        (720, "050"),
        (721, "003600"),
        (730, "100023"),  # 1000 hPa (u_expo_new: 100023 = 1.000E3 in §2.3)
        (312, "010300"),
        (349, "TC 110"),
        (313, "004800"),  # drive voltage = power / current of the backend (48 V here)
    ],
)
def test_factory_defaults_and_constants(number: int, data: str) -> None:
    session, _ = drive(speed_hz=0.0)
    assert reply(session, encode_read(1, number)) == data


def test_writable_settings_are_kept_and_range_checked() -> None:
    session, _ = drive()
    assert reply(session, encode_write(1, 707, "008000")) == "008000"
    assert reply(session, encode_read(1, 707)) == "008000"
    assert reply(session, encode_write(1, 707, "001000")) == "_RANGE"  # 10 % < 20 %
    assert reply(session, encode_write(1, 26, "001")) == "001"
    assert reply(session, encode_write(1, 742, "000250")) == "000250"
    assert reply(session, encode_write(1, 308, "000500")) == "_LOGIC"


def test_gauge_on_the_drive_reads_through_p740_with_its_offset() -> None:
    session, _ = drive(gauge_pa=lambda: 2.5e-4)
    assert reply(session, encode_read(1, 739)) == "PKR361"
    assert reply(session, encode_read(1, 740)) == "250014"  # 2.5e-6 hPa
    assert reply(session, encode_read(1, 749)) == "noSENS"
    unwired, _ = drive()
    assert reply(unwired, encode_read(1, 739)) == "noSENS"
    assert reply(unwired, encode_read(1, 740)) == "000000"


def test_errors_and_warnings_are_readable_now_and_in_the_history() -> None:
    session, turbo = drive()
    assert [reply(session, encode_read(1, n)) for n in (303, 360)] == ["000000", "000000"]
    turbo.fault = "Wrn007"
    assert parse_error_code(reply(session, encode_read(1, 303))).number == 7
    turbo.fault = "Err006"  # run-up time error
    assert reply(session, encode_read(1, 303)) == "Err006"
    assert reply(session, encode_write(1, 9, "111111")) == "111111"
    assert reply(session, encode_read(1, 303)) == "000000"
    history = [reply(session, encode_read(1, n)) for n in range(360, 370)]
    assert history == ["Err006", "Wrn007", *["000000"] * 8]


def test_operating_hours_and_pump_cycles_count() -> None:
    clock = Clock()
    session, _ = drive(clock=clock, operating_hours=100.0, pump_cycles=5)
    assert reply(session, encode_read(1, 311)) == "000100"
    clock.now = 7200.0
    assert reply(session, encode_read(1, 314)) == "000102"
    reply(session, encode_write(1, 10, "111111"))
    assert reply(session, encode_read(1, 319)) == "000006"


def test_speed_switch_point_follows_its_setting() -> None:
    session, _ = drive(speed_hz=1200.0)  # 80 % of 1500 Hz
    assert reply(session, encode_read(1, 302)) == "111111"
    reply(session, encode_write(1, 701, "000090"))
    assert reply(session, encode_read(1, 302)) == "000000"


def test_tpg36x_in_pfeiffer_protocol_mode_answers_its_parameter_list() -> None:
    """BG 5510 BEN §2.4: controller ``010`` and channels ``011``/``012``."""
    session = PfeifferProtocolSession(tpg36x_bus_devices([lambda: 2.5e-4, lambda: 5e5]))
    for number in (8, 45, 46, 47, 48, 303, 312, 314, 349, 354, 797):
        assert reply(session, encode_read(10, number)) not in ("NO_DEF", "_LOGIC", "_RANGE"), number
    for number in (40, 41, 303, 349, 730, 732, 740, 742, 797):
        assert reply(session, encode_read(11, number)) not in ("NO_DEF", "_LOGIC", "_RANGE"), number
    assert reply(session, encode_read(10, 797)) == "000010"
    assert reply(session, encode_write(10, 797, "000025")) == "_RANGE"  # {010, 020, ... 240}
    assert reply(session, encode_read(11, 40)) == "0"  # boolean_new
    assert reply(session, encode_read(12, 740)) == "999999"  # overrange
    assert reply(session, encode_write(11, 740, "100014")) == "100014"  # 1e-6 hPa offset
    assert reply(session, encode_read(11, 740)) == "150014"
