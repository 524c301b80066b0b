"""The recipe's own atmosphere limits at run time: the stricter of the recipe's and the line's.

The line classifies every space by its configured limits (controller.line.atmosphere); a recipe may
ask for a drier or cleaner atmosphere (`max_frost_point_c`, `max_o2_ppmv`, e.g. -60 °C for cell
assembly). Before an item of the job is exposed in a space, that space must meet both: here the
recipe's limits are held against the same evidence the classification used, a measured frost point
or O2 reading where the space has the sensor, the O2 estimate of its fill history (with the line's
purge margin) where it has none. A space without a frost-point sensor is judged on the line's
classification alone for water: nothing measured there could show the recipe's stricter frost point.
"""

from __future__ import annotations

from controller.config.line_config import Limits
from controller.line.state import SpaceState
from sequences.recipe import Recipe


def recipe_shortfall(space: SpaceState, recipe: Recipe, limits: Limits) -> str | None:
    """Why `space` does not meet the recipe's stricter limits, or None when it does (or the recipe
    asks for nothing stricter than the line)."""
    evidence = space.classification.evidence
    frost_limit = min(recipe.max_frost_point_c, limits.max_frost_point_c)
    o2_limit = min(recipe.max_o2_ppmv, limits.max_o2_ppmv)
    frost = evidence.get("frost_point_c")
    if (
        recipe.max_frost_point_c < limits.max_frost_point_c
        and isinstance(frost, float)
        and frost > frost_limit
    ):
        return f"{space.name} frost point {frost:.1f} °C is above the recipe's {frost_limit:g} °C"
    if recipe.max_o2_ppmv < limits.max_o2_ppmv:
        o2 = evidence.get("o2_ppmv")
        if isinstance(o2, float) and o2 > o2_limit:
            return f"{space.name} O2 {o2:.2g} ppm is above the recipe's {o2_limit:g} ppm"
        estimate = evidence.get("o2_estimate_ppmv")
        if o2 is None and isinstance(estimate, float) and estimate * limits.inert_purge_margin > o2_limit:
            margin = limits.inert_purge_margin
            shown = f"{estimate:.2g} ppm (x{margin:g})"
            return f"{space.name} O2 estimate {shown} is above the recipe's {o2_limit:g} ppm"
    return None
