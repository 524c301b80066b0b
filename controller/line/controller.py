"""The controller assembled from a line configuration: drivers, poller, model, gate, supervisor.

This is what `depline run` (and the tests and benchmarks) start. Everything that moves hardware goes
through `gate.submit`; everything that watches goes through the poller's fan-out.
"""

from __future__ import annotations

import time
from types import TracebackType

from controller.config.line_config import LineConfig
from controller.line.actuators import Actuators
from controller.line.alarms import AlarmBoard
from controller.line.devices import build_line_devices
from controller.line.gate import CommandGate
from controller.line.ledger import ExposureLedger
from controller.line.model import LineModel
from controller.line.modes import ModeBoard
from controller.line.poller import Poller, PollPlan
from controller.line.supervisor import Supervisor


class LineController:
    def __init__(
        self, config: LineConfig, *, plan: PollPlan | None = None, travel_timeout_s: float = 20.0
    ) -> None:
        self.config = config
        self.devices = build_line_devices(config)
        self.model = LineModel(config)
        self.poller = Poller(config, self.devices, plan=plan)
        self.modes = ModeBoard()
        self.gate = CommandGate(
            self.model, Actuators(config, self.devices, self.model), self.poller.snapshot, self.modes
        )
        self.alarms = AlarmBoard([])
        self.ledger = ExposureLedger()
        self.supervisor = Supervisor(
            self.gate, self.poller, self.alarms, self.ledger, travel_timeout_s=travel_timeout_s
        )
        # wall time this controller began reading the line: every recorded reading before it is an
        # earlier process's (what a restart reads of an interrupted run ends here)
        self.started_ts: float | None = None

    async def start(self) -> None:
        self.started_ts = time.time()
        await self.poller.start()
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()
        await self.poller.stop()
        await self.devices.close()

    async def __aenter__(self) -> LineController:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
