"""Recipe validation: shipped examples pass; each rule fails in one line naming file, field, value, range."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.line.compositions import Component, FormulaError, parse_mole_ratio
from sequences.recipe import DepositStep, RecipeError, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "sequences" / "recipes").glob("*.toml"))
FILE = "bad.toml"

GOOD = """\
name = "good"
gas = "Ar"
max_frost_point_c = -50.0

[base]
material = "Cu"
thickness_um = 10.0
size_mm = [100.0, 50.0]

[[targets]]
id = "T1"
material = "Li"

[[targets]]
id = "T2"
material = "57Li2S-38SiS2-5Li3PO4"

[[steps]]
kind = "etch"
gas = "Ar"
substrate_temp_c = 25.0
duration_s = 120.0

[[steps]]
kind = "deposit"
layer = "lithium"
method = "sputtering"
target = "T1"
thickness_um = 5.0
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5

[[steps]]
kind = "deposit"
layer = "electrolyte"
method = "sputtering"
target = "T2"
thickness_um = 1.0
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5

[[steps]]
kind = "anneal"
temp_c = 130.0
duration_s = 1800.0
"""

LITHIUM_FREE = GOOD.replace('layer = "lithium"', 'layer = "metal"').replace(
    'material = "Li"\n', 'material = "Ni"\n'
)


def violations(text: str) -> list[str]:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, FILE)
    return list(info.value.violations)


def only_violation(text: str) -> str:
    lines = violations(text)
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_recipe_passes(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.steps
    assert recipe.warnings == ()


def test_shipped_recipes_cover_the_published_examples() -> None:
    recipes = [load_recipe(p) for p in SHIPPED]
    on_li_foil = [r for r in recipes if r.base.material == "Li/Cu"]
    methods = {s.method for r in on_li_foil for s in r.steps if isinstance(s, DepositStep)}
    assert methods == {"sputtering", "evaporation", "laser_ablation", "ion_plating"}
    formulas = {t.material for r in recipes for t in r.targets}
    assert "60Li2S-40SiS2" in formulas
    for dopant in ("Li3PO4", "Li4SiO4", "(Li2O-P2O5)"):
        assert any(f.endswith(dopant) for f in formulas), dopant
    layers = [[s.layer for s in r.steps if isinstance(s, DepositStep)] for r in recipes]
    assert ["lithium", "electrolyte"] in layers


def test_good_recipe_parses_into_frozen_steps() -> None:
    recipe = parse_recipe(GOOD, FILE)
    assert [s.kind for s in recipe.steps] == ["etch", "deposit", "deposit", "anneal"]
    assert recipe.target("T2").sulfide
    assert recipe.target("T1").lithium
    assert recipe.base.size_mm == (100.0, 50.0)
    with pytest.raises(AttributeError):
        recipe.name = "x"  # type: ignore[misc]


# (mutation of GOOD, field, value as shown, text of the allowed range)
RULES = [
    (('gas = "Ar"\nmax', 'gas = "O2"\nmax'), "gas", "'O2'", "He, Ne, Ar, Kr, N2"),
    (("max_frost_point_c = -50.0", "max_frost_point_c = -40.0"), "max_frost_point_c", "-40.0", "<= -50"),
    (("thickness_um = 10.0", "thickness_um = 150.0"), "base.thickness_um", "150.0", "1 .. 100"),
    (('material = "Cu"', 'material = "Unobtainium"'), "base.material", "'Unobtainium'", "unknown material"),
    (("thickness_um = 5.0", "thickness_um = 25.0"), "steps[1].thickness_um", "25.0", "0.1 .. 20"),
    (("thickness_um = 1.0", "thickness_um = 12.0"), "steps[2].thickness_um", "12.0", "0.01 .. 10"),
    (
        ("base_pressure_pa = 1.0e-4\nprocess_pressure_pa = 0.5\n\n[[steps]]\nkind = \"anneal\"",
         "base_pressure_pa = 1.0e-3\nprocess_pressure_pa = 0.5\n\n[[steps]]\nkind = \"anneal\""),
        "steps[2].base_pressure_pa", "0.001", "0 .. 0.000133",
    ),
    (
        ("process_pressure_pa = 0.5\n\n[[steps]]\nkind = \"anneal\"",
         "process_pressure_pa = 5.0\n\n[[steps]]\nkind = \"anneal\""),
        "steps[2].process_pressure_pa", "5.0", "0.1 .. 1",
    ),
    (('method = "sputtering"\ntarget = "T1"', 'method = "plasma_spray"\ntarget = "T1"'),
     "steps[1].method", "'plasma_spray'", "sputtering, evaporation, laser_ablation, ion_plating"),
    (('target = "T2"', 'target = "T9"'), "steps[2].target", "'T9'", "must name a [[targets]] id (T1, T2)"),
    (('target = "T1"', 'target = "T2"'), "steps[1].target", "'T2'", "needs a Li or Li-alloy target"),
    (('target = "T2"', 'target = "T1"'), "steps[2].target", "'T1'", "needs a sulfide target"),
    (('gas = "Ar"\nsubstrate_temp_c', 'gas = "O2"\nsubstrate_temp_c'), "steps[0].gas", "'O2'", "Ar, H2"),
    (("temp_c = 130.0", "temp_c = 185.0"), "steps[3].temp_c", "185.0",
     "must be below 179 °C: lithium is present (from the lithium layer of steps[1])"),
    (("kind = \"anneal\"", "kind = \"bake\""), "steps[3].kind", "'bake'", "etch, deposit, anneal"),
    (("duration_s = 1800.0", "duration_s = 1800.0\nramp = 3"), "steps[3].ramp", "3", "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("mutation", "field", "value", "allowed"), RULES, ids=[r[1] for r in RULES])
def test_each_rule_fails_with_one_line(
    mutation: tuple[str, str], field: str, value: str, allowed: str
) -> None:
    old, new = mutation
    assert old in GOOD
    line = only_violation(GOOD.replace(old, new, 1))
    assert line.startswith(f"{FILE}: {field} = {value}: ")
    assert allowed in line


def test_lithium_in_the_base_caps_every_temperature() -> None:
    text = GOOD.replace('material = "Cu"', 'material = "Li/Cu"').replace(
        "substrate_temp_c = 25.0\nduration_s", "substrate_temp_c = 190.0\nduration_s"
    )
    assert only_violation(text) == (
        f"{FILE}: steps[0].substrate_temp_c = 190.0: must be below 179 °C: lithium is present "
        "(from the base Li/Cu)"
    )


def test_lithium_from_an_earlier_layer_caps_a_heated_deposition() -> None:
    text = GOOD.replace(
        "thickness_um = 1.0\nsubstrate_temp_c = 25.0", "thickness_um = 1.0\nsubstrate_temp_c = 179.0"
    )
    assert only_violation(text).startswith(f"{FILE}: steps[2].substrate_temp_c = 179.0: must be below 179 °C")


def test_without_lithium_each_step_keeps_its_own_window() -> None:
    hot = (
        LITHIUM_FREE.replace("substrate_temp_c = 25.0\nduration_s", "substrate_temp_c = 240.0\nduration_s")
        .replace(
            "thickness_um = 1.0\nsubstrate_temp_c = 25.0", "thickness_um = 1.0\nsubstrate_temp_c = 190.0"
        )
        .replace("temp_c = 130.0", "temp_c = 195.0")
    )
    parse_recipe(hot, FILE)
    too_hot = hot.replace("substrate_temp_c = 240.0", "substrate_temp_c = 260.0").replace(
        "temp_c = 195.0", "temp_c = 210.0"
    )
    assert violations(too_hot) == [
        f"{FILE}: steps[0].substrate_temp_c = 260.0: allowed range for an etch is 20 .. 250 °C",
        f"{FILE}: steps[3].temp_c = 210.0: allowed range for heat treatment is 40 .. 200 °C",
    ]


def test_every_violation_is_reported_not_just_the_first() -> None:
    text = (
        GOOD.replace("max_frost_point_c = -50.0", "max_frost_point_c = -10.0")
        .replace("thickness_um = 5.0", "thickness_um = 50.0")
        .replace('target = "T2"', 'target = "T7"')
        .replace("temp_c = 130.0", "temp_c = 200.0")
    )
    fields = [line.split(" = ")[0] for line in violations(text)]
    assert fields == [
        f"{FILE}: max_frost_point_c",
        f"{FILE}: steps[1].thickness_um",
        f"{FILE}: steps[2].target",
        f"{FILE}: steps[3].temp_c",
    ]


def test_process_pressure_is_required_for_sputtering_and_refused_for_evaporation() -> None:
    missing = GOOD.replace("process_pressure_pa = 0.5\n", "", 1)
    assert (
        only_violation(missing) == f"{FILE}: steps[1].process_pressure_pa = missing: this field is required"
    )
    evaporated = GOOD.replace('method = "sputtering"\ntarget = "T2"', 'method = "evaporation"\ntarget = "T2"')
    line = only_violation(evaporated)
    assert line == f"{FILE}: steps[2].process_pressure_pa = 0.5: evaporation runs in vacuum: omit this field"


@pytest.mark.parametrize("gas", ["N2", "dry_air", "Ar+N2"])
def test_nitrogen_or_dry_air_with_bare_lithium_warns_but_passes(gas: str) -> None:
    text = GOOD.replace('material = "Cu"', 'material = "Li/Cu"').replace(
        'gas = "Ar"\nmax', f'gas = "{gas}"\nmax'
    )
    recipe = parse_recipe(text, FILE)
    assert len(recipe.warnings) == 1
    assert recipe.warnings[0].startswith(
        f"{FILE}: warning: gas = '{gas}' with bare lithium in the base Li/Cu"
    )


def test_nitrogen_without_lithium_does_not_warn() -> None:
    assert parse_recipe(LITHIUM_FREE.replace('gas = "Ar"\nmax', 'gas = "N2"\nmax'), FILE).warnings == ()


def test_gas_mixtures_are_accepted() -> None:
    assert parse_recipe(GOOD.replace('gas = "Ar"\nmax', 'gas = "Ar+He"\nmax'), FILE).gas == "Ar+He"


def test_bad_target_formula_is_one_line_on_the_target() -> None:
    line = only_violation(GOOD.replace("57Li2S-38SiS2-5Li3PO4", "57Li2S-38SiS2-15Li3PO4"))
    assert line.startswith(f"{FILE}: targets[1].material = '57Li2S-38SiS2-15Li3PO4': ")
    assert "add up to 110, not 100" in line


def test_a_target_the_thickness_monitor_cannot_measure_is_refused() -> None:
    line = only_violation(GOOD.replace("57Li2S-38SiS2-5Li3PO4", "LiSiPO"))
    assert line.startswith(f"{FILE}: targets[1].material = 'LiSiPO': ")
    assert "no film density" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("57Li2S-38SiS2-5Li3PO4", [("Li2S", 57.0), ("SiS2", 38.0), ("Li3PO4", 5.0)]),
        ("57Li2S-38SiS2-5(Li2O-P2O5)", [("Li2S", 57.0), ("SiS2", 38.0), ("Li2O-P2O5", 5.0)]),
        ("60Li2S-39.5GeS2-0.5Li4SiO4", [("Li2S", 60.0), ("GeS2", 39.5), ("Li4SiO4", 0.5)]),
        ("60Li2S-40SiS2", [("Li2S", 60.0), ("SiS2", 40.0)]),
        ("Li6PS5Cl", [("Li6PS5Cl", 100.0)]),
    ],
)
def test_mole_ratio_parsing(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_mole_ratio(text) == tuple(Component(f, p) for f, p in expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("57Li2S-38SiS2-15Li3PO4", "add up to 110, not 100"),
        ("57Li2S-38SiS2", "add up to 95, not 100"),
        ("57Li2S-SiS2", "'SiS2' in '57Li2S-SiS2' needs a mole-percent coefficient"),
        ("57Li2S-38SiS2-5(Li2O-P2O5", "unbalanced parentheses"),
        ("57Li2S--43SiS2", "empty component"),
        ("57Li2S-43SiS2x", "not a chemical formula"),
    ],
)
def test_bad_mole_ratios_say_why(text: str, message: str) -> None:
    with pytest.raises(FormulaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_mole_ratio(text)


def test_bad_toml_and_missing_file_are_one_line() -> None:
    assert violations("name = ")[0].startswith(f"{FILE}: (syntax) = '': is not valid TOML")
    with pytest.raises(RecipeError) as info:
        load_recipe("/nonexistent/recipe.toml")
    missing = "/nonexistent/recipe.toml"
    assert info.value.violations == (
        f"{missing}: (file) = '{missing}': cannot be read: No such file or directory",
    )


def _depline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_cli_accepts_the_shipped_recipes() -> None:
    result = _depline("recipe", "check", *map(str, SHIPPED))
    assert result.returncode == 0, result.stderr
    # one line per process step (source, power, rate, expected duration), then one "ok" per file
    lines = [line for line in result.stdout.splitlines() if ": ok: " in line]
    assert len(lines) == len(SHIPPED)
    assert all(line.endswith(" steps on line 'line1'") for line in lines)
    layers = [line for line in result.stdout.splitlines() if " µm by " in line]
    assert len(layers) == 9
    assert all("expected " in line and " nm/s" in line for line in layers)


def test_cli_rejects_a_bad_recipe_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "hot.toml"
    bad.write_text(
        GOOD.replace("temp_c = 130.0", "temp_c = 185.0").replace("thickness_um = 5.0", "thickness_um = 50.0")
    )
    result = _depline("recipe", "check", str(SHIPPED[0]), str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout.count(": ok: ") == 1
    assert result.stderr.splitlines() == [
        f"{bad}: steps[1].thickness_um = 50.0: allowed range is 0.1 .. 20",
        f"{bad}: steps[3].temp_c = 185.0: must be below 179 °C: lithium is present "
        "(from the lithium layer of steps[1])",
    ]


@pytest.mark.parametrize(
    ("old", "new", "field", "allowed"),
    [
        ('kind = "etch"', "kind = {}", "steps[0].kind", "must be a string"),
        ('kind = "anneal"', "kind = [1, 2]", "steps[3].kind", "must be a string"),
        ("temp_c = 130.0", "temp_c = nan", "steps[3].temp_c", "finite"),
        ("thickness_um = 10.0", "thickness_um = -inf", "base.thickness_um", "finite"),
        ('id = "T1"', 'id = "a/b"', "targets[0].id", "no '/'"),
        ('id = "T1"', 'id = ""', "targets[0].id", "1..64"),
        ('id = "T1"', f'id = "{"T" * 65}"', "targets[0].id", "1..64"),
        ('id = "T1"', 'id = "T\\u0000"', "targets[0].id", "printable"),
    ],
)
def test_hostile_values_are_violations_not_tracebacks(old: str, new: str, field: str, allowed: str) -> None:
    lines = violations(GOOD.replace(old, new, 1))
    line = next(v for v in lines if v.startswith(f"{FILE}: {field} = "))
    assert allowed in line
    assert all("\n" not in v for v in lines)


def test_hostile_files_are_one_violation_naming_the_file(tmp_path: Path) -> None:
    cases = {
        "bytes.toml": b'name = "x\xfe"\n',
        "deep.toml": ("x = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
        "digits.toml": ("x = " + "7" * 5000 + "\n").encode(),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(RecipeError) as info:
            load_recipe(path)
        assert len(info.value.violations) == 1
        assert info.value.violations[0].startswith(f"{path}: (")
