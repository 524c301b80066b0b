"""What a job's own record has decided about it, read back from its events: decisions no resume undoes.

A rejection, a fault and an abort are written into the job's events (awaited, each its own
transaction) before the runner acts on them. A process killed a moment later must not lose them: the
next attempt folds the events back into `Decisions` *before* it looks at the checkpoint, so a
rejected electrode goes on along its reject path whatever the checkpoint says, and a job can only end
as badly as the worst decision taken on it, never better (`worst`). The certificate reads the same
fold, so it never trusts an outcome field that a bug or a crash could have written too kindly.

Pure functions of the event list: no database, no line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# How bad an ending is, best first: a job ends as the worst of its outcome and its decisions.
OUTCOME_RANK: Final = {"done": 0, "rejected": 1, "failed": 2, "aborted": 3}
DECISION_KINDS: Final = frozenset({"rejected", "fault", "abort"})


@dataclass(frozen=True, slots=True)
class Decisions:
    """The decisions on record for one job, in the order they were taken."""

    rejected: Mapping[str, Any] | None = None  # the rejection's detail: why, and where the electrode was
    fault: Mapping[str, Any] | None = None  # the last fault no rejection decided (the run was held on it)
    aborted: str | None = None  # why, when an abort is on record

    @property
    def floor(self) -> str:
        """The best outcome the job can still end with."""
        if self.aborted is not None:
            return "aborted"
        if self.rejected is not None:
            return "rejected"
        return "done"

    @property
    def any(self) -> bool:
        return self.rejected is not None or self.fault is not None or self.aborted is not None


def decisions(events: Iterable[Mapping[str, Any]]) -> Decisions:
    """Fold a job's events (oldest first, as `BatchStore.events` returns them) into its decisions."""
    rejected: Mapping[str, Any] | None = None
    fault: Mapping[str, Any] | None = None
    aborted: str | None = None
    for event in events:
        kind, detail = event.get("kind"), event.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        if kind == "rejected":
            rejected = rejected or detail
            fault = None  # the fault that led here is decided: the reject path runs
        elif kind == "fault":
            fault = detail
        elif kind == "abort" and aborted is None:
            aborted = str(detail.get("why", "aborted"))
    return Decisions(rejected, fault, aborted)


def worst(*outcomes: str) -> str:
    """The worst of these outcomes (an unknown one counts as failed: never as done)."""
    return max(outcomes, key=lambda o: OUTCOME_RANK.get(o, OUTCOME_RANK["failed"]))


def record_findings(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every decision and interruption on the record, in words, for a certificate to list."""
    found: list[str] = []
    for event in events:
        kind, detail = event.get("kind"), event.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        if kind == "rejected":
            where = f" in {detail['from']}" if detail.get("from") else ""
            found.append(
                f"rejected{where}: {detail.get('why') or detail.get('phase') or 'no reason recorded'}"
            )
        elif kind == "fault":
            found.append(f"fault in {detail.get('phase', '?')}: {detail.get('error', '?')}")
        elif kind == "abort":
            found.append(f"aborted: {detail.get('why', '?')}")
        elif kind == "partial_layer":
            found.append(
                f"interrupted layer {detail.get('layer', '?')}: {detail.get('thickness_nm', '?')} nm "
                f"of {detail.get('target_nm', '?')} nm measured"
            )
        elif kind == "person_needed":
            found.append(f"stopped for a person: {detail.get('why', '?')}")
    return found
