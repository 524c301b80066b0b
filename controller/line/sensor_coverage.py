"""Spaces whose atmosphere the configured instruments can never judge, found before the line starts.

The classification (`atmosphere.classify`) calls a space without a usable pressure reading UNKNOWN,
and unknown is never in spec: a space no gauge reads can never receive an exposed item, and the line
stalls there instead of failing at configuration time. A space where containers are opened by glove
work (an antechamber) without a dew-point transmitter can be called inert only from its purge history
with the configured margin: allowed, but the frost-point record of every electrode opened there is
an estimate, not a measurement. Both are configurations a person should hear about, not refusals:
a commissioning line may lack a sensor on purpose.
"""

from __future__ import annotations

from controller.config.line_config import LineConfig
from controller.errors import one_line
from controller.line.state import LineReadings

# where unsealed air-sensitive items are by design: containers are opened and closed by glove work in an
# antechamber (DESIGN.md §1); the electrode crosses a transfer chamber between two deposition systems
EXPOSED_BY_DESIGN = {
    "antechamber": "containers are opened here",
    "transfer_chamber": "the unsealed electrode passes through here",
}


def atmosphere_blind_spots(config: LineConfig) -> list[str]:
    """One self-contained line per space whose atmosphere can never be (or is never measured) judged."""
    readings = LineReadings(config)
    found: list[str] = []
    for index, space in enumerate(config.spaces):
        where = f"{one_line(config.path)}: spaces[{index}] {space.name!r}"
        if not readings.gauges[space.name] and space.name not in readings.box_pressure:
            found.append(
                f"{where}: no gauge reads its pressure (a tpg36x channel or a glovebox controller): "
                "its atmosphere is always unknown, so no exposed item may ever enter it"
            )
        elif space.kind in EXPOSED_BY_DESIGN and space.name not in readings.frost:
            why = EXPOSED_BY_DESIGN[space.kind]
            found.append(
                f"{where}: {why} but no dew-point transmitter measures it: it counts "
                f"as inert only from its purge history ({config.limits.inert_purge_margin:g}x margin), "
                "never from a measured frost point"
            )
    return found
