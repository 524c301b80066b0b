"""The simulated Alicat beyond polling, against replies captured from a real unit.

Golden lines are hardware captures of a 10v20.0-R24 MC-500SCCM-D kept in alicatlib's test fixtures
(tests/fixtures/responses/{dataframe_format_mc,gas_list_mc,setpoint_query_mc,loop_control_variable_mc,
ve_v10,manufacturing_info_mc}.txt): where our unit differs (model, serial, dates) the shape is checked,
elsewhere the bytes.
"""

from __future__ import annotations

import re

import pytest

from drivers.errors import DeviceRefused, ProtocolError
from drivers.link import Link
from drivers.mass_flow_controller import (
    ManufacturingInfoDecoder,
    MassFlowController,
    Refusal,
    manufacturing_labels,
    parse_data_frame,
)
from drivers.transport import SerialSettings
from sim_hardware.devices.mass_flow_controller import MassFlowControllerSession
from sim_hardware.endpoint import PtyEndpoint
from tests.drivers.test_mass_flow_controller import FirstOrderFlow, _backend

CAPTURED_DATA_FRAME_FORMAT = """\
A D00 ID_ NAME______________________ TYPE_______ WIDTH NOTES___________________
A D01 700 Unit ID                    string          1
A D02 002 Abs Press                  s decimal     7/2 010 02 PSIA
A D03 003 Flow Temp                  s decimal     7/2 002 02 `C
A D04 004 Volu Flow                  s decimal     7/2 012 02 CCM
A D05 005 Mass Flow                  s decimal     7/2 012 02 SCCM
A D06 037 Mass Flow Setpt            s decimal     7/2 012 02 SCCM
A D07 703 Gas                        string          6
A D08 701 *Error                     string          3 ADC
A D09 702 *Status                    string          3 OPL
A D10 702 *Status                    string          3 POV
A D11 702 *Status                    string          3 P2O
A D12 702 *Status                    string          3 TOV
A D13 702 *Status                    string          3 VOV
A D14 702 *Status                    string          3 MOV
A D15 702 *Status                    string          3 TMF
A D16 702 *Status                    string          3 OVR
A D17 702 *Status                    string          3 COM
A D18 702 *Status                    string          3 HLD
A D19 702 *Status                    string          3 EXH
A D20 702 *Status                    string          3 GTA
A D21 702 *Status                    string          3 LCK
"""
CAPTURED_GAS_LIST_HEAD = [
    "A G00      Air",
    "A G01       Ar",
    "A G02      CH4",
    "A G03       CO",
    "A G04      CO2",
    "A G05     C2H6",
    "A G06       H2",
    "A G07       He",
    "A G08       N2",
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def session(clock: Clock | None = None) -> tuple[MassFlowControllerSession, FirstOrderFlow]:
    model = FirstOrderFlow(clock=clock or Clock())
    return MassFlowControllerSession("A", _backend(model)), model


def lines(s: MassFlowControllerSession, command: bytes) -> list[str]:
    return s.receive(command + b"\r").decode().split("\r")[:-1]


def test_data_frame_description_is_the_captured_table() -> None:
    s, _ = session()
    assert lines(s, b"A??D*") == CAPTURED_DATA_FRAME_FORMAT.splitlines()


def test_gas_list_rows_are_the_captured_ones() -> None:
    s, _ = session()
    rows = lines(s, b"A??G*")
    assert rows[:9] == CAPTURED_GAS_LIST_HEAD
    assert len(rows) == 30


def test_firmware_and_manufacturing_info_have_the_captured_shape() -> None:
    s, _ = session()
    (ve,) = lines(s, b"AVE")
    assert re.fullmatch(r"A   \d+v\d\d\.\d-R\d\d [A-Z][a-z]{2} [ \d]\d \d{4},\d\d:\d\d:\d\d", ve), ve
    info = lines(s, b"a??m*")  # commands are not case-sensitive
    assert [line[:6] for line in info] == [f"A  M{n:02d}" for n in range(10)]
    assert info[0] == "A  M00 ALICAT SCIENTIFIC"
    assert info[4] == "A  M04 Model Number MC-100SCCM-D"
    assert info[9].startswith("A  M09 Software Revision 10v")


def test_loop_setpoint_and_loop_variable_replies() -> None:
    s, _ = session()
    assert lines(s, b"ALS 78.94") == ["A +078.94 +078.94 12 SCCM"]
    assert lines(s, b"ALV") == ["A 37"]
    assert lines(s, b"ALV 36") == ["A 36"]
    assert lines(s, b"AR122") == ["A 122 = 36"]
    assert lines(s, b"ALV 34") == ["A ?"]  # a flow controller has no pressure loop


def test_lock_shows_lck_and_hold_shows_hld_in_the_order_of_the_table() -> None:
    s, model = session()
    frame = parse_data_frame(lines(s, b"A$$L")[0], "A")
    assert frame.status == ("LCK",)  # type: ignore[union-attr]
    model.forced_flags = {"MOV"}
    s.receive(b"AS10\r")
    frame = parse_data_frame(lines(s, b"A$$H")[0], "A")
    assert frame.status == ("MOV", "HLD", "LCK")  # type: ignore[union-attr]
    frame = parse_data_frame(lines(s, b"A$$U")[0], "A")
    assert frame.status == ("MOV", "HLD")  # type: ignore[union-attr]
    frame = parse_data_frame(lines(s, b"A$$C")[0], "A")
    assert frame.status == ("MOV",)  # type: ignore[union-attr]


def test_hold_keeps_the_valve_and_cancel_applies_the_waiting_setpoint() -> None:
    s, model = session()
    s.receive(b"A$$H\r")
    held = model.setpoint_sccm
    s.receive(b"AS42\r")
    assert model.setpoint_sccm == held
    s.receive(b"A$$C\r")
    assert model.setpoint_sccm == 42.0


def test_tare_flow_zeroes_the_present_flow_and_tare_pressure_reads_the_barometer() -> None:
    clock = Clock()
    s, _ = session(clock)
    s.receive(b"AS10\r")
    clock.now = 10.0
    frame = parse_data_frame(lines(s, b"A$$V")[0], "A")
    assert frame.mass_flow_sccm == 0.0  # type: ignore[union-attr]
    s.receive(b"AS20\r")
    clock.now = 20.0
    frame = parse_data_frame(lines(s, b"A")[0], "A")
    assert frame.mass_flow_sccm == pytest.approx(10.0)  # type: ignore[union-attr]
    frame = parse_data_frame(lines(s, b"APC")[0], "A")
    assert frame.pressure_psia == pytest.approx(14.70)  # type: ignore[union-attr]


def test_legacy_gas_select_answers_a_data_frame() -> None:
    s, _ = session()
    frame = parse_data_frame(lines(s, b"AG 8")[0], "A")
    assert frame.gas == "N2"  # type: ignore[union-attr]
    assert lines(s, b"AG 200") == ["A ?"]


@pytest.mark.parametrize("command", [b"AT", b"AGM MIX 236 50 1 50 8", b"A@=@", b"ADV 10 2", b"ASR", b"AVE 2"])
def test_commands_of_options_the_unit_lacks_are_refused(command: bytes) -> None:
    s, _ = session()
    assert lines(s, command) in (["A ?"], [])


def test_bare_refusals_for_clients_that_expect_them() -> None:
    model = FirstOrderFlow()
    s = MassFlowControllerSession("A", _backend(model), bare_refusals=True)
    assert lines(s, b"AXX") == ["?"]


async def test_the_driver_takes_both_refusal_forms() -> None:
    model = FirstOrderFlow()
    for bare in (False, True):
        endpoint = PtyEndpoint(
            "mfc",
            lambda bare=bare: MassFlowControllerSession("A", _backend(model), bare_refusals=bare),  # type: ignore[misc]
            SerialSettings(19200),
        )
        await endpoint.start()
        link = Link(endpoint.url, name="mfc-link")
        try:
            mfc = MassFlowController(link, name="ar_mfc", timeout_s=0.5)
            session_ = endpoint.session
            assert isinstance(session_, MassFlowControllerSession)
            session_.refuse_next = 1
            with pytest.raises(DeviceRefused):
                await mfc.read()
            assert (await mfc.read()).unit_id == "A"
        finally:
            await link.close()
            await endpoint.stop()


# ``??M*`` as two real units answered it (alicatlib tests/fixtures/responses/manufacturing_info_mc.txt:
# MC-500SCCM-D 10v20.0-R24; manufacturing_info_v8.txt: MCR-200SLPM-D 8v17.0-R23, unit B)
CAPTURED_MANUFACTURING_INFO = {
    "A": (
        "A  M00 ALICAT SCIENTIFIC\r",
        "A  M01 www.alicat.com\r",
        "A  M02 Ph   520-290-6060\r",
        "A  M03 info@alicat.com\r",
        "A  M04 Model Number MC-500SCCM-D\r",
        "A  M05 Serial Number 521641\r",
        "A  M06 Date Manufactured 03/02/2025\r",
        "A  M07 Date Calibrated   03/02/2025\r",
        "A  M08 Calibrated By     BL\r",
        "A  M09 Software Revision 10v20.0-R24\r",
    ),
    "B": (
        "B  M00 ALICAT SCIENTIFIC\r",
        "B  M01 www.alicat.com\r",
        "B  M02 Ph   520-290-6060\r",
        "B  M03 Fax  520-290-0109\r",
        "B  M04 Model Number MCR-200SLPM-D\r",
        "B  M05 Serial Number 225873\r",
        "B  M06 Date Manufactured 01/20/2020\r",
        "B  M07 Date Calibrated   01/20/2020\r",
        "B  M08 Calibrated By     BL\r",
        "B  M09 Software Revision 8v17.0-R23\r",
    ),
}


@pytest.mark.parametrize(
    ("unit", "model", "serial", "software"),
    [("A", "MC-500SCCM-D", "521641", "10v20.0-R24"), ("B", "MCR-200SLPM-D", "225873", "8v17.0-R23")],
)
def test_manufacturing_info_of_captured_units(unit: str, model: str, serial: str, software: str) -> None:
    decoder = ManufacturingInfoDecoder(unit)
    lines = CAPTURED_MANUFACTURING_INFO[unit]
    for line in lines[:-1]:  # in pieces, as a serial port delivers them: nothing until the tenth line
        decoder.feed(line.encode("ascii"))
        assert not isinstance(decoder.next_frame(), tuple)
    decoder.feed(lines[-1].encode("ascii"))
    texts = decoder.next_frame()
    assert isinstance(texts, tuple)
    assert manufacturing_labels(texts) == {
        "Model Number": model,
        "Serial Number": serial,
        "Software Revision": software,
    }


def test_manufacturing_info_refused_or_out_of_order() -> None:
    refused = ManufacturingInfoDecoder("A")
    refused.feed(b"A ?\r")
    assert isinstance(refused.next_frame(), Refusal)
    skipped = ManufacturingInfoDecoder("A")
    skipped.feed(b"A  M00 ALICAT SCIENTIFIC\rA  M02 Ph   520-290-6060\r")
    with pytest.raises(ProtocolError, match="M01 expected"):
        skipped.next_frame()
