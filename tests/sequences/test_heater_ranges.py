"""Each heater's range is part of the line: a recipe asking its substrate heater for a temperature outside
it is refused by `recipe check --config` and by the batch start, naming the recipe's field and the
line's, before anything moves."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.errors import ConfigFileError
from sequences.batch_queue import load_queue, shipped_recipe
from sequences.recipe import parse_recipe
from sequences.recipe_on_line import RecipeDoesNotFitLine, check_recipe_on_line

STANDARD = Path(__file__).parents[2] / "controller" / "config" / "standard_line.toml"
SUBSTRATE = 'params = { heater = "substrate", min_c = 20.0, max_c = 250.0 }'


def _line_holding(tmp_path: Path, params: str) -> Path:
    text = STANDARD.read_text(encoding="utf-8")
    assert SUBSTRATE in text
    path = tmp_path / "line.toml"
    path.write_text(text.replace(SUBSTRATE, params), encoding="utf-8")
    return path


def _heater_field(line: Path, bound: str) -> str:
    devices = load_line_config(line).devices
    index = next(i for i, d in enumerate(devices) if d.name == "substrate_heater")
    return f"({line}: devices[{index}].params.{bound} (substrate_heater))"


def test_the_standard_line_declares_its_heaters_ranges() -> None:
    heaters = {d.name: d.params for d in load_line_config().devices if d.family == "temperature_controller"}
    assert (heaters["substrate_heater"]["min_c"], heaters["substrate_heater"]["max_c"]) == (20.0, 250.0)
    assert (heaters["source_heater"]["min_c"], heaters["source_heater"]["max_c"]) == (20.0, 900.0)


def test_recipe_check_refuses_a_substrate_temperature_above_the_heaters_range(tmp_path: Path) -> None:
    line = _line_holding(tmp_path, 'params = { heater = "substrate", min_c = 20.0, max_c = 100.0 }')
    heated = shipped_recipe("ex1-sputter-heated-LiSiPO-on-Li-foil")
    annealed = shipped_recipe("ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil")
    assert heated is not None
    assert annealed is not None
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "recipe", "check", "--config", str(line), str(heated),
         str(annealed)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{heated}: steps[0].substrate_temp_c = 130: outside the range of process's substrate heater "
        f"20..100 °C {_heater_field(line, 'max_c')}",
        f"{annealed}: steps[1].temp_c = 130: outside the range of process's substrate heater "
        f"20..100 °C {_heater_field(line, 'max_c')}",
    ]


def test_the_batch_start_refuses_a_temperature_below_the_heaters_range(tmp_path: Path) -> None:
    line = _line_holding(tmp_path, 'params = { heater = "substrate", min_c = 30.0, max_c = 250.0 }')
    queue = tmp_path / "q.toml"
    queue.write_text('[[jobs]]\nrecipe = "ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil"\n', encoding="utf-8")
    with pytest.raises(RecipeDoesNotFitLine) as refused:
        load_queue(queue, line=load_line_config(line))
    [refusal] = refused.value.refusals
    assert refusal.startswith(f"{queue}: jobs[0].recipe: ")
    assert refusal.endswith(
        "steps[0].substrate_temp_c = 25: outside the range of process's substrate heater 30..250 °C "
        + _heater_field(line, "min_c")
    )


def test_a_heated_step_on_a_chamber_without_a_substrate_heater_is_refused() -> None:
    config = load_line_config()
    unheated = dataclasses.replace(
        config, devices=tuple(d for d in config.devices if d.name != "substrate_heater")
    )
    heated = shipped_recipe("ex1-sputter-heated-LiSiPO-on-Li-foil")
    assert heated is not None
    with pytest.raises(
        RecipeDoesNotFitLine, match=r"steps\[0\].substrate_temp_c = 130: process has no substrate"
    ):
        check_recipe_on_line(parse_recipe(heated.read_text(encoding="utf-8"), str(heated)), unheated)
    room = parse_recipe(  # a layer at 25 °C needs no heater
        heated.read_text(encoding="utf-8").replace("substrate_temp_c = 130.0", "substrate_temp_c = 25.0"),
        "rt",
    )
    check_recipe_on_line(room, unheated)


def test_a_heater_range_that_is_empty_is_refused_by_the_line_configuration(tmp_path: Path) -> None:
    line = _line_holding(tmp_path, 'params = { heater = "substrate", min_c = 200.0, max_c = 150.0 }')
    with pytest.raises(ConfigFileError, match=r"max_c = 150.0: above min_c \(200 °C\)"):
        load_line_config(line)
