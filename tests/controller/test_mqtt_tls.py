"""`[mqtt]` TLS against Debian's mosquitto with a throwaway CA made by openssl in the test.

The broker has a TLS listener that requires a client certificate; the bridge, configured from a line
file's `ca_file`, `cert_file` and `key_file`, comes online through it and its telemetry arrives. A CA
that did not sign the broker's certificate keeps the bridge offline (verification is never switched
off), and bad TLS files are refused when the file is read, naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiomqtt
import pytest

from bench.mosquitto_broker import MosquittoBroker, free_port, line_acl
from controller.config.line_config import LineConfig, load_line_config
from controller.errors import ConfigFileError
from controller.line.controller import LineController
from controller.line.poller import PollPlan, Priority
from controller.mqtt.bridge import MqttBridge
from controller.mqtt.options import BridgeOptions
from sim_hardware.line import SimLine
from tests.throwaway_pki import Pki, make_pki

PASSWORDS = {"bridge": "bridge-pw", "viewer": "viewer-pw"}
WAIT_S = 20.0
FAST = BridgeOptions(
    telemetry_min_interval_s=0.2,
    tick_s=0.05,
    reconnect_min_s=0.05,
    reconnect_max_s=0.5,
    keepalive_s=5,
    operation_timeout_s=3.0,
    stop_timeout_s=3.0,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@dataclass(frozen=True)
class TlsBroker:
    broker: MosquittoBroker
    tls_port: int


@pytest.fixture
async def tls_broker(tmp_path: Path, pki: Pki) -> AsyncIterator[TlsBroker]:
    tls_port = free_port()
    tls_listener = [
        f"listener {tls_port} 127.0.0.1",
        f"cafile {pki.ca}",
        f"certfile {pki.broker_cert}",
        f"keyfile {pki.broker_key}",
        "require_certificate true",
        "tls_version tlsv1.2",
    ]
    acl = line_acl("depline", "line1", bridge="bridge", commanders=[], viewers=["viewer"])
    broker = MosquittoBroker(tmp_path / "broker", users=PASSWORDS, acl=acl, extra_config=tls_listener)
    async with broker:
        yield TlsBroker(broker, tls_port)


def _line_file(tmp_path: Path, mqtt_lines: list[str]) -> Path:
    """The embedded standard line with an `[mqtt]` table, as a site writes it."""
    text = load_line_config().text + "\n[mqtt]\n" + "\n".join(mqtt_lines) + "\n"
    path = tmp_path / "line1.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _tls_lines(port: int, ca: Path, cert: Path | None, key: Path | None) -> list[str]:
    lines = [
        'host = "localhost"',
        f"port = {port}",
        'username = "bridge"',
        f'password = "{PASSWORDS["bridge"]}"',
        f'ca_file = "{ca}"',
    ]
    if cert is not None and key is not None:
        lines += [f'cert_file = "{cert}"', f'key_file = "{key}"']
    return lines


async def _bridge_health(config: LineConfig, seconds: float) -> list[tuple[bool, str]]:
    """Run the bridge on the simulated line until it is online or `seconds` pass; its health reports."""
    health: list[tuple[bool, str]] = []
    async with SimLine(config, speed=200.0) as sim:
        line = replace(sim.simulated_config(), mqtt=config.mqtt)
        plan = PollPlan.for_line(line, periods_s={Priority.INTERLOCK: 0.1, Priority.PROCESS: 0.5})
        async with LineController(line, plan=plan, travel_timeout_s=5.0) as ctl:
            online = asyncio.Event()

            def on_health(ok: bool, why: str) -> None:
                health.append((ok, why))
                if ok:
                    online.set()

            async with MqttBridge(line, ctl, options=FAST, on_health=on_health):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(online.wait(), seconds)
    return health


async def test_the_bridge_connects_over_tls_with_a_client_certificate(
    tmp_path: Path, pki: Pki, tls_broker: TlsBroker
) -> None:
    config = load_line_config(
        _line_file(tmp_path, _tls_lines(tls_broker.tls_port, pki.ca, pki.client_cert, pki.client_key))
    )
    assert config.mqtt is not None
    assert config.mqtt.tls is not None
    received: list[dict[str, object]] = []

    async def watch() -> None:
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        async with aiomqtt.Client(
            "localhost",
            tls_broker.tls_port,
            username="viewer",
            password=PASSWORDS["viewer"],
            tls_context=context,
        ) as client:
            await client.subscribe("depline/line1/status", qos=1)
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append(json.loads(message.payload))
                if received[-1].get("state") == "online":
                    return

    watcher = asyncio.create_task(watch())
    health = await _bridge_health(config, WAIT_S)
    await asyncio.wait_for(watcher, WAIT_S)
    assert health[-1][0] is True
    assert received[-1]["state"] == "online"


async def test_a_broker_the_ca_did_not_sign_is_refused(
    tmp_path: Path, pki: Pki, tls_broker: TlsBroker
) -> None:
    config = load_line_config(
        _line_file(tmp_path, _tls_lines(tls_broker.tls_port, pki.rogue_ca, pki.client_cert, pki.client_key))
    )
    health = await _bridge_health(config, 3.0)
    assert health, "the bridge reported nothing"
    assert not any(ok for ok, _ in health), health
    assert any("certificate verify failed" in why.lower() for _, why in health), health


def test_bad_tls_settings_are_refused_when_the_file_is_read(tmp_path: Path, pki: Pki) -> None:
    base = ['host = "localhost"']
    cases = {
        "mqtt.key_file": [*base, f'cert_file = "{pki.client_cert}"'],
        "mqtt.ca_file": [*base, f'ca_file = "{pki.client_key}"'],  # a key is not a CA certificate
        "mqtt.cert_file": [*base, f'cert_file = "{pki.client_cert}"', f'key_file = "{pki.broker_key}"'],
        "mqtt.tls": [*base, "tls = false", f'ca_file = "{pki.ca}"'],
    }
    for field, lines in cases.items():
        with pytest.raises(ConfigFileError) as caught:
            load_line_config(_line_file(tmp_path, lines))
        assert caught.value.field == field, (field, str(caught.value))
    missing = tmp_path / "absent.pem"
    with pytest.raises(ConfigFileError, match="No such file"):
        load_line_config(_line_file(tmp_path, [*base, f'ca_file = "{missing}"']))
    plain = load_line_config(_line_file(tmp_path, base))
    assert plain.mqtt is not None
    assert plain.mqtt.tls is None
    assert plain.mqtt.port == 1883
    secured = load_line_config(_line_file(tmp_path, [*base, "tls = true"]))  # the system trust store
    assert secured.mqtt is not None
    assert secured.mqtt.port == 8883
