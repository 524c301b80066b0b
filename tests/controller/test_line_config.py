"""The line configuration refuses hostile and unsafe files with one line naming file, field and limit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from controller.config.line_config import UserConfig, load_line_config
from controller.errors import ConfigFileError
from controller.line.sensor_coverage import atmosphere_blind_spots
from controller.users.demo_passwords import refuse_demo_passwords_beyond_loopback, users_with_demo_passwords
from controller.users.passwords import hash_password

ROOT = Path(__file__).resolve().parents[2]
STANDARD = (ROOT / "controller" / "config" / "standard_line.toml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "line.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str | bytes) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as info:
        load_line_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def edited(old: str, new: str) -> str:
    assert old in STANDARD, old
    return STANDARD.replace(old, new, 1)


def test_the_shipped_configurations_load() -> None:
    for path in [None, *sorted((ROOT / "deploy" / "lines").glob("*.toml"))]:
        assert load_line_config(path).spaces


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'[line]\nname = "line\xff"\n', "(file) = "),
        ("[line]\nname = " + "[" * 3000 + "]" * 3000 + "\n", "(syntax) = '': arrays or inline tables nested"),
        ("[line]\nname = " + "9" * 5000 + "\n", "(syntax) = '': a number too long to read"),
        ("[line\n", "(syntax) = '': is not valid TOML"),
    ],
    ids=["not-utf8", "deep", "huge-int", "syntax"],
)
def test_unreadable_files_are_one_line(tmp_path: Path, text: str | bytes, expected: str) -> None:
    assert refused(tmp_path, text).startswith(expected)


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    assert "is not UTF-8 text (byte 0xff on line 2)" in refused(tmp_path, b'[line]\nname = "x\xff"\n')


@pytest.mark.parametrize(
    ("old", "new", "field", "allowed"),
    [
        ('kind = "antechamber"', "kind = {}", "spaces[0].kind", "must be a string"),
        ('name = "line1"', 'name = "../../x"', "line.name", "letters, digits"),
        ('name = "line1"', 'name = ".."', "line.name", "not starting with '.'"),
        ('name = "line1"', f'name = "{"x" * 65}"', "line.name", "1..64"),
        ('name = "inlet"', 'name = "a\\u0000b"', "spaces[0].name", "letters, digits"),
        ("volume_l = 30.0", "volume_l = inf", "spaces[0].volume_l", "finite"),
        ("volume_l = 30.0", "volume_l = nan", "spaces[0].volume_l", "finite"),
        ("volume_l = 30.0", "volume_l = 1e308", "spaces[0].volume_l", "allowed range"),
        ("port = 8080", "port = 99999999999999999999", "hmi.port", "allowed range"),
        ('"tcp://192.168.10.21:502"', '"tcp://[::1:502"', "links.inlet_glovebox.url", "Invalid IPv6 URL"),
        ('gauge_types = ["PKR", "PKR"]', "gauge_types = [inf]", "devices[0].params.gauge_types", "strings"),
        ('gauge_types = ["PKR", "PKR"]', "gauge_types = []", "devices[0].params.gauge_types", "1..6"),
        ('gauge_types = ["PKR", "PKR"]', 'gauge_type = ["PKR"]', "devices[0].params.gauge_type", "unknown"),
        ('pressure_ch2 = "outlet"', 'pressure_ch3 = "outlet"', "devices[0].channels.pressure_ch3", "one of"),
        ('params = { word_order = "little" }', "params = { word_order = 1.5 }", "word_order", "string"),
        (
            'params = { heater = "substrate", min_c',
            'params = { heater = "oven", min_c',
            "params.heater",
            "substrate",
        ),
        (
            'params = { heater = "substrate", min_c',
            'params = { heater = "substrate", rate_units_order = "per minute", min_c',
            "params.rate_units_order",
            "s-min-h, min-h-s",
        ),
        ("max_c = 250.0", "max_c = 2000.0", "params.max_c", "allowed range is -50 .. 1500"),
        ("max_c = 250.0", "max_c = 10.0", "params.max_c", "above min_c (20 °C)"),
        ("full_scale_sccm = 100.0", "full_scale_sccm = -inf", "params.full_scale_sccm", "finite"),
        ("address = 240", "address = 0", "devices[3].address", "allowed range is 1 .. 247"),
        ('address = "A"', 'address = "AB"', "devices[7].address", "one letter A..Z"),
        (
            'space = "inlet"\nparams',
            'space = "inlet"\nchannels = { x = "inlet" }\nparams',
            "channels.x",
            "no channels",
        ),
        *(
            ("\n[hmi]\n", f"\n[recording.channels.{key}]\n{body}\n[hmi]\n", field, allowed)
            for key, body, field, allowed in [
                ('"oven.pv"', "heartbeat_s = 10", 'recording.channels."oven.pv"', "configured device"),
                ("frost_point", "heartbeat_s = 10", "recording.channels.frost_point", "DEVICE.CHANNEL"),
                ('"inlet_dewpoint.frost_point"', "deadband = -1", "deadband", "allowed range is 0 .. 1e+06"),
                ('"inlet_dewpoint.h2o"', "deadband_relative = 0.9", "deadband_relative", "0 .. 0.5"),
                ('"inlet_dewpoint.h2o"', "heartbeat_s = 3600", "heartbeat_s", "allowed range is 1 .. 600"),
                ('"inlet_dewpoint.h2o"', "deadband = 1\ndeadband_relative = 0.1", "relative", "not both"),
                ('"inlet_dewpoint.h2o"', "dead_band = 1", "dead_band", "unknown field"),
                ('"inlet_dewpoint.h2o"', "", "deadband", "at least one of"),
            ]
        ),
    ],
)
def test_hostile_values_name_file_field_and_limit(
    tmp_path: Path, old: str, new: str, field: str, allowed: str
) -> None:
    message = refused(tmp_path, edited(old, new))
    assert field in message.split(" = ", 1)[0]
    assert allowed in message


def test_a_huge_value_is_quoted_short(tmp_path: Path) -> None:
    message = refused(tmp_path, edited('name = "line1"', f'name = "{"x" * 100_000}"'))
    assert len(message) < 200


def test_a_control_character_in_a_key_cannot_split_the_line(tmp_path: Path) -> None:
    message = refused(tmp_path, edited("[hmi]\n", '[hmi]\n"evil\\nkey" = 1\n'))
    assert 'hmi."evil\\nkey" = 1: unknown field' in message


@pytest.mark.parametrize(
    "hash_text",
    [
        "pbkdf2_sha256$200000$salt",
        "pbkdf2_sha256$abc$B618Fui0ts4CkjRpsPV/wg==$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k=",
        "pbkdf2_sha256$1$B618Fui0ts4CkjRpsPV/wg==$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k=",
        "pbkdf2_sha256$200000$not base64!$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k=",
        "pbkdf2_sha256$200000$B618Fui0ts4CkjRpsPV/wg==$AAAA",
        "md5$200000$B618Fui0ts4CkjRpsPV/wg==$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k=",
        "pbkdf2_sha256$"
        + "9" * 5000
        + "$B618Fui0ts4CkjRpsPV/wg==$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k=",
    ],
    ids=["three-parts", "iterations-text", "one-iteration", "salt", "short-digest", "scheme", "huge"],
)
def test_a_malformed_password_hash_is_refused_not_a_silent_lockout(tmp_path: Path, hash_text: str) -> None:
    old = "pbkdf2_sha256$200000$B618Fui0ts4CkjRpsPV/wg==$gLp6drwClaskD3kimV95+prEw4R4qFzuVEddrQQi6/k="
    message = refused(tmp_path, edited(old, hash_text))
    assert message.startswith("users[0].password_hash = '<hidden>': pbkdf2_sha256$<iterations")
    assert hash_text not in message


# -- unsafe configurations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max_frost_point_c = -50.0", "max_frost_point_c = -45.0", "limits.max_frost_point_c"),
        ("max_o2_ppmv = 10.0", "max_o2_ppmv = 10.5", "limits.max_o2_ppmv"),
    ],
)
def test_limits_looser_than_the_method_need_not_for_production(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    message = refused(tmp_path, edited(old, new))
    assert message.startswith(f"{field} = ")
    assert "not_for_production = true" in message
    allowed = load_line_config(write(tmp_path, edited(old, new).replace(NAME, NAME + NOT_FOR_PRODUCTION)))
    assert allowed.not_for_production
    assert load_line_config().not_for_production is False


def test_tighter_limits_are_always_allowed(tmp_path: Path) -> None:
    text = edited("max_frost_point_c = -50.0", "max_frost_point_c = -60.0")
    config = load_line_config(write(tmp_path, text.replace("max_o2_ppmv = 10.0", "max_o2_ppmv = 1.0")))
    assert (config.limits.max_frost_point_c, config.limits.max_o2_ppmv) == (-60.0, 1.0)


NAME = 'name = "line1"'
NOT_FOR_PRODUCTION = "\nnot_for_production = true"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"])
def test_demo_passwords_may_serve_on_loopback(host: str) -> None:
    refuse_demo_passwords_beyond_loopback(load_line_config(), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.10.5", "", "controller.plant.example"])
def test_demo_passwords_refuse_any_other_address(host: str) -> None:
    config = load_line_config()
    with pytest.raises(ConfigFileError) as info:
        refuse_demo_passwords_beyond_loopback(config, host)
    assert str(info.value).startswith(f"<embedded standard_line.toml>: hmi.host = {host!r}: ")
    assert "op1, eng1, maint1" in str(info.value)


def test_a_demo_password_under_a_new_salt_or_name_is_still_a_demo_password(tmp_path: Path) -> None:
    config = load_line_config()
    rehashed = UserConfig("alice", "operator", hash_password("eng1-demo", iterations=10_000))
    own = UserConfig("bob", "engineer", hash_password("a site's own secret", iterations=10_000))
    assert users_with_demo_passwords(dataclasses.replace(config, users=(rehashed, own))) == ["alice"]
    refuse_demo_passwords_beyond_loopback(dataclasses.replace(config, users=(own,)), "0.0.0.0")


def test_the_shipped_configurations_have_no_blind_spots() -> None:
    for path in [None, *sorted((ROOT / "deploy" / "lines").glob("*.toml"))]:
        assert atmosphere_blind_spots(load_line_config(path)) == []


def test_spaces_the_sensors_can_never_judge_are_named(tmp_path: Path) -> None:
    no_outlet_gauge = edited(
        'channels = { pressure_ch1 = "inlet", pressure_ch2 = "outlet" }',
        'channels = { pressure_ch1 = "inlet" }',
    ).replace(
        'link = "outlet_glovebox"\naddress = 1\nspace = "outlet"', 'link = "outlet_glovebox"\naddress = 1'
    )
    blocks = no_outlet_gauge.split("[[devices]]")
    text = "[[devices]]".join(b for b in blocks if 'name = "inlet_dewpoint"' not in b)
    path = write(tmp_path, text)
    spots = atmosphere_blind_spots(load_line_config(path))
    assert len(spots) == 2
    assert spots[0].startswith(f"{path}: spaces[0] 'inlet': containers are opened here but no dew-point")
    assert spots[1].startswith(f"{path}: spaces[2] 'outlet': no gauge reads its pressure")


def test_the_source_table_and_gas_supplies_are_read_and_checked(tmp_path: Path) -> None:
    config = load_line_config()
    assert [s.name for s in config.sources_in("process")] == [
        "dc_sputter", "rf_sputter", "evaporation", "pulsed_laser", "ion_source",
    ]  # fmt: skip
    assert config.sources_in("process")[1].rate_nm_s("57Li2S-38SiS2-5Li3PO4", "electrolyte", 400.0) == 0.2
    assert [(g.gas, g.purity_percent) for g in config.gas_supplies] == [("Ar", 99.99)]
    message = refused(tmp_path, edited('methods = ["sputtering"]', 'methods = ["spraying"]'))
    assert message.startswith("sources[0].methods = ")
    supplied = STANDARD + '\n[[gas_supplies]]\ngas = "H2"\npurity_percent = 99.999\nfeeds = ["process"]\n'
    assert [g.gas for g in load_line_config(write(tmp_path, supplied)).gas_supplies] == ["H2"]
    nowhere = supplied.replace('feeds = ["process"]', 'feeds = ["attic"]')
    assert refused(tmp_path, nowhere).startswith("gas_supplies[0].feeds = ")
