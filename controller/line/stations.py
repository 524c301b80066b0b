"""Per-station state machines: every transition of every station kind, in one table each.

The tables are the single source of truth: the machines are built from them and the diagrams in
docs/state_machines.md are generated from them (`python -m sequences.state_machine_docs`). State machines
decide *what to do next*; the command gate decides *whether it is allowed now* — a machine never
drives hardware itself. Long actions (a pump-down) run as supervised tasks that fire the completion
trigger; machines are queued (`stack.md` §3: with `queued=True` a trigger returns True even when a
condition blocked it, so callers read `station.state`, never the return value).

On a fault every station goes to `fault`, and `safe_actions` lists what the controller then commands:
isolate, sources off, heaters safe, stay inert. It never vents and never opens a door.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from controller.config.line_config import LineConfig
from controller.line.actions import Action, SetGasFlow, SetHeater, SetPort, SetSource, SetValve
from drivers.deposition_sources import STANDARD_LINE_SOURCES

log = logging.getLogger(__name__)
Transition = dict[str, Any]

ANTECHAMBER_STATES = [
    "vented",
    "sealed",
    "evacuating",
    "evacuated",
    "back_filling",
    "inert",
    "transfer",
    "venting",
    "fault",
]
ANTECHAMBER_TRANSITIONS: list[Transition] = [
    {"trigger": "close_outer_door", "source": "vented", "dest": "sealed"},
    {"trigger": "open_outer_door", "source": "sealed", "dest": "vented"},
    {"trigger": "evacuate", "source": ["sealed", "inert", "back_filling"], "dest": "evacuating"},
    {"trigger": "reached_vacuum", "source": "evacuating", "dest": "evacuated"},
    {"trigger": "back_fill", "source": "evacuated", "dest": "back_filling"},
    {"trigger": "reached_atmosphere_in_spec", "source": "back_filling", "dest": "inert"},
    {"trigger": "reached_atmosphere_out_of_spec", "source": "back_filling", "dest": "sealed"},
    {"trigger": "open_inner_door", "source": "inert", "dest": "transfer"},
    {"trigger": "close_inner_door", "source": "transfer", "dest": "inert"},
    {"trigger": "atmosphere_lost", "source": "inert", "dest": "sealed"},
    {"trigger": "vent", "source": ["sealed", "inert", "evacuated"], "dest": "venting"},
    {"trigger": "reached_atmosphere", "source": "venting", "dest": "sealed"},
    {"trigger": "fault", "source": "*", "dest": "fault"},
    {"trigger": "reset", "source": "fault", "dest": "sealed"},
]

# the intermediate inert space between two deposition systems: an antechamber without a door to the room
TRANSFER_STATES = [s for s in ANTECHAMBER_STATES if s != "vented"]
TRANSFER_TRANSITIONS: list[Transition] = [
    t for t in ANTECHAMBER_TRANSITIONS if t["trigger"] not in ("close_outer_door", "open_outer_door")
]

PROCESS_STATES = [
    "idle",
    "pumping",
    "at_base_pressure",
    "etching",
    "depositing",
    "annealing",
    "back_filling",
    "inert",
    "transfer",
    "fault",
]
PROCESS_TRANSITIONS: list[Transition] = [
    {"trigger": "pump_down", "source": ["idle", "inert"], "dest": "pumping"},
    {"trigger": "reached_base_pressure", "source": "pumping", "dest": "at_base_pressure"},
    {"trigger": "etch", "source": "at_base_pressure", "dest": "etching"},
    {"trigger": "deposit", "source": "at_base_pressure", "dest": "depositing"},
    {"trigger": "anneal", "source": "at_base_pressure", "dest": "annealing"},
    {"trigger": "step_done", "source": ["etching", "depositing", "annealing"], "dest": "at_base_pressure"},
    {"trigger": "back_fill", "source": ["at_base_pressure", "pumping"], "dest": "back_filling"},
    {"trigger": "reached_atmosphere_in_spec", "source": "back_filling", "dest": "inert"},
    {"trigger": "open_inner_door", "source": ["inert", "at_base_pressure"], "dest": "transfer"},
    {"trigger": "close_inner_door", "source": "transfer", "dest": "inert"},
    {"trigger": "fault", "source": "*", "dest": "fault"},
    {"trigger": "reset", "source": "fault", "dest": "idle"},
]

TABLES: dict[str, tuple[list[str], list[Transition], str]] = {
    "antechamber": (ANTECHAMBER_STATES, ANTECHAMBER_TRANSITIONS, "sealed"),
    "process_chamber": (PROCESS_STATES, PROCESS_TRANSITIONS, "idle"),
    "transfer_chamber": (TRANSFER_STATES, TRANSFER_TRANSITIONS, "sealed"),
}


class Station:
    """One space's machine; triggers are bound as coroutines (`await station.evacuate()`)."""

    state: str

    def __init__(self, name: str, kind: str, *, initial: str | None = None) -> None:
        states, transitions, default = TABLES[kind]
        self.name = name
        self.kind = kind
        self.history: list[tuple[str, str, str]] = []
        self.listeners: list[Callable[[str, str, str, str], None]] = []  # (station, from, to, trigger)
        self.machine = AsyncMachine(
            model=self,
            states=states,
            transitions=transitions,
            initial=initial or default,
            queued=True,
            send_event=True,
            auto_transitions=False,
            after_state_change="_record",
            ignore_invalid_triggers=False,
        )

    def _record(self, event: Any) -> None:
        change = (event.transition.source, event.transition.dest, event.event.name)
        self.history.append(change)
        for listener in self.listeners:  # the historian keeps every transition
            try:
                listener(self.name, *change)
            except Exception:  # a failing recorder must not break the machine
                log.exception("station listener failed")

    async def fire(self, trigger: str) -> str:
        """Fire a trigger by name (sequences and the HMI name them); returns the state after it."""
        await getattr(self, trigger)()
        return self.state

    def allowed_triggers(self) -> list[str]:
        return sorted(t for t in self.machine.get_triggers(self.state) if not t.startswith("to_"))


def safe_actions(config: LineConfig, space: str) -> list[Action]:
    """What a station's safe state commands: isolate it, sources and heaters off, stay inert.

    Closing valves and gates and switching things off only: nothing here vents or opens a door, so
    an exposed item is never put at risk by the fault handling itself.
    """
    kind = next(s.kind for s in config.spaces if s.name == space)
    actions: list[Action] = [SetValve(space, "rough", False), SetValve(space, "gas_fill", False)]
    actions += [SetPort(p.name, False) for p in config.ports if space in p.between and p.kind != "outer_door"]
    if kind == "process_chamber":
        actions.append(SetGasFlow(space, 0.0))
        actions += [SetSource(space, s, False) for s in _sources(config, space)]
        actions.append(SetHeater(space, "substrate", 20.0))
    return actions


def _sources(config: LineConfig, space: str) -> list[str]:
    has_rack = any(d.family == "deposition_sources" and d.space == space for d in config.devices)
    return [s.name for s in STANDARD_LINE_SOURCES] if has_rack else []


def mermaid(kind: str) -> str:
    """The state diagram of a station kind, generated from its table."""
    states, transitions, initial = TABLES[kind]
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    for t in transitions:
        sources = (
            states if t["source"] == "*" else ([t["source"]] if isinstance(t["source"], str) else t["source"])
        )
        for source in sources:
            if source != t["dest"]:
                lines.append(f"    {source} --> {t['dest']}: {t['trigger']}")
    return "\n".join(lines)
