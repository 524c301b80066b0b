"""A batch queue file: the jobs an unattended (overnight) run works through, in order.

```toml
name = "overnight-0112"        # optional; the file name without .toml by default
line = "line1"                 # optional: the line ([line] name) the queue is written for; another
                               # line refuses it at the batch start
on_failure = "skip"            # default policy: "stop" the queue, or "skip" to the next job once safe
stop_after_equipment_faults = 1  # "skip" stops the queue after this many failures in a row caused by
                               # the same equipment fault (a device's alarm): a dead turbo gets one job
stop_after_same_failures = 3   # ... and after this many in a row that failed the same way otherwise

[[jobs]]
recipe = "ex2-sputter-rt-then-anneal-LiSiPO-on-Li-foil.toml"   # next to the queue file, or a shipped recipe
count = 2                      # the same job, N times (each its own items)
on_failure = "stop"            # this job's policy
base = "FOIL-0042"             # optional item ids: up to 64 printable characters, no '/' or '\\', not
                               # a space's name or "room"; default ids are made from the batch and position
container = "BOX-0042"         # the closed container the base arrives in
out_container = "BOX-0142"     # the container the electrode leaves in (placed in the outlet in advance)
reuse_container = true         # instead of out_container: the inlet container is the storage container
                               # the electrode leaves in (the method allows it; a line whose inlet is
                               # its outlet only: elsewhere the empty box would cross the chamber)
```

An inlet container that is not reused stays in the inlet, empty, once its contents are in the chamber:
it is recorded as parked there (a `container_parked` job event), and the next job's load takes it out
through the outer door it came in by, so empty boxes do not pile up in the line.

Every recipe is loaded and validated when the queue is read, so a typo in job 17 is an exit-2 error
before the first door opens, not a failure at three in the morning. So are the item ids: given the
names of the line's spaces, an id that would make an item's location ambiguous is refused here, where
the person who wrote it can fix it, not by the inventory in the middle of a reject.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from controller.config.line_config import LineConfig
from controller.config.reader import TableReader, file_text, toml_table
from controller.errors import ConfigFileError
from controller.line.items import ITEM_ID_RULE, valid_item_id
from sequences.line_route import route_of
from sequences.recipe import Recipe, RecipeError, parse_recipe
from sequences.recipe_on_line import RecipeDoesNotFitLine, check_recipe_on_line

Policy = Literal["stop", "skip"]
POLICIES: tuple[Policy, ...] = ("stop", "skip")
MAX_JOBS = 500
DEFAULT_EQUIPMENT_FAULT_LIMIT = 1
DEFAULT_SAME_FAILURE_LIMIT = 3


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of the queue, before it has ids: `base`/`container`/`out_container` None = make one."""

    recipe_path: str
    recipe_text: str
    recipe: Recipe
    on_failure: Policy
    base: str | None = None
    container: str | None = None
    out_container: str | None = None
    reuse_container: bool = False  # the electrode leaves in the container it came in (the storage box)


@dataclass(frozen=True, slots=True)
class BatchQueue:
    path: str
    name: str
    text: str
    jobs: tuple[JobSpec, ...]
    equipment_fault_limit: int = DEFAULT_EQUIPMENT_FAULT_LIMIT
    """Consecutive "skip" failures with the same equipment fault as cause that stop the queue."""
    same_failure_limit: int = DEFAULT_SAME_FAILURE_LIMIT
    """Consecutive "skip" failures with the same other cause that stop the queue."""
    line: str | None = None
    """The line the queue is written for (its `[line] name`); None: any line that can run it."""

    @property
    def hash(self) -> str:
        """Identifies the queue for resuming: the same file run again continues its unfinished batch."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def shipped_recipe(name: str) -> Path | None:
    """A recipe shipped in sequences/recipes, by file name (with or without .toml)."""
    folder = resources.files("sequences").joinpath("recipes")
    for candidate in (name, f"{name}.toml"):
        entry = folder.joinpath(candidate)
        if entry.is_file():
            return Path(str(entry))
    return None


def load_queue(path: str | Path, *, spaces: Iterable[str] = (), line: LineConfig | None = None) -> BatchQueue:
    """Read and validate a queue; `spaces` are the names of the line it will run on, and with `line`
    every recipe is held against that line too (sequences.recipe_on_line): a job the line cannot run
    is refused before the batch starts, naming the recipe's field and the line's."""
    shown = str(path)
    names = tuple(spaces) or (tuple(s.name for s in line.spaces) if line is not None else ())
    queue = parse_queue(file_text(path, shown), shown, Path(path).parent, spaces=names)
    if line is not None:
        refusals = _line_refusals(queue, line)
        for index, job in enumerate(queue.jobs):
            try:
                check_recipe_on_line(job.recipe, line)
            except RecipeDoesNotFitLine as exc:
                refusals += [f"{shown}: jobs[{index}].recipe: {r}" for r in exc.refusals]
        if refusals:
            raise RecipeDoesNotFitLine(list(dict.fromkeys(refusals)))
    return queue


def _line_refusals(queue: BatchQueue, line: LineConfig) -> list[str]:
    """A queue written for another line, or reusing containers where the inlet is not the outlet."""
    refusals: list[str] = []
    if queue.line is not None and queue.line != line.name:
        refusals.append(
            f"{queue.path}: line = {queue.line!r}: the queue is written for line {queue.line}, this is line "
            f"{line.name} ({line.path}: line.name)"
        )
    reused = [index for index, job in enumerate(queue.jobs) if job.reuse_container]
    if reused:
        route = route_of(line)
        inlet, outlet = route.inlet, route.outlet
        if inlet != outlet:
            refusals += [
                f"{queue.path}: jobs[{index}].reuse_container = true: the line's inlet ({inlet}) is not its "
                f"outlet ({outlet}), and the empty container would cross the process chamber to get there "
                f"({line.path}: spaces)"
                for index in reused
            ]
    return refusals


def parse_queue(text: str, shown: str, folder: Path, *, spaces: Iterable[str] = ()) -> BatchQueue:
    data = toml_table(text, shown)
    root = TableReader(shown, data)
    name = root.text("name", Path(shown).stem)
    line = root.text("line") if root.has("line") else None
    default_policy: Policy = _policy(root, "skip")
    equipment_limit = root.integer(
        "stop_after_equipment_faults", DEFAULT_EQUIPMENT_FAULT_LIMIT, min=1, max=MAX_JOBS
    )
    same_limit = root.integer("stop_after_same_failures", DEFAULT_SAME_FAILURE_LIMIT, min=1, max=MAX_JOBS)
    jobs: list[JobSpec] = []
    tables = root.table_list("jobs")
    if not tables:
        raise root.fail("jobs", [], "at least one [[jobs]] table")
    space_names = tuple(spaces)
    for table in tables:
        jobs.extend(_jobs(table, folder, default_policy, space_names))
    root.finish()
    if len(jobs) > MAX_JOBS:
        raise root.fail("jobs", len(jobs), f"at most {MAX_JOBS} jobs in one queue (count included)")
    _unique_ids(root, jobs)
    return BatchQueue(shown, name, text, tuple(jobs), equipment_limit, same_limit, line)


def _policy(t: TableReader, default: Policy) -> Policy:
    value = t.text("on_failure", default, choices=POLICIES)
    return "stop" if value == "stop" else "skip"


def _jobs(t: TableReader, folder: Path, default_policy: Policy, spaces: tuple[str, ...]) -> list[JobSpec]:
    reference = t.text("recipe")
    recipe_path = _recipe_path(t, reference, folder)
    count = t.integer("count", 1, min=1, max=MAX_JOBS)
    policy = _policy(t, default_policy)
    ids = {key: _item_id(t, key, spaces) for key in ("base", "container", "out_container")}
    reuse = t.flag("reuse_container", False)
    if reuse and ids["out_container"] is not None:
        raise t.fail("reuse_container", True, "either reuse_container or an out_container, not both")
    if count > 1 and any(ids.values()):
        given = next(k for k, v in ids.items() if v)
        raise t.fail(given, ids[given], "explicit item ids need count = 1 (each job has its own items)")
    t.finish()
    try:
        recipe_text = file_text(recipe_path)
        recipe = parse_recipe(recipe_text, str(recipe_path))
    except ConfigFileError as exc:
        raise t.fail("recipe", reference, exc.allowed) from None
    except RecipeError as exc:
        head = f"{t.path}: {t.field('recipe')} = {reference!r}: is not a valid recipe"
        raise RecipeError([head, *exc.violations]) from None
    return [
        JobSpec(
            str(recipe_path),
            recipe_text,
            recipe,
            policy,
            ids["base"],
            ids["container"],
            ids["out_container"],
            reuse,
        )
        for _ in range(count)
    ]


def _item_id(t: TableReader, key: str, spaces: tuple[str, ...]) -> str | None:
    if not t.has(key):
        return None
    value = t.text(key)
    if not valid_item_id(value, spaces):
        names = f" ({', '.join(spaces)})" if spaces else ""
        raise t.fail(key, value, ITEM_ID_RULE + names)
    return value


def _recipe_path(t: TableReader, reference: str, folder: Path) -> Path:
    try:
        local = folder / reference
        if local.is_file():
            return local
        shipped = shipped_recipe(reference)
        if shipped is not None:
            return shipped
    except (OSError, ValueError):  # a name too long for the file system, a NUL in it
        pass
    raise t.fail("recipe", reference, "a recipe file next to the queue, or a shipped recipe name")


def _unique_ids(root: TableReader, jobs: list[JobSpec]) -> None:
    seen: set[str] = set()
    for job in jobs:
        for item in (job.base, job.container, job.out_container):
            if item is None:
                continue
            if item in seen:
                raise root.fail("jobs", item, "every item id once in a queue")
            seen.add(item)
