"""Health and logs of the line service: what a load balancer, a log collector and an engineer reading
the journal see (issue 15). `depline run --sim` runs as a process, as on a site."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.config.line_config import load_line_config
from controller.config.secrets import mask_secrets
from controller.errors import ConfigFileError
from controller.line.alarm_states import Severity
from controller.line.alarms import AlarmDefinition
from controller.service.log_lines import FieldsFormatter, JsonFormatter
from sim_hardware.faults import Fault, inject
from tests.controller.test_api import Served, served  # noqa: F401 (the fixture)
from tests.test_line_service import STANDARD_LINE, service, until

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-Pa55"
SILENT_DEWPOINT = '[[events]]\nat_s = 0.0\nfault = "no_reply"\ndevice = "inlet_dewpoint"\n'


async def test_health_is_degraded_naming_the_silent_device_and_the_json_log_names_it_too(
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    async with service(
        tmp_path, scenario=SILENT_DEWPOINT, run_args=["--log-format", "json"], stderr=errors
    ) as http:
        await until(
            http, "/api/health", lambda h: any(r["subject"] == "inlet_dewpoint" for r in h["reasons"])
        )
        answer = await http.get("/api/health")
        assert answer.status_code == 200  # degraded: the line runs and its HMI must stay reachable
        health = answer.json()
        assert (health["status"], health["ok"]) == ("degraded", False), health
        named = [r for r in health["reasons"] if r["kind"] == "device"]
        # (on a loaded machine another device can miss a few polls too: it is named then, as it should be)
        dewpoint = next(r for r in named if r["subject"] == "inlet_dewpoint")
        assert dewpoint["level"] == "degraded"
        assert dewpoint["text"].startswith("inlet_dewpoint not answering on ")
        assert all(r["kind"] == "device" for r in health["reasons"]), health  # historian writing, no broker
    lines = [json.loads(line) for line in errors[0].splitlines() if line.strip()]  # every line is JSON
    silent = [entry for entry in lines if entry["message"] == "device not answering"]
    assert silent, errors[0][-2000:]
    assert all(entry["device"] and entry["link"] for entry in silent)  # every one names its device
    dewpoint_log = next(entry for entry in silent if entry["device"] == "inlet_dewpoint")
    assert {"ts", "time", "level", "logger", "error"} <= dewpoint_log.keys()


async def test_health_fails_with_503_when_no_device_answers_and_a_lost_broker_only_degrades(
    served: Served,  # noqa: F811 (the fixture)
) -> None:
    http, ctl = served.http, served.ctl
    await until(http, "/api/health", lambda h: h["status"] == "ok")
    ctl.alarms.define(AlarmDefinition("mqtt.broker", Severity.MEDIUM, "MQTT broker unreachable", "guidance"))
    ctl.alarms.raise_alarm("mqtt.broker", time.time(), {"text": "lost at connect: refused"})
    broker = (await http.get("/api/health")).json()
    assert broker["status"] == "degraded"  # a lost broker degrades, never fails, the line
    # on a loaded machine a device may also miss a poll here; the broker's reason must be there whatever
    [lost] = [r for r in broker["reasons"] if r["kind"] == "broker"]
    assert "refused" in lost["text"]
    ctl.alarms.clear("mqtt.broker", time.time())

    wakes = [inject(served.sim, Fault("no_reply", device=d.name)) for d in served.sim.config.devices]
    try:
        await until(http, "/api/health", lambda h: h["status"] == "failed")
        answer = await http.get("/api/health")
        assert answer.status_code == 503
        reasons = answer.json()["reasons"]
        assert {r["subject"] for r in reasons} == {d.name for d in served.sim.config.devices}
        assert {r["level"] for r in reasons} == {"failed"}  # the line is blind
    finally:
        for wake in wakes:
            wake()
    await until(http, "/api/health", lambda h: h["status"] == "ok")


def _line_with_database(folder: Path, url: str, extra: str = "") -> Path:
    text = STANDARD_LINE.read_text().replace('url = "sqlite:///data/line1.db"', f'url = "{url}"{extra}')
    config = folder / "line.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("url", "from_file"),
    [
        (f"postgresql://depline:{PASSWORD}@127.0.0.1:no-port/line1", False),  # SQLAlchemy's message quotes it
        ("mysql://depline@127.0.0.1/line1", True),  # the password from a file; a database we do not speak
    ],
    ids=["inline-bad-port", "password-file-unsupported"],
)
def test_a_failed_start_does_not_print_the_database_password(
    tmp_path: Path, url: str, from_file: bool
) -> None:
    extra = ""
    if from_file:
        secret = tmp_path / "db-password"
        secret.write_text(PASSWORD + "\n")
        extra = f'\npassword_file = "{secret}"'
    config = _line_with_database(tmp_path, url, extra)
    command = ["--log-level", "DEBUG", "run", "--config", str(config), "--port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", *command],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        text=True,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "database url" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "depline:***@127.0.0.1" in done.stderr


def test_passwords_come_from_a_file_or_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "broker-password").write_text("broker-pw\n")
    (tmp_path / "db-password").write_text("db pw/with:odd@chars")
    mqtt = '\n[mqtt]\nhost = "127.0.0.1"\nusername = "bridge"\npassword_credential = "broker-password"\n'
    config = _line_with_database(
        tmp_path, "postgresql://depline@db.plant/line1", f'\npassword_file = "{tmp_path / "db-password"}"'
    )
    config.write_text(config.read_text() + mqtt)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    line = load_line_config(config)
    assert line.mqtt is not None
    assert line.mqtt.password == "broker-pw"
    assert line.database.url == "postgresql://depline:db%20pw%2Fwith%3Aodd%40chars@db.plant/line1"
    assert mask_secrets(line.database.url) == "postgresql://depline:***@db.plant/line1"

    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigFileError, match=r"mqtt\.password_credential.*CREDENTIALS_DIRECTORY is not set"):
        load_line_config(config)
    inline = _line_with_database(
        tmp_path,
        f"postgresql://depline:{PASSWORD}@db/line1",
        f'\npassword_file = "{tmp_path / "db-password"}"',
    )
    with pytest.raises(ConfigFileError, match="leave it out of the url") as refused:
        load_line_config(inline)
    assert PASSWORD not in str(refused.value)


def _record(message: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("controller.line.poller", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(fields)
    return record


def test_log_lines_carry_their_fields_and_never_a_password() -> None:
    fields = {"device": "inlet_dewpoint", "link": "rs485_1", "error": "TimeoutError: no reply in 0.2 s"}
    text = FieldsFormatter().format(_record("device not answering", **fields))
    assert text.endswith(
        'device not answering device=inlet_dewpoint link=rs485_1 error="TimeoutError: no reply in 0.2 s"'
    )
    url = f"postgresql+asyncpg://depline:{PASSWORD}@db:5432/line1?sslmode=require"
    for formatter in (FieldsFormatter(), JsonFormatter()):
        shown = formatter.format(_record(f"cannot reach {url}", url=url, ratio=float("nan")))
        assert PASSWORD not in shown
        assert "depline:***@db:5432" in shown
    entry = json.loads(JsonFormatter().format(_record("run started", run=7, space="inlet")))
    assert (entry["message"], entry["run"], entry["space"], entry["level"]) == (
        "run started",
        7,
        "inlet",
        "WARNING",
    )
    try:
        raise ConnectionError(f"connect {url} failed")
    except ConnectionError:
        record = _record("historian failed")
        record.exc_info = sys.exc_info()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FieldsFormatter())
    handler.emit(record)
    assert "Traceback" in stream.getvalue()
    assert PASSWORD not in stream.getvalue()


def test_masking_leaves_texts_without_passwords_alone() -> None:
    for text in ("http://127.0.0.1:8080/api/health", "op1@line1 said 12:30", "sqlite:///data/line1.db"):
        assert mask_secrets(text) == text
    assert mask_secrets("x?user=a&password=hunter2&y=1") == "x?user=a&password=***&y=1"
