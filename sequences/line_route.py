"""Where a job goes on a line: in through an antechamber, through its deposition systems, out.

The topology is configuration (DESIGN.md §1), so the route is read from the spaces and ports: the
inlet and outlet are antechambers with an outer door and a gate valve to a process chamber (one
antechamber may be both), and two deposition systems are joined through a transfer chamber, the
method's intermediate inert space, with a gate valve on each side. The electrode passes the chambers
one way, in the order the transfer chambers join them.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.line_config import ROOM, LineConfig
from controller.errors import UserError


@dataclass(frozen=True, slots=True)
class Passage:
    """From one deposition system to the next through the intermediate inert space between them."""

    leaves: str  # the chamber left
    transfer: str  # the transfer chamber
    enters: str  # the chamber entered
    leave_gate: str  # leaves <-> transfer
    enter_gate: str  # transfer <-> enters


@dataclass(frozen=True, slots=True)
class Route:
    """In through `inlet` into `process` (the first chamber), on through each passage, out of the last
    chamber into `outlet`."""

    inlet: str
    process: str
    outlet: str
    inlet_door: str
    outlet_door: str
    inlet_gate: str
    outlet_gate: str
    passages: tuple[Passage, ...] = ()

    @property
    def chambers(self) -> tuple[str, ...]:
        """The process chambers in the order the electrode passes them."""
        return (self.process, *(p.enters for p in self.passages))

    @property
    def last(self) -> str:
        return self.chambers[-1]

    @property
    def spaces(self) -> tuple[str, ...]:
        """Every space the route passes, in order, each once."""
        middle = [s for p in self.passages for s in (p.leaves, p.transfer, p.enters)]
        return tuple(dict.fromkeys([self.inlet, self.process, *middle, self.outlet]))


def _gates(config: LineConfig) -> dict[frozenset[str], str]:
    return {frozenset(p.between): p.name for p in config.ports if p.kind != "outer_door"}


def chambers_in_order(config: LineConfig) -> tuple[str, ...]:
    """The process chambers from the inlet's end, chained through transfer chambers."""
    return tuple(_chain(config)[0])


def _chain(config: LineConfig) -> tuple[list[str], list[Passage]]:
    chambers = config.spaces_of_kind("process_chamber")
    if not chambers:
        raise UserError(f"{config.path}: the line has no process chamber")
    gates = _gates(config)
    doors = {next(s for s in p.between if s != ROOM) for p in config.ports if p.kind == "outer_door"}
    entries = [
        c
        for a in config.spaces_of_kind("antechamber")
        if a in doors
        for c in chambers
        if frozenset((a, c)) in gates
    ]
    order = [entries[0] if entries else chambers[0]]
    passages: list[Passage] = []
    while True:
        here = order[-1]
        step = next(
            (
                (t, c)
                for t in config.spaces_of_kind("transfer_chamber")
                if frozenset((here, t)) in gates
                for c in chambers
                if c not in order and frozenset((t, c)) in gates
            ),
            None,
        )
        if step is None:
            break
        transfer, there = step
        passages.append(
            Passage(
                here, transfer, there, gates[frozenset({here, transfer})], gates[frozenset({transfer, there})]
            )
        )
        order.append(there)
    missing = [c for c in chambers if c not in order]
    if missing:
        raise UserError(
            f"{config.path}: process chamber(s) {', '.join(missing)} are not on the route "
            f"{' -> '.join(order)}: deposition systems are joined through a transfer_chamber"
        )
    return order, passages


def route_of(config: LineConfig) -> Route:
    order, passages = _chain(config)
    first, last = order[0], order[-1]
    gates = _gates(config)
    doors = {next(s for s in p.between if s != ROOM): p.name for p in config.ports if p.kind == "outer_door"}
    antechambers = [a for a in config.spaces_of_kind("antechamber") if a in doors]
    inlets = [a for a in antechambers if frozenset((a, first)) in gates]
    outlets = [a for a in antechambers if frozenset((a, last)) in gates]
    if not inlets or not outlets:
        end = first if not inlets else last
        raise UserError(f"{config.path}: no antechamber with an outer door and a gate to {end}")
    inlet, outlet = inlets[0], outlets[-1]
    return Route(
        inlet, first, outlet, doors[inlet], doors[outlet],
        gates[frozenset({inlet, first})], gates[frozenset({last, outlet})], tuple(passages),
    )  # fmt: skip
