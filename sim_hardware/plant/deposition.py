"""Deposition sources, the substrate's film, and the quartz-crystal thickness monitor.

A source emits only when it is enabled, its supply has no fault, the mains is on, its power is
above threshold, and the chamber's total pressure is inside the method's window [U, devices.md §10]:

    dc_sputter, rf_sputter   0.1 – 1 Pa (magnetron plasma in Ar)
    ion_source               0.1 – 1 Pa (Ar ion etch, or the bias of ion plating)
    evaporation              ≤ 1e-2 Pa (mean free path ≫ chamber); 0.1 – 1 Pa while an ion source
                             in the same chamber runs in "plating" mode (ion plating)
    pulsed_laser             ≤ 1e-2 Pa

Rate at the substrate: `rate_nm_s_per_w`·(P − threshold) (DC ~1.2 nm/s at 300 W, RF 8× slower,
evaporation 0.4 nm/s at 250 W); a pulsed laser gives `nm_per_pulse` at the nominal pulse energy,
scaled by pulse energy (P / rep rate), times the rep rate. The substrate gets it only while the
source's shutter is open; the QCM crystals see the source whatever the shutter does (that is how a
rate is stabilised before the shutter opens), scaled by their geometry ratio. The ion source in etch
mode removes material from the substrate (`Substrate.etched_nm`) at its rate and deposits nothing.

QCM: the crystal is a quartz plate loaded by the films on it, and its frequency is the resonance of
that stack in the one-dimensional acoustic model (Lu & Lewis, J. Appl. Phys. 43, 4385 (1972)): with
the load's acoustic reactance X seen at the quartz surface, Zq·tan(π f / f0) + X(f) = 0, where each
layer of thickness t, density ρ and shear modulus G (impedance Z = √(ρG), velocity v = √(G/ρ)) turns the
reactance above it, Xa, into Z·(Xa + Z·tan φ)/(Z − Xa·tan φ) with φ = 2π f t / v (a free surface is X = 0).
For one film this is exactly the Z-match equation a monitor inverts; a stack of films (lithium, then
the electrolyte) follows from the same law. Zq = 8.834e6 kg m⁻² s⁻¹ (AT-cut quartz), so 1 nm of a
2 g/cm³ film lowers a 6 MHz crystal by 16 Hz. A crystal at or below its end-of-life frequency (5.0 MHz)
no longer oscillates (`failed`).

The crystal knows mass and the true material of each layer (from the source that deposits it), never
a thickness reading: converting the frequency into a thickness is the monitor's business, with the
film parameters it was told (sim_hardware/devices/thickness_monitor.py), right or wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sim_hardware.plant.power import Mains
from sim_hardware.plant.space import Space
from sim_hardware.plant.spec import QcmChannelSpec, QcmSpec, SourceSpec

DEFAULT_PRESSURE_WINDOWS_PA: dict[str, tuple[float, float]] = {
    "dc_sputter": (0.1, 1.0),
    "rf_sputter": (0.1, 1.0),
    "ion_source": (0.1, 1.0),
    "evaporation": (0.0, 1e-2),
    "pulsed_laser": (0.0, 1e-2),
}
ION_PLATING_WINDOW_PA = (0.1, 1.0)


IonSourceMode = Literal["etch", "plating"]


class DepositionSource:
    """`enabled`, `power_setpoint_w`, `shutter_open`, `rep_rate_hz` (laser), `mode` (ion source) and
    the `fault` flag are settable; `power_w`, `emitting`, `pressure_ok`, `rate_nm_s` read back."""

    def __init__(self, spec: SourceSpec, space: Space, mains: Mains) -> None:
        self.name = spec.name
        self.kind = spec.kind
        self.space = space
        self.spec = spec
        self.material = spec.material
        self.max_power_w = spec.max_power_w
        self.shutter_open = False
        self.fault = False
        self.rep_rate_hz = spec.rep_rate_hz
        self.mode: IonSourceMode = "etch"
        self.plating_assist = False
        self._mains = mains
        self._enabled = False
        self._power_setpoint_w = 0.0
        # latched by the physics step: lit once, however briefly (a scenario polling `emitting` from
        # another task can miss a plasma that a pressure swing puts out within one step)
        self.has_emitted = False
        self._window = spec.pressure_window_pa or DEFAULT_PRESSURE_WINDOWS_PA[spec.kind]

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if value and not self._mains.powered:
            return
        self._enabled = bool(value)

    @property
    def power_setpoint_w(self) -> float:
        return self._power_setpoint_w

    @power_setpoint_w.setter
    def power_setpoint_w(self, value: float) -> None:
        self._power_setpoint_w = min(max(float(value), 0.0), self.max_power_w)

    @property
    def pressure_window_pa(self) -> tuple[float, float]:
        if self.kind == "evaporation" and self.plating_assist:
            return ION_PLATING_WINDOW_PA
        return self._window

    @property
    def pressure_ok(self) -> bool:
        low, high = self.pressure_window_pa
        return low <= self.space.pressure_pa <= high

    @property
    def emitting(self) -> bool:
        """Plasma lit / material leaving the source."""
        return (
            self._enabled
            and not self.fault
            and self._mains.powered
            and self._power_setpoint_w > self.spec.threshold_w
            and self.pressure_ok
        )

    @property
    def power_w(self) -> float:
        """Power actually delivered (0 when the plasma cannot strike or the supply is off)."""
        return self._power_setpoint_w if self.emitting else 0.0

    @property
    def flux_rate_nm_s(self) -> float:
        """Film growth at the substrate position if the shutter were open (0 for the ion source)."""
        if self.kind == "ion_source" or not self.emitting:
            return 0.0
        spec = self.spec
        if self.kind == "pulsed_laser":
            if self.rep_rate_hz <= 0.0:
                return 0.0
            pulse_energy_j = self._power_setpoint_w / self.rep_rate_hz
            return spec.nm_per_pulse * pulse_energy_j / spec.nominal_pulse_energy_j * self.rep_rate_hz
        return spec.rate_nm_s_per_w * (self._power_setpoint_w - spec.threshold_w)

    @property
    def rate_nm_s(self) -> float:
        """Film growth on the substrate now."""
        return self.flux_rate_nm_s if self.shutter_open else 0.0

    @property
    def etch_rate_nm_s(self) -> float:
        if self.kind != "ion_source" or self.mode != "etch" or not self.emitting or not self.shutter_open:
            return 0.0
        return self.spec.rate_nm_s_per_w * (self._power_setpoint_w - self.spec.threshold_w)

    @property
    def film_density_kg_m3(self) -> float:
        return self.spec.film_density_g_cm3 * 1000.0

    def stop_for_power_loss(self) -> None:
        self._enabled = False


class Substrate:
    """The film grown on the substrate in one chamber since the last `reset()`."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.thickness_nm = 0.0
        self.etched_nm = 0.0
        self.rate_nm_s = 0.0
        self.layers_nm: dict[str, float] = {}

    def reset(self) -> None:
        self.thickness_nm = 0.0
        self.etched_nm = 0.0
        self.layers_nm.clear()


QUARTZ_IMPEDANCE_KG_M2_S = 8.834e6  # sqrt(rho_q * mu_q) of AT-cut quartz
# what an unknown earlier load is taken to be (a preloaded crystal): quartz-matched (Z-ratio 1)
PRELOAD_DENSITY_KG_M3 = 2000.0
PRELOAD_SHEAR_MODULUS_PA = QUARTZ_IMPEDANCE_KG_M2_S**2 / PRELOAD_DENSITY_KG_M3


@dataclass
class CrystalLayer:
    """One film on a crystal: its true material (density, shear modulus) and how thick it has grown."""

    density_kg_m3: float
    shear_modulus_pa: float
    thickness_m: float = 0.0

    @property
    def impedance_kg_m2_s(self) -> float:
        return math.sqrt(self.density_kg_m3 * self.shear_modulus_pa)

    @property
    def velocity_m_s(self) -> float:
        return math.sqrt(self.shear_modulus_pa / self.density_kg_m3)


class QcmChannel:
    """One crystal: its resonance frequency under the films deposited on it, and how fast that moves.

    `replace_crystal()` puts in a fresh one. The frequency is solved anew only when mass arrives."""

    def __init__(
        self, index: int, spec: QcmChannelSpec, new_frequency_hz: float, end_of_life_hz: float
    ) -> None:
        self.index = index
        self.geometry_ratio = spec.geometry_ratio
        self.new_frequency_hz = new_frequency_hz
        self.end_of_life_frequency_hz = end_of_life_hz
        self.layers: list[CrystalLayer] = []
        self.frequency_hz = new_frequency_hz
        self.frequency_slope_hz_s = 0.0
        start = min(spec.initial_frequency_hz, new_frequency_hz)
        if start < new_frequency_hz:  # an earlier, unknown film: quartz-matched, so the period law holds
            areal_mass = (
                QUARTZ_IMPEDANCE_KG_M2_S * (new_frequency_hz - start) / (2.0 * start * new_frequency_hz)
            )
            self.layers.append(
                CrystalLayer(
                    PRELOAD_DENSITY_KG_M3, PRELOAD_SHEAR_MODULUS_PA, areal_mass / PRELOAD_DENSITY_KG_M3
                )
            )
            self.frequency_hz = self._resonance(start)

    @property
    def film_areal_mass_kg_m2(self) -> float:
        return sum(layer.density_kg_m3 * layer.thickness_m for layer in self.layers)

    @property
    def failed(self) -> bool:
        return self.frequency_hz <= self.end_of_life_frequency_hz

    def replace_crystal(self) -> None:
        self.layers.clear()
        self.frequency_hz = self.new_frequency_hz
        self.frequency_slope_hz_s = 0.0

    def deposit(
        self,
        mass_rate_kg_m2_s: float,
        dt_s: float,
        density_kg_m3: float = PRELOAD_DENSITY_KG_M3,
        shear_modulus_pa: float = PRELOAD_SHEAR_MODULUS_PA,
    ) -> None:
        """Add mass of one material for `dt_s`; the frequency's rate of change follows."""
        before = self.frequency_hz
        self.add_film(mass_rate_kg_m2_s * dt_s, density_kg_m3, shear_modulus_pa)
        self.frequency_slope_hz_s = (self.frequency_hz - before) / dt_s if dt_s > 0.0 else 0.0

    def add_film(self, areal_mass_kg_m2: float, density_kg_m3: float, shear_modulus_pa: float) -> None:
        """Mass of one material onto the crystal (a layer grows while its material stays the same)."""
        if areal_mass_kg_m2 <= 0.0:
            return
        top = self.layers[-1] if self.layers else None
        if top is None or (top.density_kg_m3, top.shear_modulus_pa) != (density_kg_m3, shear_modulus_pa):
            top = CrystalLayer(density_kg_m3, shear_modulus_pa)
            self.layers.append(top)
        top.thickness_m += areal_mass_kg_m2 / density_kg_m3
        self.frequency_hz = self._resonance(self.frequency_hz)

    def _resonance(self, guess_hz: float) -> float:
        """The root of Zq·tan(π f/f0) + X(f) nearest below `guess_hz` (Newton; a few steps at most)."""
        f = guess_hz
        for _ in range(50):
            h = self._balance(f)
            slope = (self._balance(f + 0.5) - self._balance(f - 0.5)) / 1.0
            step = h / slope
            f = min(max(f - step, 0.5 * self.new_frequency_hz), self.new_frequency_hz)
            if abs(step) < 1e-7:
                break
        return f

    def _balance(self, f: float) -> float:
        reactance = 0.0  # a free surface
        for layer in reversed(self.layers):
            z = layer.impedance_kg_m2_s
            tan_phi = math.tan(2.0 * math.pi * f * layer.thickness_m / layer.velocity_m_s)
            reactance = z * (reactance + z * tan_phi) / (z - reactance * tan_phi)
        return QUARTZ_IMPEDANCE_KG_M2_S * math.tan(math.pi * f / self.new_frequency_hz) + reactance


class Qcm:
    """The crystals of one thickness monitor in one chamber (the instrument itself is a device)."""

    def __init__(self, spec: QcmSpec, space: Space) -> None:
        self.name = spec.name
        self.space = space
        self.channels: tuple[QcmChannel, ...] = tuple(
            QcmChannel(i + 1, ch, spec.new_crystal_frequency_hz, spec.end_of_life_frequency_hz)
            for i, ch in enumerate(spec.channels)
        )

    def channel(self, number: int) -> QcmChannel:
        """Channel by its 1-based number, as the instrument counts them."""
        return self.channels[number - 1]


def advance_deposition(
    sources: list[DepositionSource], substrate: Substrate | None, qcms: list[Qcm], dt_s: float
) -> None:
    """Grow (or etch) one chamber's substrate and crystals by one step."""
    plating = any(s.kind == "ion_source" and s.mode == "plating" and s.emitting for s in sources)
    rate_nm_s = 0.0
    etch_nm_s = 0.0
    arriving: list[DepositionSource] = []
    for source in sources:
        source.plating_assist = plating
        source.has_emitted = source.has_emitted or source.emitting
        flux = source.flux_rate_nm_s
        if flux > 0.0:
            arriving.append(source)
            if source.shutter_open:
                rate_nm_s += flux
                if substrate is not None:
                    substrate.layers_nm[source.material] = (
                        substrate.layers_nm.get(source.material, 0.0) + flux * dt_s
                    )
        etch_nm_s += source.etch_rate_nm_s
    if substrate is not None:
        substrate.rate_nm_s = rate_nm_s
        substrate.thickness_nm += rate_nm_s * dt_s
        substrate.etched_nm += etch_nm_s * dt_s
    for qcm in qcms:
        for channel in qcm.channels:
            before = channel.frequency_hz
            for source in arriving:  # the crystals see every source, whatever its shutter does
                areal_mass = (
                    source.flux_rate_nm_s * 1e-9 * source.film_density_kg_m3 * channel.geometry_ratio * dt_s
                )
                channel.add_film(areal_mass, source.film_density_kg_m3, source.spec.film_shear_modulus_pa)
            channel.frequency_slope_hz_s = (channel.frequency_hz - before) / dt_s if dt_s > 0.0 else 0.0
