"""The plant's configuration: a plain tree of frozen dataclasses, and the standard line built from it.

Every name here becomes a key the lead maps to device channels (`plant.valves["inlet.rough"]`,
`plant.doors["inlet_gate"]`, ...). The spec holds physics only; which device serves which value is
the wiring's business. Values marked [U] in devices.md are defaults here, never hard-coded physics.

Standard line (`standard_line_spec()`), all at room air and 1 atm at t = 0:

    room ─ inlet.outer ─ INLET (30 L) ─ inlet_gate ─ PROCESS (100 L) ─ outlet_gate ─ OUTLET (30 L)
         ─ outlet.outer ─ room
    inlet: inlet.rough (10 m³/h pump "inlet.rough"), inlet.vent (room air), inlet.gas_fill (Ar),
           glovebox "inlet"
    process: process.rough + turbo "process.turbo" behind "process.turbo_gate", both backed by
             "process.backing" (25 m³/h); process.vent, process.gas_fill, MFC "process.mfc" (Ar, 100 sccm),
             heaters "substrate" and "source", sources dc_sputter, rf_sputter, evaporation, pulsed_laser,
             ion_source, thickness monitor "qcm" (2 channels), substrate "process"
    outlet: as inlet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from sim_hardware.plant.gas import PA_M3_S_M2_PER_MBAR_L_S_CM2
from sim_hardware.plant.humidity import STANDARD_ATMOSPHERE_PA

ROOM = "room"

SourceKind = Literal["dc_sputter", "rf_sputter", "evaporation", "pulsed_laser", "ion_source"]
OpeningKind = Literal["valve", "door"]


class PlantSpecError(ValueError):
    """The spec names something that does not exist or holds a value outside physics."""


@dataclass(frozen=True)
class RoomSpec:
    """The air around the line: an infinite reservoir."""

    pressure_pa: float = STANDARD_ATMOSPHERE_PA
    temp_c: float = 20.0
    relative_humidity_pct: float = 50.0


@dataclass(frozen=True)
class GasSupplySpec:
    """A bottled gas behind a regulator. Impurities left as None follow `impurities_for_purity`.

    The regulator delivers a little above atmosphere (a glovebox runs at +1…+5 mbar) so a back-fill
    stops by itself at box pressure. `inventory_mol` None never runs out; a number is drawn down.
    """

    name: str = "ar"
    gas: str = "Ar"
    purity_pct: float = 99.99
    h2o_ppmv: float | None = None
    o2_ppmv: float | None = None
    n2_ppmv: float | None = None
    delivery_pressure_pa: float = STANDARD_ATMOSPHERE_PA + 500.0
    inventory_mol: float | None = None
    temp_c: float = 20.0


@dataclass(frozen=True)
class SpaceSpec:
    """A closed gas volume. `q_1h_pa_m3_s_m2` is the wall outgassing 1 h after pump-down (SI:
    1 mbar·L/(s·cm²) = 1000 Pa·m³/(s·m²)). The outgassing clock restarts whenever the space holds
    wet gas (H2O partial pressure above `rewet_h2o_pa`, see space.py); `initial_outgassing_age_s`
    lets a chamber start as if it had been kept under vacuum or dry gas for that long."""

    name: str
    volume_m3: float
    wall_area_m2: float
    q_1h_pa_m3_s_m2: float
    temp_c: float = 20.0
    leak_pa_m3_s: float = 0.0
    initial_gas: str = "air"
    initial_pressure_pa: float | None = None
    initial_outgassing_age_s: float = 0.0
    rewet_h2o_pa: float = 100.0


@dataclass(frozen=True)
class RoughPumpSpec:
    """Two-stage rotary vane pump: S = speed·(1 − p_ult/p) in effect (see pumps.py)."""

    name: str
    speed_m3_h: float = 10.0
    ultimate_pa: float = 0.3


@dataclass(frozen=True)
class RoughLineSpec:
    """A rough valve and its line from a space to a rough pump; the valve is `plant.valves[name]`.

    Defaults: DN25 × 1.5 m (viscous C = 35 m³/s at 1 atm mean pressure, molecular 1.3 L/s)."""

    name: str
    space: str
    pump: str
    conductance_atm_m3_s: float = 35.0
    conductance_molecular_m3_s: float = 1.3e-3
    travel_s: float = 0.5


@dataclass(frozen=True)
class OpeningSpec:
    """A valve or door between two nodes: spaces, "room", or a gas supply name (at least one of
    `a`, `b` must be a space; the order does not matter).

    Bulk (viscous) conductance is `conductance_atm_m3_s` scaled by mean pressure / 1 atm, so it falls
    at low pressure; below `transition_pressure_pa` the molecular conductance takes over and each
    species flows down its own partial-pressure gradient. `mixing_m3_s` is the convective exchange an
    open door allows even with no pressure difference. An opening to a gas supply only ever flows
    into the space (the regulator acts as a check valve)."""

    name: str
    kind: OpeningKind
    a: str
    b: str
    conductance_atm_m3_s: float
    conductance_molecular_m3_s: float = 0.0
    mixing_m3_s: float = 0.0
    transition_pressure_pa: float = 1.0
    travel_s: float = 0.5
    fail_closed: bool = True
    initially_open: bool = False


@dataclass(frozen=True)
class TurboSpec:
    """A HiPace-300-like turbo pump behind a gate valve, exhausting into its backing pump. [U]

    Speed for N2 at nominal rotation is the effective speed at the chamber (gate valve included).
    """

    name: str = "process.turbo"
    space: str = "process"
    gate_valve: str = "process.turbo_gate"
    backing_pump: str = "process.backing"
    nominal_speed_hz: float = 1000.0
    speed_n2_m3_s: float = 0.25
    run_up_s: float = 180.0
    run_up_limit_s: float = 480.0
    max_drive_power_w: float = 180.0
    idle_power_w: float = 12.0
    gas_power_w_per_pa: float = 60.0
    high_pressure_knee_pa: float = 2.0
    inlet_trip_pa: float = 200.0
    backing_start_max_pa: float = 10.0
    foreline_trip_pa: float = 1000.0
    foreline_volume_m3: float = 0.002
    stopped_backing_leak_pa_m3_s: float = 0.02
    coast_time_constant_s: float = 900.0
    drive_voltage_v: float = 48.0
    gate_travel_s: float = 2.0


@dataclass(frozen=True)
class MfcSpec:
    """A mass-flow controller from a gas supply into a space."""

    name: str = "process.mfc"
    supply: str = "ar"
    space: str = "process"
    full_scale_sccm: float = 100.0
    time_constant_s: float = 1.0


@dataclass(frozen=True)
class HeaterSpec:
    """A heated mass under closed-loop control (see thermal.py for the loss model)."""

    name: str
    space: str
    heat_capacity_j_k: float
    max_power_w: float
    conduction_loss_w_k: float
    emissivity_area_m2: float
    gas_loss_atm_w_k: float
    closed_loop_time_constant_s: float = 120.0
    over_temp_limit_c: float = 250.0
    initial_temp_c: float | None = None


LITHIUM_SHEAR_MODULUS_PA = 4.2e9


@dataclass(frozen=True)
class SourceSpec:
    """A deposition (or etch) source. `pressure_window_pa` None takes the kind's default window
    (deposition.py). Rate is `rate_nm_s_per_w`·(power − threshold) at the substrate; a pulsed laser
    deposits `nm_per_pulse` at `nominal_pulse_energy_j`, scaled by pulse energy, times the rep rate.
    The film's true density and shear modulus load the QCM crystals: lithium 0.534 g/cm³ and 4.2 GPa
    (handbook values [U]), the sulfide glass 1.9 g/cm³ and 7 GPa (typical of Li2S-based glasses [U])."""

    name: str
    kind: SourceKind
    space: str
    material: str = "film"
    max_power_w: float = 1000.0
    rate_nm_s_per_w: float = 0.004
    threshold_w: float = 0.0
    film_density_g_cm3: float = 2.0
    film_shear_modulus_pa: float = 7.0e9
    pressure_window_pa: tuple[float, float] | None = None
    nm_per_pulse: float = 0.05
    nominal_pulse_energy_j: float = 0.3
    rep_rate_hz: float = 10.0


@dataclass(frozen=True)
class QcmChannelSpec:
    """One crystal. `geometry_ratio` is film on the crystal per film on the substrate (the monitor's
    crystal tooling, set at commissioning, makes up for it); `initial_frequency_hz` below the new
    crystal's frequency is film left by earlier runs."""

    geometry_ratio: float = 1.0
    initial_frequency_hz: float = 6.0e6


@dataclass(frozen=True)
class QcmSpec:
    name: str = "qcm"
    space: str = "process"
    channels: tuple[QcmChannelSpec, ...] = (QcmChannelSpec(),)
    new_crystal_frequency_hz: float = 6.0e6
    end_of_life_frequency_hz: float = 5.0e6


@dataclass(frozen=True)
class GloveboxSpec:
    """The inert atmosphere of a glove-fitted space and its circulation purifier. [U]"""

    name: str
    space: str
    purifier_time_constant_s: float = 300.0
    purifier_floor_ppmv: float = 0.1
    capacity_mol: float = 2.0
    regeneration_s: float = 12 * 3600.0
    min_pressure_pa: float = 50_000.0


@dataclass(frozen=True)
class LoadSpec:
    """Items with adsorbed water: their surface, its outgassing 1 h after pump-down, and the
    outgassing age they arrive with (0: straight from room air)."""

    name: str
    area_m2: float
    q_1h_pa_m3_s_m2: float
    initial_age_s: float = 0.0


@dataclass(frozen=True)
class ItemTrafficSpec:
    """What the operator carries through the line's doors (items.py): a `container` comes in with
    every opening of an antechamber's outer door, and through `entry_spaces` it brings `contents`
    that go on through the gates."""

    entry_spaces: tuple[str, ...]
    container: LoadSpec
    contents: LoadSpec


@dataclass(frozen=True)
class IntegrationSpec:
    """Sub-step control: each sub-step changes no space's gas amount by more than
    `max_relative_change` (estimated from the rates at its start), within [min, max] seconds."""

    max_substep_s: float = 10.0
    min_substep_s: float = 1e-3
    max_relative_change: float = 0.05


@dataclass(frozen=True)
class LineSpec:
    room: RoomSpec = field(default_factory=RoomSpec)
    supplies: tuple[GasSupplySpec, ...] = ()
    spaces: tuple[SpaceSpec, ...] = ()
    pumps: tuple[RoughPumpSpec, ...] = ()
    rough_lines: tuple[RoughLineSpec, ...] = ()
    openings: tuple[OpeningSpec, ...] = ()
    turbos: tuple[TurboSpec, ...] = ()
    mfcs: tuple[MfcSpec, ...] = ()
    heaters: tuple[HeaterSpec, ...] = ()
    sources: tuple[SourceSpec, ...] = ()
    qcms: tuple[QcmSpec, ...] = ()
    gloveboxes: tuple[GloveboxSpec, ...] = ()
    integration: IntegrationSpec = field(default_factory=IntegrationSpec)
    items: ItemTrafficSpec | None = None


def q_mbar_l_s_cm2(value: float) -> float:
    """Convert an outgassing rate from mbar·L/(s·cm²) to the spec's Pa·m³/(s·m²)."""
    return value * PA_M3_S_M2_PER_MBAR_L_S_CM2


# Unbaked metal: the middle of devices.md §10's 1e-8…1e-7 mbar·L/(s·cm²) range, and its top.
HANDLED_METAL_Q_1H = q_mbar_l_s_cm2(3e-8)
WORST_UNBAKED_Q_1H = q_mbar_l_s_cm2(1e-7)
# Items packed under gas at the −50 °C frost point (3.9 Pa of water at 1 atm) settle at the age
# 12 000 Pa·s / 3.9 Pa (space.py): about 50 min.
PACKED_AT_MINUS_50_AGE_S = 3000.0


def item_traffic_spec(entry_spaces: tuple[str, ...]) -> ItemTrafficSpec:
    """The standard line's traffic [U]: a closed box of about 250 × 200 × 100 mm (0.15 m² outside,
    handled in room air) per outer-door opening, and through the entry the production items: the
    base foil 100 × 50 mm (0.01 m², both sides), its carrier plate (0.03 m²) and two Ø 75 mm targets
    (0.02 m²), packed under gas at the −50 °C limit."""
    return ItemTrafficSpec(
        entry_spaces,
        container=LoadSpec("container", 0.15, HANDLED_METAL_Q_1H),
        contents=LoadSpec("contents", 0.06, HANDLED_METAL_Q_1H, PACKED_AT_MINUS_50_AGE_S),
    )


# ---------------------------------------------------------------------------------------------------
# Building blocks of the standard line and its variants


@dataclass(frozen=True)
class LineParts:
    """A piece of a line (one chamber with its pumps, valves, ...); `combine` joins pieces."""

    spaces: tuple[SpaceSpec, ...] = ()
    pumps: tuple[RoughPumpSpec, ...] = ()
    rough_lines: tuple[RoughLineSpec, ...] = ()
    openings: tuple[OpeningSpec, ...] = ()
    turbos: tuple[TurboSpec, ...] = ()
    mfcs: tuple[MfcSpec, ...] = ()
    heaters: tuple[HeaterSpec, ...] = ()
    sources: tuple[SourceSpec, ...] = ()
    qcms: tuple[QcmSpec, ...] = ()
    gloveboxes: tuple[GloveboxSpec, ...] = ()


def _vent_and_fill(space: str, fill_conductance_atm_m3_s: float, supply: str) -> tuple[OpeningSpec, ...]:
    return (
        OpeningSpec(f"{space}.vent", "valve", space, ROOM, conductance_atm_m3_s=5e-3),
        OpeningSpec(
            f"{space}.gas_fill", "valve", space, supply, conductance_atm_m3_s=fill_conductance_atm_m3_s
        ),
    )


def antechamber_parts(
    name: str,
    *,
    supply: str = "ar",
    volume_m3: float = 0.030,
    wall_area_m2: float | None = None,
    q_1h_pa_m3_s_m2: float = q_mbar_l_s_cm2(2e-8),
    rough_pump_m3_h: float = 10.0,
) -> LineParts:
    """A glove-fitted antechamber: rough pump and valve, vent, Ar fill, outer door to the room.

    Wall area defaults to 0.7 m² for 30 L (shelves included), scaled as volume^(2/3); the fill
    valve is sized for a ~30 s back-fill whatever the volume."""
    return LineParts(
        spaces=(
            SpaceSpec(
                name,
                volume_m3=volume_m3,
                wall_area_m2=0.7 * (volume_m3 / 0.030) ** (2 / 3) if wall_area_m2 is None else wall_area_m2,
                q_1h_pa_m3_s_m2=q_1h_pa_m3_s_m2,
            ),
        ),
        pumps=(RoughPumpSpec(f"{name}.rough", speed_m3_h=rough_pump_m3_h),),
        rough_lines=(RoughLineSpec(f"{name}.rough", name, f"{name}.rough"),),
        openings=(
            *_vent_and_fill(name, 6e-3 * volume_m3 / 0.030, supply),
            OpeningSpec(
                f"{name}.outer",
                "door",
                name,
                ROOM,
                conductance_atm_m3_s=0.5,
                conductance_molecular_m3_s=2.0,
                mixing_m3_s=2e-3,
                travel_s=3.0,
                fail_closed=False,
            ),
        ),
        gloveboxes=(GloveboxSpec(name, name),),
    )


def transfer_chamber_parts(name: str, **parts: Any) -> LineParts:
    """The method's intermediate inert space between two deposition systems: an antechamber's rough
    pump, vent, gas fill and purifier with its O2/H2O sensing, and no door to the room (its gate
    valves to the two chambers are the line's openings)."""
    ante = antechamber_parts(name, **parts)
    return dataclasses.replace(ante, openings=tuple(o for o in ante.openings if o.name != f"{name}.outer"))


def process_chamber_parts(
    name: str,
    *,
    prefix: str = "",
    supply: str = "ar",
    volume_m3: float = 0.100,
    wall_area_m2: float = 1.5,
    q_1h_pa_m3_s_m2: float = q_mbar_l_s_cm2(5e-8),
    backing_pump_m3_h: float = 25.0,
    turbo_speed_m3_s: float = 0.25,
) -> LineParts:
    """A deposition chamber: backing + turbo, vent, Ar fill, MFC, heaters, sources and a QCM.

    `prefix` goes in front of heater, source and QCM names ("" in the standard line, where they are
    simply "substrate", "dc_sputter", "qcm"; "process2." when a line has two chambers).
    """
    backing = f"{name}.backing"
    return LineParts(
        spaces=(
            SpaceSpec(name, volume_m3=volume_m3, wall_area_m2=wall_area_m2, q_1h_pa_m3_s_m2=q_1h_pa_m3_s_m2),
        ),
        pumps=(RoughPumpSpec(backing, speed_m3_h=backing_pump_m3_h),),
        rough_lines=(RoughLineSpec(f"{name}.rough", name, backing),),
        openings=_vent_and_fill(name, 0.02 * volume_m3 / 0.100, supply),
        turbos=(
            TurboSpec(
                name=f"{name}.turbo",
                space=name,
                gate_valve=f"{name}.turbo_gate",
                backing_pump=backing,
                speed_n2_m3_s=turbo_speed_m3_s,
            ),
        ),
        mfcs=(MfcSpec(name=f"{name}.mfc", supply=supply, space=name),),
        heaters=(
            HeaterSpec(
                f"{prefix}substrate",
                name,
                heat_capacity_j_k=1500.0,
                max_power_w=600.0,
                conduction_loss_w_k=0.25,
                emissivity_area_m2=0.015,
                gas_loss_atm_w_k=0.8,
                over_temp_limit_c=250.0,
            ),
            HeaterSpec(
                f"{prefix}source",
                name,
                heat_capacity_j_k=400.0,
                max_power_w=800.0,
                conduction_loss_w_k=0.1,
                emissivity_area_m2=0.01,
                gas_loss_atm_w_k=0.3,
                closed_loop_time_constant_s=90.0,
                over_temp_limit_c=900.0,
            ),
        ),
        sources=(
            SourceSpec(
                f"{prefix}dc_sputter",
                "dc_sputter",
                name,
                material="Li",
                max_power_w=1000.0,
                rate_nm_s_per_w=0.004,
                film_density_g_cm3=0.534,
                film_shear_modulus_pa=LITHIUM_SHEAR_MODULUS_PA,
            ),
            SourceSpec(
                f"{prefix}rf_sputter",
                "rf_sputter",
                name,
                material="Li2S-SiS2-Li3PO4",
                max_power_w=600.0,
                rate_nm_s_per_w=5e-4,
                film_density_g_cm3=1.9,
            ),
            SourceSpec(
                f"{prefix}evaporation",
                "evaporation",
                name,
                material="Li",
                max_power_w=1500.0,
                rate_nm_s_per_w=2e-3,
                threshold_w=50.0,
                film_density_g_cm3=0.534,
                film_shear_modulus_pa=LITHIUM_SHEAR_MODULUS_PA,
            ),
            SourceSpec(
                f"{prefix}pulsed_laser",
                "pulsed_laser",
                name,
                material="Li2S-SiS2-Li3PO4",
                max_power_w=10.0,
                film_density_g_cm3=1.9,
            ),
            SourceSpec(
                f"{prefix}ion_source",
                "ion_source",
                name,
                material="etch",
                max_power_w=500.0,
                rate_nm_s_per_w=2e-3,
            ),
        ),
        qcms=(
            QcmSpec(
                name=f"{prefix}qcm",
                space=name,
                channels=(QcmChannelSpec(geometry_ratio=0.8), QcmChannelSpec(geometry_ratio=1.1)),
            ),
        ),
    )


def gate_between(name: str, a: str, b: str) -> OpeningSpec:
    """A DN100-class gate valve between two spaces (an inner door of the line)."""
    return OpeningSpec(
        name,
        "door",
        a,
        b,
        conductance_atm_m3_s=1.5,
        conductance_molecular_m3_s=1.0,
        mixing_m3_s=5e-3,
        travel_s=2.0,
    )


def combine(
    *parts: LineParts,
    extra_openings: tuple[OpeningSpec, ...] = (),
    supplies: tuple[GasSupplySpec, ...] = (GasSupplySpec(),),
    room: RoomSpec | None = None,
) -> LineSpec:
    """Assemble building blocks into a line spec."""
    return LineSpec(
        room=room or RoomSpec(),
        supplies=supplies,
        spaces=tuple(s for p in parts for s in p.spaces),
        pumps=tuple(s for p in parts for s in p.pumps),
        rough_lines=tuple(s for p in parts for s in p.rough_lines),
        openings=tuple(s for p in parts for s in p.openings) + extra_openings,
        turbos=tuple(s for p in parts for s in p.turbos),
        mfcs=tuple(s for p in parts for s in p.mfcs),
        heaters=tuple(s for p in parts for s in p.heaters),
        sources=tuple(s for p in parts for s in p.sources),
        qcms=tuple(s for p in parts for s in p.qcms),
        gloveboxes=tuple(s for p in parts for s in p.gloveboxes),
    )


def standard_line_spec() -> LineSpec:
    """Inlet antechamber – process chamber – outlet antechamber (devices.md §0, DESIGN §1)."""
    return combine(
        antechamber_parts("inlet"),
        process_chamber_parts("process"),
        antechamber_parts("outlet"),
        extra_openings=(
            gate_between("inlet_gate", "inlet", "process"),
            gate_between("outlet_gate", "process", "outlet"),
        ),
    )


def shared_antechamber_line_spec() -> LineSpec:
    """One antechamber serves as inlet and outlet."""
    return combine(
        antechamber_parts("antechamber"),
        process_chamber_parts("process"),
        extra_openings=(gate_between("antechamber_gate", "antechamber", "process"),),
    )


def two_chamber_line_spec() -> LineSpec:
    """Lithium film in process1, electrolyte in process2, joined through the intermediate inert
    transfer space with a gate valve on each side (the method's two deposition systems)."""
    return combine(
        antechamber_parts("inlet"),
        process_chamber_parts("process1", prefix="process1."),
        transfer_chamber_parts("transfer"),
        process_chamber_parts("process2", prefix="process2."),
        antechamber_parts("outlet"),
        extra_openings=(
            gate_between("inlet_gate", "inlet", "process1"),
            gate_between("transfer_gate1", "process1", "transfer"),
            gate_between("transfer_gate2", "transfer", "process2"),
            gate_between("outlet_gate", "process2", "outlet"),
        ),
    )
