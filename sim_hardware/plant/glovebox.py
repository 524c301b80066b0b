"""The inert atmosphere of a glove-fitted space and its circulation purifier. [U, devices.md §8]

The glovebox *is* its space's gas: O2 and H2O ppm come from the space. With circulation on, not
regenerating, and the space near atmospheric pressure (≥ `min_pressure_pa`; the blower moves gas
only at pressure), the purifier removes O2 and H2O with first-order time constant τ (5 min by
default: a 30 L box on a ~0.4 m³/h circulation) toward its outlet floor (0.1 ppm), so a box goes
from ~10 ppm after its purge cycles to < 1 ppm in about 20 minutes; the walls' own outgassing holds
H2O a few tenths of a ppm above the floor. Removed gas loads the purifier; its efficiency falls as
(1 − load/capacity). Regeneration (12 h by default) empties the load; the box is not purified
meanwhile.
"""

from __future__ import annotations

import logging

from sim_hardware.plant.gas import Species
from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import Reservoir, Space
from sim_hardware.plant.spec import GloveboxSpec

log = logging.getLogger(__name__)

_PURIFIED = (Species.O2, Species.H2O)


class Glovebox:
    """`circulation_on` is settable; `start_regeneration()` starts a purifier regeneration."""

    def __init__(self, spec: GloveboxSpec, space: Space, room: Reservoir, mains: Mains) -> None:
        self.name = spec.name
        self.space = space
        self.spec = spec
        self._room = room
        self._mains = mains
        self._circulation_on = False
        self.regeneration_remaining_s = 0.0
        self.absorbed_mol = 0.0
        self._removal_mol_s = 0.0

    @property
    def circulation_on(self) -> bool:
        return self._circulation_on

    @circulation_on.setter
    def circulation_on(self, value: bool) -> None:
        if value and not self._mains.powered:
            return
        self._circulation_on = bool(value)

    @property
    def regenerating(self) -> bool:
        return self.regeneration_remaining_s > 0.0

    def start_regeneration(self) -> None:
        self._circulation_on = False
        self.regeneration_remaining_s = self.spec.regeneration_s
        log.info("purifier regeneration started", extra={"glovebox": self.name})

    @property
    def saturation_pct(self) -> float:
        return min(100.0, 100.0 * self.absorbed_mol / self.spec.capacity_mol)

    @property
    def purifying(self) -> bool:
        return (
            self._circulation_on
            and self._mains.powered
            and not self.regenerating
            and self.space.pressure_pa >= self.spec.min_pressure_pa
        )

    @property
    def o2_ppmv(self) -> float:
        return self.space.o2_ppmv

    @property
    def h2o_ppmv(self) -> float:
        return self.space.h2o_ppmv

    @property
    def frost_point_c(self) -> float:
        return self.space.frost_point_c

    @property
    def pressure_pa(self) -> float:
        return self.space.pressure_pa

    @property
    def box_pressure_pa(self) -> float:
        """Box pressure relative to the room (gauge), as glovebox controllers show it."""
        return self.space.pressure_pa - self._room.pressure_pa

    def contribute(self, dt_s: float) -> None:
        """Add the purifier's removal to the space's sinks (toward the outlet floor) for one step."""
        self._removal_mol_s = 0.0
        if not self.purifying:
            return
        efficiency = max(0.0, 1.0 - self.absorbed_mol / self.spec.capacity_mol)
        rate = efficiency / self.spec.purifier_time_constant_s
        if rate <= 0.0:
            return
        space = self.space
        floor_mol = self.spec.purifier_floor_ppmv * 1e-6 * space.total_amount_mol
        for species in _PURIFIED:
            space.sink_per_s[species] += rate
            space.source_mol_s[species] += rate * floor_mol
            self._removal_mol_s += rate * max(0.0, space.amounts_mol[species] - floor_mol)

    def update(self, dt_s: float) -> None:
        """Book what the purifier took up; count down a regeneration."""
        self.absorbed_mol += self._removal_mol_s * dt_s
        if self.regeneration_remaining_s > 0.0:
            self.regeneration_remaining_s = max(0.0, self.regeneration_remaining_s - dt_s)
            if self.regeneration_remaining_s == 0.0:
                self.absorbed_mol = 0.0
                log.info("purifier regeneration finished", extra={"glovebox": self.name})

    def stop_for_power_loss(self) -> None:
        self._circulation_on = False
