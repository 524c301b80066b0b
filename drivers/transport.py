"""Byte-stream transports chosen by URL.

``tcp://host:port``                         a raw TCP socket (Modbus TCP, a serial-over-Ethernet gateway)
``serial:///dev/ttyUSB0?baudrate=9600``     a serial port (ASCII instruments)
``rtu:///dev/ttyUSB0?baudrate=19200``       a serial port carrying Modbus RTU frames
``rtu+tcp://host:port``                     Modbus RTU frames over a TCP gateway that does not re-frame

Serial query parameters: ``baudrate``, ``bytesize`` (5-8), ``parity`` (N/E/O), ``stopbits`` (1, 2).
The scheme says how bytes are *framed* only for Modbus; the transport itself just moves bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drivers.errors import ConfigError, DeviceTimeout, LinkDown

_SERIAL_SCHEMES = {"serial", "rtu"}
_TCP_SCHEMES = {"tcp", "rtu+tcp"}
_PARITIES = {"N", "E", "O"}


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    @property
    def bits_per_char(self) -> int:
        """Start bit + data + parity + stop: what one character costs on the wire."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time_s(self) -> float:
        return self.bits_per_char / self.baudrate


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed transport URL."""

    url: str
    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    serial: SerialSettings | None = None

    @property
    def is_serial(self) -> bool:
        return self.scheme in _SERIAL_SCHEMES

    @property
    def rtu_framing(self) -> bool:
        return self.scheme in {"rtu", "rtu+tcp"}


def _int_param(url: str, params: dict[str, list[str]], name: str, default: int) -> int:
    raw = params.get(name, [str(default)])[-1]
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{url}: {name}={raw!r} is not an integer") from None


def parse_url(url: str, *, default_serial: SerialSettings | None = None) -> Endpoint:
    """Parse a transport URL; every malformed part raises `ConfigError` naming the URL and field."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL", a character NFKC turns into a separator
        raise ConfigError(f"{url}: not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in _TCP_SCHEMES:
        if not parts.hostname:
            raise ConfigError(f"{url}: a {scheme} URL needs a host, e.g. {scheme}://127.0.0.1:502")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{url}: the port must be an integer in 1..65535") from None
        if port is None or not 0 < port < 65536:
            raise ConfigError(f"{url}: the port must be an integer in 1..65535")
        return Endpoint(url, scheme, host=parts.hostname, port=port)
    if scheme in _SERIAL_SCHEMES:
        if not parts.path:
            raise ConfigError(f"{url}: a {scheme} URL needs a device path, e.g. {scheme}:///dev/ttyUSB0")
        base = default_serial or SerialSettings()
        params = parse_qs(parts.query)
        unknown = set(params) - {"baudrate", "bytesize", "parity", "stopbits"}
        if unknown:
            raise ConfigError(f"{url}: unknown serial parameter(s) {sorted(unknown)}")
        settings = SerialSettings(
            baudrate=_int_param(url, params, "baudrate", base.baudrate),
            bytesize=_int_param(url, params, "bytesize", base.bytesize),
            parity=params.get("parity", [base.parity])[-1].upper(),
            stopbits=_int_param(url, params, "stopbits", base.stopbits),
        )
        if not 50 <= settings.baudrate <= 4_000_000:
            raise ConfigError(f"{url}: baudrate={settings.baudrate} outside 50..4000000")
        if settings.bytesize not in (5, 6, 7, 8):
            raise ConfigError(f"{url}: bytesize={settings.bytesize} must be 5, 6, 7 or 8")
        if settings.parity not in _PARITIES:
            raise ConfigError(f"{url}: parity={settings.parity!r} must be N, E or O")
        if settings.stopbits not in (1, 2):
            raise ConfigError(f"{url}: stopbits={settings.stopbits} must be 1 or 2")
        return Endpoint(url, scheme, path=parts.path, serial=settings)
    raise ConfigError(f"{url}: unknown scheme {scheme!r}; use tcp://, rtu+tcp://, serial:// or rtu://")


class _ByteProtocol(asyncio.Protocol):
    """Collects received bytes into one buffer the stream owns, so stale input can be discarded."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.arrived.set()


class ByteStream:
    """An open transport: write bytes, read what has arrived, discard stale input."""

    def __init__(self, endpoint: Endpoint, protocol: _ByteProtocol) -> None:
        self.endpoint = endpoint
        self._protocol = protocol

    @property
    def is_open(self) -> bool:
        return self._protocol.transport is not None and not self._protocol.closed.is_set()

    def write(self, data: bytes) -> None:
        transport = self._protocol.transport
        if transport is None or self._protocol.closed.is_set() or transport.is_closing():
            raise LinkDown(f"{self.endpoint.url}: link closed")
        transport.write(data)

    def discard_input(self) -> int:
        """Drop unread bytes (a late reply, power-up chatter); returns how many were dropped."""
        dropped = len(self._protocol.buffer)
        self._protocol.buffer.clear()
        self._protocol.arrived.clear()
        return dropped

    async def read_some(self, timeout_s: float) -> bytes:
        """Everything buffered, waiting up to `timeout_s` for at least one byte."""
        protocol = self._protocol
        if not protocol.buffer:
            if protocol.closed.is_set():
                raise LinkDown(f"{self.endpoint.url}: connection closed by peer")
            protocol.arrived.clear()
            try:
                async with asyncio.timeout(timeout_s):  # cheaper than wait_for: no extra task
                    await protocol.arrived.wait()
            except TimeoutError:
                raise DeviceTimeout(f"{self.endpoint.url}: no reply within {timeout_s:.3g} s") from None
            if not protocol.buffer:
                raise LinkDown(f"{self.endpoint.url}: connection closed by peer")
        data = bytes(protocol.buffer)
        protocol.buffer.clear()
        protocol.arrived.clear()
        return data

    async def close(self) -> None:
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if transport is not None:
            try:
                await asyncio.wait_for(self._protocol.closed.wait(), 1.0)
            except TimeoutError:
                transport.abort()


async def open_stream(endpoint: Endpoint, timeout_s: float = 3.0) -> ByteStream:
    """Connect to `endpoint`; failures become `LinkDown`, a hung connect `DeviceTimeout`."""
    loop = asyncio.get_running_loop()
    protocol = _ByteProtocol()
    try:
        if endpoint.is_serial:
            import serial_asyncio_fast  # imported lazily: TCP-only sites need no serial stack

            assert endpoint.serial is not None
            s = endpoint.serial
            coro: Coroutine[Any, Any, object] = serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: protocol,
                endpoint.path,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
            )
        else:
            coro = loop.create_connection(lambda: protocol, endpoint.host, endpoint.port)
        await asyncio.wait_for(coro, timeout_s)
    except TimeoutError:
        raise DeviceTimeout(f"{endpoint.url}: connect timed out after {timeout_s:.3g} s") from None
    except (OSError, ValueError) as exc:  # serial.SerialException subclasses OSError
        raise LinkDown(f"{endpoint.url}: cannot open: {exc}") from exc
    return ByteStream(endpoint, protocol)
