"""bench.overnight: an unattended overnight batch on the simulated line, over the real protocols.

Twenty production jobs (load, purge, transfer, pump-down, deposition, heat treatment, transfer out,
seal, unload — every command through the gate, every reading over a pty or a Modbus TCP socket, the
historian writing SQLite) run through `run_batch`, the code path of `depline batch`. Measured:

- wall time and plant time (the simulated plant's own clock from the first to the last job), and the
  speed-up over real time, plant / wall — the baseline is the real line, which takes the plant time;
- what the speed costs in fidelity: every job's outcome, and the deposited thickness the QCM
  reports against the recipe's (a controller that cannot keep up at high speed overshoots films).

The jobs alternate between two recipes that use the typical ends of the process windows (DESIGN.md
§2): 0.2 µm of electrolyte at room temperature followed by a heat treatment, and 0.1 µm deposited on a
heated substrate. Usage: `python -m bench.overnight [--speed 1000] [--jobs 20] [--write-docs]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bench.report import add_output_options, machine, parse_args, percentile, publish, update_section
from controller.config.line_config import LineConfig, load_line_config
from controller.service.batch_run import run_batch, simulated_plan
from sequences.batch_queue import load_queue
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock

DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
GLOVE_WORK_S = 120.0
DRY_S = 7 * 24 * 3600.0
TARGET_SPEEDUP = 300.0

RT_THEN_ANNEAL = """
name = "overnight-rt-then-anneal"
description = "0.2 um LiSiPO at room temperature on Li foil, then 10 min at 130 degC in place"
gas = "Ar"
gas_purity_percent = 99.99
max_frost_point_c = -50.0
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
thickness_um = 0.2
substrate_temp_c = 25.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
[[steps]]
kind = "anneal"
temp_c = 130.0
duration_s = 600.0
"""

HEATED = """
name = "overnight-heated"
description = "0.1 um LiSiPO sputtered on Li foil held at 80 degC"
gas = "Ar"
gas_purity_percent = 99.99
max_frost_point_c = -50.0
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
thickness_um = 0.1
substrate_temp_c = 80.0
base_pressure_pa = 1.0e-4
process_pressure_pa = 0.5
"""


# What each phase takes on a real line run by hand at 1x, in plant minutes, and why (estimates from
# devices.md §10 and the recipes; glove work is the simulated operator's 2 min per prompt).
REAL_LINE_MIN: dict[str, tuple[float, float, str]] = {
    "load": (2, 4, "glove work 2 min, outer door travel"),
    "purge_inlet": (6, 15, "3 × (30 L to 20 Pa on 10 m³/h: 1.5–3 min; Ar fill 10–60 s) (§10)"),
    "prepare_process": (1, 5, "back-fill 100 L with Ar"),
    "open_containers": (2, 3, "glove work"),
    "transfer_in": (2, 4, "gate travel and glove work"),
    "pump_down": (5, 60, "rough 1–3 min, turbo run-up 2–5 min (§10), 1/t tail: seconds dry, hours wet"),
    "deposit": (10, 25, "0.1–0.2 µm at 0.2–0.4 nm/s RF, heat-up, the QCM's film set-up"),
    "anneal": (20, 40, "10 min at 130 °C, heat-up and cool-down in Ar"),
    "fill_process": (30, 50, "Ar back-fill, turbo coast-down below 50 Hz (no foreline valve)"),
    "prepare_outlet": (2, 4, "glove work"),
    "purge_outlet": (6, 15, "as the inlet"),
    "transfer_out": (2, 4, "gate travel and glove work"),
    "seal": (2, 3, "glove work"),
    "unload": (2, 4, "glove work, outer door travel"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class OvernightResult:
    speed: float
    jobs: int
    done: int
    outcomes: dict[str, int]
    wall_s: float
    plant_s: float
    job_wall_s: list[float]
    job_plant_s: list[float]
    thickness_error_pct: list[float]  # QCM-reported vs recipe, per deposited layer
    never_exposed: int
    command: str
    phase_plant_s: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    phase_wall_s: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    isolated_at_pa: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    evacuate_to_pa: float = math.nan

    @property
    def speedup(self) -> float:
        return self.plant_s / self.wall_s


def write_queue(folder: Path, jobs: int) -> Path:
    (folder / "rt_then_anneal.toml").write_text(RT_THEN_ANNEAL, encoding="utf-8")
    (folder / "heated.toml").write_text(HEATED, encoding="utf-8")
    lines = ['name = "overnight"', 'on_failure = "skip"']
    for n in range(jobs):
        recipe = "rt_then_anneal.toml" if n % 2 == 0 else "heated.toml"
        lines += ["[[jobs]]", f'recipe = "{recipe}"']
    path = folder / "overnight.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ClockedLine:
    """The simulated line as `run_batch` takes it, remembering the plant clock it ran on."""

    def __init__(self, config: LineConfig, speed: float) -> None:
        self.config = config
        self.speed = speed
        self.virtual = VirtualClock(speed)
        self.clock = PlantClock(speed, source=self.virtual.now_s)  # the controller reads the simulator's
        self.plant_start_s = 0.0
        self.plant_end_s = 0.0
        self.isolated_at_pa: dict[str, list[float]] = {}

    def factory(self) -> Callable[[], AbstractAsyncContextManager[LineConfig]]:
        @contextlib.asynccontextmanager
        async def line() -> AsyncIterator[LineConfig]:
            initial = {s.name: InitialAtmosphere("ar", 101_700.0, DRY_S) for s in self.config.spaces}
            async with SimLine(self.config, speed=self.speed, initial=initial, clock=self.virtual) as sim:
                self.plant_start_s = sim.clock.now_s()
                try:
                    yield sim.simulated_config()
                finally:
                    self.plant_end_s = sim.clock.now_s()
                    self.isolated_at_pa = {
                        name: list(rough.isolated_at_pa) for name, rough in sim.plant.rough_lines.items()
                    }

        return line


def _phase_wall_s(conn: sqlite3.Connection) -> dict[str, list[float]]:
    """Wall seconds of every phase run (started to done), by phase kind ("deposit_1" -> "deposit")."""
    started: dict[tuple[str, str], float] = {}
    phases: dict[str, list[float]] = {}
    for ts, job, detail in conn.execute(
        "SELECT ts, job_id, detail FROM job_events WHERE kind = 'checkpoint' ORDER BY id"
    ):
        data = json.loads(detail)
        key = (job, data["phase"])
        if data["status"] == "started":
            started[key] = ts
        elif key in started:
            kind = data["phase"].rstrip("0123456789").rstrip("_")
            phases.setdefault(kind, []).append(ts - started.pop(key))
    return phases


def _job_figures(db: Path) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Per job: wall seconds; per deposited layer: QCM thickness error in % of the recipe's; per phase
    kind: wall seconds of each run of it."""
    with sqlite3.connect(db) as conn:
        walls = [
            e - s for s, e in conn.execute("SELECT started_at, ended_at FROM jobs WHERE ended_at IS NOT NULL")
        ]
        errors = []
        for (detail,) in conn.execute("SELECT detail FROM job_events WHERE kind = 'step_report'"):
            data = json.loads(detail)
            if data.get("step") == "deposit" and data.get("target_thickness_nm"):
                errors.append(100.0 * (data["thickness_nm"] / data["target_thickness_nm"] - 1.0))
        phases = _phase_wall_s(conn)
    return walls, errors, phases


async def run_bench(speed: float, jobs: int, *, command: str) -> OvernightResult:
    with tempfile.TemporaryDirectory(prefix="depline-overnight-") as tmp:
        folder = Path(tmp)
        base = load_line_config()
        config = dataclasses.replace(
            base, database=dataclasses.replace(base.database, url=f"sqlite:///{folder / 'line.db'}")
        )
        queue = load_queue(write_queue(folder, jobs))
        line = ClockedLine(config, speed)
        clock = line.clock
        desk = OperatorDesk(clock=clock, simulated_glove_work_s=GLOVE_WORK_S)
        out = io.StringIO()
        started = time.monotonic()
        result = await run_batch(
            config,
            queue,
            line.factory(),
            clock=clock,
            desk=desk,
            out=out,
            user="bench",
            plan=simulated_plan(config),
        )
        wall_s = time.monotonic() - started
        walls, errors, phases = await asyncio.to_thread(_job_figures, folder / "line.db")
    outcomes: dict[str, int] = {}
    for job in result.jobs:
        outcomes[job.outcome or "not run"] = outcomes.get(job.outcome or "not run", 0) + 1
    return OvernightResult(
        speed=speed,
        jobs=jobs,
        done=outcomes.get("done", 0),
        outcomes=outcomes,
        wall_s=wall_s,
        plant_s=line.plant_end_s - line.plant_start_s,
        job_wall_s=walls,
        job_plant_s=[w * speed for w in walls],
        thickness_error_pct=errors,
        phase_plant_s={k: [w * speed for w in v] for k, v in phases.items()},
        phase_wall_s=phases,
        isolated_at_pa=line.isolated_at_pa,
        evacuate_to_pa=config.sequence.purge_evacuate_to_pa,
        never_exposed=out.getvalue().count("never exposed to a non-inert atmosphere"),
        command=command,
    )


def render_markdown(r: OvernightResult) -> str:
    verdict = "meets" if r.speedup >= TARGET_SPEEDUP and r.done == r.jobs else "misses"
    errors = [abs(e) for e in r.thickness_error_pct] or [float("nan")]
    lines = [
        f"`{r.command}` — {machine('SQLite historian, simulated standard line over ptys and Modbus TCP')}",
        "",
        "| jobs | done | wall | plant time | speed-up (plant / wall) | job wall p50 / p90 | job plant p50 |"
        " QCM thickness error p50 / max | electrodes never exposed |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r.jobs} | {r.done} ({', '.join(f'{n} {o}' for o, n in sorted(r.outcomes.items()))}) "
        f"| {r.wall_s:.1f} s | {r.plant_s / 3600:.2f} h | **{r.speedup:.0f}×** "
        f"| {percentile(r.job_wall_s, 50):.1f} / {percentile(r.job_wall_s, 90):.1f} s "
        f"| {statistics.median(r.job_plant_s) / 3600:.2f} h "
        f"| {statistics.median(errors):.1f} / {max(errors):.1f} % | {r.never_exposed} / {r.jobs} |",
        "",
        f"Target ≥ {TARGET_SPEEDUP:.0f}× with every job done: **{verdict}** it at a nominal plant speed of "
        f"{r.speed:g}×. The baseline is real time: the same batch on the real line takes the plant time.",
        "",
        "Where a job's time goes, per phase run (from the job's checkpoints; plant = wall × speed), beside"
        " what the phase takes on a real line run at 1× (estimates, `bench.overnight.REAL_LINE_MIN`):",
        "",
        "| phase | runs | plant min p50 (min–max) | wall s p50 | real line, min | what sets it |",
        "|---|---|---|---|---|---|",
        *(_phase_row(kind, r) for kind in r.phase_plant_s),
        "",
        f"Where the evacuations really stopped (the plant's pressure when each rough valve was told to shut;"
        f" the purge setpoint is {r.evacuate_to_pa:g} Pa):",
        "",
        "| rough line | valve closings | p50 Pa | min–max Pa |",
        "|---|---|---|---|",
        *(
            f"| {name} | {len(v)} | {statistics.median(v):.3g} | {min(v):.3g}–{max(v):.3g} |"
            for name, v in r.isolated_at_pa.items()
            if v
        ),
        "",
    ]
    return "\n".join(lines)


def _phase_row(kind: str, r: OvernightResult) -> str:
    plant = [v / 60.0 for v in r.phase_plant_s[kind]]
    wall = r.phase_wall_s.get(kind, [])
    low, high, why = REAL_LINE_MIN.get(kind, (math.nan, math.nan, ""))
    return (
        f"| {kind} | {len(plant)} | {statistics.median(plant):.1f} ({min(plant):.1f}–{max(plant):.1f}) "
        f"| {statistics.median(wall) if wall else math.nan:.2f} | {low:g}–{high:g} | {why} |"
    )


def update_docs(path: Path, figures: str) -> None:
    update_section(path, "overnight", figures)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.overnight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=1000.0, help="plant clock speed factor (default 1000)")
    parser.add_argument("--jobs", type=int, default=20, help="jobs in the batch (default 20)")
    add_output_options(parser, DOCS, quick_help="two jobs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(_parser(), args_list)
    jobs = 2 if args.quick else args.jobs
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    command = " ".join(["python -m bench.overnight", *args_list])
    result = asyncio.run(run_bench(args.speed, jobs, command=command))
    return publish(render_markdown(result), args, update_docs)


if __name__ == "__main__":
    sys.exit(main())
