"""What a certificate shows, gathered once (`controller.reports.gather`) into frozen dataclasses.

Every rendering (text, HTML, PDF) is a function of one `RunReport`: what the records said is read
once, so the three outputs cannot disagree and none of them touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from controller.line.ledger import LedgerEntry, Stay
from controller.reports.layers import Layer

Quantity = Literal["pressure", "frost_point", "substrate_temp"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """An operator confirmation the job waited for (a "confirm" job event)."""

    prompt: str
    user: str
    via: str  # where it was confirmed: "terminal", "hmi", ...
    asked_at: float | None
    confirmed_at: float | None
    waited_s: float | None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of the job's events: its own checkpoints and state changes merged in time with what the
    line recorded meanwhile (alarms with who acknowledged them, refused and safe-action commands,
    station transitions, mode changes), as `depline timeline` words them."""

    ts: float
    kind: str
    text: str
    source: str = "job"  # job, alarm, command, station, mode
    first_out: bool = False  # the alarm the recorder marked as the first of its cascade


@dataclass(frozen=True, slots=True)
class Handling:
    """A done registration, move or seal change naming the item (what a container's record is)."""

    ts: float
    user: str
    what: str


@dataclass(frozen=True, slots=True)
class Episode:
    """A time the item was out of a sealed container in an atmosphere not shown to be inert."""

    since_ts: float
    until_ts: float
    space: str
    atmosphere: str
    evidence: dict[str, float | str]
    open_at_end: bool  # still so at the item's last entry: counted to the end of the report's window

    @property
    def duration_s(self) -> float:
        return max(0.0, self.until_ts - self.since_ts)


@dataclass(frozen=True, slots=True)
class ItemReport:
    role: str  # "electrode (base)", "container in", "container out", "target T1"
    item: str
    kind: str | None  # None: the item was never registered
    material: str | None
    air_sensitive: bool
    entries: tuple[LedgerEntry, ...]
    handling: tuple[Handling, ...]
    path: tuple[Stay, ...]
    exposed_s: float  # out of a sealed container, wherever
    worst_frost_point_c: float | None
    worst_o2_ppmv: float | None
    episodes: tuple[Episode, ...]
    verdict: str
    good: bool

    @property
    def non_inert_s(self) -> float:
        return sum(e.duration_s for e in self.episodes)


@dataclass(frozen=True, slots=True)
class Series:
    """One channel's curve: (time, min, max) per bucket, oldest first."""

    space: str
    quantity: Quantity
    label: str
    points: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True, slots=True)
class Move:
    ts: float
    space: str  # where the item went


@dataclass(frozen=True, slots=True)
class Plot:
    item: str
    since_ts: float
    until_ts: float
    spaces: tuple[str, ...]
    series: tuple[Series, ...]
    moves: tuple[Move, ...]
    # set where the axis is not wall time (a comparison of two jobs plots plant time since a phase began)
    time_caption: str = ""


@dataclass(frozen=True, slots=True)
class JobReport:
    id: str
    batch_id: str | None
    position: int
    name: str
    recipe_path: str
    state: str
    outcome: str | None
    message: str
    started_at: float | None
    ended_at: float | None
    confirmations: tuple[Confirmation, ...]
    events: tuple[JobEvent, ...]
    items: tuple[ItemReport, ...]
    plot: Plot | None
    # every rejection, fault, abort, interrupted layer and stop-for-a-person in the job's own events
    # (`sequences.job_record.record_findings`): any one of them withholds the certificate, whatever
    # the outcome field says
    findings: tuple[str, ...] = ()
    layers: tuple[Layer, ...] = ()  # what was deposited, planned against measured (reports.layers)

    @property
    def good(self) -> bool:
        return self.outcome == "done" and not self.findings and all(i.good for i in self.items)

    @property
    def verdict(self) -> str:
        reasons = [f"{i.item}: {i.verdict}" for i in self.items if not i.good]
        reasons += [f"the record says {finding}" for finding in self.findings]
        if self.outcome != "done":
            reasons.insert(0, f"the job is {self.outcome or 'not finished'}")
        if reasons:
            return "NOT CERTIFIED: " + "; ".join(reasons)
        return "certified: no air-sensitive item of this job was exposed to a non-inert atmosphere"


@dataclass(frozen=True, slots=True)
class RunReport:
    run: str
    line: str
    database: str
    generated_at: float
    batch: dict[str, Any] | None
    jobs: tuple[JobReport, ...] = field(default=())
    # the line says `[line] not_for_production = true`: its limits may be looser than the method's,
    # and every form of the certificate says so at its top
    not_for_production: bool = False

    @property
    def production_note(self) -> str | None:
        if not self.not_for_production:
            return None
        return (
            f"NOT FOR PRODUCTION: line {self.line} is configured not_for_production = true; its atmosphere "
            "limits may be looser than the production method's (frost point -50 °C, O2 10 ppm)"
        )


__all__ = [
    "Confirmation",
    "Episode",
    "Handling",
    "ItemReport",
    "JobEvent",
    "JobReport",
    "Move",
    "Plot",
    "Quantity",
    "RunReport",
    "Series",
]
