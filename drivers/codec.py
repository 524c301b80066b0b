"""The shape every sans-I/O codec in `drivers` follows.

A codec never touches a socket. The host role encodes requests to bytes and is fed reply bytes; the
device role (used by `sim_hardware`) is fed request bytes and encodes replies. Decoders buffer what
they are fed and hand out one complete frame at a time, or `NEED_DATA` (the h11 pattern).
"""

from __future__ import annotations

import enum
from typing import Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _NeedData.NEED_DATA
NeedData = _NeedData


class FrameDecoder(Protocol[T_co]):
    """Incremental decoder: `feed` bytes, then `next_frame` until it returns `NEED_DATA`.

    `next_frame` raises `ProtocolError` (or `ChecksumError`) for bytes that can never become a valid
    frame; the decoder then drops what it had buffered so the next exchange starts clean.
    """

    def feed(self, data: bytes) -> None: ...

    def next_frame(self) -> T_co | NeedData: ...
