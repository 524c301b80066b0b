"""`depline recipe check [--config LINE] FILE…`: recipes against the process windows and the line.

Every file is validated by the process windows and the materials table, then held against the line
it will run on (the embedded standard line unless `--config` names one): gases and purities, sources
and their windows, each layer's expected duration against the line's maximum. What passes prints one
line per process step with its source, power, rate, expected duration and budget; every refusal is
one line naming the recipe's field and the line's, and any refusal exits 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_recipe_check(recipe_sub: Any) -> None:
    parser = recipe_sub.add_parser(
        "check",
        help="validate recipe files against the process windows and the line",
        description="Validate recipe TOML files against the process windows, the materials table and the "
        "line they will run on (--config, default the embedded standard line): gases, sources, powers and "
        "each layer's expected duration. Print every violation on one line (file, field, value, the "
        "line's field) and exit 2 if any file fails.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument(
        "--config", metavar="LINE", help="the line configuration (default: the standard line)"
    )
    parser.set_defaults(handler=check_recipes)


def check_recipes(args: argparse.Namespace) -> int:
    # imported here: `depline --help` and the other commands start without the recipe model
    from controller.config.line_config import load_line_config
    from sequences.recipe import RecipeError, load_recipe
    from sequences.recipe_on_line import RecipeDoesNotFitLine, check_recipe_on_line

    config = load_line_config(args.config)
    failed = False
    for path in args.files:
        try:
            recipe = load_recipe(path)
            on_line = check_recipe_on_line(recipe, config)
        except RecipeError as exc:
            failed = True
            print("\n".join(exc.violations), file=sys.stderr)
            continue
        except RecipeDoesNotFitLine as exc:
            failed = True
            print("\n".join(exc.refusals), file=sys.stderr)
            continue
        for warning in recipe.warnings:
            print(warning, file=sys.stderr)
        for line in on_line.lines():
            print(line)
        print(f"{path}: ok: {recipe.name}, {len(recipe.steps)} steps on line {config.name!r}")
    return 2 if failed else 0
