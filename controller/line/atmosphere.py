"""What atmosphere a space holds, classified from live readings and what was done to it.

Two kinds of evidence, kept apart on purpose:
- *Measurements*: pressure (always needed), frost point and O2 where the space has those sensors.
  A missing, stale or faulty reading makes the space `UNKNOWN`, and unknown is never in spec.
- *Provenance*: an upper bound on the share of air left in the space, tracked from what happened to
  it (opened to air: 1; back-filled with inert gas from pressure p1 to p2: share × p1/p2). A space
  without H2O/O2 sensors (a process chamber) can only be called inert from provenance, and only with
  the configured margin. Where sensors exist they overrule it whenever the space is static.

All functions here are pure: the controller keeps one `Provenance` per space and feeds it forward.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from controller.config.line_config import Limits
from drivers.reading import Quality, Reading

AIR_O2_PPMV = 209_460.0
ASSUMED_AIR = "assumed air: nothing seen of its gas since the controller started"
LEAK_WATCH_ABOVE_PA = 10_000.0  # near atmosphere, where an unsealed item meets the gas
LEAK_RISE_FRACTION = 0.02  # a closed space may drift this much (a few kelvin) before gas counts as come in
AIR_H2O_PPMV_WORST = 23_000.0  # saturated air at 20 °C: the wettest room air the line will meet
PROCESS_MAX_PA = 10.0  # above this a gas flow into a pumped chamber is a back-fill, not a process


class Atmosphere(enum.StrEnum):
    AIR = "air"
    EVACUATING = "evacuating"
    VACUUM = "vacuum"
    BACK_FILLING = "back_filling"
    INERT_IN_SPEC = "inert_in_spec"
    INERT_OUT_OF_SPEC = "inert_out_of_spec"
    PROCESS = "process"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SpaceSensors:
    """The readings that describe one space; `None` where the space has no such instrument."""

    pressure: Reading | None
    frost_point: Reading | None = None
    o2: Reading | None = None
    has_frost_sensor: bool = False
    has_o2_sensor: bool = False


@dataclass(frozen=True, slots=True)
class SpaceActivity:
    """What the actuators are doing to the space (commanded or measured open, whichever is worse)."""

    pumping: bool = False
    gas_filling: bool = False
    open_to_air: bool = False
    process_gas: bool = False


@dataclass(frozen=True, slots=True)
class Provenance:
    air_fraction: float = 1.0
    fill_start_pa: float | None = None
    fill_start_fraction: float = 1.0
    # nothing has been seen of this space's gas since the controller started: the air fraction of 1 is
    # the safe assumption, not a finding, and a space judged by it alone is unknown, never "air"
    assumed: bool = False
    # the lowest pressure since the space was last closed near atmosphere: gas arriving above it with
    # no fill open came from somewhere else (`track`)
    settled_pa: float | None = None

    @property
    def o2_estimate_ppmv(self) -> float:
        return self.air_fraction * AIR_O2_PPMV

    @classmethod
    def assumed_air(cls) -> Provenance:
        """What a controller knows of a space's gas at start-up: nothing (bounded by air)."""
        return cls(1.0, assumed=True)


@dataclass(frozen=True, slots=True)
class Classification:
    atmosphere: Atmosphere
    reason: str
    safe_for_exposed: bool
    evidence: dict[str, float | str]


def h2o_ppmv_at_frost_point(frost_point_c: float) -> float:
    """Water content at 1 atm for a frost point (Magnus over ice; within ~2 % of Murphy-Koop here).

    Only used to turn the frost-point limit into a ppmv limit for provenance estimates.
    """
    e_ice_pa = 611.2 * math.exp(22.46 * frost_point_c / (272.62 + frost_point_c))
    return 1e6 * e_ice_pa / 101325.0


def usable(reading: Reading | None, now_mono: float, limits: Limits) -> Reading | None:
    """The reading if it can be trusted now; under-range still bounds the value, so it counts."""
    if reading is None:
        return None
    aged = reading.aged(limits.stale_after_s, now_mono)
    return aged if aged.quality in (Quality.OK, Quality.UNDER_RANGE) else None


def track(prev: Provenance, pressure_pa: float | None, activity: SpaceActivity) -> Provenance:
    """Carry the air-share bound forward one observation.

    A closed space near atmosphere whose pressure rises with no fill open is taking in gas from
    outside it: a leak, so air. Without an O2 or frost-point sensor that rise is the only sign a
    sensorless chamber gives, so the gas that came in counts as air in the bound; a drift of
    `LEAK_RISE_FRACTION` (a few kelvin of warming) is tolerated first. In vacuum the pressure alone
    classifies the space, and a later fill dilutes whatever crept in.
    """
    if activity.open_to_air:
        return Provenance(1.0)
    if activity.gas_filling:
        if prev.fill_start_pa is None:
            start = pressure_pa if pressure_pa is not None else math.inf
            return replace(prev, fill_start_pa=start, fill_start_fraction=prev.air_fraction)
        if pressure_pa is None or not math.isfinite(prev.fill_start_pa):
            return prev  # no pressure, no credit for dilution
        diluted = prev.fill_start_fraction * prev.fill_start_pa / max(pressure_pa, prev.fill_start_pa)
        bounded = min(prev.fill_start_fraction, diluted)  # a bound from the gas history seen since
        return replace(prev, air_fraction=bounded, assumed=prev.assumed and bounded >= prev.air_fraction)
    if prev.fill_start_pa is not None:
        return Provenance(prev.air_fraction, assumed=prev.assumed)
    return _came_in(prev, pressure_pa, activity)


def _came_in(prev: Provenance, pressure_pa: float | None, activity: SpaceActivity) -> Provenance:
    """Count gas that arrived in a closed space near atmosphere without a fill as air."""
    if activity.pumping or pressure_pa is None or pressure_pa < LEAK_WATCH_ABOVE_PA:
        return replace(prev, settled_pa=None) if prev.settled_pa is not None else prev
    settled = prev.settled_pa
    if settled is None or pressure_pa < settled:
        return replace(prev, settled_pa=pressure_pa)
    if pressure_pa <= settled * (1.0 + LEAK_RISE_FRACTION):
        return prev
    with_air = (prev.air_fraction * settled + (pressure_pa - settled)) / pressure_pa
    return replace(prev, air_fraction=max(prev.air_fraction, with_air), settled_pa=pressure_pa)


def measured(prev: Provenance, o2_ppmv: float) -> Provenance:
    """A static space with a working O2 sensor: the measurement replaces the estimate."""
    return Provenance(max(o2_ppmv, 0.0) / AIR_O2_PPMV)


def classify(
    sensors: SpaceSensors, activity: SpaceActivity, provenance: Provenance, limits: Limits, now_mono: float
) -> Classification:
    pressure = usable(sensors.pressure, now_mono, limits)
    evidence: dict[str, float | str] = {"air_fraction_bound": provenance.air_fraction}
    if pressure is None:
        shown = sensors.pressure.quality.value if sensors.pressure else "missing"
        return Classification(Atmosphere.UNKNOWN, f"pressure reading {shown}", False, evidence)
    p = pressure.value
    evidence["pressure_pa"] = p
    in_spec_by_provenance = _estimate_in_spec(provenance, limits)
    if activity.open_to_air:
        return Classification(Atmosphere.AIR, "open to air (vent valve or outer door)", False, evidence)
    if activity.process_gas and p <= PROCESS_MAX_PA:
        return Classification(Atmosphere.PROCESS, "process gas into a pumped chamber", True, evidence)
    if activity.pumping and p > limits.vacuum_below_pa:
        return Classification(
            Atmosphere.EVACUATING,
            "pumping down",
            in_spec_by_provenance or _sensors_in_spec(sensors, limits, now_mono),
            evidence,
        )
    if activity.gas_filling and p < limits.room_pressure_pa - limits.atmospheric_window_pa:
        return Classification(Atmosphere.BACK_FILLING, "inert gas back-fill", in_spec_by_provenance, evidence)
    if p <= limits.vacuum_below_pa:
        return Classification(Atmosphere.VACUUM, f"below {limits.vacuum_below_pa:g} Pa", True, evidence)
    return _static(sensors, provenance, limits, now_mono, evidence)


def _estimate_in_spec(provenance: Provenance, limits: Limits) -> bool:
    margin = limits.inert_purge_margin
    o2_ok = provenance.o2_estimate_ppmv * margin <= limits.max_o2_ppmv
    h2o_ok = provenance.air_fraction * AIR_H2O_PPMV_WORST * margin <= h2o_ppmv_at_frost_point(
        limits.max_frost_point_c
    )
    return o2_ok and h2o_ok


def _sensors_in_spec(sensors: SpaceSensors, limits: Limits, now_mono: float) -> bool:
    if not (sensors.has_frost_sensor and sensors.has_o2_sensor):
        return False
    frost = usable(sensors.frost_point, now_mono, limits)
    o2 = usable(sensors.o2, now_mono, limits)
    return (
        frost is not None
        and o2 is not None
        and frost.value <= limits.max_frost_point_c
        and o2.value <= limits.max_o2_ppmv
    )


def _static(
    sensors: SpaceSensors,
    provenance: Provenance,
    limits: Limits,
    now_mono: float,
    evidence: dict[str, float | str],
) -> Classification:
    """A closed space between vacuum and atmosphere: inert in or out of spec, or air."""
    frost_ok = o2_ok = True
    o2_ppmv = provenance.o2_estimate_ppmv
    if sensors.has_frost_sensor:
        frost = usable(sensors.frost_point, now_mono, limits)
        if frost is None:
            return Classification(Atmosphere.UNKNOWN, "frost point reading missing or stale", False, evidence)
        evidence["frost_point_c"] = frost.value
        frost_ok = frost.value <= limits.max_frost_point_c
    if sensors.has_o2_sensor:
        o2 = usable(sensors.o2, now_mono, limits)
        if o2 is None:
            return Classification(Atmosphere.UNKNOWN, "O2 reading missing or stale", False, evidence)
        evidence["o2_ppmv"] = o2_ppmv = o2.value
        o2_ok = o2.value <= limits.max_o2_ppmv
    if not (sensors.has_frost_sensor and sensors.has_o2_sensor):
        estimate_ok = _estimate_in_spec(provenance, limits)
        if provenance.assumed and not estimate_ok:
            evidence["o2_basis"] = ASSUMED_AIR
            return Classification(
                Atmosphere.UNKNOWN, f"no O2 or frost-point sensor: {ASSUMED_AIR}", False, evidence
            )
        evidence["o2_estimate_ppmv"] = provenance.o2_estimate_ppmv
        frost_ok = frost_ok and (sensors.has_frost_sensor or estimate_ok)
        o2_ok = o2_ok and (sensors.has_o2_sensor or estimate_ok)
    if frost_ok and o2_ok:
        return Classification(
            Atmosphere.INERT_IN_SPEC, "inert and within the frost-point and O2 limits", True, evidence
        )
    if o2_ppmv >= 0.5 * AIR_O2_PPMV:
        return Classification(Atmosphere.AIR, "O2 content of air", False, evidence)
    failed = [name for name, ok in (("frost point", frost_ok), ("O2", o2_ok)) if not ok]
    return Classification(
        Atmosphere.INERT_OUT_OF_SPEC, f"{' and '.join(failed)} above the limit", False, evidence
    )


def observe(
    prev: Provenance, sensors: SpaceSensors, activity: SpaceActivity, limits: Limits, now_mono: float
) -> tuple[Provenance, Classification]:
    """One step for one space: carry provenance forward, classify, let a working O2 sensor correct it."""
    pressure = usable(sensors.pressure, now_mono, limits)
    provenance = track(prev, pressure.value if pressure else None, activity)
    result = classify(sensors, activity, provenance, limits, now_mono)
    o2 = usable(sensors.o2, now_mono, limits) if sensors.has_o2_sensor else None
    static = result.atmosphere in (Atmosphere.INERT_IN_SPEC, Atmosphere.INERT_OUT_OF_SPEC, Atmosphere.AIR)
    if o2 is not None and static and not activity.open_to_air:
        provenance = measured(provenance, o2.value)
    return provenance, result
