"""The certificate's layer table: what each deposited layer was, planned against what happened.

A certificate that only says "never exposed" does not say what the electrode carries. Each layer's
figures are already in the job's own record (the deposit step's report: the recipe's thickness and
the plan's expected duration next to the monitor's thickness, the source's power and the time its
shutters were open), so the table is read from the job events alone, like the rest of the
certificate, and a layer cut short by a stop (a `partial_layer` event) is listed as interrupted with
what the monitor measured, never left out.

The planned rate is the recipe's thickness over the plan's expected duration (the plan computes the
duration from that rate, `sequences.layer_plan`), so a record from before the plan existed simply
shows no plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LAYER_COLUMNS = (
    "step",
    "layer",
    "method",
    "material",
    "chamber",
    "source, power",
    "thickness measured / recipe",
    "rate measured / planned",
    "duration actual / planned",
)


@dataclass(frozen=True, slots=True)
class Layer:
    phase: str  # the checkpoint name ("deposit_2"), or the step's place in the recipe
    layer: str  # "lithium", "electrolyte", a wetting film
    method: str
    material: str
    chamber: str
    source: str
    power_w: float | None
    recipe_nm: float | None
    measured_nm: float | None  # None: the monitor's reading is unknown
    rate_nm_s: float | None  # measured: thickness over the time the shutters were open
    planned_rate_nm_s: float | None
    deposition_s: float | None
    planned_s: float | None
    interrupted: bool = False


def as_number(value: object) -> float | None:
    """A recorded figure, or None (this module sits under `record`, so it does not import `wording`)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def layers_of(events: Iterable[Mapping[str, Any]]) -> tuple[Layer, ...]:
    """Every deposited or interrupted layer of a job, in the order of its events."""
    found: list[Layer] = []
    for event in events:
        detail = event.get("detail")
        if not isinstance(detail, Mapping):
            continue
        if event.get("kind") == "step_report" and detail.get("step") == "deposit":
            found.append(_deposited(detail))
        elif event.get("kind") == "partial_layer":
            found.append(_interrupted(detail))
    return tuple(found)


def _deposited(d: Mapping[str, Any]) -> Layer:
    recipe_nm, planned_s = as_number(d.get("target_thickness_nm")), as_number(d.get("expected_s"))
    planned_rate = recipe_nm / planned_s if recipe_nm is not None and planned_s else None
    return Layer(
        phase=str(d.get("phase", "")),
        layer=str(d.get("layer", "?")),
        method=str(d.get("method", "?")).replace("_", " "),
        material=str(d.get("material", "?")),
        chamber=str(d.get("chamber", "?")),
        source=str(d.get("source", "?")),
        power_w=as_number(d.get("power_w")),
        recipe_nm=recipe_nm,
        measured_nm=as_number(d.get("thickness_nm")),
        rate_nm_s=as_number(d.get("mean_rate_nm_s")),
        planned_rate_nm_s=planned_rate,
        deposition_s=as_number(d.get("deposition_s")),
        planned_s=planned_s,
    )


def _interrupted(d: Mapping[str, Any]) -> Layer:
    return Layer(
        phase=str(d.get("phase", "")),
        layer=str(d.get("layer", "?")),
        method="?",
        material=str(d.get("material", "?")),
        chamber="?",
        source="?",
        power_w=None,
        recipe_nm=as_number(d.get("target_nm")),
        measured_nm=as_number(d.get("thickness_nm")),
        rate_nm_s=None,
        planned_rate_nm_s=None,
        deposition_s=None,
        planned_s=None,
        interrupted=True,
    )


def _figure(value: float | None, unit: str) -> str:
    """Whole units from 100 up (a 10 µm layer is 10000 nm, not 1e+04), three figures below."""
    if value is None:
        return "?"
    return f"{value:.0f} {unit}" if abs(value) >= 100.0 else f"{value:.3g} {unit}"


def _pair(actual: float | None, planned: float | None, unit: str) -> str:
    return f"{_figure(actual, unit)} / {_figure(planned, unit)}"


def layer_rows(layers: Iterable[Layer]) -> list[list[str]]:
    """The table as text cells, header first: one rendering for the text, HTML and PDF forms."""
    rows = [list(LAYER_COLUMNS)]
    for layer in layers:
        power = f"{layer.source} {_figure(layer.power_w, 'W')}"
        rows.append(
            [
                layer.phase + (" (INTERRUPTED)" if layer.interrupted else ""),
                layer.layer,
                layer.method,
                layer.material,
                layer.chamber,
                power,
                _pair(layer.measured_nm, layer.recipe_nm, "nm"),
                _pair(layer.rate_nm_s, layer.planned_rate_nm_s, "nm/s"),
                _pair(layer.deposition_s, layer.planned_s, "s"),
            ]
        )
    return rows


def layer_text(layers: tuple[Layer, ...]) -> list[str]:
    """The table for the terminal: one indented line per layer, fields separated by ' | '."""
    if not layers:
        return []
    header, *rows = layer_rows(layers)
    return ["   layers: " + " | ".join(header), *("     " + " | ".join(row) for row in rows)]


__all__ = ["LAYER_COLUMNS", "Layer", "layer_rows", "layer_text", "layers_of"]
