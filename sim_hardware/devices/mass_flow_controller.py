"""An Alicat MC-series mass-flow controller answering the ASCII protocol, from a flow model it is given.

The session owns only what the *instrument* owns: its unit id, command parsing, the register file it
exposes, front-panel lock, valve hold, tare offsets and protocol faults. Flow, pressure and
temperature come from an `MfcBackend` supplied by whoever builds the session (the plant model, or a
small model in a test), so the physics lives in one place. Frames are built with the driver's codec
in the device role.

What it follows (no Alicat manual is kept in a public repository we could read; these are the
sources, devices.md §6): the command set and reply shapes of the numat/alicat driver (poll, ``S``,
``$$W46=``/``$$R46`` gas select, ``R122``/``W122`` loop variable with decimal statistic codes 37 mass
flow / 36 volumetric flow, ``$$L``/``$$U``, ``$$V``, ``$$PC``, ``$$H``/``$$C``, ``T``, ``VE``, the
``$$r21-23``/``$$r85`` PID registers) and, for the exact text of ``VE``, ``??M*``, ``??D*``, ``??G*``,
``LS``, ``LV`` and the poll line, the hardware captures of a 10v20.0-R24 MC-500SCCM-D kept in the
alicatlib test fixtures (its ``??D*`` rows for an SCCM-ranged MC unit are reproduced byte for byte,
with our model number and serial). Behaviour:
- commands are not case-sensitive (``a$$r46`` is ``A$$R46``); a line for another unit gets no reply,
  as on a shared RS-485 bus;
- a refusal is the unit id and ``?`` (``A ?``): what alicatlib reports real units send (its one
  captured bare ``?`` answers ``DV``, whose replies never carry a unit id); numat/alicat and
  pyalicat compare against a bare ``?``, the primer's form, so `bare_refusals` switches to that;
- status tokens follow the data frame in the order of the ``??D*`` rows (``ADC OPL POV P2O TOV VOV
  MOV TMF OVR COM HLD EXH GTA LCK``): over-range flags from the backend, ``HLD`` while the valve is
  held (``$$H``: the valve keeps the present flow, setpoints wait until ``$$C``), ``LCK`` while the
  front panel is locked (``$$L``; serial commands still work);
- ``$$V`` (or ``V``) tares flow: the present mass and volumetric flow read zero from then on;
  ``$$PC`` (or ``PC``) tares absolute pressure to the onboard barometer (`barometer_psia`);
- ``G <n>`` (the pre-10v05 gas select) answers a data frame; ``$$W46=n`` a register line; an index
  past the standard table that is not a mix slot (236-255) is refused;
- ``LS [value]`` answers ``A <current> <requested> 12 SCCM``, ``LV [37|36]`` ``A 37``;
- a setpoint outside 0..full scale, or a register the model does not expose, is refused.
Not implemented (refused with ``A ?``, as a unit without the option refuses them): totaliser
(``T``: no totaliser fitted), gas mixes (``GM``/``GD``), streaming mode (``@``), ramp settings
(``SR``, ``LSRC``), batch (``$$TB``), ``DV``, ``FPF``, ``DCU``, ``GS``, unit and setpoint-source
changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Set
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
    Instruction,
    Poll,
    ReadRegister,
    RegisterValue,
    SetSetpoint,
    UnknownCommand,
    Verb,
    WriteRegister,
    check_unit_id,
    encode_data_frame,
    encode_refusal,
    encode_register_reply,
    gas_name,
)

log = logging.getLogger(__name__)

CONTROL_LOOP_REGISTER = 122
CONTROL_MASS_FLOW = 0x25  # statistic 37
CONTROL_VOLUMETRIC_FLOW = 0x24  # statistic 36
MIX_SLOTS = range(236, 256)
STATUS_ORDER = (
    "ADC",
    "OPL",
    "POV",
    "P2O",
    "TOV",
    "VOV",
    "MOV",
    "TMF",
    "OVR",
    "COM",
    "HLD",
    "EXH",
    "GTA",
    "LCK",
)
STANDARD_PRESSURE_PSIA = 14.696
_PID_REGISTERS = {21: 4000, 22: 2500, 23: 0, 85: 1}  # P, D, I gains and the loop type (PD/PDF) [U]


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


def data_frame_format(unit_id: str) -> list[str]:
    """``??D*``: the field table of an SCCM-ranged MC controller (the captured 10v20 layout)."""
    header = f"{unit_id} D00 ID_ NAME{'_' * 22} TYPE{'_' * 7} WIDTH NOTES{'_' * 19}"
    rows = [
        ("700", "Unit ID", "string", "1", ""),
        ("002", "Abs Press", "s decimal", "7/2", "010 02 PSIA"),
        ("003", "Flow Temp", "s decimal", "7/2", "002 02 `C"),
        ("004", "Volu Flow", "s decimal", "7/2", "012 02 CCM"),
        ("005", "Mass Flow", "s decimal", "7/2", "012 02 SCCM"),
        ("037", "Mass Flow Setpt", "s decimal", "7/2", "012 02 SCCM"),
        ("703", "Gas", "string", "6", ""),
        ("701", "*Error", "string", "3", "ADC"),
        *(("702", "*Status", "string", "3", flag) for flag in STATUS_ORDER[1:]),
    ]
    lines = [header]
    for n, (code, name, kind, width, notes) in enumerate(rows, start=1):
        lines.append(f"{unit_id} D{n:02d} {code} {name:<26} {kind:<11} {width:>5} {notes}".rstrip())
    return lines


class MassFlowControllerSession:
    """Device session for `PtyEndpoint` / `TcpEndpoint`: ``lambda: MassFlowControllerSession("A", model)``.

    Fault hooks: `hold_readings()` freezes the measured fields (a stuck sensor board) while the
    setpoint still follows commands; `refuse_next` answers that many commands with a refusal;
    `reply_as_unit` answers as another unit id (cross-talk on a mis-addressed bus);
    `ignore_setpoints` keeps the old setpoint while still answering with a data frame, as a unit
    whose setpoint source is set to analog does.
    """

    def __init__(
        self,
        unit_id: str,
        backend: MfcBackend,
        *,
        model: str = "MC-100SCCM-D",
        serial_number: str = "400172",
        firmware: str = "10v20.0-R24",
        firmware_date: str = "Mar  4 2025,10:12:55",
        barometer_psia: float = STANDARD_PRESSURE_PSIA,
        bare_refusals: bool = False,
    ) -> None:
        self.unit_id = check_unit_id(unit_id)
        self.backend = backend
        self.model = model
        self.serial_number = serial_number
        self.firmware = firmware
        self.firmware_date = firmware_date
        self.barometer_psia = barometer_psia
        self.bare_refusals = bare_refusals
        self.refuse_next = 0
        self.reply_as_unit: str | None = None
        self.ignore_setpoints = False
        self.locked = False
        self.valve_held = False
        self.registers: dict[int, int] = {CONTROL_LOOP_REGISTER: CONTROL_MASS_FLOW, **_PID_REGISTERS}
        self._requested_sccm: float | None = None
        self._flow_tare_sccm = 0.0
        self._pressure_tare_psia = 0.0
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
            return self._refusal()
        match command:
            case Poll():
                return self._frame()
            case SetSetpoint(setpoint_sccm=setpoint):
                return self._frame() if self._set_setpoint(setpoint) else self._refusal()
            case ReadRegister(register=register):
                return self._register_reply(register)
            case WriteRegister(register=register, value=value):
                return self._write_register(register, value)
            case Instruction():
                return self._instruction(command)
            case UnknownCommand():
                return self._refusal()

    # commands

    def _set_setpoint(self, setpoint: float) -> bool:
        if not (math.isfinite(setpoint) and 0.0 <= setpoint <= self.backend.full_scale_sccm):
            return False
        self._requested_sccm = setpoint
        if not self.ignore_setpoints and not self.valve_held:
            self.backend.setpoint_sccm = setpoint
        return True

    def _instruction(self, command: Instruction) -> bytes:
        verb, argument = command.verb, command.argument
        text_replies: dict[Verb, Callable[[], list[str]]] = {
            Verb.FIRMWARE: lambda: [f"{self._reply_unit()}   {self.firmware} {self.firmware_date}"],
            Verb.MANUFACTURING_INFO: self._manufacturing_info,
            Verb.DATA_FRAME_FORMAT: lambda: data_frame_format(self._reply_unit()),
            Verb.GAS_LIST: lambda: [f"{self._reply_unit()} G{i:02d} {g:>8}" for i, g in enumerate(GASES)],
        }
        if verb in text_replies:
            return b"" if argument else self._lines(text_replies[verb]())
        if verb is Verb.LOOP_SETPOINT:
            return self._loop_setpoint(argument)
        if verb is Verb.LOOP_VARIABLE:
            return self._loop_variable(argument)
        if verb is Verb.SELECT_GAS:
            return self._select_gas(argument)
        if argument or not self._act(verb):
            return self._refusal()
        return self._frame()

    def _act(self, verb: Verb) -> bool:
        """The commands that answer with a data frame; False for one the unit refuses."""
        if verb in (Verb.LOCK, Verb.UNLOCK):
            self.locked = verb is Verb.LOCK
        elif verb is Verb.TARE_FLOW:
            self._flow_tare_sccm = self.backend.mass_flow_sccm
        elif verb is Verb.TARE_PRESSURE:
            self._pressure_tare_psia = self.backend.pressure_psia - self.barometer_psia
        elif verb is Verb.HOLD:
            self.valve_held = True
            self.backend.setpoint_sccm = max(self.backend.mass_flow_sccm, 0.0)
        elif verb is Verb.CANCEL_HOLD:
            self.valve_held = False
            if self._requested_sccm is not None and not self.ignore_setpoints:
                self.backend.setpoint_sccm = self._requested_sccm
        else:
            return False  # T: no totaliser fitted
        return True

    def _loop_setpoint(self, argument: str) -> bytes:
        if argument:
            try:
                value = float(argument)
            except ValueError:
                return self._refusal()
            if not self._set_setpoint(value):
                return self._refusal()
        current = self.backend.setpoint_sccm
        requested = self._requested_sccm if self._requested_sccm is not None else current
        return self._lines([f"{self._reply_unit()} {current:+07.2f} {requested:+07.2f} 12 SCCM"])

    def _loop_variable(self, argument: str) -> bytes:
        if argument:
            code = {"37": CONTROL_MASS_FLOW, "36": CONTROL_VOLUMETRIC_FLOW}.get(argument)
            if code is None:
                return self._refusal()
            self.registers[CONTROL_LOOP_REGISTER] = code
        return self._lines([f"{self._reply_unit()} {self.registers[CONTROL_LOOP_REGISTER]}"])

    def _select_gas(self, argument: str) -> bytes:
        if not argument.isdigit() or not self._gas_allowed(int(argument)):
            return self._refusal()
        self.backend.gas_index = int(argument)
        return self._frame()

    def _manufacturing_info(self) -> list[str]:
        uid = self._reply_unit()
        payloads = [
            "ALICAT SCIENTIFIC",
            "www.alicat.com",
            "Ph   520-290-6060",
            "info@alicat.com",
            f"Model Number {self.model}",
            f"Serial Number {self.serial_number}",
            "Date Manufactured 03/04/2025",
            "Date Calibrated   03/04/2025",
            "Calibrated By     SIM",
            f"Software Revision {self.firmware}",
        ]
        return [f"{uid}  M{n:02d} {text}" for n, text in enumerate(payloads)]

    # registers

    def _gas_allowed(self, index: int) -> bool:
        return index < len(GASES) or index in MIX_SLOTS

    def _write_register(self, register: int, value: int) -> bytes:
        if register == GAS_REGISTER:
            index = value & GAS_INDEX_MASK
            if not self._gas_allowed(index):
                return self._refusal()
            self.backend.gas_index = index
        elif register == CONTROL_LOOP_REGISTER:
            if value not in (CONTROL_MASS_FLOW, CONTROL_VOLUMETRIC_FLOW):
                return self._refusal()
            self.registers[register] = value
        elif register in self.registers:
            self.registers[register] = value
        else:
            return self._refusal()
        return self._register_reply(register)

    def _register_reply(self, register: int) -> bytes:
        if register == GAS_REGISTER:
            value = self.backend.gas_index
        elif register in self.registers:
            value = self.registers[register]
        else:
            return self._refusal()
        return encode_register_reply(RegisterValue(self._reply_unit(), register, value))

    # replies

    def _reply_unit(self) -> str:
        return self.reply_as_unit or self.unit_id

    def _refusal(self) -> bytes:
        return encode_refusal("" if self.bare_refusals else self._reply_unit())

    @staticmethod
    def _lines(lines: list[str]) -> bytes:
        return "".join(f"{line}\r" for line in lines).encode("ascii")

    def _status(self) -> tuple[str, ...]:
        flags = set(self.backend.flags)
        if self.valve_held:
            flags.add("HLD")
        if self.locked:
            flags.add("LCK")
        return tuple(t for t in STATUS_ORDER if t in flags) + tuple(sorted(flags - set(STATUS_ORDER)))

    def _measure(self) -> DataFrame:
        b = self.backend
        tare = self._flow_tare_sccm
        vol_tare = tare * b.volumetric_flow / b.mass_flow_sccm if b.mass_flow_sccm else 0.0
        return DataFrame(
            unit_id=self.unit_id,
            pressure_psia=b.pressure_psia - self._pressure_tare_psia,
            temperature_c=b.temperature_c,
            volumetric_flow_ccm=b.volumetric_flow - vol_tare,
            mass_flow_sccm=b.mass_flow_sccm - tare,
            setpoint_sccm=b.setpoint_sccm,
            total_scc=None,
            gas=gas_name(b.gas_index),
            status=self._status(),
        )

    def _frame(self) -> bytes:
        live = self._measure()
        frame = (
            live
            if self._held is None
            else replace(self._held, setpoint_sccm=live.setpoint_sccm, gas=live.gas, status=live.status)
        )
        return encode_data_frame(replace(frame, unit_id=self._reply_unit()))
