"""Pfeiffer Vacuum Protocol: every example telegram of devices.md §2 byte-exact in both roles, the data
types, the turbo and gauge drivers against simulated devices sharing one RS-485 bus on a real pty, and
the faults (error words, silence, garbage, a reply that answers another request)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import NEED_DATA
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, DeviceTimeout, ProtocolError
from drivers.link import Link
from drivers.pfeiffer_vacuum_protocol import (
    Action,
    DataType,
    ErrorKind,
    PfeifferGauge,
    Telegram,
    TelegramDecoder,
    TurboPump,
    Value,
    check_reply,
    checksum,
    decode_expo,
    decode_value,
    encode_expo,
    encode_read,
    encode_reply,
    encode_telegram,
    encode_value,
    encode_write,
    parse_error_code,
)
from drivers.reading import Quality
from drivers.transport import SerialSettings
from sim_hardware.devices.pfeiffer_vacuum_protocol import (
    BusDevice,
    GaugeDevice,
    PfeifferProtocolSession,
    TurboPumpDevice,
    tpg36x_bus_devices,
)
from sim_hardware.endpoint import PtyEndpoint


class RunUpTurbo:
    """A turbo whose rotor approaches its target speed exponentially (first order, time constant
    `tau_s`); the drive power is the friction load plus the power spent accelerating the rotor."""

    def __init__(self, nominal_speed_hz: float = 1500.0, tau_s: float = 0.15) -> None:
        self.nominal_speed_hz = nominal_speed_hz
        self.set_speed_hz = nominal_speed_hz
        self.tau_s = tau_s
        self.fault = "000000"
        self.acknowledged = 0
        self._speed_hz = 0.0
        self._t = time.monotonic()
        self._station = False
        self._motor = True

    def _target_hz(self) -> float:
        running = self._station and self._motor and not self.fault.startswith("Err")
        return self.set_speed_hz if running else 0.0

    def _advance(self) -> float:
        now = time.monotonic()
        target = self._target_hz()
        self._speed_hz = target + (self._speed_hz - target) * math.exp(-(now - self._t) / self.tau_s)
        self._t = now
        return self._speed_hz

    @property
    def actual_speed_hz(self) -> float:
        return self._advance()

    @property
    def drive_power_w(self) -> float:
        speed = self._advance()
        accel_hz_per_s = max(self._target_hz() - speed, 0.0) / self.tau_s
        return 5.0 + 0.01 * speed + 0.02 * speed * accel_hz_per_s / 100

    @property
    def drive_current_a(self) -> float:
        return self.drive_power_w / 48.0

    @property
    def electronics_temp_c(self) -> float:
        return 30.0

    @property
    def bottom_temp_c(self) -> float:
        return 25.0 + self._advance() / 100

    @property
    def bearing_temp_c(self) -> float:
        return 28.0 + self._advance() / 80

    @property
    def motor_temp_c(self) -> float:
        return 29.0 + self._advance() / 60

    @property
    def error_code(self) -> str:
        return self.fault

    @property
    def set_speed_reached(self) -> bool:
        return self._target_hz() > 0 and self._advance() >= 0.98 * self.set_speed_hz

    @property
    def accelerating(self) -> bool:
        return self._advance() < self._target_hz() - 1.0

    @property
    def pumping_station_on(self) -> bool:
        return self._station

    @pumping_station_on.setter
    def pumping_station_on(self, on: bool) -> None:
        self._advance()
        self._station = on

    @property
    def motor_on(self) -> bool:
        return self._motor

    @motor_on.setter
    def motor_on(self, on: bool) -> None:
        self._advance()
        self._motor = on

    def acknowledge_error(self) -> None:
        self.acknowledged += 1
        if self.fault.startswith("Err"):
            self.fault = "000000"


class FixedSpeedTurbo(RunUpTurbo):
    def __init__(self, speed_hz: float) -> None:
        super().__init__()
        self._speed_hz = speed_hz
        self.tau_s = math.inf


# --- golden telegrams (devices.md §2) ------------------------------------------------------------


def turbo_at(speed_hz: float = 820.0, fault: str = "000000") -> list[BusDevice]:
    turbo = FixedSpeedTurbo(speed_hz)
    turbo.fault = fault
    return [TurboPumpDevice(turbo, address=1)]


GOLDEN: list[tuple[str, bytes, bytes, Callable[[], Sequence[BusDevice]]]] = [
    ("read pressure 1000 hPa", b"0010074002=?106\r", b"0011074006100023025\r",
     lambda: [GaugeDevice(lambda: 1e5, address=1)]),
    ("read speed 820 Hz", b"0010030902=?107\r", b"0011030906000820030\r", turbo_at),
    ("pumping station on", b"0011001006111111015\r", b"0011001006111111015\r", turbo_at),
    ("motor on", b"0011002306111111019\r", b"0011002306111111019\r", turbo_at),
    ("read error: none", b"0010030302=?101\r", b"0011030306000000014\r", turbo_at),
    ("read error: Err001", b"0010030302=?101\r", b"0011030306Err001168\r",
     lambda: turbo_at(fault="Err001")),
    ("TPG36x ch1 pressure 2.5e-6 hPa", b"0110074002=?107\r", b"0111074006250014032\r",
     lambda: tpg36x_bus_devices([lambda: 2.5e-4])),
    ("TPG36x device name", b"0100034902=?111\r", b"0101034906TPG362126\r",
     lambda: tpg36x_bus_devices([lambda: 2.5e-4])),
    ("unknown parameter", encode_read(1, 999), b"0011099906NO_DEF206\r", turbo_at),
]  # fmt: skip

GOLDEN_VALUES = {
    b"0011074006100023025\r": (DataType.U_EXPO_NEW, 1000.0),
    b"0011030906000820030\r": (DataType.U_INTEGER, 820),
    b"0011001006111111015\r": (DataType.BOOLEAN_OLD, True),
    b"0011002306111111019\r": (DataType.BOOLEAN_OLD, True),
    b"0011030306000000014\r": (DataType.STRING, "000000"),
    b"0011030306Err001168\r": (DataType.STRING, "Err001"),
    b"0111074006250014032\r": (DataType.U_EXPO_NEW, 2.5e-6),
    b"0101034906TPG362126\r": (DataType.STRING, "TPG362"),
}


@pytest.mark.parametrize(("what", "request_bytes", "reply", "devices"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_telegrams_device_role(
    what: str, request_bytes: bytes, reply: bytes, devices: Callable[[], Sequence[BusDevice]]
) -> None:
    assert PfeifferProtocolSession(devices()).receive(request_bytes) == reply


@pytest.mark.parametrize(("what", "request_bytes", "reply", "devices"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_telegrams_host_role(
    what: str, request_bytes: bytes, reply: bytes, devices: Callable[[], Sequence[BusDevice]]
) -> None:
    decoder = TelegramDecoder()
    decoder.feed(request_bytes + reply)
    request = decoder.next_frame()
    answer = decoder.next_frame()
    assert isinstance(request, Telegram)
    assert isinstance(answer, Telegram)
    assert encode_telegram(request) == request_bytes
    if request.is_read:
        assert encode_read(request.address, request.parameter) == request_bytes
    else:
        assert encode_write(request.address, request.parameter, request.data) == request_bytes
    data = check_reply(request, answer)
    assert encode_reply(request, data) == reply
    if reply in GOLDEN_VALUES:
        dtype, value = GOLDEN_VALUES[reply]
        assert decode_value(dtype, data) == value
        assert encode_value(dtype, value) == data
    else:
        assert answer.is_error


def test_golden_range_error_telegram() -> None:
    request = Telegram(1, Action.WRITE, 741, "999999")
    assert encode_reply(request, "_RANGE") == b"0011074106_RANGE192\r"
    decoder = TelegramDecoder()
    decoder.feed(b"0011074106_RANGE192\r")
    reply = decoder.next_frame()
    assert isinstance(reply, Telegram)
    assert reply.is_error
    assert check_reply(request, reply) == "_RANGE"


def test_checksum_is_the_byte_sum_mod_256_in_three_digits() -> None:
    body = bytes([100] * 7 + [86])  # sum 786
    assert checksum(body) == 18
    assert encode_read(1, 740)[-4:] == b"106\r"


@pytest.mark.parametrize(
    ("data", "value"), [("100023", 1000.0), ("456711", 4.567e-9), ("250014", 2.5e-6), ("000000", 0.0)]
)
def test_u_expo_new_examples(data: str, value: float) -> None:
    assert decode_expo(data) == value
    assert encode_expo(value) == data


@given(st.floats(min_value=1e-19, max_value=9.99e78))
def test_u_expo_new_round_trip(value: float) -> None:
    assert decode_expo(encode_expo(value)) == pytest.approx(value, rel=5e-4)


@pytest.mark.parametrize(
    ("dtype", "value", "data"),
    [
        (DataType.BOOLEAN_OLD, False, "000000"),
        (DataType.BOOLEAN_OLD, True, "111111"),
        (DataType.U_INTEGER, 820, "000820"),
        (DataType.U_REAL, 15.7, "001570"),
        (DataType.STRING, "TPG362", "TPG362"),
        (DataType.STRING, "TC 11", "TC 11 "),
        (DataType.BOOLEAN_NEW, True, "1"),
        (DataType.U_SHORT_INT, 2, "002"),
        (DataType.U_EXPO_NEW, 1000.0, "100023"),
        (DataType.STRING16, "HiPace 300", "HiPace 300      "),
    ],
)
def test_data_types_both_ways(dtype: DataType, value: Value, data: str) -> None:
    assert encode_value(dtype, value) == data
    assert decode_value(dtype, data) == value


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (DataType.U_INTEGER, -1),
        (DataType.U_INTEGER, 1_000_000),
        (DataType.U_INTEGER, 1.5),
        (DataType.U_SHORT_INT, 1000),
        (DataType.STRING, "TOO LONG"),
        (DataType.U_EXPO_NEW, -1.0),
        (DataType.U_EXPO_NEW, math.nan),
        (DataType.BOOLEAN_OLD, "yes"),
    ],
)
def test_unrepresentable_values(dtype: DataType, value: Value) -> None:
    with pytest.raises(ValueError, match=r"."):
        encode_value(dtype, value)


@pytest.mark.parametrize(
    ("dtype", "data"),
    [
        (DataType.BOOLEAN_OLD, "000001"),
        (DataType.U_INTEGER, "12a456"),
        (DataType.U_INTEGER, "12345"),
        (DataType.BOOLEAN_NEW, "2"),
        (DataType.U_EXPO_NEW, "-10023"),
    ],
)
def test_malformed_data_fields(dtype: DataType, data: str) -> None:
    with pytest.raises(ProtocolError):
        decode_value(dtype, data)


@given(
    st.integers(1, 255),
    st.sampled_from(Action),
    st.integers(0, 999),
    st.text(st.characters(min_codepoint=32, max_codepoint=127), max_size=16),
)
def test_telegram_round_trip(address: int, action: Action, number: int, data: str) -> None:
    telegram = Telegram(address, action, number, data)
    decoder = TelegramDecoder()
    wire = encode_telegram(telegram)
    decoder.feed(wire[:5])
    assert decoder.next_frame() is NEED_DATA
    decoder.feed(wire[5:])
    assert decoder.next_frame() == telegram


def test_decoder_rejects_bad_telegrams_and_resynchronises() -> None:
    good = encode_read(1, 309)
    decoder = TelegramDecoder()
    decoder.feed(b"0010030902=?108\r" + b"0010030903=?107\r" + b"\xe1;\x03junk\r" + good)
    with pytest.raises(ChecksumError):
        decoder.next_frame()
    with pytest.raises(ProtocolError, match="announces"):
        decoder.next_frame()
    with pytest.raises(ProtocolError, match="0xe1"):
        decoder.next_frame()
    assert decoder.next_frame() == Telegram(1, Action.READ, 309, "=?")


def test_a_reply_must_answer_its_request() -> None:
    request = Telegram(1, Action.READ, 309, "=?")
    with pytest.raises(ProtocolError):
        check_reply(request, Telegram(2, Action.WRITE, 309, "000820"))
    with pytest.raises(ProtocolError):
        check_reply(request, Telegram(1, Action.WRITE, 308, "000820"))
    with pytest.raises(ProtocolError):
        check_reply(request, request)


@pytest.mark.parametrize(
    ("text", "kind", "number"),
    [
        ("000000", ErrorKind.NONE, 0),
        ("no Err", ErrorKind.NONE, 0),
        ("Err001", ErrorKind.ERROR, 1),
        ("Wrn036", ErrorKind.WARNING, 36),
        ("Err107", ErrorKind.ERROR, 107),
    ],
)
def test_error_codes(text: str, kind: ErrorKind, number: int) -> None:
    code = parse_error_code(text)
    assert (code.kind, code.number) == (kind, number)
    with pytest.raises(ProtocolError):
        parse_error_code("Oops01")


# --- simulated bus -------------------------------------------------------------------------------


def reply_data(session: PfeifferProtocolSession, request: bytes) -> str | None:
    wire = session.receive(request)
    if not wire:
        return None
    decoder = TelegramDecoder()
    decoder.feed(wire)
    reply = decoder.next_frame()
    assert isinstance(reply, Telegram)
    return reply.data


def test_bus_answers_only_the_addressed_device() -> None:
    session = PfeifferProtocolSession([*turbo_at(), GaugeDevice(lambda: 1e3, address=2)])
    assert reply_data(session, encode_read(3, 309)) is None  # nobody there
    assert reply_data(session, encode_read(0, 309)) is None  # global
    assert reply_data(session, encode_read(901, 309)) is None  # group
    assert reply_data(session, b"0010030902=?108\r") is None  # bad checksum: ignored
    assert reply_data(session, encode_read(2, 309)) == "NO_DEF"  # a gauge has no speed
    assert reply_data(session, encode_read(2, 740)) == "100021"  # 1e3 Pa = 10 hPa
    assert reply_data(session, encode_read(1, 309)) == "000820"


@pytest.mark.parametrize(
    ("request_bytes", "word"),
    [
        (encode_write(1, 309, "000100"), "_LOGIC"),  # read-only
        (encode_read(1, 9), "_LOGIC"),  # write-only
        (encode_write(1, 27, "005"), "_RANGE"),  # gas mode 0..2
        (encode_write(1, 10, "123456"), "_RANGE"),  # not a boolean_old
        (encode_write(1, 27, "5"), "_RANGE"),  # wrong width
        (encode_read(1, 888), "NO_DEF"),
        (encode_read(1, 340), "NO_DEF"),  # a display unit's pressure, not the drive's
        (encode_write(1, 742, "000900"), "_RANGE"),  # a TC 110 takes 0.1-8.0
    ],
)
def test_turbo_refusals(request_bytes: bytes, word: str) -> None:
    assert reply_data(PfeifferProtocolSession(turbo_at()), request_bytes) == word


def test_gauge_range_limits_and_faults() -> None:
    pressure = [1e-9]
    gauge = GaugeDevice(lambda: pressure[0], address=11)
    session = PfeifferProtocolSession([gauge])
    assert reply_data(session, encode_read(11, 740)) == "000000"
    pressure[0] = 2e5
    assert reply_data(session, encode_read(11, 740)) == "999999"
    gauge.stuck_pa = 50.0
    assert reply_data(session, encode_read(11, 740)) == "500019"  # 0.5 hPa
    gauge.forced_replies[740] = "_LOGIC"
    assert reply_data(session, encode_read(11, 740)) == "_LOGIC"
    gauge.responding = False
    assert reply_data(session, encode_read(11, 349)) is None


# --- drivers over a real pty ---------------------------------------------------------------------


@dataclass
class Bus:
    turbo_model: RunUpTurbo
    pressures_pa: list[float]
    devices: list[BusDevice]
    endpoint: PtyEndpoint
    link: Link
    turbo: TurboPump
    ch1: PfeifferGauge
    ch2: PfeifferGauge


async def open_bus(*, pace: bool = False) -> Bus:
    model = RunUpTurbo()
    pressures = [2.5e-4, 1.2e3]
    devices: list[BusDevice] = [
        TurboPumpDevice(model, address=1),
        *tpg36x_bus_devices([lambda: pressures[0], lambda: pressures[1]], controller=1),
    ]
    endpoint = PtyEndpoint(
        "rs485", lambda: PfeifferProtocolSession(devices), SerialSettings(9600), pace=pace, latency_s=0.002
    )
    await endpoint.start()
    link = Link(endpoint.url)
    return Bus(
        model,
        pressures,
        devices,
        endpoint,
        link,
        TurboPump(link, name="turbo", address=1, timeout_s=0.3),
        PfeifferGauge(link, name="process-wide-range", address=11, timeout_s=0.3),
        PfeifferGauge(link, name="process-ch2", address=12, timeout_s=0.3),
    )


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = await open_bus()
    try:
        yield b
    finally:
        await b.link.close()
        await b.endpoint.stop()


async def test_turbo_runs_up_to_speed_and_stops(bus: Bus) -> None:
    turbo = bus.turbo
    assert (await turbo.read_speed()).value == 0.0
    assert not await turbo.read_pumping_station()
    await turbo.start()
    assert await turbo.read_pumping_station()
    assert await turbo.read_motor()
    assert await turbo.read_accelerating()
    deadline = time.monotonic() + 3.0
    while not await turbo.read_set_speed_reached():
        assert time.monotonic() < deadline, "the pump never reached its set speed"
        await asyncio.sleep(0.05)
    speed = await turbo.read_speed()
    assert (speed.unit, speed.quality) == ("Hz", Quality.OK)
    assert speed.value >= 0.98 * 1500
    assert (await turbo.read_nominal_speed()).value == 1500.0
    polled = await turbo.poll()
    assert set(polled) == {
        "speed",
        "set_speed_reached",
        "accelerating",
        "drive_power",
        "drive_current",
        "temp_electronics",
        "temp_pump_bottom",
        "temp_bearing",
        "temp_motor",
        "error_code",
        "warning_code",
    }
    assert polled["set_speed_reached"].value == 1.0
    assert polled["drive_power"].unit == "W"
    assert polled["temp_motor"].value == pytest.approx(29.0 + speed.value / 60, abs=2)
    assert all(r.ok for r in polled.values())
    await turbo.stop()
    assert not await turbo.read_pumping_station()
    assert await turbo.read_accelerating() is False


async def test_turbo_error_is_an_error_quality_reading_not_an_exception(bus: Bus) -> None:
    bus.turbo_model.fault = "Wrn036"
    polled = await bus.turbo.poll()
    assert (polled["warning_code"].value, polled["warning_code"].quality) == (36.0, Quality.OK)
    assert polled["error_code"].ok
    bus.turbo_model.fault = "Err001"
    polled = await bus.turbo.poll()
    assert (polled["error_code"].value, polled["error_code"].quality) == (1.0, Quality.ERROR)
    assert (await bus.turbo.read_error_code()).is_error
    await bus.turbo.acknowledge_error()
    assert bus.turbo_model.acknowledged == 1
    assert (await bus.turbo.read_error_code()).kind is ErrorKind.NONE


async def test_error_words_raise_device_refused(bus: Bus) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await bus.turbo.write_parameter(309, 100)
    assert refused.value.code == "_LOGIC"
    with pytest.raises(DeviceRefused) as refused:
        await bus.turbo.read_raw(999)
    assert refused.value.code == "NO_DEF"
    with pytest.raises(DeviceRefused) as refused:
        await bus.turbo.write_parameter(27, 7)
    assert refused.value.code == "_RANGE"
    assert await bus.turbo.write_parameter(27, 1) == 1
    assert await bus.turbo.read_parameter(27) == 1
    with pytest.raises(ConfigError):
        await bus.turbo.write_parameter(27, 1000)  # cannot even be encoded
    with pytest.raises(ConfigError):
        TurboPump(bus.link, name="x", address=0)


async def test_gauges_share_the_bus_with_the_turbo(bus: Bus) -> None:
    ch1, ch2, speed, name = await asyncio.gather(
        bus.ch1.read_pressure(), bus.ch2.read_pressure(), bus.turbo.read_speed(), bus.ch1.read_name()
    )
    assert (ch1.unit, ch1.quality) == ("Pa", Quality.OK)
    assert ch1.value == pytest.approx(2.5e-4)
    assert ch2.value == pytest.approx(1.2e3)
    assert speed.value == 0.0
    assert name == "PKR361"
    controller = PfeifferGauge(bus.link, name="tpg", address=10)
    assert await controller.read_name() == "TPG362"
    bus.pressures_pa[0], bus.pressures_pa[1] = 1e-9, 3e5
    under, over = (await bus.ch1.poll())["pressure"], await bus.ch2.read_pressure()
    assert (under.quality, under.value) == (Quality.UNDER_RANGE, 0.0)
    assert (over.quality, over.value) == (Quality.OVER_RANGE, math.inf)


async def test_silent_device_times_out_while_the_others_answer(bus: Bus) -> None:
    turbo_device = bus.devices[0]
    assert isinstance(turbo_device, TurboPumpDevice)
    turbo_device.responding = False
    with pytest.raises(DeviceTimeout):
        await bus.turbo.read_speed()
    assert (await bus.ch1.read_pressure()).ok
    turbo_device.responding = True
    bus.endpoint.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await bus.ch1.read_pressure()
    bus.endpoint.faults.silent = False
    assert (await bus.turbo.read_speed()).ok


async def test_garbage_and_corruption_are_protocol_errors_then_recovery(bus: Bus) -> None:
    bus.endpoint.faults.garbage_replies = 1
    with pytest.raises(ProtocolError):
        await bus.ch1.read_pressure()
    assert (await bus.ch1.read_pressure()).ok
    bus.endpoint.faults.corrupt_replies = 1
    with pytest.raises(ProtocolError):
        await bus.ch1.read_pressure()
    assert (await bus.ch1.read_pressure()).ok
    bus.endpoint.power_cycle()
    assert (await bus.ch2.read_pressure()).value == pytest.approx(1.2e3)


class MisaddressedReplies:
    """A second slave answering at the same time: the reply names another address."""

    def receive(self, data: bytes) -> bytes:
        return encode_telegram(Telegram(2, Action.WRITE, 309, "000820"))


async def test_a_reply_from_another_address_is_a_protocol_error() -> None:
    endpoint = PtyEndpoint("rogue", MisaddressedReplies, SerialSettings(9600))
    await endpoint.start()
    link = Link(endpoint.url)
    try:
        with pytest.raises(ProtocolError, match="does not answer"):
            await TurboPump(link, name="turbo", address=1).read_speed()
    finally:
        await link.close()
        await endpoint.stop()


async def test_paced_bus_at_9600_baud() -> None:
    b = await open_bus(pace=True)
    try:
        await b.turbo.start()
        polled = await b.turbo.poll()
        assert polled["speed"].unit == "Hz"
        assert (await b.ch1.read_pressure()).value == pytest.approx(2.5e-4)
    finally:
        await b.link.close()
        await b.endpoint.stop()
