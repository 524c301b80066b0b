"""The exposure ledger: the evidence that no air-sensitive item ever met a non-inert atmosphere.

Entries are appended for every registration, move, container opening or sealing, and every change of
a space's atmosphere class while an exposed item is in it, each with the readings behind it. From the
entries each item gets an `ExposureRecord`: where it has been and for how long, the worst frost point
and O2 it saw while exposed, and every moment it was exposed to something not safe (which must never
happen: the gate exists to prevent it, and the ledger exists to prove it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.line.items import is_exposed, space_of
from controller.line.state import LineState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    ts: float
    item: str
    event: str  # registered | moved | opened | sealed | atmosphere | non_inert
    space: str
    atmosphere: str
    exposed: bool
    evidence: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stay:
    space: str
    since_ts: float
    until_ts: float | None


@dataclass
class ExposureRecord:
    item: str
    path: list[Stay] = field(default_factory=list)
    exposed_s: float = 0.0
    worst_frost_point_c: float | None = None
    worst_o2_ppmv: float | None = None
    non_inert: list[LedgerEntry] = field(default_factory=list)
    _exposed_since: float | None = None

    @property
    def ever_exposed_to_non_inert(self) -> bool:
        return bool(self.non_inert)

    def exposed_seconds(self, now_ts: float) -> float:
        running = now_ts - self._exposed_since if self._exposed_since is not None else 0.0
        return self.exposed_s + running


class ExposureLedger:
    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []
        self.records: dict[str, ExposureRecord] = {}
        self._seen_atmosphere: dict[str, str] = {}
        self._unsafe: set[str] = set()
        self.subscribers: list[Callable[[LedgerEntry], None]] = []  # the historian keeps every entry

    def _entry(self, state: LineState, item: str, event: str, ts: float) -> LedgerEntry:
        space = space_of(item, state.items)
        info = state.spaces.get(space)
        atmosphere = info.atmosphere.value if info else "room"
        evidence = dict(info.classification.evidence) if info else {}
        entry = LedgerEntry(ts, item, event, space, atmosphere, is_exposed(item, state.items), evidence)
        self.entries.append(entry)
        for callback in self.subscribers:
            try:
                callback(entry)
            except Exception:  # a failing recorder must not break the ledger
                log.exception("ledger subscriber failed")
        return entry

    def registered(self, state: LineState, item: str, ts: float) -> None:
        self.records[item] = ExposureRecord(item, [Stay(space_of(item, state.items), ts, None)])
        self._entry(state, item, "registered", ts)
        self._update_exposure(state, item, ts)

    def _ensure(self, state: LineState, ts: float) -> None:
        """Items the ledger has not seen yet get their first entry, wherever they were first noticed."""
        for item in state.items.values():
            if item.id not in self.records and not item.is_container:
                self.registered(state, item.id, ts)

    def moved(self, state: LineState, item: str, ts: float) -> None:
        """Call with the state *after* the move; contents of a moved container move along."""
        self._ensure(state, ts)
        for moved_id in [item, *(i.id for i in state.items.values() if i.location == item)]:
            record = self.records.setdefault(moved_id, ExposureRecord(moved_id))
            space = space_of(moved_id, state.items)
            if not record.path or record.path[-1].space != space:
                if record.path:
                    last = record.path[-1]
                    record.path[-1] = Stay(last.space, last.since_ts, ts)
                record.path.append(Stay(space, ts, None))
            self._entry(state, moved_id, "moved", ts)
            self._update_exposure(state, moved_id, ts)

    def coated(self, state: LineState, item: str, ts: float) -> None:
        """The item's material changed (a layer was deposited): from now on it is judged as the stack."""
        self._ensure(state, ts)
        self._entry(state, item, "coated", ts)
        self._update_exposure(state, item, ts)

    def container_changed(self, state: LineState, container: str, ts: float) -> None:
        self._ensure(state, ts)
        sealed = state.items[container].sealed
        for item in [i.id for i in state.items.values() if i.location == container]:
            self._entry(state, item, "sealed" if sealed else "opened", ts)
            self._update_exposure(state, item, ts)

    def observe(self, state: LineState, ts: float) -> list[LedgerEntry]:
        """Record atmosphere changes around exposed items and any unsafe exposure; returns new violations."""
        self._ensure(state, ts)
        violations: list[LedgerEntry] = []
        for item_id in list(self.records):
            if item_id not in state.items or not is_exposed(item_id, state.items):
                self._unsafe.discard(item_id)
                continue
            space = state.spaces.get(space_of(item_id, state.items))
            if space is None:
                continue
            record = self.records[item_id]
            self._worst(record, space.classification.evidence)
            if self._seen_atmosphere.get(item_id) != space.atmosphere.value:
                self._seen_atmosphere[item_id] = space.atmosphere.value
                self._entry(state, item_id, "atmosphere", ts)
            if not space.safe_for_exposed and item_id not in self._unsafe:
                self._unsafe.add(item_id)
                entry = self._entry(state, item_id, "non_inert", ts)
                record.non_inert.append(entry)
                violations.append(entry)
            elif space.safe_for_exposed:
                self._unsafe.discard(item_id)
        return violations

    def _update_exposure(self, state: LineState, item: str, ts: float) -> None:
        record = self.records[item]
        exposed = is_exposed(item, state.items)
        if exposed and record._exposed_since is None:
            record._exposed_since = ts
        elif not exposed and record._exposed_since is not None:
            record.exposed_s += ts - record._exposed_since
            record._exposed_since = None

    @staticmethod
    def _worst(record: ExposureRecord, evidence: dict[str, float | str]) -> None:
        frost = evidence.get("frost_point_c")
        if isinstance(frost, float) and (
            record.worst_frost_point_c is None or frost > record.worst_frost_point_c
        ):
            record.worst_frost_point_c = frost
        o2 = evidence.get("o2_ppmv")  # measured only: an estimate or an assumption is not a reading
        if isinstance(o2, float) and (record.worst_o2_ppmv is None or o2 > record.worst_o2_ppmv):
            record.worst_o2_ppmv = o2

    def complete(self, state: LineState) -> list[str]:
        """Problems with the records (empty when every item's path is continuous and current)."""
        problems: list[str] = []
        for item_id, item in state.items.items():
            if item.is_container and item_id not in self.records:
                continue
            record = self.records.get(item_id)
            if record is None:
                problems.append(f"{item_id}: no ledger record")
                continue
            for before, after in zip(record.path, record.path[1:], strict=False):
                if before.until_ts != after.since_ts:
                    problems.append(f"{item_id}: gap between {before.space} and {after.space}")
            if not record.path or record.path[-1].space != space_of(item_id, state.items):
                problems.append(f"{item_id}: ledger says {record.path[-1].space if record.path else '-'}")
        return problems


def exposure_line(record: ExposureRecord | None) -> str:
    if record is None:
        return "no ledger entries (never loaded)"
    path = " -> ".join(dict.fromkeys(stay.space for stay in record.path)) or "-"
    frost = (
        ""
        if record.worst_frost_point_c is None
        else f", worst frost point {record.worst_frost_point_c:.1f} °C"
    )
    o2 = "" if record.worst_o2_ppmv is None else f", worst O2 {record.worst_o2_ppmv:.1f} ppmv"
    if record.ever_exposed_to_non_inert:
        worst = record.non_inert[0]
        verdict = f"EXPOSED to {worst.atmosphere} in {worst.space}"
    else:
        verdict = "never exposed to a non-inert atmosphere"
    return f"{verdict}; path {path}{frost}{o2}"


def exposure_from_entries(item: str, entries: Sequence[LedgerEntry]) -> ExposureRecord:
    """An item's `ExposureRecord` as `ExposureLedger` would have built it from these entries.

    The path changes where an entry's space does; exposure time runs between entries that say
    exposed and not; an item exposed at its last entry stays exposed (the time the controller was
    not running counts: the safe assumption). The worst frost point and O2 are those the entries
    carry: a lower bound of what the live ledger saw between them.
    """
    record = ExposureRecord(item)
    for entry in entries:
        if not record.path:
            record.path.append(Stay(entry.space, entry.ts, None))
        elif record.path[-1].space != entry.space:
            last = record.path[-1]
            record.path[-1] = Stay(last.space, last.since_ts, entry.ts)
            record.path.append(Stay(entry.space, entry.ts, None))
        if entry.exposed:
            ExposureLedger._worst(record, entry.evidence)  # the live ledger's own rule, from its own module
        if entry.event == "non_inert":
            record.non_inert.append(entry)
        if entry.exposed and record._exposed_since is None:
            record._exposed_since = entry.ts
        elif not entry.exposed and record._exposed_since is not None:
            record.exposed_s += entry.ts - record._exposed_since
            record._exposed_since = None
    return record
