"""Mains power shared by every actuator of the line.

While the mains is off nothing can be energised: a command to open a fail-closed valve, start a
pump, enable a source or run a heater is ignored and reads back as off. When power returns every
command stays off until the operator (or the controller) gives it again, as with real contactors.
"""

from __future__ import annotations


class Mains:
    def __init__(self) -> None:
        self.powered = True
