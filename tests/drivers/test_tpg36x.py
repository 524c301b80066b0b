"""TPG 36x mnemonics: golden exchanges of devices.md §1, both codec roles, the driver against the
simulator over a real pty, and the faults a gauge controller shows (NAK, silence, garbage, power-up
streaming)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import NEED_DATA
from drivers.errors import ConfigError, DeviceRefused, DeviceTimeout, ProtocolError
from drivers.link import Link
from drivers.reading import Quality
from drivers.tpg36x import (
    ENQ,
    ETX,
    Command,
    Enquiry,
    Handshake,
    HandshakeDecoder,
    LineDecoder,
    MeasurementStatus,
    PressureUnit,
    RequestDecoder,
    SensorState,
    Tpg36x,
    encode_command,
    format_number,
    parse_measurements,
    parse_number,
)
from drivers.transport import SerialSettings
from sim_hardware.devices.tpg36x import CMR_10MBAR, PKR, Tpg36xSession, Tpg36xState, TpgChannel
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint

# --- golden exchanges (devices.md §1) --------------------------------------------------------------

GOLDEN = [
    (b"PR1\r\n", b"\x06\r\n", b"0,1.0000E-03\r\n"),
    (b"PRX\r\n", b"\x06\r\n", b"0,1.0000E-03,2,1.0000E+03\r\n"),
    (b"UNI,2\r\n", b"\x06\r\n", b"2\r\n"),
    (b"FOL,1,2\r\n", b"\x15\r\n", b"0001\r\n"),
    (b"SP1,2,6.80E-3,9.80E-3\r\n", b"\x06\r\n", None),
]


def golden_state() -> Tpg36xState:
    """Channel 1 at 0.1 Pa = 1e-3 hPa; channel 2 above the PKR range, so it reads 1e3 hPa, status 2."""
    return Tpg36xState([TpgChannel(PKR, lambda: 0.1), TpgChannel(PKR, lambda: 2e5)])


@pytest.mark.parametrize(("request_bytes", "handshake", "data"), GOLDEN)
def test_golden_exchanges_device_role(request_bytes: bytes, handshake: bytes, data: bytes | None) -> None:
    session = Tpg36xSession(golden_state())
    assert session.receive(request_bytes) == handshake
    if data is not None:
        assert session.receive(ENQ) == data


@pytest.mark.parametrize(("request_bytes", "handshake", "data"), GOLDEN)
def test_golden_exchanges_host_role(request_bytes: bytes, handshake: bytes, data: bytes | None) -> None:
    mnemonic, *params = request_bytes.decode().strip().split(",")
    assert encode_command(mnemonic, *params) == request_bytes
    decoder = HandshakeDecoder()
    decoder.feed(handshake)
    assert decoder.next_frame() is (Handshake.ACK if handshake[0] == 0x06 else Handshake.NAK)
    if data is not None:
        lines = LineDecoder()
        lines.feed(data)
        assert lines.next_frame() == data.decode().strip()


def test_golden_prx_line_parses_to_statuses_and_values() -> None:
    ch1, ch2 = parse_measurements("0,1.0000E-03,2,1.0000E+03")
    assert (ch1.status, ch1.value, ch1.quality) == (MeasurementStatus.OK, 1e-3, Quality.OK)
    assert (ch2.status, ch2.value, ch2.quality) == (MeasurementStatus.OVER_RANGE, 1e3, Quality.OVER_RANGE)


# --- codec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.0000E-03", 1e-3), ("+1.0000E-03", 1e-3), ("-2.5000E+02", -250.0), ("9.9999E+03", 9999.9)],
)
def test_numbers_with_or_without_plus_sign(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "1.0000", "E-03", "1.0000E", "abc", "1,0000E-03"])
def test_malformed_numbers_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_number(text)


def test_number_format_matches_the_manual() -> None:
    assert format_number(1e-3) == "1.0000E-03"
    assert format_number(1e-3, plus_sign=True) == "+1.0000E-03"
    assert format_number(1.2345e-5, logarithmic=True) == "1.2300E-05"  # log gauges: 3rd/4th decimal 0
    assert format_number(-2.0) == "-2.0000E+00"


@given(st.floats(min_value=1e-12, max_value=1e12), st.booleans(), st.booleans())
def test_number_round_trip(value: float, plus_sign: bool, logarithmic: bool) -> None:
    parsed = parse_number(format_number(value, plus_sign=plus_sign, logarithmic=logarithmic))
    assert parsed == pytest.approx(value, rel=5e-3 if logarithmic else 5e-5)


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (0, Quality.OK),
        (1, Quality.UNDER_RANGE),
        (2, Quality.OVER_RANGE),
        (3, Quality.ERROR),
        (4, Quality.SENSOR_OFF),
        (5, Quality.SENSOR_OFF),
        (6, Quality.ERROR),
    ],
)
def test_measurement_status_to_quality(status: int, quality: Quality) -> None:
    (m,) = parse_measurements(f"{status},2.0000E-02")
    assert m.quality is quality


@pytest.mark.parametrize("line", ["7,1.0000E-03", "0", "0,1.0000E-03,1", "x,1.0000E-03", ""])
def test_bad_measurement_lines(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_measurements(line)


def test_handshake_decoder_skips_stream_lines_before_the_ack() -> None:
    """A stream line (or the tail of one cut by the input flush) is never taken for the reply."""
    wire = b"E-03,0,2.0000E+00\r\n" + b"0,1.0000E-03,0,2.0000E+00\r\n" + b"\x06\r\n"
    decoder = HandshakeDecoder()
    for byte in wire:  # worst case: one byte at a time
        assert decoder.next_frame() is NEED_DATA
        decoder.feed(bytes([byte]))
    assert decoder.next_frame() is Handshake.ACK
    assert len(decoder.skipped) == 2


@pytest.mark.parametrize(
    ("decoder_type", "wire"),
    [(HandshakeDecoder, b"\xe1;\x03"), (HandshakeDecoder, b"\x06x\r\n"), (LineDecoder, b"\x15\r\n")],
)
def test_decoders_reject_impossible_replies(decoder_type: type, wire: bytes) -> None:
    decoder = decoder_type()
    decoder.feed(wire)
    with pytest.raises(ProtocolError):
        decoder.next_frame()


def test_host_rejects_unsendable_commands() -> None:
    with pytest.raises(ConfigError):
        encode_command("PR")
    with pytest.raises(ConfigError):
        encode_command("UNI", "1,2")


_params = st.lists(st.from_regex(r"[0-9][0-9.E+-]{0,8}", fullmatch=True), max_size=4)


@given(st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True), _params)
def test_command_round_trip_host_to_device(mnemonic: str, params: list[str]) -> None:
    decoder = RequestDecoder()
    decoder.feed(encode_command(mnemonic, *params) + ENQ)
    assert decoder.next_frame() == Command(mnemonic, tuple(params))
    assert decoder.next_frame() == Enquiry()
    assert decoder.next_frame() is NEED_DATA


def test_device_decoder_takes_cr_only_spaces_lowercase_and_etx() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"garb" + ETX + b"uni , 2\r" + b"\x80\r")
    assert decoder.next_frame() == Command("UNI", ("2",))
    assert decoder.next_frame() == Command("", ())  # junk: the session NAKs it
    assert decoder.next_frame() is NEED_DATA


# --- simulator session ---------------------------------------------------------------------------


def test_enq_repeats_the_last_mnemonic_with_fresh_data_and_enq_alone_gives_the_error_word() -> None:
    pressure = [0.1]
    session = Tpg36xSession(Tpg36xState([TpgChannel(CMR_10MBAR, lambda: pressure[0])]))
    assert session.receive(ENQ) == b"0000\r\n"
    assert session.receive(b"PR1\r") == b"\x06\r\n"
    assert session.receive(ENQ) == b"0,1.0000E-03\r\n"
    pressure[0] = 500.0
    assert session.receive(ENQ) == b"0,5.0000E+00\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "word"),
    [
        (b"XYZ\r\n", b"0001"),
        (b"\x80\x81\r\n", b"0001"),
        (b"UNI,9\r\n", b"0010"),
        (b"UNI,a\r\n", b"0010"),
        (b"PR1,1\r\n", b"0010"),
        (b"SEN,2\r\n", b"0010"),
        (b"SP1,2,9E-3,1E-3\r\n", b"0010"),
        (b"PR3\r\n", b"0100"),
    ],
)
def test_refused_requests_nak_and_set_the_error_word(request_bytes: bytes, word: bytes) -> None:
    session = Tpg36xSession(golden_state())
    assert session.receive(request_bytes) == b"\x15\r\n"
    assert session.receive(ENQ) == word + b"\r\n"
    assert session.receive(b"ERR\r\n" + ENQ) == b"\x06\r\n0000\r\n"  # reading the word cleared it


def test_ranges_come_from_the_gauge_type_and_faults_show_in_status() -> None:
    cmr = TpgChannel(CMR_10MBAR, lambda: 0.01)
    pkr = TpgChannel(PKR, lambda: 1e-3)
    session = Tpg36xSession(Tpg36xState([pkr, cmr], unit=PressureUnit.PA))
    assert session.receive(b"PRX\r\n" + ENQ) == b"\x06\r\n0,1.0000E-03,1,1.0000E-01\r\n"
    pkr.sensor_on = False
    cmr.forced_status = MeasurementStatus.SENSOR_ERROR
    assert session.receive(ENQ) == b"4,2.0000E-02,3,1.0000E-02\r\n"
    assert session.receive(b"RES\r\n" + ENQ) == b"\x06\r\n11\r\n"
    assert session.receive(b"ERR\r\n" + ENQ) == b"\x06\r\n1000\r\n"  # persists while the cause does
    cmr.connected = False
    assert session.receive(b"TID\r\n" + ENQ) == b"\x06\r\nPKR,noSEn\r\n"
    assert session.receive(b"PR2\r\n" + ENQ) == b"\x06\r\n5,2.0000E-02\r\n"


def test_stuck_value_holds_whatever_the_plant_does() -> None:
    pressure = [50.0]
    channel = TpgChannel(CMR_10MBAR, lambda: pressure[0], stuck_pa=20.0)
    session = Tpg36xSession(Tpg36xState([channel], unit=PressureUnit.PA))
    pressure[0] = 800.0
    assert session.receive(b"PR1\r\n" + ENQ) == b"\x06\r\n0,2.0000E+01\r\n"


def test_streams_until_the_first_character_and_com_restarts_it() -> None:
    session = Tpg36xSession(golden_state(), plus_sign_mantissa=True)
    assert session.stream() == b"0,+1.0000E-03,2,+1.0000E+03\r\n"
    session.receive(b"\x03")
    assert session.stream() == b""
    assert session.receive(b"COM,0\r\n") == b"\x06\r\n"
    assert session.receive(ENQ) == b"0,+1.0000E-03,2,+1.0000E+03\r\n"
    assert session.stream_interval_s == pytest.approx(0.1)
    assert session.stream() != b""
    session.receive(b"P")
    assert session.stream() == b""


# --- driver against the simulator ----------------------------------------------------------------


@dataclass
class Rig:
    pressures_pa: list[float]
    state: Tpg36xState
    endpoint: PtyEndpoint
    link: Link
    tpg: Tpg36x


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    pressures = [0.1, 250.0]
    state = Tpg36xState([TpgChannel(PKR, lambda: pressures[0]), TpgChannel(CMR_10MBAR, lambda: pressures[1])])
    # a fast power-up stream, so stale stream lines are on the wire during the tests
    endpoint = PtyEndpoint("tpg", lambda: Tpg36xSession(state, stream_interval_s=0.02), SerialSettings(9600))
    await endpoint.start()
    link = Link(endpoint.url)
    try:
        yield Rig(pressures, state, endpoint, link, Tpg36x(link, name="tpg", timeout_s=0.3))
    finally:
        await link.close()
        await endpoint.stop()


async def test_reads_pressure_in_pa_whatever_the_display_unit(rig: Rig) -> None:
    await asyncio.sleep(0.1)  # the gauge has been streaming since power-up
    for unit in (
        PressureUnit.HPA,
        PressureUnit.MBAR,
        PressureUnit.TORR,
        PressureUnit.PA,
        PressureUnit.MICRON,
    ):
        assert await rig.tpg.set_unit(unit) is unit
        assert rig.state.unit is unit
        ch1 = await rig.tpg.read_pressure(1)
        assert (ch1.unit, ch1.quality) == ("Pa", Quality.OK)
        assert ch1.value == pytest.approx(0.1, rel=1e-2)  # log gauge: two decimals
        ch2 = await rig.tpg.read_pressure(2)
        assert ch2.value == pytest.approx(250.0, rel=1e-4)
    polled = await rig.tpg.poll()
    assert set(polled) == {"pressure_ch1", "pressure_ch2"}
    assert polled["pressure_ch2"].value == pytest.approx(250.0, rel=1e-4)
    assert await rig.tpg.read_unit() is PressureUnit.MICRON


async def test_gauge_ids_sensor_switching_and_status_qualities(rig: Rig) -> None:
    tpg = rig.tpg
    assert await tpg.read_gauge_ids() == ["PKR", "CMR"]
    assert await tpg.set_sensor(1, False) == [SensorState.OFF, SensorState.CANNOT_SWITCH]
    assert (await tpg.read_pressure(1)).quality is Quality.SENSOR_OFF
    assert await tpg.set_sensor(1, True) == [SensorState.ON, SensorState.CANNOT_SWITCH]
    rig.pressures_pa[0], rig.pressures_pa[1] = 1e-8, 5e3
    ch1, ch2 = await tpg.read_all()
    assert (ch1.quality, ch2.quality) == (Quality.UNDER_RANGE, Quality.OVER_RANGE)
    assert ch1.value == pytest.approx(PKR.min_pa)
    rig.state.channels[1].forced_status = MeasurementStatus.SENSOR_ERROR
    assert (await tpg.read_pressure(2)).quality is Quality.ERROR
    assert await tpg.read_errors() == [11]
    assert await tpg.read_error_word() == "1000"
    rig.state.channels[1].forced_status = None
    assert await tpg.acknowledge_errors() == []
    assert await tpg.read_error_word() == "0000"


async def test_nak_raises_device_refused_with_the_err_word_then_reads_work(rig: Rig) -> None:
    with pytest.raises(DeviceRefused) as refused:
        await rig.tpg.query("FOL", 1, 2)
    assert refused.value.code == "0001"
    with pytest.raises(DeviceRefused, match="inadmissible parameter") as refused:
        await rig.tpg.query("UNI", 9)
    assert refused.value.code == "0010"
    assert (await rig.tpg.read_pressure(2)).value == pytest.approx(250.0, rel=1e-4)
    with pytest.raises(ConfigError):
        await rig.tpg.read_pressure(3)


async def test_silent_gauge_times_out_then_recovers(rig: Rig) -> None:
    rig.endpoint.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await rig.tpg.read_pressure(1)
    rig.endpoint.faults.silent = False
    assert (await rig.tpg.read_pressure(1)).ok


async def test_garbage_is_a_protocol_error_then_recovers(rig: Rig) -> None:
    await rig.tpg.read_unit()
    rig.endpoint.faults.garbage_replies = 1
    with pytest.raises(ProtocolError):
        await rig.tpg.read_pressure(1)
    assert (await rig.tpg.read_pressure(1)).ok
    assert rig.link.stats.protocol_errors == 1


async def test_power_cycle_streams_again_and_the_driver_still_reads(rig: Rig) -> None:
    assert (await rig.tpg.read_pressure(2)).ok
    rig.endpoint.power_cycle()
    streamed_from = rig.endpoint.bytes_out
    deadline = time.monotonic() + 2.0
    while rig.endpoint.bytes_out < streamed_from + 3 * 27:  # three stream lines, unread by the host
        assert time.monotonic() < deadline, "the gauge did not stream after power-up"
        await asyncio.sleep(0.01)
    discarded = rig.link.stats.discarded_bytes
    ch1, ch2 = await rig.tpg.read_all()
    assert ch1.value == pytest.approx(0.1, rel=1e-2)
    assert ch2.value == pytest.approx(250.0, rel=1e-4)
    assert rig.link.stats.discarded_bytes > discarded  # the stream was there, and was flushed
    before = rig.endpoint.bytes_out  # and the stream has stopped again
    await asyncio.sleep(0.1)
    assert rig.endpoint.bytes_out == before


async def test_paced_line_at_9600_baud() -> None:
    pressures = [3e-4, 42.0]
    state = Tpg36xState([TpgChannel(PKR, lambda: pressures[0]), TpgChannel(CMR_10MBAR, lambda: pressures[1])])
    endpoint = PtyEndpoint(
        "tpg-paced",
        lambda: Tpg36xSession(state, stream_interval_s=0.05),
        SerialSettings(9600),
        pace=True,
        latency_s=0.005,
    )
    await endpoint.start()
    link = Link(endpoint.url)
    try:
        tpg = Tpg36x(link, name="tpg-paced", timeout_s=0.3)
        await asyncio.sleep(0.2)
        polled = await tpg.poll()
        assert polled["pressure_ch1"].value == pytest.approx(3e-4, rel=1e-2)
        assert polled["pressure_ch2"].value == pytest.approx(42.0, rel=1e-4)
    finally:
        await link.close()
        await endpoint.stop()


async def test_over_tcp_like_the_ethernet_port() -> None:
    state = Tpg36xState([TpgChannel(CMR_10MBAR, lambda: 12.5)], unit=PressureUnit.TORR)
    endpoint = TcpEndpoint("tpg-tcp", lambda: Tpg36xSession(state))
    await endpoint.start()
    link = Link(endpoint.url)
    try:
        tpg = Tpg36x(link, name="tpg-tcp", channels=1)
        assert (await tpg.poll())["pressure_ch1"].value == pytest.approx(12.5, rel=1e-4)
    finally:
        await link.close()
        await endpoint.stop()
