"""What the bridge is given besides the line: its tuning, the counters it keeps, and the hooks for
back-fill and health."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.line.poller import Sample


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    """Tuning that is not plant configuration (the config file says where the broker is, not this)."""

    telemetry_min_interval_s: float = 1.0
    telemetry_heartbeat_s: float = 10.0
    tick_s: float = 0.25  # pacing and station-state checks; also the bound on every idle wait
    telemetry_buffer: int = 20_000
    record_buffer: int = 5_000
    publish_batch: int = 20  # paho's default in-flight window
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    keepalive_s: int = 10  # also how long a silently dead broker can go unnoticed (1.5 x)
    operation_timeout_s: float = 5.0  # CONNACK, PUBACK, SUBACK
    command_queue: int = 100
    max_command_bytes: int = 16_384
    archive_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0  # for the command in the gate and for flushing the outbox on stop
    client_id: str = ""  # default: depline-<line>-bridge

    def __post_init__(self) -> None:
        positive = ("telemetry_min_interval_s", "telemetry_heartbeat_s", "tick_s", "reconnect_min_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if min(self.telemetry_buffer, self.record_buffer, self.publish_batch, self.command_queue) < 1:
            raise ValueError("buffer sizes, publish_batch and command_queue must be >= 1")


@dataclass(slots=True)
class BridgeStats:
    """Counters for the HMI and the health endpoint; `dropped_*` are lifetime totals."""

    produced: int = 0
    published: int = 0
    dropped_telemetry: int = 0
    dropped_records: int = 0
    gap_filled: int = 0
    connects: int = 0
    connection_failures: int = 0
    commands_received: int = 0
    commands_submitted: int = 0
    commands_rejected: int = 0
    crashes: int = 0


class SampleArchive(Protocol):
    """Where the bridge back-fills telemetry it had to drop (the historian implements it)."""

    async def samples_since(self, ts: float) -> Sequence[Sample]:
        """Every sample with `reading.ts >= ts` the archive holds, in any order (the bridge sorts)."""
        ...


HealthCallback = Callable[[bool, str], None]
