"""An Alicat-style mass-flow controller answering the ASCII protocol, from a flow model it is given.

The session owns only what the *instrument* owns: its unit id, command parsing, the register file it
exposes and protocol faults. Flow, pressure and temperature come from an `MfcBackend` supplied by
whoever builds the session (the plant model, or a small model in a test), so the physics lives in
one place. Frames are built with the driver's codec in the device role.

Behaviour where devices.md is silent [U]: a setpoint outside 0..full scale and a register the model
does not expose are answered with ``?``; a line addressed to another unit gets no reply at all, as on
a shared RS-485 bus.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Set
from dataclasses import replace
from typing import Protocol

from drivers.codec import NEED_DATA
from drivers.errors import ProtocolError
from drivers.mass_flow_controller import (
    GAS_INDEX_MASK,
    GAS_REGISTER,
    GASES,
    Command,
    CommandDecoder,
    DataFrame,
    Poll,
    ReadRegister,
    RegisterValue,
    SetSetpoint,
    UnknownCommand,
    WriteRegister,
    check_unit_id,
    encode_data_frame,
    encode_refusal,
    encode_register_reply,
    gas_name,
)

log = logging.getLogger(__name__)

CONTROL_LOOP_REGISTER = 122
CONTROL_MASS_FLOW = 0x25
MIX_SLOTS = range(236, 256)


class MfcBackend(Protocol):
    """The physical side of one controller, as the instrument's sensors see it.

    `setpoint_sccm` and `gas_index` are written by the session when the host commands them; the
    rest is read at every reply. `flags` holds the status tokens the unit would print (``MOV`` ...).
    """

    setpoint_sccm: float
    gas_index: int

    @property
    def mass_flow_sccm(self) -> float: ...

    @property
    def pressure_psia(self) -> float: ...

    @property
    def temperature_c(self) -> float: ...

    @property
    def volumetric_flow(self) -> float:
        """Volumetric flow in ccm (the volumetric unit of an SCCM-ranged controller)."""
        ...

    @property
    def full_scale_sccm(self) -> float: ...

    @property
    def flags(self) -> Set[str]: ...


class MassFlowControllerSession:
    """Device session for `PtyEndpoint` / `TcpEndpoint`: ``lambda: MassFlowControllerSession("A", model)``.

    Fault hooks: `hold_readings()` freezes the measured fields (a stuck sensor board) while the
    setpoint still follows commands; `refuse_next` answers that many commands with ``?``;
    `reply_as_unit` answers as another unit id (cross-talk on a mis-addressed bus);
    `ignore_setpoints` keeps the old setpoint while still answering with a data frame, as a unit
    whose setpoint source is set to analog does.
    """

    def __init__(self, unit_id: str, backend: MfcBackend) -> None:
        self.unit_id = check_unit_id(unit_id)
        self.backend = backend
        self.refuse_next = 0
        self.reply_as_unit: str | None = None
        self.ignore_setpoints = False
        self.registers: dict[int, int] = {CONTROL_LOOP_REGISTER: CONTROL_MASS_FLOW}
        self._held: DataFrame | None = None
        self._decoder = CommandDecoder()

    def hold_readings(self) -> None:
        self._held = self._measure()

    def release_readings(self) -> None:
        self._held = None

    def receive(self, data: bytes) -> bytes:
        self._decoder.feed(data)
        replies = bytearray()
        while True:
            try:
                command = self._decoder.next_frame()
            except ProtocolError as exc:
                log.info("mfc ignored a line", extra={"unit": self.unit_id, "error": str(exc)})
                continue
            if command is NEED_DATA:
                return bytes(replies)
            replies += self.answer(command)

    def answer(self, command: Command) -> bytes:
        """The reply to one command; b"" for a line addressed to another unit."""
        if command.unit_id != self.unit_id:
            return b""
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return encode_refusal()
        match command:
            case Poll():
                return self._frame()
            case SetSetpoint(setpoint_sccm=setpoint):
                if not (math.isfinite(setpoint) and 0.0 <= setpoint <= self.backend.full_scale_sccm):
                    return encode_refusal()
                if not self.ignore_setpoints:
                    self.backend.setpoint_sccm = setpoint
                return self._frame()
            case ReadRegister(register=register):
                return self._register_reply(register)
            case WriteRegister(register=register, value=value):
                return self._write_register(register, value)
            case UnknownCommand():
                return encode_refusal()

    def _write_register(self, register: int, value: int) -> bytes:
        if register == GAS_REGISTER:
            index = value & GAS_INDEX_MASK
            if index >= len(GASES) and index not in MIX_SLOTS:
                return encode_refusal()
            self.backend.gas_index = index
        elif register in self.registers:
            self.registers[register] = value
        else:
            return encode_refusal()
        return self._register_reply(register)

    def _register_reply(self, register: int) -> bytes:
        if register == GAS_REGISTER:
            value = self.backend.gas_index
        elif register in self.registers:
            value = self.registers[register]
        else:
            return encode_refusal()
        return encode_register_reply(RegisterValue(self._reply_unit(), register, value))

    def _reply_unit(self) -> str:
        return self.reply_as_unit or self.unit_id

    def _measure(self) -> DataFrame:
        b = self.backend
        return DataFrame(
            unit_id=self.unit_id,
            pressure_psia=b.pressure_psia,
            temperature_c=b.temperature_c,
            volumetric_flow_ccm=b.volumetric_flow,
            mass_flow_sccm=b.mass_flow_sccm,
            setpoint_sccm=b.setpoint_sccm,
            total_scc=None,
            gas=gas_name(b.gas_index),
            status=tuple(sorted(b.flags)),
        )

    def _frame(self) -> bytes:
        live = self._measure()
        frame = (
            live
            if self._held is None
            else replace(self._held, setpoint_sccm=live.setpoint_sccm, gas=live.gas)
        )
        return encode_data_frame(replace(frame, unit_id=self._reply_unit()))
