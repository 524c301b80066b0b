"""Recipes: a TOML file becomes frozen step objects, checked against the process windows (DESIGN.md §2).

Validation is pure and reports *every* violation of a file, one line each, in the same shape as
`ConfigFileError` ("FILE: steps[2].substrate_temp_c = 190.0: must be below 179 °C: ..."), because an
operator fixing a recipe wants the whole list at once, not one round trip per mistake.

Material limits come from the one materials table (`controller.line.materials`): whether a target is
lithium (reacts with N2) or a sulfide (air-sensitive, no N2 reaction), and the temperatures nothing
holding it may see. Lithium present — in the base or from an earlier (or the current) lithium
layer — caps every temperature below 179 °C; without it each step keeps its own window. A target
must also have the film density the thickness monitor is programmed with: a shorthand without a
composition ("LiSiPO") cannot be measured and is refused here, not at its deposit step.

Choices marked [U] (not fixed by DESIGN.md): a "metal" layer is 0.01–100 µm; deposition substrate
temperature floor is 0 °C; laser ablation may run with a background gas of at most 1 Pa; evaporation
runs in vacuum and takes no process pressure; the N2 / dry-air warning for lithium is given when
lithium is bare in the gas: a lithium base at loading, or a lithium layer left uncovered at the end.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from controller.config.reader import TableReader, file_text, toml_table
from controller.errors import MISSING, ConfigFileError, UserError
from controller.line.compositions import Component, is_mole_ratio, parse_mole_ratio
from controller.line.items import ITEM_ID_RULE, valid_item_id
from controller.line.materials import (
    LITHIUM_MAX_TEMP_C,
    WETTING_FILMS,
    MaterialError,
    film_properties,
    material,
)

T = TypeVar("T")

INERT_GASES = ("He", "Ne", "Ar", "Kr", "N2")
DRY_AIR = "dry_air"
ETCH_GASES = ("Ar", "H2")
METHODS = ("sputtering", "evaporation", "laser_ablation", "ion_plating")
LAYERS = ("lithium", "electrolyte", "metal", "wetting")
STEP_KINDS = ("etch", "deposit", "anneal")

MAX_FROST_POINT_C = -50.0
MAX_O2_PPMV = 10.0  # glovebox practice: < 1-10 ppm (DESIGN §2); a recipe may ask for less
MAX_BASE_PRESSURE_PA = 1.33e-4  # 1e-6 Torr before any deposition
PROCESS_PRESSURE_PA = {"sputtering": (0.1, 1.0), "ion_plating": (0.1, 1.0), "laser_ablation": (0.0, 1.0)}
GAS_METHODS_REQUIRED = ("sputtering", "ion_plating")
# a "wetting" layer is the method's 1-500 nm wetting / alloying film (Ag, Si, Mg, Sn, C) under lithium
LAYER_THICKNESS_UM = {
    "lithium": (0.1, 20.0),
    "electrolyte": (0.01, 10.0),
    "metal": (0.01, 100.0),
    "wetting": (0.001, 0.5),
}
BASE_THICKNESS_UM = (1.0, 100.0)
ETCH_TEMP_C = (20.0, 250.0)
DEPOSIT_TEMP_C = (0.0, 200.0)
ANNEAL_TEMP_C = (40.0, 200.0)
# [U] windows of the source settings a recipe may give (the line's source table narrows them further)
ETCH_PRESSURE_PA = (0.1, 1.0)
DEFAULT_ETCH_PRESSURE_PA = 0.3
SOURCE_POWER_W = (0.01, 5000.0)
DEPOSITION_RATE_NM_S = (0.001, 100.0)
ASSIST_POWER_W = (10.0, 1000.0)  # the ion source assisting an evaporation (ion plating)
SUBSTRATE_BIAS_V = (-1000.0, 0.0)
FLUENCE_J_CM2 = (0.1, 20.0)  # laser ablation of sulfide glasses and lithium: ~1-5 J/cm2
PULSE_RATE_HZ = (0.1, 100.0)
METHOD_ONLY_FIELDS = {
    "assist_power_w": ("ion_plating", ASSIST_POWER_W),
    "substrate_bias_v": ("ion_plating", SUBSTRATE_BIAS_V),
    "fluence_j_cm2": ("laser_ablation", FLUENCE_J_CM2),
    "pulse_rate_hz": ("laser_ablation", PULSE_RATE_HZ),
}
TEMPERATURE_WINDOWS = {
    "etch": ("substrate_temp_c", ETCH_TEMP_C, "an etch"),
    "deposit": ("substrate_temp_c", DEPOSIT_TEMP_C, "deposition"),
    "anneal": ("temp_c", ANNEAL_TEMP_C, "heat treatment"),
}


class RecipeError(UserError):
    """A recipe file breaks one or more rules; `violations` holds one self-contained line per rule."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = tuple(violations)
        super().__init__("\n".join(self.violations))


@dataclass(frozen=True, slots=True)
class BaseSpec:
    material: str
    thickness_um: float
    size_mm: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class TargetSpec:
    id: str
    material: str
    components: tuple[Component, ...]
    lithium: bool
    sulfide: bool


@dataclass(frozen=True, slots=True)
class EtchStep:
    gas: str
    substrate_temp_c: float
    duration_s: float
    power_w: float | None = None  # None: the line's ion source default
    process_pressure_pa: float = DEFAULT_ETCH_PRESSURE_PA
    chamber: str | None = None  # the process chamber (deposition system) it runs in; None: the line picks
    kind: Literal["etch"] = "etch"


@dataclass(frozen=True, slots=True)
class DepositStep:
    layer: str  # one of LAYERS
    method: str  # one of METHODS
    target: str
    thickness_um: float
    substrate_temp_c: float
    base_pressure_pa: float
    process_pressure_pa: float | None
    # the source's setting: a power, or a rate the line's source table turns into one; neither: the
    # line's default power for the source (controller.config.source_table)
    power_w: float | None = None
    rate_nm_s: float | None = None
    assist_power_w: float | None = None  # ion plating: the ion source's power
    substrate_bias_v: float | None = None  # ion plating: needs a substrate bias supply on the line
    fluence_j_cm2: float | None = None  # laser ablation
    pulse_rate_hz: float | None = None  # laser ablation
    chamber: str | None = None  # the process chamber (deposition system) it runs in; None: the line picks
    kind: Literal["deposit"] = "deposit"


@dataclass(frozen=True, slots=True)
class AnnealStep:
    temp_c: float
    duration_s: float
    chamber: str | None = None  # the process chamber (deposition system) it runs in; None: the line picks
    kind: Literal["anneal"] = "anneal"


Step = EtchStep | DepositStep | AnnealStep


@dataclass(frozen=True, slots=True)
class Recipe:
    path: str
    name: str
    description: str
    gas: str
    gas_purity_percent: float
    max_frost_point_c: float
    base: BaseSpec
    targets: tuple[TargetSpec, ...]
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    max_o2_ppmv: float = MAX_O2_PPMV

    def target(self, target_id: str) -> TargetSpec:
        return next(t for t in self.targets if t.id == target_id)


# ---------------------------------------------------------------------------------------------- parsing


class _Violations:
    """Turns the first-error-raises style of TableReader into a list of every error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []

    def get(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except ConfigFileError as exc:
            self.lines.append(str(exc))
            return None

    def add(self, field: str, value: Any, allowed: str) -> None:
        self.lines.append(str(ConfigFileError(self.path, field, value, allowed)))


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; RecipeError lists every violation."""
    name = str(path)
    try:
        text = file_text(path, name)
    except ConfigFileError as exc:
        raise RecipeError([str(exc)]) from None
    return parse_recipe(text, name)


def parse_recipe(text: str, path: str = "<recipe>") -> Recipe:
    try:
        data = toml_table(text, path)
    except ConfigFileError as exc:
        raise RecipeError([str(exc)]) from None
    out = _Violations(path)
    top = TableReader(path, data)
    name = out.get(lambda: top.text("name"))
    description = out.get(lambda: top.text("description", ""))
    gas = out.get(lambda: top.text("gas", "Ar"))
    if gas is not None and not _gas_allowed(gas):
        out.add("gas", gas, f"must be one of {', '.join(INERT_GASES)}, a mixture such as Ar+He, or dry_air")
    purity = out.get(lambda: top.number("gas_purity_percent", 99.99, min=90.0, max=100.0))
    frost = out.get(lambda: top.number("max_frost_point_c", MAX_FROST_POINT_C, max=MAX_FROST_POINT_C))
    o2 = out.get(lambda: top.number("max_o2_ppmv", MAX_O2_PPMV, min=0.1, max=MAX_O2_PPMV))
    base = _read_base(top, out)
    target_ids: set[str] = set()
    targets = _read_targets(top, out, target_ids)
    steps = _read_steps(top, out, {t.id: t for t in targets}, target_ids)
    out.get(top.finish)
    warnings = _nitrogen_warnings(path, gas, base, steps)
    _check_temperatures(out, base, steps)
    if out.lines:
        raise RecipeError(out.lines)
    if (
        name is None or description is None or gas is None or purity is None or frost is None
        or base is None or o2 is None
    ):  # fmt: skip
        raise RecipeError([f"{path}: invalid recipe"])  # unreachable: each None above added a violation
    return Recipe(
        path, name, description, gas, purity, frost, base, tuple(targets),
        tuple(s for _, s in steps if s is not None), tuple(warnings), o2,
    )  # fmt: skip


def _gas_allowed(gas: str) -> bool:
    if gas == DRY_AIR:
        return True
    parts = gas.split("+")
    return all(p in INERT_GASES for p in parts) and len(set(parts)) == len(parts)


def _read_base(top: TableReader, out: _Violations) -> BaseSpec | None:
    reader = out.get(lambda: top.table_reader("base", required=True))
    if reader is None:
        return None
    name = out.get(lambda: reader.text("material"))
    if name is not None:
        try:
            material(name)
        except MaterialError as exc:
            out.add(reader.field("material"), name, str(exc))
            name = None
    low, high = BASE_THICKNESS_UM
    thickness = out.get(lambda: reader.number("thickness_um", min=low, max=high))
    size = _read_size(reader, out)
    out.get(reader.finish)
    if name is None or thickness is None:
        return None
    return BaseSpec(name, thickness, size)


def _read_size(reader: TableReader, out: _Violations) -> tuple[float, float] | None:
    if not reader.has("size_mm"):
        return None
    size = out.get(partial(reader.number_list, "size_mm", length=2, min=0.1, max=1000.0))
    return None if size is None else (size[0], size[1])


def _read_targets(top: TableReader, out: _Violations, seen: set[str]) -> list[TargetSpec]:
    """The valid targets; `seen` collects every id, so a step naming a broken target is not blamed twice."""
    readers = out.get(lambda: top.table_list("targets")) or []
    targets: list[TargetSpec] = []
    for reader in readers:
        target_id = out.get(partial(reader.text, "id"))
        formula = out.get(partial(reader.text, "material"))
        out.get(reader.finish)
        if target_id is not None and target_id in seen:
            out.add(reader.field("id"), target_id, "must be unique among [[targets]]")
            continue
        if target_id is None:
            continue
        seen.add(target_id)
        if not valid_item_id(target_id):  # it becomes part of the target's item id
            out.add(reader.field("id"), target_id, ITEM_ID_RULE)
            continue
        if formula is None:
            continue
        target = _target(reader, out, target_id, formula)
        if target is not None:
            targets.append(target)
    return targets


def _target(reader: TableReader, out: _Violations, target_id: str, formula: str) -> TargetSpec | None:
    try:
        components = parse_mole_ratio(formula) if is_mole_ratio(formula) else (Component(formula, 100.0),)
        limits = material(formula)
        film_properties(formula)  # the thickness monitor must be told the film's density to measure it
    except UserError as exc:  # FormulaError or MaterialError
        out.add(reader.field("material"), formula, str(exc))
        return None
    lithium = limits.reacts_with_n2
    # in the materials table the air-sensitive materials that do not take up nitrogen are the sulfides
    sulfide = limits.air_sensitive and not lithium
    return TargetSpec(target_id, formula, components, lithium, sulfide)


def _read_steps(
    top: TableReader, out: _Violations, targets: dict[str, TargetSpec], target_ids: set[str]
) -> list[tuple[TableReader, Step | None]]:
    """Every step table with its step object, None where the step has violations."""
    readers = out.get(lambda: top.table_list("steps")) or []
    if not readers and "steps" not in top.table:
        out.add("steps", MISSING, "a recipe needs at least one [[steps]] table")
    steps: list[tuple[TableReader, Step | None]] = []
    for reader in readers:
        kind = out.get(partial(reader.text, "kind", choices=STEP_KINDS))
        step: Step | None = None
        if kind == "etch":
            step = _read_etch(reader, out)
        elif kind == "deposit":
            step = _read_deposit(reader, out, targets, target_ids)
        elif kind == "anneal":
            step = _read_anneal(reader, out)
        else:
            steps.append((reader, None))
            continue
        chamber = _read_chamber(reader, out)
        out.get(reader.finish)
        if step is not None and chamber is not None:
            step = dataclasses.replace(step, chamber=chamber)
        steps.append((reader, step))
    return steps


def _read_chamber(reader: TableReader, out: _Violations) -> str | None:
    """A step may name the deposition system it runs in (a line with two: the process chamber's name);
    whether the line has it is `recipe check --config`'s question (sequences.layer_plan)."""
    if not reader.has("chamber"):
        return None
    name = out.get(lambda: reader.text("chamber"))
    if name is not None and not (0 < len(name) <= 64 and all(c.isalnum() or c in "_-." for c in name)):
        out.add(
            reader.field("chamber"), name, "a process chamber's name: 1..64 letters, digits, '_', '-', '.'"
        )
        return None
    return name


def _read_etch(reader: TableReader, out: _Violations) -> EtchStep | None:
    gas = out.get(lambda: reader.text("gas", choices=ETCH_GASES))
    temp = out.get(lambda: reader.number("substrate_temp_c"))
    duration = out.get(lambda: reader.number("duration_s", min=1.0, max=86400.0))
    power = _optional_number(reader, out, "power_w", SOURCE_POWER_W)
    low, high = ETCH_PRESSURE_PA
    pressure = out.get(
        lambda: reader.number("process_pressure_pa", DEFAULT_ETCH_PRESSURE_PA, min=low, max=high)
    )
    if gas is None or temp is None or duration is None or power is False or pressure is None:
        return None
    return EtchStep(gas, temp, duration, power, pressure)


def _optional_number(
    reader: TableReader, out: _Violations, key: str, window: tuple[float, float]
) -> float | Literal[False] | None:
    """The value, None when absent, False when invalid (its violation is on the list)."""
    if not reader.has(key):
        return None
    low, high = window
    value = out.get(lambda: reader.number(key, min=low, max=high))
    return False if value is None else value


def _source_settings(
    reader: TableReader, out: _Violations, method: str | None
) -> dict[str, float | None] | None:
    """power_w or rate_nm_s, and the method's own fields; a field of another method is refused."""
    settings: dict[str, float | None] = {}
    ok = True
    if reader.has("power_w") and reader.has("rate_nm_s"):
        reader._seen.update(("power_w", "rate_nm_s"))
        out.add(reader.field("rate_nm_s"), reader.table["rate_nm_s"], "give power_w or rate_nm_s, not both")
        return None
    for key, window in (("power_w", SOURCE_POWER_W), ("rate_nm_s", DEPOSITION_RATE_NM_S)):
        value = _optional_number(reader, out, key, window)
        ok = ok and value is not False
        settings[key] = None if value is False else value
    if method == "laser_ablation" and settings["power_w"] is not None:
        out.add(
            reader.field("power_w"),
            settings["power_w"],
            "laser ablation is set by fluence_j_cm2 and pulse_rate_hz",
        )
        ok = False
    for key, (only, window) in METHOD_ONLY_FIELDS.items():
        if reader.has(key) and method is not None and method != only:
            reader._seen.add(key)
            out.add(
                reader.field(key), reader.table[key], f"{only.replace('_', ' ')} only: omit it for {method}"
            )
            ok = False
            continue
        value = _optional_number(reader, out, key, window)
        ok = ok and value is not False
        settings[key] = None if value is False else value
    if (
        method == "laser_ablation"
        and settings["fluence_j_cm2"] is not None
        and settings["rate_nm_s"] is not None
    ):
        out.add(reader.field("rate_nm_s"), settings["rate_nm_s"], "give fluence_j_cm2 or rate_nm_s, not both")
        ok = False
    return settings if ok else None


def _read_anneal(reader: TableReader, out: _Violations) -> AnnealStep | None:
    temp = out.get(lambda: reader.number("temp_c"))
    duration = out.get(lambda: reader.number("duration_s", min=1.0, max=86400.0))
    if temp is None or duration is None:
        return None
    return AnnealStep(temp, duration)


def _read_deposit(
    reader: TableReader, out: _Violations, targets: dict[str, TargetSpec], target_ids: set[str]
) -> DepositStep | None:
    layer = out.get(lambda: reader.text("layer", choices=LAYERS))
    method = out.get(lambda: reader.text("method", choices=METHODS))
    target_id = out.get(lambda: reader.text("target"))
    if target_id is not None and target_id not in target_ids:
        known = ", ".join(sorted(target_ids)) or "none defined"
        out.add(reader.field("target"), target_id, f"must name a [[targets]] id ({known})")
    if target_id not in targets:
        target_id = None  # unknown, or a target whose own violation is already reported
    if target_id is not None and layer is not None:
        _check_target_fits_layer(reader, out, layer, targets[target_id])
    thickness = None
    if layer is not None:
        low, high = LAYER_THICKNESS_UM[layer]
        thickness = out.get(lambda: reader.number("thickness_um", min=low, max=high))
    temp = out.get(lambda: reader.number("substrate_temp_c"))
    base_pa = out.get(lambda: reader.number("base_pressure_pa", min=0.0, max=MAX_BASE_PRESSURE_PA))
    process_pa = _read_process_pressure(reader, out, method)
    settings = _source_settings(reader, out, method)
    if (
        layer is None
        or method is None
        or target_id is None
        or thickness is None
        or temp is None
        or base_pa is None
        or process_pa is False
        or settings is None
    ):
        return None
    return DepositStep(
        layer, method, target_id, thickness, temp, base_pa, process_pa,
        power_w=settings["power_w"], rate_nm_s=settings["rate_nm_s"],
        assist_power_w=settings["assist_power_w"], substrate_bias_v=settings["substrate_bias_v"],
        fluence_j_cm2=settings["fluence_j_cm2"], pulse_rate_hz=settings["pulse_rate_hz"],
    )  # fmt: skip


def _check_target_fits_layer(reader: TableReader, out: _Violations, layer: str, target: TargetSpec) -> None:
    if layer == "lithium" and not target.lithium:
        out.add(
            reader.field("target"),
            target.id,
            f"a lithium layer needs a Li or Li-alloy target, not {target.material}",
        )
    elif layer == "electrolyte" and not target.sulfide:
        out.add(
            reader.field("target"),
            target.id,
            f"an electrolyte layer needs a sulfide target, not {target.material}",
        )
    elif layer == "wetting" and target.material not in WETTING_FILMS:
        out.add(
            reader.field("target"),
            target.id,
            f"a wetting layer is one of {', '.join(WETTING_FILMS)}, not {target.material}",
        )
    elif layer == "metal" and (target.lithium or target.sulfide):
        out.add(
            reader.field("target"), target.id, f"a metal layer needs a metal target, not {target.material}"
        )


def _read_process_pressure(reader: TableReader, out: _Violations, method: str | None) -> float | bool | None:
    """The process pressure, None where the method takes none, False when invalid."""
    if method is None:
        reader._seen.add("process_pressure_pa")
        return False
    if method not in PROCESS_PRESSURE_PA:
        if reader.has("process_pressure_pa"):
            reader._seen.add("process_pressure_pa")
            value = reader.table["process_pressure_pa"]
            out.add(reader.field("process_pressure_pa"), value, f"{method} runs in vacuum: omit this field")
            return False
        return None
    low, high = PROCESS_PRESSURE_PA[method]
    if method not in GAS_METHODS_REQUIRED and not reader.has("process_pressure_pa"):
        return None
    value = out.get(lambda: reader.number("process_pressure_pa", min=low, max=high))
    return False if value is None else value


# ---------------------------------------------------------------------------------------------- limits


def _check_temperatures(
    out: _Violations,
    base: BaseSpec | None,
    steps: list[tuple[TableReader, Step | None]],
) -> None:
    """Walk the steps in order, tracking where lithium came from, and hold each temperature to its window.

    Reads the raw step tables, so a step with other violations still counts (and is checked).
    """
    lithium_from = f"the base {base.material}" if base is not None and _base_has_lithium(base) else None
    for reader, _ in steps:
        kind = reader.table.get("kind")
        if not isinstance(kind, str):
            continue  # a wrong type: already reported by the reader
        if kind == "deposit" and reader.table.get("layer") == "lithium" and lithium_from is None:
            lithium_from = f"the lithium layer of {reader.prefix}"
        if kind not in TEMPERATURE_WINDOWS:
            continue
        field, (low, high), what = TEMPERATURE_WINDOWS[kind]
        value = reader.table.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue  # missing or not a number: already reported by the reader
        if lithium_from is not None and value >= LITHIUM_MAX_TEMP_C:
            out.add(
                reader.field(field),
                value,
                f"must be below {LITHIUM_MAX_TEMP_C:g} °C: lithium is present (from {lithium_from})",
            )
        elif not low <= value <= high:
            cap = f"below {LITHIUM_MAX_TEMP_C:g}" if lithium_from is not None else f"{high:g}"
            out.add(reader.field(field), value, f"allowed range for {what} is {low:g} .. {cap} °C")


def _base_has_lithium(base: BaseSpec) -> bool:
    return material(base.material).reacts_with_n2


def _nitrogen_warnings(
    path: str,
    gas: str | None,
    base: BaseSpec | None,
    steps: list[tuple[TableReader, Step | None]],
) -> list[str]:
    """Lithium bare in N2 forms Li3N and in dry air oxidises: allowed by §2, but worth a warning."""
    if gas is None or not (gas == DRY_AIR or "N2" in gas.split("+")):
        return []
    warnings: list[str] = []
    if base is not None and _base_has_lithium(base):
        warnings.append(f"{path}: warning: gas = {gas!r} with bare lithium in the base {base.material}")
    deposits = [(r, s) for r, s in steps if isinstance(s, DepositStep)]
    if deposits and deposits[-1][1].layer == "lithium":
        reader = deposits[-1][0]
        warnings.append(f"{path}: warning: gas = {gas!r} with the lithium layer of {reader.prefix} left bare")
    return [w + " (Li3N in N2, oxidation in dry air)" for w in warnings]
