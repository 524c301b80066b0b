"""One rig for the end-to-end sequence tests: a line configuration on the simulated plant (real ptys and
sockets), a queue run by the batch runner, and the records read back from the historian.

The production, reject-path and topology tests share it, so a change in how a line is stood up or a
batch is run is made once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from controller.config.line_config import LineConfig, load_line_config
from controller.historian.store import Historian
from controller.historian.upgrade import upgrade
from controller.line.ledger import ExposureRecord
from controller.service.batch_run import run_batch, simulated_plan
from sequences.batch import BatchResult
from sequences.batch_queue import load_queue
from sequences.batch_store import BatchStore, JobRow
from sequences.operator_desk import OperatorDesk, Request
from sequences.plant_clock import PlantClock
from sim_hardware.line import InitialAtmosphere, SimLine

SPEED = 500.0
DRY_S = 7 * 24 * 3600.0
LINES = Path(__file__).resolve().parents[2] / "deploy" / "lines"
PromptAction = Callable[[Request], None]
# a job of a few plant minutes: one thin electrolyte layer on lithium foil
THIN_ELECTROLYTE = """
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


@dataclasses.dataclass
class Rig:
    config: LineConfig
    folder: Path
    speed: float = SPEED
    recipes: dict[str, str] = dataclasses.field(default_factory=dict)  # file name -> text, beside the queue
    sim: SimLine | None = None
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # called when the line asks for glove work whose key ends with the given name: a test acts at a
    # known point of the sequence (the job waits on the prompt), never on a race with wall time
    on_prompt: dict[str, PromptAction] = dataclasses.field(default_factory=dict)

    @property
    def clock(self) -> PlantClock:
        return PlantClock(self.speed)

    def line(self) -> Callable[[], AbstractAsyncContextManager[LineConfig]]:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[LineConfig]:
            initial = {s.name: InitialAtmosphere("ar", 101_700.0, DRY_S) for s in self.config.spaces}
            async with SimLine(self.config, speed=self.speed, initial=initial) as sim:
                self.sim = sim
                self.started.set()
                try:
                    yield sim.simulated_config()
                finally:
                    self.sim = None

        return factory

    def queue(self, jobs: str, name: str = "queue.toml") -> Path:
        for file, text in self.recipes.items():
            (self.folder / file).write_text(text, encoding="utf-8")
        path = self.folder / name
        path.write_text(jobs, encoding="utf-8")
        return path

    async def run(self, queue: Path, out: io.StringIO | None = None) -> BatchResult:
        await upgrade(self.config.database.url)  # the schema first: migrating mid-start locks SQLite
        desk = OperatorDesk(clock=self.clock, simulated_glove_work_s=60.0)
        desk.listeners.append(self._prompted)
        return await run_batch(
            self.config,
            load_queue(queue, line=self.config),
            self.line(),
            clock=self.clock,
            desk=desk,
            out=out or io.StringIO(),
            plan=simulated_plan(self.config),
        )

    def _prompted(self, request: Request) -> None:
        action = self.on_prompt.pop(request.key.rsplit(":", 1)[-1], None)
        if action is not None:
            action(request)

    async def events(self, job: JobRow) -> list[dict[str, object]]:
        async with BatchStore(self.config.database.url, line=self.config.name) as store:
            return await store.events(job.id)

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

    async def exposure_record(self, item: str) -> ExposureRecord | None:
        spill = self.folder / "spill"
        historian = Historian(self.config.database.url, line=self.config.name, spill_dir=spill)
        await historian.start()
        try:
            return await historian.exposure_record(item)
        finally:
            await historian.stop()


def rig_on(line_file: str | None, folder: Path, *, speed: float = SPEED, **recipes: str) -> Rig:
    """A rig on a shipped line (`None`: the embedded standard line) with its own SQLite database;
    `recipes` are written beside the queue (keyword: the file's stem)."""
    base = load_line_config(None if line_file is None else LINES / line_file)
    database = dataclasses.replace(base.database, url=f"sqlite:///{folder / 'line.db'}")
    files = {f"{stem}.toml": text for stem, text in recipes.items()}
    return Rig(dataclasses.replace(base, database=database), folder, speed, files)
