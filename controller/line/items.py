"""Items on the line (base material, targets, coated electrodes, containers) and where they are.

An item sits in a space or inside a container; a container is open or sealed. An air-sensitive item
is *exposed* unless some container around it is sealed. These are pure functions over an immutable
inventory, so the interlocks can ask "what is exposed in this space?" without side effects.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from controller.config.line_config import ROOM
from controller.errors import UserError
from controller.line.materials import Material, material

ITEM_ID_MAX_CHARS = 64
ITEM_ID_RULE = f"1..{ITEM_ID_MAX_CHARS} printable characters, no '/' or '\\', not a space's name or {ROOM!r}"


class ItemKind(enum.StrEnum):
    BASE_MATERIAL = "base_material"
    TARGET = "target"
    ELECTRODE = "electrode"
    CONTAINER = "container"


class InventoryError(UserError):
    """An item operation that cannot be: unknown item, a cycle of containers, a move into nowhere."""


@dataclass(frozen=True, slots=True)
class Item:
    """`location` is a space name or the id of the container holding the item."""

    id: str
    kind: ItemKind
    material: str
    location: str
    sealed: bool = False

    @property
    def is_container(self) -> bool:
        return self.kind is ItemKind.CONTAINER

    @property
    def limits(self) -> Material:
        return material(self.material)


Inventory = Mapping[str, Item]


def valid_item_id(item_id: str, spaces: Iterable[str] = ()) -> bool:
    """Whether a person may give an item this id (see ITEM_ID_RULE).

    An item's location is a space name or a container id, so an id equal to a space name (or "room")
    makes "where is it" ambiguous, and a container called "room" sits in a cycle of itself. Ids are
    also written into records and reports: no control characters, path separators or padding."""
    return (
        0 < len(item_id) <= ITEM_ID_MAX_CHARS
        and item_id.isprintable()
        and item_id.strip() == item_id
        and not any(c in item_id for c in "/\\")
        and item_id.strip(".") != ""
        and item_id not in (ROOM, *spaces)
    )


def space_of(item_id: str, items: Inventory) -> str:
    """The space an item is in, following containers outwards."""
    seen: set[str] = set()
    location = items[item_id].location
    while location in items:
        if location in seen:
            raise InventoryError(f"item {item_id!r} sits in a cycle of containers {sorted(seen)}")
        seen.add(location)
        location = items[location].location
    return location


def is_protected(item_id: str, items: Inventory) -> bool:
    """True when some container around the item is sealed."""
    location = items[item_id].location
    depth = 0
    while location in items:
        holder = items[location]
        if holder.sealed:
            return True
        location = holder.location
        depth += 1
        if depth > len(items):
            raise InventoryError(f"item {item_id!r} sits in a cycle of containers")
    return False


def is_exposed(item_id: str, items: Inventory) -> bool:
    item = items[item_id]
    return not item.is_container and item.limits.air_sensitive and not is_protected(item_id, items)


def exposed_in(space: str, items: Inventory) -> list[Item]:
    """Air-sensitive items in `space` that no sealed container protects."""
    return [i for i in items.values() if is_exposed(i.id, items) and space_of(i.id, items) == space]


def materials_in(space: str, items: Inventory) -> list[Material]:
    """Everything in the space, sealed or not: a heater warms the chamber, not just what is exposed."""
    return [i.limits for i in items.values() if not i.is_container and space_of(i.id, items) == space]


def contents_of(container_id: str, items: Inventory) -> list[Item]:
    return [i for i in items.values() if i.location == container_id]


def moved(items: Inventory, item_id: str, to: str, spaces: Iterable[str]) -> dict[str, Item]:
    """The inventory after `item_id` moves to a space or into a container (contents travel along)."""
    if item_id not in items:
        raise InventoryError(f"no item {item_id!r}")
    known = set(spaces)
    if to not in known and to not in items:
        raise InventoryError(f"cannot move {item_id!r} to {to!r}: not a space or an item")
    if to in items and not items[to].is_container:
        raise InventoryError(f"cannot move {item_id!r} into {to!r}: it is not a container")
    out = dict(items)
    out[item_id] = replace(items[item_id], location=to)
    space_of(item_id, out)  # refuses a container put inside itself
    return out
