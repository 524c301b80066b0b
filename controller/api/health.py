"""`GET /api/health`: is the line service doing its job, and if not quite, what is wrong, by name.

Why it is built this way:

- **Three answers, each with its reasons.** `ok`: every device answers, the historian writes, the
  broker (when configured) is connected. `degraded`: the service supervises and serves, but something
  it depends on is missing: a device not answering (named, with its link and error), a device out of
  service is not a fault (maintenance put it there), the historian failing and spilling to disk
  (nothing lost yet), the broker unreachable (telemetry buffered). `failed`: the service cannot do
  what it is for: acquisition keeps crashing, no device answers at all, or the historian is losing
  records.
- **The HTTP status a load balancer or a watchdog acts on.** They take any 2xx as "up" and anything
  else as "take it out / restart it". A degraded line must stay reachable, because its HMI is where
  the operators see and handle the fault, and a restart does not make a silent transmitter answer:
  so `ok` and `degraded` answer 200 and a monitor that alerts on degradation reads `status`; `failed`
  answers 503.
- **The broker's state is the alarm's.** The service raises `mqtt.broker` while the bridge cannot
  reach the broker and clears it when it can; health reads that condition instead of a second channel.
"""

from __future__ import annotations

import contextlib
from typing import Final, Literal

from fastapi import APIRouter, Response

from controller.api.context import ApiContext, Ctx
from controller.api.views import DeviceHealthView, HealthReasonView, HealthView
from controller.line.alarms import UnknownAlarm
from controller.line.poller import PollerFailure

router = APIRouter()

BROKER_ALARM: Final = "mqtt.broker"
FAILED_STATUS: Final = 503


@router.get(
    "/api/health",
    response_model=HealthView,
    tags=["read"],
    responses={FAILED_STATUS: {"model": HealthView, "description": "the line service has failed"}},
)
async def get_health(ctx: Ctx, response: Response) -> HealthView:
    view = line_health(ctx)
    if view.status == "failed":
        response.status_code = FAILED_STATUS
    return view


def line_health(ctx: ApiContext) -> HealthView:
    """The service's health now, with a reason for everything that is not as it should be."""
    poller = ctx.controller.poller
    problem = ""
    try:
        poller.check()
    except PollerFailure as exc:
        problem = str(exc)
    health = poller.health()
    out_of_service = ctx.controller.modes.current.out_of_service
    reasons: list[HealthReasonView] = []
    if problem:
        reasons.append(HealthReasonView(level="failed", kind="acquisition", subject="poller", text=problem))
    faulted = [h for h in health.values() if h.faulted and h.device not in out_of_service]
    in_service = [h for h in health.values() if h.device not in out_of_service]
    line_blind = bool(in_service) and len(faulted) == len(in_service)
    for h in sorted(faulted, key=lambda h: h.device):
        error = f": {h.last_error}" if h.last_error else ""
        reasons.append(
            HealthReasonView(
                level="failed" if line_blind else "degraded",
                kind="device",
                subject=h.device,
                text=f"{h.device} not answering on {h.link} ({h.consecutive_failures} polls failed){error}",
            )
        )
    reasons += _historian_reasons(ctx)
    reasons += _broker_reasons(ctx)
    status: Literal["ok", "degraded", "failed"] = (
        "failed" if any(r.level == "failed" for r in reasons) else "degraded" if reasons else "ok"
    )
    return HealthView(
        status=status,
        reasons=reasons,
        ok=status == "ok",
        problem=problem,
        devices=[
            DeviceHealthView(
                device=h.device,
                link=h.link,
                faulted=h.faulted,
                consecutive_failures=h.consecutive_failures,
                last_error=h.last_error,
                last_success_ts=h.last_success_ts,
            )
            for h in health.values()
        ],
        ws_clients=ctx.feed.clients,
        ws_dropped=ctx.feed.dropped,
    )


def _historian_reasons(ctx: ApiContext) -> list[HealthReasonView]:
    if ctx.historian is None:
        return []
    stats = ctx.historian.stats
    if stats.dropped:
        text = f"{stats.dropped} rows lost since start ({stats.detail})"
        return [HealthReasonView(level="failed", kind="historian", subject="historian", text=text)]
    if stats.healthy:
        return []
    waiting = f"; {stats.spilled} rows spilled to disk, {stats.buffered} in memory, waiting to be written"
    text = f"historian not writing: {stats.detail}{waiting}"
    return [HealthReasonView(level="degraded", kind="historian", subject="historian", text=text)]


def _broker_reasons(ctx: ApiContext) -> list[HealthReasonView]:
    with contextlib.suppress(UnknownAlarm):
        alarm = ctx.controller.alarms.get(BROKER_ALARM)
        if alarm.condition_active:
            detail = alarm.evidence.get("text", "")
            text = f"MQTT broker unreachable: telemetry is buffered{f' ({detail})' if detail else ''}"
            return [HealthReasonView(level="degraded", kind="broker", subject="mqtt", text=text)]
    return []


__all__ = ["line_health", "router"]
