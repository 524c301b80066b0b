"""The recipe's atmosphere limits at run time: the stricter of the recipe's and the line's, judged on
the same evidence the line's classification used."""

from __future__ import annotations

import pytest

from controller.config.line_config import Limits
from controller.line.atmosphere import Atmosphere, Classification, Provenance
from controller.line.state import SpaceState
from sequences.recipe import RecipeError, parse_recipe
from sequences.recipe_limits import recipe_shortfall

RECIPE = """
name = "dry"
max_frost_point_c = -60.0
max_o2_ppmv = 1.0
[base]
material = "Cu"
thickness_um = 10.0
[[steps]]
kind = "anneal"
temp_c = 60.0
duration_s = 60.0
"""


def _space(evidence: dict[str, float | str]) -> SpaceState:
    classification = Classification(Atmosphere.INERT_IN_SPEC, "in spec by the line", True, evidence)
    return SpaceState("inlet", "antechamber", classification, Provenance(0.0), 101_325.0, {}, False)


def test_a_space_in_the_lines_spec_can_miss_the_recipes_stricter_one() -> None:
    recipe = parse_recipe(RECIPE, "dry.toml")
    limits = Limits()  # -50 °C, 10 ppm
    assert recipe_shortfall(_space({"frost_point_c": -65.0, "o2_ppmv": 0.5}), recipe, limits) is None
    wet = recipe_shortfall(_space({"frost_point_c": -55.0, "o2_ppmv": 0.5}), recipe, limits)
    assert wet == "inlet frost point -55.0 °C is above the recipe's -60 °C"
    o2 = recipe_shortfall(_space({"frost_point_c": -65.0, "o2_ppmv": 5.0}), recipe, limits)
    assert o2 == "inlet O2 5 ppm is above the recipe's 1 ppm"
    estimated = recipe_shortfall(_space({"frost_point_c": -65.0, "o2_estimate_ppmv": 0.5}), recipe, limits)
    assert estimated is not None
    assert "estimate" in estimated


def test_a_recipe_looser_than_the_line_changes_nothing() -> None:
    recipe = parse_recipe(RECIPE.replace("-60.0", "-50.0").replace("= 1.0", "= 10.0"), "r.toml")
    strict = Limits(max_frost_point_c=-70.0, max_o2_ppmv=0.5)
    assert recipe_shortfall(_space({"frost_point_c": -55.0, "o2_ppmv": 5.0}), recipe, strict) is None


def test_a_recipe_cannot_ask_for_more_o2_than_the_method_allows() -> None:
    with pytest.raises(RecipeError, match=r"max_o2_ppmv = 50.0"):
        parse_recipe(RECIPE.replace("max_o2_ppmv = 1.0", "max_o2_ppmv = 50.0"), "r.toml")
