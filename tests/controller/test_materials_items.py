"""The materials table and the item inventory: the limits every interlock takes from them.

A wrong answer here is silent everywhere else (a heater allowed to 200 °C next to lithium, a foil
counted as protected by an open box), so each material class and each containment case is pinned.
"""

from __future__ import annotations

import pytest

from controller.line.items import (
    InventoryError,
    Item,
    ItemKind,
    contents_of,
    exposed_in,
    is_exposed,
    is_protected,
    materials_in,
    moved,
    space_of,
)
from controller.line.materials import (
    INFICON_TABLE,
    LITHIUM_MAX_TEMP_C,
    SULFIDE_MAX_TEMP_C,
    FilmProperties,
    Material,
    MaterialError,
    combine,
    film_properties,
    material,
)
from tests.controller.linestate_builder import container, copper_foil, li_foil, sulfide_target

SPACES = ("inlet", "process", "outlet", "room")

# -- materials -------------------------------------------------------------------------------------


def test_lithium_is_air_sensitive_reacts_with_nitrogen_and_stays_below_its_melting_point() -> None:
    li = material("Li")
    assert li.air_sensitive
    assert li.reacts_with_n2
    assert li.max_temp_c == LITHIUM_MAX_TEMP_C == 179.0
    assert li.max_temp_c < 180.5  # the melting point itself


@pytest.mark.parametrize("alloy", ["Li-In", "Li-Ti", "Li-Zn", "Li-Bi", "Li-Sn"])
def test_lithium_alloys_take_the_lithium_limits(alloy: str) -> None:
    m = material(alloy)
    assert (m.air_sensitive, m.reacts_with_n2, m.max_temp_c) == (True, True, 179.0)
    assert m.name == alloy


METHOD_SUBSTRATES = [
    "Cu",
    "Ni",
    "SUS",
    "Al",
    "Fe",
    "Nb",
    "Ti",
    "W",
    "Mo",
    "Mg",
    "Au",
    "Ag",
    "Pt",
    "SnO2",
    "graphite",
]


@pytest.mark.parametrize("metal", METHOD_SUBSTRATES)
def test_current_collectors_are_not_air_sensitive(metal: str) -> None:
    m = material(metal)
    assert not m.air_sensitive
    assert not m.reacts_with_n2
    assert m.max_temp_c == 250.0  # the etch window's top: no collector of the method limits below it


@pytest.mark.parametrize("base", ["Li/Fe", "Li/C", "Li/graphite", "Li/Ag/Cu", "Li/Sn/Cu"])
def test_lithium_on_the_methods_collectors_takes_the_lithium_limits(base: str) -> None:
    m = material(base)
    assert m.air_sensitive
    assert m.reacts_with_n2
    assert m.max_temp_c == LITHIUM_MAX_TEMP_C


def test_a_tin_film_melts_below_the_etch_window_and_is_capped_below_it() -> None:
    assert material("Sn").max_temp_c == 220.0
    assert material("Sn/Cu").max_temp_c == 220.0


@pytest.mark.parametrize("film", ["Ag", "Si", "Mg", "Sn", "C", "Fe", "Au", "Pt", "W", "Mo", "Nb"])
def test_the_methods_films_have_monitor_figures(film: str) -> None:
    figures = film_properties(film)
    assert figures.density_g_cm3 > 1.0
    assert figures.source.startswith(INFICON_TABLE)


@pytest.mark.parametrize(
    "formula", ["57Li2S-38SiS2-5Li3PO4", "70Li2S-30P2S5", "Li2S", "60Li2S-40SiS2", "LiSiPO", "50Li2S-50GeS2"]
)
def test_sulfide_electrolytes_in_mole_ratio_notation_are_air_sensitive(formula: str) -> None:
    m = material(formula)
    assert m.air_sensitive
    assert not m.reacts_with_n2  # N2 is a fine inert gas for the sulfide alone
    assert LITHIUM_MAX_TEMP_C < m.max_temp_c <= 200.0  # the heat-treatment window tops at 200 °C
    assert "H2S" in m.note


def test_a_layer_stack_takes_the_strictest_limit_of_its_layers() -> None:
    electrode = material("57Li2S-38SiS2-5Li3PO4/Li/Cu")
    assert electrode.air_sensitive
    assert electrode.reacts_with_n2  # from the lithium layer
    assert electrode.max_temp_c == 179.0  # lithium's, not the sulfide's 200 or copper's 250
    assert electrode.name == "57Li2S-38SiS2-5Li3PO4/Li/Cu"
    sulfide_on_copper = material("57Li2S-38SiS2-5Li3PO4/Cu")
    assert sulfide_on_copper.air_sensitive
    assert not sulfide_on_copper.reacts_with_n2
    assert sulfide_on_copper.max_temp_c == material("57Li2S-38SiS2-5Li3PO4").max_temp_c


def test_a_stack_of_insensitive_layers_stays_insensitive_and_spaces_are_tolerated() -> None:
    assert not material("Ni/Cu").air_sensitive
    assert material(" Li / Cu ").max_temp_c == 179.0


def test_combine_of_nothing_is_refused() -> None:
    with pytest.raises(MaterialError, match="empty"):
        combine([])


def test_combine_keeps_every_note() -> None:
    merged = combine([Material("a", False, 100.0, note="x"), Material("b", True, 50.0, note="y")])
    assert merged == Material("a/b", True, 50.0, reacts_with_n2=False, note="x; y")


@pytest.mark.parametrize("name", ["Unobtainium", "Li-Mg", "li", "LiIn", "", "Li/Foo", "Li/"])
def test_an_unknown_material_is_refused_with_a_message_that_shows_what_is_known(name: str) -> None:
    with pytest.raises(MaterialError) as err:
        material(name)
    text = str(err.value)
    assert "unknown material" in text
    for hint in ("Li-In", "Cu", "57Li2S-38SiS2-5Li3PO4", "Li/Cu"):
        assert hint in text


def test_the_message_names_the_unknown_part_of_a_stack() -> None:
    with pytest.raises(MaterialError, match="'Foo'"):
        material("Li/Foo")


# -- items: containment and exposure ---------------------------------------------------------------


def inventory(*items: Item) -> dict[str, Item]:
    return {i.id: i for i in items}


def test_a_bare_lithium_foil_is_exposed_where_it_lies() -> None:
    items = inventory(li_foil("li1", "inlet"))
    assert is_exposed("li1", items)
    assert [i.id for i in exposed_in("inlet", items)] == ["li1"]
    assert exposed_in("process", items) == []


def test_copper_is_never_exposed_and_a_container_itself_is_never_exposed() -> None:
    items = inventory(copper_foil("cu1", "inlet"), container("box", "inlet", sealed=False))
    assert not is_exposed("cu1", items)
    assert not is_exposed("box", items)
    assert exposed_in("inlet", items) == []


def test_a_sealed_container_protects_and_an_open_one_does_not() -> None:
    items = inventory(container("box", "inlet", sealed=True), li_foil("li1", "box"))
    assert is_protected("li1", items)
    assert not is_exposed("li1", items)
    opened = inventory(container("box", "inlet", sealed=False), li_foil("li1", "box"))
    assert not is_protected("li1", opened)
    assert [i.id for i in exposed_in("inlet", opened)] == ["li1"]


def test_a_sealed_outer_container_protects_through_an_open_inner_one() -> None:
    items = inventory(
        container("outer", "inlet", sealed=True),
        container("inner", "outer", sealed=False),
        sulfide_target("t1", "inner"),
    )
    assert is_protected("t1", items)
    assert exposed_in("inlet", items) == []
    assert space_of("t1", items) == "inlet"


def test_a_sealed_inner_container_protects_inside_an_open_outer_one() -> None:
    items = inventory(
        container("outer", "inlet", sealed=False),
        container("inner", "outer", sealed=True),
        li_foil("li1", "inner"),
    )
    assert is_protected("li1", items)


def test_two_open_containers_protect_nothing() -> None:
    items = inventory(
        container("outer", "outlet", sealed=False),
        container("inner", "outer", sealed=False),
        li_foil("li1", "inner"),
    )
    assert [i.id for i in exposed_in("outlet", items)] == ["li1"]


def test_materials_in_counts_sealed_items_but_not_containers() -> None:
    """A heater warms the whole chamber: a sealed lithium foil still limits it."""
    items = inventory(
        container("box", "process", sealed=True), li_foil("li1", "box"), copper_foil("cu1", "process")
    )
    limits = sorted(m.max_temp_c for m in materials_in("process", items))
    assert limits == [179.0, 250.0]
    assert materials_in("inlet", items) == []


def test_contents_of_lists_only_direct_contents() -> None:
    items = inventory(container("outer", "inlet"), container("inner", "outer"), li_foil("li1", "inner"))
    assert [i.id for i in contents_of("outer", items)] == ["inner"]


def test_a_move_carries_the_contents_along() -> None:
    items = inventory(container("box", "inlet"), li_foil("li1", "box"))
    after = moved(items, "box", "process", SPACES)
    assert space_of("li1", after) == "process"
    assert items["box"].location == "inlet"  # the old inventory is untouched


def test_a_move_into_a_container_and_out_again() -> None:
    items = inventory(container("box", "outlet", sealed=False), li_foil("li1", "outlet"))
    inside = moved(items, "li1", "box", SPACES)
    assert inside["li1"].location == "box"
    assert not is_protected("li1", inside)  # the box is still open
    out = moved(inside, "li1", "outlet", SPACES)
    assert out["li1"].location == "outlet"


@pytest.mark.parametrize(
    ("item", "to", "message"),
    [
        ("ghost", "inlet", "no item 'ghost'"),
        ("li1", "nowhere", "not a space or an item"),
        ("li1", "cu1", "not a container"),
        ("outer", "inner", "cycle"),
        ("outer", "outer", "cycle"),
    ],
)
def test_impossible_moves_are_refused(item: str, to: str, message: str) -> None:
    items = inventory(
        container("outer", "inlet"),
        container("inner", "outer"),
        li_foil("li1", "inlet"),
        copper_foil("cu1", "inlet"),
    )
    with pytest.raises(InventoryError, match=message):
        moved(items, item, to, SPACES)


def test_a_cycle_already_in_the_records_is_reported_not_looped_on() -> None:
    items = inventory(
        Item("a", ItemKind.CONTAINER, "SUS", "b"),
        Item("b", ItemKind.CONTAINER, "SUS", "a"),
        li_foil("li1", "a"),
    )
    with pytest.raises(InventoryError, match="cycle"):
        space_of("li1", items)
    with pytest.raises(InventoryError, match="cycle"):
        is_protected("li1", items)


def test_an_item_of_unknown_material_fails_loudly_when_its_limits_are_asked() -> None:
    item = Item("x", ItemKind.TARGET, "Unobtainium", "inlet")
    with pytest.raises(MaterialError):
        _ = item.limits


@pytest.mark.parametrize("formula", ["Li3PS4", "Li6PS5Cl", "Li10GeP2S12", "57Li2S-38SiS2-5Li3PO4"])
def test_common_sulfide_electrolytes_are_air_sensitive(formula: str) -> None:
    m = material(formula)
    assert m.air_sensitive
    assert m.max_temp_c == SULFIDE_MAX_TEMP_C


@pytest.mark.parametrize("name", ["LiSn", "Li2SiO3"])
def test_silicon_and_tin_are_not_taken_for_sulfur(name: str) -> None:
    with pytest.raises(MaterialError):
        material(name)


# -- film figures for the thickness monitor ---------------------------------------------------------


def test_elements_take_inficons_table() -> None:
    assert film_properties("Li") == FilmProperties(0.53, 5.900, INFICON_TABLE)
    assert film_properties("Cu") == FilmProperties(8.93, 0.437, INFICON_TABLE)


def test_a_sulfide_glass_density_is_estimated_from_its_composition() -> None:
    # additive molar volumes of crystalline Li2S (1.66), SiS2 (2.02) and Li3PO4 (2.46 g/cm³), by hand
    mass = 0.57 * 45.94 + 0.38 * 92.21 + 0.05 * 115.79
    volume = 0.57 * 45.94 / 1.66 + 0.38 * 92.21 / 2.02 + 0.05 * 115.79 / 2.46
    glass = film_properties("57Li2S-38SiS2-5Li3PO4")
    assert glass.density_g_cm3 == pytest.approx(mass / volume, abs=0.002)
    # Z = Zq / sqrt(rho G) with G = 7 GPa = 7e10 dyn/cm²
    assert glass.z_ratio == pytest.approx(8.834e5 / (glass.density_g_cm3 * 7e10) ** 0.5, abs=0.002)
    assert "estimate" in glass.source
    # what a monitor left at the glass's density does to lithium: 3.5x too thin
    assert glass.density_g_cm3 / film_properties("Li").density_g_cm3 == pytest.approx(3.56, abs=0.02)


@pytest.mark.parametrize(
    "formula",
    ["57Li2S-38SiS2-5(Li2O-P2O5)", "57Li2S-38SiS2-5Li4SiO4", "60Li2S-39.5GeS2-0.5Li4SiO4", "60Li2S-40SiS2"],
)
def test_every_shipped_electrolyte_has_film_figures(formula: str) -> None:
    glass = film_properties(formula)
    assert 1.5 < glass.density_g_cm3 < 2.5
    assert 2.0 < glass.z_ratio < 2.7


@pytest.mark.parametrize(
    ("alloy", "other_g_cm3"),
    [("Li-In", 7.30), ("Li-Ti", 4.50), ("Li-Zn", 7.04), ("Li-Bi", 9.80), ("Li-Sn", 7.30)],
)
def test_lithium_alloys_are_estimated_between_their_elements(alloy: str, other_g_cm3: float) -> None:
    film = film_properties(alloy)
    assert 0.53 < film.density_g_cm3 < other_g_cm3
    assert "equiatomic" in film.source


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Li/Cu", "layer stack"),
        ("SUS", "cannot measure it"),
        ("LiSiPO", "cannot measure it"),
        ("57Li2S-38SiS2-5Li3BO3", "no density for 'Li3BO3'"),
        ("Unobtainium", "unknown material"),
    ],
)
def test_materials_without_film_figures_are_refused(name: str, message: str) -> None:
    with pytest.raises(MaterialError, match=message):
        film_properties(name)
