"""The plant model of the simulated line: gas, pumps, valves, heat and film on a virtual clock.

Pure physics, no I/O: device simulators read values from these objects and write commands into
them; `PlantRunner` (the only asyncio here) keeps a plant on a `VirtualClock`.

    plant = Plant.from_spec(standard_line_spec())
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    plant.advance(120.0)
    plant.spaces["inlet"].pressure_pa
"""

from sim_hardware.plant.clock import PlantRunner, VirtualClock
from sim_hardware.plant.deposition import DepositionSource, Qcm, QcmChannel, Substrate
from sim_hardware.plant.flow import Door, Opening, Valve
from sim_hardware.plant.gas import SPECIES_NAMES, Species
from sim_hardware.plant.glovebox import Glovebox
from sim_hardware.plant.humidity import (
    frost_point_1atm_c,
    frost_point_at_pressure_c,
    frost_point_c,
    h2o_ppmv_at_frost_point,
    ice_vapour_pressure_pa,
)
from sim_hardware.plant.items import ItemTraffic
from sim_hardware.plant.line import Plant
from sim_hardware.plant.mfc import Mfc
from sim_hardware.plant.pumps import RoughLine, RoughPump
from sim_hardware.plant.space import GasSupply, Load, Reservoir, Space
from sim_hardware.plant.spec import (
    GasSupplySpec,
    GloveboxSpec,
    HeaterSpec,
    IntegrationSpec,
    ItemTrafficSpec,
    LineParts,
    LineSpec,
    LoadSpec,
    MfcSpec,
    OpeningSpec,
    PlantSpecError,
    QcmChannelSpec,
    QcmSpec,
    RoomSpec,
    RoughLineSpec,
    RoughPumpSpec,
    SourceSpec,
    SpaceSpec,
    TurboSpec,
    antechamber_parts,
    combine,
    gate_between,
    item_traffic_spec,
    process_chamber_parts,
    q_mbar_l_s_cm2,
    shared_antechamber_line_spec,
    standard_line_spec,
    transfer_chamber_parts,
    two_chamber_line_spec,
)
from sim_hardware.plant.thermal import Heater
from sim_hardware.plant.turbo import Turbo

__all__ = [
    "SPECIES_NAMES",
    "DepositionSource",
    "Door",
    "GasSupply",
    "GasSupplySpec",
    "Glovebox",
    "GloveboxSpec",
    "Heater",
    "HeaterSpec",
    "IntegrationSpec",
    "ItemTraffic",
    "ItemTrafficSpec",
    "LineParts",
    "LineSpec",
    "Load",
    "LoadSpec",
    "Mfc",
    "MfcSpec",
    "Opening",
    "OpeningSpec",
    "Plant",
    "PlantRunner",
    "PlantSpecError",
    "Qcm",
    "QcmChannel",
    "QcmChannelSpec",
    "QcmSpec",
    "Reservoir",
    "RoomSpec",
    "RoughLine",
    "RoughLineSpec",
    "RoughPump",
    "RoughPumpSpec",
    "SourceSpec",
    "Space",
    "SpaceSpec",
    "Species",
    "Substrate",
    "Turbo",
    "TurboSpec",
    "Valve",
    "VirtualClock",
    "antechamber_parts",
    "combine",
    "frost_point_1atm_c",
    "frost_point_at_pressure_c",
    "frost_point_c",
    "gate_between",
    "h2o_ppmv_at_frost_point",
    "ice_vapour_pressure_pa",
    "item_traffic_spec",
    "process_chamber_parts",
    "q_mbar_l_s_cm2",
    "shared_antechamber_line_spec",
    "standard_line_spec",
    "transfer_chamber_parts",
    "two_chamber_line_spec",
]
