"""Interlocks: pure functions of (line state, requested action) -> allowed, or refused with a reason.

Each refusal names the invariant of DESIGN.md §4 it protects and the reading that blocked it, so an
operator sees *why*, and a test can check *which* rule spoke. Nothing here reads hardware.

`check` judges one action when it is asked for; `watch` judges the state continuously and returns the
safe actions that must happen now (a door may not stay open once either side leaves spec).
Closing, stopping and switching off are always allowed: the safe direction is never blocked.
The software interlock is supervisory; a real site keeps its hard-wired interlocks as the primary layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from controller.config.line_config import ROOM
from controller.line.actions import (
    Action,
    MoveItem,
    SetContainer,
    SetFilm,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetShutter,
    SetSource,
    SetTurbo,
    SetValve,
    opens_or_starts,
)
from controller.line.atmosphere import AIR_O2_PPMV, Atmosphere
from controller.line.items import (
    Inventory,
    InventoryError,
    ItemKind,
    contents_of,
    is_exposed,
    materials_in,
    moved,
    space_of,
)
from controller.line.materials import Material
from controller.line.state import LineState, PortState, SpaceState

HEATER_ABSOLUTE_MAX_C = 250.0
# where each source runs; the ion source lights (and the simulated one strikes) from 0.1 Pa of Ar
SOURCE_PRESSURE_WINDOWS_PA = {
    "dc_sputter": (0.1, 1.0),
    "rf_sputter": (0.1, 1.0),
    "ion_source": (0.1, 1.0),
    "evaporation": (0.0, 1e-2),
    "pulsed_laser": (0.0, 1e-2),
}
# Ion plating is evaporation into the ion source's Ar glow at 0.1-1 Pa (the recipe validator allows it
# there, and the simulated plant evaporates there only with the ion source assisting): while the
# chamber's ion source is on, evaporation may run in this window as well as in its vacuum one. Without
# the glow, evaporating into 0.1-1 Pa of gas only scatters the vapour, so it stays refused.
ION_PLATING_WINDOW_PA = (0.1, 1.0)
ION_PLATED_SOURCES = frozenset({"evaporation"})
ION_SOURCE = "ion_source"


@dataclass(frozen=True, slots=True)
class Refusal:
    invariant: str  # "I1".."I7" from DESIGN.md §4, or "E" for engineering rules beyond them
    rule: str
    reason: str
    evidence: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.invariant} {self.rule}] {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    refusals: tuple[Refusal, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(str(r) for r in self.refusals) if self.refusals else "allowed"


ALLOWED = Verdict(True)


def check(state: LineState, action: Action) -> Verdict:
    """Judge one requested action against every rule that applies to it."""
    # stopping a backing pump is not the safe direction while its turbo spins: judged like a start
    if not opens_or_starts(action) and not isinstance(action, MoveItem | SetHeater | SetPump):
        return ALLOWED
    refusals = tuple(_RULES[type(action)](state, action))
    return Verdict(not refusals, refusals)


# -- helpers ------------------------------------------------------------------------------------


def _space(state: LineState, name: str) -> SpaceState | None:
    return state.spaces.get(name)


def _unknown(kind: str, name: str) -> Refusal:
    return Refusal("E", "unknown-target", f"no {kind} named {name!r} on this line")


def _pressure_text(space: SpaceState) -> str:
    return "unknown" if space.pressure_pa is None else f"{space.pressure_pa:.3g} Pa"


def _exposed_refusal(state: LineState, space: SpaceState, what: str, invariant: str = "I1") -> Refusal | None:
    exposed = state.exposed_in(space.name)
    if not exposed:
        return None
    return Refusal(
        invariant,
        "exposed-items",
        f"{what} would expose air-sensitive {', '.join(exposed)} in {space.name} to a non-inert atmosphere",
        {"space": space.name, "items": exposed},
    )


def _compatible(a: SpaceState, b: SpaceState) -> bool:
    """Invariant 2: both inert-in-spec, or both vacuum (a process atmosphere counts as vacuum)."""
    vacuum_like = {Atmosphere.VACUUM, Atmosphere.PROCESS}
    return (a.atmosphere is Atmosphere.INERT_IN_SPEC and b.atmosphere is Atmosphere.INERT_IN_SPEC) or (
        a.atmosphere in vacuum_like and b.atmosphere in vacuum_like
    )


# -- per-action rules ---------------------------------------------------------------------------


def _valve_rules(state: LineState, action: SetValve) -> Iterator[Refusal]:
    space = _space(state, action.space)
    if space is None or action.valve not in space.valves:
        yield _unknown("valve", f"{action.space}.{action.valve}")
        return
    others = {name: v.maybe_open for name, v in space.valves.items() if name != action.valve}
    forbidden = {
        "rough": ("vent", "gas_fill", "turbo_gate"),  # crossover: never rough through an open turbo gate
        "vent": ("rough", "gas_fill", "turbo_gate"),
        "gas_fill": ("rough", "vent"),
    }
    for other in forbidden.get(action.valve, ()):
        if others.get(other):
            yield Refusal(
                "I4",
                "valve-combination",
                f"{action.space} {other} valve is (or may be) open: "
                f"{action.valve} and {other} never open together",
                {"open": other},
            )
    if action.valve == "vent":
        refusal = _exposed_refusal(state, space, f"venting {space.name}", "I3")
        if refusal:
            yield refusal
        yield from _inner_ports_not_closed(state, space, f"venting {space.name}")
        # a chamber with a turbo gate has a turbo: an unknown (stale/missing) speed counts as spinning
        # (`turbo_spinning`), it must not skip the check the way "no turbo at all" does
        if "turbo_gate" in space.valves and space.turbo_spinning:
            speed = "speed unknown" if space.turbo_speed_hz is None else f"{space.turbo_speed_hz:.0f} Hz"
            yield Refusal("I4", "turbo-vent", f"the turbo of {space.name} is spinning ({speed})")
    elif action.valve == "rough":
        if space.pump_running is not True:
            yield Refusal(
                "E", "pump-not-running", f"the {space.name} pump is not confirmed running: no backstreaming"
            )
    elif action.valve == "gas_fill":
        yield from _fill_rules(state, space)
    elif action.valve == "turbo_gate":
        yield from _turbo_gate_rules(space, state)


def _fill_rules(state: LineState, space: SpaceState) -> Iterator[Refusal]:
    if "turbo_gate" in space.valves and space.valves["turbo_gate"].maybe_open and space.turbo_spinning:
        yield Refusal("I4", "turbo-fill", f"close the {space.name} turbo gate valve before back-filling")
    if state.exposed_in(space.name):
        # predict the air share after filling to atmosphere from the current pressure
        p = space.pressure_pa
        if p is None:
            yield Refusal(
                "I1", "fill-unknown", f"{space.name} pressure unknown: cannot predict the back-fill result"
            )
            return
        predicted_o2 = space.provenance.air_fraction * p / state.limits.room_pressure_pa * AIR_O2_PPMV
        if predicted_o2 * state.limits.inert_purge_margin > state.limits.max_o2_ppmv:
            yield Refusal(
                "I1",
                "fill-result",
                f"back-filling {space.name} from {p:.3g} Pa would leave ~{predicted_o2:.2g} ppm O2 "
                "around exposed "
                f"{', '.join(state.exposed_in(space.name))} (limit {state.limits.max_o2_ppmv:g} ppm)",
                {"pressure_pa": p, "predicted_o2_ppmv": predicted_o2},
            )


def _turbo_gate_rules(space: SpaceState, state: LineState) -> Iterator[Refusal]:
    limit = state.limits.turbo_gate_max_pa
    if space.pressure_pa is None or space.pressure_pa > limit:
        yield Refusal(
            "I4",
            "turbo-pressure",
            f"{space.name} at {_pressure_text(space)}: the turbo gate opens only below {limit:g} Pa",
            {"pressure_pa": space.pressure_pa},
        )
    if space.turbo_speed_hz is None or space.turbo_speed_hz <= 1.0:
        yield Refusal(
            "E", "turbo-stopped", f"the {space.name} turbo is not running: a stopped rotor backstreams"
        )
    for other in ("vent", "gas_fill"):
        if space.valves[other].maybe_open:
            yield Refusal("I4", "valve-combination", f"{space.name} {other} valve is (or may be) open")


def _port_rules(state: LineState, action: SetPort) -> Iterator[Refusal]:
    port = state.ports.get(action.port)
    if port is None:
        yield _unknown("port", action.port)
        return
    if port.kind == "outer_door":
        yield from _outer_door_rules(state, port)
    else:
        yield from _inner_port_rules(state, port)


def _outer_door_rules(state: LineState, port: PortState) -> Iterator[Refusal]:
    name = next(s for s in port.between if s in state.spaces)
    space = state.spaces[name]
    room, window = state.limits.room_pressure_pa, state.limits.atmospheric_window_pa
    if space.pressure_pa is None or abs(space.pressure_pa - room) > window:
        yield Refusal(
            "I3",
            "not-atmospheric",
            f"{name} at {_pressure_text(space)}: "
            f"the outer door opens only within {window:g} Pa of {room:g} Pa",
            {"pressure_pa": space.pressure_pa},
        )
    refusal = _exposed_refusal(state, space, f"opening {port.name}", "I3")
    if refusal:
        yield refusal
    if space.valves["rough"].maybe_open:
        yield Refusal("I4", "pumping", f"{name} rough valve is open: close it before opening the outer door")
    yield from _inner_ports_not_closed(state, space, f"opening {port.name}")


def _inner_ports_not_closed(state: LineState, space: SpaceState, what: str) -> Iterator[Refusal]:
    """Air let into a space reaches every neighbour behind an inner port that is not confirmed closed.

    Without this, venting the process chamber (or opening an antechamber's outer door) while a gate
    stands open would flood the neighbour - its exposed items, and a sensorless chamber whose
    provenance never learns of the air - before `watch` could close the gate.
    """
    for port in state.ports_of(space.name):
        if port.kind != "outer_door" and not port.valve.confirmed_closed:
            other = next(n for n in port.between if n != space.name)
            yield Refusal(
                "I2",
                "inner-port-open",
                f"{what} with {port.name} not confirmed closed would let air into {other}",
                {"port": port.name},
            )


def _inner_port_rules(state: LineState, port: PortState) -> Iterator[Refusal]:
    a, b = (state.spaces[n] for n in port.between)
    if not _compatible(a, b):
        yield Refusal(
            "I2",
            "incompatible",
            f"{a.name} is {a.atmosphere.value} and {b.name} is {b.atmosphere.value}: "
            "both must be inert-in-spec or both vacuum",
            {a.name: a.atmosphere.value, b.name: b.atmosphere.value},
        )
    if a.pressure_pa is None or b.pressure_pa is None:
        yield Refusal(
            "I2", "dp-unknown", f"pressure unknown in {a.name if a.pressure_pa is None else b.name}"
        )
    else:
        dp = abs(a.pressure_pa - b.pressure_pa)
        limit = state.limits.door_max_dp_pa
        if dp > limit and not (a.atmosphere is Atmosphere.VACUUM and b.atmosphere is Atmosphere.VACUUM):
            yield Refusal(
                "I2", "dp", f"|Δp| = {dp:.3g} Pa across {port.name} exceeds {limit:g} Pa", {"dp_pa": dp}
            )
    for space in (a, b):
        if space.sources_on:
            yield Refusal(
                "I6", "source-on", f"{space.name} has sources on ({', '.join(sorted(space.sources_on))})"
            )
    # invariant 4: a running turbo behind an open gate valve sees the other side's pressure once the
    # port opens; "both vacuum" (up to vacuum_below_pa) is not enough for it
    limit = state.limits.turbo_gate_max_pa
    for pumped, other in ((a, b), (b, a)):
        turbo_gate = pumped.valves.get("turbo_gate")
        turbo_exposed = turbo_gate is not None and turbo_gate.maybe_open and pumped.turbo_spinning
        if turbo_exposed and (other.pressure_pa is None or other.pressure_pa > limit):
            yield Refusal(
                "I4",
                "turbo-pressure",
                f"{other.name} at {_pressure_text(other)} would reach the running turbo of "
                f"{pumped.name} (limit {limit:g} Pa): close its turbo gate first",
                {"pressure_pa": other.pressure_pa},
            )


def _pump_rules(state: LineState, action: SetPump) -> Iterator[Refusal]:
    space = _space(state, action.space)
    if space is None:
        yield _unknown("space", action.space)
        return
    if not action.running and "turbo_gate" in space.valves and space.turbo_spinning:
        speed = "speed unknown" if space.turbo_speed_hz is None else f"{space.turbo_speed_hz:.0f} Hz"
        yield Refusal(
            "I4",
            "backing-turbo",
            f"the {space.name} turbo is spinning ({speed}): stop it before its backing pump",
        )


def _turbo_rules(state: LineState, action: SetTurbo) -> Iterator[Refusal]:
    space = _space(state, action.space)
    if space is None or "turbo_gate" not in space.valves:
        yield _unknown("turbo", action.space)
        return
    if space.pump_running is not True:
        yield Refusal("I4", "no-backing", f"the {space.name} backing pump is not confirmed running")
    if space.valves["turbo_gate"].maybe_open and (
        space.pressure_pa is None or space.pressure_pa > state.limits.turbo_gate_max_pa
    ):
        yield Refusal("I4", "turbo-pressure", f"turbo gate open with {space.name} at {_pressure_text(space)}")


def _flow_rules(state: LineState, action: SetGasFlow) -> Iterator[Refusal]:
    space = _space(state, action.space)
    if space is None:
        yield _unknown("space", action.space)
        return
    if space.valves["vent"].maybe_open:
        yield Refusal("I4", "valve-combination", f"{space.name} vent valve is open")


def materials_on_holder(space: str, items: Inventory) -> list[Material]:
    """What the substrate heater warms. Targets are mounted in their (cooled) sources, away from the
    substrate heater, so a lithium target kept in the chamber does not cap an etch of bare copper;
    everything else in the space counts, sealed or not."""
    return materials_in(space, {i.id: i for i in items.values() if i.kind is not ItemKind.TARGET})


def _heater_rules(state: LineState, action: SetHeater) -> Iterator[Refusal]:
    if action.space not in state.spaces:
        yield _unknown("space", action.space)
        return
    limit, why = HEATER_ABSOLUTE_MAX_C, "the heater's own limit"
    if action.heater != "substrate":
        return  # a source heater melts its own charge: the materials limit is the substrate's
    for m in materials_on_holder(action.space, state.items):
        if m.max_temp_c < limit:
            limit, why = m.max_temp_c, f"{m.name} is present ({m.note or 'material limit'})"
    if not action.setpoint_c <= limit:  # written so that a NaN setpoint is refused too
        yield Refusal(
            "I5",
            "material-temperature",
            f"{action.setpoint_c:g} °C exceeds {limit:g} °C in {action.space}: {why}",
            {"setpoint_c": action.setpoint_c, "limit_c": limit},
        )


def _source_rules(state: LineState, action: SetSource) -> Iterator[Refusal]:
    space = _space(state, action.space)
    if space is None:
        yield _unknown("space", action.space)
        return
    for port in state.ports_of(space.name):
        if not port.valve.confirmed_closed:
            yield Refusal("I6", "chamber-open", f"{port.name} is not confirmed closed")
    if not space.base_pressure_reached:
        yield Refusal(
            "I6",
            "no-base-pressure",
            f"{space.name} has not reached the base pressure {state.limits.deposition_base_pressure_pa:g} Pa "
            "since it was last opened or filled",
        )
    source = action.source.removeprefix(f"{space.name}.")
    windows = _pressure_windows(space, source)
    p = space.pressure_pa
    if p is None or not any(low <= p <= high for low, high in windows):
        needs = " or ".join(f"{low:g}..{high:g} Pa" for low, high in windows)
        if source in ION_PLATED_SOURCES and len(windows) == 1:
            low, high = ION_PLATING_WINDOW_PA
            needs += f" ({low:g}..{high:g} Pa for ion plating, with the {ION_SOURCE} on first)"
        yield Refusal(
            "I6",
            "process-pressure",
            f"{space.name} at {_pressure_text(space)}: {action.source} needs {needs}",
            {"pressure_pa": p},
        )


def _pressure_windows(space: SpaceState, source: str) -> list[tuple[float, float]]:
    windows = [SOURCE_PRESSURE_WINDOWS_PA.get(source, (0.0, 1.0))]
    if source in ION_PLATED_SOURCES and ION_SOURCE in space.sources_on:
        windows.append(ION_PLATING_WINDOW_PA)
    return windows


def _shutter_rules(state: LineState, action: SetShutter) -> Iterator[Refusal]:
    if action.space not in state.spaces:
        yield _unknown("space", action.space)


def _film_rules(state: LineState, action: SetFilm) -> Iterator[Refusal]:
    """A film changed mid-layer would rescale the thickness already counted (and the rate a source is
    being stabilised on): allowed only while no source of the chamber runs (unknown counts as running)."""
    space = _space(state, action.space)
    if space is None:
        yield _unknown("space", action.space)
        return
    if space.sources_on:
        yield Refusal(
            "E",
            "film-during-layer",
            f"{', '.join(sorted(space.sources_on))} on in {space.name}: the thickness monitor's film "
            "is not changed while a layer may be growing",
            {"sources_on": sorted(space.sources_on)},
        )


def _move_rules(state: LineState, action: MoveItem) -> Iterator[Refusal]:
    items = state.items
    if action.item not in items:
        yield _unknown("item", action.item)
        return
    source = space_of(action.item, items)
    target = space_of(action.to, items) if action.to in items else action.to
    if target not in state.spaces and target != ROOM:  # the room: a sealed container leaving the line
        yield _unknown("space or container", action.to)
        return
    try:
        after = moved(items, action.item, action.to, [*state.spaces, ROOM])
    except InventoryError as exc:  # into a non-container, or a container into itself
        yield Refusal("E", "impossible-move", str(exc))
        return
    if source != target:
        between = [p for p in state.ports.values() if set(p.between) == {source, target}]
        if not any(p.valve.confirmed_open for p in between):
            yield Refusal("E", "no-open-port", f"no open port between {source} and {target}")
    # everything that travels, at any depth, and exposed before OR after the move: taking a foil out
    # of a sealed box exposes it, and an open box inside an open box still carries a bare foil
    moving = _carried(action.item, items)
    if any(is_exposed(i, items) or is_exposed(i, after) for i in moving):
        for name in sorted({source, target}):
            if name == ROOM:
                yield Refusal(
                    "I1",
                    "exposed-move",
                    f"{action.item} would carry an exposed air-sensitive item through room air",
                    {"space": ROOM, "atmosphere": Atmosphere.AIR.value},
                )
                continue
            space = state.spaces.get(name)
            if space is not None and not space.safe_for_exposed:
                yield Refusal(
                    "I1",
                    "exposed-move",
                    f"{action.item} is exposed and {name} is {space.atmosphere.value} "
                    f"({space.classification.reason})",
                    {"space": name, "atmosphere": space.atmosphere.value},
                )


def _carried(item_id: str, items: Inventory) -> list[str]:
    """The item and everything inside it, at any depth."""
    carried = [item_id]
    for holder in carried:  # grows while iterating: a breadth-first walk down the containers
        carried.extend(i.id for i in contents_of(holder, items))
    return carried


def _container_rules(state: LineState, action: SetContainer) -> Iterator[Refusal]:
    items = state.items
    if action.container not in items or not items[action.container].is_container:
        yield _unknown("container", action.container)
        return
    where = space_of(action.container, items)
    space = state.spaces.get(where)
    # what would newly be exposed: nested open boxes count, items a sealed outer box still protects
    # don't (and the container's own material is never looked up: a container is not a sample)
    unsealed = {**items, action.container: replace(items[action.container], sealed=False)}
    inside = [
        i for i in _carried(action.container, items) if is_exposed(i, unsealed) and not is_exposed(i, items)
    ]
    if inside and (space is None or space.atmosphere is not Atmosphere.INERT_IN_SPEC):
        shown = "air" if space is None else space.atmosphere.value
        detail = f"the {where}" if space is None else f"{space.name} ({space.classification.reason})"
        yield Refusal(
            "I1",
            "open-container",
            f"opening {action.container} would expose {', '.join(inside)} to {shown} in {detail}",
        )


_RULES: dict[type, Callable[[LineState, object], Iterator[Refusal]]] = {
    SetValve: _valve_rules,  # type: ignore[dict-item]
    SetPort: _port_rules,  # type: ignore[dict-item]
    SetPump: _pump_rules,  # type: ignore[dict-item]
    SetTurbo: _turbo_rules,  # type: ignore[dict-item]
    SetGasFlow: _flow_rules,  # type: ignore[dict-item]
    SetHeater: _heater_rules,  # type: ignore[dict-item]
    SetSource: _source_rules,  # type: ignore[dict-item]
    SetShutter: _shutter_rules,  # type: ignore[dict-item]
    SetFilm: _film_rules,  # type: ignore[dict-item]
    MoveItem: _move_rules,  # type: ignore[dict-item]
    SetContainer: _container_rules,  # type: ignore[dict-item]
}


# -- continuous permissives ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SafeAction:
    action: Action
    invariant: str
    reason: str


def watch(state: LineState) -> list[SafeAction]:
    """What must be done now to keep every invariant (an empty list when all is well)."""
    out: list[SafeAction] = []
    for port in state.ports.values():
        if port.kind == "outer_door" or not port.valve.maybe_open or port.valve.commanded_open is False:
            continue
        a, b = (state.spaces[n] for n in port.between)
        if not _compatible(a, b):
            out.append(
                SafeAction(
                    SetPort(port.name, False),
                    "I2",
                    f"{port.name} open while {a.name} is {a.atmosphere.value} "
                    f"and {b.name} is {b.atmosphere.value}",
                )
            )
    for space in state.spaces.values():
        out.extend(_watch_space(state, space))
    return out


def _watch_space(state: LineState, space: SpaceState) -> Iterator[SafeAction]:
    valves = space.valves
    if valves["vent"].commanded_open and (valves["rough"].maybe_open or valves["gas_fill"].maybe_open):
        yield SafeAction(
            SetValve(space.name, "vent", False), "I4", f"{space.name} vent open with another valve"
        )
    if "turbo_gate" in valves and valves["turbo_gate"].commanded_open:
        p = space.pressure_pa
        if p is None or p > 10 * state.limits.turbo_gate_max_pa:
            yield SafeAction(
                SetValve(space.name, "turbo_gate", False),
                "I4",
                f"{space.name} at {_pressure_text(space)} with the turbo gate open",
            )
    for source in sorted(space.sources_on):
        verdict = check(state, SetSource(space.name, source, True))
        blocking = [r for r in verdict.refusals if r.rule in ("chamber-open", "process-pressure")]
        if blocking:
            yield SafeAction(SetSource(space.name, source, False), "I6", f"{source}: {blocking[0].reason}")
    if space.substrate_temp_c is not None:
        limit = min(
            (m.max_temp_c for m in materials_on_holder(space.name, state.items)),
            default=HEATER_ABSOLUTE_MAX_C,
        )
        if space.substrate_temp_c > limit:
            yield SafeAction(
                SetHeater(space.name, "substrate", 20.0),
                "I5",
                f"{space.name} substrate at {space.substrate_temp_c:.1f} °C "
                f"above the {limit:g} °C material limit",
            )
