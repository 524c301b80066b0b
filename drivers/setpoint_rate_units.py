"""Eurotherm setpoint-rate units (parameter 531): what the enum means, and refusing to guess it.

The setpoint rate limit (parameter 35) is "degrees per rate unit", and parameter 531 selects the unit.
Two readings of its enum are public and they disagree on every value:

- ``s-min-h``: 0 = per second, 1 = per minute, 2 = per hour. Eurotherm "2000 Series Communications"
  HA026230 issue 3, §5.7 configuration parameters, "rmP.V Setpoint rate limit units", Modbus 531.
  That is the 2400/2200 manual, not the 3216's.
- ``min-h-s``: 0 = per minute, 1 = per hour, 2 = per second: a public 3200-series driver (built on
  minimalmodbus) reads 531 so.

The 3216's own manuals (3116/3216 Engineering Handbook HA027986; 3200 Series User Manual HA028651) were
searched and their Modbus parameter list was reached up to address ~107 (HA028651 issue 7 §15.5,
printed pages 81-82) and from 12745 on (page 90); the page with 531 was not, so the enum is not settled
for the 3216. A wrong guess is a 60x (or 3600x) ramp-rate error on the substrate heater, so the driver
does not guess: a site states the order it has checked on its own instrument (set the rate units on
the front panel, read 531) as `params.rate_units_order`, and without it a ramp is refused with
`RateUnitsUnknown`. A rate limit of 0 (no limit) needs no unit and is always accepted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from drivers.errors import DriverError


class RateUnit(enum.Enum):
    """The time base of a setpoint rate, with its length in seconds."""

    PER_SECOND = 1.0
    PER_MINUTE = 60.0
    PER_HOUR = 3600.0

    @property
    def seconds(self) -> float:
        return self.value


RATE_UNIT_ORDERS: Final[Mapping[str, Mapping[int, RateUnit]]] = MappingProxyType(
    {
        "s-min-h": MappingProxyType({0: RateUnit.PER_SECOND, 1: RateUnit.PER_MINUTE, 2: RateUnit.PER_HOUR}),
        "min-h-s": MappingProxyType({0: RateUnit.PER_MINUTE, 1: RateUnit.PER_HOUR, 2: RateUnit.PER_SECOND}),
    }
)
"""Register-531 code -> unit, per reading of the enum; the key is what `params.rate_units_order` names."""


class RateUnitsUnknown(DriverError):
    """A ramp was refused: what register 531 means on this controller is not known."""

    def __init__(self, device: str, code: int, reason: str) -> None:
        self.device = device
        self.code = code
        self.reason = reason
        super().__init__(f"{device}: ramp refused, setpoint-rate units register 531 reads {code}: {reason}")


def rate_unit(device: str, code: int, order: str | None) -> RateUnit:
    """The unit register 531's `code` stands for, or `RateUnitsUnknown` saying why it cannot be told."""
    if order is None:
        readings = [
            f"{name}: {unit.name.lower()}"
            for name, codes in RATE_UNIT_ORDERS.items()
            if (unit := codes.get(code))
        ]
        raise RateUnitsUnknown(
            device,
            code,
            f"the 3216's enum for 531 is not settled ({', '.join(readings) or 'no reading has this code'}); "
            "check it on the instrument and set params.rate_units_order",
        )
    units = RATE_UNIT_ORDERS[order].get(code)
    if units is None:
        raise RateUnitsUnknown(device, code, f"not a code of the {order} order")
    return units


def rate_code(order: str, unit: RateUnit) -> int:
    """The register-531 code of `unit` in `order`."""
    return next(code for code, u in RATE_UNIT_ORDERS[order].items() if u is unit)
