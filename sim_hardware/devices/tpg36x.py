"""A simulated Pfeiffer TPG 36x answering the mnemonics protocol through `drivers.tpg36x`'s device role.

Build it from one `Tpg36xState` (the front-panel settings and the gauge heads, which survive a power
cycle) and give the endpoint a factory of sessions (what a connection or a power-up resets)::

    state = Tpg36xState([TpgChannel(PKR, lambda: plant.chamber_pa), TpgChannel(CMR_10MBAR, ...)])
    PtyEndpoint("tpg-process", lambda: Tpg36xSession(state), SerialSettings(9600))

Each session streams PRX lines every `stream_interval_s` until the first character arrives (the real
power-up COM mode), so `PtyEndpoint.power_cycle()` brings the stream back.

Gauge ranges [U, typical data-sheet values]: PKR (Pirani + cold cathode) 5e-7..1e5 Pa; TPR (Pirani)
5e-2..1e5 Pa; CMR with a 10 mbar head 1e-1 Pa (four decades below full scale) to 1.1e3 Pa (110 % of
full scale). Below the range the gauge reports status 1 with the lower limit, above it status 2 with
the upper limit. A switched-off or missing sensor shows the placeholder value 2.0000E-02 [V for no
sensor, U for switched off]. `PRn` beyond the fitted channels gets NAK with ERR ``0100`` (no hardware)
[U]; switching a gauge that cannot be switched is ignored and reported as 0 [U]. The RES error list
uses 9/10 + 2·(channel-1) for a gauge error / identification error [V for channels 1-2].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.codec import NEED_DATA
from drivers.tpg36x import (
    ERR_CONTROLLER,
    ERR_NO_HARDWARE,
    ERR_PARAMETER,
    ERR_SYNTAX,
    PA_PER_UNIT,
    Command,
    Handshake,
    MeasurementStatus,
    PressureUnit,
    RequestDecoder,
    SensorState,
    encode_handshake,
    encode_line,
    format_error_word,
    format_number,
)

log = logging.getLogger(__name__)

PLACEHOLDER_VALUE = 2.0e-2
COM_INTERVALS_S = {0: 0.1, 1: 1.0, 2: 60.0}


@dataclass(frozen=True, slots=True)
class GaugeType:
    """A gauge head: its ``TID`` name, measuring range and whether the controller can switch it."""

    tid: str
    min_pa: float
    max_pa: float
    logarithmic: bool
    switchable: bool
    full_scale_pa: float = 0.0  # linear heads: the pressure of 10 V

    def volts(self, pressure_pa: float) -> float:
        """The analog output shown with ``UNI,5`` [U: PKR law p = 10^(1.667 U − 9.33) Pa]."""
        if not self.logarithmic:
            return 10.0 * pressure_pa / self.full_scale_pa
        return (math.log10(max(pressure_pa, 1e-30)) + 9.33) / 1.667


PKR = GaugeType("PKR", 5e-7, 1e5, logarithmic=True, switchable=True)
TPR = GaugeType("TPR", 5e-2, 1e5, logarithmic=True, switchable=False)
CMR_10MBAR = GaugeType("CMR", 1e-1, 1.1e3, logarithmic=False, switchable=False, full_scale_pa=1e3)
# a 1000 Torr capacitance head: the atmospheric-range gauge a chamber needs for door Δp and venting
# (resolution ~1e-4 of full scale, so nothing below ~10 Pa) [U: typical values]
CMR_1000TORR = GaugeType("CMR", 1e1, 1.33e5, logarithmic=False, switchable=False, full_scale_pa=1.333e5)


@dataclass
class TpgChannel:
    """One gauge head; `pressure_pa` is read at every reply. The other fields are fault hooks.

    `stuck_pa` freezes the value, `forced_status` (e.g. 3 = sensor error, 6 = id error) overrides the
    status, `connected=False` is an unplugged head, `sensor_on` is what ``SEN`` switches.
    """

    gauge: GaugeType
    pressure_pa: Callable[[], float]
    sensor_on: bool = True
    connected: bool = True
    stuck_pa: float | None = None
    forced_status: MeasurementStatus | None = None

    def measure(self) -> tuple[MeasurementStatus, float | None]:
        """Status and value in Pa; None means the placeholder value is shown."""
        if not self.connected:
            return MeasurementStatus.NO_SENSOR, None
        if self.gauge.switchable and not self.sensor_on:
            return MeasurementStatus.SENSOR_OFF, None
        p = self.stuck_pa if self.stuck_pa is not None else self.pressure_pa()
        if self.forced_status is not None:
            return self.forced_status, p
        if p < self.gauge.min_pa:
            return MeasurementStatus.UNDER_RANGE, self.gauge.min_pa
        if p > self.gauge.max_pa:
            return MeasurementStatus.OVER_RANGE, self.gauge.max_pa
        return MeasurementStatus.OK, p

    def sensor_state(self) -> SensorState:
        if not self.connected or not self.gauge.switchable:
            return SensorState.CANNOT_SWITCH
        return SensorState.ON if self.sensor_on else SensorState.OFF


@dataclass
class SwitchFunction:
    """``SPx``: assignment (0 off, 1 on, 2.. channel 1..) and thresholds in Pa."""

    assignment: int = 0
    low_pa: float = 1e-1
    high_pa: float = 2e-1
    active: bool = False


@dataclass
class Tpg36xState:
    """What survives a power cycle: the heads, the unit and the switch functions."""

    channels: list[TpgChannel]
    unit: PressureUnit = PressureUnit.HPA
    model: str = "TPG362"
    serial_number: str = "44990000"
    firmware: str = "010100"
    switch_functions: list[SwitchFunction] = field(
        default_factory=lambda: [SwitchFunction() for _ in range(4)]
    )


class _Refused(Exception):
    def __init__(self, bit: int) -> None:
        super().__init__(bit)
        self.bit = bit


Responder = Callable[[], str]


class Tpg36xSession:
    """One connection (or one power-up) of a TPG 36x."""

    def __init__(
        self, state: Tpg36xState, *, stream_interval_s: float = 1.0, plus_sign_mantissa: bool = False
    ) -> None:
        self.state = state
        self.stream_interval_s = stream_interval_s
        self.plus_sign_mantissa = plus_sign_mantissa
        self._streaming = True
        self._decoder = RequestDecoder()
        self._pending: Responder | None = None
        self._pending_com: int | None = None
        self._error_bits = 0

    # the endpoint's interface

    def receive(self, data: bytes) -> bytes:
        if data:
            self._streaming = False  # any character ends the power-up / COM stream
        self._decoder.feed(data)
        out = bytearray()
        while (event := self._decoder.next_frame()) is not NEED_DATA:
            out += self._on_command(event) if isinstance(event, Command) else self._on_enquiry()
        return bytes(out)

    def stream(self) -> bytes:
        return encode_line(self._prx()) if self._streaming else b""

    # protocol

    def _on_command(self, command: Command) -> bytes:
        self._pending, self._pending_com = None, None
        try:
            self._pending = self._dispatch(command)
        except _Refused as exc:
            self._error_bits |= exc.bit
            log.debug("tpg NAK", extra={"mnemonic": command.mnemonic, "err": exc.bit})
            return encode_handshake(Handshake.NAK)
        if command.mnemonic == "COM":
            self._pending_com = int(command.params[0]) if command.params else 1
        return encode_handshake(Handshake.ACK)

    def _on_enquiry(self) -> bytes:
        if self._pending is None:
            return encode_line(self._read_error_word())
        if self._pending_com is not None:
            self._streaming = True
            self.stream_interval_s = COM_INTERVALS_S[self._pending_com]
        return encode_line(self._pending())

    def _dispatch(self, command: Command) -> Responder:
        m, params = command.mnemonic, command.params
        n = len(self.state.channels)
        if len(m) == 3 and m.startswith("PR") and m[2] in "123456":
            self._expect(params, 0)
            channel = int(m[2])
            if channel > n:
                raise _Refused(ERR_NO_HARDWARE)
            return lambda: self._pair(self.state.channels[channel - 1])
        if len(m) == 3 and m.startswith("SP") and m[2] in "1234":
            return self._switch_function(int(m[2]) - 1, params)
        read_only: dict[str, Responder] = {
            "PRX": self._prx,
            "TID": self._gauge_ids,
            "ERR": self._read_error_word,
            "SPS": self._switch_status,
            "AYT": self._identity,
        }
        if m in read_only:
            self._expect(params, 0)
            return read_only[m]
        settable: dict[str, Callable[[tuple[str, ...]], Responder]] = {
            "UNI": self._unit,
            "SEN": self._sensors,
            "RES": self._errors,
            "COM": self._com,
        }
        if m in settable:
            return settable[m](params)
        raise _Refused(ERR_SYNTAX)

    # mnemonics

    def _unit(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 1)
            self.state.unit = PressureUnit(self._int(params[0], 0, 5))
        return lambda: str(int(self.state.unit))

    def _sensors(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, len(self.state.channels))
            for channel, text in zip(self.state.channels, params, strict=True):
                action = self._int(text, 0, 2)
                if action and channel.sensor_state() is not SensorState.CANNOT_SWITCH:
                    channel.sensor_on = action == SensorState.ON
        return lambda: ",".join(str(int(c.sensor_state())) for c in self.state.channels)

    def _errors(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 1)
            self._int(params[0], 1, 1)  # acknowledge: persistent causes come straight back
        return lambda: ",".join(str(c) for c in self._error_codes()) or "0"

    def _com(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 1)
            self._int(params[0], 0, 2)
        return self._prx

    def _switch_function(self, index: int, params: tuple[str, ...]) -> Responder:
        sf = self.state.switch_functions[index]
        if params:
            self._expect(params, 3)
            assignment = self._int(params[0], 0, 1 + len(self.state.channels))
            low, high = (self._number(t) * self._pa_per_unit() for t in params[1:])
            if low > high:
                raise _Refused(ERR_PARAMETER)
            sf.assignment, sf.low_pa, sf.high_pa = assignment, low, high
        return lambda: ",".join(
            [str(sf.assignment), self._number_text(sf.low_pa), self._number_text(sf.high_pa)]
        )

    def _switch_status(self) -> str:
        for sf in self.state.switch_functions:
            if sf.assignment < 2:
                sf.active = sf.assignment == 1
                continue
            status, p = self.state.channels[sf.assignment - 2].measure()
            if p is None or status in (
                MeasurementStatus.SENSOR_ERROR,
                MeasurementStatus.IDENTIFICATION_ERROR,
            ):
                sf.active = False
            elif p < sf.low_pa:
                sf.active = True
            elif p > sf.high_pa:
                sf.active = False
        return ",".join("1" if sf.active else "0" for sf in self.state.switch_functions)

    def _identity(self) -> str:
        s = self.state
        return f"{s.model},PTG28290,{s.serial_number},{s.firmware},{s.firmware}"

    def _gauge_ids(self) -> str:
        return ",".join(c.gauge.tid if c.connected else "noSEn" for c in self.state.channels)

    def _read_error_word(self) -> str:
        word = format_error_word(self._error_bits | (ERR_CONTROLLER if self._error_codes() else 0))
        self._error_bits = 0
        return word

    def _error_codes(self) -> list[int]:
        codes = []
        for i, channel in enumerate(self.state.channels):
            status, _ = channel.measure()
            if status is MeasurementStatus.SENSOR_ERROR:
                codes.append(9 + 2 * i)
            elif status is MeasurementStatus.IDENTIFICATION_ERROR:
                codes.append(10 + 2 * i)
        return codes

    # formatting

    def _prx(self) -> str:
        return ",".join(self._pair(c) for c in self.state.channels)

    def _pair(self, channel: TpgChannel) -> str:
        status, p = channel.measure()
        if p is None:
            value = format_number(PLACEHOLDER_VALUE, plus_sign=self.plus_sign_mantissa)
        elif self.state.unit is PressureUnit.VOLT:
            value = format_number(channel.gauge.volts(p), plus_sign=self.plus_sign_mantissa)
        else:
            value = self._number_text(p, logarithmic=channel.gauge.logarithmic)
        return f"{int(status)},{value}"

    def _number_text(self, pressure_pa: float, *, logarithmic: bool = False) -> str:
        return format_number(
            pressure_pa / self._pa_per_unit(), plus_sign=self.plus_sign_mantissa, logarithmic=logarithmic
        )

    def _pa_per_unit(self) -> float:
        return PA_PER_UNIT.get(self.state.unit, 1.0)  # thresholds in Volt mode: taken as Pa [U]

    # parameter checks

    @staticmethod
    def _expect(params: tuple[str, ...], count: int) -> None:
        if len(params) != count:
            raise _Refused(ERR_PARAMETER)

    @staticmethod
    def _int(text: str, low: int, high: int) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise _Refused(ERR_PARAMETER)
        return int(text)

    @staticmethod
    def _number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _Refused(ERR_PARAMETER) from None
        if not math.isfinite(value) or value < 0:
            raise _Refused(ERR_PARAMETER)
        return value
