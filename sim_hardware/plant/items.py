"""What the operator carries through the line's doors: the loads whose water a pump-down meets.

The plant sees only its doors. Items follow them as the production sequence (DESIGN §1) moves them:

* An antechamber's outer door opening is the operator at it: whatever lay inside goes out to the
  room (emptied containers, a sealed product box) and a closed container comes in, its outside
  fresh from room air (age 0). Through an entry antechamber the container brings the production
  items: base foil, carrier and targets, which were packed under inert gas and arrive with the age
  of a surface kept at the −50 °C frost point (spec.py).
* An inner gate opening between two spaces is a transfer: carried items go through it, onward
  (never back to the space they came from, unless they are in a chamber with one gate and no outer
  door, as the process chamber of a line with one shared antechamber is). Containers stay put.

Nothing here comes from the controller: a door's position is all it uses, as a real room sees the
operator only through the doors. Items age and re-wet with the space they are in (space.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_hardware.plant.flow import Opening, Valve
from sim_hardware.plant.space import Load, Space
from sim_hardware.plant.spec import ROOM, ItemTrafficSpec, LoadSpec


@dataclass(eq=False)
class _Watched:
    actuator: Valve
    a: Space
    b: Space | None  # None: the room
    was_open: bool = False


class ItemTraffic:
    """Adds, moves and removes the plant's `loads` as doors open (`update` after valve travel)."""

    def __init__(self, spec: ItemTrafficSpec, openings: list[Opening], loads: list[Load]) -> None:
        self.spec = spec
        self.loads = loads
        self._doors: list[_Watched] = []
        gates_per_space: dict[str, int] = {}
        outer: set[str] = set()
        for opening in openings:
            if opening.actuator.kind != "door":
                continue
            other = opening.b if isinstance(opening.b, Space) else None
            if other is None and opening.b.name != ROOM:
                continue
            watched = _Watched(opening.actuator, opening.a, other, opening.actuator.position > 0.0)
            self._doors.append(watched)
            if other is None:
                outer.add(opening.a.name)
            else:
                for space in (opening.a, other):
                    gates_per_space[space.name] = gates_per_space.get(space.name, 0) + 1
        self._dead_ends = {n for n, count in gates_per_space.items() if count == 1 and n not in outer}

    def update(self) -> None:
        for door in self._doors:
            now_open = door.actuator.position > 0.0
            if now_open and not door.was_open:
                if door.b is None:
                    self._operator_at_outer_door(door.a)
                else:
                    self._transfer(door.a, door.b)
            door.was_open = now_open

    def _operator_at_outer_door(self, space: Space) -> None:
        self.loads[:] = [load for load in self.loads if load.space is not space]
        self._bring(self.spec.container, space, carried=False)
        if space.name in self.spec.entry_spaces:
            self._bring(self.spec.contents, space, carried=True)

    def _bring(self, spec: LoadSpec, space: Space, *, carried: bool) -> None:
        self.loads.append(
            Load(spec.name, space, spec.area_m2, spec.q_1h_pa_m3_s_m2, spec.initial_age_s, carried, ROOM)
        )

    def _transfer(self, a: Space, b: Space) -> None:
        moves = [
            (load, b if load.space is a else a)
            for load in self.loads
            if load.carried and load.space in (a, b)
        ]
        for load, to in moves:
            source = load.space
            if load.came_from == to.name and source.name not in self._dead_ends:
                continue
            load.came_from = source.name
            load.space = to
