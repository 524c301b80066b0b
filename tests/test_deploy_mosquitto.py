"""deploy/mosquitto as shipped, run by Debian's mosquitto (only paths and ports moved into the test's
directory): anonymous clients are refused, the TLS listener wants a certificate of the site CA, and the
ACL keeps each line's bridge in its own tree while SCADA commands only the line it is given."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from bench.mosquitto_broker import free_port, mosquitto_binary
from tests.throwaway_pki import Pki, make_pki

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
PASSWORDS = {"depline-line1": "l1-pw", "depline-line2": "l2-pw", "scada": "scada-pw", "viewer": "viewer-pw"}


@dataclass(frozen=True)
class SiteBroker:
    plain_port: int
    tls_port: int
    pki: Pki


def _site_config(workdir: Path, pki: Pki, plain_port: int, tls_port: int) -> Path:
    """The shipped file with the site's paths and ports replaced by the test's, nothing else changed, in
    the conf.d of a main file laid out like Debian's."""
    text = (DEPLOY / "depline.conf").read_text(encoding="utf-8")
    moves = {
        "/etc/mosquitto/depline.passwd": str(workdir / "passwd"),
        "/etc/mosquitto/depline.acl": str(workdir / "acl"),
        "/etc/mosquitto/certs/broker.crt": str(pki.broker_cert),
        "/etc/mosquitto/certs/broker.key": str(pki.broker_key),
        "/etc/mosquitto/certs/ca.crt": str(pki.ca),
        "listener 1883 127.0.0.1": f"listener {plain_port} 127.0.0.1",
    }
    for site, here in moves.items():
        assert site in text, site
        text = text.replace(site, here)
    text, n = re.subn(r"^listener 8883$", f"listener {tls_port} 127.0.0.1", text, flags=re.MULTILINE)
    assert n == 1
    (workdir / "acl").write_text((DEPLOY / "depline.acl").read_text(encoding="utf-8"), encoding="utf-8")
    passwd = workdir / "passwd"
    passwd.write_text("", encoding="utf-8")
    for user, password in PASSWORDS.items():
        subprocess.run(
            [mosquitto_binary("mosquitto_passwd"), "-b", str(passwd), user, password], check=True, timeout=10
        )
    (workdir / "conf.d").mkdir()
    (workdir / "conf.d" / "depline.conf").write_text(text, encoding="utf-8")
    # Debian's /etc/mosquitto/mosquitto.conf, which includes conf.d (it sets persistence: ours must not)
    main = [
        "persistence true",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir / 'log'}",
        f"include_dir {workdir / 'conf.d'}",
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
    ]
    config = workdir / "mosquitto.conf"
    config.write_text("\n".join(main) + "\n", encoding="utf-8")
    return config


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[SiteBroker]:
    pki = make_pki(tmp_path / "pki")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    plain_port, tls_port = free_port(), free_port()
    config = _site_config(workdir, pki, plain_port, tls_port)
    broker = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdin=subprocess.DEVNULL)
    try:
        _wait_listening(broker, plain_port, tls_port, workdir / "log")
        yield SiteBroker(plain_port, tls_port, pki)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)


def _wait_listening(broker: subprocess.Popen[bytes], plain: int, tls: int, log: Path) -> None:
    deadline = time.monotonic() + 10.0
    for port in (plain, tls):
        while True:
            assert broker.poll() is None, log.read_text(errors="replace") if log.exists() else "no log"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"mosquitto not listening on {port}"
                time.sleep(0.02)


def _tls(pki: Pki, *, certificate: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if certificate:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def _client(
    site: SiteBroker, user: str, *, certificate: bool = True, timeout_s: float = 5.0
) -> aiomqtt.Client:
    return aiomqtt.Client(
        "localhost",
        site.tls_port,
        username=user,
        password=PASSWORDS[user],
        tls_context=_tls(site.pki, certificate=certificate),
        timeout=timeout_s,
    )


async def test_anonymous_and_certificate_less_clients_are_refused(site_broker: SiteBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", site_broker.plain_port, timeout=5.0):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", site_broker.plain_port, username="viewer", password="wrong", timeout=5.0
        ):
            pass
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError, OSError)):
        async with _client(site_broker, "viewer", certificate=False, timeout_s=2.0):
            pass


async def test_each_line_writes_only_its_own_tree_and_scada_commands_only_its_line(
    site_broker: SiteBroker,
) -> None:
    seen: list[tuple[str, bytes]] = []
    async with _client(site_broker, "viewer") as viewer:
        await viewer.subscribe("depline/#", qos=1)
        last = asyncio.Event()
        listening = asyncio.create_task(_collect(viewer, seen, last))
        try:
            attempts = [
                ("depline-line1", "depline/line1/telemetry/gauge/p", b"line1 own"),
                ("depline-line2", "depline/line1/telemetry/gauge/p", b"line2 into line1"),
                ("depline-line2", "depline/line2/telemetry/gauge/p", b"line2 own"),
                ("scada", "depline/line1/cmd/set_valve", b"scada commands line1"),
                ("scada", "depline/line2/cmd/set_valve", b"scada commands line2"),
                ("viewer", "depline/line1/cmd/set_valve", b"viewer commands"),
                ("depline-line1", "depline/line1/status", b"last"),
            ]
            for user, topic, payload in attempts:
                async with _client(site_broker, user) as client:
                    await client.publish(topic, payload, qos=1)
            await asyncio.wait_for(
                last.wait(), 10.0
            )  # the ACL drops refused ones silently: wait for a marker
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
    assert [p for _, p in seen] == [b"line1 own", b"line2 own", b"scada commands line1", b"last"]


async def _collect(client: aiomqtt.Client, seen: list[tuple[str, bytes]], last: asyncio.Event) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        seen.append((str(message.topic), message.payload))
        if message.payload == b"last":
            last.set()
