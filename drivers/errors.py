"""Typed errors of the driver layer.

A device's *error reply* (NAK, ``NO_DEF``, a Modbus exception) is a well-formed answer and becomes
`DeviceRefused`; a broken link (no answer, garbage, a dropped connection) becomes `LinkDown`,
`DeviceTimeout` or `ProtocolError`. Callers can tell "the device said no" from "we could not talk".
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by `drivers`."""


class ConfigError(ValueError, DriverError):
    """A transport URL or a device parameter is malformed; raised before any I/O happens."""


class LinkDown(ConnectionError, DriverError):
    """The link is not connected: refused, dropped, or waiting out its reconnect back-off."""


class DeviceTimeout(TimeoutError, DriverError):
    """The device did not complete its answer within the timeout."""


class ProtocolError(DriverError):
    """Bytes arrived that do not parse as the protocol allows (garbage, wrong framing, bad echo)."""


class ChecksumError(ProtocolError):
    """A frame arrived complete but its checksum or CRC does not match."""


class DeviceRefused(DriverError):
    """The device answered with a protocol-level error reply.

    `code` is the device's own code (``"NAK"``, ``"NO_DEF"``, a Modbus exception number as text, ...)
    so that alarms can quote what the instrument said.
    """

    def __init__(self, device: str, code: str, detail: str = "") -> None:
        self.device = device
        self.code = code
        self.detail = detail
        text = f"{device} refused the request: {code}"
        super().__init__(f"{text} ({detail})" if detail else text)
