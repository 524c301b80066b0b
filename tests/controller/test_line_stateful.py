"""Random operator commands, item moves and faults against the simulated line, invariants after every step.

The controller runs for real (poller, supervisor, gate, drivers over ptys and sockets); the plant is
the simulator. After every step the line is given a moment to react, then the invariants of DESIGN.md
§4 are checked on the *plant's* truth (what valves and doors really do, what the heater really holds),
and the ledger is checked to be complete. Commands alone must never expose an item: exposure may only
follow an injected fault, and then the ledger and an alarm must say so.

The unit mode is part of the game: batches take the line (production, owned by the batch), are held
and resumed, the line is switched between production, manual and maintenance, and manual commands
(HMI, CLI, MQTT origins, operator or engineer) arrive at any time. The machine plays the batch host's
part of the mode protocol (a batch takes production when it starts, lets go only when held, hands the
line back when it ends; `sequences.batch_host` has its own tests), so the gate is judged on a line whose
mode is changed under it. Whatever the steps, no manual command executes while a batch owns the line:
the gate refuses it with the mode's reason and the plant's actuators do not move.

CI runs the "ci" profile (≥ 500 steps); `HYPOTHESIS_PROFILE=long` runs ten times more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from controller.config.line_config import load_line_config
from controller.line.actions import (
    Command,
    MoveItem,
    SetContainer,
    SetGasFlow,
    SetHeater,
    SetPort,
    SetPump,
    SetSource,
    SetTurbo,
    SetValve,
)
from controller.line.atmosphere import Atmosphere
from controller.line.controller import LineController
from controller.line.gate import GateRecord
from controller.line.items import ItemKind, materials_in, space_of
from controller.line.modes import MANUAL_ORIGINS, TRANSITIONS, ModeRefused, ModeState, UnitMode
from controller.line.poller import PollPlan, Priority
from sim_hardware.faults import Fault, inject
from sim_hardware.line import InitialAtmosphere, SimLine

T = TypeVar("T")
SPACES = ["inlet", "process", "outlet"]
PORTS = ["inlet.outer", "inlet_gate", "outlet_gate", "outlet.outer"]
SETTLE_S = 0.25  # > 2 interlock poll periods: the supervisor has seen the step's consequences
DRY = 24 * 3600.0

actions = st.one_of(
    st.builds(
        SetValve,
        st.sampled_from(SPACES),
        st.sampled_from(["rough", "vent", "gas_fill", "turbo_gate"]),
        st.booleans(),
    ),
    st.builds(SetPort, st.sampled_from(PORTS), st.booleans()),
    st.builds(SetPump, st.sampled_from(SPACES), st.booleans()),
    st.builds(SetTurbo, st.just("process"), st.booleans()),
    st.builds(SetGasFlow, st.just("process"), st.sampled_from([0.0, 5.0, 20.0])),
    st.builds(
        SetHeater,
        st.just("process"),
        st.just("substrate"),
        st.sampled_from([20.0, 120.0, 170.0, 190.0, 240.0]),
    ),
    st.builds(
        SetSource,
        st.just("process"),
        st.sampled_from(["dc_sputter", "evaporation"]),
        st.booleans(),
        st.just(100.0),
    ),
    st.builds(
        MoveItem, st.sampled_from(["F1", "T1", "C1", "C2"]), st.sampled_from([*SPACES, "C1", "C2", "C3"])
    ),
    st.builds(SetContainer, st.sampled_from(["C1", "C2", "C3"]), st.booleans()),
)
faults = st.one_of(
    st.builds(
        Fault, st.just("leak"), space=st.sampled_from(SPACES), rate_pa_m3_s=st.sampled_from([1e-3, 3e-2])
    ),
    st.builds(
        Fault,
        st.just("no_reply"),
        device=st.sampled_from(["inlet_dewpoint", "antechamber_gauges", "inlet_glovebox", "remote_io"]),
    ),
    st.builds(
        Fault, st.just("stuck_sensor"), device=st.just("antechamber_gauges"), channel=st.just("pressure_ch1")
    ),
    st.builds(
        Fault,
        st.just("offset_sensor"),
        device=st.just("inlet_dewpoint"),
        channel=st.just("frost_point"),
        offset=st.just(40.0),
    ),
    st.builds(Fault, st.just("stuck_actuator"), actuator=st.sampled_from(["inlet_gate", "outlet_gate"])),
    st.builds(Fault, st.just("gas_supply_empty")),
    st.builds(Fault, st.just("pump_failure"), pump=st.sampled_from(["inlet.rough", "process.backing"])),
)


ManualOrigin = Literal["hmi", "cli", "mqtt"]
manual_origins: st.SearchStrategy[ManualOrigin] = st.sampled_from(["hmi", "cli", "mqtt"])
roles = st.sampled_from(["operator", "engineer"])


def _fault_spaces(fault: Fault) -> set[str]:
    """Spaces whose atmosphere (or its evidence) a fault can spoil."""
    by_device = {
        "inlet_dewpoint": {"inlet"},
        "inlet_glovebox": {"inlet"},
        "antechamber_gauges": {"inlet", "outlet"},
    }
    if fault.kind == "leak":
        return {fault.space}
    if (
        fault.kind in ("gas_supply_empty", "pump_failure", "stuck_actuator", "no_reply")
        and fault.device == "remote_io"
    ):
        return set(SPACES)
    if fault.kind in ("gas_supply_empty", "stuck_actuator"):
        return set(SPACES)
    return by_device.get(fault.device, set())


class LineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.undo: list[Callable[[], None]] = []
        self.faulted: set[str] = set()
        self.io_faulted = False
        self.batch: str | None = None  # the batch that holds the line's production (held or not)
        self.held = False
        self.batches = 0
        self.ending = False
        self.judged: list[tuple[GateRecord, ModeState]] = []  # every gate record, with the mode it met
        self.sim, self.ctl = self.run(self._start(), 30.0)
        self.ctl.modes.guards.append(self._batch_guard)
        self.ctl.gate.subscribe(lambda record: self.judged.append((record, self.ctl.modes.current)))

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout_s))

    async def _start(self) -> tuple[SimLine, LineController]:
        base = load_line_config()
        base = dataclasses.replace(base, limits=dataclasses.replace(base.limits, stale_after_s=1.0))
        initial = {
            "inlet": InitialAtmosphere("ar", 101_800.0, DRY),
            "outlet": InitialAtmosphere("ar", 101_800.0, DRY),
            "process": InitialAtmosphere("ar", 1e-3, DRY),
        }
        sim = SimLine(base, speed=200.0, initial=initial)
        await sim.start()
        config = sim.simulated_config()
        plan = PollPlan.for_line(config, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.3})
        ctl = LineController(config, plan=plan, travel_timeout_s=2.0)
        await ctl.start()
        ctl.model.register("C1", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
        ctl.model.register("F1", ItemKind.BASE_MATERIAL, "Li/Cu", "C1")
        ctl.model.register("C2", ItemKind.CONTAINER, "SUS", "inlet", sealed=True)
        ctl.model.register("T1", ItemKind.TARGET, "57Li2S-38SiS2-5Li3PO4", "C2")
        ctl.model.register("C3", ItemKind.CONTAINER, "SUS", "outlet", sealed=False)
        # first readings in and the supervisor armed, so the ledger has seen every item (on a loaded
        # machine a fixed pause was not always enough)
        while not (ctl.supervisor.ready() and ctl.ledger.complete(ctl.gate.state()) == []):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return sim, ctl

    def teardown(self) -> None:
        async def stop() -> None:
            await self.ctl.stop()
            await self.sim.stop()

        try:
            self.run(stop(), 30.0)
        finally:
            self.loop.close()

    def settle(self, seconds: float = SETTLE_S) -> None:
        self.run(asyncio.sleep(seconds))

    @rule(action=actions)
    def command(self, action: Any) -> None:
        self.run(self.ctl.gate.submit(Command(action, "property", "test")))
        self.settle()

    # -- the unit mode: batches own the line, people switch it, manual commands arrive ----------------

    def _batch_guard(self, now: ModeState, to: UnitMode, owner: str | None) -> str | None:
        """The batch host's rule: a running batch lets go of production only when held (or ending)."""
        if self.batch is None or self.ending:
            return None
        if now.mode is UnitMode.PRODUCTION and to is not UnitMode.PRODUCTION and not self.held:
            return f"batch {self.batch} is running: hold it first"
        if to is UnitMode.PRODUCTION and owner != self.batch:
            return f"batch {self.batch} holds the line's production"
        return None

    @initialize(action=actions, origin=manual_origins, role=roles)
    def a_batch_runs(self, action: Any, origin: ManualOrigin, role: str) -> None:
        """Every example starts with a batch owning the line: the rules then hold, switch and end it."""
        self.start_batch(action, origin, role)

    @precondition(lambda self: self.batch is None and self.ctl.modes.current.mode is UnitMode.MANUAL)
    @rule(action=actions, origin=manual_origins, role=roles)
    def start_batch(self, action: Any, origin: ManualOrigin, role: str) -> None:
        """A batch takes the line, and somebody tries a manual command at once (the moment it matters)."""
        self.batches += 1
        self.batch, self.held = f"B{self.batches}", False
        state = self.ctl.modes.change(UnitMode.PRODUCTION, "op1", "queue started", owner=self.batch)
        assert (state.mode, state.owner) == (UnitMode.PRODUCTION, self.batch)
        self.manual_command(action, origin, role)

    @precondition(lambda self: self.batch is not None and not self.held)
    @rule()
    def hold_batch(self) -> None:
        self.held = True

    @precondition(lambda self: self.batch is not None and self.held)
    @rule()
    def resume_batch(self) -> None:
        """Resuming needs the line back in production, owned by the batch (the host refuses otherwise)."""
        if self.ctl.modes.current.mode is UnitMode.PRODUCTION and self.ctl.modes.current.owner == self.batch:
            self.held = False

    @precondition(lambda self: self.batch is not None)
    @rule()
    def end_batch(self) -> None:
        """The batch ended (done, aborted): the line is handed back to manual, still supervised."""
        self.ending = True
        try:
            if self.ctl.modes.current.mode is UnitMode.PRODUCTION:
                self.ctl.modes.change(UnitMode.MANUAL, "op1", f"batch {self.batch} ended")
        finally:
            self.ending = False
        self.batch, self.held = None, False

    @rule(to=st.sampled_from(list(UnitMode)), action=actions, origin=manual_origins, role=roles)
    def switch_mode(self, to: UnitMode, action: Any, origin: ManualOrigin, role: str) -> None:
        """A switch (allowed or refused as the rules say), then a manual command in whatever mode it left."""
        self._switch(to)
        self.manual_command(action, origin, role)

    def _switch(self, to: UnitMode) -> None:
        now = self.ctl.modes.current
        owner = self.batch if to is UnitMode.PRODUCTION else None
        allowed = (to is now.mode and owner == now.owner) or (
            (to is now.mode or to in TRANSITIONS[now.mode])
            and (to is not UnitMode.PRODUCTION or self.batch is not None)
            and (now.mode is not UnitMode.PRODUCTION or to is UnitMode.PRODUCTION or self.held)
        )
        why = ""
        try:
            self.ctl.modes.change(to, "eng1", "the test switches", owner=owner)
        except ModeRefused as refused:
            why = str(refused)
        if why:
            assert not allowed, f"{now.words()} -> {to.value} refused: {why}"
            assert self.ctl.modes.current == now
            return
        assert allowed, f"{now.words()} -> {to.value} was allowed"
        assert self.ctl.modes.current.mode is to

    @rule(action=actions, origin=manual_origins, role=roles)
    def manual_command(self, action: Any, origin: ManualOrigin, role: str) -> None:
        mode = self.ctl.modes.current.mode
        before = self._commanded()
        mark = len(self.judged)
        record = self.run(self.ctl.gate.submit(Command(action, "op1", origin, "by hand", {"role": role})))
        if mode is UnitMode.PRODUCTION:
            assert record.outcome == "refused", record
            assert [r.invariant for r in record.verdict.refusals] == ["MODE"]
            assert "owns the line: hold it and switch to manual" in record.verdict.reason
            others = [r for r, _ in self.judged[mark:] if r is not record and r.executed]
            if not others:  # nobody else (the supervisor) acted meanwhile: the plant's outputs did not move
                assert self._commanded() == before, action
        elif mode is UnitMode.MAINTENANCE and role == "operator":
            assert [r.invariant for r in record.verdict.refusals] == ["MODE"], record
        self.settle()

    def _commanded(self) -> dict[str, bool]:
        plant = self.sim.plant
        return {name: a.open for name, a in [*plant.valves.items(), *plant.doors.items()]}

    @rule(fault=faults)
    def fault(self, fault: Fault) -> None:
        self.undo.append(inject(self.sim, fault))
        self.faulted |= _fault_spaces(fault)
        self.io_faulted |= fault.device == "remote_io" or fault.kind == "stuck_actuator"
        self.settle()

    @rule()
    def clear_faults(self) -> None:
        while self.undo:
            self.undo.pop()()
        self.settle(1.5)  # readings recover, comms alarms clear; `faulted` stays: history matters

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0]))
    def wait(self, seconds: float) -> None:
        self.settle(seconds)

    # -- invariants on the plant's truth --------------------------------------------------------

    @invariant()
    def controller_alive(self) -> None:
        self.ctl.poller.check()
        task = self.ctl.supervisor._task
        assert task is not None
        assert not task.done(), task

    @invariant()
    def no_manual_command_executes_while_a_batch_owns_the_line(self) -> None:
        for record, mode in self.judged:
            if record.command.origin in MANUAL_ORIGINS and mode.mode is UnitMode.PRODUCTION:
                assert not record.executed, record
                assert record.verdict.reason.startswith("[MODE production]"), record
        self.judged.clear()

    @invariant()
    def the_mode_follows_the_batch(self) -> None:
        now = self.ctl.modes.current
        if self.batch is None:
            assert now.mode is not UnitMode.PRODUCTION
        elif not self.held:
            assert (now.mode, now.owner) == (UnitMode.PRODUCTION, self.batch)

    @invariant()
    def valve_combinations_never_occur(self) -> None:
        plant = self.sim.plant
        for space in SPACES:
            rough, vent, fill = (plant.valves[f"{space}.{v}"].open for v in ("rough", "vent", "gas_fill"))
            assert not (rough and vent), space
            assert not (vent and fill), space
            assert not (rough and fill), space

    @invariant()
    def heater_never_set_above_the_materials_present(self) -> None:
        setpoint = self.sim.plant.heaters["substrate"].setpoint_c
        limit = min((m.max_temp_c for m in materials_in("process", self.ctl.model.items)), default=250.0)
        assert setpoint <= limit, (setpoint, limit)

    @invariant()
    def sources_emit_only_in_a_closed_chamber(self) -> None:
        plant = self.sim.plant
        if any(s.emitting for s in plant.sources.values()):
            assert plant.doors["inlet_gate"].is_closed
            assert plant.doors["outlet_gate"].is_closed

    @invariant()
    def inner_ports_stay_open_only_between_compatible_spaces(self) -> None:
        if self.io_faulted:
            return  # a port that cannot be commanded is the position/comms alarm's business
        for _ in range(2):  # a crossing may be only one poll old: give the supervisor its turn
            state = self.ctl.gate.state()
            bad = [
                p.name
                for p in state.ports.values()
                if p.kind != "outer_door"
                and self.sim.plant.doors[p.name].open
                and not _both_compatible(
                    state.spaces[p.between[0]].atmosphere, state.spaces[p.between[1]].atmosphere
                )
            ]
            if not bad:
                return
            self.settle()
        assert not bad, bad

    @invariant()
    def exposure_only_after_a_fault_and_always_on_record(self) -> None:
        state = self.ctl.gate.state()
        assert self.ctl.ledger.complete(state) == []
        for record in self.ctl.ledger.records.values():
            for entry in record.non_inert:
                assert entry.space in self.faulted, (
                    f"{entry.item} exposed in {entry.space} without a fault: {entry}"
                )
                assert any(r.alarm_id == f"exposure.{entry.space}" for r in self.ctl.alarms.journal)
        for item_id in ("F1", "T1"):
            assert space_of(item_id, self.ctl.model.items) in [*SPACES, "room"]


def _both_compatible(a: Atmosphere, b: Atmosphere) -> bool:
    vacuum_like = {Atmosphere.VACUUM, Atmosphere.PROCESS}
    return (a is Atmosphere.INERT_IN_SPEC and b is Atmosphere.INERT_IN_SPEC) or (
        a in vacuum_like and b in vacuum_like
    )


LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
# Five machines of two examples each rather than one of ten: an example lasts 10-80 s of wall time
# (the plant runs in real time scaled by 200), so with the suite on parallel workers five streams
# finish in a fifth of the time one would; together they are the same 500 steps per CI run.
STREAMS = 5


def _stream(n: int) -> type[Any]:
    case: Any = type(f"TestLine{n}", (LineMachine.TestCase,), {})
    case.settings = settings(
        max_examples=20 if LONG else 2,  # x 50 steps x 5 streams: 500 per CI run, 5000 on demand
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    marked: type[Any] = pytest.mark.heavy(pytest.mark.timeout(3600 if LONG else 900)(case))
    return marked


TestLine1, TestLine2, TestLine3, TestLine4, TestLine5 = (_stream(n) for n in range(1, STREAMS + 1))
