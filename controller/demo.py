"""`depline demo`: the simulated line, its controller, and the inlet purged through the command gate.

Everything goes over the wire and through the gate: the purge step submits each valve and pump
command, the interlocks judge it against the line state built from the polled instruments (TPG
mnemonics on a pseudo-terminal, the dew-point transmitter on the shared RS-485 bus, the glovebox
controller and remote I/O on Modbus TCP), and the demo shows one refusal before and after, so an
engineer sees the gate say no and say why.
"""

from __future__ import annotations

from controller.actions import Command, SetPort
from controller.config import LineConfig
from controller.errors import UserError
from controller.line_controller import LineController
from controller.line_state import LineState
from sequences.steps import PurgeCycle, StepFailed, StepTimeout, pump_purge, wait_for
from sim_hardware.line import SimLine

EVACUATE_TO_PA = 20.0


def _space_line(state: LineState, space: str) -> str:
    s = state.spaces[space]
    evidence = s.classification.evidence
    parts = [
        f"{(s.pressure_pa or 0) / 1000:.1f} kPa" if (s.pressure_pa or 0) >= 1000 else f"{s.pressure_pa} Pa"
    ]
    if "frost_point_c" in evidence:
        parts.append(f"frost point {float(evidence['frost_point_c']):.1f} °C")
    if "o2_ppmv" in evidence:
        parts.append(f"O2 {float(evidence['o2_ppmv']):.1f} ppmv")
    return f"{', '.join(parts)} -> {s.atmosphere.value} ({s.classification.reason})"


def _cycle_line(c: PurgeCycle, speed: float) -> str:
    frost = "-" if c.frost_point_c is None else f"{c.frost_point_c:6.1f} °C"
    o2 = "-" if c.o2_ppmv is None else f"{c.o2_ppmv:8.1f} ppmv"
    return (
        f"  cycle {c.cycle}: evacuated to {c.evacuated_to_pa:5.1f} Pa in {c.evacuate_s * speed:4.0f} s, "
        f"back-filled in {c.fill_s * speed:3.0f} s (plant time); "
        f"frost point {frost}, O2 {o2} -> {c.atmosphere}"
    )


async def _try(ctl: LineController, port: str) -> str:
    record = await ctl.gate.submit(Command(SetPort(port, True), "demo", "cli", "demo: gate check"))
    if record.outcome == "done":
        await ctl.gate.submit(Command(SetPort(port, False), "demo", "cli", "demo: close again"))
        return "allowed (and closed again)"
    return f"{record.outcome}: {record.verdict.reason}"


async def run_demo(config: LineConfig, *, speed: float, cycles: int) -> int:
    antechambers = config.spaces_of_kind("antechamber")
    gates = [
        p.name
        for p in config.ports
        if p.kind != "outer_door" and antechambers and antechambers[0] in p.between
    ]
    if not antechambers or not gates:
        raise UserError(
            f"{config.path}: the demo purges an antechamber with a gate valve, and this line has none"
        )
    space, gate_port = antechambers[0], gates[0]
    async with SimLine(config, speed=speed) as sim, LineController(sim.simulated_config()) as ctl:
        print(
            f"depline demo: simulated line {config.name!r} at {speed:g}x speed, "
            f"{len(config.devices)} devices "
            f"on {len(sim.links)} links (`depline sim` lists the endpoints); controller polling"
        )
        try:
            state = await wait_for(
                ctl.gate, lambda s: s.spaces[space].pressure_pa is not None, 30.0, "first readings"
            )
            print(f"\n{space} at start: {_space_line(state, space)}")
            print(f"gate check, open {gate_port}: {await _try(ctl, gate_port)}")
            print(
                f"\npurging {space} through the gate: evacuate to {EVACUATE_TO_PA:g} Pa, back-fill with argon"
            )
            await pump_purge(
                ctl.gate,
                space,
                cycles=cycles,
                evacuate_to_pa=EVACUATE_TO_PA,
                timeout_s=1800.0 / speed + 30.0,
                user="demo",
                on_cycle=lambda c: print(_cycle_line(c, speed)),
            )
            state = ctl.gate.state()
            print(f"\n{space} now: {_space_line(state, space)}")
            print(f"gate check, open {gate_port}: {await _try(ctl, gate_port)}")
        except (StepFailed, StepTimeout) as exc:
            raise UserError(f"demo: {exc}") from exc
        records = list(ctl.gate.records)
        done = sum(r.outcome == "done" for r in records)
        refused = sum(r.outcome == "refused" for r in records)
        limit = config.limits.max_frost_point_c
        verdict = "inert, in spec" if state.spaces[space].safe_for_exposed else "NOT in spec"
        o2_limit = config.limits.max_o2_ppmv
        print(f"\nresult: {space} is {verdict} (limits: frost point {limit:g} °C, O2 {o2_limit:g} ppmv)")
        print(f"gate: {done} commands carried out and read back, {refused} refused")
        for alarm in ctl.alarms.active():
            text = alarm.evidence.get("text", alarm.definition.text)
            print(f"alarm {alarm.definition.severity.value}: {text}")
    return 0
