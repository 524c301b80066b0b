"""The line's source table: which deposition and etch sources each process chamber has, what methods they
serve, the power window they may be run in, and the rate each was calibrated to give per material.

A layer's expected duration is its thickness over the rate its source gives at the layer's power, so
the rates are the site's calibration (a test deposition measured by profilometer, per material), not
physics the controller invents. A rate is nm/s at the substrate per watt above the source's threshold;
it is looked up by the layer's material first, then by its layer class (`lithium`, `electrolyte`,
`metal`): a sulfide glass is written in many compositions and one figure per class is what a site
usually has. A pulsed laser's power is fluence x spot area x pulse rate.

A configuration without `[[sources]]` gets `standard_sources(chamber)` for every process chamber: the
standard rack of devices.md §0 with the figures below. A source's name is its slot on the chamber's
rack (what the controller writes to), so two chambers both have a `dc_sputter`; the chamber tells
them apart.

With two deposition systems, each chamber's entries say what that system can do (a lithium system
with its evaporator and sputter cathode, an electrolyte system with its RF cathode and laser), and a
recipe's layers go to the chamber whose sources serve them (sequences.layer_plan).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from controller.config.reader import TableReader

SOURCE_KINDS = ("dc_sputter", "rf_sputter", "evaporation", "pulsed_laser", "ion_source")
SOURCE_METHODS = ("sputtering", "evaporation", "laser_ablation", "ion_plating", "etch")
LAYER_CLASSES = ("lithium", "electrolyte", "metal", "wetting")


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One source of one chamber. `pulse_rate_hz`/`spot_area_cm2` only for a pulsed laser."""

    name: str
    chamber: str
    kind: str
    methods: tuple[str, ...]
    layers: tuple[str, ...]
    power_w: tuple[float, float]
    default_power_w: float
    pressure_pa: tuple[float, float]
    threshold_w: float = 0.0
    rates_nm_s_per_w: dict[str, float] = field(default_factory=dict)
    pulse_rate_hz: tuple[float, float] | None = None
    default_pulse_rate_hz: float | None = None
    spot_area_cm2: float | None = None
    max_pulse_energy_j: float | None = None
    default_assist_power_w: float | None = None  # an ion source assisting an evaporation (ion plating)

    def rate_per_w(self, material: str, layer: str) -> float | None:
        """nm/s per watt above threshold for this material, by name then by layer class; None: unknown."""
        return self.rates_nm_s_per_w.get(material, self.rates_nm_s_per_w.get(layer))

    def rate_nm_s(self, material: str, layer: str, power_w: float) -> float | None:
        per_w = self.rate_per_w(material, layer)
        return None if per_w is None else per_w * max(0.0, power_w - self.threshold_w)

    def power_for_rate(self, material: str, layer: str, rate_nm_s: float) -> float | None:
        per_w = self.rate_per_w(material, layer)
        return None if not per_w else self.threshold_w + rate_nm_s / per_w


# The standard rack's figures: the rates the simulated plant's sources give (sim_hardware/plant/spec.py
# process_chamber_parts), written here as a site writes its calibration. Power windows are the rack's
# setpoint limits (drivers.deposition_sources.STANDARD_LINE_SOURCES) and the laser's 10 W average power;
# its pulse energy limit 0.7 J over a 0.1 cm² spot is 7 J/cm²; the ion source runs at a fixed
# 1000 V beam, 0.3 A at most.
_STANDARD: tuple[SourceEntry, ...] = (
    SourceEntry(
        "dc_sputter", "", "dc_sputter", ("sputtering",), ("lithium", "metal", "wetting"),
        (50.0, 1000.0), 500.0, (0.1, 1.0),
        rates_nm_s_per_w={"lithium": 0.004, "metal": 0.004, "wetting": 0.004},
    ),
    SourceEntry(
        "rf_sputter", "", "rf_sputter", ("sputtering",), ("electrolyte",),
        (50.0, 600.0), 400.0, (0.1, 1.0), rates_nm_s_per_w={"electrolyte": 5e-4},
    ),
    SourceEntry(
        "evaporation", "", "evaporation", ("evaporation", "ion_plating"), LAYER_CLASSES,
        (60.0, 1500.0), 550.0, (0.0, 1e-2), threshold_w=50.0,
        rates_nm_s_per_w=dict.fromkeys(LAYER_CLASSES, 2e-3),
    ),
    SourceEntry(
        "pulsed_laser", "", "pulsed_laser", ("laser_ablation",), LAYER_CLASSES,
        (0.01, 10.0), 3.0, (0.0, 1e-2), rates_nm_s_per_w=dict.fromkeys(LAYER_CLASSES, 0.1667),
        pulse_rate_hz=(1.0, 50.0), default_pulse_rate_hz=10.0, spot_area_cm2=0.1, max_pulse_energy_j=0.7,
    ),
    SourceEntry(
        "ion_source", "", "ion_source", ("etch", "ion_plating"), (),
        (10.0, 300.0), 250.0, (0.1, 1.0), rates_nm_s_per_w={"etch": 2e-3}, default_assist_power_w=100.0,
    ),
)  # fmt: skip


def standard_sources(chamber: str) -> tuple[SourceEntry, ...]:
    return tuple(dataclasses.replace(s, chamber=chamber) for s in _STANDARD)


def read_sources(readers: list[TableReader], chambers: list[str]) -> tuple[SourceEntry, ...]:
    """`[[sources]]` as written; absent, the standard rack in every chamber."""
    if not readers:
        return tuple(e for c in chambers for e in standard_sources(c))
    return tuple(_entry(t, chambers) for t in readers)


def _window(t: TableReader, key: str, low: float, high: float) -> tuple[float, float]:
    a, b = t.number_list(key, length=2, min=low, max=high)
    if a > b:
        raise t.fail(key, [a, b], "[low, high] with low <= high")
    return a, b


def _entry(t: TableReader, chambers: list[str]) -> SourceEntry:
    name = t.text("name")
    chamber = t.text("chamber", choices=chambers)
    kind = t.text("kind", choices=SOURCE_KINDS)
    methods = tuple(t.text_list("methods"))
    for method in methods:
        if method not in SOURCE_METHODS:
            raise t.fail("methods", methods, f"each one of {', '.join(SOURCE_METHODS)}")
    layers = tuple(t.text_list("layers", []))
    for layer in layers:
        if layer not in LAYER_CLASSES:
            raise t.fail("layers", layers, f"each one of {', '.join(LAYER_CLASSES)}")
    power = _window(t, "power_w", 0.0, 100_000.0)
    default = t.number("default_power_w", min=power[0], max=power[1])
    pressure = _window(t, "pressure_pa", 0.0, 100.0)
    threshold = t.number("threshold_w", 0.0, min=0.0, max=power[1])
    rates_reader = t.table_reader("rate_nm_s_per_w")
    rates = {key: rates_reader.number(key, min=0.0, max=1000.0) for key in list(rates_reader.table)}
    rates_reader.finish()
    laser = kind == "pulsed_laser"
    pulse = _window(t, "pulse_rate_hz", 0.01, 10_000.0) if laser else None
    pulse_default = t.number("default_pulse_rate_hz", min=pulse[0], max=pulse[1]) if pulse else None
    spot = t.number("spot_area_cm2", min=1e-6, max=100.0) if laser else None
    energy = t.number("max_pulse_energy_j", min=1e-6, max=100.0) if laser else None
    assist = None
    if kind == "ion_source" and "ion_plating" in methods:
        assist = t.number("default_assist_power_w", default, min=power[0], max=power[1])
    t.finish()
    return SourceEntry(
        name, chamber, kind, methods, layers, power, default, pressure, threshold, rates,
        pulse, pulse_default, spot, energy, assist,
    )  # fmt: skip
