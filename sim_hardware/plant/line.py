"""The plant: every space, actuator, pump, heater and source of a line, advanced on virtual time.

`Plant.from_spec(spec)` builds a line from a `LineSpec`; `plant.advance(dt_s)` moves it forward.
Everything observable is a plain attribute or property of the objects in the name-keyed dicts
(`plant.spaces`, `plant.valves`, `plant.doors`, `plant.pumps`, `plant.turbos`, `plant.mfcs`,
`plant.heaters`, `plant.sources`, `plant.substrates`, `plant.qcms`, `plant.gloveboxes`,
`plant.supplies`); commands are settable attributes on the same objects. Faults have methods here.

Integration. `advance` splits dt into sub-steps. In each, every space first takes its *local* processes
(outgassing, water uptake by its surfaces, leak, rough pumps, turbo, MFC, purifier) as one linear system
per species, dn/dt = Q − k·n, solved exactly (n → Q/k exponentially); then every open valve or door
moves gas between its two sides by an exact exponential equalisation (flow.py). Nonlinear coefficients
(conductance ∝ pressure, pump speed in series with the line, turbo speed) are frozen at their predicted
mid-step values. No step size can overshoot, go negative, or oscillate, and the sub-step is chosen so
that no space's gas amount changes by more than `max_relative_change` (5 %) per sub-step, up to
`max_substep_s` (10 s) when the line is quiet. Valve travel and turbo run-up also cap the step so they
are followed accurately.

Loads (`plant.loads`) outgas and age like walls; with `spec.items` the operator's containers and
production items come and go with the doors (items.py).
"""

from __future__ import annotations

import logging
import math
from typing import TypeVar

from sim_hardware.plant.deposition import DepositionSource, Qcm, Substrate, advance_deposition
from sim_hardware.plant.flow import Door, Opening, Valve
from sim_hardware.plant.gas import (
    GAS_CONSTANT_J_MOL_K,
    MOL_PER_S_PER_SCCM,
    N_SPECIES,
    Composition,
    Species,
    humid_air,
    impurities_for_purity,
    supply_composition,
)
from sim_hardware.plant.glovebox import Glovebox
from sim_hardware.plant.items import ItemTraffic
from sim_hardware.plant.mfc import Mfc
from sim_hardware.plant.power import Mains
from sim_hardware.plant.pumps import RoughLine, RoughPump
from sim_hardware.plant.space import (
    OUTGASSING_COMPOSITION,
    GasSupply,
    Load,
    Reservoir,
    Space,
    aged,
    outgassing_integral_pa_m3,
    outgassing_rate_pa_m3_s,
    water_uptake_m3_s,
)
from sim_hardware.plant.spec import ROOM, LineSpec, PlantSpecError
from sim_hardware.plant.thermal import Heater
from sim_hardware.plant.turbo import Turbo

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# A space is never treated as holding less than this for step-size control (mol per m³·Pa scale).
_FLOOR_PRESSURE_PA = 1e-10


class Plant:
    """A simulated line. Build with `Plant.from_spec(spec)`; see the module docstring."""

    def __init__(self, spec: LineSpec) -> None:
        self.spec = spec
        self.time_s = 0.0
        self.substeps = 0
        self.mains = Mains()
        room = spec.room
        self.room = Reservoir(
            ROOM,
            humid_air(room.temp_c, room.relative_humidity_pct, room.pressure_pa),
            room.pressure_pa,
            room.temp_c,
        )
        self.supplies: dict[str, GasSupply] = {}
        self.spaces: dict[str, Space] = {}
        self.valves: dict[str, Valve] = {}
        self.doors: dict[str, Door] = {}
        self.pumps: dict[str, RoughPump] = {}
        self.rough_lines: dict[str, RoughLine] = {}
        self.openings: dict[str, Opening] = {}
        self.turbos: dict[str, Turbo] = {}
        self.mfcs: dict[str, Mfc] = {}
        self.heaters: dict[str, Heater] = {}
        self.sources: dict[str, DepositionSource] = {}
        self.substrates: dict[str, Substrate] = {}
        self.qcms: dict[str, Qcm] = {}
        self.gloveboxes: dict[str, Glovebox] = {}
        self.loads: list[Load] = []
        self._build(spec)
        self.item_traffic = (
            None if spec.items is None else ItemTraffic(spec.items, list(self.openings.values()), self.loads)
        )
        self._space_list = list(self.spaces.values())
        self._actuators: list[Valve] = [*self.valves.values(), *self.doors.values()]
        self._chambers = [
            (
                space,
                [s for s in self.sources.values() if s.space is space],
                self.substrates.get(space.name),
                [q for q in self.qcms.values() if q.space is space],
            )
            for space in self._space_list
            if any(s.space is space for s in self.sources.values())
            or any(q.space is space for q in self.qcms.values())
        ]

    @classmethod
    def from_spec(cls, spec: LineSpec) -> Plant:
        return cls(spec)

    # --- construction ---------------------------------------------------------------------------

    def _build(self, spec: LineSpec) -> None:
        for s in spec.supplies:
            h2o, o2, n2 = impurities_for_purity(s.purity_pct)
            gas = supply_composition(
                s.gas,
                h2o if s.h2o_ppmv is None else s.h2o_ppmv,
                o2 if s.o2_ppmv is None else s.o2_ppmv,
                n2 if s.n2_ppmv is None else s.n2_ppmv,
            )
            self.supplies[s.name] = GasSupply(
                s.name, gas, s.delivery_pressure_pa, s.temp_c, gas_name=s.gas, inventory_mol=s.inventory_mol
            )
        for sp in spec.spaces:
            space = Space(
                sp.name,
                volume_m3=sp.volume_m3,
                wall_area_m2=sp.wall_area_m2,
                q_1h_pa_m3_s_m2=sp.q_1h_pa_m3_s_m2,
                temp_c=sp.temp_c,
                leak_pa_m3_s=sp.leak_pa_m3_s,
                rewet_h2o_pa=sp.rewet_h2o_pa,
                outgassing_age_s=sp.initial_outgassing_age_s,
            )
            pressure = self.room.pressure_pa if sp.initial_pressure_pa is None else sp.initial_pressure_pa
            space.fill(self._initial_gas(sp.initial_gas, sp.name), pressure)
            self._add_unique(self.spaces, sp.name, space)
        for p in spec.pumps:
            self._add_unique(
                self.pumps,
                p.name,
                RoughPump(p.name, self.mains, speed_m3_h=p.speed_m3_h, ultimate_pa=p.ultimate_pa),
            )
        for rl in spec.rough_lines:
            valve = Valve(rl.name, self.mains, travel_s=rl.travel_s)
            self._add_unique(self.valves, rl.name, valve)
            self.rough_lines[rl.name] = RoughLine(
                valve,
                self._space(rl.space, rl.name),
                self._lookup(self.pumps, rl.pump, rl.name),
                conductance_atm_m3_s=rl.conductance_atm_m3_s,
                conductance_molecular_m3_s=rl.conductance_molecular_m3_s,
            )
        for op in spec.openings:
            actuator_cls = Door if op.kind == "door" else Valve
            actuator = actuator_cls(
                op.name,
                self.mains,
                travel_s=op.travel_s,
                fail_closed=op.fail_closed,
                initially_open=op.initially_open,
            )
            if isinstance(actuator, Door):
                self._add_unique(self.doors, op.name, actuator)
            else:
                self._add_unique(self.valves, op.name, actuator)
            side_a, side_b = (op.b, op.a) if op.a not in self.spaces else (op.a, op.b)
            self.openings[op.name] = Opening(
                actuator,
                self._space(side_a, op.name),
                self._node(side_b, op.name),
                conductance_atm_m3_s=op.conductance_atm_m3_s,
                conductance_molecular_m3_s=op.conductance_molecular_m3_s,
                mixing_m3_s=op.mixing_m3_s,
                transition_pressure_pa=op.transition_pressure_pa,
            )
        for t in spec.turbos:
            gate = Valve(t.gate_valve, self.mains, travel_s=t.gate_travel_s)
            self._add_unique(self.valves, t.gate_valve, gate)
            turbo = Turbo(
                t,
                self._space(t.space, t.name),
                gate,
                self._lookup(self.pumps, t.backing_pump, t.name),
                self.mains,
            )
            self._add_unique(self.turbos, t.name, turbo)
        for m in spec.mfcs:
            mfc = Mfc(
                m.name,
                self._lookup(self.supplies, m.supply, m.name),
                self._space(m.space, m.name),
                self.mains,
                full_scale_sccm=m.full_scale_sccm,
                time_constant_s=m.time_constant_s,
            )
            self._add_unique(self.mfcs, m.name, mfc)
        for h in spec.heaters:
            self._add_unique(self.heaters, h.name, Heater(h, self._space(h.space, h.name), self.mains))
        for src in spec.sources:
            space = self._space(src.space, src.name)
            self._add_unique(self.sources, src.name, DepositionSource(src, space, self.mains))
            self.substrates.setdefault(space.name, Substrate(space))
        for q in spec.qcms:
            self._add_unique(self.qcms, q.name, Qcm(q, self._space(q.space, q.name)))
        for g in spec.gloveboxes:
            self._add_unique(
                self.gloveboxes, g.name, Glovebox(g, self._space(g.space, g.name), self.room, self.mains)
            )

    def _initial_gas(self, name: str, owner: str) -> Composition:
        if name == "air":
            return self.room.fractions
        return self._lookup(self.supplies, name, owner).fractions

    @staticmethod
    def _add_unique(table: dict[str, _T], name: str, item: _T) -> None:
        if name in table:
            raise PlantSpecError(f"duplicate name {name!r}")
        table[name] = item

    @staticmethod
    def _lookup(table: dict[str, _T], name: str, owner: str) -> _T:
        try:
            return table[name]
        except KeyError:
            raise PlantSpecError(f"{owner}: unknown {name!r} (known: {', '.join(sorted(table))})") from None

    def _space(self, name: str, owner: str) -> Space:
        return self._lookup(self.spaces, name, owner)

    def _node(self, name: str, owner: str) -> Space | Reservoir:
        if name == ROOM:
            return self.room
        if name in self.supplies:
            return self.supplies[name]
        return self._space(name, owner)

    # --- the single ones of the standard line -----------------------------------------------------

    @property
    def turbo(self) -> Turbo:
        return _only(self.turbos, "turbo")

    @property
    def mfc(self) -> Mfc:
        return _only(self.mfcs, "MFC")

    @property
    def qcm(self) -> Qcm:
        return _only(self.qcms, "QCM")

    # --- loads ------------------------------------------------------------------------------------

    def add_load(self, space: str, area_m2: float, q_1h_pa_m3_s_m2: float, name: str = "load") -> Load:
        """Bring items with adsorbed water into a space; returns the handle to move or remove them."""
        load = Load(name, self._space(space, name), area_m2, q_1h_pa_m3_s_m2)
        self.loads.append(load)
        return load

    def move_load(self, load: Load, space: str) -> None:
        load.space = self._space(space, load.name)

    def remove_load(self, load: Load) -> None:
        self.loads.remove(load)

    # --- faults -----------------------------------------------------------------------------------

    def set_leak(self, space: str, rate_pa_m3_s: float) -> None:
        """Air leak into a space (throughput at vacuum, Pa·m³/s); 0 removes it."""
        self._space(space, "leak").leak_pa_m3_s = max(0.0, rate_pa_m3_s)

    def pump_failure(self, pump: str, failed: bool = True) -> None:
        """Fail (or repair) a rough pump or a turbo by name."""
        if pump in self.turbos:
            self.turbos[pump].failed = failed
        else:
            self._lookup(self.pumps, pump, "pump_failure").failed = failed
        log.warning("pump failure injected", extra={"pump": pump, "failed": failed})

    def gas_supply_empty(self, empty: bool = True, supply: str | None = None) -> None:
        """Empty (or refill) a gas supply; all of them when `supply` is None."""
        targets = (
            [self._lookup(self.supplies, supply, "gas_supply_empty")] if supply else self.supplies.values()
        )
        for s in targets:
            s.empty = empty
            if not empty and s.inventory_mol is not None and s.inventory_mol <= 0.0:
                s.inventory_mol = None

    def heater_sensor_break(self, heater: str, broken: bool = True) -> None:
        self._lookup(self.heaters, heater, "heater_sensor_break").sensor_break = broken

    def power_loss(self, lost: bool = True) -> None:
        """Mains off: pumps stop, fail-closed valves close, sources, MFCs, heaters and purifiers go off.

        Restoring power re-energises nothing: every command stays off until given again."""
        self.mains.powered = not lost
        if lost:
            for actuator in self._actuators:
                actuator.fail_safe()
            for pump in self.pumps.values():
                pump.stop_for_power_loss()
            for turbo in self.turbos.values():
                turbo.pumping_station_on = False
            for mfc in self.mfcs.values():
                mfc.stop_for_power_loss()
            for source in self.sources.values():
                source.stop_for_power_loss()
            for glovebox in self.gloveboxes.values():
                glovebox.stop_for_power_loss()
        log.warning("mains power %s", "lost" if lost else "restored", extra={"powered": not lost})

    # --- time -------------------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        """Advance the line by `dt_s` virtual seconds (any size; sub-stepped internally)."""
        if dt_s < 0.0 or not math.isfinite(dt_s):
            raise ValueError(f"cannot advance by {dt_s} s")
        end = self.time_s + dt_s
        remaining = dt_s
        while remaining > 1e-12:
            taken = self._substep(remaining)
            remaining -= taken
        self.time_s = end
        for space in self._space_list:
            if not math.isfinite(space.pressure_pa):
                raise ArithmeticError(f"space {space.name}: pressure became {space.pressure_pa}")

    def _substep(self, limit_s: float) -> float:
        integration = self.spec.integration
        dt = min(limit_s, integration.max_substep_s, self._event_limit_s())
        for attempt in range(3):
            self._collect_local(dt)
            wanted = self._step_for_change(dt)
            if wanted >= dt * 0.999 or attempt == 2:
                break
            dt = max(wanted, min(integration.min_substep_s, limit_s))
        self._add_timed_sources(dt)
        for space in self._space_list:
            _relax_species(space, dt)
        for opening in self.openings.values():
            opening.exchange(dt)
        self._update_components(dt)
        self.time_s += dt
        self.substeps += 1
        return dt

    def _event_limit_s(self) -> float:
        limit = math.inf
        for actuator in self._actuators:
            if actuator.moving:
                limit = min(limit, actuator.time_to_end_of_travel_s())
        for turbo in self.turbos.values():
            limit = min(limit, turbo.max_step_s())
        return max(limit, self.spec.integration.min_substep_s)

    def _collect_local(self, dt: float) -> None:
        """Sinks and sources of every space for a step of `dt` (those that set the step size)."""
        for space in self._space_list:
            source = space.source_mol_s
            sink = space.sink_per_s
            for i in range(N_SPECIES):
                source[i] = 0.0
                sink[i] = 0.0
            if space.leak_pa_m3_s > 0.0:
                _add_leak(space, self.room)
            if not space.is_wet:
                uptake = water_uptake_m3_s(self._q_1h_in(space), space.rewet_h2o_pa)
                sink[Species.H2O] += uptake / space.volume_m3
        pump_lines: dict[str, int] = {}
        for line in self.rough_lines.values():
            if line.is_pumping():
                pump_lines[line.pump.name] = pump_lines.get(line.pump.name, 0) + 1
        backstream = self.room.fractions
        for line in self.rough_lines.values():
            count = pump_lines.get(line.pump.name, 0)
            if count:
                line.contribute(dt, 1.0 / count, backstream)
            else:
                line.note_command()
                line.throughput_pa_m3_s = 0.0
        for turbo in self.turbos.values():
            turbo.contribute(dt)
        for glovebox in self.gloveboxes.values():
            glovebox.contribute(dt)

    def _q_1h_in(self, space: Space) -> float:
        """Total q_1h of the surfaces in a space: its walls and the loads lying in it."""
        return space.wall_q_1h_pa_m3_s + sum(load.q_1h_pa_m3_s for load in self.loads if load.space is space)

    def _step_for_change(self, dt: float) -> float:
        """Largest step keeping every space's relative change within the limit (rates at the start)."""
        net: dict[int, float] = {}
        for opening in self.openings.values():
            flow = opening.prepare(dt)
            if flow != 0.0:
                net[id(opening.a)] = net.get(id(opening.a), 0.0) + flow
                if isinstance(opening.b, Space):
                    net[id(opening.b)] = net.get(id(opening.b), 0.0) - flow
        fastest = 0.0
        for space in self._space_list:
            amounts = space.amounts_mol
            source = space.source_mol_s
            sink = space.sink_per_s
            rate = net.get(id(space), 0.0) + self._timed_source_rate_mol_s(space)
            for i in range(N_SPECIES):
                rate += source[i] - sink[i] * amounts[i]
            held = max(sum(amounts), _FLOOR_PRESSURE_PA * space.capacity_mol_pa)
            fastest = max(fastest, abs(rate) / held)
        if fastest <= 0.0:
            return math.inf
        return self.spec.integration.max_relative_change / fastest

    def _timed_source_rate_mol_s(self, space: Space) -> float:
        """Outgassing and MFC flow into a space now (for step control only)."""
        q = outgassing_rate_pa_m3_s(space.wall_q_1h_pa_m3_s, space.outgassing_age_s)
        for load in self.loads:
            if load.space is space:
                q += load.outgassing_pa_m3_s
        rate = q / (GAS_CONSTANT_J_MOL_K * space.temp_k)
        for mfc in self.mfcs.values():
            if mfc.space is space:
                rate += max(mfc.flow_sccm, mfc.target_sccm) * MOL_PER_S_PER_SCCM
        return rate

    def _add_timed_sources(self, dt: float) -> None:
        """Sources that depend on time within the step, integrated exactly over it."""
        for space in self._space_list:
            released = outgassing_integral_pa_m3(space.wall_q_1h_pa_m3_s, space.outgassing_age_s, dt)
            for load in self.loads:
                if load.space is space:
                    released += outgassing_integral_pa_m3(load.q_1h_pa_m3_s, load.outgassing_age_s, dt)
            if released > 0.0:
                mol_s = released / dt / (GAS_CONSTANT_J_MOL_K * space.temp_k)
                source = space.source_mol_s
                for i in range(N_SPECIES):
                    source[i] += mol_s * OUTGASSING_COMPOSITION[i]
        for mfc in self.mfcs.values():
            mfc.contribute(dt)

    def _update_components(self, dt: float) -> None:
        for actuator in self._actuators:
            actuator.travel(dt)
        if self.item_traffic is not None:
            self.item_traffic.update()
        rough_into: dict[str, float] = {}
        for line in self.rough_lines.values():
            rough_into[line.pump.name] = rough_into.get(line.pump.name, 0.0) + line.throughput_pa_m3_s
        for turbo in self.turbos.values():
            turbo.update(dt, rough_into.get(turbo.backing.name, 0.0))
        for mfc in self.mfcs.values():
            mfc.update(dt)
        for heater in self.heaters.values():
            heater.update(dt)
        for _space, sources, substrate, qcms in self._chambers:
            advance_deposition(sources, substrate, qcms, dt)
        for glovebox in self.gloveboxes.values():
            glovebox.update(dt)
        for space in self._space_list:
            space.outgassing_age_s = _aged_in(space, space.outgassing_age_s, dt)
        for load in self.loads:
            load.outgassing_age_s = _aged_in(load.space, load.outgassing_age_s, dt)


def _add_leak(space: Space, room: Reservoir) -> None:
    """An air leak as a small fixed conductance to the room: at vacuum it lets in `leak_pa_m3_s`;
    at atmosphere it still exchanges O2 and H2O by back-diffusion (a glove breach)."""
    conductance = space.leak_pa_m3_s / room.pressure_pa
    rate = conductance / space.volume_m3
    inflow = conductance * room.pressure_pa / (GAS_CONSTANT_J_MOL_K * room.temp_k)
    for i, x in enumerate(room.fractions):
        space.sink_per_s[i] += rate
        space.source_mol_s[i] += inflow * x


def _aged_in(space: Space, age_s: float, dt: float) -> float:
    """A surface's outgassing age after dt in the space's gas (space.py: wet, humid, or dry)."""
    return aged(age_s, dt, space.h2o_partial_pa, space.rewet_h2o_pa)


def _relax_species(space: Space, dt: float) -> None:
    """n ← n·e^(−k·dt) + Q·(1 − e^(−k·dt))/k per species: the exact solution of dn/dt = Q − k·n."""
    amounts = space.amounts_mol
    source = space.source_mol_s
    sink = space.sink_per_s
    for i in range(N_SPECIES):
        k = sink[i]
        x = k * dt
        if x < 1e-12:
            amounts[i] += source[i] * dt
        else:
            decay = -math.expm1(-x)
            amounts[i] = amounts[i] * (1.0 - decay) + source[i] * decay / k
        if amounts[i] < 0.0:
            amounts[i] = 0.0


def _only(table: dict[str, _T], what: str) -> _T:
    if len(table) != 1:
        raise LookupError(f"this line has {len(table)} {what}s ({', '.join(table)}); pick one by name")
    return next(iter(table.values()))
