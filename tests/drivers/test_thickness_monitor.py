"""SQM-160: the CRC and golden frames of the manual (as quoted by clients written from it) and of
pymeasure's tests, frames built with pymeasure's own checksum for the commands nobody published a frame
of, both codec roles, the simulated monitor's arithmetic, and the driver against it on a real pty at
19200 8N1, faults included."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest
from pymeasure.instruments.inficon.sqm160 import calculate_checksum  # type: ignore[import-untyped]

from drivers.codec import NEED_DATA
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, DeviceTimeout, ProtocolError
from drivers.link import Link
from drivers.reading import Quality
from drivers.thickness_monitor import (
    CommandDecoder,
    Reply,
    ReplyDecoder,
    SensorValues,
    Status,
    ThicknessMonitor,
    crc14,
    encode_command,
    encode_reply,
    format_all_sensors,
    format_frequency,
    format_life,
    format_rate,
    format_thickness,
    parse_all_sensors,
    parse_number,
)
from drivers.thickness_monitor_settings import (
    FilmParameters,
    SensorParameters,
    SystemParameters,
    active_film_command,
    film_differences,
    film_label,
    film_query_command,
    film_write_command,
    format_film_parameters,
    format_sensor_parameters,
    format_system_parameters,
    parse_active_film_command,
    parse_film_command,
    parse_film_parameters,
    parse_sensor_parameters,
    parse_system_parameters,
)
from drivers.transport import SerialSettings
from sim_hardware.devices.thickness_monitor import CrystalBackend, Sqm160, ThicknessMonitorSession
from sim_hardware.endpoint import PtyEndpoint, WireFaults

LINE = SerialSettings(19200, 8, "N", 1)
QUARTZ_IMPEDANCE = 8.834e5  # sqrt(rho_q * mu_q) of AT-cut quartz, g cm^-2 s^-1
CM_PER_NM = 1e-7


class MatchedCrystal:
    """A quartz crystal loaded by a quartz-matched film (Z-ratio 1), for which the acoustic resonance
    is exactly the period law f = f0 · mq / (mq + m), mq = Zq / 2 f0 (what the Z-match equation gives
    at z = 1). The film grows at `rate_nm_s` in real time; `preload_nm` is what earlier runs left on
    the crystal. A failed crystal stops oscillating (0 Hz)."""

    def __init__(
        self,
        *,
        density_g_cm3: float = 1.0,  # the factory-default film's density: reads true unprogrammed
        f0_hz: float = 6.0e6,
        preload_nm: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.density_g_cm3 = density_g_cm3
        self.f0_hz = f0_hz
        self.clock = clock
        self.failed = False
        self._rate_nm_s = 0.0
        self._total_at_t0 = preload_nm
        self._t0 = clock()

    def total_nm(self) -> float:
        return self._total_at_t0 + self._rate_nm_s * (self.clock() - self._t0)

    @property
    def rate_nm_s(self) -> float:
        return self._rate_nm_s

    @rate_nm_s.setter
    def rate_nm_s(self, rate: float) -> None:
        self._total_at_t0, self._t0 = self.total_nm(), self.clock()
        self._rate_nm_s = rate

    def _quartz_mass(self) -> float:
        return QUARTZ_IMPEDANCE / (2.0 * self.f0_hz)

    def frequency_hz(self) -> float:
        if self.failed:
            return 0.0
        mass = self.density_g_cm3 * self.total_nm() * CM_PER_NM
        return self.f0_hz * self._quartz_mass() / (self._quartz_mass() + mass)

    def slope_hz_s(self) -> float:
        """df/dt = -f² / (f0 mq) · dm/dt."""
        f = self.frequency_hz()
        return -(f**2) / (self.f0_hz * self._quartz_mass()) * self.density_g_cm3 * self._rate_nm_s * CM_PER_NM


class Crystals:
    """The sensor heads wired to one monitor, as its oscillator sees them."""

    def __init__(self, *crystals: MatchedCrystal) -> None:
        self.crystals = crystals

    @property
    def channel_count(self) -> int:
        return len(self.crystals)

    def frequency_hz(self, channel: int) -> float:
        return self.crystals[channel - 1].frequency_hz()

    def frequency_slope_hz_s(self, channel: int) -> float:
        return 0.0 if self.crystals[channel - 1].failed else self.crystals[channel - 1].slope_hz_s()


def _backend(crystals: Crystals) -> CrystalBackend:
    return crystals  # type-checks the test model against the monitor's protocol


def instrument(*crystals: MatchedCrystal, thickness_unit: str = "kA") -> Sqm160:
    return Sqm160(_backend(Crystals(*crystals)), thickness_unit=thickness_unit)


# ---------------------------------------------------------------------------------------------------
# CRC and golden frames


def third_party_frame(body: bytes, offset: int) -> bytes:
    """A frame built with pymeasure's checksum, not ours: an independent encoder for the commands whose
    frames nobody published (the film, system, active-film and shutter commands)."""
    head = bytes((len(body) + offset,)) + body
    return b"!" + head + bytes(calculate_checksum(head))


def test_crc_vectors_of_the_manual() -> None:
    assert crc14(b"#@") == b"O7"
    assert crc14(b"$C?") == b"g/"
    assert crc14(b"#J") == bytes((79, 56))  # the manual's !#J(79)(56)
    assert crc14(b"#W") == bytes((143, 53))  # !#W(143)(53)
    assert crc14(b"%L1?") == bytes((133, 123))  # !%L1?(133)(123)


@pytest.mark.parametrize(
    ("command", "frame"),
    [
        (b"@", b"!#@O7"),
        (b"J", b"!#JO8"),
        (b"W", b"!#W\x8f5"),  # the manual's W example
        (b"M", b"!#M\x8e\x8a"),
        (b"O", b"!#O\x8f9"),
        (b"L1?", b"!%L1?\x85{"),
        (b"P1", b"!$P1Z\x91"),
        # no published frame: built with pymeasure's checksum
        (b"A1?", third_party_frame(b"A1?", 34)),
        (
            b"A1 LI 0.53 100 5.900 0.000 0.000 0 1",
            third_party_frame(b"A1 LI 0.53 100 5.900 0.000 0.000 0 1", 34),
        ),
        (b"D?", third_party_frame(b"D?", 34)),
        (b"D1", third_party_frame(b"D1", 34)),
        (b"B?", third_party_frame(b"B?", 34)),
        (b"U1", third_party_frame(b"U1", 34)),
    ],
)
def test_golden_command_frames(command: bytes, frame: bytes) -> None:
    assert encode_command(command) == frame
    decoder = CommandDecoder()
    decoder.feed(frame)
    assert decoder.next_frame() == command


@pytest.mark.parametrize(
    ("data", "frame", "value"),
    [
        (b"MON Ver 4.13", b"!0AMON Ver 4.13Uw", None),
        (b"6", b"!%A6v\x86", 6.0),
        (format_rate(0.01), b"!*A 0.01 i?", 0.01),
        (format_thickness(0.0), b"!+A 0.000 Jo", 0.0),
        (format_rate(0.0), b"!*A 0.00 [d", 0.0),
        (format_frequency(5875830.23), b"!/A5875830.230:X", 5875830.23),
        (
            format_film_parameters(FilmParameters(0.53, 100.0, 5.9, "LI")),
            third_party_frame(b"ALI 0.53 100 5.900 0.000 0.000 0 1", 35),
            None,
        ),
    ],
)
def test_golden_reply_frames(data: bytes, frame: bytes, value: float | None) -> None:
    assert encode_reply(Status.OK, data) == frame
    decoder = ReplyDecoder()
    decoder.feed(frame)
    reply = decoder.next_frame()
    assert reply == Reply(Status.OK, data)
    if value is not None:
        assert parse_number(data) == pytest.approx(value)


def test_reply_with_high_crc_bytes_reassembles_byte_by_byte() -> None:
    frame = b"!%A6v\x86"  # binary-safe: the second CRC byte is above 0x7F, and there is no terminator
    decoder = ReplyDecoder()
    for byte in frame[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_frame() is NEED_DATA
    decoder.feed(frame[-1:])
    assert decoder.next_frame() == Reply(Status.OK, b"6")
    assert decoder.next_frame() is NEED_DATA


def test_refusals_are_values() -> None:
    decoder = ReplyDecoder()
    decoder.feed(encode_reply(Status.INVALID_COMMAND) + encode_reply(Status.BAD_DATA))
    assert decoder.next_frame() == Reply(Status.INVALID_COMMAND, b"")
    assert decoder.next_frame() == Reply(Status.BAD_DATA, b"")
    assert encode_reply(Status.INVALID_COMMAND) == b"!$C" + crc14(b"$C")


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (b"!/A5875830.230:Y", ChecksumError, "CRC"),
        (b"!/A5875830.231:X", ChecksumError, "CRC"),
        (b"?/A5875830.230:X", ProtocolError, "not '!'"),
        (b"!\x22AB", ProtocolError, "length byte"),
        (b"!$E" + crc14(b"$E"), ProtocolError, "unknown status"),
    ],
)
def test_bad_replies_raise_and_leave_the_decoder_clean(
    raw: bytes, error: type[ProtocolError], match: str
) -> None:
    decoder = ReplyDecoder()
    decoder.feed(raw)
    with pytest.raises(error, match=match):
        decoder.next_frame()
    decoder.feed(b"!%A6v\x86")
    assert decoder.next_frame() == Reply(Status.OK, b"6")


@pytest.mark.parametrize("command", [b"@", b"L6?", b"N3", b"R1", b"S", b"A1?", b"W", b"C?"])
def test_command_round_trip(command: bytes) -> None:
    decoder = CommandDecoder()
    decoder.feed(encode_command(command))
    assert decoder.next_frame() == command


@pytest.mark.parametrize(
    ("encode", "value"),
    [
        (format_rate, 12.34),
        (format_rate, -0.05),
        (format_frequency, 5_000_123.456),
        (format_life, 87.5),
        (lambda v: format_thickness(v, "kA"), 1.234),
        (lambda v: format_thickness(v, "A"), 1234.5),
    ],
)
def test_number_formats_round_trip(encode: Callable[[float], bytes], value: float) -> None:
    decoder = ReplyDecoder()
    decoder.feed(encode_reply(Status.OK, encode(value)))
    reply = decoder.next_frame()
    assert isinstance(reply, Reply)
    assert parse_number(reply.data) == pytest.approx(value)


def test_all_sensors_reply_both_roles() -> None:
    # the layout two clients parse: a timer they skip, then rate, thickness, frequency per sensor
    published = b"00.00 07.10 3076.190 5497894.642 07.10 3076.190 5498079.900"
    assert parse_all_sensors(published) == [
        SensorValues(7.10, 3076.190, 5497894.642),
        SensorValues(7.10, 3076.190, 5498079.900),
    ]
    assert format_all_sensors(0.0, parse_all_sensors(published)) == published
    assert format_all_sensors(754.0, [SensorValues(0.0, 0.0, 6.0e6)]) == b"12.34 00.00 0.000 6000000.000"
    with pytest.raises(ProtocolError):
        parse_all_sensors(b"00.00 1.0 2.0")


def test_film_commands_both_roles() -> None:
    lithium = FilmParameters(0.53, 110.0, 5.9, "LI", 1.0, 0.5, 90.0, 3)
    assert film_query_command(1) == b"A1?"
    assert film_write_command(12, lithium) == b"A12 LI 0.53 110 5.900 1.000 0.500 90 3"
    assert parse_film_command(b"12?") == (12, None)
    assert parse_film_command(film_write_command(12, lithium)[1:]) == (12, lithium)
    assert parse_film_parameters(format_film_parameters(lithium)) == lithium
    assert active_film_command() == b"D?"
    assert active_film_command(7) == b"D7"
    assert parse_active_film_command(b"?") is None
    assert parse_active_film_command(b"7") == 7
    assert film_label("57Li2S-38SiS2-5Li3PO4") == "57Li2S38"
    assert film_label("Li") == "Li"


def test_film_read_back_is_compared_to_half_a_displayed_digit() -> None:
    wanted = FilmParameters(1.889, 100.0, 2.429, "GLASS")
    assert film_differences(replace(wanted, density_g_cm3=1.89, z_ratio=2.429), wanted) == []
    assert film_differences(replace(wanted, density_g_cm3=0.53), wanted) == [
        "density (g/cm³) reads 0.53, commanded 1.89"
    ]
    assert film_differences(replace(wanted, z_ratio=math.nan, tooling_pct=90.0), wanted) == [
        "tooling (%) reads 90, commanded 100",
        "Z-ratio reads nan, commanded 2.429",
    ]


def test_system_parameter_blocks_both_roles() -> None:
    system = SystemParameters()
    assert format_system_parameters(system) == b"0.25 0 5000000 6000000 0.00 100.00 0.000 1.000 0"
    assert parse_system_parameters(format_system_parameters(system)) == system
    sensors = SensorParameters(1, 4, (125.0, 91.0, 100.0, 100.0, 100.0, 100.0))
    assert format_sensor_parameters(sensors) == b"1 4 125 91 100 100 100 100"
    assert parse_sensor_parameters(format_sensor_parameters(sensors)) == sensors
    with pytest.raises(ConfigError):
        parse_sensor_parameters(b"1 4 5 100 100 100 100 100")  # crystal tooling below 10 %
    with pytest.raises(ProtocolError):
        parse_system_parameters(b"0.25 0")


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        (b"?", ProtocolError),
        (b"x?", ProtocolError),
        (b"0?", ConfigError),
        (b"100?", ConfigError),
        (b"1 LI 0.53 100 5.900", ProtocolError),
        (b"1 LI dense 100 1.0 0 0 0 1", ProtocolError),
        (b"1 LI 0.1 100 1.0 0 0 0 1", ConfigError),
        (b"1 LI 0.53 500 1.0 0 0 0 1", ConfigError),
        (b"1 LI 0.53 100 20.0 0 0 0 1", ConfigError),
        (b"1 LONGLABEL 0.53 100 1.0 0 0 0 1", ConfigError),
    ],
)
def test_malformed_or_out_of_range_film_commands(argument: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_film_command(argument)


# ---------------------------------------------------------------------------------------------------
# The simulated monitor, sans I/O


def _ask(session: ThicknessMonitorSession, command: bytes) -> Reply:
    decoder = ReplyDecoder()
    decoder.feed(session.receive(encode_command(command)))
    reply = decoder.next_frame()
    assert isinstance(reply, Reply)
    assert decoder.next_frame() is NEED_DATA
    return reply


def test_session_commands_and_status_codes() -> None:
    session = ThicknessMonitorSession(instrument(MatchedCrystal(), MatchedCrystal(preload_nm=1000.0)))
    assert _ask(session, b"@") == Reply(Status.OK, b"MON Ver 4.13")
    assert _ask(session, b"J") == Reply(Status.OK, b"2")
    assert _ask(session, b"L2").data == _ask(session, b"L2?").data
    assert _ask(session, b"L3?").status is Status.BAD_DATA  # no third sensor
    assert _ask(session, b"N").status is Status.BAD_DATA
    assert _ask(session, b"P12").status is Status.BAD_DATA
    assert _ask(session, b"J1").status is Status.BAD_DATA
    for undocumented in (b"Q", b"E", b"K2", b"?"):
        assert _ask(session, undocumented).status is Status.INVALID_COMMAND
    assert _ask(session, b"Y") == Reply(Status.OK, b"1")
    assert _ask(session, b"Y") == Reply(Status.OK, b"0")
    assert parse_number(_ask(session, b"N2").data) == pytest.approx(0.0)
    assert parse_number(_ask(session, b"P2").data) < parse_number(_ask(session, b"P1").data)
    assert _ask(session, b"U?") == Reply(Status.OK, b"0")
    assert _ask(session, b"U1") == Reply(Status.OK, b"")
    assert _ask(session, b"U?") == Reply(Status.OK, b"1")
    assert _ask(session, b"U7").status is Status.BAD_DATA
    sensors = parse_all_sensors(_ask(session, b"W").data)
    assert [s.frequency_hz for s in sensors] == [
        pytest.approx(parse_number(_ask(session, p).data), abs=0.001) for p in (b"P1", b"P2")
    ]


def test_session_settings_read_write_and_reset() -> None:
    session = ThicknessMonitorSession(instrument(MatchedCrystal(), MatchedCrystal()))
    assert parse_system_parameters(_ask(session, b"B?").data) == SystemParameters()
    assert _ask(session, b"B 0.50 0 5200000 6000000 0.00 50.00 0.000 2.000 0").status is Status.OK
    assert parse_system_parameters(_ask(session, b"B?").data).frequency_min_hz == 5.2e6
    assert _ask(session, b"B 0.50 0 6000000 5200000 0.00 50.00 0.000 2.000 0").status is Status.BAD_DATA
    assert _ask(session, b"C 1 4 120 80 100 100 100 100").status is Status.OK
    assert parse_sensor_parameters(_ask(session, b"C?").data).crystal_tooling_pct[:2] == (120.0, 80.0)
    assert _ask(session, b"D?") == Reply(Status.OK, b"1")
    assert _ask(session, b"D2") == Reply(Status.OK, b"")
    assert _ask(session, b"D?") == Reply(Status.OK, b"2")
    assert _ask(session, b"D100").status is Status.BAD_DATA
    assert _ask(session, b"Z") == Reply(Status.OK, b"")
    assert _ask(session, b"D?") == Reply(Status.OK, b"1")
    assert parse_sensor_parameters(_ask(session, b"C?").data) == SensorParameters()


def test_the_monitor_converts_with_the_film_it_was_told() -> None:
    now_s = [0.0]
    crystal = MatchedCrystal(density_g_cm3=0.534, clock=lambda: now_s[0])  # lithium (period law)
    session = ThicknessMonitorSession(instrument(crystal))  # zeroed at power-up
    crystal.rate_nm_s = 1.0
    now_s[0] = 100.0  # 100 nm of it since
    assert parse_film_parameters(_ask(session, b"A1?").data) == FilmParameters(1.0, 100.0, 1.0, "FILM1")
    # the factory film (1.0 g/cm³): the mass of 100 nm (1 kÅ) of lithium reads as 53.4 nm
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.534, abs=0.0005)
    assert _ask(session, b"A1 LI 0.53 100 1.000 0 0 0 1") == Reply(Status.OK, b"")
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.534 / 0.53, abs=0.0005)
    assert parse_number(_ask(session, b"L1").data) == pytest.approx(10.0 * 0.534 / 0.53, abs=0.01)
    # the electrolyte's density left in the monitor: lithium reads 3.6x too thin
    assert _ask(session, b"A1 GLASS 1.89 100 1.000 0 0 0 1").status is Status.OK
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.534 / 1.89, abs=0.0005)
    assert _ask(session, b"A2 LI 0.53 200 1.000 0 0 0 1").status is Status.OK  # stored, not active
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.534 / 1.89, abs=0.0005)
    assert _ask(session, b"D2").status is Status.OK  # now it is, tooling 200 % included
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(2.0 * 0.534 / 0.53, abs=0.0005)
    assert _ask(session, b"A1 LI 0.53 1000 1.000 0 0 0 1").status is Status.BAD_DATA  # out of range
    assert _ask(session, b"A1 LI").status is Status.BAD_DATA
    assert _ask(session, b"A0?").status is Status.BAD_DATA
    assert _ask(session, b"S") == Reply(Status.OK, b"")
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.0, abs=0.0005)


def test_z_ratio_corrects_a_heavily_loaded_crystal() -> None:
    """A quartz-matched film (z = 1) on a crystal near 5.5 MHz: converted with z = 1 the monitor reads
    the true thickness; told z = 5.9 (lithium's) it reads otherwise, by the Z-match equation."""
    now_s = [0.0]
    crystal = MatchedCrystal(preload_nm=60_000.0, clock=lambda: now_s[0])
    monitor = instrument(crystal)
    crystal.rate_nm_s = 10.0
    now_s[0] = 1000.0  # 10 µm more
    assert 5.4e6 < crystal.frequency_hz() < 5.5e6
    assert monitor.values(1).thickness_nm == pytest.approx(10_000.0, rel=1e-9)
    assert monitor.values(1).rate_nm_s == pytest.approx(10.0, rel=1e-9)
    monitor.films[1] = FilmParameters(1.0, 100.0, 5.9, "LI")
    assert abs(monitor.values(1).thickness_nm / 10_000.0 - 1.0) > 1e-3


def test_session_ignores_a_command_with_a_bad_crc() -> None:
    session = ThicknessMonitorSession(instrument(MatchedCrystal()))
    assert session.receive(b"!#@O8") == b""
    assert session.receive(b"!#@O7").startswith(b"!0A")


# ---------------------------------------------------------------------------------------------------
# Driver against the simulator on a real pty


@dataclass
class Rig:
    monitor: Sqm160
    crystals: tuple[MatchedCrystal, ...]
    endpoint: PtyEndpoint
    link: Link
    qcm: ThicknessMonitor

    @property
    def crystal(self) -> MatchedCrystal:
        return self.crystals[0]

    @property
    def session(self) -> ThicknessMonitorSession:
        session = self.endpoint.session
        assert isinstance(session, ThicknessMonitorSession)
        return session


@asynccontextmanager
async def running_rig(
    *, pace: bool = False, faults: WireFaults | None = None, thickness_unit: str = "kA"
) -> AsyncIterator[Rig]:
    # 15.5 µm of earlier film brings the crystal near the 5.876 MHz of the manual's example
    crystals = (MatchedCrystal(preload_nm=15_500.0), MatchedCrystal())
    monitor = instrument(*crystals, thickness_unit=thickness_unit)
    endpoint = PtyEndpoint("qcm", lambda: ThicknessMonitorSession(monitor), LINE, pace=pace, faults=faults)
    await endpoint.start()
    link = Link(endpoint.url, name="qcm-link")
    try:
        qcm = ThicknessMonitor(link, name="qcm", timeout_s=0.3, thickness_unit=thickness_unit)
        yield Rig(monitor, crystals, endpoint, link, qcm)
    finally:
        await link.close()
        await endpoint.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as r:
        yield r


async def _eventually(check: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait for the simulated film to grow; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_identity_and_still_readings(rig: Rig) -> None:
    assert await rig.qcm.firmware() == "MON Ver 4.13"
    assert await rig.qcm.channel_count() == 2
    frequency = await rig.qcm.read_frequency()
    assert frequency.unit == "Hz"
    assert frequency.value == pytest.approx(rig.crystal.frequency_hz(), abs=0.001)
    assert 5.85e6 < frequency.value < 5.9e6
    life = await rig.qcm.crystal_life()
    assert life.unit == "%"
    assert life.value == pytest.approx((frequency.value - 5.0e6) / 1.0e6 * 100.0, abs=0.006)
    rate = await rig.qcm.read_rate()
    assert (rate.value, rate.unit) == (0.0, "nm/s")
    thickness = await rig.qcm.read_thickness()
    assert (thickness.value, thickness.unit) == (0.0, "nm")


async def test_growing_film_lowers_the_frequency_and_zero_restarts_the_layer(rig: Rig) -> None:
    f_before = (await rig.qcm.read_frequency()).value
    start_nm = rig.crystal.total_nm()
    rig.crystal.rate_nm_s = 50.0
    await _eventually(lambda: rig.crystal.total_nm() - start_nm > 5.0)
    rate = await rig.qcm.read_rate()
    assert rate.value == pytest.approx(50.0, abs=0.001)  # 500.00 Å/s on the wire
    thickness = await rig.qcm.read_thickness()
    assert thickness.value > 5.0
    assert (await rig.qcm.read_frequency()).value < f_before
    rig.crystal.rate_nm_s = 0.0
    await rig.qcm.zero()
    assert (await rig.qcm.read_thickness()).value == pytest.approx(0.0, abs=0.1)
    assert (await rig.qcm.read_average_thickness()).value == pytest.approx(0.0, abs=0.1)


async def test_poll_returns_every_channel_value_and_the_film_they_come_from(rig: Rig) -> None:
    rig.crystal.rate_nm_s = 0.25
    readings = await rig.qcm.poll()
    assert {k: r.unit for k, r in readings.items()} == {
        "rate": "nm/s",
        "thickness": "nm",
        "frequency": "Hz",
        "crystal_life": "%",
        "active_film": "1",
        "film_density": "g/cm3",
        "film_z_ratio": "1",
        "film_tooling": "%",
    }
    assert readings["rate"].value == pytest.approx(0.25, abs=0.001)
    assert (readings["active_film"].value, readings["film_density"].value) == (1.0, 1.0)
    assert all(r.ok for r in readings.values())
    assert (await rig.qcm.read_average_rate()).value == pytest.approx(
        0.25, abs=0.001
    )  # film averages sensor 1
    rig.monitor.films[1] = replace(rig.monitor.film(1), sensor_average=0b11)
    assert (await rig.qcm.read_average_rate()).value == pytest.approx(0.125, abs=0.001)
    sensors = await rig.qcm.read_all_sensors()
    assert [s.rate_a_s for s in sensors] == [pytest.approx(2.5, abs=0.01), 0.0]


async def test_failed_crystal_spoils_rate_and_thickness(rig: Rig) -> None:
    rig.crystal.failed = True
    readings = await rig.qcm.poll()
    assert readings["frequency"].quality is Quality.ERROR
    assert readings["rate"].quality is Quality.ERROR
    assert readings["thickness"].quality is Quality.ERROR
    assert readings["crystal_life"].value == 0.0
    rig.crystal.failed = False
    assert all(r.ok for r in (await rig.qcm.poll()).values())


async def test_thickness_in_angstrom_when_configured() -> None:
    async with running_rig(thickness_unit="A") as rig:
        start_nm = rig.crystal.total_nm()
        rig.crystal.rate_nm_s = 40.0
        await _eventually(lambda: rig.crystal.total_nm() - start_nm > 2.0)
        rig.crystal.rate_nm_s = 0.0
        thickness = await rig.qcm.read_thickness()
        assert thickness.value == pytest.approx(rig.crystal.total_nm() - start_nm, abs=0.02)


async def test_set_film_programs_the_monitor(rig: Rig) -> None:
    crystal = rig.crystals[1]  # a bare crystal on channel 2
    qcm = ThicknessMonitor(rig.link, name="qcm", channel=2, timeout_s=0.3)
    crystal.rate_nm_s = 50.0
    await _eventually(lambda: crystal.total_nm() > 5.0)
    crystal.rate_nm_s = 0.0
    true_nm = crystal.total_nm()
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm, abs=0.1)
    await qcm.set_film(2.0, z_ratio=1.0)  # what a monitor left at another film's density does
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm / 2.0, abs=0.1)
    written = await qcm.set_film(1.0, z_ratio=1.0, tooling_pct=120.0, label="LI")
    assert written == FilmParameters(1.0, 120.0, 1.0, "LI")
    assert await qcm.film_parameters() == written
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm * 1.2, abs=0.1)
    # the rest of the memory survives: a write carries every field
    rig.monitor.films[3] = FilmParameters(1.0, 100.0, 1.0, "OLD", 2.5, 0.5, 120.0, 3)
    await qcm.set_film(1.89, z_ratio=2.429, film=3)
    assert await qcm.film_parameters(3) == FilmParameters(1.89, 100.0, 2.429, "FILM3", 2.5, 0.5, 120.0, 3)
    assert await qcm.active_film() == 3


async def test_set_film_refuses_bad_values_before_the_wire_and_reports_a_refusal(rig: Rig) -> None:
    with pytest.raises(ConfigError, match="density"):
        await rig.qcm.set_film(0.0, z_ratio=1.0)
    with pytest.raises(ConfigError, match="film number"):
        await rig.qcm.set_film(1.0, z_ratio=1.0, film=100)
    assert rig.monitor.films == {}
    rig.session.refuse_next = 1
    rig.session.refuse_status = Status.BAD_DATA
    with pytest.raises(DeviceRefused) as info:
        await rig.qcm.set_film(0.53, z_ratio=5.9)
    assert info.value.code == "D"
    assert rig.monitor.films == {}


async def test_status_c_and_d_are_refusals_then_recovery(rig: Rig) -> None:
    rig.session.refuse_next = 1
    with pytest.raises(DeviceRefused) as info:
        await rig.qcm.read_rate()
    assert (info.value.code, info.value.device) == ("C", "qcm")
    rig.session.refuse_next = 1
    rig.session.refuse_status = Status.BAD_DATA
    with pytest.raises(DeviceRefused, match="problem with the data"):
        await rig.qcm.zero()
    assert await rig.qcm.channel_count() == 2


async def test_a_channel_the_monitor_lacks_is_refused_with_d() -> None:
    async with running_rig() as rig:
        qcm = ThicknessMonitor(rig.link, name="qcm3", channel=3)
        with pytest.raises(DeviceRefused) as info:
            await qcm.read_frequency()
        assert info.value.code == "D"


async def test_silent_monitor_times_out_then_recovers(rig: Rig) -> None:
    rig.endpoint.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await rig.qcm.read_frequency()
    rig.endpoint.faults.silent = False
    assert (await rig.qcm.read_frequency()).ok


def _seed_corrupting(predicate: Callable[[int], bool], length: int) -> int:
    """A seed for the wire fault's RNG whose corrupted byte index satisfies `predicate`."""
    return next(s for s in range(1000) if predicate(random.Random(s).randrange(length)))


@pytest.mark.parametrize(
    ("where", "error"),
    [(lambda i: i >= 2, ChecksumError), (lambda i: i == 0, ProtocolError)],
    ids=["payload", "sync"],
)
async def test_corrupted_reply_then_recovery(where: Callable[[int], bool], error: type[Exception]) -> None:
    length = len(b"!%A2") + 2  # the reply to J on a two-sensor monitor
    faults = WireFaults(corrupt_replies=1, rng=random.Random(_seed_corrupting(where, length)))
    async with running_rig(faults=faults) as rig:
        with pytest.raises(error):
            await rig.qcm.channel_count()
        assert rig.link.stats.protocol_errors == 1
        assert await rig.qcm.channel_count() == 2


async def test_stuck_readings(rig: Rig) -> None:
    rig.session.hold_readings()
    start_nm = rig.crystal.total_nm()
    rig.crystal.rate_nm_s = 100.0
    await _eventually(lambda: rig.crystal.total_nm() - start_nm > 5.0)
    assert (await rig.qcm.read_thickness()).value == 0.0
    assert (await rig.qcm.read_rate()).value == 0.0
    rig.session.release_readings()
    assert (await rig.qcm.read_thickness()).value > 5.0


async def test_paced_line_at_19200() -> None:
    async with running_rig(pace=True) as rig:
        assert await rig.qcm.firmware() == "MON Ver 4.13"
        readings = await rig.qcm.poll()
        assert readings["frequency"].ok


def test_bad_configuration_is_a_config_error() -> None:
    link = Link("serial:///dev/null")
    with pytest.raises(ConfigError, match=r"1\.\.6"):
        ThicknessMonitor(link, name="x", channel=7)
    with pytest.raises(ConfigError, match="'kA' or 'A'"):
        ThicknessMonitor(link, name="x", thickness_unit="nm")
