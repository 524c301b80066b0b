"""A device's family-specific settings (`params`, `address`, `channels`), checked when the file is read.

`config check` must refuse what `run` would: a setting checked only when the drivers or the simulated
plant are built (``gauge_types = [inf]``) used to pass the check and then kill the controller at start.
Each family's settings are read here once, with their defaults filled in, and the driver builders and
the simulator take them as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.config.reader import TableReader
from drivers.setpoint_rate_units import RATE_UNIT_ORDERS

MODBUS_UNIT = (1, 247)  # a Modbus RTU/TCP server address (0 is broadcast, 248.. are reserved)
GAUGE_CHANNELS = 6  # a TPG 366 has six; a TPG 361/362 one or two
GAUGE_TYPE_MAX_CHARS = 16
HEATERS = ("substrate", "source")  # what a temperature controller heats on this line
# the range a heater holds when its config gives none: the simulated substrate heater trips at 250 °C,
# the source heater at 900 °C (sim_hardware.plant.spec); a site writes its own instrument's range
HEATER_RANGE_C = {"substrate": (20.0, 250.0), "source": (20.0, 900.0)}
HEATER_LIMIT_C = (-50.0, 1500.0)  # what any range may span
WORD_ORDERS = ("little", "big")
QCM_CHANNELS = 6  # SQM-160 sensor inputs


def read_params(family: str, t: TableReader) -> dict[str, Any]:
    """The family's settings from a `params` table, defaults filled in; unknown keys are refused."""
    params = _PARAMS.get(family, _none)(t)
    t.finish()
    return params


def read_address(family: str, t: TableReader, modbus: bool) -> int | str | None:
    """The device's address on its link, in the form its protocol uses (None: the family default)."""
    if not t.has("address"):
        return None
    raw = t.table["address"]
    if family == "mass_flow_controller":
        unit_id = t.text("address")
        if len(unit_id) != 1 or not ("A" <= unit_id <= "Z"):
            raise t.fail("address", unit_id, "an Alicat unit id: one letter A..Z")
        return unit_id
    if modbus:
        low, high = MODBUS_UNIT
        return t.integer("address", min=low, max=high)
    return t.text("address") if isinstance(raw, str) else t.integer("address", min=0, max=255)


def channel_keys(family: str, gauge_types: int) -> tuple[str, ...]:
    """The channel names a device may bind to spaces: only a gauge controller has several."""
    if family != "tpg36x":
        return ()
    return tuple(f"pressure_ch{n}" for n in range(1, max(gauge_types, 1) + 1))


def _none(t: TableReader) -> dict[str, Any]:
    return {}


def _tpg36x(t: TableReader) -> dict[str, Any]:
    types = t.text_list("gauge_types", ["PKR", "PKR"])
    if not 1 <= len(types) <= GAUGE_CHANNELS or not all(
        0 < len(g) <= GAUGE_TYPE_MAX_CHARS and g.isalnum() for g in types
    ):
        raise t.fail(
            "gauge_types", types, f"1..{GAUGE_CHANNELS} gauge head names such as PKR, TPR, CMR, CMR1000"
        )
    return {"gauge_types": types}


def _dewpoint(t: TableReader) -> dict[str, Any]:
    return {"word_order": t.text("word_order", "little", choices=WORD_ORDERS)}


def _heater(t: TableReader) -> dict[str, Any]:
    """`rate_units_order` is left out until a site has checked it on its instrument: no ramps till then.
    `min_c`/`max_c` are the range the heater holds: a recipe asking for a temperature outside it is
    refused before the batch starts (sequences.recipe_on_line), not found out at the setpoint."""
    order = t.text("rate_units_order", choices=RATE_UNIT_ORDERS) if t.has("rate_units_order") else None
    heater = t.text("heater", "substrate", choices=HEATERS)
    low_default, high_default = HEATER_RANGE_C[heater]
    low_limit, high_limit = HEATER_LIMIT_C
    low = t.number("min_c", low_default, min=low_limit, max=high_limit)
    high = t.number("max_c", high_default, min=low_limit, max=high_limit)
    if high <= low:
        raise t.fail("max_c", high, f"above min_c ({low:g} °C)")
    return {"heater": heater, "rate_units_order": order, "min_c": low, "max_c": high}


def _mfc(t: TableReader) -> dict[str, Any]:
    gas = t.text("gas", "Ar")
    if not 0 < len(gas) <= 16 or not gas.isprintable():
        raise t.fail("gas", gas, "the calibration gas's name, e.g. Ar (1..16 characters)")
    return {"full_scale_sccm": t.number("full_scale_sccm", 100.0, min=1.0, max=100000.0), "gas": gas}


def _qcm(t: TableReader) -> dict[str, Any]:
    """`film_tooling_pct`: the chamber's source-to-substrate tooling found by calibration (thickness
    measured on a substrate over thickness read), programmed into every layer's film."""
    return {
        "channel": t.integer("channel", 1, min=1, max=QCM_CHANNELS),
        "film_tooling_pct": t.number("film_tooling_pct", 100.0, min=10.0, max=399.0),
    }


_PARAMS: dict[str, Callable[[TableReader], dict[str, Any]]] = {
    "tpg36x": _tpg36x,
    "dewpoint_transmitter": _dewpoint,
    "temperature_controller": _heater,
    "mass_flow_controller": _mfc,
    "thickness_monitor": _qcm,
}
