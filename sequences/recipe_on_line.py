"""A recipe held against the line it will run on, before anything moves.

A recipe valid by the process windows can still be one this line cannot run: a gas it has no bottle
of (an H2 etch on an Ar-only line), a purity its supply does not reach, a method no source of the
chamber serves, a power outside a source's window, a background gas its laser cannot run in, a layer
that would take longer than the line allows. Each is refused in one line naming the recipe's field
and the line's, the same way `recipe check --config` and the batch start report them.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.line_config import LineConfig
from controller.errors import UserError
from sequences.layer_plan import EtchPlan, LayerPlan, duration_text, plan_steps, step_chambers
from sequences.line_route import chambers_in_order
from sequences.recipe import DRY_AIR, AnnealStep, DepositStep, EtchStep, Recipe

UNHEATED_BELOW_C = 40.0  # DESIGN §2: room temperature, an unheated substrate, is below 40 °C


class RecipeDoesNotFitLine(UserError):
    def __init__(self, refusals: list[str]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("\n".join(refusals))


@dataclass(frozen=True, slots=True)
class RecipeOnLine:
    recipe: Recipe
    plans: tuple[LayerPlan | EtchPlan | None, ...]

    def lines(self) -> list[str]:
        """One line per process step: what it runs on, at what power, for how long."""
        shown: list[str] = []
        for step, plan in zip(self.recipe.steps, self.plans, strict=True):
            if isinstance(plan, LayerPlan) and isinstance(step, DepositStep):
                pulse = (
                    f" at {plan.pulse_rate_hz:g} Hz, {plan.fluence_j_cm2:.3g} J/cm²"
                    if plan.pulse_rate_hz
                    else ""
                )
                assist = f" + {plan.assist_source} {plan.assist_power_w:g} W" if plan.assist_source else ""
                shown.append(
                    f"{self.recipe.path}: {plan.step} {step.layer} {step.thickness_um:g} µm by "
                    f"{step.method.replace('_', ' ')} in {plan.chamber}: {plan.source} {plan.power_w:g} W"
                    f"{pulse}{assist}, {plan.rate_nm_s:.3g} nm/s, expected {duration_text(plan.expected_s)}, "
                    f"budget {plan.budget_s:.0f} s"
                )
            elif isinstance(plan, EtchPlan) and isinstance(step, EtchStep):
                shown.append(
                    f"{self.recipe.path}: {plan.step} etch ({step.gas}) in {plan.chamber}: {plan.source} "
                    f"{plan.power_w:g} W at {plan.process_pressure_pa:g} Pa for {step.duration_s:g} s"
                )
        return shown


def check_recipe_on_line(recipe: Recipe, config: LineConfig) -> RecipeOnLine:
    """The recipe's plan on `config`; `RecipeDoesNotFitLine` lists every mismatch, one line each.

    On a line with two deposition systems each step is held against the chamber it will run in."""
    chambers = chambers_in_order(config)
    plans, layer_refusals = plan_steps(recipe, config, chambers)
    where = step_chambers(recipe, config, chambers)
    refusals = _gas_refusals(recipe, config, where) + layer_refusals
    refusals += _heater_refusals(recipe, config, where)
    if refusals:
        raise RecipeDoesNotFitLine(refusals)
    return RecipeOnLine(recipe, tuple(plans))


def _supplies_text(config: LineConfig) -> str:
    written = "[[gas_supplies]]" in config.text
    listed = "; ".join(f"{s.gas} {s.purity_percent:g} % to {', '.join(s.feeds)}" for s in config.gas_supplies)
    return f"gas_supplies{'' if written else ' (none given: the standard Ar supply)'}: {listed}"


def _gas_refusals(recipe: Recipe, config: LineConfig, chambers: list[str | None]) -> list[str]:
    out: list[str] = []
    where = f"{config.path}: {_supplies_text(config)}"
    gases = [recipe.gas] if recipe.gas == DRY_AIR else recipe.gas.split("+")
    for gas in gases:
        supplies = [s for s in config.gas_supplies if s.gas == gas]
        if not supplies:
            out.append(f"{recipe.path}: gas = {recipe.gas!r}: the line has no {gas} supply ({where})")
            continue
        missing = [s for s in config.spaces if not any(s.name in sup.feeds for sup in supplies)]
        if missing:
            names = ", ".join(s.name for s in missing)
            out.append(f"{recipe.path}: gas = {recipe.gas!r}: {gas} does not reach {names} ({where})")
        best = max(s.purity_percent for s in supplies)
        if best < recipe.gas_purity_percent:
            out.append(
                f"{recipe.path}: gas_purity_percent = {recipe.gas_purity_percent:g}: the line's {gas} "
                f"supply is {best:g} % ({where})"
            )
    for index, (step, chamber) in enumerate(zip(recipe.steps, chambers, strict=True)):
        if chamber is None:  # refused by the layer plan already
            continue
        process_gas, mfc_field = _process_gas(config, chamber)
        if isinstance(step, EtchStep):
            fed = any(s.gas == step.gas and chamber in s.feeds for s in config.gas_supplies)
            if not fed:
                out.append(
                    f"{recipe.path}: steps[{index}].gas = {step.gas!r}: {chamber} has no {step.gas} supply "
                    f"({where})"
                )
            elif process_gas != step.gas:
                out.append(
                    f"{recipe.path}: steps[{index}].gas = {step.gas!r}: {chamber}'s mass-flow controller "
                    f"delivers {process_gas} ({config.path}: {mfc_field})"
                )
        elif (
            isinstance(step, DepositStep)
            and step.process_pressure_pa is not None
            and recipe.gas != process_gas
        ):
            out.append(
                f"{recipe.path}: gas = {recipe.gas!r}: steps[{index}] runs in process gas, and {chamber}'s "
                f"mass-flow controller delivers {process_gas} ({config.path}: {mfc_field})"
            )
    return out


def _heater_refusals(recipe: Recipe, config: LineConfig, where: list[str | None]) -> list[str]:
    """Every substrate and heat-treatment temperature of the recipe within the range its chamber's
    substrate heater holds (its `params.min_c`/`max_c`): a setpoint the heater cannot reach would
    otherwise be found out at run time, with the electrode already in the chamber. A step with no
    chamber is refused by the layer plan already."""
    out: list[str] = []
    for number, (step, chamber) in enumerate(zip(recipe.steps, where, strict=True)):
        if chamber is None:
            continue
        key, temp = (
            ("temp_c", step.temp_c)
            if isinstance(step, AnnealStep)
            else ("substrate_temp_c", step.substrate_temp_c)
        )
        out += _heater_refusal(recipe, config, chamber, f"steps[{number}].{key}", temp)
    return out


def _heater_refusal(recipe: Recipe, config: LineConfig, chamber: str, field: str, temp: float) -> list[str]:
    found = [
        (index, device)
        for index, device in enumerate(config.devices)
        if device.family == "temperature_controller"
        and device.space == chamber
        and device.params.get("heater") == "substrate"
    ]
    if not found:
        if temp < UNHEATED_BELOW_C:
            return []
        return [
            f"{recipe.path}: {field} = {temp:g}: {chamber} has no substrate heater "
            f"({config.path}: no temperature_controller with heater = 'substrate' in {chamber})"
        ]
    index, heater = found[0]
    low, high = float(heater.params["min_c"]), float(heater.params["max_c"])
    if low <= temp <= high:
        return []
    bound = "max_c" if temp > high else "min_c"
    return [
        f"{recipe.path}: {field} = {temp:g}: outside the range of {chamber}'s substrate heater "
        f"{low:g}..{high:g} °C ({config.path}: devices[{index}].params.{bound} ({heater.name}))"
    ]


def _process_gas(config: LineConfig, chamber: str) -> tuple[str, str]:
    for index, device in enumerate(config.devices):
        if device.family == "mass_flow_controller" and device.space == chamber:
            return str(device.params.get("gas", "Ar")), f"devices[{index}].params.gas ({device.name})"
    return "none", f"no mass_flow_controller in {chamber}"
