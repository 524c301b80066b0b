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

QCM: frequency by the period (Z-match-free Sauerbrey) law f = f0·m_q/(m_q + m_film), m_q the quartz's
areal mass for f0 (0.737 kg/m² at 6 MHz), so 1 nm of a 2 g/cm³ film lowers a 6 MHz crystal by 16 Hz.
Crystal life falls linearly from 100 % at f0 to 0 % at the end-of-life frequency (5.0 MHz), where the
crystal is `failed`.

The instrument sees mass, never thickness: its thickness is film mass since the last zero / the film
density programmed into it × film tooling/100 × sensor tooling/100. The sensor tooling defaults to the
calibrated 100/geometry_ratio of each crystal. Programmed (`Qcm.program_film`, the SQM-160's ``A``
command), the reading equals the substrate's thickness only when the density is the film's: Li
(0.534 g/cm³) under a 2.0 g/cm³ setting reads 0.267x and a sequence that stops on it deposits 3.7x
too much. The Z-ratio is held and reported but not applied: the crystal here follows the period law,
which is the Z-match equation at Z = 1, so there is nothing for it to correct.

Simulation convenience: until a film is programmed (and again after the ``Z`` reset), each increment
of mass is converted with the density of the source film that deposits it (`SourceSpec.film_density_
g_cm3`), so an unprogrammed monitor reads the true thickness of whatever the line grows, Li or the
sulfide electrolyte, and keeps reading it across a change of source without a jump. No real monitor
does this. A real site must program each film's density (and Z-ratio, and the tooling found by
calibration) before depositing it, e.g. with `ThicknessMonitor.set_film`; the controller's readings
are otherwise wrong by the ratio of densities.
"""

from __future__ import annotations

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

QUARTZ_DENSITY_KG_M3 = 2648.0
QUARTZ_SHEAR_VELOCITY_M_S = 3340.0
UNPROGRAMMED_DENSITY_G_CM3 = 2.0  # what an unprogrammed monitor converts with before any film has deposited

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


@dataclass(frozen=True)
class QcmFilm:
    """Film parameters programmed into the monitor (one of its film memories)."""

    density_g_cm3: float
    tooling_pct: float = 100.0
    z_ratio: float = 1.0
    label: str = "FILM1"


class QcmChannel:
    """One crystal. `zero()` zeroes the displayed thickness (the film stays on the crystal);
    `replace_crystal()` puts in a fresh one. `tooling_pct` is the sensor's tooling; `film` is the
    monitor's active film (None: unprogrammed, converting with the depositing source's density)."""

    def __init__(
        self, index: int, spec: QcmChannelSpec, new_frequency_hz: float, end_of_life_hz: float
    ) -> None:
        self.index = index
        self.geometry_ratio = spec.geometry_ratio
        self.tooling_pct = spec.tooling_pct if spec.tooling_pct is not None else 100.0 / spec.geometry_ratio
        self.film: QcmFilm | None = None if spec.density_g_cm3 is None else QcmFilm(spec.density_g_cm3)
        self.depositing_density_g_cm3 = UNPROGRAMMED_DENSITY_G_CM3
        self.new_frequency_hz = new_frequency_hz
        self.end_of_life_frequency_hz = end_of_life_hz
        self.quartz_areal_mass_kg_m2 = (
            QUARTZ_DENSITY_KG_M3 * QUARTZ_SHEAR_VELOCITY_M_S / (2.0 * new_frequency_hz)
        )
        start = min(spec.initial_frequency_hz, new_frequency_hz)
        self.film_areal_mass_kg_m2 = self.quartz_areal_mass_kg_m2 * (new_frequency_hz / start - 1.0)
        self._zero_mass_kg_m2 = self.film_areal_mass_kg_m2
        self._mass_rate_kg_m2_s = 0.0
        self._film_nm_since_zero = 0.0  # on the crystal, each increment at its own film's density

    @property
    def density_g_cm3(self) -> float:
        """The density the monitor converts with now."""
        return self.film.density_g_cm3 if self.film is not None else self.depositing_density_g_cm3

    @density_g_cm3.setter
    def density_g_cm3(self, value: float) -> None:
        """Program the density, keeping the rest of the film's parameters."""
        film = self.film if self.film is not None else QcmFilm(value)
        self.film = QcmFilm(float(value), film.tooling_pct, film.z_ratio, film.label)

    def _tooling(self) -> float:
        film_tooling_pct = self.film.tooling_pct if self.film is not None else 100.0
        return film_tooling_pct / 100.0 * self.tooling_pct / 100.0

    @property
    def frequency_hz(self) -> float:
        mq = self.quartz_areal_mass_kg_m2
        return self.new_frequency_hz * mq / (mq + self.film_areal_mass_kg_m2)

    @property
    def thickness_nm(self) -> float:
        if self.film is None:
            return self._film_nm_since_zero * self._tooling()
        mass_kg_m2 = self.film_areal_mass_kg_m2 - self._zero_mass_kg_m2
        return mass_kg_m2 / _kg_m3(self.film.density_g_cm3) * 1e9 * self._tooling()

    @property
    def rate_nm_s(self) -> float:
        return self._mass_rate_kg_m2_s / _kg_m3(self.density_g_cm3) * 1e9 * self._tooling()

    @property
    def crystal_life_pct(self) -> float:
        span = self.new_frequency_hz - self.end_of_life_frequency_hz
        return min(100.0, max(0.0, 100.0 * (self.frequency_hz - self.end_of_life_frequency_hz) / span))

    @property
    def failed(self) -> bool:
        return self.frequency_hz <= self.end_of_life_frequency_hz

    def zero(self) -> None:
        self._zero_mass_kg_m2 = self.film_areal_mass_kg_m2
        self._film_nm_since_zero = 0.0

    def replace_crystal(self) -> None:
        self.film_areal_mass_kg_m2 = 0.0
        self._zero_mass_kg_m2 = 0.0
        self._film_nm_since_zero = 0.0

    def deposit(self, mass_rate_kg_m2_s: float, dt_s: float, film_density_g_cm3: float | None = None) -> None:
        """Add mass for `dt_s`. `film_density_g_cm3` is the depositing film's (None: the last one's)."""
        if film_density_g_cm3 is not None:
            self.depositing_density_g_cm3 = film_density_g_cm3
        self._mass_rate_kg_m2_s = mass_rate_kg_m2_s
        self.film_areal_mass_kg_m2 += mass_rate_kg_m2_s * dt_s
        self._film_nm_since_zero += mass_rate_kg_m2_s * dt_s / _kg_m3(self.depositing_density_g_cm3) * 1e9


def _kg_m3(density_g_cm3: float) -> float:
    return density_g_cm3 * 1000.0


class Qcm:
    """A thickness monitor with one or more crystals in one chamber, and its film memories. The
    active film's parameters (film 1 [U]) convert every crystal's mass to thickness."""

    ACTIVE_FILM = 1

    def __init__(self, spec: QcmSpec, space: Space) -> None:
        self.name = spec.name
        self.space = space
        self.channels: tuple[QcmChannel, ...] = tuple(
            QcmChannel(i + 1, ch, spec.new_crystal_frequency_hz, spec.end_of_life_frequency_hz)
            for i, ch in enumerate(spec.channels)
        )
        self._films: dict[int, QcmFilm] = {}

    def channel(self, number: int) -> QcmChannel:
        """Channel by its 1-based number, as the instrument counts them."""
        return self.channels[number - 1]

    def zero(self) -> None:
        for channel in self.channels:
            channel.zero()

    def program_film(self, number: int, film: QcmFilm) -> None:
        self._films[number] = film
        if number == self.ACTIVE_FILM:
            for channel in self.channels:
                channel.film = film

    def film(self, number: int) -> QcmFilm:
        """A film's parameters; an unprogrammed active film reports the density it converts with now."""
        if number in self._films:
            return self._films[number]
        density = self.channels[0].density_g_cm3 if number == self.ACTIVE_FILM else UNPROGRAMMED_DENSITY_G_CM3
        return QcmFilm(density, label=f"FILM{number}")

    def reset_films(self) -> None:
        """Forget every programmed film: back to the simulation's follow-the-source default."""
        self._films.clear()
        for channel in self.channels:
            channel.film = None


def advance_deposition(
    sources: list[DepositionSource], substrate: Substrate | None, qcms: list[Qcm], dt_s: float
) -> None:
    """Grow (or etch) one chamber's substrate and crystals by one step."""
    plating = any(s.kind == "ion_source" and s.mode == "plating" and s.emitting for s in sources)
    mass_flux_kg_m2_s = 0.0
    film_flux_nm_s = 0.0
    rate_nm_s = 0.0
    etch_nm_s = 0.0
    for source in sources:
        source.plating_assist = plating
        flux = source.flux_rate_nm_s
        if flux > 0.0:
            mass_flux_kg_m2_s += flux * 1e-9 * source.film_density_kg_m3
            film_flux_nm_s += flux
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
    # the mean density of what arrives now (two sources may run at once); None keeps the last one
    film_density_g_cm3 = (
        mass_flux_kg_m2_s / (film_flux_nm_s * 1e-9) / 1000.0 if film_flux_nm_s > 0.0 else None
    )
    for qcm in qcms:
        for channel in qcm.channels:
            channel.deposit(mass_flux_kg_m2_s * channel.geometry_ratio, dt_s, film_density_g_cm3)
