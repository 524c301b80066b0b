"""One physical link shared by the devices on it, with serialised requests and reconnect back-off.

An RS-485 bus carries one request at a time whatever the number of devices on it, so every device on
a bus holds the same `Link`. A link that fails to open waits out an exponential back-off; a request
made during the back-off fails at once with `LinkDown` instead of stalling the poller behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from drivers.codec import NEED_DATA, FrameDecoder
from drivers.errors import DeviceTimeout, LinkDown, ProtocolError
from drivers.transport import ByteStream, Endpoint, SerialSettings, open_stream, parse_url

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class LinkStats:
    """Counters an engineer reads when a bus misbehaves."""

    exchanges: int = 0
    timeouts: int = 0
    protocol_errors: int = 0
    connects: int = 0
    connect_failures: int = 0
    discarded_bytes: int = 0
    last_error: str = ""
    last_error_ts: float = field(default=0.0)


def rtu_turnaround_s(settings: SerialSettings) -> float:
    """The Modbus RTU t3.5 silence: 3.5 characters, fixed at 1.75 ms above 19200 baud (devices.md §9)."""
    if settings.baudrate > 19200:
        return 0.00175
    return 3.5 * settings.char_time_s


class Link:
    """A transport URL opened on demand, shared by every device on it."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "",
        default_serial: SerialSettings | None = None,
        connect_timeout_s: float = 3.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        lock_timeout_s: float = 10.0,
    ) -> None:
        self.endpoint: Endpoint = parse_url(url, default_serial=default_serial)
        self.name = name or url
        self.stats = LinkStats()
        self._connect_timeout_s = connect_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_initial_s
        self._retry_at = 0.0
        self._lock_timeout_s = lock_timeout_s
        self._lock = asyncio.Lock()
        self._stream: ByteStream | None = None
        self._quiet_until = 0.0
        self._turnaround_s = (
            rtu_turnaround_s(self.endpoint.serial)
            if self.endpoint.scheme == "rtu" and self.endpoint.serial is not None
            else 0.0
        )

    @property
    def connected(self) -> bool:
        return self._stream is not None and self._stream.is_open

    @property
    def char_time_s(self) -> float:
        """Wire time of one character, 0 on TCP: drivers add it to their reply timeouts."""
        return self.endpoint.serial.char_time_s if self.endpoint.serial else 0.0

    async def transact(self, request: bytes, decoder: FrameDecoder[T], timeout_s: float) -> T:
        """Send one request and return the first complete frame the decoder yields."""
        async with self.exclusive() as session:
            return await session.exchange(request, decoder, timeout_s)

    async def send_only(self, request: bytes) -> None:
        """Send a frame that has no reply (a Modbus broadcast)."""
        async with self.exclusive() as session:
            session.send(request)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[LinkSession]:
        """Hold the link for several exchanges that must not be interleaved (TPG: mnemonic, then ENQ)."""
        try:
            if self._lock.locked():
                async with asyncio.timeout(self._lock_timeout_s):
                    await self._lock.acquire()
            else:  # the common case: no task or timer per request (wait_for costs both on 3.11)
                await self._lock.acquire()
        except TimeoutError:
            raise DeviceTimeout(
                f"{self.name}: link busy for more than {self._lock_timeout_s:.3g} s"
            ) from None
        try:
            stream = await self._ensure_open()
            yield LinkSession(self, stream)
        finally:
            self._lock.release()

    async def close(self) -> None:
        async with self._lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                await stream.close()

    async def _ensure_open(self) -> ByteStream:
        if self._stream is not None and self._stream.is_open:
            return self._stream
        if self._stream is not None:
            await self._drop("peer closed the connection")
        now = time.monotonic()
        if now < self._retry_at:
            raise LinkDown(
                f"{self.name}: reconnecting in {self._retry_at - now:.2f} s ({self.stats.last_error})"
            )
        try:
            stream = await open_stream(self.endpoint, self._connect_timeout_s)
        except (LinkDown, DeviceTimeout) as exc:
            self.stats.connect_failures += 1
            self._note_error(str(exc))
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            raise
        self.stats.connects += 1
        self._backoff_s = self._backoff_initial_s
        self._retry_at = 0.0
        self._stream = stream
        if self.stats.connects > 1:
            log.info("link reconnected", extra={"link": self.name, "connects": self.stats.connects})
        return stream

    async def _drop(self, reason: str) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            log.warning("link dropped", extra={"link": self.name, "reason": reason})
            await stream.close()

    def _note_error(self, text: str) -> None:
        self.stats.last_error = text
        self.stats.last_error_ts = time.time()


class LinkSession:
    """The link while one caller holds it."""

    def __init__(self, link: Link, stream: ByteStream) -> None:
        self._link = link
        self._stream = stream

    def send(self, request: bytes) -> None:
        self._link.stats.discarded_bytes += self._stream.discard_input()
        self._stream.write(request)

    async def exchange(self, request: bytes, decoder: FrameDecoder[T], timeout_s: float) -> T:
        """Write `request` (after any stale input is dropped) and decode the reply.

        Link faults are turned into driver errors here, in one place: a timeout on TCP drops the
        connection (a half-open socket never recovers by itself); a timeout on a serial bus does
        not, because one silent device must not cut off the others on the bus.
        """
        link = self._link
        wait = link._quiet_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        link.stats.exchanges += 1
        try:
            self.send(request)
            deadline = time.monotonic() + timeout_s
            while True:
                frame = decoder.next_frame()
                if frame is not NEED_DATA:
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeviceTimeout(f"{link.name}: reply incomplete after {timeout_s:.3g} s")
                decoder.feed(await self._stream.read_some(remaining))
        except DeviceTimeout as exc:
            link.stats.timeouts += 1
            link._note_error(str(exc))
            if not link.endpoint.is_serial:
                await link._drop("timeout")
            raise
        except ProtocolError as exc:
            link.stats.protocol_errors += 1
            link._note_error(str(exc))
            link.stats.discarded_bytes += self._stream.discard_input()
            raise
        except LinkDown as exc:
            link._note_error(str(exc))
            await link._drop(str(exc))
            raise
        finally:
            link._quiet_until = time.monotonic() + link._turnaround_s
