"""`depline commission`: every device of the simulated line (real ptys and TCP sockets) answers with its
identity, points and readings; a silenced one is named; and nothing is ever written to the line."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.config.line_config import load_line_config
from controller.service.commission import commission
from sim_hardware.faults import Fault, inject
from sim_hardware.line import SimLine


def _actuator_state(sim: SimLine) -> dict[str, Any]:
    """What a write to an ASCII instrument would change: gauge unit and sensors, turbo settings, MFC
    setpoint and gas, the QCM's films (the Modbus units keep their own record of writes)."""
    state: dict[str, Any] = {}
    for name, bound in sim.bound.items():
        if bound.tpg_state is not None:
            s = bound.tpg_state
            state[name] = (s.unit, [(c.sensor_on, c.connected) for c in s.channels], s.baudrate)
        if bound.turbo is not None:
            state[name] = dict(bound.turbo.settings)
    mfc = sim.bound["process_mfc"].sim
    state["process_mfc"] = (mfc.setpoint_sccm, mfc.gas_index)
    qcm = sim.bound["qcm"].sim
    state["qcm"] = (repr(qcm.films), qcm.active_film, qcm.shutter_open)
    return state


async def test_every_device_answers_with_identity_and_nothing_is_written() -> None:
    async with SimLine(load_line_config(), speed=500.0) as sim:
        before = _actuator_state(sim)
        result = await commission(sim.simulated_config(), timeout_s=2.0)
        after = _actuator_state(sim)
        writes = {
            name: b.unit.writes for name, b in sim.bound.items() if b.unit is not None and b.unit.writes
        }
    assert result.silent == []
    assert [d.device for d in result.devices] == [d.name for d in sim.config.devices]
    by_name = {d.device: d for d in result.devices}
    # identity as each protocol gives it: TPG AYT, TC 110 P349/P312, Vaisala FC 43/14, Alicat ??M*, SQM-160 @
    assert by_name["antechamber_gauges"].identity["model"] == "TPG362"
    assert by_name["antechamber_gauges"].identity["serial_number"] == "44990000"
    assert by_name["turbo"].identity["firmware"] == "010300"
    assert by_name["inlet_dewpoint"].identity["vendor"] == "Vaisala"
    assert by_name["inlet_dewpoint"].identity["serial_number"] == "S0000240"
    assert by_name["process_mfc"].identity["serial_number"] != ""
    assert by_name["process_mfc"].identity["firmware"] == "10v20.0-R24"
    assert by_name["qcm"].identity["firmware"] == "MON Ver 4.13"
    assert by_name["substrate_heater"].identity == {}
    # I/O points and readings with their units
    io = by_name["remote_io"].points
    assert io["inlet_gate.closed"] is True
    assert io["inlet_gate.open"] is False
    assert by_name["inlet_dewpoint"].readings["frost_point"].unit == "degC"
    assert by_name["process_gauges"].readings["pressure_ch2"].unit == "Pa"
    # read-only: no Modbus write reached any unit, no ASCII instrument changed
    assert writes == {}
    assert after == before


async def test_a_silenced_device_is_named_and_the_others_still_answer() -> None:
    async with SimLine(load_line_config(), speed=500.0) as sim:
        inject(sim, Fault("no_reply", device="outlet_dewpoint"))  # alone silent on the shared RS-485 bus
        inject(sim, Fault("no_reply", device="qcm"))  # its own link goes quiet
        result = await commission(sim.simulated_config(), timeout_s=1.0)
    assert result.silent == ["outlet_dewpoint", "qcm"]
    silent = {d.device: d for d in result.devices if not d.answers}
    assert all(d.error for d in silent.values())
    assert result.as_json()["ok"] is False


def test_cli_names_the_device_a_scenario_silences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "silence.toml"
    scenario.write_text('[[events]]\nat_s = 0.0\nfault = "no_reply"\ndevice = "turbo"\n', encoding="utf-8")
    code = main(["commission", "--sim", "--scenario", str(scenario), "--timeout", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "not answering: turbo" in err
    turbo_row = next(line for line in out.splitlines() if line.startswith("turbo "))
    assert " NO " in turbo_row
    assert "12 of 13 devices answer" in out


def test_cli_commissions_a_line_file_pointing_at_a_running_depline_sim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The site's path: a line file whose links are the endpoints `depline sim` prints, commissioned
    from another process, as an engineer does with the real line's file."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim", "--speed", "500"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        config = load_line_config()
        urls: dict[str, str] = {}
        link_of = {d.name: d.link for d in config.devices}
        assert sim.stdout is not None
        while set(urls) != set(config.links):
            line = sim.stdout.readline()
            assert line, sim.stderr.read() if sim.stderr else "depline sim ended"
            record = json.loads(line)
            if record["protocol"] != "modbus-tcp-gateway":
                urls[link_of[record["device"]]] = record["url"]
        text = config.text
        for link, url in urls.items():
            text, n = re.subn(rf'(\[links\.{re.escape(link)}\]\nurl = )"[^"]*"', rf'\g<1>"{url}"', text)
            assert n == 1, link
        line_file = tmp_path / "line1.toml"
        line_file.write_text(text, encoding="utf-8")
        code = main(["commission", "--config", str(line_file), "--json"])
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    assert document["silent"] == []
    assert {d["url"] for d in document["devices"]} == set(urls.values())
