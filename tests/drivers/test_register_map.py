"""The register-map codec: golden frames of devices.md §4 and §5, both roles, planning, the generated doc."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.dewpoint_transmitter import dewpoint_map
from drivers.errors import ConfigError, ProtocolError
from drivers.modbus_framing import encode_rtu_frame
from drivers.modbus_pdu import (
    encode_read_request,
    encode_registers_reply,
    encode_write_register_request,
    encode_write_registers_request,
)
from drivers.register_map import (
    EXC_ILLEGAL_ADDRESS,
    EXC_ILLEGAL_VALUE,
    Access,
    DataType,
    Field,
    RegisterMap,
    RejectedWrite,
    Table,
    WordOrder,
)
from drivers.register_map_docs import generated_docs
from drivers.remote_io import STANDARD_LINE_POINTS, RemoteIoMap, line_points
from drivers.temperature_controller import eurotherm_map
from sim_hardware.devices.temperature_controller import TemperatureControllerSim

DOC = Path(__file__).resolve().parents[2] / "docs" / "register_maps.md"


def read_frame(unit: int, regmap: RegisterMap, *names: str) -> bytes:
    (block,) = regmap.plan(names)
    return encode_rtu_frame(unit, encode_read_request(block.table.read_function, block.address, block.count))


def reply_frame(unit: int, words: list[int]) -> bytes:
    return encode_rtu_frame(unit, encode_registers_reply(3, words))


# -- golden frames, devices.md §4 (Vaisala, LSW first) -------------------------------------------------


def test_frost_point_minus_60_lsw_first_golden_frames() -> None:
    regmap = dewpoint_map("little")
    f = regmap["frost_point"]
    assert read_frame(240, regmap, "frost_point") == bytes.fromhex("F0 03 00 08 00 02 50 E8")
    assert f.to_words(-60.0) == [0x0000, 0xC270]
    assert reply_frame(240, f.to_words(-60.0)) == bytes.fromhex("F0 03 04 00 00 C2 70 4A 78")
    assert f.from_raw([0x0000, 0xC270]) == -60.0


def test_h2o_10_68_ppmv_lsw_first_golden_frames() -> None:
    regmap = dewpoint_map("little")
    f = regmap["h2o"]
    assert read_frame(240, regmap, "h2o") == bytes.fromhex("F0 03 00 14 00 02 91 2E")
    assert reply_frame(240, f.to_words(10.68)) == bytes.fromhex("F0 03 04 E1 48 41 2A 1D 59")
    assert f.from_raw([0xE148, 0x412A]) == pytest.approx(10.68, rel=1e-7)


def test_self_test_registers() -> None:
    regmap = dewpoint_map("little")
    assert regmap["self_test_int"].to_words(-12345) == [0xCFC7]
    assert regmap["self_test_int"].from_raw([0xCFC7]) == -12345
    assert regmap["self_test_float"].to_words(-123.45) == [0xE666, 0xC2F6]
    assert dewpoint_map("big")["self_test_float"].to_words(-123.45) == [0xC2F6, 0xE666]


def test_int16_mirror_and_unavailable_sentinel() -> None:
    regmap = dewpoint_map()
    f = regmap["frost_point_i16"]
    assert f.address == 0x0104
    assert f.to_words(-60.0) == [(-6000) & 0xFFFF]
    assert f.from_raw([(-6000) & 0xFFFF]) == -60.0
    assert f.to_words(math.nan) == [0x8000]
    assert math.isnan(f.from_raw([0x8000]))
    assert regmap["h2o_i16"].address == 0x010A
    assert math.isnan(regmap["frost_point"].from_raw(regmap["frost_point"].to_words(math.nan)))


# -- golden frames, devices.md §5 (Eurotherm, MSW first, float region) -----------------------------


def test_eurotherm_float_region_golden_frames() -> None:
    regmap = eurotherm_map()
    assert regmap["target_sp"].address == 0x8004
    words = regmap["target_sp"].to_words(300.0)
    assert words == [0x4396, 0x0000]
    write = encode_rtu_frame(1, encode_write_registers_request(regmap["target_sp"].address, words))
    assert write == bytes.fromhex("01 10 80 04 00 02 04 43 96 00 00 66 32")
    assert read_frame(1, regmap, "pv") == bytes.fromhex("01 03 80 02 00 02 4C 0B")
    assert regmap["pv"].from_raw([0x437A, 0x0000]) == 250.0
    assert reply_frame(1, regmap["pv"].to_words(250.0)) == bytes.fromhex("01 03 04 43 7A 00 00 CE 6E")
    assert struct.pack(">HH", *regmap["pv"].to_words(1.001)) == bytes.fromhex("3F 80 20 C5")


def test_eurotherm_integer_region_golden_frames() -> None:
    regmap = eurotherm_map(decimal_places=0)
    assert read_frame(2, regmap, "pv_i16", "target_sp_i16") == bytes.fromhex("02 03 00 01 00 02 95 F8")
    (block,) = regmap.plan(("pv_i16", "target_sp_i16"))
    assert block.decode([0x0012, 0x0016]) == {"pv_i16": 18, "target_sp_i16": 22}
    one_dp = eurotherm_map(decimal_places=1)["target_sp_i16"]
    (value,) = one_dp.to_words(300.0)
    assert encode_rtu_frame(1, encode_write_register_request(2, value)) == bytes.fromhex(
        "01 06 00 02 0B B8 2F 48"
    )


def test_eurotherm_sim_refuses_fc06_into_the_float_region_and_unknown_addresses() -> None:
    sim = TemperatureControllerSim(1, pv_c=lambda: 25.0)
    reply = sim.unit.handle(encode_write_register_request(0x8004, 0x4396))
    assert reply == bytes((0x86, EXC_ILLEGAL_VALUE))
    refused = sim.unit.handle(encode_read_request(3, 0x0200, 1))
    assert refused is not None
    assert encode_rtu_frame(1, refused) == bytes.fromhex("01 83 02 C0 F1")
    ok = sim.unit.handle(encode_write_registers_request(0x8004, [0x4396, 0x0000]))
    assert ok == bytes.fromhex("10 80 04 00 02")
    assert sim.target_sp_c == 300.0


# -- both roles: round trips ---------------------------------------------------------------------------

ORDERS: list[WordOrder] = ["big", "little"]
INT_TYPES = [DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32]


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(width=32, allow_nan=False))
def test_float32_round_trip_both_roles(order: WordOrder, value: float) -> None:
    regmap = RegisterMap(
        "t", [Field("x", Table.HOLDING, 10, DataType.FLOAT32, access=Access.RW)], word_order=order
    )
    f = regmap["x"]
    words = f.to_words(value)  # host encodes a write ...
    assert regmap.decode_write(Table.HOLDING, 10, words) == {"x": value}  # ... the device decodes it
    (block,) = regmap.plan()
    assert block.decode(words) == {"x": value}  # and back: device encodes, host decodes


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", INT_TYPES)
@given(data=st.data())
def test_integer_round_trip(order: WordOrder, dtype: DataType, data: st.DataObject) -> None:
    lo, hi = dtype.int_range
    raw = data.draw(st.integers(lo, hi))
    f = RegisterMap("t", [Field("x", Table.INPUT, 0, dtype, scale=0.5)], word_order=order)["x"]
    words = f.to_words(raw * 0.5)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert len(words) == dtype.words
    assert f.from_raw(words) == raw * 0.5


def test_word_order_is_per_map_and_per_field() -> None:
    regmap = RegisterMap(
        "t",
        [
            Field("a", Table.HOLDING, 0, DataType.UINT32),
            Field("b", Table.HOLDING, 2, DataType.UINT32, word_order="big"),
        ],
        word_order="little",
    )
    assert regmap["a"].to_words(0x12345678) == [0x5678, 0x1234]
    assert regmap["b"].to_words(0x12345678) == [0x1234, 0x5678]


def test_scaled_units_and_saturation() -> None:
    f = Field("p", Table.INPUT, 0, DataType.FLOAT32, "Pa", 100.0, wire_unit="mbar", word_order="big")
    assert f.to_words(250.0) == f.to_words(250.0)
    assert struct.unpack(">f", struct.pack(">HH", *f.to_words(250.0)))[0] == 2.5
    i = Field("t", Table.INPUT, 0, DataType.INT16, "degC", 0.01)
    with pytest.raises(ConfigError):
        i.to_words(400.0)
    assert i.to_words(400.0, saturate=True) == [0x7FFF]
    assert i.to_words(-400.0, saturate=True) == [0x8000]
    with pytest.raises(ConfigError):
        i.to_words(math.nan)  # no sentinel declared
    with pytest.raises(ProtocolError):
        i.from_raw([1, 2])


def test_bits() -> None:
    f = Field("door", Table.COIL, 3, DataType.BOOL, access=Access.RW)
    assert f.to_bits(True) == [True]
    assert f.from_raw([False]) is False
    with pytest.raises(ConfigError):
        f.to_words(1)
    with pytest.raises(ConfigError):
        Field("bad", Table.COIL, 0, DataType.UINT16)


# -- map validation, planning, device-role writes -------------------------------------------------------


def test_map_rejects_overlaps_and_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        RegisterMap(
            "t",
            [Field("a", Table.HOLDING, 0, DataType.FLOAT32), Field("b", Table.HOLDING, 1, DataType.UINT16)],
        )
    with pytest.raises(ConfigError, match="twice"):
        RegisterMap(
            "t", [Field("a", Table.HOLDING, 0, DataType.UINT16), Field("a", Table.INPUT, 0, DataType.UINT16)]
        )
    with pytest.raises(ConfigError):
        dewpoint_map()["nope"]


def test_dewpoint_poll_is_three_requests() -> None:
    regmap = dewpoint_map()
    blocks = regmap.plan(
        ("temperature", "frost_point", "frost_point_atm", "h2o", "error_status", "online_status")
    )
    assert [(b.address, b.count) for b in blocks] == [(0x0002, 2), (0x0008, 14), (0x0200, 2)]


def test_plan_splits_at_125_registers_and_bridges_gaps_only_where_declared() -> None:
    fields = [Field(f"r{i}", Table.INPUT, i, DataType.UINT16) for i in range(200)]
    blocks = RegisterMap("t", fields).plan()
    assert [(b.address, b.count) for b in blocks] == [(0, 125), (125, 75)]
    gappy = [Field("a", Table.INPUT, 0, DataType.UINT16), Field("b", Table.INPUT, 5, DataType.UINT16)]
    assert len(RegisterMap("t", gappy).plan()) == 2
    bridged = RegisterMap("t", gappy, max_gap=4)
    assert [(b.address, b.count) for b in bridged.plan()] == [(0, 6)]
    assert bridged.declared_ranges(Table.INPUT) == [range(0, 6)]


def test_device_role_refuses_split_and_read_only_writes() -> None:
    regmap = eurotherm_map()
    with pytest.raises(RejectedWrite) as split:
        regmap.decode_write(Table.HOLDING, 0x8004, [0x4396])
    assert split.value.code == EXC_ILLEGAL_VALUE
    with pytest.raises(RejectedWrite) as read_only:
        regmap.decode_write(Table.HOLDING, 0x8002, [0x4396, 0])
    assert read_only.value.code == EXC_ILLEGAL_ADDRESS
    assert regmap.decode_write(Table.HOLDING, 273, [1]) == {"auto_manual": 1}


# -- point lists are data --------------------------------------------------------------------------------


def test_remote_io_point_list_is_data_with_stable_addresses() -> None:
    standard = RemoteIoMap(STANDARD_LINE_POINTS).regmap
    assert standard["inlet.rough_valve"].address == 0
    assert standard["inlet_gate"].table is Table.COIL
    assert standard["inlet_gate.closed"].table is Table.DISCRETE
    shared = line_points(
        antechambers=["transfer"],
        gate_valves=["li_gate", "electrolyte_gate"],
        process_chambers={
            "li_chamber": ["evaporation"],
            "electrolyte_chamber": ["rf_sputter", "pulsed_laser"],
        },
    )
    regmap = RemoteIoMap(shared).regmap
    assert "electrolyte_chamber.shutter_pulsed_laser" in regmap
    assert "inlet.rough_valve" not in regmap
    extended = RemoteIoMap.for_points(
        [*STANDARD_LINE_POINTS.outputs, "process.throttle"], STANDARD_LINE_POINTS.inputs
    )
    for f in standard.in_table(Table.COIL):
        assert extended.regmap[f.name].address == f.address
    with pytest.raises(ConfigError):
        RemoteIoMap.for_points(["x"], ["x"])


# -- the generated documentation ---------------------------------------------------------------------------


def test_committed_register_doc_is_generated_from_the_maps() -> None:
    assert DOC.read_text(encoding="utf-8") == generated_docs(), (
        "docs/register_maps.md is stale: run `python -m drivers.register_map_docs > docs/register_maps.md`"
    )
