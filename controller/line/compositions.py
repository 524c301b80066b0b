"""Mole-ratio notation of target formulas: "57Li2S-38SiS2-5(Li2O-P2O5)" as components and mole percents.

The recipe validator checks a target's notation with it, and the materials table estimates a glass's
density from the same components, so both read a formula the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.errors import UserError

MOLE_PERCENT_TOLERANCE = 0.5


class FormulaError(UserError):
    """A target formula that is not valid mole-ratio notation."""


@dataclass(frozen=True, slots=True)
class Component:
    formula: str
    mole_percent: float


_COMPONENT = re.compile(r"(?P<coef>\d+(?:\.\d+)?)?(?P<formula>\(.+\)|[A-Z].*)")
_COMPOUND = re.compile(r"(?:[A-Z][a-z]?\d*(?:\.\d+)?)+")


def parse_mole_ratio(text: str) -> tuple[Component, ...]:
    """Split "57Li2S-38SiS2-5(Li2O-P2O5)" into components with their mole percents.

    A single compound without a coefficient is 100 %. With several parts every part needs its
    coefficient and they must add up to 100 (± 0.5), since a typo in a coefficient silently
    changes the film's composition.
    """
    parts = _split_top_level(text.strip())
    if len(parts) == 1 and parts[0] and not parts[0][0].isdigit():
        _check_compound(parts[0], text)
        return (Component(parts[0], 100.0),)
    components: list[Component] = []
    for part in parts:
        match = _COMPONENT.fullmatch(part)
        if match is None or match.group("coef") is None:
            raise FormulaError(
                f"{part!r} in {text!r} needs a mole-percent coefficient and a formula, e.g. 57Li2S"
            )
        formula = match.group("formula")
        inner = formula[1:-1] if formula.startswith("(") else formula
        for compound in _split_top_level(inner):
            _check_compound(compound, text)
        components.append(Component(inner, float(match.group("coef"))))
    total = sum(c.mole_percent for c in components)
    if abs(total - 100.0) > MOLE_PERCENT_TOLERANCE:
        raise FormulaError(
            f"mole percents in {text!r} add up to {total:g}, not 100 (± {MOLE_PERCENT_TOLERANCE:g})"
        )
    return tuple(components)


def _split_top_level(text: str) -> list[str]:
    """Split on '-' outside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced parentheses in {text!r}")
        if char == "-" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise FormulaError(f"unbalanced parentheses in {text!r}")
    parts.append(current)
    if any(not p for p in parts):
        raise FormulaError(f"empty component in {text!r}")
    return parts


def _check_compound(compound: str, text: str) -> None:
    if _COMPOUND.fullmatch(compound) is None:
        raise FormulaError(f"{compound!r} in {text!r} is not a chemical formula such as Li2S or SiS2")


def is_mole_ratio(text: str) -> bool:
    """Coefficients or a parenthesised group: mole-ratio notation rather than a single name."""
    return text[:1].isdigit() or "(" in text
