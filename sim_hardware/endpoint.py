"""Real endpoints for simulated devices: pseudo-terminals for serial links, TCP ports on 127.0.0.1.

A device simulator is a sans-I/O *session*: it is fed the bytes the host sent and returns the reply
bytes now due. The endpoint owns everything about the wire: pacing bytes at the baud rate, the
reply latency and the Modbus RTU silence, and wire-level faults (no reply, garbage, corrupted frames,
power loss). Protocol-level faults (NAK, exceptions, stuck sensors) belong to the session.

`on_request` (optional) runs before a session sees a request: the simulated line passes the plant
runner's catch-up there, so a device answers with the plant as it is at the moment the request
arrives and a command acts from that moment on. Without it, at 1000x plant speed a reading could be
one runner tick (50 plant seconds) old and a command would act from the previous tick, up to 50 plant
seconds before it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from drivers.transport import SerialSettings

log = logging.getLogger(__name__)


class DeviceSession(Protocol):
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the reply bytes now due (empty when none)."""
        ...


@runtime_checkable
class StreamingSession(Protocol):
    """A session that also talks unprompted (a TPG 36x streams values until its first command)."""

    stream_interval_s: float

    def receive(self, data: bytes) -> bytes: ...

    def stream(self) -> bytes:
        """Unsolicited output due now; empty when the device has stopped streaming."""
        ...


@runtime_checkable
class RateSettingSession(Protocol):
    """A session whose device can change its own baud rate (a TPG 36x's ``BAU``)."""

    @property
    def baudrate(self) -> int: ...

    def receive(self, data: bytes) -> bytes: ...


SessionFactory = Callable[[], DeviceSession]


@dataclass
class WireFaults:
    """Faults of the link itself, applied to what the device sends back.

    Counters (`drop_replies`, `garbage_replies`, `corrupt_replies`) consume one per reply; `silent`
    and `powered` hold until changed. The same object can be shared with a scenario runner.
    """

    silent: bool = False
    powered: bool = True
    drop_replies: int = 0
    garbage_replies: int = 0
    corrupt_replies: int = 0
    extra_latency_s: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(1234))

    def apply(self, reply: bytes) -> bytes:
        if not reply or self.silent or not self.powered:
            return b""
        if self.drop_replies > 0:
            self.drop_replies -= 1
            return b""
        if self.garbage_replies > 0:
            self.garbage_replies -= 1
            return bytes(self.rng.randrange(256) for _ in range(max(3, len(reply))))
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            i = self.rng.randrange(len(reply))
            return reply[:i] + bytes([reply[i] ^ 0x10]) + reply[i + 1 :]
        return reply


class PtyEndpoint:
    """A pseudo-terminal the host opens like a real serial port (`path`).

    The simulator keeps its own handle on the slave side so the line survives the host closing and
    reopening the port, as a real port does. With `pace=True` bytes take their wire time at the
    configured baud rate in both directions, and replies wait `reply_gap_s` (the RTU t3.5 silence)
    plus `latency_s` after the request's last byte.
    """

    def __init__(
        self,
        name: str,
        session_factory: SessionFactory,
        serial: SerialSettings,
        *,
        scheme: str = "serial",
        pace: bool = False,
        latency_s: float = 0.0,
        reply_gap_s: float = 0.0,
        faults: WireFaults | None = None,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_request = on_request
        self.serial = serial
        self.scheme = scheme
        self.pace = pace
        self.latency_s = latency_s
        self.reply_gap_s = reply_gap_s
        self.faults = faults or WireFaults()
        self._factory = session_factory
        self.session: DeviceSession = session_factory()
        self._master = -1
        self._slave = -1
        self.path = ""
        self._rx_free_at = 0.0
        self._tx_free_at = 0.0
        self._tx_buffer = bytearray()
        self._handles: set[asyncio.TimerHandle] = set()
        self._stream_task: asyncio.Task[None] | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def url(self) -> str:
        s = self.serial
        return (
            f"{self.scheme}://{self.path}?baudrate={s.baudrate}&bytesize={s.bytesize}"
            f"&parity={s.parity}&stopbits={s.stopbits}"
        )

    @property
    def char_time_s(self) -> float:
        """Wire time of one character at the rate the device runs at now (its own setting, if it has one)."""
        session = self.session
        if isinstance(session, RateSettingSession):
            return self.serial.bits_per_char / session.baudrate
        return self.serial.char_time_s

    async def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._master, self._on_readable)
        if isinstance(self.session, StreamingSession):
            self._stream_task = asyncio.create_task(self._stream_loop(), name=f"sim-stream-{self.name}")

    async def stop(self) -> None:
        if self._master < 0:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        loop.remove_writer(self._master)
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
            self._stream_task = None
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    def power_cycle(self) -> None:
        """The device restarts: session state (pending requests, settings) is lost."""
        self.session = self._factory()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO when no slave is open; ours always is, so this is unexpected
            if exc.errno != errno.EIO:
                log.warning("pty read failed", extra={"endpoint": self.name, "error": str(exc)})
            return
        self.bytes_in += len(data)
        if not self.pace:
            self._deliver(data)
            return
        now = time.monotonic()
        self._rx_free_at = max(now, self._rx_free_at) + len(data) * self.char_time_s
        self._later(self._rx_free_at - now, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if not self.faults.powered:
            return
        if self.on_request is not None:
            self.on_request()
        reply = self.faults.apply(self.session.receive(data))
        if not reply:
            return
        delay = self.latency_s + self.faults.extra_latency_s + (self.reply_gap_s if self.pace else 0.0)
        if self.pace:
            now = time.monotonic()
            start = max(now + delay, self._tx_free_at)
            self._tx_free_at = start + len(reply) * self.char_time_s
            delay = self._tx_free_at - now
        if delay > 0:
            self._later(delay, self._send, reply)
        else:
            self._send(reply)

    def _later(self, delay_s: float, fn: Callable[[bytes], None], data: bytes) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._handles.discard(handle)
            fn(data)

        handle = loop.call_later(delay_s, fire)
        self._handles.add(handle)

    def _send(self, data: bytes) -> None:
        if self._master < 0:
            return
        self.bytes_out += len(data)
        if self._tx_buffer:
            self._tx_buffer += data
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            self._tx_buffer += data[written:]
            asyncio.get_running_loop().add_writer(self._master, self._flush)

    def _flush(self) -> None:
        try:
            written = os.write(self._master, self._tx_buffer)
        except BlockingIOError:
            return
        del self._tx_buffer[:written]
        if not self._tx_buffer:
            asyncio.get_running_loop().remove_writer(self._master)

    async def _stream_loop(self) -> None:
        while True:
            session = self.session
            if not isinstance(session, StreamingSession):
                return
            await asyncio.sleep(session.stream_interval_s)
            chunk = session.stream() if self.faults.powered and not self.faults.silent else b""
            if chunk:
                self._send(chunk)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, endpoint: TcpEndpoint) -> None:
        self.endpoint = endpoint
        self.session = endpoint._factory()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self.endpoint.faults.powered:
            transport.abort()
            return
        self.transport = transport
        self.endpoint._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.endpoint.bytes_in += len(data)
        if self.endpoint.on_request is not None:
            self.endpoint.on_request()
        reply = self.endpoint.faults.apply(self.session.receive(data))
        if not reply or self.transport is None:
            return
        delay = self.endpoint.latency_s + self.endpoint.faults.extra_latency_s
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send, reply)
        else:
            self._send(reply)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.endpoint.bytes_out += len(data)
            self.transport.write(data)


class TcpEndpoint:
    """A TCP listener on 127.0.0.1; every connection gets its own device session."""

    def __init__(
        self,
        name: str,
        session_factory: SessionFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scheme: str = "tcp",
        latency_s: float = 0.0,
        faults: WireFaults | None = None,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_request = on_request
        self.host = host
        self.port = port
        self.scheme = scheme
        self.latency_s = latency_s
        self.faults = faults or WireFaults()
        self._factory = session_factory
        self._server: asyncio.Server | None = None
        self._connections: set[_TcpConnection] = set()
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _TcpConnection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Cut every open connection, as a device reboot or a gateway power loss does."""
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()

    def power_cycle(self) -> None:
        self.drop_connections()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.drop_connections()
        await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None


Endpoint = PtyEndpoint | TcpEndpoint
