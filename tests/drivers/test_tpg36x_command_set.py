"""The simulated TPG 36x against its manual: every mnemonic of the list, and settings that change readings.

Golden exchanges are the manual's own (BG 5510 BEN / A: §1.14 "Example", §1.13.1 AYT, §1.12.5 HDW,
§1.12.9 PNR, §1.12.8 MAC prefix); the rest checks the behaviour §1.5-§1.13 describe.
"""

from __future__ import annotations

import pytest

from drivers.tpg36x import ENQ, MeasurementStatus, PressureUnit
from drivers.transport import SerialSettings
from sim_hardware.devices.tpg36x import (
    CMR_10MBAR,
    PKR,
    TPR,
    Tpg36xSession,
    Tpg36xState,
    TpgChannel,
)
from sim_hardware.endpoint import PtyEndpoint

ACK, NAK = b"\x06\r\n", b"\x15\r\n"

# §1.4: the complete mnemonic list of the manual
MANUAL_MNEMONICS = [
    "ADC", "AYT", "BAL", "BAU", "CAL", "CF1", "CF2", "COM", "DAT", "DCB", "DCC", "DCD", "DCS", "DGS", "DIS",
    "EEP", "EPR", "ERA", "ERR", "ETH", "EVA", "FIL", "FMT", "FSR", "GAS", "HDW", "IOT", "LCM", "LNG", "LOC",
    "MAC", "NAD", "OFC", "OFD", "PNR", "PR1", "PR2", "PRE", "PRO", "PRX", "PUC", "RES", "RHR", "SAV", "SC1",
    "SC2", "SCM", "SEN", "SP1", "SP2", "SP3", "SP4", "SPS", "TAI", "TID", "TIM", "TKB", "TLC", "TMP", "UNI",
    "WDT",
]  # fmt: skip
USB_STICK_GROUP = {"DAT", "LCM", "TIM", "SCM"}  # §1.10/§1.11: only with a memory stick plugged in


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ask(session: Tpg36xSession, line: str) -> tuple[bytes, bytes]:
    handshake = session.receive(line.encode() + b"\r\n")
    return handshake, session.receive(ENQ)


def example_state(clock: Clock | None = None) -> Tpg36xState:
    """The §1.14 example unit: a Pirani/capacitance head and a linear head."""
    return Tpg36xState(
        [TpgChannel(TPR, lambda: 50.0), TpgChannel(CMR_10MBAR, lambda: 500.0)], clock=clock or Clock()
    )


# --- the manual's examples ------------------------------------------------------------------------


def test_the_manuals_example_session() -> None:
    """§1.14 verbatim: TID, SEN, SP1 read and write, the FOL syntax error, FIL."""
    session = Tpg36xSession(example_state())
    session.receive(b"SP1,2,1.0E-9,9.0E-7\r\n")  # the example's SP1 reply needs these thresholds
    assert ask(session, "TID") == (ACK, b"TPR/PCR,CMR\r\n")
    assert ask(session, "SEN") == (ACK, b"0,0\r\n")
    assert ask(session, "SP1") == (ACK, b"2,1.0000E-09,9.0000E-07\r\n")
    assert session.receive(b"SP1,2,6.80E-3,9.80E-3\r\n") == ACK
    assert ask(session, "FOL,1,2") == (NAK, b"0001\r\n")
    assert ask(session, "FIL,1,2") == (ACK, b"1,2\r\n")


def test_identity_replies_follow_the_manuals_examples() -> None:
    session = Tpg36xSession(example_state())
    assert ask(session, "AYT") == (ACK, b"TPG362,PTG28290,44990000,010100,010100\r\n")
    assert ask(session, "PNR") == (ACK, b"010100\r\n")
    assert ask(session, "HDW") == (ACK, b"010100\r\n")
    _, mac = ask(session, "MAC")
    assert mac.startswith(b"00-A0-41-")
    assert len(mac.strip()) == 17


@pytest.mark.parametrize("mnemonic", MANUAL_MNEMONICS)
def test_every_listed_mnemonic_is_understood(mnemonic: str) -> None:
    session = Tpg36xSession(example_state())
    handshake, data = ask(session, mnemonic)
    if mnemonic in USB_STICK_GROUP:
        assert (handshake, data) == (NAK, b"0100\r\n")  # no memory stick in the simulated unit
    else:
        assert handshake == ACK, data
        assert data.endswith(b"\r\n")
        assert ask(session, "ERR")[1] == b"0000\r\n"  # SAV has no data: its ENQ read the (empty) word


@pytest.mark.parametrize("mnemonic", ["FOL", "XYZ", "PR7", "SP5", "CF3", "ABC"])
def test_unlisted_mnemonics_are_syntax_errors(mnemonic: str) -> None:
    session = Tpg36xSession(example_state())
    assert ask(session, mnemonic) == (NAK, b"0001\r\n")


@pytest.mark.parametrize(
    "line",
    [
        "FIL,1",  # channel-specific: one value per channel (§1)
        "FIL,1,4",
        "CAL,0.05,1",
        "CAL,1,10.5",
        "BAU,5",
        "NAD,0",
        "NAD,25",
        "BAL,101",
        "DCD,5,0",
        "ETH,0,300.1.1.1,255.255.255.0,1.1.1.1",
        "IOT,1,80",
        "SC1,5,0,1E-2,1E-1",
        "SAV,2",
        "OFD,1E-3",
    ],
)
def test_out_of_range_parameters_are_inadmissible(line: str) -> None:
    session = Tpg36xSession(example_state())
    assert ask(session, line) == (NAK, b"0010\r\n")


# --- settings the unit keeps change what it reports ---------------------------------------------


def test_calibration_factor_multiplies_the_reading() -> None:
    session = Tpg36xSession(example_state())
    assert ask(session, "PR1") == (ACK, b"0,5.0000E-01\r\n")  # 50 Pa in hPa, log head: two decimals
    assert ask(session, "CAL,2.0,1.000") == (ACK, b"2.000,1.000\r\n")
    assert ask(session, "PR1") == (ACK, b"0,1.0000E+00\r\n")
    assert ask(session, "CF2,0.5") == (ACK, b"2.000,0.500\r\n")
    assert ask(session, "PR2") == (ACK, b"0,2.5000E+00\r\n")


def test_unit_changes_readings_and_thresholds() -> None:
    session = Tpg36xSession(example_state())
    session.receive(b"SP2,3,1.0E0,2.0E0\r\n")  # hPa
    assert ask(session, "UNI,2") == (ACK, b"2\r\n")
    assert ask(session, "PR2") == (ACK, b"0,5.0000E+02\r\n")
    assert ask(session, "SP2") == (ACK, b"3,1.0000E+02,2.0000E+02\r\n")


def test_filter_smooths_a_step_with_its_time_constant() -> None:
    clock, pressure = Clock(), [1000.0]
    state = Tpg36xState([TpgChannel(CMR_10MBAR, lambda: pressure[0])], clock=clock)
    session = Tpg36xSession(state)
    assert ask(session, "FIL,2") == (ACK, b"2\r\n")  # normal
    assert ask(session, "PR1") == (ACK, b"0,1.0000E+01\r\n")
    pressure[0] = 500.0
    clock.now = 1.0  # one time constant of "normal" [U]
    _, line = ask(session, "PR1")
    shown = float(line.decode().split(",")[1]) * 100
    assert shown == pytest.approx(1000.0 - 500.0 * (1 - 2.718281828**-1), rel=1e-3)
    session.receive(b"FIL,0\r\n")
    assert ask(session, "PR1") == (ACK, b"0,5.0000E+00\r\n")


def test_full_scale_of_a_linear_head_scales_its_reading_and_factory_settings_restore_1000_hpa() -> None:
    session = Tpg36xSession(example_state())
    assert ask(session, "FSR") == (ACK, b"5,3\r\n")  # channel 2 commissioned for its 10 hPa head
    assert ask(session, "PR2") == (ACK, b"0,5.0000E+00\r\n")
    assert session.receive(b"SAV,0\r\n") == ACK  # factory settings: every FSR back to 1000 hPa
    assert ask(session, "FSR") == (ACK, b"5,5\r\n")
    assert ask(session, "PR2") == (ACK, b"0,5.0000E+02\r\n")  # the 10 hPa head now reads 100x high


def test_offset_correction_takes_the_present_reading_as_zero() -> None:
    pressure = [0.5]
    session = Tpg36xSession(Tpg36xState([TpgChannel(CMR_10MBAR, lambda: pressure[0])], clock=Clock()))
    assert ask(session, "OFC,2") == (ACK, b"1\r\n")
    assert ask(session, "OFD") == (ACK, b"5.0000E-03\r\n")
    pressure[0] = 2.5
    assert ask(session, "PR1") == (ACK, b"0,2.0000E-02\r\n")
    assert ask(session, "OFC,0") == (ACK, b"0\r\n")
    assert ask(session, "PR1") == (ACK, b"0,2.5000E-02\r\n")


def test_pirani_range_extension_lowers_the_tpr_range() -> None:
    session = Tpg36xSession(Tpg36xState([TpgChannel(TPR, lambda: 1e-2)], clock=Clock()))
    assert ask(session, "PR1") == (ACK, b"1,5.0000E-04\r\n")
    assert ask(session, "PRE,1") == (ACK, b"1\r\n")
    assert ask(session, "PR1") == (ACK, b"0,1.0000E-04\r\n")


def test_degas_runs_for_three_minutes() -> None:
    clock = Clock()
    session = Tpg36xSession(Tpg36xState([TpgChannel(PKR, lambda: 1e-4)] * 2, clock=clock))
    assert ask(session, "DGS,1,0") == (ACK, b"1,0\r\n")
    clock.now = 179.0
    assert ask(session, "DGS") == (ACK, b"1,0\r\n")
    clock.now = 181.0
    assert ask(session, "DGS") == (ACK, b"0,0\r\n")


def test_operating_hours_count_on_the_units_clock() -> None:
    clock = Clock()
    session = Tpg36xSession(Tpg36xState([TpgChannel(PKR, lambda: 1e-4)], clock=clock, operating_hours=24))
    assert ask(session, "RHR") == (ACK, b"24\r\n")
    clock.now = 2 * 3600.0
    assert ask(session, "RHR") == (ACK, b"26\r\n")


def test_single_channel_unit_takes_one_value_and_numbers_its_gauge_errors_11_and_12() -> None:
    channel = TpgChannel(PKR, lambda: 1e-4)
    session = Tpg36xSession(Tpg36xState([channel], model="TPG361", clock=Clock()))
    assert ask(session, "FIL,1") == (ACK, b"1\r\n")
    assert ask(session, "CF2,1.0") == (NAK, b"0100\r\n")
    assert ask(session, "ERA,3") == (NAK, b"0010\r\n")  # 3 is TPG 362 only
    channel.forced_status = MeasurementStatus.IDENTIFICATION_ERROR
    assert ask(session, "RES") == (ACK, b"12\r\n")


def test_settings_survive_a_new_session_and_ethernet_io_and_gauge_control_round_trip() -> None:
    state = example_state()
    session = Tpg36xSession(state)
    assert ask(session, "ETH,1,10.0.0.7,255.255.0.0,10.0.0.1") == (
        ACK,
        b"1,010.000.000.007,255.255.000.000,010.000.000.001\r\n",
    )
    assert ask(session, "IOT,1,4F") == (ACK, b"1,4F\r\n")
    assert ask(session, "SC1,1,2,1.0E-2,5.0E-2") == (ACK, b"1,2,1.00E-02,5.00E-02\r\n")
    assert ask(session, "NAD,7") == (ACK, b"7\r\n")
    again = Tpg36xSession(state)  # a power cycle: a new session on the same front-panel settings
    assert ask(again, "NAD") == (ACK, b"7\r\n")
    assert again.receive(b"SAV,1\r\n") == ACK
    assert again.receive(ENQ) == b"0000\r\n"  # SAV has no data: ENQ finds no request


def test_unit_identification_test_replies() -> None:
    session = Tpg36xSession(Tpg36xState([TpgChannel(PKR, lambda: 1e-1), TpgChannel(PKR, lambda: 1.0)]))
    _, adc = ask(session, "ADC")
    volts = [float(v) for v in adc.decode().strip().split(",")]
    assert volts[1] - volts[0] == pytest.approx(1 / 1.667, rel=1e-3)  # one decade of the PKR law
    assert ask(session, "EEP") == (ACK, b"0000\r\n")
    assert ask(session, "TKB") == (ACK, b"0000\r\n")
    assert ask(session, "TMP") == (ACK, b"31\r\n")


def test_baud_rate_setting_moves_the_paced_line_at_once() -> None:
    state = example_state()
    endpoint = PtyEndpoint("tpg", lambda: Tpg36xSession(state), SerialSettings(9600), pace=True)
    assert endpoint.char_time_s == pytest.approx(10 / 9600)
    assert endpoint.session.receive(b"BAU,4\r\n") == ACK  # the ACK itself leaves at 115200 (§1.9.2)
    assert endpoint.char_time_s == pytest.approx(10 / 115200)
    state.commission_baudrate(19200)
    assert ask(Tpg36xSession(state), "BAU")[1] == b"1\r\n"


def test_pressure_unit_volt_shows_the_analog_signal() -> None:
    session = Tpg36xSession(Tpg36xState([TpgChannel(CMR_10MBAR, lambda: 500.0)], unit=PressureUnit.VOLT))
    assert ask(session, "PR1") == (ACK, b"0,5.0000E+00\r\n")
