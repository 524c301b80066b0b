"""`depline demo`: the main job on the embedded defaults — a three-job batch on the simulated line.

The simulated standard line runs at high speed over its real wire protocols (pseudo-terminals, Modbus
TCP), the controller records into SQLite, and the API is served on 127.0.0.1 while the batch runs.
The jobs come from the shipped recipes (`sequences/queues/demo.toml`): every door, valve, source and
move goes through the command gate, a simulated operator answers the glove-work prompts (recorded as
simulated), and the run ends with the batch summary and every electrode's exposure record.

This module and `controller.cli` are the only parts of `controller` that may start the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from controller.config.line_config import LineConfig
from controller.config.secrets import mask_secrets
from controller.service.batch_run import run_batch, simulated_plan
from controller.service.line_service import PortInUse, bind_listener, serve_line, stop_on_signals
from sequences.batch_queue import load_queue
from sequences.operator_desk import OperatorDesk
from sequences.plant_clock import PlantClock
from sim_hardware.faults import load_scenario, scenario_running
from sim_hardware.line import InitialAtmosphere, SimLine
from sim_hardware.plant import VirtualClock

SIMULATED_GLOVE_WORK_S = 120.0  # plant seconds a simulated operator takes for each glove-work prompt
KEPT_DRY_S = 7 * 24 * 3600.0  # the line was left argon-filled and dry, as a plant keeps it


def demo_queue_path() -> Path:
    return Path(str(resources.files("sequences").joinpath("queues", "demo.toml")))


class SimulatedLine:
    """The simulated line as the batch runner takes it: called, an async context that starts it and
    yields its endpoints' config. `clock` is the controller's plant clock on the simulator's own virtual
    clock, so the controller's plant-time deadlines follow the plant when a busy host slows it down.

    `scenario` is the simulator's fault-scenario file (times in plant seconds from the line's start),
    so a fault can be rehearsed at speed from the command line; a bad file fails before the line starts.
    """

    def __init__(self, config: LineConfig, speed: float, scenario: str | None = None) -> None:
        over_room_pa = config.limits.room_pressure_pa + 300.0  # a glovebox runs a little above the room
        self.config = config
        self.speed = speed
        self.scenario = scenario
        self.initial = {s.name: InitialAtmosphere("ar", over_room_pa, KEPT_DRY_S) for s in config.spaces}
        self.virtual = VirtualClock(speed)
        self.clock = PlantClock(speed, source=self.virtual.now_s)
        if scenario is not None:  # checked before anything runs
            load_scenario(scenario, SimLine(config, speed=speed, initial=self.initial))

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[LineConfig]:
        simulated = SimLine(self.config, speed=self.speed, initial=self.initial, clock=self.virtual)
        events = load_scenario(self.scenario, simulated) if self.scenario is not None else []
        async with simulated, scenario_running(simulated, events):
            yield simulated.simulated_config()


def _api_listener(config: LineConfig) -> socket.socket:
    """The configured HMI address, or a free port beside it when that one is taken (a dev machine)."""
    try:
        return bind_listener(config.hmi.host, config.hmi.port)
    except PortInUse:  # the demo is a convenience: any free port will do, and the banner prints it
        return bind_listener(config.hmi.host, 0)


async def run_demo(
    config: LineConfig, *, speed: float, queue_path: Path | None = None, scenario: str | None = None
) -> int:
    queue = load_queue(queue_path or demo_queue_path(), line=config)
    line = SimulatedLine(config, speed, scenario)
    clock = line.clock
    desk = OperatorDesk(clock=clock, simulated_glove_work_s=SIMULATED_GLOVE_WORK_S)
    print(
        f"depline demo: line {config.name!r} simulated at {speed:g}x over its real protocols; "
        f"{len(queue.jobs)} jobs from {queue.path}; records in {mask_secrets(config.database.url)}; "
        "a simulated operator answers the glove-work prompts"
    )
    listener = _api_listener(config)  # names host and port when it cannot
    try:
        result = await run_batch(
            config,
            queue,
            line,
            clock=clock,
            desk=desk,
            api_listener=listener,
            user="demo",
            plan=simulated_plan(config),
        )
    finally:
        listener.close()
    return result.exit_code


async def serve_demo(config: LineConfig, *, speed: float, scenario: str | None = None) -> int:
    """The demo with a person at the HMI: the same simulated line, nothing started by itself.

    The operator opens the printed address, logs in, starts the demo queue from the run panel and
    answers every glove-work prompt there, until the last electrode is sealed and unloaded; the page
    then shows the end-of-run record. Serves until SIGINT/SIGTERM (exit 0)."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        listener = _api_listener(config)  # names host and port when it cannot

        def announce(url: str) -> None:
            print(
                f"depline demo: line {config.name!r} simulated at {speed:g}x; the HMI is at {url}/ -- log in "
                "(operator op1 / op1-demo), start the queue 'demo' from the Run panel and answer the prompts "
                "there; Ctrl-C ends the demo",
                flush=True,
            )

        try:
            simulated = SimulatedLine(config, speed, scenario)
            async with simulated() as line:
                await serve_line(
                    line, listener, stop, announce=announce, plan=simulated_plan(line), clock=simulated.clock
                )
        finally:
            listener.close()
    return 0
