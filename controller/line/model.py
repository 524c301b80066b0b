"""The controller's model of the line: topology, item inventory, per-space memory, current state.

It owns the only mutable things the interlocks depend on besides the readings: where items are
(changed only by allowed item commands) and each space's provenance. `state()` turns the latest
readings into the immutable `LineState` the gate judges.

Registrations are the one inventory change that does not pass the gate, so they are announced to
`on_register` hooks (the historian keeps each one: a restart rebuilds the inventory from them and
from the gate's item commands). `restore` puts such a rebuilt inventory back, announcing nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from controller.config.line_config import LineConfig
from controller.line.items import InventoryError, Item, ItemKind, moved, space_of
from controller.line.materials import material
from controller.line.state import LineReadings, LineState, Snapshot, SpaceMemory, build_line_state

log = logging.getLogger(__name__)
RegisterHook = Callable[[Item, str, str], None]  # (item, user, origin)


class LineModel:
    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self.readings = LineReadings(config)
        self.memory: dict[str, SpaceMemory] = {}
        self.items: dict[str, Item] = {}
        self.spaces = [s.name for s in config.spaces]
        self.on_register: list[RegisterHook] = []
        self.on_coat: list[RegisterHook] = []

    def state(self, snapshot: Snapshot, now_mono: float | None = None) -> LineState:
        now = time.monotonic() if now_mono is None else now_mono
        return build_line_state(self.readings, snapshot, self.memory, dict(self.items), now)

    def register(
        self,
        item_id: str,
        kind: ItemKind,
        material_name: str,
        location: str,
        *,
        sealed: bool = False,
        user: str = "",
        origin: str = "",
    ) -> Item:
        """An item enters the line's records (at the inlet, in its container); `user` and `origin` are
        who registered it, for the record the hooks keep."""
        if item_id in self.items:
            raise InventoryError(f"item {item_id!r} is already registered")
        material(material_name)  # unknown materials are refused before anything is recorded
        if location not in self.spaces and location not in self.items and location != "room":
            raise InventoryError(
                f"cannot register {item_id!r} at {location!r}: not a space, container or 'room'"
            )
        item = Item(item_id, kind, material_name, location, sealed)
        self.items[item_id] = item
        for hook in self.on_register:
            try:
                hook(item, user, origin)
            except Exception:  # a failing recorder must not undo a registration the operator made
                log.exception("registration hook failed", extra={"item": item_id})
        return item

    def restore(self, items: Iterable[Item]) -> None:
        """Replace the inventory with one rebuilt from the records (at start, before anything runs).

        Checked like a registration (known materials; every item in a space, a container or the
        room; no cycles), because a configuration edited since could have lost a space an item is in:
        that must stop the start, not leave an item nowhere.
        """
        restored = {item.id: item for item in items}
        for item in restored.values():
            material(item.material)
            if item.location not in self.spaces and item.location not in restored and item.location != "room":
                raise InventoryError(
                    f"item {item.id!r} was last in {item.location!r}, which is not a space of this line, "
                    "a registered container or 'room'"
                )
            space_of(item.id, restored)  # refuses a cycle of containers
        self.items = restored

    def coat(self, item_id: str, material_name: str, *, user: str = "", origin: str = "") -> Item:
        """A layer was deposited on the item: it is now `material_name` (a stack such as "LiSiPO/Li/Cu").

        Why it matters: a bare copper foil is not air-sensitive, the same foil with lithium or a sulfide
        film on it is, and its temperature limit is the film's. The gate and the ledger judge the item
        by its material, so the record must follow the process. Not an actuator command (nothing moves).
        """
        item = self.items.get(item_id)
        if item is None or item.is_container:
            raise InventoryError(f"no item {item_id!r} to coat")
        material(material_name)  # unknown materials are refused before anything is recorded
        coated = replace(item, material=material_name)
        self.items[item_id] = coated
        for hook in self.on_coat:
            try:
                hook(coated, user, origin)
            except Exception:  # a failing recorder must not undo what happened on the line
                log.exception("coating hook failed", extra={"item": item_id})
        return coated

    def move(self, item_id: str, to: str) -> None:
        self.items = moved(self.items, item_id, to, [*self.spaces, "room"])

    def set_sealed(self, container: str, sealed: bool) -> None:
        item = self.items.get(container)
        if item is None or not item.is_container:
            raise InventoryError(f"no container {container!r}")
        self.items[container] = replace(item, sealed=sealed)
