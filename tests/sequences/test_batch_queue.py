"""Queue files: good ones give jobs with validated recipes; bad ones name file, field, value, allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.errors import ConfigFileError
from sequences.batch_queue import load_queue, parse_queue, shipped_recipe
from sequences.recipe import RecipeError

EX1 = "ex1-sputter-heated-LiSiPO-on-Li-foil.toml"


def write(tmp_path: Path, text: str, name: str = "queue.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_queue_names_shipped_recipes_and_expands_counts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'on_failure = "stop"\n[[jobs]]\nrecipe = "{EX1}"\ncount = 2\n'
        '[[jobs]]\nrecipe = "ex8-bare-Cu-lithium-free-Ar-etch"\non_failure = "skip"\nbase = "CU-1"\n',
    )
    queue = load_queue(path)
    assert queue.name == "queue"
    assert [j.on_failure for j in queue.jobs] == ["stop", "stop", "skip"]
    assert queue.jobs[0].recipe.name == queue.jobs[1].recipe.name
    assert queue.jobs[2].base == "CU-1"
    assert queue.jobs[2].container is None
    assert queue.jobs[2].recipe.base.material == "Cu"
    assert len(queue.hash) == 64


def test_a_recipe_next_to_the_queue_wins_over_a_shipped_one(tmp_path: Path) -> None:
    shipped = shipped_recipe(EX1)
    assert shipped is not None
    (tmp_path / "mine.toml").write_text(shipped.read_text().replace('name = "', 'name = "local-', 1))
    queue = parse_queue('[[jobs]]\nrecipe = "mine.toml"\n', "q.toml", tmp_path)
    assert queue.jobs[0].recipe.name.startswith("local-")


@pytest.mark.parametrize(
    ("text", "field", "allowed"),
    [
        ("", "jobs", "at least one"),
        ('[[jobs]]\nrecipe = "nope.toml"\n', "jobs[0].recipe", "shipped recipe"),
        (f'[[jobs]]\nrecipe = "{EX1}"\ncount = 0\n', "jobs[0].count", ""),
        (f'[[jobs]]\nrecipe = "{EX1}"\non_failure = "retry"\n', "jobs[0].on_failure", "stop"),
        (f'[[jobs]]\nrecipe = "{EX1}"\ncount = 2\nbase = "X"\n', "jobs[0].base", "count = 1"),
        (f'[[jobs]]\nrecipe = "{EX1}"\ncolour = "red"\n', "jobs[0].colour", "unknown field"),
        (
            f'[[jobs]]\nrecipe = "{EX1}"\nbase = "A"\n[[jobs]]\nrecipe = "{EX1}"\ncontainer = "A"\n',
            "jobs",
            "once",
        ),
    ],
)
def test_bad_queues_name_the_field(tmp_path: Path, text: str, field: str, allowed: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        load_queue(write(tmp_path, text))
    assert info.value.field == field
    assert allowed in info.value.allowed
    assert str(tmp_path / "queue.toml") in str(info.value)


def test_a_bad_recipe_in_a_queue_lists_its_violations_under_the_queue_field(tmp_path: Path) -> None:
    shipped = shipped_recipe(EX1)
    assert shipped is not None
    bad = shipped.read_text().replace("substrate_temp_c = ", "substrate_temp_c = 1", 1)
    (tmp_path / "hot.toml").write_text(bad)
    with pytest.raises(RecipeError) as info:
        load_queue(write(tmp_path, '[[jobs]]\nrecipe = "hot.toml"\n'))
    lines = str(info.value).splitlines()
    assert "jobs[0].recipe = 'hot.toml'" in lines[0]
    assert any("hot.toml" in line and "substrate_temp_c" in line for line in lines[1:])


def test_an_unreadable_queue_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot be read"):
        load_queue(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("item_id", "allowed"),
    [
        ('""', "1..64"),
        ('"room"', "'room'"),
        ('"inlet"', "(inlet, process, outlet)"),
        ('"BOX\\u0000"', "printable"),
        ('"../BOX"', "no '/'"),
        ('"BOX\\\\1"', "no '/' or '\\'"),
        ('" BOX"', "printable"),
        ('".."', "1..64"),
        (f'"{"B" * 65}"', "1..64"),
        ("{}", "must be a string"),
        ("inf", "must be a string"),
    ],
)
@pytest.mark.parametrize("key", ["base", "container", "out_container"])
def test_item_ids_that_would_confuse_the_inventory_are_refused(
    tmp_path: Path, key: str, item_id: str, allowed: str
) -> None:
    text = f'[[jobs]]\nrecipe = "{EX1}"\n{key} = {item_id}\n'
    with pytest.raises(ConfigFileError) as info:
        load_queue(write(tmp_path, text), spaces=["inlet", "process", "outlet"])
    assert info.value.field == f"jobs[0].{key}"
    assert allowed in info.value.allowed
    assert "\n" not in str(info.value)


def test_plain_item_ids_pass(tmp_path: Path) -> None:
    text = f'[[jobs]]\nrecipe = "{EX1}"\nbase = "FOIL-0042"\ncontainer = "Box 42.a"\nout_container = "B#7"\n'
    queue = load_queue(write(tmp_path, text), spaces=["inlet", "process", "outlet"])
    assert (queue.jobs[0].base, queue.jobs[0].container) == ("FOIL-0042", "Box 42.a")


@pytest.mark.parametrize(
    ("recipe", "allowed"),
    [
        ("x" * 5000, "shipped recipe"),
        ("a\u0000b", "shipped recipe"),
        ("binary.toml", "is not UTF-8 text"),
    ],
    ids=["long", "nul", "binary"],
)
def test_a_recipe_reference_that_cannot_be_read_names_the_queue_field(
    tmp_path: Path, recipe: str, allowed: str
) -> None:
    (tmp_path / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    escaped = recipe.replace("\u0000", "\\u0000")
    with pytest.raises(ConfigFileError) as info:
        load_queue(write(tmp_path, f'[[jobs]]\nrecipe = "{escaped}"\n'))
    assert info.value.field == "jobs[0].recipe"
    assert allowed in info.value.allowed


def test_the_skip_policys_memory_is_set_per_queue_and_defaults_to_one_equipment_fault(tmp_path: Path) -> None:
    default = parse_queue(f'[[jobs]]\nrecipe = "{EX1}"\n', "q.toml", tmp_path)
    assert (default.equipment_fault_limit, default.same_failure_limit) == (1, 3)
    text = f'stop_after_equipment_faults = 2\nstop_after_same_failures = 5\n[[jobs]]\nrecipe = "{EX1}"\n'
    queue = parse_queue(text, "q.toml", tmp_path)
    assert (queue.equipment_fault_limit, queue.same_failure_limit) == (2, 5)
    with pytest.raises(ConfigFileError, match="stop_after_equipment_faults"):
        parse_queue(f'stop_after_equipment_faults = 0\n[[jobs]]\nrecipe = "{EX1}"\n', "q.toml", tmp_path)
