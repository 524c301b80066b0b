"""SQM-160: the CRC and golden frames of devices.md §7 (recomputed from pymeasure's test), both codec
roles, and the driver against its simulator on a real pty at 19200 8N1, faults included."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from drivers.codec import NEED_DATA
from drivers.errors import ChecksumError, ConfigError, DeviceRefused, DeviceTimeout, ProtocolError
from drivers.link import Link
from drivers.reading import Quality
from drivers.thickness_monitor import (
    CommandDecoder,
    FilmParameters,
    Reply,
    ReplyDecoder,
    Status,
    ThicknessMonitor,
    crc14,
    encode_command,
    encode_reply,
    film_query_command,
    film_write_command,
    format_film_parameters,
    format_frequency,
    format_life,
    format_rate,
    format_thickness,
    parse_film_command,
    parse_film_parameters,
    parse_number,
)
from drivers.transport import SerialSettings
from sim_hardware.devices.thickness_monitor import QcmBackend, ThicknessMonitorSession
from sim_hardware.endpoint import PtyEndpoint, WireFaults

LINE = SerialSettings(19200, 8, "N", 1)
QUARTZ_IMPEDANCE = 8.834e5  # sqrt(rho_q * mu_q) of AT-cut quartz, g cm^-2 s^-1
CM_PER_NM = 1e-7


class SauerbreyCrystal:
    """A quartz crystal loaded by a film: Sauerbrey's linear mass-frequency law.

    f = f0 - 2 f0² ρ d / sqrt(ρq μq). The film grows at `rate_nm_s` in real time; `preload_nm` is
    what earlier runs left on the crystal. Crystal life is the share of the usable frequency span
    (f0 down to `end_of_life_hz`) that is left. A failed crystal stops oscillating.
    """

    def __init__(
        self,
        *,
        density_g_cm3: float = 0.534,  # lithium
        f0_hz: float = 6.0e6,
        end_of_life_hz: float = 5.0e6,
        preload_nm: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.density_g_cm3 = density_g_cm3
        self.f0_hz = f0_hz
        self.end_of_life_hz = end_of_life_hz
        self.clock = clock
        self.failed = False
        self._rate_nm_s = 0.0
        self._total_at_t0 = preload_nm
        self._t0 = clock()
        self._zero_mark_nm = preload_nm

    def total_nm(self) -> float:
        return self._total_at_t0 + self._rate_nm_s * (self.clock() - self._t0)

    @property
    def rate_nm_s(self) -> float:
        return self._rate_nm_s

    @rate_nm_s.setter
    def rate_nm_s(self, rate: float) -> None:
        self._total_at_t0, self._t0 = self.total_nm(), self.clock()
        self._rate_nm_s = rate

    def thickness_nm(self) -> float:
        return self.total_nm() - self._zero_mark_nm

    def zero(self) -> None:
        self._zero_mark_nm = self.total_nm()

    def frequency_hz(self) -> float:
        if self.failed:
            return 0.0
        areal_mass = self.density_g_cm3 * self.total_nm() * CM_PER_NM
        return self.f0_hz - 2.0 * self.f0_hz**2 * areal_mass / QUARTZ_IMPEDANCE

    def life_pct(self) -> float:
        if self.failed:
            return 0.0
        left = (self.frequency_hz() - self.end_of_life_hz) / (self.f0_hz - self.end_of_life_hz)
        return 100.0 * min(1.0, max(0.0, left))


class QcmModel:
    """The sensor heads wired to one monitor, and its film memories. Until film 1 (the active one) is
    programmed it reads each crystal's true film; programmed, it converts the film's mass with the
    programmed density and tooling, as the instrument does."""

    def __init__(self, *crystals: SauerbreyCrystal) -> None:
        self.crystals = crystals
        self.films: dict[int, FilmParameters] = {}

    @property
    def channel_count(self) -> int:
        return len(self.crystals)

    def _conversion(self, crystal: SauerbreyCrystal) -> float:
        film = self.films.get(1)
        if film is None:
            return 1.0
        return crystal.density_g_cm3 / film.density_g_cm3 * film.tooling_pct / 100.0

    def rate_nm_s(self, channel: int) -> float:
        crystal = self.crystals[channel - 1]
        return 0.0 if crystal.failed else crystal.rate_nm_s * self._conversion(crystal)

    def thickness_nm(self, channel: int) -> float:
        crystal = self.crystals[channel - 1]
        return crystal.thickness_nm() * self._conversion(crystal)

    def frequency_hz(self, channel: int) -> float:
        return self.crystals[channel - 1].frequency_hz()

    def crystal_life_pct(self, channel: int) -> float:
        return self.crystals[channel - 1].life_pct()

    def zero(self) -> None:
        for crystal in self.crystals:
            crystal.zero()

    def film_parameters(self, film: int) -> FilmParameters:
        return self.films.get(film, FilmParameters(1.0, label=f"FILM{film}"))

    def program_film(self, film: int, params: FilmParameters) -> None:
        self.films[film] = params

    def reset_films(self) -> None:
        self.films.clear()


def _backend(model: QcmModel) -> QcmBackend:
    return model  # type-checks the test model against the session's protocol


# ---------------------------------------------------------------------------------------------------
# CRC and golden frames


def test_crc_vectors_of_the_manual() -> None:
    assert crc14(b"#@") == b"O7"
    assert crc14(b"$C?") == b"g/"


@pytest.mark.parametrize(
    ("command", "frame"),
    [
        (b"@", b"!#@O7"),
        (b"J", b"!#JO8"),
        (b"M", b"!#M\x8e\x8a"),
        (b"O", b"!#O\x8f9"),
        (b"L1?", b"!%L1?\x85{"),
        (b"P1", b"!$P1Z\x91"),
        # film parameters: layout [U], frames computed with the CRC above [C]
        (b"A1?", b"!%A1?.\x95"),
        (b"A1 LI 0.534 100.0 1.000", b"!9A1 LI 0.534 100.0 1.000\x8eC"),
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
        (format_film_parameters(FilmParameters(0.534, label="LI")), b"!8ALI 0.534 100.0 1.000\x9cv", None),
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


@pytest.mark.parametrize("command", [b"@", b"L6?", b"N3", b"R1", b"S", b"A1?"])
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


def test_film_commands_both_roles() -> None:
    lithium = FilmParameters(0.534, tooling_pct=110.0, z_ratio=5.9, label="LI")
    assert film_query_command(1) == b"A1?"
    assert film_write_command(12, lithium) == b"A12 LI 0.534 110.0 5.900"
    assert parse_film_command(b"12?") == (12, None)
    assert parse_film_command(film_write_command(12, lithium)[1:]) == (12, lithium)
    assert parse_film_parameters(format_film_parameters(lithium)) == lithium
    # a real unit may send more fields (final thickness, set points, sensor average) [U]: ignored
    assert parse_film_parameters(b"LI 0.534 110.0 5.900 1.000 0.000 0 1") == lithium


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        (b"?", ProtocolError),
        (b"x?", ProtocolError),
        (b"0?", ConfigError),
        (b"100?", ConfigError),
        (b"1 LI 0.534 100.0", ProtocolError),
        (b"1 LI dense 100.0 1.0", ProtocolError),
        (b"1 LI 0.1 100.0 1.0", ConfigError),
        (b"1 LI 0.534 500.0 1.0", ConfigError),
        (b"1 LI 0.534 100.0 20.0", ConfigError),
        (b"1 LONGLABEL 0.534 100.0 1.0", ConfigError),
    ],
)
def test_malformed_or_out_of_range_film_commands(argument: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_film_command(argument)


# ---------------------------------------------------------------------------------------------------
# The session, sans I/O


def _ask(session: ThicknessMonitorSession, command: bytes) -> Reply:
    decoder = ReplyDecoder()
    decoder.feed(session.receive(encode_command(command)))
    reply = decoder.next_frame()
    assert isinstance(reply, Reply)
    assert decoder.next_frame() is NEED_DATA
    return reply


def test_session_commands_and_status_codes() -> None:
    model = QcmModel(SauerbreyCrystal(), SauerbreyCrystal(preload_nm=1000.0))
    session = ThicknessMonitorSession(_backend(model))
    assert _ask(session, b"@") == Reply(Status.OK, b"MON Ver 4.13")
    assert _ask(session, b"J") == Reply(Status.OK, b"2")
    assert _ask(session, b"L2").data == _ask(session, b"L2?").data
    assert _ask(session, b"L3?").status is Status.BAD_DATA  # no third sensor
    assert _ask(session, b"N").status is Status.BAD_DATA
    assert _ask(session, b"P12").status is Status.BAD_DATA
    assert _ask(session, b"J1").status is Status.BAD_DATA
    assert _ask(session, b"Q").status is Status.INVALID_COMMAND
    assert _ask(session, b"Y") == Reply(Status.OK, b"1")
    assert _ask(session, b"Y") == Reply(Status.OK, b"0")
    assert parse_number(_ask(session, b"N2").data) == pytest.approx(0.0)
    assert parse_number(_ask(session, b"P2").data) < parse_number(_ask(session, b"P1").data)


def test_session_film_parameters_convert_the_thickness() -> None:
    now_s = [0.0]
    crystal = SauerbreyCrystal(clock=lambda: now_s[0])  # lithium
    crystal.rate_nm_s = 1.0
    now_s[0] = 100.0  # 100 nm of it since the last zero
    model = QcmModel(crystal)
    session = ThicknessMonitorSession(_backend(model))
    assert parse_film_parameters(_ask(session, b"A1?").data) == FilmParameters(1.0, label="FILM1")
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(1.0)  # kA: the true 100 nm
    assert _ask(session, b"A1 GLASS 2.000 100.0 1.000") == Reply(Status.OK, b"")
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(0.267)  # 0.534/2.0 of it
    assert _ask(session, b"A1 LI 0.534 100.0 8.000").status is Status.OK
    assert parse_number(_ask(session, b"N1").data) == pytest.approx(1.0)
    assert _ask(session, b"A1 LI 0.534 1000.0 1.000").status is Status.BAD_DATA  # out of range: kept
    assert _ask(session, b"A1 LI").status is Status.BAD_DATA
    assert _ask(session, b"A0?").status is Status.BAD_DATA
    assert parse_film_parameters(_ask(session, b"A1?").data) == FilmParameters(0.534, 100.0, 8.0, "LI")
    assert _ask(session, b"Z") == Reply(Status.OK, b"")  # film and system parameters reset
    assert model.films == {}


def test_session_ignores_a_command_with_a_bad_crc() -> None:
    session = ThicknessMonitorSession(_backend(QcmModel(SauerbreyCrystal())))
    assert session.receive(b"!#@O8") == b""
    assert session.receive(b"!#@O7").startswith(b"!0A")


# ---------------------------------------------------------------------------------------------------
# Driver against the simulator on a real pty


@dataclass
class Rig:
    model: QcmModel
    endpoint: PtyEndpoint
    link: Link
    qcm: ThicknessMonitor

    @property
    def crystal(self) -> SauerbreyCrystal:
        return self.model.crystals[0]

    @property
    def session(self) -> ThicknessMonitorSession:
        session = self.endpoint.session
        assert isinstance(session, ThicknessMonitorSession)
        return session


@asynccontextmanager
async def running_rig(
    *, pace: bool = False, faults: WireFaults | None = None, thickness_unit: str = "kA"
) -> AsyncIterator[Rig]:
    # 28.5 µm of lithium already on the crystal brings it near the 5.876 MHz of the manual's example
    model = QcmModel(SauerbreyCrystal(preload_nm=28_500.0), SauerbreyCrystal())
    endpoint = PtyEndpoint(
        "qcm",
        lambda: ThicknessMonitorSession(model, thickness_unit=thickness_unit),
        LINE,
        pace=pace,
        faults=faults,
    )
    await endpoint.start()
    link = Link(endpoint.url, name="qcm-link")
    try:
        qcm = ThicknessMonitor(link, name="qcm", timeout_s=0.3, thickness_unit=thickness_unit)
        yield Rig(model, endpoint, link, qcm)
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
    assert life.value == pytest.approx(rig.crystal.life_pct(), abs=0.006)
    rate = await rig.qcm.read_rate()
    assert (rate.value, rate.unit) == (0.0, "nm/s")
    thickness = await rig.qcm.read_thickness()
    assert (thickness.value, thickness.unit) == (0.0, "nm")


async def test_growing_film_lowers_the_frequency_and_zero_restarts_the_layer(rig: Rig) -> None:
    f_before = (await rig.qcm.read_frequency()).value
    rig.crystal.rate_nm_s = 50.0
    await _eventually(lambda: rig.crystal.thickness_nm() > 5.0)
    rate = await rig.qcm.read_rate()
    assert rate.value == pytest.approx(50.0, abs=0.001)  # 500.00 Å/s on the wire
    thickness = await rig.qcm.read_thickness()
    assert thickness.value > 5.0
    assert (await rig.qcm.read_frequency()).value < f_before
    rig.crystal.rate_nm_s = 0.0
    await rig.qcm.zero()
    assert (await rig.qcm.read_thickness()).value == pytest.approx(0.0, abs=0.1)
    assert (await rig.qcm.read_average_thickness()).value == pytest.approx(0.0, abs=0.1)


async def test_poll_returns_every_channel_value(rig: Rig) -> None:
    rig.crystal.rate_nm_s = 0.25
    readings = await rig.qcm.poll()
    assert set(readings) == {"rate", "thickness", "frequency", "crystal_life"}
    assert {k: r.unit for k, r in readings.items()} == {
        "rate": "nm/s",
        "thickness": "nm",
        "frequency": "Hz",
        "crystal_life": "%",
    }
    assert readings["rate"].value == pytest.approx(0.25, abs=0.001)
    assert all(r.ok for r in readings.values())
    assert (await rig.qcm.read_average_rate()).value == pytest.approx(0.125, abs=0.001)


async def test_failed_crystal_spoils_rate_and_thickness(rig: Rig) -> None:
    rig.crystal.failed = True
    readings = await rig.qcm.poll()
    assert readings["frequency"].quality is Quality.ERROR
    assert readings["rate"].quality is Quality.ERROR
    assert readings["thickness"].quality is Quality.ERROR
    rig.crystal.failed = False
    assert all(r.ok for r in (await rig.qcm.poll()).values())


async def test_thickness_in_angstrom_when_configured() -> None:
    async with running_rig(thickness_unit="A") as rig:
        rig.crystal.rate_nm_s = 40.0
        await _eventually(lambda: rig.crystal.thickness_nm() > 2.0)
        rig.crystal.rate_nm_s = 0.0
        thickness = await rig.qcm.read_thickness()
        assert thickness.value == pytest.approx(rig.crystal.thickness_nm(), abs=0.01)


async def test_set_film_programs_the_monitor(rig: Rig) -> None:
    crystal = rig.model.crystals[1]  # bare lithium crystal on channel 2
    qcm = ThicknessMonitor(rig.link, name="qcm", channel=2, timeout_s=0.3)
    crystal.rate_nm_s = 50.0
    await _eventually(lambda: crystal.thickness_nm() > 5.0)
    crystal.rate_nm_s = 0.0
    true_nm = crystal.thickness_nm()
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm, abs=0.1)
    await qcm.set_film(2.0)  # what a monitor left at another film's density does to lithium
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm * 0.534 / 2.0, abs=0.1)
    await qcm.set_film(0.534, tooling_pct=120.0, z_ratio=5.9, label="LI")
    assert await qcm.film_parameters() == FilmParameters(0.534, 120.0, 5.9, "LI")
    assert (await qcm.read_thickness()).value == pytest.approx(true_nm * 1.2, abs=0.1)
    await qcm.set_film(1.9, film=2)
    assert await qcm.film_parameters(2) == FilmParameters(1.9, label="FILM2")


async def test_set_film_refuses_bad_values_before_the_wire_and_reports_a_refusal(rig: Rig) -> None:
    sent = rig.link.stats.exchanges
    with pytest.raises(ConfigError, match="density"):
        await rig.qcm.set_film(0.0)
    with pytest.raises(ConfigError, match="film number"):
        await rig.qcm.set_film(1.0, film=100)
    assert rig.link.stats.exchanges == sent
    rig.session.refuse_next = 1
    rig.session.refuse_status = Status.BAD_DATA
    with pytest.raises(DeviceRefused) as info:
        await rig.qcm.set_film(0.534)
    assert info.value.code == "D"
    assert rig.model.films == {}


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
    rig.crystal.rate_nm_s = 100.0
    await _eventually(lambda: rig.crystal.thickness_nm() > 5.0)
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
