"""Request bodies of the controller's API: what a client may send, checked before anything acts on it.

Why it is shaped this way:

- **Request bodies mirror the action dataclasses** field for field, discriminated by ``"type"`` (the
  dataclass name); `tests/controller/test_api.py` fails if the two ever drift apart (`ACTION_TYPES`,
  `ACTION_REQUESTS`). A body turns into the same `Action` any other origin builds, so the gate judges an
  HMI command exactly as it judges a sequence's.
- **Bodies are strict**: no extra fields, no "yes" for a boolean, no NaN or infinity for a setpoint (a NaN
  compares false against every limit, so it would slip past range checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from controller.line.actions import Action, ValveName
from controller.line.items import ItemKind

NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _ActionRequest(_Strict):
    type: str
    reason: str = Field("", max_length=500, description="why the operator asks; kept with the record")

    def to_action(self) -> Action:
        action: Action = ACTION_TYPES[self.type](**self.model_dump(exclude={"type", "reason"}))
        return action


_Name = Annotated[str, Field(min_length=1, max_length=64)]


class SetValveRequest(_ActionRequest):
    type: Literal["SetValve"]
    space: _Name
    valve: ValveName
    open: bool


class SetPortRequest(_ActionRequest):
    type: Literal["SetPort"]
    port: _Name
    open: bool


class SetPumpRequest(_ActionRequest):
    type: Literal["SetPump"]
    space: _Name
    running: bool


class SetTurboRequest(_ActionRequest):
    type: Literal["SetTurbo"]
    space: _Name
    running: bool


class SetGasFlowRequest(_ActionRequest):
    type: Literal["SetGasFlow"]
    space: _Name
    flow_sccm: float


class SetHeaterRequest(_ActionRequest):
    type: Literal["SetHeater"]
    space: _Name
    heater: _Name
    setpoint_c: float


class SetSourceRequest(_ActionRequest):
    type: Literal["SetSource"]
    space: _Name
    source: _Name
    enabled: bool
    power_w: float = 0.0
    pulse_rate_hz: float | None = None


class SetShutterRequest(_ActionRequest):
    type: Literal["SetShutter"]
    space: _Name
    shutter: _Name
    open: bool


class SetFilmRequest(_ActionRequest):
    type: Literal["SetFilm"]
    space: _Name
    material: _Name
    density_g_cm3: float
    z_ratio: float
    tooling_pct: float = 100.0


class MoveItemRequest(_ActionRequest):
    type: Literal["MoveItem"]
    item: _Name
    to: _Name


class SetContainerRequest(_ActionRequest):
    type: Literal["SetContainer"]
    container: _Name
    sealed: bool


ActionRequest = Annotated[
    SetValveRequest
    | SetPortRequest
    | SetPumpRequest
    | SetTurboRequest
    | SetGasFlowRequest
    | SetHeaterRequest
    | SetSourceRequest
    | SetShutterRequest
    | SetFilmRequest
    | MoveItemRequest
    | SetContainerRequest,
    Field(discriminator="type"),
]
ACTION_TYPES: Final[Mapping[str, Any]] = {cls.__name__: cls for cls in get_args(Action)}
ACTION_REQUESTS: Final[tuple[type[_ActionRequest], ...]] = get_args(get_args(ActionRequest)[0])


class LoginRequest(_Strict):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ShelveRequest(_Strict):
    reason: str = Field(min_length=1, max_length=500)
    until_s: float = Field(description="epoch seconds when the shelf ends (bounded by the board's maximum)")


class ItemRequest(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=NAME)
    kind: ItemKind = Field(strict=False)  # the enum from its string value
    material: str = Field(min_length=1, max_length=64)
    location: str = Field(min_length=1, max_length=64, description="a space, a container id, or 'room'")
    sealed: bool = False
