"""`depline sim`: serve the simulated line until interrupted, announcing every endpoint on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys

from controller.config.line_config import LineConfig
from sim_hardware.faults import load_scenario, scenario_running
from sim_hardware.line import SimLine

log = logging.getLogger(__name__)
HEALTH_CHECK_S = 1.0


async def serve_line(config: LineConfig, *, speed: float, pace: bool, scenario: str | None) -> None:
    sim = SimLine(config, speed=speed, pace=pace)
    events = load_scenario(scenario, sim) if scenario else []  # a bad scenario fails before anything starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        for record in sim.endpoint_records():
            sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
        async with scenario_running(sim, events) as scenario_task:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HEALTH_CHECK_S)
                sim.runner.check()  # a plant that raised stops the simulator loudly
                if scenario_task.done() and not scenario_task.cancelled():
                    scenario_task.result()  # surfaces a failed injection
