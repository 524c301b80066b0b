"""The one test rig of the production sequence: a line configuration with its own database, the
simulated line it runs on (over its real protocols, dry Ar in every space), the batch runner with a
simulated operator, and the records read back as a maintenance engineer would.

Every production test file builds on it, so a change in how a batch is started (the schema migrated
first, every recipe held against the line) is made once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from controller.config.line_config import LineConfig, load_line_config
from controller.historian.recovery import RecoveredInventory
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.line.ledger import ExposureRecord
from controller.reports.gather import gather_report
from controller.reports.record import RunReport
from controller.service.batch_run import run_batch, simulated_plan
from sequences.batch import BatchResult
from sequences.batch_queue import load_queue
from sequences.batch_store import BatchStore, JobRow
from sequences.operator_desk import OperatorDesk, Request
from sequences.plant_clock import PlantClock
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock

ROOT = Path(__file__).parents[2]
LINES = ROOT / "deploy" / "lines"
DRY_S = 7 * 24 * 3600.0  # the line has been dry for a week: its walls give off little water

# 50 nm of electrolyte on lithium foil at room temperature: the smallest job that runs every phase
THIN = """
name = "thin"
description = "50 nm electrolyte on lithium foil"
[base]
material = "Li/Cu"
thickness_um = 60.0
[[targets]]
id = "T1"
material = "57Li2S-38SiS2-5Li3PO4"
[[steps]]
kind = "deposit"
layer = "electrolyte"
method = "sputtering"
target = "T1"
thickness_um = 0.05
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
"""

PromptAction = Callable[[Request], None]


def line_config(folder: Path, line_file: Path | None = None) -> LineConfig:
    """A shipped line (the embedded standard line by default) with its database in `folder`."""
    base = load_line_config(line_file)
    database = dataclasses.replace(base.database, url=f"sqlite:///{folder / 'line.db'}")
    return dataclasses.replace(base, database=database)


@dataclasses.dataclass
class Rig:
    config: LineConfig
    folder: Path
    speed: float = 1000.0
    recipes: dict[str, str] = dataclasses.field(default_factory=dict)  # file name -> text, beside the queue
    sim: SimLine | None = None
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # called when the line asks for glove work whose key ends with the given name: a test acts at a
    # known point of the sequence (the job waits on the prompt), never on a race with wall time
    on_prompt: dict[str, PromptAction] = dataclasses.field(default_factory=dict)
    # called on every prompt, before `on_prompt`
    listeners: list[PromptAction] = dataclasses.field(default_factory=list)
    # the simulator's clock, read by the controller too: a loaded test machine slows both together
    virtual: VirtualClock = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.virtual = VirtualClock(self.speed)

    @property
    def clock(self) -> PlantClock:
        return PlantClock(self.speed, source=self.virtual.now_s)

    def line(self) -> Callable[[], AbstractAsyncContextManager[LineConfig]]:
        """The simulated line a batch runs on: started by the batch, dry Ar at atmosphere everywhere."""

        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[LineConfig]:
            initial = {s.name: InitialAtmosphere("ar", 101_700.0, DRY_S) for s in self.config.spaces}
            async with SimLine(self.config, speed=self.speed, initial=initial, clock=self.virtual) as sim:
                self.sim = sim
                self.started.set()
                try:
                    yield sim.simulated_config()
                finally:
                    self.sim = None

        return factory

    def file(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return path

    def queue(self, jobs: str, name: str = "queue.toml") -> Path:
        """A queue file next to the rig's recipes (`thin.toml` is always there)."""
        if not (self.folder / "thin.toml").exists():
            self.file("thin.toml", THIN)
        for file, text in self.recipes.items():
            self.file(file, text)
        return self.file(name, jobs)

    def desk(self, *, simulated: bool = True) -> OperatorDesk:
        """The operator: a simulated one doing each glove work in 60 plant seconds, or nobody."""
        desk = OperatorDesk(clock=self.clock, simulated_glove_work_s=60.0 if simulated else None)
        desk.listeners.append(self._prompted)
        return desk

    async def run(
        self,
        queue: Path,
        out: io.StringIO | None = None,
        *,
        desk: OperatorDesk | None = None,
        api_listener: socket.socket | None = None,
    ) -> BatchResult:
        """Run `queue` on a fresh simulated line; every recipe is held against the line first."""
        await upgrade(self.config.database.url)  # a loaded machine migrating mid-start locks SQLite
        return await run_batch(
            self.config,
            load_queue(queue, line=self.config),
            self.line(),
            clock=self.clock,
            desk=desk or self.desk(),
            out=out or io.StringIO(),
            plan=simulated_plan(self.config),
            api_listener=api_listener,
        )

    def _prompted(self, request: Request) -> None:
        for listener in self.listeners:
            listener(request)
        action = self.on_prompt.pop(request.key.rsplit(":", 1)[-1], None)
        if action is not None:
            action(request)

    async def events(self, job: JobRow) -> list[dict[str, object]]:
        async with BatchStore(self.config.database.url, line=self.config.name) as store:
            return await store.events(job.id)

    async def records(self, item: str) -> tuple[ExposureRecord | None, RecoveredInventory]:
        """The item's exposure record and the line's inventory, from the historian."""
        historian = Historian(
            self.config.database.url, line=self.config.name, spill_dir=self.folder / "spill"
        )
        await historian.start()
        try:
            return await historian.exposure_record(item), await historian.inventory()
        finally:
            await historian.stop()

    async def exposure_record(self, item: str) -> ExposureRecord | None:
        record, _inventory = await self.records(item)
        return record

    async def certificate(self, run: str) -> RunReport:
        """The certificate of a job or batch, gathered from the records as `depline report` does."""
        async with Historian.reader(self.config.database.url, line=self.config.name) as historian:
            return await gather_report(historian, self.config, run)

    async def batches(self) -> list[str]:
        """The batch ids the rig's database holds, oldest first (read with plain SQL)."""
        db = Path(self.config.database.url.removeprefix("sqlite:///"))

        def read() -> list[str]:
            with sqlite3.connect(db) as conn:
                return [r[0] for r in conn.execute("SELECT id FROM batches ORDER BY created_at")]

        return await asyncio.to_thread(read)

    async def jobs(self, batch_id: str) -> list[JobRow]:
        async with BatchStore(self.config.database.url, line=self.config.name) as store:
            return await store.jobs(batch_id)


def rig_on(line_file: str | None, folder: Path, *, speed: float = 500.0, **recipes: str) -> Rig:
    """A rig on a shipped line (`None`: the embedded standard line) with its own SQLite database;
    `recipes` are written beside the queue (keyword: the file's stem)."""
    config = line_config(folder, None if line_file is None else LINES / line_file)
    return Rig(config, folder, speed, {f"{stem}.toml": text for stem, text in recipes.items()})


def kinds(events: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    """The details of the events of one kind, oldest first."""
    return [e["detail"] for e in events if e["kind"] == kind]  # type: ignore[misc]
