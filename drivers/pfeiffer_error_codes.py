"""The words a TC 110 / HiPace drive's error and warning numbers (P:303 ``ErrXXX`` / ``WrnXXX``) stand for.

Source: Pfeiffer Vacuum, TC 110 electronic drive unit operating instructions (PT 0208 BEN; the same
list is printed in the HiPace 10-300 pump manuals), chapter "Malfunctions", table "Error codes". The
texts are that table's, shortened where it repeats the word "error". In this session the manual
itself could not be retrieved (the `search` corpora returned its table of contents, TC 110 PB
PT 0245 BEN/J, but not the malfunction table), so the table was written from the manual as known
and is marked [U] until checked against the printed page; numbers not listed decode to a sentence
that sends the reader to the manual rather than to a guess.

The line's simulator uses four numbers (`sim_hardware.plant.turbo`): Err006 and Err107 mean there
what the manual says; its Err021 (backing failure) and Err073 (gas inrush) are project-chosen and do
not match the manual's meaning (pump not recognised, axial bearing overload). The decoder follows
the manual.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

ERROR_TEXTS: Final = MappingProxyType(
    {
        1: "excessive rotation speed",
        2: "overvoltage",
        6: "run-up time error",
        7: "operating fluid deficiency",
        8: "connection between drive unit and pump faulty",
        10: "internal device fault",
        21: "drive unit does not recognise the pump",
        43: "internal configuration fault",
        44: "excess temperature of the electronics",
        45: "excess temperature of the motor",
        46: "internal initialisation fault",
        73: "overload of the axial bearing",
        74: "overload of the radial bearing",
        89: "rotor unstable",
        91: "internal device fault",
        92: "unknown connection panel",
        93: "motor temperature evaluation faulty",
        94: "electronics temperature evaluation faulty",
        98: "internal communication fault",
        107: "collective fault of the power stage",
        108: "rotation speed measurement faulty",
        109: "firmware not confirmed",
        114: "temperature evaluation of the power stage faulty",
        117: "excess temperature of the pump bottom part",
        118: "excess temperature of the power stage",
        119: "excess temperature of the bearing",
    }
)
WARNING_TEXTS: Final = MappingProxyType(
    {
        7: "undervoltage or mains power failure",
        18: "fault in the remote connection",
        45: "high motor temperature",
        76: "high electronics temperature",
        97: "pump information invalid",
        98: "pump information incomplete",
        117: "high temperature of the pump bottom part",
        118: "high power stage temperature",
        119: "high bearing temperature",
    }
)


def error_text(number: int) -> str:
    """``Err107 collective fault of the power stage``: the code as the drive shows it, then its words."""
    words = ERROR_TEXTS.get(number, "not in the decoded list: see the drive's operating instructions")
    return f"Err{number:03d} {words}"


def warning_text(number: int) -> str:
    words = WARNING_TEXTS.get(number, "not in the decoded list: see the drive's operating instructions")
    return f"Wrn{number:03d} {words}"
