"""The line configuration refuses hostile and unsafe files with one line naming file, field and limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.errors import ConfigFileError

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
        ('params = { heater = "substrate" }', 'params = { heater = "oven" }', "params.heater", "substrate"),
        ("full_scale_sccm = 100.0", "full_scale_sccm = -inf", "params.full_scale_sccm", "finite"),
        ("address = 240", "address = 0", "devices[3].address", "allowed range is 1 .. 247"),
        ('address = "A"', 'address = "AB"', "devices[7].address", "one letter A..Z"),
        (
            'space = "inlet"\nparams',
            'space = "inlet"\nchannels = { x = "inlet" }\nparams',
            "channels.x",
            "no channels",
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
    assert "hmi.evil\\nkey = 1: unknown field" in message


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
