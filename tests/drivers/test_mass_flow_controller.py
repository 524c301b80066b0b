"""Alicat ASCII: golden lines of devices.md §6, both codec roles, and the driver against its simulator
on a real pty at 19200 8N1, with each fault turning into the right typed error and then recovering."""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from drivers.codec import NEED_DATA
from drivers.errors import ConfigError, DeviceRefused, DeviceTimeout, ProtocolError
from drivers.link import Link
from drivers.mass_flow_controller import (
    GASES,
    PSI_PA,
    CommandDecoder,
    DataFrame,
    DataFrameDecoder,
    Instruction,
    MassFlowController,
    Poll,
    ReadRegister,
    Refusal,
    RegisterDecoder,
    RegisterValue,
    SetSetpoint,
    UnknownCommand,
    Verb,
    WriteRegister,
    encode_data_frame,
    encode_poll,
    encode_refusal,
    encode_register_read,
    encode_register_reply,
    encode_register_write,
    encode_setpoint,
    gas_index,
    parse_command,
    parse_data_frame,
)
from drivers.reading import Quality
from drivers.transport import SerialSettings
from sim_hardware.devices.mass_flow_controller import MassFlowControllerSession, MfcBackend
from sim_hardware.endpoint import PtyEndpoint, WireFaults

GOLDEN_POLL_REPLY = b"A +014.70 +025.00 +002.004 +002.004 +002.004 N2\r"
# a 10v20 MC-500SCCM-D's poll, captured on hardware (alicatlib tests/fixtures/responses/poll_mc.txt)
CAPTURED_POLL_REPLY = b"A +014.62 +021.89 +000.00 +000.00 +078.95     N2\r"
LINE = SerialSettings(19200, 8, "N", 1)
STANDARD_P_PSIA = 14.696
STANDARD_T_K = 298.15


class FirstOrderFlow:
    """A controller's flow loop as a first-order lag toward the setpoint, fed from a gas supply.

    Mass flow relaxes toward the setpoint with time constant `tau_s`, or toward zero once the supply
    runs empty; the body pressure then falls to the downstream (chamber) pressure. Volumetric flow is
    the mass flow at the measured pressure and temperature (standard conditions 25 °C, 14.696 psia).
    """

    def __init__(
        self,
        *,
        full_scale_sccm: float = 100.0,
        tau_s: float = 0.05,
        supply_psia: float = 30.0,
        downstream_psia: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._full_scale_sccm = full_scale_sccm
        self.tau_s = tau_s
        self.supply_psia = supply_psia
        self.downstream_psia = downstream_psia
        self.clock = clock
        self.gas_index = 1
        self.forced_flags: set[str] = set()
        self.temperature_c = 22.5
        self._setpoint = 0.0
        self._supply_empty = False
        self._flow_at_t0 = 0.0
        self._t0 = clock()

    def _target(self) -> float:
        return 0.0 if self._supply_empty else self._setpoint

    def _checkpoint(self) -> None:
        self._flow_at_t0, self._t0 = self.mass_flow_sccm, self.clock()

    @property
    def mass_flow_sccm(self) -> float:
        target = self._target()
        return target + (self._flow_at_t0 - target) * math.exp(-(self.clock() - self._t0) / self.tau_s)

    @property
    def setpoint_sccm(self) -> float:
        return self._setpoint

    @setpoint_sccm.setter
    def setpoint_sccm(self, value: float) -> None:
        self._checkpoint()
        self._setpoint = value

    @property
    def supply_empty(self) -> bool:
        return self._supply_empty

    @supply_empty.setter
    def supply_empty(self, empty: bool) -> None:
        self._checkpoint()
        self._supply_empty = empty

    @property
    def pressure_psia(self) -> float:
        return self.downstream_psia if self._supply_empty else self.supply_psia

    @property
    def volumetric_flow(self) -> float:
        p = max(self.pressure_psia, 0.1)
        return self.mass_flow_sccm * (STANDARD_P_PSIA / p) * ((self.temperature_c + 273.15) / STANDARD_T_K)

    @property
    def full_scale_sccm(self) -> float:
        return self._full_scale_sccm

    @property
    def flags(self) -> set[str]:
        over = {"MOV"} if self.mass_flow_sccm > 1.28 * self._full_scale_sccm else set()
        return over | self.forced_flags


def _backend(model: FirstOrderFlow) -> MfcBackend:
    return model  # checks at type-check time that the test model satisfies the session's protocol


# ---------------------------------------------------------------------------------------------------
# Golden lines and the codec in both roles


def test_golden_host_commands_are_byte_exact() -> None:
    assert encode_poll("A") == b"A\r"
    assert encode_setpoint("A", 10.0) == b"AS10.00\r"
    assert encode_register_read("A", 46) == b"A$$R46\r"
    assert encode_register_write("A", 46, 8) == b"A$$W46=8\r"
    assert encode_refusal() == b"?\r"


def test_gas_table_indices() -> None:
    assert gas_index("Ar") == 1
    assert gas_index("N2") == 8
    assert GASES[:13] == (
        "Air", "Ar", "CH4", "CO", "CO2", "C2H6", "H2", "He", "N2", "N2O", "Ne", "O2", "C3H8",
    )  # fmt: skip
    with pytest.raises(ValueError, match="Xenon"):
        gas_index("Xenon")


def test_golden_poll_reply_decodes_and_reencodes_byte_exact() -> None:
    decoder = DataFrameDecoder("A")
    decoder.feed(GOLDEN_POLL_REPLY)
    frame = decoder.next_frame()
    assert frame == DataFrame("A", 14.70, 25.00, 2.004, 2.004, 2.004, None, "N2")
    assert decoder.next_frame() is NEED_DATA
    decoder.feed(CAPTURED_POLL_REPLY)
    frame = decoder.next_frame()
    assert frame == DataFrame("A", 14.62, 21.89, 0.0, 0.0, 78.95, None, "N2")
    assert isinstance(frame, DataFrame)
    assert encode_data_frame(frame) == CAPTURED_POLL_REPLY  # the device role prints what a unit prints


def test_decoder_reassembles_a_line_fed_byte_by_byte() -> None:
    decoder = DataFrameDecoder("A")
    for i in range(len(GOLDEN_POLL_REPLY) - 1):
        decoder.feed(GOLDEN_POLL_REPLY[i : i + 1])
        assert decoder.next_frame() is NEED_DATA
    decoder.feed(b"\r")
    assert isinstance(decoder.next_frame(), DataFrame)


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("A +014.70 +025.00 +002.004 +002.004 +002.004 N2 MOV", ("MOV",)),
        ("A +014.70 +025.00 +002.004 +002.004 +002.004 Ar POV TOV LCK", ("POV", "TOV", "LCK")),
        ("A  +014.70  +025.00  +002.004  +002.004  +002.004   Ar  EXH", ("EXH",)),
        ("A +014.70 +025.00 +02.004 +02.004 2.004 Air", ()),  # older manual's example: unsigned setpoint
    ],
)
def test_status_tokens(line: str, status: tuple[str, ...]) -> None:
    frame = parse_data_frame(line, "A")
    assert isinstance(frame, DataFrame)
    assert frame.status == status
    assert frame.total_scc is None
    assert frame.setpoint_sccm == pytest.approx(2.004)


def test_totaliser_sits_before_the_gas() -> None:
    line = "A +014.70 +025.00 +002.004 +002.004 +002.004 +0001234.5 Ar HLD"
    frame = parse_data_frame(line, "A", totaliser=True)
    assert isinstance(frame, DataFrame)
    assert (frame.setpoint_sccm, frame.total_scc, frame.gas, frame.status) == (2.004, 1234.5, "Ar", ("HLD",))
    with pytest.raises(ProtocolError, match="expected 5 numbers, got 6"):
        parse_data_frame(line, "A")


def test_meter_frame_has_no_setpoint() -> None:
    frame = parse_data_frame("B +014.70 +025.00 +002.004 +002.004 He", "B", controller=False)
    assert isinstance(frame, DataFrame)
    assert frame.setpoint_sccm is None
    assert frame.gas == "He"


def test_refusal_is_a_value() -> None:
    """Both forms: the primer's bare ``?`` and the unit-id form ``A ?`` units send."""
    decoder = DataFrameDecoder("A")
    decoder.feed(b"?\rA ?\r")
    assert decoder.next_frame() == Refusal()
    assert decoder.next_frame() == Refusal()
    registers = RegisterDecoder("A")
    registers.feed(b"?\rA ?\r")
    assert registers.next_frame() == Refusal()
    assert registers.next_frame() == Refusal()
    assert encode_refusal("A") == b"A ?\r"
    with pytest.raises(ProtocolError, match="unit 'B'"):
        parse_data_frame("B ?", "A")  # another unit's refusal is not ours


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("B +014.70 +025.00 +002.004 +002.004 +002.004 N2", "unit 'B'"),
        ("A +014.70 +025.00 +002.004 +002.004 N2", "expected 5 numbers"),
        ('A +014.70 +025.00 +002.004 +00".004 +002.004 N2', "not a number"),
        ("A +014.70 +025.00 +002.004 +002.004 +002.004", "no gas"),
        ("A +014.70 +025.00 +002.004 +002.004 +002.004 N2 MOV 12", "not a status"),
        ("", "unit ''"),
    ],
)
def test_malformed_data_lines_are_protocol_errors(line: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_data_frame(line, "A")


def test_no_single_bit_flip_silently_changes_a_value() -> None:
    """No checksum on this protocol: strict fields and an exact field count catch a corrupted digit.

    The one flip that gets through is a trailing 0 turned into a space (``+014.70`` -> ``+014.7``),
    which leaves the value unchanged.
    """
    line = GOLDEN_POLL_REPLY.decode().rstrip("\r")
    original = parse_data_frame(line, "A")
    for i, ch in enumerate(line[: line.rindex(" ")]):
        flipped = line[:i] + chr(ord(ch) ^ 0x10) + line[i + 1 :]
        try:
            frame = parse_data_frame(flipped, "A")
        except ProtocolError:
            continue
        assert frame == original, flipped
        assert ch == "0", flipped
        assert flipped[i + 1] == " ", flipped


def test_non_printable_and_runaway_lines_are_rejected() -> None:
    decoder = DataFrameDecoder("A")
    decoder.feed(b"A \x8f+014.70\r")
    with pytest.raises(ProtocolError, match="non-printable"):
        decoder.next_frame()
    decoder.feed(b"A" * 300)
    with pytest.raises(ProtocolError, match="no CR"):
        decoder.next_frame()


def test_register_reply_round_trip_and_unit_check() -> None:
    reply = encode_register_reply(RegisterValue("A", 46, 8))
    assert reply == b"A 046 = 8\r"
    decoder = RegisterDecoder("A")
    decoder.feed(reply)
    assert decoder.next_frame() == RegisterValue("A", 46, 8)
    decoder.feed(b"A   046=   264\r")  # other firmware spacing; upper bits beyond the gas index
    assert decoder.next_frame() == RegisterValue("A", 46, 264)
    decoder = RegisterDecoder("B")
    decoder.feed(reply)
    with pytest.raises(ProtocolError, match="expected 'B'"):
        decoder.next_frame()


def test_device_role_parses_what_the_host_encodes() -> None:
    decoder = CommandDecoder()
    decoder.feed(
        encode_poll("A")
        + encode_setpoint("C", 12.5)
        + encode_register_read("A", 46)
        + encode_register_write("Z", 46, 1)
        + b"AR122\r"
        + b"AVE\r"
        + b"#hello\r"
    )
    commands = []
    while (command := decoder.next_frame()) is not NEED_DATA:
        commands.append(command)
    assert commands == [
        Poll("A"),
        SetSetpoint("C", 12.5),
        ReadRegister("A", 46),
        WriteRegister("Z", 46, 1),
        ReadRegister("A", 122),
        Instruction("A", Verb.FIRMWARE),
        UnknownCommand("", "#hello"),
    ]
    assert parse_command("hello") == UnknownCommand("H", "ello")  # unit H: letter case does not matter
    assert parse_command("a$$r46") == ReadRegister("A", 46)  # not case-sensitive
    assert parse_command("aS 12.5") == SetSetpoint("A", 12.5)
    assert parse_command("A??d*") == Instruction("A", Verb.DATA_FRAME_FORMAT)
    assert parse_command("AG 8") == Instruction("A", Verb.SELECT_GAS, "8")
    assert parse_command("AV") == Instruction("A", Verb.TARE_FLOW)
    assert parse_command("ALS 10.0") == Instruction("A", Verb.LOOP_SETPOINT, "10.0")
    assert parse_command("AS") == UnknownCommand("A", "S")
    assert parse_command("A$$R46=3") == UnknownCommand("A", "$$R46=3")


@pytest.mark.parametrize(
    "frame",
    [
        DataFrame("A", 14.7, 25.0, 2.0, 2.01, 2.0, None, "N2"),
        DataFrame("Q", 29.95, -5.5, 0.0, -0.12, 50.0, 12345.6, "Ar", ("MOV", "LCK")),
        DataFrame("A", 0.01, 21.12, 1234.57, 99.99, 100.0, None, "n-C4H10"),
    ],
)
def test_data_frame_round_trip(frame: DataFrame) -> None:
    decoder = DataFrameDecoder(frame.unit_id, totaliser=frame.total_scc is not None)
    decoder.feed(encode_data_frame(frame))
    assert decoder.next_frame() == frame


# ---------------------------------------------------------------------------------------------------
# The session, sans I/O


def test_session_answers_only_its_own_unit_and_refuses_unknown_commands() -> None:
    model = FirstOrderFlow()
    session = MassFlowControllerSession("B", _backend(model))
    assert session.receive(b"A\r") == b""
    assert session.receive(b"BXX\r") == b"B ?\r"
    assert session.receive(b"BS1000\r") == b"B ?\r"  # beyond full scale
    assert session.receive(b"B$$R999\r") == b"B ?\r"
    assert session.receive(b"B$$W46=200\r") == b"B ?\r"  # past the gas table, not a mix slot
    assert session.receive(b"BR122\r") == b"B 122 = 37\r"  # loop on mass flow (0x25)
    reply = session.receive(b"B")
    assert reply == b""  # no CR yet
    frame = parse_data_frame(session.receive(b"\r").decode().rstrip("\r"), "B")
    assert isinstance(frame, DataFrame)
    assert frame.gas == "Ar"


# ---------------------------------------------------------------------------------------------------
# Driver against the simulator on a real pty


@dataclass
class Rig:
    model: FirstOrderFlow
    endpoint: PtyEndpoint
    link: Link
    mfc: MassFlowController

    @property
    def session(self) -> MassFlowControllerSession:
        session = self.endpoint.session
        assert isinstance(session, MassFlowControllerSession)
        return session


@asynccontextmanager
async def running_rig(*, pace: bool = False, faults: WireFaults | None = None) -> AsyncIterator[Rig]:
    model = FirstOrderFlow()
    endpoint = PtyEndpoint(
        "mfc", lambda: MassFlowControllerSession("A", model), LINE, pace=pace, faults=faults
    )
    await endpoint.start()
    link = Link(endpoint.url, name="mfc-link")
    try:
        yield Rig(model, endpoint, link, MassFlowController(link, name="ar_mfc", timeout_s=0.3))
    finally:
        await link.close()
        await endpoint.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as r:
        yield r


async def _eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 3.0) -> None:
    """Wait for a condition of the simulated physics; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_poll_reports_si_readings(rig: Rig) -> None:
    readings = await rig.mfc.poll()
    assert set(readings) == {"mass_flow", "setpoint", "pressure", "temperature", "status"}
    assert readings["pressure"].unit == "Pa"
    assert readings["pressure"].value == pytest.approx(30.0 * PSI_PA, rel=1e-4)
    assert readings["temperature"].value == pytest.approx(22.5)
    assert readings["temperature"].unit == "degC"
    assert readings["mass_flow"].unit == "sccm"
    assert all(r.ok for r in readings.values())


async def test_setpoint_is_echoed_and_flow_follows(rig: Rig) -> None:
    frame = await rig.mfc.set_flow_sccm(40.0)
    assert frame.setpoint_sccm == pytest.approx(40.0)
    assert rig.model.setpoint_sccm == pytest.approx(40.0)

    async def settled() -> bool:
        readings = await rig.mfc.poll()
        return abs(readings["mass_flow"].value - 40.0) < 0.05

    await _eventually(settled)
    readings = await rig.mfc.poll()
    assert readings["setpoint"].value == pytest.approx(40.0)


async def test_setpoint_beyond_full_scale_is_refused_before_any_io(rig: Rig) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100 sccm \(full scale\)"):
        await rig.mfc.set_flow_sccm(150.0)
    with pytest.raises(ValueError, match="full scale"):
        await rig.mfc.set_flow_sccm(-1.0)
    assert rig.endpoint.bytes_in == 0


async def test_gas_selection_round_trip(rig: Rig) -> None:
    assert await rig.mfc.read_gas() == "Ar"
    await rig.mfc.select_gas("N2")
    assert rig.model.gas_index == 8
    assert (await rig.mfc.read()).gas == "N2"
    await rig.mfc.select_gas("Ar")
    assert await rig.mfc.read_gas() == "Ar"
    with pytest.raises(ValueError, match="unknown gas"):
        await rig.mfc.select_gas("argon")


async def test_over_range_flags_mark_only_their_quantity(rig: Rig) -> None:
    rig.model.forced_flags = {"POV", "LCK"}
    readings = await rig.mfc.poll()
    assert readings["pressure"].quality is Quality.OVER_RANGE
    assert readings["mass_flow"].quality is Quality.OK
    rig.model.forced_flags = {"MOV", "TOV"}
    readings = await rig.mfc.poll()
    assert readings["mass_flow"].quality is Quality.OVER_RANGE
    assert readings["temperature"].quality is Quality.OVER_RANGE
    assert readings["pressure"].quality is Quality.OK


async def test_empty_supply_shows_as_no_flow_and_lost_inlet_pressure(rig: Rig) -> None:
    await rig.mfc.set_flow_sccm(20.0)
    await _eventually(lambda: abs(rig.model.mass_flow_sccm - 20.0) < 0.05)
    rig.model.supply_empty = True

    async def starved() -> bool:
        return (await rig.mfc.poll())["mass_flow"].value < 0.01

    await _eventually(starved)
    readings = await rig.mfc.poll()
    assert readings["setpoint"].value == pytest.approx(20.0)  # the unit still asks for 20
    assert readings["pressure"].value < 100.0


async def test_refusal_then_recovery(rig: Rig) -> None:
    rig.session.refuse_next = 1
    with pytest.raises(DeviceRefused) as info:
        await rig.mfc.read()
    assert info.value.code == "?"
    assert info.value.device == "ar_mfc"
    assert (await rig.mfc.read()).unit_id == "A"


async def test_setpoint_not_taken_is_a_protocol_error(rig: Rig) -> None:
    rig.session.ignore_setpoints = True
    with pytest.raises(ProtocolError, match=r"sent setpoint 30 sccm, unit reports 0\.0"):
        await rig.mfc.set_flow_sccm(30.0)
    rig.session.ignore_setpoints = False
    assert (await rig.mfc.set_flow_sccm(30.0)).setpoint_sccm == pytest.approx(30.0)


async def test_reply_from_another_unit_is_a_protocol_error(rig: Rig) -> None:
    rig.session.reply_as_unit = "B"
    with pytest.raises(ProtocolError, match="unit 'B'"):
        await rig.mfc.read()
    with pytest.raises(ProtocolError, match="unit 'B'"):
        await rig.mfc.read_gas()
    rig.session.reply_as_unit = None
    assert (await rig.mfc.read()).unit_id == "A"


async def test_silent_unit_times_out_then_recovers(rig: Rig) -> None:
    rig.endpoint.faults.silent = True
    with pytest.raises(DeviceTimeout):
        await rig.mfc.read()
    rig.endpoint.faults.silent = False
    assert (await rig.mfc.read()).gas == "Ar"


def _seed_corrupting(predicate: Callable[[int], bool], length: int) -> int:
    """A seed for the wire fault's RNG whose corrupted byte index satisfies `predicate`."""
    return next(s for s in range(1000) if predicate(random.Random(s).randrange(length)))


async def test_corrupted_reply_is_a_protocol_error_then_recovers() -> None:
    reply = encode_data_frame(DataFrame("A", 30.0, 22.5, 0.0, 0.0, 0.0, None, "Ar"))
    seed = _seed_corrupting(lambda i: reply[i : i + 1] in b"+.123456789", len(reply))
    faults = WireFaults(corrupt_replies=1, rng=random.Random(seed))
    async with running_rig(faults=faults) as rig:
        with pytest.raises(ProtocolError):
            await rig.mfc.read()
        assert rig.link.stats.protocol_errors == 1
        assert (await rig.mfc.read()).unit_id == "A"


async def test_stuck_readings_hold_while_the_setpoint_moves(rig: Rig) -> None:
    rig.session.hold_readings()
    before = await rig.mfc.read()
    await rig.mfc.set_flow_sccm(60.0)
    await _eventually(lambda: rig.model.mass_flow_sccm > 59.0)
    stuck = await rig.mfc.read()
    assert stuck.mass_flow_sccm == before.mass_flow_sccm
    assert stuck.setpoint_sccm == pytest.approx(60.0)
    rig.session.release_readings()
    assert (await rig.mfc.read()).mass_flow_sccm > 59.0


async def test_two_units_share_one_bus() -> None:
    """RS-485: both sessions hear every line; only the addressed one answers."""
    models = {"A": FirstOrderFlow(), "B": FirstOrderFlow(full_scale_sccm=20.0)}

    class Bus:
        def __init__(self) -> None:
            self.units = [MassFlowControllerSession(u, m) for u, m in models.items()]

        def receive(self, data: bytes) -> bytes:
            return b"".join(unit.receive(data) for unit in self.units)

    endpoint = PtyEndpoint("bus", Bus, LINE)
    await endpoint.start()
    link = Link(endpoint.url)
    try:
        a = MassFlowController(link, name="ar", unit_id="A")
        b = MassFlowController(link, name="o2", unit_id="B", full_scale_sccm=20.0)
        await asyncio.gather(
            a.set_flow_sccm(50.0), b.set_flow_sccm(5.0), a.select_gas("Ar"), b.select_gas("O2")
        )
        assert models["A"].setpoint_sccm == pytest.approx(50.0)
        assert models["B"].setpoint_sccm == pytest.approx(5.0)
        assert (await b.read()).gas == "O2"
        with pytest.raises(ValueError, match=r"0\.\.20 sccm"):
            await b.set_flow_sccm(25.0)
    finally:
        await link.close()
        await endpoint.stop()


async def test_paced_line_at_19200() -> None:
    async with running_rig(pace=True) as rig:
        await rig.mfc.set_flow_sccm(10.0)
        readings = await rig.mfc.poll()
        assert readings["setpoint"].value == pytest.approx(10.0)
        await rig.mfc.select_gas("N2")
        assert await rig.mfc.read_gas() == "N2"


def test_bad_configuration_is_a_config_error() -> None:
    link = Link("serial:///dev/null")
    with pytest.raises(ConfigError, match="one letter"):
        MassFlowController(link, name="x", unit_id="a")
    with pytest.raises(ConfigError, match="full_scale_sccm"):
        MassFlowController(link, name="x", full_scale_sccm=0.0)
