"""What each process step of a recipe asks of the line it runs on: the source, its power, the rate that
power gives for the layer's material, the expected duration, and the step's time budget.

The figures come from the line's source table (controller.config.source_table), the one place a site
writes what its sources do; the recipe gives a power, a rate, a laser fluence and pulse rate, or
nothing (the source's default power). The budget is the expected duration times the line's
`layer_time_margin` plus `step_timeout_s` for heating, gas and presputter: a thick layer gets the time
it needs, and a source giving half its calibrated rate is still a fault, not an endless wait.

A step the line cannot run is refused here, before anything moves, in one line naming the recipe's
field and the line's (`LineMismatch`).

On a line with two deposition systems each step also gets its chamber: the one it names, or else the
first chamber, from where the electrode is on, whose sources serve the layer (an etch goes with the
layer after it, a heat treatment stays where the electrode is). The electrode travels one way along
the line, so a layer whose only chamber lies behind it is refused, as is a target needed in two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.config.line_config import LineConfig
from controller.config.source_table import SourceEntry
from sequences.recipe import AnnealStep, DepositStep, EtchStep, Recipe, Step


@dataclass(frozen=True, slots=True)
class LayerPlan:
    step: str  # "steps[2]"
    chamber: str
    source: str
    power_w: float
    rate_nm_s: float
    expected_s: float
    budget_s: float
    pulse_rate_hz: float | None = None
    fluence_j_cm2: float | None = None
    assist_source: str | None = None
    assist_power_w: float | None = None


@dataclass(frozen=True, slots=True)
class EtchPlan:
    step: str
    chamber: str
    source: str
    power_w: float
    process_pressure_pa: float


@dataclass
class _Refusals:
    recipe: Recipe
    config: LineConfig
    lines: list[str]

    def add(self, field: str, value: object, why: str, line_field: str) -> None:
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        self.lines.append(f"{self.recipe.path}: {field} = {shown}: {why} ({self.config.path}: {line_field})")

    def source_field(self, entry: SourceEntry, key: str) -> str:
        index = self.config.sources.index(entry)
        written = "[[sources]]" in self.config.text
        return f"sources[{index}].{key}" + ("" if written else " of the standard rack (no [[sources]] given)")


def duration_text(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s ({seconds:.0f} s)"


def plan_steps(
    recipe: Recipe, config: LineConfig, chambers: Sequence[str]
) -> tuple[list[LayerPlan | EtchPlan | None], list[str]]:
    """A plan for every step (None for an anneal or a refused step) and the refusals, one line each.

    `chambers` are the line's process chambers in the order the electrode passes them."""
    out = _Refusals(recipe, config, [])
    where = _assign(out, recipe, chambers)
    plans: list[LayerPlan | EtchPlan | None] = []
    for index, (step, chamber) in enumerate(zip(recipe.steps, where, strict=True)):
        field = f"steps[{index}]"
        if chamber is None:
            plans.append(None)
        elif isinstance(step, DepositStep):
            plans.append(_plan_layer(out, recipe, step, field, chamber))
        elif isinstance(step, EtchStep):
            plans.append(_plan_etch(out, step, field, chamber))
        else:
            plans.append(None)
    return plans, out.lines


def step_chambers(recipe: Recipe, config: LineConfig, chambers: Sequence[str]) -> list[str | None]:
    """The chamber each step runs in (None where the line cannot say: that step is refused)."""
    return _assign(_Refusals(recipe, config, []), recipe, chambers)


def target_chambers(recipe: Recipe, config: LineConfig, chambers: Sequence[str]) -> dict[str, str]:
    """The chamber each target is carried to: where the layers that use it are deposited."""
    found: dict[str, str] = {}
    for step, chamber in zip(recipe.steps, step_chambers(recipe, config, chambers), strict=True):
        if isinstance(step, DepositStep) and chamber is not None:
            found.setdefault(step.target, chamber)
    return found


def _serves(config: LineConfig, chamber: str, step: Step) -> bool:
    if isinstance(step, DepositStep):
        return _pick(config, chamber, step.method, step.layer) is not None
    if isinstance(step, EtchStep):
        return _pick(config, chamber, "etch", None) is not None
    return True


def _assign(out: _Refusals, recipe: Recipe, chambers: Sequence[str]) -> list[str | None]:
    """Each step's chamber; a step that cannot have one is refused (and gets None)."""
    if len(chambers) == 1:  # one chamber: every step runs there, and its sources answer for it
        named = [i for i, s in enumerate(recipe.steps) if s.chamber is not None and s.chamber != chambers[0]]
        for index in named:
            _wrong_chamber(out, index, recipe.steps[index], chambers)
        return [None if i in named else chambers[0] for i in range(len(recipe.steps))]
    where: list[str | None] = [None] * len(recipe.steps)
    at = 0  # the electrode's chamber (index): it only moves forward
    for index, step in enumerate(recipe.steps):  # first what is fixed: named chambers and layers
        if step.chamber is not None:
            if step.chamber not in chambers:
                _wrong_chamber(out, index, step, chambers)
                continue
            where[index] = step.chamber
            at = max(at, chambers.index(step.chamber))
        elif isinstance(step, DepositStep):
            ahead = [c for c in chambers[at:] if _serves(out.config, c, step)]
            if not ahead:
                _no_chamber(out, index, step, chambers, chambers[:at])
                continue
            where[index] = ahead[0]
            at = chambers.index(ahead[0])
    for index, step in enumerate(recipe.steps):  # then etches and heat treatments around them
        if where[index] is not None or step.chamber is not None:
            continue
        before = next((c for c in reversed(where[:index]) if c is not None), chambers[0])
        after = next((c for c in where[index + 1 :] if c is not None), before)
        if isinstance(step, EtchStep):
            options = [c for c in (after, before) if _serves(out.config, c, step)]
            if not options:
                _no_chamber(out, index, step, chambers, [])
                continue
            where[index] = options[0]
        elif isinstance(step, AnnealStep):
            where[index] = before
    _check_order(out, recipe, where, chambers)
    _check_targets(out, recipe, where)
    return where


def _wrong_chamber(out: _Refusals, index: int, step: Step, chambers: Sequence[str]) -> None:
    out.add(
        f"steps[{index}].chamber", step.chamber,
        f"not a process chamber of the line ({', '.join(chambers)})", "spaces (kind = process_chamber)",
    )  # fmt: skip


def _no_chamber(
    out: _Refusals, index: int, step: Step, chambers: Sequence[str], behind: Sequence[str]
) -> None:
    what = f"a {step.layer} layer by {step.method}" if isinstance(step, DepositStep) else "an ion etch"
    served = [c for c in chambers if _serves(out.config, c, step)]
    why = (
        f"only {', '.join(served)} can do {what}, and the electrode has left it by then"
        if served and set(served) <= set(behind)
        else f"no chamber of the line can do {what}"
    )
    listed = "; ".join(f"{c}: {_sources_text(out.config, c)}" for c in chambers)
    key = "method" if isinstance(step, DepositStep) else "kind"
    value = step.method if isinstance(step, DepositStep) else "etch"
    out.add(f"steps[{index}].{key}", value, why, f"sources ({listed})")


def _check_order(out: _Refusals, recipe: Recipe, where: list[str | None], chambers: Sequence[str]) -> None:
    """The electrode passes the chambers one way: a step in a chamber it has already left is refused."""
    furthest = 0
    for index, chamber in enumerate(where):
        if chamber is None:
            continue
        position = chambers.index(chamber)
        if position < furthest:
            out.add(
                f"steps[{index}].chamber", chamber,
                f"the electrode has already gone on to {chambers[furthest]}: the line passes "
                f"{' -> '.join(chambers)} one way",
                "ports (the route through the line)",
            )  # fmt: skip
            where[index] = None
            continue
        furthest = position


def _check_targets(out: _Refusals, recipe: Recipe, where: list[str | None]) -> None:
    """A target is carried to one chamber and stays there."""
    seen: dict[str, tuple[int, str]] = {}
    for index, (step, chamber) in enumerate(zip(recipe.steps, where, strict=True)):
        if not isinstance(step, DepositStep) or chamber is None:
            continue
        first = seen.setdefault(step.target, (index, chamber))
        if first[1] != chamber:
            out.add(
                f"steps[{index}].target", step.target,
                f"{step.target} is in {first[1]} for steps[{first[0]}]: a target is carried to one chamber; "
                "give this layer a target of its own",
                "spaces (kind = process_chamber)",
            )  # fmt: skip
            where[index] = None


def _pick(config: LineConfig, chamber: str, method: str, layer: str | None) -> SourceEntry | None:
    for entry in config.sources_in(chamber):
        if method in entry.methods and (layer is None or layer in entry.layers):
            return entry
    return None


def _sources_text(config: LineConfig, chamber: str) -> str:
    return ", ".join(f"{e.name} ({'/'.join(e.methods)})" for e in config.sources_in(chamber)) or "none"


def _no_source(out: _Refusals, field: str, value: str, what: str, chamber: str) -> None:
    kinds = _sources_text(out.config, chamber)
    out.add(field, value, f"{chamber} has no source for {what}", f"sources in {chamber}: {kinds}")


def _plan_etch(out: _Refusals, step: EtchStep, field: str, chamber: str) -> EtchPlan | None:
    entry = _pick(out.config, chamber, "etch", None)
    if entry is None:
        _no_source(out, f"{field}.kind", "etch", "an ion etch", chamber)
        return None
    power = entry.default_power_w if step.power_w is None else step.power_w
    ok = _in_window(out, f"{field}.power_w", power, entry.power_w, out.source_field(entry, "power_w"), "W")
    ok &= _in_window(
        out, f"{field}.process_pressure_pa", step.process_pressure_pa, entry.pressure_pa,
        out.source_field(entry, "pressure_pa"), "Pa",
    )  # fmt: skip
    return EtchPlan(field, chamber, entry.name, power, step.process_pressure_pa) if ok else None


def _in_window(
    out: _Refusals, field: str, value: float, window: tuple[float, float], line_field: str, unit: str
) -> bool:
    low, high = window
    if low <= value <= high:
        return True
    out.add(field, value, f"outside the line's {low:g}..{high:g} {unit}", line_field)
    return False


def _plan_layer(
    out: _Refusals, recipe: Recipe, step: DepositStep, field: str, chamber: str
) -> LayerPlan | None:
    config = out.config
    material = recipe.target(step.target).material
    entry = _pick(config, chamber, step.method, step.layer)
    if entry is None:
        _no_source(out, f"{field}.method", step.method, f"a {step.layer} layer by {step.method}", chamber)
        return None
    per_w = entry.rate_per_w(material, step.layer)
    if not per_w:
        out.add(
            f"{field}.target", step.target,
            f"{entry.name} has no calibrated rate for {material} ({step.layer})",
            out.source_field(entry, "rate_nm_s_per_w"),
        )  # fmt: skip
        return None
    ok = _pressure_fits(out, step, field, entry, chamber)
    assist, assist_power = None, None
    if step.method == "ion_plating":
        assist_entry = next((e for e in config.sources_in(chamber) if e.kind == "ion_source"), None)
        if assist_entry is None or "ion_plating" not in assist_entry.methods:
            _no_source(out, f"{field}.method", step.method, "the ion assist of ion plating", chamber)
            return None
        assist = assist_entry.name
        default_assist = assist_entry.default_assist_power_w or assist_entry.default_power_w
        assist_power = default_assist if step.assist_power_w is None else step.assist_power_w
        ok &= _in_window(
            out, f"{field}.assist_power_w", assist_power, assist_entry.power_w,
            out.source_field(assist_entry, "power_w"), "W",
        )  # fmt: skip
    if step.substrate_bias_v is not None:
        out.add(
            f"{field}.substrate_bias_v", step.substrate_bias_v,
            f"{chamber} has no substrate bias supply to set", f"sources in {chamber}",
        )  # fmt: skip
        ok = False
    setting = _power(out, step, field, entry, per_w)
    if setting is None or not ok:
        return None
    power, pulse_rate, fluence = setting
    rate = per_w * (power - entry.threshold_w)
    expected = step.thickness_um * 1000.0 / rate
    seq = config.sequence
    if expected > seq.max_layer_s:
        out.add(
            f"{field}.thickness_um", step.thickness_um,
            f"expected {duration_text(expected)} at {power:g} W ({rate:.3g} nm/s on {entry.name}) "
            f"exceeds the line's maximum layer time {seq.max_layer_s:g} s",
            "sequence.max_layer_s",
        )  # fmt: skip
        return None
    budget = expected * seq.layer_time_margin + seq.step_timeout_s
    return LayerPlan(
        field, chamber, entry.name, power, rate, expected, budget, pulse_rate, fluence, assist, assist_power
    )


def _pressure_fits(out: _Refusals, step: DepositStep, field: str, entry: SourceEntry, chamber: str) -> bool:
    """A process or background gas pressure must be one the source runs in (ion plating: the assist's)."""
    if step.process_pressure_pa is None or step.method == "ion_plating":
        return True
    return _in_window(
        out, f"{field}.process_pressure_pa", step.process_pressure_pa, entry.pressure_pa,
        out.source_field(entry, "pressure_pa"), "Pa",
    )  # fmt: skip


def _power(
    out: _Refusals, step: DepositStep, field: str, entry: SourceEntry, per_w: float
) -> tuple[float, float | None, float | None] | None:
    """(power, pulse rate, fluence) the step runs its source at, or None when refused."""
    if entry.kind == "pulsed_laser":
        return _laser(out, step, field, entry, per_w)
    if step.power_w is not None:
        power, key = step.power_w, "power_w"
    elif step.rate_nm_s is not None:
        power, key = entry.threshold_w + step.rate_nm_s / per_w, "rate_nm_s"
    else:
        power, key = entry.default_power_w, "power_w"
    low, high = entry.power_w
    if not low <= power <= high or power <= entry.threshold_w:
        value = step.rate_nm_s if key == "rate_nm_s" else power
        out.add(
            f"{field}.{key}", value,
            f"needs {power:g} W on {entry.name}, outside the line's {low:g}..{high:g} W",
            out.source_field(entry, "power_w"),
        )  # fmt: skip
        return None
    return power, None, None


def _laser(
    out: _Refusals, step: DepositStep, field: str, entry: SourceEntry, per_w: float
) -> tuple[float, float | None, float | None] | None:
    spot = entry.spot_area_cm2 or 1.0
    pulse_low, pulse_high = entry.pulse_rate_hz or (0.0, 0.0)
    pulse_rate = step.pulse_rate_hz or entry.default_pulse_rate_hz or pulse_low
    if not _in_window(
        out, f"{field}.pulse_rate_hz", pulse_rate, (pulse_low, pulse_high),
        out.source_field(entry, "pulse_rate_hz"), "Hz",
    ):  # fmt: skip
        return None
    if step.fluence_j_cm2 is not None:
        power, key = step.fluence_j_cm2 * spot * pulse_rate, "fluence_j_cm2"
    elif step.rate_nm_s is not None:
        power, key = entry.threshold_w + step.rate_nm_s / per_w, "rate_nm_s"
    else:
        default_pulse = entry.default_pulse_rate_hz or pulse_rate
        power, key = entry.default_power_w / default_pulse * pulse_rate, "fluence_j_cm2"
    fluence = power / (spot * pulse_rate)
    if entry.max_pulse_energy_j is not None and fluence * spot > entry.max_pulse_energy_j:
        value = step.rate_nm_s if key == "rate_nm_s" else fluence
        out.add(
            f"{field}.{key}", value,
            f"needs {fluence * spot:.3g} J a pulse ({fluence:.3g} J/cm² on {spot:g} cm²), beyond the laser's "
            f"{entry.max_pulse_energy_j:g} J",
            out.source_field(entry, "max_pulse_energy_j"),
        )  # fmt: skip
        return None
    low, high = entry.power_w
    if not low <= power <= high:
        value = step.rate_nm_s if key == "rate_nm_s" else fluence
        out.add(
            f"{field}.{key}", value,
            f"needs {power:g} W ({fluence:.3g} J/cm² on {spot:g} cm² at {pulse_rate:g} Hz), "
            f"outside the line's {low:g}..{high:g} W",
            out.source_field(entry, "power_w"),
        )  # fmt: skip
        return None
    return power, pulse_rate, fluence
