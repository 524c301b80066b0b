"""Each device's status as its faceplate shows it: `GET /api/devices`.

Why it is served: a fault a device reports about itself (a turbo's Err107, a gauge's sensor error, the
heater controller's loop break) is decoded into the manual's words by `controller.line.device_faults`
and raised as an alarm; the faceplate of the turbo or the heater must say the same thing as the
device's own status, even when the alarm has been acknowledged and cleared from view, shelved, or
suppressed because an engineer took the device out of service. So the decoding runs here on the
poller's latest readings, the same function the supervisor runs, and the answer carries beside it
whether the device answers its polls and whether it is in service.

It also carries every channel's latest reading with its quality, so the process picture can draw the
chamber's equipment (a source's power and output, the heater's setpoint against its measured
temperature, the gas flow against its setpoint) from one read.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel, Field

from controller.api.context import Ctx
from controller.api.views import ReadingView, reading_view
from controller.line.device_faults import device_conditions
from controller.line.poller import DeviceHealth
from drivers.deposition_sources import FaultCode
from drivers.reading import Reading

router = APIRouter()


class ConditionView(BaseModel):
    key: str
    severity: str
    text: str = Field(description="the decoded fault or warning, in the manual's words")
    guidance: str


class DeviceView(BaseModel):
    name: str
    family: str
    space: str = Field(description='the space it serves, "" for none')
    status: str = Field(
        description='"answering", "NOT ANSWERING: <error>", "not polled yet" or "out of service"'
    )
    in_service: bool
    conditions: list[ConditionView] = Field(description="what the device reports wrong with itself, decoded")
    readings: dict[str, ReadingView]
    latched: dict[str, str] = Field(
        default_factory=dict,
        description="a deposition-source rack: each source's latched fault in the supply's words",
    )


class DevicesView(BaseModel):
    devices: list[DeviceView]


def _latched(readings: dict[str, Reading]) -> dict[str, str]:
    """A source rack reports no fault of its own to the alarms (device_faults): its sources' latched
    fault codes, in the supply's words, are for the source's faceplate."""
    out = {}
    for channel, reading in readings.items():
        if channel.endswith(".fault") and reading.value == reading.value and reading.value:
            code = int(reading.value)
            words = FaultCode(code).name.lower().replace("_", " ") if code in set(FaultCode) else "unknown"
            out[channel.removesuffix(".fault")] = f"{words} (code {code})"
    return out


def _status(health: DeviceHealth | None, in_service: bool) -> str:
    if not in_service:
        return "out of service"
    if health is None or (health.last_success_ts is None and not health.faulted):
        return "not polled yet"
    if health.faulted:
        return f"NOT ANSWERING: {health.last_error or health.last_error_type}"
    return "answering"


@router.get("/api/devices", response_model=DevicesView, tags=["read"])
async def get_devices(ctx: Ctx) -> DevicesView:
    """Every configured device: whether it answers, whether it is in service, its decoded faults and
    its latest readings."""
    ctl = ctx.controller
    now = time.monotonic()
    snapshot = ctl.poller.snapshot(now_mono=now)
    health = ctl.poller.health()
    out_of_service = ctl.modes.current.out_of_service
    views = []
    for device in ctl.config.devices:
        readings = {channel: r for (name, channel), r in snapshot.items() if name == device.name}
        in_service = device.name not in out_of_service
        conditions = device_conditions(device.family, readings) if in_service else []
        views.append(
            DeviceView(
                name=device.name,
                family=device.family,
                space=device.space or "",
                status=_status(health.get(device.name), in_service),
                in_service=in_service,
                conditions=[
                    ConditionView(key=c.key, severity=c.severity.value, text=c.text, guidance=c.guidance)
                    for c in conditions
                ],
                readings={channel: reading_view(r, now) for channel, r in sorted(readings.items())},
                latched=_latched(readings) if device.family == "deposition_sources" else {},
            )
        )
    return DevicesView(devices=views)
