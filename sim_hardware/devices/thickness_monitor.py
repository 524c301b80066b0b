"""An SQM-160 thickness monitor answering its binary framing, from a crystal model it is given.

The session is the instrument's front end: framing, CRC, command letters, status codes and the
number formats, all through the driver's codec in the device role. Rate, thickness, frequency and
crystal life come from a `QcmBackend` supplied by the builder (the plant model, or a model in a test).

Behaviour where devices.md is silent [U]: a command whose CRC fails gets no reply (the host times
out); a sensor channel the backend does not have, or a malformed channel, gets status ``D``; an
unknown letter gets ``C``. ``W`` (all channels at once) is not simulated and answers ``C``.

Film parameters (``A``, layout [U], see drivers/thickness_monitor.py) are read and written through the
backend, which holds them as the instrument would (they outlive a connection); a malformed or
out-of-range write gets ``D``. ``Z`` (reset film and system parameters) forgets the programmed films;
the simulated sensor tooling stays calibrated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from drivers.codec import NEED_DATA
from drivers.errors import ConfigError, ProtocolError
from drivers.thickness_monitor import (
    NM_PER_UNIT,
    CommandDecoder,
    FilmParameters,
    Status,
    ThicknessUnit,
    check_thickness_unit,
    encode_reply,
    format_film_parameters,
    format_frequency,
    format_life,
    format_rate,
    format_thickness,
    parse_film_command,
)

log = logging.getLogger(__name__)

DEFAULT_FIRMWARE = "MON Ver 4.13"


class QcmBackend(Protocol):
    """The crystals as the monitor's oscillator sees them; channels are numbered from 1."""

    @property
    def channel_count(self) -> int: ...

    def rate_nm_s(self, channel: int) -> float: ...

    def thickness_nm(self, channel: int) -> float: ...

    def frequency_hz(self, channel: int) -> float: ...

    def crystal_life_pct(self, channel: int) -> float: ...

    def zero(self) -> None:
        """Zero rate and thickness of every channel (the ``S`` command)."""
        ...

    def film_parameters(self, film: int) -> FilmParameters: ...

    def program_film(self, film: int, params: FilmParameters) -> None:
        """Store a film's parameters; the active film's convert every channel from then on."""
        ...

    def reset_films(self) -> None:
        """Back to the instrument's defaults (the ``Z`` command)."""
        ...


@dataclass(frozen=True, slots=True)
class _ChannelValues:
    rate_nm_s: float
    thickness_nm: float
    frequency_hz: float
    life_pct: float


class ThicknessMonitorSession:
    """Device session: ``lambda: ThicknessMonitorSession(model)``.

    Fault hooks: `refuse_next` answers that many commands with `refuse_status` (``C`` or ``D``);
    `hold_readings()` freezes every channel at its present values (a hung measurement board).
    """

    def __init__(
        self,
        backend: QcmBackend,
        *,
        thickness_unit: str = "kA",
        firmware: str = DEFAULT_FIRMWARE,
    ) -> None:
        self.backend = backend
        self.thickness_unit: ThicknessUnit = check_thickness_unit(thickness_unit)
        self.firmware = firmware
        self.refuse_next = 0
        self.refuse_status = Status.INVALID_COMMAND
        self.reset_flag = True
        self._held: dict[int, _ChannelValues] | None = None
        self._decoder = CommandDecoder()

    def hold_readings(self) -> None:
        self._held = {ch: self._measure(ch) for ch in self._channels()}

    def release_readings(self) -> None:
        self._held = None

    def receive(self, data: bytes) -> bytes:
        self._decoder.feed(data)
        replies = bytearray()
        while True:
            try:
                command = self._decoder.next_frame()
            except ProtocolError as exc:
                log.info("sqm ignored a frame", extra={"error": str(exc)})
                continue
            if command is NEED_DATA:
                return bytes(replies)
            replies += self.answer(command)

    def answer(self, command: bytes) -> bytes:
        """The reply frame to one command's CMD bytes."""
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return encode_reply(self.refuse_status)
        letter, argument = chr(command[0]), command[1:]
        if letter in "LNPR":
            return self._channel_reply(letter, argument)
        if letter == "A":
            return self._film_reply(argument)
        if argument:
            return encode_reply(Status.BAD_DATA)
        match letter:
            case "@":
                return encode_reply(Status.OK, self.firmware.encode("ascii"))
            case "J":
                return encode_reply(Status.OK, str(self.backend.channel_count).encode("ascii"))
            case "M":
                rates = [self._values(ch).rate_nm_s for ch in self._channels()]
                return encode_reply(Status.OK, format_rate(10.0 * sum(rates) / len(rates)))
            case "O":
                thicknesses = [self._values(ch).thickness_nm for ch in self._channels()]
                return encode_reply(Status.OK, self._thickness(sum(thicknesses) / len(thicknesses)))
            case "S":
                self.backend.zero()
                return encode_reply(Status.OK)
            case "T":
                return encode_reply(Status.OK)
            case "Z":
                self.backend.reset_films()
                return encode_reply(Status.OK)
            case "Y":
                flag, self.reset_flag = self.reset_flag, False
                return encode_reply(Status.OK, b"1" if flag else b"0")
        return encode_reply(Status.INVALID_COMMAND)

    def _channel_reply(self, letter: str, argument: bytes) -> bytes:
        if letter == "L" and argument.endswith(b"?"):
            argument = argument[:-1]
        if len(argument) != 1 or not argument.isdigit():
            return encode_reply(Status.BAD_DATA)
        channel = int(argument)
        if channel not in self._channels():
            return encode_reply(Status.BAD_DATA)
        values = self._values(channel)
        match letter:
            case "L":
                data = format_rate(10.0 * values.rate_nm_s)
            case "N":
                data = self._thickness(values.thickness_nm)
            case "P":
                data = format_frequency(values.frequency_hz)
            case _:
                data = format_life(values.life_pct)
        return encode_reply(Status.OK, data)

    def _film_reply(self, argument: bytes) -> bytes:
        try:
            film, params = parse_film_command(argument)
        except (ProtocolError, ConfigError) as exc:
            log.info("sqm refused film parameters", extra={"error": str(exc)})
            return encode_reply(Status.BAD_DATA)
        if params is None:
            return encode_reply(Status.OK, format_film_parameters(self.backend.film_parameters(film)))
        self.backend.program_film(film, params)
        return encode_reply(Status.OK)

    def _thickness(self, thickness_nm: float) -> bytes:
        return format_thickness(thickness_nm / NM_PER_UNIT[self.thickness_unit], self.thickness_unit)

    def _channels(self) -> range:
        return range(1, self.backend.channel_count + 1)

    def _values(self, channel: int) -> _ChannelValues:
        if self._held is not None and channel in self._held:
            return self._held[channel]
        return self._measure(channel)

    def _measure(self, channel: int) -> _ChannelValues:
        b = self.backend
        return _ChannelValues(
            b.rate_nm_s(channel),
            b.thickness_nm(channel),
            b.frequency_hz(channel),
            b.crystal_life_pct(channel),
        )
