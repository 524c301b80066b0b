"""Water vapour: frost point ↔ H2O partial pressure ↔ ppmv (devices.md §10, [C]).

Murphy & Koop (2005) ice vapour pressure,
``ln e_ice[Pa] = 9.550426 − 5723.265/T + 3.53068 ln T − 0.00728332 T``, and
``ppmv = 1e6 · f · e_ice(T_frost) / P`` with the enhancement factor f ≈ 1.004 of moist air.

The §10 table was computed with f = 1 (−50 °C ↔ 38.87 ppmv); with f = 1.004 every ppmv figure is
0.4 % higher. Both are inside any dew-point transmitter's accuracy (±2 °C). A frost point is
always "over ice" here: every value the line cares about is far below 0 °C.

Two frost points exist for one gas: the one at the space's own pressure (what a sensor *in* an
evacuated space reads, from the H2O partial pressure) and the one "at 1 atm" (the gas compressed
to atmospheric pressure, from its ppmv), which is what the glovebox limits (−50 °C, −60 °C) mean.
"""

from __future__ import annotations

import math

STANDARD_ATMOSPHERE_PA = 101325.0
ZERO_CELSIUS_K = 273.15
ENHANCEMENT_FACTOR = 1.004
# Below this the frost point is reported as the floor rather than diverging toward −273 °C:
# no transmitter reads below about −100 °C and a gas with no water at all must still give a number.
FROST_POINT_FLOOR_C = -150.0

_A, _B, _C, _D = 9.550426, 5723.265, 3.53068, 0.00728332


def ice_vapour_pressure_pa(temp_c: float) -> float:
    """Saturation vapour pressure over ice (Murphy–Koop 2005), valid from about −160 °C to 0 °C."""
    t_k = temp_c + ZERO_CELSIUS_K
    return math.exp(_A - _B / t_k + _C * math.log(t_k) - _D * t_k)


def water_vapour_pressure_pa(temp_c: float) -> float:
    """Saturation vapour pressure over liquid water (Murphy–Koop 2005); for the room's humidity."""
    t_k = temp_c + ZERO_CELSIUS_K
    return math.exp(
        54.842763
        - 6763.22 / t_k
        - 4.210 * math.log(t_k)
        + 0.000367 * t_k
        + math.tanh(0.0415 * (t_k - 218.8))
        * (53.878 - 1331.22 / t_k - 9.44523 * math.log(t_k) + 0.014025 * t_k)
    )


_FLOOR_PA = ice_vapour_pressure_pa(FROST_POINT_FLOOR_C)


def frost_point_c(h2o_partial_pa: float, enhancement: float = ENHANCEMENT_FACTOR) -> float:
    """Frost point of a gas whose water partial pressure is `h2o_partial_pa` (at its own pressure).

    Solves f·e_ice(T) = p_w by Newton's method on ln e_ice, which is smooth and monotonic.
    """
    target = h2o_partial_pa / enhancement
    if target <= _FLOOR_PA:
        return FROST_POINT_FLOOR_C
    ln_target = math.log(target)
    t_k = 230.0
    for _ in range(30):
        ln_e = _A - _B / t_k + _C * math.log(t_k) - _D * t_k
        slope = _B / (t_k * t_k) + _C / t_k - _D
        step = (ln_e - ln_target) / slope
        t_k -= step
        if abs(step) < 1e-9:
            break
    return t_k - ZERO_CELSIUS_K


def dew_frost_point_c(h2o_partial_pa: float, enhancement: float = ENHANCEMENT_FACTOR) -> float:
    """ "Td/f" as a dew-point transmitter reports it: the frost point below 0 °C, the dew point over
    liquid water above (room air at 20 °C and 50 % RH: +9.3 °C)."""
    frost = frost_point_c(h2o_partial_pa, enhancement)
    if frost <= 0.0:
        return frost
    target = h2o_partial_pa / enhancement
    low, high = -40.0, 100.0  # bisection: the liquid formula is monotonic here
    for _ in range(60):
        mid = 0.5 * (low + high)
        if water_vapour_pressure_pa(mid) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def frost_point_at_pressure_c(
    h2o_ppmv: float, pressure_pa: float, enhancement: float = ENHANCEMENT_FACTOR
) -> float:
    """Frost point of a gas with `h2o_ppmv` water at total pressure `pressure_pa`."""
    return frost_point_c(h2o_ppmv * 1e-6 * pressure_pa, enhancement)


def frost_point_1atm_c(h2o_ppmv: float, enhancement: float = ENHANCEMENT_FACTOR) -> float:
    """Frost point the gas would have at 1 atm: the figure glovebox limits are written in."""
    return frost_point_at_pressure_c(h2o_ppmv, STANDARD_ATMOSPHERE_PA, enhancement)


def h2o_ppmv_at_frost_point(
    frost_point_c: float,
    pressure_pa: float = STANDARD_ATMOSPHERE_PA,
    enhancement: float = ENHANCEMENT_FACTOR,
) -> float:
    """Inverse of `frost_point_at_pressure_c`: the water content that has this frost point."""
    return 1e6 * enhancement * ice_vapour_pressure_pa(frost_point_c) / pressure_pa
