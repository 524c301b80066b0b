"""A simulated Pfeiffer TPG 361/362 answering the mnemonics protocol through `drivers.tpg36x`'s device role.

Follows Pfeiffer "TPG 361, TPG 362 Mnemonics and Pfeiffer Vacuum Protocol", BG 5510 BEN / A (2015-02),
chapter 1 (firmware V010100): the framing of §1.3, every mnemonic of the list in §1.4 with the
parameters and replies of §1.5-§1.13, and the error handling of §1.3/§1.5.2: a mnemonic the list
does not have is answered ``NAK`` and sets the ERROR word to ``0001`` (syntax, the §1.14 example
``FOL,1,2``), a parameter out of its range or a wrong number of values (channel-specific mnemonics
take exactly one value per channel, §1) ``NAK`` + ``0010``, and ``ENQ`` without a valid request
returns the ERROR word, which reading clears.

Build it from one `Tpg36xState` (front-panel settings and gauge heads, which survive a power cycle)
and give the endpoint a factory of sessions (what a connection or a power-up resets)::

    state = Tpg36xState([TpgChannel(PKR, lambda: plant.chamber_pa), TpgChannel(CMR_10MBAR, ...)])
    PtyEndpoint("tpg-process", lambda: Tpg36xSession(state), SerialSettings(9600))

Settings change what the unit reports as §1 describes:
- ``UNI``: every pressure and threshold in the chosen unit (``5`` = Volt shows the analog signal);
- ``CAL``/``CF1``/``CF2``: the shown pressure is the measured one times the calibration factor [U: the
  operating instructions BG 5500, not this manual, give the formula];
- ``FIL``: a first-order filter on the measured value, on the logarithm for logarithmic heads; time
  constants fast 0.2 s, normal 1 s, slow 5 s and the default "off" are [U] (the manual gives none);
- ``FSR`` (linear heads): the unit converts the head's 0-10 V by the full scale set here, so a value
  other than the one the head was commissioned with scales the reading by their ratio; ``OFC``/``OFD``
  subtract the stored offset (``OFC,2`` takes the present reading as the offset and switches it on);
- ``PRE``: a ``TPR/PCR`` head measures down to 5e-5 hPa instead of 5e-4 hPa;
- ``BAU``: the session's `baudrate` follows it at once, so a paced endpoint sends the ACK at the new
  rate (§1.9.2); the simulated link is the USB port, the RS-485 rate is fixed;
- ``SEN`` switches heads, ``DGS`` reports degas on for 3 minutes, ``RES,1`` acknowledges errors that
  are gone, ``SAV,0`` restores the factory settings, ``COM`` restarts the stream (§1.5.1).
The unit streams PRX lines every `stream_interval_s` until the first character arrives (the real
power-up COM mode), so `PtyEndpoint.power_cycle()` brings the stream back.

Kept but without an effect on the readings (they act on the display, relays or the other protocol):
``BAL DCB DCC DCD DCS DIS ERA EVA FMT GAS IOT LNG LOC NAD PRO PUC SC1 SC2 TLC WDT ETH`` (``GAS``
factors and the ``SCx`` automatic switching are not modelled; ``PRO,1`` does not switch the simulated
port to the Pfeiffer Vacuum Protocol, which `pfeiffer_vacuum_protocol.tpg36x_bus_devices` serves).
The USB-stick group ``DAT LCM TIM SCM`` (§1.10-1.11) is "only available when a USB memory stick is
plugged in": the simulated unit has none and refuses them with ``0100`` (no hardware) [U: the manual
names no error word]. Test replies (``ADC TAI TMP TKB EEP EPR``) are plausible constants or derived
from the heads [U].

Gauge ranges [U, typical data-sheet values]: PKR (Pirani + cold cathode) 5e-7..1e5 Pa; TPR (Pirani)
5e-2..1e5 Pa; CMR with a 10 mbar head 1e-1 Pa (four decades below full scale) to 1.1e3 Pa (110 % of
full scale). Below the range the gauge reports status 1 with the lower limit, above it status 2 with
the upper limit. A switched-off or missing sensor shows the placeholder value 2.0000E-02 [V for no
sensor, U for switched off]. `PRn` beyond the fitted channels gets NAK with ERR ``0100`` (no hardware)
[U]; switching a gauge that cannot be switched is ignored and reported as 0 [U]. The RES error list
uses 9/10 + 2·(channel-1) for a gauge error / identification error on a TPG 362, 11/12 on a TPG 361.
"""

from __future__ import annotations

import logging
import math
import re
import time
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
BAUD_RATES = (9600, 19200, 38400, 57600, 115200)  # BAU codes 0-4 (§1.9.2)
FILTER_TAU_S = (0.0, 0.2, 1.0, 5.0)  # FIL off, fast, normal, slow [U]
FSR_PA = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 2e5, 5e5, 1e6, 5e6)  # FSR codes 0-9 (§1.7.6)
FSR_FACTORY = 5  # 1000 hPa
DEGAS_S = 180.0  # "Degas on (3 minutes)" (§1.7.4)
PRE_MIN_PA = 5e-3  # 5e-5 hPa with the Pirani range extension (§1.9.11)
_CAL_RANGE = (0.1, 10.0)
_IP = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


@dataclass(frozen=True, slots=True)
class GaugeType:
    """A gauge head: its ``TID`` name, measuring range and whether the controller can switch it."""

    tid: str
    min_pa: float
    max_pa: float
    logarithmic: bool
    switchable: bool
    full_scale_pa: float = 0.0  # linear heads: the pressure of 10 V
    id_resistance_kohm: float = 0.0  # TAI [U]

    def volts(self, pressure_pa: float) -> float:
        """The analog output shown with ``UNI,5`` [U: PKR law p = 10^(1.667 U − 9.33) Pa]."""
        if not self.logarithmic:
            return 10.0 * pressure_pa / self.full_scale_pa
        return (math.log10(max(pressure_pa, 1e-30)) + 9.33) / 1.667

    @property
    def fsr_code(self) -> int:
        """The ``FSR`` a commissioning engineer sets for this head (its own full scale, else 1000 hPa)."""
        matches = [i for i, fs in enumerate(FSR_PA) if math.isclose(fs, self.full_scale_pa, rel_tol=1e-6)]
        return matches[0] if matches else FSR_FACTORY


PKR = GaugeType("PKR", 5e-7, 1e5, logarithmic=True, switchable=True, id_resistance_kohm=35.4)
TPR = GaugeType("TPR/PCR", 5e-2, 1e5, logarithmic=True, switchable=False, id_resistance_kohm=10.0)
CMR_10MBAR = GaugeType(
    "CMR", 1e-1, 1.1e3, logarithmic=False, switchable=False, full_scale_pa=1e3, id_resistance_kohm=100.0
)
# a 1000 Torr capacitance head: the atmospheric-range gauge a chamber needs for door Δp and venting
# (resolution ~1e-4 of full scale, so nothing below ~10 Pa) [U: typical values]
CMR_1000TORR = GaugeType(
    "CMR", 1e1, 1.33e5, logarithmic=False, switchable=False, full_scale_pa=1.333e5, id_resistance_kohm=100.0
)


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

    def raw_pa(self) -> float:
        return self.stuck_pa if self.stuck_pa is not None else self.pressure_pa()

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


@dataclass(frozen=True, slots=True)
class Setting:
    """An integer setting of §1.7-§1.12: one value, or one per channel."""

    low: int
    high: int
    default: int
    per_channel: bool = False


SETTINGS: dict[str, Setting] = {
    "BAL": Setting(0, 100, 100),  # backlight %, default [U]
    "BAU": Setting(0, 4, 0),
    "DCB": Setting(0, 10, 0),
    "DCC": Setting(0, 100, 50),  # contrast %, default [U]
    "DCD": Setting(0, 4, 0, per_channel=True),
    "DCS": Setting(0, 5, 0),
    "DIS": Setting(0, 1, 0),
    "ERA": Setting(0, 3, 0),  # 3 is TPG 362 only
    "EVA": Setting(0, 1, 0),
    "FIL": Setting(0, 3, 0, per_channel=True),  # default [U]
    "FMT": Setting(0, 1, 0),
    "FSR": Setting(0, 9, FSR_FACTORY, per_channel=True),
    "GAS": Setting(0, 7, 0, per_channel=True),
    "LNG": Setting(0, 2, 0),
    "LOC": Setting(0, 1, 0),
    "NAD": Setting(1, 24, 1),
    "OFC": Setting(0, 3, 0, per_channel=True),  # 2 and 3 take the present reading as the offset
    "PRE": Setting(0, 1, 0),
    "PRO": Setting(0, 2, 0),
    "PUC": Setting(0, 1, 0),
    "TLC": Setting(0, 1, 0),
    "WDT": Setting(0, 1, 1),
}


@dataclass
class GaugeControl:
    """``SCx``: activation, deactivation and the ON/OFF thresholds in Pa (stored, not acted on)."""

    activation: int = 0
    deactivation: int = 0
    on_pa: float = 1e-1
    off_pa: float = 1.0


@dataclass
class Tpg36xState:
    """What survives a power cycle: the heads, their settings and the unit's identity."""

    channels: list[TpgChannel]
    unit: PressureUnit = PressureUnit.HPA
    model: str = "TPG362"
    part_number: str = "PTG28290"
    serial_number: str = "44990000"
    firmware: str = "010100"
    hardware: str = "010100"
    mac: str = "00-A0-41-00-2A-17"
    operating_hours: float = 1520.0
    inner_temp_c: float = 31.0
    clock: Callable[[], float] = time.monotonic
    switch_functions: list[SwitchFunction] = field(
        default_factory=lambda: [SwitchFunction() for _ in range(4)]
    )
    settings: dict[str, list[int]] = field(default_factory=dict)
    calibration: list[float] = field(default_factory=list)
    offset_pa: list[float] = field(default_factory=list)
    gauge_control: list[GaugeControl] = field(default_factory=list)
    degas_until: list[float] = field(default_factory=list)
    ethernet: tuple[int, str, str, str] = (0, "192.168.001.100", "255.255.255.000", "192.168.001.001")
    io_test: tuple[int, int] = (0, 0)
    filtered: list[tuple[float, float] | None] = field(default_factory=list)
    _started: float = field(init=False, default=math.nan)

    def __post_init__(self) -> None:
        self._started = self.clock()
        self.restore_factory_settings(commissioned=True)

    def restore_factory_settings(self, *, commissioned: bool = False) -> None:
        """``SAV,0``; at construction the linear heads' ``FSR`` is set to the head as commissioned."""
        n = len(self.channels)
        self.settings = {m: [s.default] * (n if s.per_channel else 1) for m, s in SETTINGS.items()}
        if commissioned:
            self.settings["FSR"] = [c.gauge.fsr_code for c in self.channels]
        else:
            self.unit = PressureUnit.HPA
        self.calibration = [1.0] * n
        self.offset_pa = [0.0] * n
        self.gauge_control = [GaugeControl() for _ in range(n)]
        self.degas_until = [-math.inf] * n
        self.filtered = [None] * n

    def commission_baudrate(self, rate: int) -> None:
        """``BAU`` as the line is wired (the unit leaves the factory at 9600); other rates are left alone."""
        if rate in BAUD_RATES:
            self.settings["BAU"] = [BAUD_RATES.index(rate)]

    def setting(self, mnemonic: str, channel: int = 0) -> int:
        return self.settings[mnemonic][channel]

    @property
    def baudrate(self) -> int:
        return BAUD_RATES[self.setting("BAU")]

    def hours(self) -> int:
        return int(self.operating_hours + (self.clock() - self._started) / 3600.0)


class _Refused(Exception):
    def __init__(self, bit: int) -> None:
        super().__init__(bit)
        self.bit = bit


Responder = Callable[[], str]
Handler = Callable[[tuple[str, ...]], Responder | None]


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
        self._handlers: dict[str, Handler] = {
            "ADC": self._read_only(self._adc),
            "AYT": self._read_only(self._identity),
            "CAL": self._calibration,
            "CF1": lambda p: self._calibration_of(0, p),
            "CF2": lambda p: self._calibration_of(1, p),
            "COM": self._com,
            "DAT": self._usb_stick,
            "DGS": self._degas,
            "EEP": self._read_only(lambda: "0000"),
            "EPR": self._read_only(lambda: "0000,3A7C"),
            "ERR": self._read_only(self._read_error_word),
            "ETH": self._ethernet,
            "HDW": self._read_only(lambda: self.state.hardware),
            "IOT": self._io_test,
            "LCM": self._usb_stick,
            "MAC": self._read_only(lambda: self.state.mac),
            "OFC": self._offset_correction,
            "OFD": self._offset_display,
            "PNR": self._read_only(lambda: self.state.firmware),
            "PRX": self._read_only(self._prx),
            "RES": self._errors,
            "RHR": self._read_only(lambda: str(self.state.hours())),
            "SAV": self._save,
            "SC1": lambda p: self._gauge_control(0, p),
            "SC2": lambda p: self._gauge_control(1, p),
            "SCM": self._usb_stick,
            "SEN": self._sensors,
            "SPS": self._read_only(self._switch_status),
            "TAI": self._read_only(self._id_resistances),
            "TID": self._read_only(self._gauge_ids),
            "TIM": self._usb_stick,
            "TKB": self._read_only(lambda: "0000"),
            "TMP": self._read_only(lambda: f"{round(self.state.inner_temp_c):02d}"),
            "UNI": self._unit,
        }

    @property
    def baudrate(self) -> int:
        """The rate the unit sends at now (``BAU``); a paced endpoint follows it."""
        return self.state.baudrate

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

    def _dispatch(self, command: Command) -> Responder | None:
        m, params = command.mnemonic, command.params
        if len(m) == 3 and m.startswith("PR") and m[2] in "123456":
            self._expect(params, 0)
            channel = int(m[2])
            if channel > self._n:
                raise _Refused(ERR_NO_HARDWARE)
            return lambda: self._pair(channel - 1)
        if len(m) == 3 and m.startswith("SP") and m[2] in "1234":
            return self._switch_function(int(m[2]) - 1, params)
        handler = self._handlers.get(m)
        if handler is not None:
            return handler(params)
        if m in SETTINGS:
            return self._int_setting(m, params)
        raise _Refused(ERR_SYNTAX)

    @property
    def _n(self) -> int:
        return len(self.state.channels)

    def _read_only(self, responder: Responder) -> Handler:
        def handle(params: tuple[str, ...]) -> Responder:
            self._expect(params, 0)
            return responder

        return handle

    # settings

    def _int_setting(self, mnemonic: str, params: tuple[str, ...]) -> Responder:
        setting = SETTINGS[mnemonic]
        values = self.state.settings[mnemonic]
        if params:
            self._expect(params, len(values))
            high = 2 if mnemonic == "ERA" and self._n == 1 else setting.high
            values[:] = [self._int(text, setting.low, high) for text in params]
            if mnemonic == "FIL":
                self.state.filtered = [None] * self._n  # a new time constant starts from the raw value
        return lambda: ",".join(str(v) for v in values)

    def _unit(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 1)
            self.state.unit = PressureUnit(self._int(params[0], 0, 5))
        return lambda: str(int(self.state.unit))

    def _calibration(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, self._n)
            self.state.calibration[:] = [self._factor(text) for text in params]
        return self._calibration_text

    def _calibration_of(self, index: int, params: tuple[str, ...]) -> Responder:
        if index >= self._n:
            raise _Refused(ERR_NO_HARDWARE)
        if params:
            self._expect(params, 1)
            self.state.calibration[index] = self._factor(params[0])
        return self._calibration_text

    def _calibration_text(self) -> str:
        return ",".join(f"{f:.3f}" for f in self.state.calibration)

    def _offset_correction(self, params: tuple[str, ...]) -> Responder:
        values = self.state.settings["OFC"]
        if params:
            self._expect(params, self._n)
            codes = [self._int(text, 0, 3) for text in params]
            for i, code in enumerate(codes):
                if code >= 2:  # determine the offset from the present reading, then correct with it
                    self.state.offset_pa[i] = self._corrected_pa(i, offset=False)
                    code = 1
                values[i] = code
        return lambda: ",".join(str(v) for v in values)

    def _offset_display(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, self._n)
            self.state.offset_pa[:] = [self._signed_number(t) * self._pa_per_unit() for t in params]
        return lambda: ",".join(self._number_text(p) for p in self.state.offset_pa)

    def _degas(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, self._n)
            now = self.state.clock()
            for i, text in enumerate(params):
                self.state.degas_until[i] = now + DEGAS_S if self._int(text, 0, 1) else -math.inf
        return lambda: ",".join("1" if self.state.clock() < t else "0" for t in self.state.degas_until)

    def _gauge_control(self, index: int, params: tuple[str, ...]) -> Responder:
        if index >= self._n:
            raise _Refused(ERR_NO_HARDWARE)
        gc = self.state.gauge_control[index]
        if params:
            self._expect(params, 4)
            activation, deactivation = self._int(params[0], 0, 4), self._int(params[1], 0, 4)
            on_pa, off_pa = (self._number(t) * self._pa_per_unit() for t in params[2:])
            gc.activation, gc.deactivation, gc.on_pa, gc.off_pa = activation, deactivation, on_pa, off_pa
        return lambda: ",".join(
            [str(gc.activation), str(gc.deactivation), self._short(gc.on_pa), self._short(gc.off_pa)]
        )

    def _ethernet(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 4)
            dhcp = self._int(params[0], 0, 1)
            ip, mask, gateway = (self._address(t) for t in params[1:])
            self.state.ethernet = (dhcp, ip, mask, gateway)
        return lambda: ",".join(str(v) for v in self.state.ethernet)

    def _io_test(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, 2)
            status = self._int(params[0], 0, 1)
            try:
                relays = int(params[1], 16)
            except ValueError:
                raise _Refused(ERR_PARAMETER) from None
            if relays & ~0x4F:
                raise _Refused(ERR_PARAMETER)
            self.state.io_test = (status, relays)
        return lambda: f"{self.state.io_test[0]},{self.state.io_test[1]:02X}"

    def _save(self, params: tuple[str, ...]) -> None:
        if len(params) > 1:
            raise _Refused(ERR_PARAMETER)
        if self._int(params[0], 0, 1) if params else 0:
            return None  # user settings: the simulated unit keeps every setting anyway
        self.state.restore_factory_settings()
        return None

    def _usb_stick(self, params: tuple[str, ...]) -> Responder:
        raise _Refused(ERR_NO_HARDWARE)

    def _sensors(self, params: tuple[str, ...]) -> Responder:
        if params:
            self._expect(params, self._n)
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
            assignment = self._int(params[0], 0, 1 + self._n)
            low, high = (self._number(t) * self._pa_per_unit() for t in params[1:])
            if low > high:
                raise _Refused(ERR_PARAMETER)
            sf.assignment, sf.low_pa, sf.high_pa = assignment, low, high
        return lambda: ",".join(
            [str(sf.assignment), self._number_text(sf.low_pa), self._number_text(sf.high_pa)]
        )

    # read-only replies

    def _switch_status(self) -> str:
        for sf in self.state.switch_functions:
            if sf.assignment < 2:
                sf.active = sf.assignment == 1
                continue
            status, p = self._measure(sf.assignment - 2)
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
        return f"{s.model},{s.part_number},{s.serial_number},{s.firmware},{s.hardware}"

    def _gauge_ids(self) -> str:
        return ",".join(c.gauge.tid if c.connected else "noSEn" for c in self.state.channels)

    def _adc(self) -> str:
        """The heads' analog signals, 0-11 V [U: a missing head reads 0 V]."""
        volts = []
        for channel in self.state.channels:
            v = channel.gauge.volts(channel.raw_pa()) if channel.connected else 0.0
            volts.append(f"{min(max(v, 0.0), 11.0):07.4f}")
        return ",".join(volts)

    def _id_resistances(self) -> str:
        return ",".join(
            f"{c.gauge.id_resistance_kohm if c.connected else 0.0:.2f}" for c in self.state.channels
        )

    def _read_error_word(self) -> str:
        word = format_error_word(self._error_bits | (ERR_CONTROLLER if self._error_codes() else 0))
        self._error_bits = 0
        return word

    def _error_codes(self) -> list[int]:
        codes = []
        for i in range(self._n):
            status, _ = self._measure(i)
            base = 11 if self._n == 1 else 9 + 2 * i
            if status is MeasurementStatus.SENSOR_ERROR:
                codes.append(base)
            elif status is MeasurementStatus.IDENTIFICATION_ERROR:
                codes.append(base + 1)
        return codes

    # measurement

    def _measure(self, index: int) -> tuple[MeasurementStatus, float | None]:
        """Status and shown value in Pa (after filter, calibration and offset); None: placeholder."""
        channel = self.state.channels[index]
        if not channel.connected:
            return MeasurementStatus.NO_SENSOR, None
        if channel.gauge.switchable and not channel.sensor_on:
            return MeasurementStatus.SENSOR_OFF, None
        p = self._filter(index, channel.raw_pa())
        status = MeasurementStatus.OK
        pre = channel.gauge.tid == TPR.tid and self.state.setting("PRE") == 1
        low = PRE_MIN_PA if pre else channel.gauge.min_pa
        if channel.forced_status is not None:
            status = channel.forced_status
        elif p < low:
            status, p = MeasurementStatus.UNDER_RANGE, low
        elif p > channel.gauge.max_pa:
            status, p = MeasurementStatus.OVER_RANGE, channel.gauge.max_pa
        return status, self._correct(index, p)

    def _corrected_pa(self, index: int, *, offset: bool = True) -> float:
        _, p = self._measure(index)
        if p is None:
            return 0.0
        return p if offset else p + self._offset_of(index)

    def _correct(self, index: int, p: float) -> float:
        gauge = self.state.channels[index].gauge
        p *= self.state.calibration[index]
        if not gauge.logarithmic:
            p *= FSR_PA[self.state.setting("FSR", index)] / FSR_PA[gauge.fsr_code]
        return p - self._offset_of(index)

    def _offset_of(self, index: int) -> float:
        corrected = self.state.setting("OFC", index) == 1
        linear = not self.state.channels[index].gauge.logarithmic
        return self.state.offset_pa[index] if corrected and linear else 0.0

    def _filter(self, index: int, p: float) -> float:
        tau = FILTER_TAU_S[self.state.setting("FIL", index)]
        now = self.state.clock()
        previous = self.state.filtered[index]
        log_scale = self.state.channels[index].gauge.logarithmic and p > 0
        x = math.log10(p) if log_scale else p
        if tau > 0 and previous is not None and math.isfinite(previous[1]) and math.isfinite(x):
            last_t, last_x = previous
            x = last_x + (x - last_x) * (1.0 - math.exp(-max(now - last_t, 0.0) / tau))
        self.state.filtered[index] = (now, x)
        return 10.0**x if log_scale else x

    # formatting

    def _prx(self) -> str:
        return ",".join(self._pair(i) for i in range(self._n))

    def _pair(self, index: int) -> str:
        status, p = self._measure(index)
        channel = self.state.channels[index]
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

    def _short(self, pressure_pa: float) -> str:
        """``c.ccEscc`` of the ``SCx`` thresholds."""
        return f"{pressure_pa / self._pa_per_unit():.2E}"

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
    def _signed_number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _Refused(ERR_PARAMETER) from None
        if not math.isfinite(value):
            raise _Refused(ERR_PARAMETER)
        return value

    @classmethod
    def _number(cls, text: str) -> float:
        value = cls._signed_number(text)
        if value < 0:
            raise _Refused(ERR_PARAMETER)
        return value

    @classmethod
    def _factor(cls, text: str) -> float:
        value = cls._number(text)
        if not _CAL_RANGE[0] <= value <= _CAL_RANGE[1]:
            raise _Refused(ERR_PARAMETER)
        return round(value, 3)

    @staticmethod
    def _address(text: str) -> str:
        if not _IP.fullmatch(text) or any(int(part) > 255 for part in text.split(".")):
            raise _Refused(ERR_PARAMETER)
        return ".".join(f"{int(part):03d}" for part in text.split("."))
