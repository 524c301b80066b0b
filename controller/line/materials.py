"""The one materials table: which materials are air-sensitive and the temperatures they must not see.

Every limit the controller enforces about a material comes from here (DESIGN.md §2): lithium and its
alloys are air-sensitive, react with nitrogen and melt at 180.5 °C, so nothing holding lithium may
exceed 179 °C; sulfide electrolytes hydrolyse in moist air (H2S) and must stay below their glass
transition. A composite ("Li/Cu", an electrode "LiSiPO/Li/Cu") takes the strictest of its layers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from controller.errors import UserError


class MaterialError(UserError):
    """A material name the table does not know: refuse rather than guess its limits."""


@dataclass(frozen=True, slots=True)
class Material:
    name: str
    air_sensitive: bool
    max_temp_c: float
    reacts_with_n2: bool = False
    note: str = ""


LITHIUM_MAX_TEMP_C = 179.0  # melting point 180.5 °C, with margin
SULFIDE_MAX_TEMP_C = (
    200.0  # [U] below the glass transition of Li2S-SiS2 glasses; heat treatment window tops at 200
)

_LITHIUM = Material(
    "Li", True, LITHIUM_MAX_TEMP_C, reacts_with_n2=True, note="forms Li3N in N2, oxidises in dry air"
)
_ALLOY_ADDITIVES = ("In", "Ti", "Zn", "Bi", "Sn")
_SUBSTRATES = {
    "Cu": Material("Cu", False, 250.0, note="current collector; 250 °C is the etch window's top"),
    "Ni": Material("Ni", False, 250.0),
    "SUS": Material("SUS", False, 250.0, note="stainless steel foil"),
    "Al": Material("Al", False, 250.0),
}
_SULFIDE = Material("sulfide electrolyte", True, SULFIDE_MAX_TEMP_C, note="hydrolyses in moist air to H2S")
# shorthand names of sulfide electrolytes that carry no "S" of their own
_SULFIDE_NAMES = ("LiSiPO", "LiPSO")


def material(name: str) -> Material:
    """The limits of `name`: an element, an alloy ("Li-In"), a sulfide formula, or a layer stack ("a/b")."""
    text = name.strip()
    if "/" in text:
        return combine(material(part) for part in text.split("/"))
    if text in _SUBSTRATES:
        return _SUBSTRATES[text]
    if text == "Li" or _is_lithium_alloy(text):
        return Material(text, True, LITHIUM_MAX_TEMP_C, reacts_with_n2=True, note=_LITHIUM.note)
    if text in _SULFIDE_NAMES or _is_lithium_sulfide(text):
        return Material(text, True, SULFIDE_MAX_TEMP_C, note=_SULFIDE.note)
    raise MaterialError(
        f"unknown material {name!r}: use Li, a Li alloy (Li-{'/Li-'.join(_ALLOY_ADDITIVES)}), "
        f"{', '.join(_SUBSTRATES)}, a sulfide electrolyte formula (e.g. 57Li2S-38SiS2-5Li3PO4), "
        "or a layer stack such as Li/Cu"
    )


def _is_lithium_sulfide(text: str) -> bool:
    """Glasses, argyrodites, thiophosphates (57Li2S-38SiS2-5Li3PO4, Li6PS5Cl, Li10GeP2S12): lithium
    and sulfur, where sulfur is an "S" not starting Si, Sn, Sb (a substring such as "Li2S" would
    also match the silicate Li2SiO3)."""
    return "Li" in text and re.search(r"S(?![a-z])", text) is not None


def _is_lithium_alloy(text: str) -> bool:
    match = re.fullmatch(r"Li-([A-Z][a-z]?)", text)
    return match is not None and match.group(1) in _ALLOY_ADDITIVES


def combine(parts: Iterable[Material]) -> Material:
    """The strictest limits of several materials present together."""
    items = list(parts)
    if not items:
        raise MaterialError("an empty layer stack has no material")
    return Material(
        "/".join(m.name for m in items),
        air_sensitive=any(m.air_sensitive for m in items),
        max_temp_c=min(m.max_temp_c for m in items),
        reacts_with_n2=any(m.reacts_with_n2 for m in items),
        note="; ".join(m.note for m in items if m.note),
    )
