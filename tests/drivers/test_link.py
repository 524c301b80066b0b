"""The shared link over real endpoints: serialisation, timeouts, reconnect back-off, garbage."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.codec import NEED_DATA, NeedData
from drivers.errors import ConfigError, DeviceTimeout, LinkDown, ProtocolError
from drivers.link import Link, rtu_turnaround_s
from drivers.transport import SerialSettings, parse_url
from sim_hardware.endpoint import PtyEndpoint, TcpEndpoint


class LineDecoder:
    """A CR-terminated line protocol, enough to exercise the link."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> bytes | NeedData:
        end = self.buf.find(b"\r")
        if end < 0:
            return NEED_DATA
        line = bytes(self.buf[:end])
        del self.buf[: end + 1]
        if not line.isascii():
            raise ProtocolError(f"non-ASCII reply {line!r}")
        return line


class EchoUpper:
    def receive(self, data: bytes) -> bytes:
        return data.upper()


async def test_tcp_exchange_and_reconnect_after_power_loss() -> None:
    ep = TcpEndpoint("echo", EchoUpper)
    await ep.start()
    link = Link(ep.url, backoff_initial_s=0.05)
    try:
        assert await link.transact(b"abc\r", LineDecoder(), 1.0) == b"ABC"
        ep.faults.powered = False
        ep.drop_connections()
        with pytest.raises((LinkDown, DeviceTimeout)):
            await link.transact(b"x\r", LineDecoder(), 0.3)
        ep.faults.powered = True
        deadline = time.monotonic() + 3.0
        while True:
            try:
                assert await link.transact(b"back\r", LineDecoder(), 0.5) == b"BACK"
                break
            except (LinkDown, DeviceTimeout):
                assert time.monotonic() < deadline, "link never came back"
                await asyncio.sleep(0.05)
        assert link.stats.connects >= 2
    finally:
        await link.close()
        await ep.stop()


async def test_pty_requests_are_serialised_on_one_bus() -> None:
    ep = PtyEndpoint("echo", EchoUpper, SerialSettings(9600))
    await ep.start()
    link = Link(ep.url)
    try:
        replies = await asyncio.gather(
            *(link.transact(f"n{i}\r".encode(), LineDecoder(), 1.0) for i in range(20))
        )
        assert replies == [f"N{i}".encode() for i in range(20)]
    finally:
        await link.close()
        await ep.stop()


async def test_silent_device_times_out_and_garbage_is_a_protocol_error() -> None:
    ep = PtyEndpoint("echo", EchoUpper, SerialSettings(9600))
    await ep.start()
    link = Link(ep.url)
    try:
        ep.faults.silent = True
        with pytest.raises(DeviceTimeout):
            await link.transact(b"q\r", LineDecoder(), 0.2)
        ep.faults.silent = False
        ep.faults.garbage_replies = 1
        with pytest.raises((ProtocolError, DeviceTimeout)):
            await link.transact(b"\xff\xfe\r", LineDecoder(), 0.2)
        assert await link.transact(b"ok\r", LineDecoder(), 1.0) == b"OK"
    finally:
        await link.close()
        await ep.stop()


async def test_paced_pty_takes_wire_time() -> None:
    settings = SerialSettings(9600)
    ep = PtyEndpoint("echo", EchoUpper, settings, pace=True)
    await ep.start()
    link = Link(ep.url)
    try:
        request = b"x" * 47 + b"\r"
        t0 = time.monotonic()
        await link.transact(request, LineDecoder(), 2.0)
        elapsed = time.monotonic() - t0
        wire = 2 * len(request) * settings.char_time_s  # 96 chars at 9600 8N1 = 100 ms
        assert elapsed >= wire * 0.95
    finally:
        await link.close()
        await ep.stop()


async def test_unreachable_port_backs_off() -> None:
    link = Link("tcp://127.0.0.1:1", backoff_initial_s=5.0)
    with pytest.raises(LinkDown):
        await link.transact(b"a\r", LineDecoder(), 0.2)
    t0 = time.monotonic()
    with pytest.raises(LinkDown, match="reconnecting"):
        await link.transact(b"a\r", LineDecoder(), 0.2)
    assert time.monotonic() - t0 < 0.1  # refused at once during the back-off, not after a timeout
    await link.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "tcp://:502",
        "tcp://h:99999",
        "serial://",
        "serial:///dev/x?baudrate=fast",
        "rtu:///d?parity=X",
        "serial:///d?speed=1",
    ],
)
def test_bad_urls_name_the_problem(url: str) -> None:
    with pytest.raises(ConfigError, match="://"):
        parse_url(url)


def test_rtu_silence_follows_the_spec() -> None:
    assert rtu_turnaround_s(SerialSettings(9600, parity="E")) == pytest.approx(3.5 * 11 / 9600)
    assert rtu_turnaround_s(SerialSettings(115200)) == pytest.approx(0.00175)
