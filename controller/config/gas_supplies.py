"""The gases a line is plumbed for: each supply's gas, its purity, and the spaces it fills.

A recipe names its inert gas and purity, an etch its gas; the line can only give what its bottles
hold. `[[gas_supplies]]` declares them; a configuration without it has the standard line's one Ar
99.99 % supply feeding every space (the simulator's `GasSupplySpec()`). A chamber's process gas is
also what its mass-flow controller is calibrated for (`params.gas`); sequences.recipe_on_line holds
both against a recipe before a job starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.reader import TableReader

DEFAULT_GAS = "Ar"
DEFAULT_PURITY_PERCENT = 99.99


@dataclass(frozen=True, slots=True)
class GasSupply:
    gas: str
    purity_percent: float
    feeds: tuple[str, ...]  # the spaces it fills (antechambers' fill valves, chambers' fill and MFC)


def read_gas_supplies(readers: list[TableReader], spaces: list[str]) -> tuple[GasSupply, ...]:
    if not readers:
        return (GasSupply(DEFAULT_GAS, DEFAULT_PURITY_PERCENT, tuple(spaces)),)
    supplies = []
    for t in readers:
        gas = t.text("gas")
        if not 0 < len(gas) <= 16 or not gas.isprintable():
            raise t.fail("gas", gas, "a gas's name such as Ar, He, N2, H2 or dry_air (1..16 characters)")
        purity = t.number("purity_percent", min=90.0, max=100.0)
        feeds = tuple(t.text_list("feeds"))
        for space in feeds:
            if space not in spaces:
                raise t.fail("feeds", feeds, f"names of spaces: {', '.join(spaces)}")
        t.finish()
        supplies.append(GasSupply(gas, purity, feeds))
    return tuple(supplies)
