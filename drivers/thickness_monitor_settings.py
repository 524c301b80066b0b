"""SQM-160 settings as they cross the wire: film memories (``A``), the active film (``D``) and the two
system parameter blocks (``B``, ``C``), in both codec roles.

The monitor turns crystal mass into thickness with the film's density, Z-ratio and tooling, so these
decide every thickness and rate it reports (lithium under a sulfide glass's density reads 3.5x too
thin). Which letters exist is [V] from clients written against the SQM-160 manual (PyExpLabSys sends
``A1?``; a USB client following the manual's chapter 8.4 sends ``A<film>?``, ``A<film>`` + fields,
``D<film>``, ``B?``/``B`` and ``C?``/``C``). The SQM-160 operating manual itself (PN 074-511-P1D) could
not be read, so the field layouts below are [U]:

- ``A<film>?`` -> ``<label> <density> <tooling> <z-ratio> <final kÅ> <setpoint kÅ> <setpoint s> <avg>``;
  ``A<film> <label> <the same seven fields>`` writes them, every field, in that order. The sibling
  INFICON SQC-122 communications manual ("Get/Set Film Parameters") documents the same pattern: a get
  is the film number and ``?``, a set sends the name then every parameter separated by spaces, all
  of them, in order. Unlike that manual (integers with implied decimals, single-character film
  numbers), numbers here travel with their decimal point and the film number is decimal digits and a
  space: if a real unit wants integers, it refuses ``0.53`` with ``D`` or reads back something else,
  and both stop a layer instead of passing silently.
- ``D?`` -> the active film number; ``D<film>`` selects it.
- ``B?`` -> system 1: time base s, simulation mode 0/1, crystal frequency min and max Hz, rate
  display min and max Å/s, thickness display min and max kÅ, etch mode 0/1. ``B <fields>`` writes.
- ``C?`` -> system 2: rate resolution (0: 0.1, 1: 0.01 Å/s), rate filter (readings averaged), then
  the crystal tooling % of sensors 1..6. ``C <fields>`` writes.

Ranges follow the front panel as remembered [U] (density 0.50..99.99 g/cm³, tooling 10..399 %,
Z-ratio 0.100..9.999). A value is checked against them before it goes on the wire (host) and before it
is honoured (device); resolution is the displayed one, so a read-back agrees with a write to half a
digit (`FILM_RESOLUTION`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Final

from drivers.errors import ConfigError, ProtocolError

MAX_FILMS: Final = 99
MAX_LABEL_CHARS: Final = 8
SENSORS: Final = 6


@dataclass(frozen=True, slots=True)
class Field:
    """One number of a parameter block: its format (decimals) and front-panel range [U]."""

    name: str
    decimals: int
    low: float
    high: float

    def format(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    def check(self, value: float) -> float:
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise ConfigError(f"{self.name} must be {self.low:g}..{self.high:g}, got {value!r}")
        return value

    @property
    def resolution(self) -> float:
        return 10.0**-self.decimals


# -- film memories ---------------------------------------------------------------------------------

FILM_FIELDS: Final = (
    Field("density (g/cm³)", 2, 0.5, 99.99),
    Field("tooling (%)", 0, 10.0, 399.0),
    Field("Z-ratio", 3, 0.1, 9.999),
    Field("final thickness (kÅ)", 3, 0.0, 9999.0),
    Field("thickness setpoint (kÅ)", 3, 0.0, 9999.0),
    Field("time setpoint (s)", 0, 0.0, 5999.0),
    Field("sensor average (bits)", 0, 0.0, 63.0),
)


@dataclass(frozen=True, slots=True)
class FilmParameters:
    """One film memory. Density, Z-ratio and tooling convert mass to thickness; the rest (the end
    point and set points the front panel acts on, the sensors averaged) travel along unchanged."""

    density_g_cm3: float
    tooling_pct: float = 100.0
    z_ratio: float = 1.0
    label: str = "FILM1"
    final_thickness_ka: float = 0.0
    thickness_setpoint_ka: float = 0.0
    time_setpoint_s: float = 0.0
    sensor_average: int = 1

    def numbers(self) -> tuple[float, ...]:
        return tuple(float(v) for v in astuple(self) if not isinstance(v, str))


# what converts mass to thickness, by attribute, with its field: a read-back is compared on these
CONVERSION: Final = dict(zip(("density_g_cm3", "tooling_pct", "z_ratio"), FILM_FIELDS[:3], strict=True))


def film_differences(held: FilmParameters, wanted: FilmParameters) -> list[str]:
    """The conversion parameters a monitor holds otherwise than `wanted`, one phrase each ("density
    (g/cm³) reads 1.89, commanded 0.53"); equal to within half a displayed digit counts as equal."""
    out: list[str] = []
    for attribute, spec in CONVERSION.items():
        have, want = getattr(held, attribute), getattr(wanted, attribute)
        if not abs(have - want) <= spec.resolution / 2.0 + 1e-9:  # NaN never agrees
            out.append(f"{spec.name} reads {spec.format(have)}, commanded {spec.format(want)}")
    return out


def check_film(film: int) -> int:
    if not 1 <= film <= MAX_FILMS:
        raise ConfigError(f"SQM-160 film number must be 1..{MAX_FILMS}, got {film!r}")
    return film


def check_label(label: str) -> str:
    printable = label.isascii() and label.isprintable() and " " not in label
    if not (printable and 1 <= len(label) <= MAX_LABEL_CHARS):
        raise ConfigError(f"film label must be 1..{MAX_LABEL_CHARS} ASCII characters, no spaces: {label!r}")
    return label


def film_label(material: str) -> str:
    """A material name as a film label the monitor holds: its first letters and digits."""
    kept = "".join(c for c in material if c.isascii() and c.isalnum())
    return (kept or "FILM")[:MAX_LABEL_CHARS]


def check_film_parameters(params: FilmParameters) -> FilmParameters:
    """Refuse what the instrument would refuse, before it goes on the wire or is honoured."""
    check_label(params.label)
    for spec, value in zip(FILM_FIELDS, params.numbers(), strict=True):
        spec.check(value)
    return params


def format_film_parameters(params: FilmParameters) -> bytes:
    """The data of an ``A<film>?`` reply and the tail of an ``A<film> ...`` write."""
    numbers = (f.format(v) for f, v in zip(FILM_FIELDS, params.numbers(), strict=True))
    return " ".join((params.label, *numbers)).encode("ascii")


def parse_film_parameters(data: bytes) -> FilmParameters:
    fields_ = data.split()
    if len(fields_) != 1 + len(FILM_FIELDS):
        raise ProtocolError(f"film parameters {data!r} need a label and {len(FILM_FIELDS)} numbers")
    label = fields_[0].decode("ascii", errors="replace")
    numbers = _numbers(fields_[1:])
    return FilmParameters(
        numbers[0], numbers[1], numbers[2], label, numbers[3], numbers[4], numbers[5], int(numbers[6])
    )


def film_query_command(film: int) -> bytes:
    return f"A{check_film(film)}?".encode("ascii")


def film_write_command(film: int, params: FilmParameters) -> bytes:
    return f"A{check_film(film)} ".encode("ascii") + format_film_parameters(check_film_parameters(params))


def parse_film_command(argument: bytes) -> tuple[int, FilmParameters | None]:
    """Device role: the bytes after ``A`` as (film, None) for a query or (film, parameters) for a
    write. Malformed or out-of-range input raises `ProtocolError` or `ConfigError` (status ``D``)."""
    if argument.endswith(b"?"):
        number, params = argument[:-1], None
    else:
        number, _, tail = argument.partition(b" ")
        params = check_film_parameters(parse_film_parameters(tail))
    return check_film(_film_number(number)), params


def active_film_command(film: int | None = None) -> bytes:
    """``D?`` asks which film the monitor converts with, ``D<film>`` selects one."""
    return b"D?" if film is None else f"D{check_film(film)}".encode("ascii")


def parse_active_film_command(argument: bytes) -> int | None:
    """Device role: None for ``D?``, else the film to select."""
    return None if argument == b"?" else check_film(_film_number(argument))


# -- system parameters -----------------------------------------------------------------------------

SYSTEM1_FIELDS: Final = (
    Field("time base (s)", 2, 0.10, 2.00),
    Field("simulation mode", 0, 0.0, 1.0),
    Field("frequency min (Hz)", 0, 1.0e6, 6.5e6),
    Field("frequency max (Hz)", 0, 1.0e6, 6.5e6),
    Field("rate min (Å/s)", 2, -99.0, 999.0),
    Field("rate max (Å/s)", 2, -99.0, 999.0),
    Field("thickness min (kÅ)", 3, 0.0, 9999.0),
    Field("thickness max (kÅ)", 3, 0.0, 9999.0),
    Field("etch mode", 0, 0.0, 1.0),
)
SYSTEM2_FIELDS: Final = (
    Field("rate resolution", 0, 0.0, 1.0),
    Field("rate filter (readings)", 0, 1.0, 20.0),
    *(Field(f"crystal tooling {n} (%)", 0, 10.0, 399.0) for n in range(1, SENSORS + 1)),
)


@dataclass(frozen=True, slots=True)
class SystemParameters:
    """System 1 (``B``): how the monitor measures. `frequency_max_hz` is the new crystal's frequency the
    Z-match equation starts from, `frequency_min_hz` the end of its life (crystal life is the share of
    the span left)."""

    time_base_s: float = 0.25
    simulation_mode: int = 0
    frequency_min_hz: float = 5.0e6
    frequency_max_hz: float = 6.0e6
    rate_min_a_s: float = 0.0
    rate_max_a_s: float = 100.0
    thickness_min_ka: float = 0.0
    thickness_max_ka: float = 1.0
    etch_mode: int = 0


@dataclass(frozen=True, slots=True)
class SensorParameters:
    """System 2 (``C``): display resolution, averaging, and each sensor's crystal tooling."""

    rate_resolution: int = 1
    rate_filter: int = 4
    crystal_tooling_pct: tuple[float, ...] = (100.0,) * SENSORS


def format_system_parameters(params: SystemParameters) -> bytes:
    return _format_block(SYSTEM1_FIELDS, [float(v) for v in astuple(params)])


def parse_system_parameters(data: bytes) -> SystemParameters:
    v = _parse_block(SYSTEM1_FIELDS, data)
    return SystemParameters(v[0], int(v[1]), v[2], v[3], v[4], v[5], v[6], v[7], int(v[8]))


def format_sensor_parameters(params: SensorParameters) -> bytes:
    values = [float(params.rate_resolution), float(params.rate_filter), *params.crystal_tooling_pct]
    return _format_block(SYSTEM2_FIELDS, values)


def parse_sensor_parameters(data: bytes) -> SensorParameters:
    values = _parse_block(SYSTEM2_FIELDS, data)
    return SensorParameters(int(values[0]), int(values[1]), tuple(values[2:]))


def _format_block(specs: Sequence[Field], values: Sequence[float]) -> bytes:
    if len(values) != len(specs):
        raise ConfigError(f"{len(specs)} values expected, got {len(values)}")
    return " ".join(s.format(s.check(v)) for s, v in zip(specs, values, strict=True)).encode("ascii")


def _parse_block(specs: Sequence[Field], data: bytes) -> list[float]:
    words = data.split()
    if len(words) != len(specs):
        raise ProtocolError(f"{data!r}: {len(specs)} numbers expected, got {len(words)}")
    return [s.check(v) for s, v in zip(specs, _numbers(words), strict=True)]


def _numbers(words: Sequence[bytes]) -> list[float]:
    try:
        values = [float(w.decode("ascii")) for w in words]
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"{b' '.join(words)!r} are not all numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise ProtocolError(f"{b' '.join(words)!r} are not all finite numbers")
    return values


def _film_number(text: bytes) -> int:
    if not text.isdigit():
        raise ProtocolError(f"film number {text!r} is not a number")
    return int(text)
