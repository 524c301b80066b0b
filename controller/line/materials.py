"""The one materials table: which materials are air-sensitive, the temperatures they must not see, and
what a thickness monitor must be told to measure them.

Every limit the controller enforces about a material comes from here (DESIGN.md §2): lithium and its
alloys are air-sensitive, react with nitrogen and melt at 180.5 °C, so nothing holding lithium may
exceed 179 °C; sulfide electrolytes hydrolyse in moist air (H2S) and must stay below their glass
transition. A composite ("Li/Cu", an electrode "LiSiPO/Li/Cu") takes the strictest of its layers.

`film_properties` gives the density and Z-ratio a quartz-crystal monitor converts crystal mass with.
A monitor told the wrong density reads every layer wrong by the ratio of the densities (lithium under
a sulfide glass's density reads 3.5x too thin, and a sequence that stops on it deposits 3.5x too
much), so a material without figures is refused rather than given a default. Each figure names its
source below; the glasses are estimates from their composition, and the way they are estimated is
written out with them. A site that measures its films (profilometer, XRR) corrects the density here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from controller.errors import UserError
from controller.line.compositions import Component, is_mole_ratio, parse_mole_ratio


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
# Base foils and current collectors the method names (seed §"base material": Cu, Ni, stainless steel,
# Al, Fe, Nb, Ti, W, Mo, Mg, Au, Ag, Pt, SnO2, graphite). None of them limits the process: the highest
# temperature the method ever asks of a substrate is the etch window's 250 °C (DESIGN §2, "etch
# substrate temperature 20-250 °C"), and the lowest melting of them, Mg at 650 °C (CRC Handbook,
# melting points of the elements), is far above it. So each is capped at that 250 °C: a heater asked
# for more is asking outside the method, whatever the foil.
ETCH_WINDOW_TOP_C = 250.0
_FOIL_NOTE = "current collector; 250 °C is the etch window's top (DESIGN §2)"
_SUBSTRATES = {
    name: Material(name, False, ETCH_WINDOW_TOP_C, note=note or _FOIL_NOTE)
    for name, note in (
        ("Cu", ""), ("Ni", ""), ("SUS", "stainless steel foil"), ("Al", ""), ("Fe", ""), ("Nb", ""),
        ("Ti", ""), ("W", ""), ("Mo", ""), ("Mg", "melts at 650 °C (CRC); capped by the etch window"),
        ("Au", ""), ("Ag", ""), ("Pt", ""), ("SnO2", "conductive oxide film or coated foil"),
        ("graphite", "carbon foil or sheet"), ("C", "carbon (graphite) foil, or a carbon wetting film"),
        ("Si", "a wetting / alloying film (1-500 nm) under lithium"),
        ("Sn", "melts at 231.9 °C (CRC): a Sn film is capped at 220 °C [U margin]"),
    )
}  # fmt: skip
# A tin film melts below the etch window's top: its own limit, with an 11 °C margin [U].
_SUBSTRATES["Sn"] = Material("Sn", False, 220.0, note=_SUBSTRATES["Sn"].note)
# The wetting / alloying films of 1-500 nm the method puts on the collector before lithium (Ag, Si,
# Mg, Sn, C): a recipe layer of class "wetting" (sequences.recipe) made of one of these.
WETTING_FILMS = ("Ag", "Si", "Mg", "Sn", "C")
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


@dataclass(frozen=True, slots=True)
class FilmProperties:
    """What a quartz-crystal monitor needs to turn the mass on its crystal into this film's thickness.

    `z_ratio` is the acoustic impedance of quartz over the film's (Z = Zq / sqrt(rho_f * G_f)): the
    Z-match correction it drives matters only once the crystal is heavily loaded."""

    density_g_cm3: float
    z_ratio: float
    source: str


# -- film figures -----------------------------------------------------------------------------------

# Elements: INFICON STM-1 Thin Film Deposition Monitor operating manual, §3.8 "Material Reference
# Table" (bulk density g/cm³ and Z-factor) [V]. The rows for Ni, Sn, Ti and Zn are on the table's
# second page, which could not be read: their figures are INFICON's table values as remembered [U].
INFICON_TABLE = "INFICON STM-1 manual §3.8 material reference table"
_ELEMENT_FILMS: dict[str, FilmProperties] = {
    "Li": FilmProperties(0.53, 5.900, INFICON_TABLE),
    "Cu": FilmProperties(8.93, 0.437, INFICON_TABLE),
    "Al": FilmProperties(2.73, 1.080, INFICON_TABLE),
    "Bi": FilmProperties(9.80, 0.790, INFICON_TABLE),
    "In": FilmProperties(7.30, 1.650, INFICON_TABLE),
    "Ni": FilmProperties(8.91, 0.331, f"{INFICON_TABLE} [U]"),
    "Sn": FilmProperties(7.30, 0.724, f"{INFICON_TABLE} [U]"),
    "Ti": FilmProperties(4.50, 0.628, f"{INFICON_TABLE} [U]"),
    "Zn": FilmProperties(7.04, 0.514, f"{INFICON_TABLE} [U]"),
    # the method's other collectors and wetting films: INFICON's table values as remembered [U]
    "Ag": FilmProperties(10.50, 0.529, f"{INFICON_TABLE} [U]"),
    "Au": FilmProperties(19.30, 0.381, f"{INFICON_TABLE} [U]"),
    "C": FilmProperties(2.25, 3.260, f"{INFICON_TABLE} (graphite) [U]"),
    "Fe": FilmProperties(7.86, 0.349, f"{INFICON_TABLE} [U]"),
    "Mg": FilmProperties(1.74, 1.610, f"{INFICON_TABLE} [U]"),
    "Mo": FilmProperties(10.20, 0.257, f"{INFICON_TABLE} [U]"),
    "Nb": FilmProperties(8.578, 0.492, f"{INFICON_TABLE} [U]"),
    "Pt": FilmProperties(21.40, 0.245, f"{INFICON_TABLE} [U]"),
    "Si": FilmProperties(2.32, 0.712, f"{INFICON_TABLE} [U]"),
    "W": FilmProperties(19.30, 0.163, f"{INFICON_TABLE} [U]"),
}
# standard atomic weights (IUPAC, g/mol): molar masses of the alloys and glass components below
_ATOMIC_WEIGHT = {
    "Li": 6.94, "O": 15.999, "Si": 28.085, "P": 30.974, "S": 32.06, "Cl": 35.45, "Ti": 47.867,
    "Zn": 65.38, "Ge": 72.630, "Br": 79.904, "In": 114.82, "Sn": 118.71, "I": 126.90, "Bi": 208.98,
}  # fmt: skip
_ELEMENT_COUNT = re.compile(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)")

# Compounds of sulfide electrolytes: density (g/cm³) of the crystalline compound, from the CRC
# Handbook of Chemistry and Physics tables of inorganic compounds as remembered [U]; the named
# thiophosphate / argyrodite phases at their crystallographic densities [U]. Glass components written
# as a group, "5(Li2O-P2O5)", count one mole of each compound per formula unit.
_COMPOUND_DENSITY = {
    "Li2S": 1.66, "SiS2": 2.02, "GeS2": 2.94, "P2S5": 2.09, "Li3PO4": 2.46, "Li4SiO4": 2.39,
    "Li2O": 2.013, "P2O5": 2.39, "LiCl": 2.07, "LiBr": 3.46, "LiI": 4.08,
    "Li3PS4": 1.87, "Li6PS5Cl": 1.64, "Li10GeP2S12": 2.04,
}  # fmt: skip
# Shear modulus of Li2S-based sulfide glasses, for their Z-ratio: Young's moduli of 18-25 GPa are
# reported for Li2S-P2S5 glasses (Sakuda, Hayashi, Tatsumisago, Sci. Rep. 3, 2261 (2013)); with a
# Poisson ratio near 0.3, G = E / 2(1 + nu) is about 7 GPa [U]. The Z-match correction it feeds is
# below 1e-4 of the thickness for the micrometre layers of this line, so its uncertainty is harmless.
SULFIDE_GLASS_SHEAR_MODULUS_PA = 7.0e9
QUARTZ_ACOUSTIC_IMPEDANCE = 8.834e5  # g cm⁻² s⁻¹, sqrt(rho_q * mu_q) of AT-cut quartz (INFICON manuals)
GLASS_ESTIMATE = (
    "estimate: density from additive molar volumes of the crystalline components (CRC), "
    "Z-ratio from an assumed 7 GPa shear modulus"
)
ALLOY_ESTIMATE = (
    "estimate: equiatomic alloy, density from additive atomic volumes of the elements, "
    "Z-ratio their volume-weighted mean (INFICON table)"
)


def film_properties(name: str) -> FilmProperties:
    """Density and Z-ratio of a deposited film `name`: an element, a Li alloy, a sulfide glass in
    mole-ratio notation, or a named sulfide compound. Refused, never guessed, when the figures are not
    known: a layer stack, a substrate foil such as SUS, or a shorthand such as "LiSiPO" (no composition)."""
    text = name.strip()
    material(text)  # an unknown name fails with the table's own explanation
    if "/" in text:
        raise MaterialError(f"{text!r} is a layer stack: a thickness monitor measures one film at a time")
    if text in _ELEMENT_FILMS:
        return _ELEMENT_FILMS[text]
    if _is_lithium_alloy(text):
        return _alloy(text)
    if is_mole_ratio(text) or text in _COMPOUND_DENSITY:
        components = parse_mole_ratio(text) if is_mole_ratio(text) else (Component(text, 100.0),)
        return _glass(text, components)
    raise MaterialError(
        f"no film density and Z-ratio for {text!r}: a thickness monitor cannot measure it; name its "
        "composition (e.g. 57Li2S-38SiS2-5Li3PO4) or add measured figures to the materials table"
    )


def molar_mass_g_mol(compound: str) -> float:
    """Molar mass of a formula such as Li3PO4 (elements of the table above only)."""
    counts = _ELEMENT_COUNT.findall(compound)
    return sum(_ATOMIC_WEIGHT[element] * float(count or 1) for element, count in counts)


def _alloy(text: str) -> FilmProperties:
    """An equiatomic Li-X alloy: the alloy names carry no composition, so 1:1 is assumed [U]."""
    parts = [(_ATOMIC_WEIGHT[e], _ELEMENT_FILMS[e]) for e in ("Li", text.removeprefix("Li-"))]
    volumes = [weight / film.density_g_cm3 for weight, film in parts]
    density = sum(weight for weight, _ in parts) / sum(volumes)
    z_ratio = sum(v * film.z_ratio for v, (_, film) in zip(volumes, parts, strict=True)) / sum(volumes)
    return FilmProperties(round(density, 3), round(z_ratio, 3), ALLOY_ESTIMATE)


def _glass(text: str, components: tuple[Component, ...]) -> FilmProperties:
    mass = volume = 0.0
    for component in components:
        for compound in component.formula.split("-"):
            if compound not in _COMPOUND_DENSITY:
                raise MaterialError(
                    f"no density for {compound!r} in {text!r}: the materials table knows "
                    f"{', '.join(_COMPOUND_DENSITY)}"
                )
            molar_mass = molar_mass_g_mol(compound)
            fraction = component.mole_percent / 100.0
            mass += fraction * molar_mass
            volume += fraction * molar_mass / _COMPOUND_DENSITY[compound]
    density = mass / volume
    # the film's shear acoustic impedance sqrt(rho * G) in g cm⁻² s⁻¹ (1 Pa = 10 dyn/cm²)
    impedance = math.sqrt(density * SULFIDE_GLASS_SHEAR_MODULUS_PA * 10.0)
    return FilmProperties(round(density, 3), round(QUARTZ_ACOUSTIC_IMPEDANCE / impedance, 3), GLASS_ESTIMATE)


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
