"""Hostile recipe, configuration and queue files: the CLI answers each in one line, exit 2, no traceback.

The fuzz tests mutate the shipped files (random and non-UTF-8 bytes, deep nesting, wrong types,
non-finite and huge numbers, bad URLs, bad item ids, hostile keys, cut lines) and feed them to the
real `depline recipe check`, `config check` and `batch --check`, in-process through `main()` so a few
hundred files take seconds; a few named cases also run as real processes.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli import main

ROOT = Path(__file__).resolve().parents[1]
# a net against a hang, not a measure: a command takes seconds, and a CI host once stalled for a minute
CLI_TIMEOUT_S = 240
RECIPES = sorted((ROOT / "sequences" / "recipes").glob("*.toml"))
CONFIGS = [
    ROOT / "controller" / "config" / "standard_line.toml",
    *sorted((ROOT / "deploy" / "lines").glob("*.toml")),
]
NIGHT_QUEUE = """\
name = "night"
on_failure = "stop"

[[jobs]]
recipe = "local.toml"
base = "FOIL-0042"
container = "BOX-0042"
out_container = "BOX-0142"

[[jobs]]
recipe = "ex1-sputter-heated-LiSiPO-on-Li-foil.toml"
count = 2
on_failure = "skip"

[[jobs]]
recipe = "ex8-bare-Cu-lithium-free-Ar-etch"
"""
QUEUES = [(ROOT / "sequences" / "queues" / "demo.toml").read_text(encoding="utf-8"), NIGHT_QUEUE]
EXAMPLES_PER_KIND = 150  # x 3 kinds: 450 files, at least the 300 asked for
FUZZ = settings(
    max_examples=EXAMPLES_PER_KIND,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- hostile material ----------------------------------------------------------------------------------

HOSTILE_LITERALS = [
    "{}", "[]", "{ a = 1 }", "[{}]", "true", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z",
    "inf", "-inf", "nan", "+nan", "1e308", "-1e308", "1e400", "0", "-0.0", "-1", "9" * 30, "9" * 5000,
    '""', '" "', '"\\u0000"', '"a\\nb"', '"\\u001b[2J"', '"\\u202e"', '"../../x"', '"/etc/passwd"',
    '"a/b"', '"a\\\\b"', '".."', '"room"', '"inlet"', '"process"', '"outlet"', '"x' + "y" * 20_000 + '"',
    '"tcp://[::1:502"', '"tcp://[zz]:1"', '"tcp://host:99999"', '"serial://"', '"http://x"',
    '"rtu:///dev/x?baudrate=' + "9" * 5000 + '"', '"tcp://h:1?\\u0000"', '"pbkdf2_sha256$1$AA==$AA=="',
    '"pbkdf2_sha256$99999999999$AA==$AA=="', '"PKR"', '"CMR1000"', '["PKR", inf]', "[inf]", "[nan, 1]",
    '"0.0.0.0"', '"::"',
]  # fmt: skip
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\r", b"\x1b"]
ID_KEYS = ["base", "container", "out_container"]
VALUE_LINE = re.compile(r"^(\s*[A-Za-z0-9_.\"-]+\s*=\s*)(.+)$")


def nested(depth: int, inline_table: bool) -> str:
    return "{a=" * depth + "1" + "}" * depth if inline_table else "[" * depth + "]" * depth


def toml_string(text: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)  # TOML cannot hold surrogates
hostile_values = st.one_of(
    st.sampled_from(HOSTILE_LITERALS),
    st.builds(nested, st.integers(1, 60) | st.integers(1, 4000), st.booleans()),  # parsed, or too deep
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(repr),
    texts.map(toml_string),
)
hostile_keys = st.one_of(
    st.sampled_from(["colour", "name", "kind", "id", '"a\\nb"', '"\\u0000"', '"a.b"', "x.y.z", '""']),
    texts.map(toml_string),
)


@dataclass(frozen=True)
class Mutation:
    """One edit of a file's bytes, drawn by hypothesis; `apply` never fails (it edits what is there)."""

    kind: str
    where: int  # picks a line, a field or a byte position, spread over the whole file
    text: str = ""
    raw: bytes = b""

    def apply(self, data: bytes) -> bytes:
        lines = data.split(b"\n")
        spread = self.where * 7919  # hypothesis favours small numbers: spread them over the whole file
        at = spread % max(len(lines), 1)
        if self.kind == "value":  # a hostile value in place of a field's value
            fields = [i for i, line in enumerate(lines) if VALUE_LINE.match(line.decode("utf-8", "replace"))]
            if fields:
                i = fields[spread % len(fields)]
                match = VALUE_LINE.match(lines[i].decode("utf-8", "replace"))
                assert match is not None
                lines[i] = (match.group(1) + self.text).encode()
            return b"\n".join(lines)
        if self.kind == "key":  # an extra field, often unknown or spelt with control characters
            lines.insert(at, self.text.encode())
            return b"\n".join(lines)
        if self.kind == "append":  # a field of the file's last table
            return data + b"\n" + self.text.encode() + b"\n"
        if self.kind == "bytes":  # random or non-UTF-8 bytes anywhere
            pos = spread % (len(data) + 1)
            return data[:pos] + self.raw + data[pos:]
        if self.kind == "drop":
            del lines[at]
            return b"\n".join(lines)
        if self.kind == "duplicate":
            lines.insert(at, lines[at])
            return b"\n".join(lines)
        return data[: spread % (len(data) + 1)]  # "cut": the file ends early


value_edits = st.builds(Mutation, st.just("value"), st.integers(0, 10_000), hostile_values)
key_edits = st.builds(
    Mutation,
    st.just("key"),
    st.integers(0, 10_000),
    st.builds(lambda key, value: f"{key} = {value}", hostile_keys, hostile_values),
)
byte_edits = st.builds(
    Mutation,
    st.just("bytes"),
    st.integers(0, 100_000),
    raw=st.sampled_from(BAD_BYTES) | st.binary(min_size=1, max_size=6),
)
line_edits = st.builds(Mutation, st.sampled_from(["drop", "duplicate", "cut"]), st.integers(0, 100_000))
id_edits = st.builds(
    lambda key, value: Mutation("append", 0, f"{key} = {value}"),  # into the last [[jobs]] table
    st.sampled_from(ID_KEYS),
    st.one_of(st.sampled_from(HOSTILE_LITERALS), texts.map(toml_string)),
)
# most edits keep the file TOML, so the checks behind the parser are what gets exercised
mutations = st.one_of(value_edits, value_edits, value_edits, key_edits, byte_edits, line_edits)
queue_mutations = st.one_of(mutations, id_edits, id_edits)


# -- running the CLI in-process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: int
    out: str
    err: str


def depline(argv: Sequence[str]) -> Answer:
    """`depline ARGV` as `main()` answers it; an exception escaping main() is the traceback a user
    would see, so it fails the test with that traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # any escaping exception is the finding
            pytest.fail(f"depline {' '.join(argv)[:200]} raised:\n{traceback.format_exc()}")
    return Answer(code, out.getvalue(), err.getvalue())


FIELD_LINE = re.compile(r"^(?P<file>.+?): (?P<field>\S.*?) = (?P<rest>.*)$")


def assert_one_line_rejection(answer: Answer, path: Path, *, prefix: str, several: bool = False) -> None:
    """Exit 0 with "ok", or exit 2 with one line naming the file and a field (a recipe or a queue whose
    recipe fails may list several violations, each naming its file and field)."""
    assert "Traceback" not in answer.err
    assert answer.code in (0, 2), answer
    if answer.code == 0:
        assert f"{path}: ok:" in answer.out
        return
    lines = answer.err.splitlines()
    assert lines, answer
    assert lines[0].startswith(f"{prefix}{path}: "), lines[0][:300]
    assert several or len(lines) == 1, lines[:5]
    for line in lines:
        match = FIELD_LINE.match(line.removeprefix(prefix))
        assert match, line[:300]
    # the file checked is named first; the violations after it name the recipe's own file, which a queue
    # may reference by any path (hypothesis once made it /etc/passwd: "is not valid TOML" is the answer)
    first = FIELD_LINE.match(lines[0].removeprefix(prefix))
    assert first is not None
    assert first.group("file") == str(path), lines[0][:300]


def fuzz_file(folder: Path, seed: bytes, edits: list[Mutation]) -> Path:
    data = seed
    for edit in edits:
        data = edit.apply(data)
    path = folder / "hostile.toml"
    path.write_bytes(data)
    return path


# -- the fuzz tests -----------------------------------------------------------------------------------------


@FUZZ
@given(st.sampled_from(RECIPES), st.lists(mutations, min_size=1, max_size=2))
def test_hostile_recipes_are_one_line_violations(tmp_path: Path, seed: Path, edits: list[Mutation]) -> None:
    path = fuzz_file(tmp_path, seed.read_bytes(), edits)
    assert_one_line_rejection(depline(["recipe", "check", str(path)]), path, prefix="", several=True)


@FUZZ
@given(st.sampled_from(CONFIGS), st.lists(mutations, min_size=1, max_size=2))
def test_hostile_configurations_are_one_line_errors(
    tmp_path: Path, seed: Path, edits: list[Mutation]
) -> None:
    path = fuzz_file(tmp_path, seed.read_bytes(), edits)
    assert_one_line_rejection(depline(["config", "check", str(path)]), path, prefix="depline: ")


@FUZZ
@given(
    st.sampled_from(QUEUES),
    st.lists(queue_mutations, min_size=1, max_size=2),
)
def test_hostile_queues_are_one_line_errors(tmp_path: Path, seed: str, edits: list[Mutation]) -> None:
    (tmp_path / "local.toml").write_bytes(RECIPES[0].read_bytes())
    path = fuzz_file(tmp_path, seed.encode(), edits)
    answer = depline(["batch", str(path), "--check"])
    assert_one_line_rejection(answer, path, prefix="depline: ", several="is not a valid recipe" in answer.err)


# -- the named cases, as a person meets them ------------------------------------------------------------

STANDARD = CONFIGS[0].read_text(encoding="utf-8")
EX8 = 'recipe = "ex8-bare-Cu-lithium-free-Ar-etch.toml"\n'
EX1 = RECIPES[0].read_text(encoding="utf-8")


def named_file(old: str, new: str, text: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        assert old in text, old
        path = folder / "named.toml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    return write


def raw_file(data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "named.toml"
        path.write_bytes(data)
        return path

    return write


NAMED = {
    "recipe not UTF-8": (["recipe", "check"], raw_file(EX1.encode().replace(b"Ar", b"\xff", 1)), "(file) = "),
    "recipe nested deep": (["recipe", "check"], raw_file(b"x = " + b"[" * 5000 + b"]" * 5000), "(syntax)"),
    "recipe kind = {}": (["recipe", "check"], named_file('kind = "deposit"', "kind = {}", EX1), ".kind = {}"),
    "config IPv6 URL": (
        ["config", "check"],
        named_file("tcp://192.168.10.21:502", "tcp://[::1:502", STANDARD),
        "Invalid IPv6 URL",
    ),
    "config gauge_types = [inf]": (
        ["config", "check"],
        named_file('gauge_types = ["PKR", "PKR"]', "gauge_types = [inf]", STANDARD),
        "devices[0].params.gauge_types = [inf]",
    ),
    "config line name": (
        ["config", "check"], named_file('name = "line1"', 'name = "../../x"', STANDARD), "line.name = '../"
    ),
    "config password hash": (
        ["config", "check"],
        named_file("pbkdf2_sha256$200000$B618", "pbkdf2_sha256$200000$@@@", STANDARD),
        "users[0].password_hash = '<hidden>'",
    ),
    "config loose O2 limit": (
        ["config", "check"],
        named_file("max_o2_ppmv = 10.0", "max_o2_ppmv = 20.0", STANDARD),
        "not_for_production",
    ),
    "config demo passwords on the network": (
        ["config", "check"],
        named_file('host = "127.0.0.1"', 'host = "0.0.0.0"', STANDARD),
        "hmi.host = '0.0.0.0'",
    ),
    "queue container = room": (
        ["batch", "--check"],
        named_file(EX8, f'{EX8}container = "room"\n', QUEUES[0]),
        "jobs[1].container = 'room'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(NAMED))
def test_named_hostile_files_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    command, write, expected = NAMED[case]
    path = write(tmp_path)
    args = [*command[:2], str(path)] if command[0] != "batch" else ["batch", str(path), "--check"]
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CLI_TIMEOUT_S,
    )
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in done.stderr


def test_run_refuses_to_serve_demo_passwords_beyond_loopback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "run", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "depline: <embedded standard_line.toml>: --host = '0.0.0.0': the HMI serves beyond loopback only "
        "when no user has a published demo password (op1, eng1, maint1 still do): replace their "
        "password_hash (depline user hash) or serve on 127.0.0.1"
    ]


def test_a_space_the_sensors_cannot_judge_is_a_warning_not_an_error(tmp_path: Path) -> None:
    blocks = STANDARD.split("[[devices]]")
    path = tmp_path / "no_dewpoint.toml"
    path.write_text(
        "[[devices]]".join(b for b in blocks if 'name = "inlet_dewpoint"' not in b), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "config", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert f"{path}: ok:" in done.stdout
    (warning,) = done.stderr.splitlines()
    assert " WARNING " in warning
    assert f"{path}: spaces[0] 'inlet': containers are opened here but no dew-point transmitter" in warning
