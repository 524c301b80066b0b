"""The controller's model of the line: topology, item inventory, per-space memory, current state.

It owns the only mutable things the interlocks depend on besides the readings: where items are
(changed only by allowed item commands) and each space's provenance. `state()` turns the latest
readings into the immutable `LineState` the gate judges.
"""

from __future__ import annotations

import time
from dataclasses import replace

from controller.config import LineConfig
from controller.items import InventoryError, Item, ItemKind, moved
from controller.line_state import LineReadings, LineState, Snapshot, SpaceMemory, build_line_state
from controller.materials import material


class LineModel:
    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self.readings = LineReadings(config)
        self.memory: dict[str, SpaceMemory] = {}
        self.items: dict[str, Item] = {}
        self.spaces = [s.name for s in config.spaces]

    def state(self, snapshot: Snapshot, now_mono: float | None = None) -> LineState:
        now = time.monotonic() if now_mono is None else now_mono
        return build_line_state(self.readings, snapshot, self.memory, dict(self.items), now)

    def register(
        self, item_id: str, kind: ItemKind, material_name: str, location: str, *, sealed: bool = False
    ) -> Item:
        """An item enters the line's records (at the inlet, in its container)."""
        if item_id in self.items:
            raise InventoryError(f"item {item_id!r} is already registered")
        material(material_name)  # unknown materials are refused before anything is recorded
        if location not in self.spaces and location not in self.items and location != "room":
            raise InventoryError(
                f"cannot register {item_id!r} at {location!r}: not a space, container or 'room'"
            )
        item = Item(item_id, kind, material_name, location, sealed)
        self.items[item_id] = item
        return item

    def move(self, item_id: str, to: str) -> None:
        self.items = moved(self.items, item_id, to, [*self.spaces, "room"])

    def set_sealed(self, container: str, sealed: bool) -> None:
        item = self.items.get(container)
        if item is None or not item.is_container:
            raise InventoryError(f"no container {container!r}")
        self.items[container] = replace(item, sealed=sealed)
