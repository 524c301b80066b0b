"""The line's topology as the HMI draws it: `GET /api/topology`.

Why it is served and not drawn by hand: every line variant (the standard line, a shared antechamber, two
chambers) gets its process picture from its own configuration, so a site that adds a space or a port
sees it on screen without anyone editing a drawing. The page lays the picture out from this (spaces
along the chain of ports, each vessel with its valves, pump, turbo, gauges and chamber equipment) and
animates it with the live state.

It says what *exists*, not what it reads: which valves a space has, whether its pump is a rough or a
backing pump, whether it has a turbo, which gauges and atmosphere sensors watch it. A space with no
frost-point or O2 sensor is drawn with its atmosphere "unknown (no sensor)" unless the pressure alone
says what is in it, instead of a guess dressed as a reading.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from controller.api.context import Ctx
from controller.config.line_config import LineConfig
from controller.line.actions import VALVES

router = APIRouter()


class GaugeTopology(BaseModel):
    device: str
    channel: str
    head: str = Field(description='the gauge head type when configured ("PKR", "CMR1000"), else ""')


class SourceTopology(BaseModel):
    name: str = Field(description="the source's name on its device's channels (`<name>.power`)")
    kind: str
    methods: list[str]
    power_w: tuple[float, float] = Field(description="the power window it may be run in")


class SpaceTopology(BaseModel):
    name: str
    kind: str
    label: str = Field(description="the space in the operator's words")
    pump: Literal["rough", "backing"]
    turbo: bool
    valves: list[str]
    gauges: list[GaugeTopology]
    frost_sensor: bool
    o2_sensor: bool
    heater: bool
    gas_flow: bool
    sources: bool
    source_table: list[SourceTopology] = Field(description="the chamber's sources, from the source table")
    gas: str = Field(description='the supply feeding its gas fill and MFC ("Ar 99.99 %"), "" if none')
    devices: dict[str, str] = Field(description="family -> device name of the equipment bound to it")


class PortTopology(BaseModel):
    name: str
    kind: str
    label: str
    between: list[str]


class TopologyView(BaseModel):
    line: str
    travel_timeout_s: float = Field(
        description="how long a door or gate valve may travel before it counts as stuck"
    )
    recording_heartbeat_s: float = Field(
        description="a recorded channel is stored at least this often: a trend holds a recorded value as long"
    )
    spaces: list[SpaceTopology]
    ports: list[PortTopology]


def space_label(name: str, kind: str) -> str:
    """'inlet' + 'antechamber' -> 'inlet antechamber'; 'process' + 'process_chamber' -> 'process chamber'."""
    words = kind.replace("_", " ")
    return words if words.startswith(name) else f"{name} {words}"


def port_label(kind: str, between: tuple[str, str]) -> str:
    words = {"outer_door": "outer door", "gate_valve": "gate valve", "inner_door": "inner door"}
    inside = [b for b in between if b != "room"]
    if len(inside) == 1:
        return f"{inside[0]} {words.get(kind, kind.replace('_', ' '))}"
    return f"{words.get(kind, kind.replace('_', ' '))} {between[0]}–{between[1]}"


def _supply_of(config: LineConfig, space: str) -> str:
    return next((f"{g.gas} {g.purity_percent:g} %" for g in config.gas_supplies if space in g.feeds), "")


def topology_view(config: LineConfig, travel_timeout_s: float) -> TopologyView:
    gauges: dict[str, list[GaugeTopology]] = {s.name: [] for s in config.spaces}
    families: dict[str, dict[str, str]] = {s.name: {} for s in config.spaces}
    for device in config.devices:
        heads = device.params.get("gauge_types", [])
        for index, (channel, space) in enumerate(device.channels.items()):
            if device.family == "tpg36x" and space in gauges:
                head = heads[index] if isinstance(heads, list) and index < len(heads) else ""
                gauges[space].append(GaugeTopology(device=device.name, channel=channel, head=str(head)))
        if device.space in families:
            families[device.space].setdefault(device.family, device.name)
    spaces = [
        SpaceTopology(
            name=s.name,
            kind=s.kind,
            label=space_label(s.name, s.kind),
            pump="rough" if s.rough_pumped else "backing",
            turbo="pfeiffer_turbo" in families[s.name],
            valves=[v for v in VALVES if v != "turbo_gate" or s.kind == "process_chamber"],
            gauges=gauges[s.name],
            frost_sensor="dewpoint_transmitter" in families[s.name],
            o2_sensor="glovebox_controller" in families[s.name],
            heater="temperature_controller" in families[s.name],
            gas_flow="mass_flow_controller" in families[s.name],
            sources="deposition_sources" in families[s.name],
            source_table=[
                SourceTopology(name=e.name, kind=e.kind, methods=list(e.methods), power_w=e.power_w)
                for e in config.sources_in(s.name)
            ],
            gas=_supply_of(config, s.name),
            devices=families[s.name],
        )
        for s in config.spaces
    ]
    ports = [
        PortTopology(name=p.name, kind=p.kind, label=port_label(p.kind, p.between), between=list(p.between))
        for p in config.ports
    ]
    return TopologyView(
        line=config.name,
        travel_timeout_s=travel_timeout_s,
        recording_heartbeat_s=config.recording.heartbeat_s,
        spaces=spaces,
        ports=ports,
    )


@router.get("/api/topology", response_model=TopologyView, tags=["read"])
async def get_topology(ctx: Ctx) -> TopologyView:
    """What the line is made of, for the process picture: spaces, ports and the equipment on each."""
    ctl = ctx.controller
    return topology_view(ctl.config, ctl.supervisor.travel_timeout_s)
