"""The line configuration: one TOML file describing topology, links, devices and limits.

Loaded once into frozen dataclasses (`LineConfig`); nothing reads configuration from the environment.
The topology is data: spaces and the ports between them, so one shared antechamber or two process
chambers in a row are a different file, not different code. The simulator reads the same description
to build the plant and the device simulators it answers for.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from controller.config.broker_tls import BrokerTls, BrokerTlsError, broker_tls_context
from controller.config.device_params import channel_keys, read_address, read_params
from controller.config.gas_supplies import GasSupply, read_gas_supplies
from controller.config.reader import TableReader, file_text, toml_table
from controller.config.recording import RecordingConfig, read_recording
from controller.config.secrets import mask_secrets, read_password, url_with_password
from controller.config.source_table import SourceEntry, read_sources
from drivers.deposition_sources import STANDARD_LINE_SOURCES
from drivers.errors import ConfigError
from drivers.remote_io import IoPoints, line_points
from drivers.transport import parse_url

ROOM = "room"
# a transfer_chamber is the method's intermediate inert space between two deposition systems: gate valves
# to both, its own rough pump, gas fill, vent and atmosphere sensing, and no door to the room
SPACE_KINDS = ("antechamber", "process_chamber", "transfer_chamber")
PORT_KINDS = ("outer_door", "inner_door", "gate_valve")
FAMILIES = (
    "tpg36x",
    "pfeiffer_turbo",
    "dewpoint_transmitter",
    "temperature_controller",
    "mass_flow_controller",
    "thickness_monitor",
    "glovebox_controller",
    "remote_io",
    "deposition_sources",
)
MODBUS_FAMILIES = frozenset(
    {
        "dewpoint_transmitter",
        "temperature_controller",
        "glovebox_controller",
        "remote_io",
        "deposition_sources",
    }
)
STANDARD_LINE = "standard_line.toml"


# The production method's atmosphere window (DESIGN.md §2): frost point at most -50 °C, and an O2 limit
# from glovebox practice (< 1-10 ppm), of which 10 ppm is the loosest. A line whose limits are looser
# certifies electrodes the method would not: refused unless `[line] not_for_production = true`.
METHOD_MAX_FROST_POINT_C = -50.0
METHOD_MAX_O2_PPMV = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Atmosphere and vacuum limits the classification and the interlocks use (DESIGN.md §2, §4)."""

    max_frost_point_c: float = -50.0
    max_o2_ppmv: float = 10.0
    door_max_dp_pa: float = 500.0
    atmospheric_window_pa: float = 2000.0
    vacuum_below_pa: float = 100.0
    turbo_gate_max_pa: float = 10.0
    deposition_base_pressure_pa: float = 1.33e-4
    stale_after_s: float = 5.0
    room_pressure_pa: float = 101325.0
    inert_purge_margin: float = 10.0


@dataclass(frozen=True, slots=True)
class SpaceConfig:
    name: str
    kind: str
    volume_l: float
    wall_area_m2: float
    outgassing_q1h_mbar_l_s_cm2: float
    rough_pump_m3_h: float
    turbo_speed_l_s: float = 0.0

    @property
    def rough_pumped(self) -> bool:
        """Antechambers and transfer chambers have a rough pump of their own; a chamber a backing pump."""
        return self.kind != "process_chamber"


@dataclass(frozen=True, slots=True)
class PortConfig:
    """A door or gate valve between two spaces (`room` is the air outside the line)."""

    name: str
    kind: str
    between: tuple[str, str]


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One instrument: its family, the link it sits on, its address, and what it measures.

    `channels` binds a driver channel to a space (``pressure_ch1 = "inlet"``); `space` does the same
    for single-space devices; `params` carries family-specific settings (gauge types, word order,
    full scale ...), checked by the family's own builder.
    """

    name: str
    family: str
    link: str
    address: int | str | None = None
    space: str | None = None
    channels: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


ROLES = ("operator", "engineer", "maintenance")
DEFAULT_DATABASE_URL = "sqlite:///data/line.db"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Any SQLAlchemy URL; `sqlite:///path` is made async (aiosqlite) by the historian."""

    url: str = DEFAULT_DATABASE_URL


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The plant broker; absent from the file means MQTT is off."""

    host: str
    port: int = 1883
    username: str = ""
    password: str = ""
    topic_prefix: str = "depline"
    command_users: tuple[str, ...] = ()  # broker users whose commands are accepted
    commands: tuple[str, ...] = ()  # command names accepted over MQTT (empty: none)
    tls: BrokerTls | None = None  # None: plain TCP (loopback or a closed plant network only)


@dataclass(frozen=True, slots=True)
class HmiConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class SequenceConfig:
    """How the production sequence operates this line: purge counts, its limits and time-outs.

    Times are plant seconds. A purge runs `purge_cycles`, then more (up to `purge_max_cycles`) while the
    antechamber is not in spec; a further cycle that improves the frost point by less than
    `purge_min_gain_c` is not converging (a leak, a wet load, a spent gas bottle) and is a fault.
    """

    purge_cycles: int = 3
    purge_max_cycles: int = 6
    purge_evacuate_to_pa: float = 20.0
    purge_min_gain_c: float = 1.0
    step_timeout_s: float = 1800.0
    base_pressure_timeout_s: float = 7200.0
    suspend_settle_s: float = 300.0
    # a layer's time budget is its expected duration (thickness over the rate its source gives at the
    # layer's power, controller.config.source_table) times this margin, plus step_timeout_s for heating,
    # gas and presputter; a layer expected to take longer than max_layer_s is refused before it starts
    layer_time_margin: float = 1.5
    max_layer_s: float = 6 * 3600.0
    # where this site keeps the queue files an operator may start from the HMI, besides the shipped
    # ones; relative to the working directory; "" for the shipped queues only
    queue_dir: str = ""


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A person who may act on the line. `password_hash` is `pbkdf2_sha256$iterations$salt$hash`."""

    name: str
    role: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class LineConfig:
    path: str
    name: str
    limits: Limits
    spaces: tuple[SpaceConfig, ...]
    ports: tuple[PortConfig, ...]
    links: dict[str, LinkConfig]
    devices: tuple[DeviceConfig, ...]
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mqtt: MqttConfig | None = None
    hmi: HmiConfig = field(default_factory=HmiConfig)
    users: tuple[UserConfig, ...] = ()
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    text: str = field(default="", repr=False)  # the file as read: each run records it (content hash)
    not_for_production: bool = False  # a test or commissioning line: limits looser than the method's
    sources: tuple[SourceEntry, ...] = ()  # the source table (controller.config.source_table)
    gas_supplies: tuple[GasSupply, ...] = ()  # controller.config.gas_supplies

    def sources_in(self, chamber: str) -> list[SourceEntry]:
        return [s for s in self.sources if s.chamber == chamber]

    recording: RecordingConfig = field(default_factory=RecordingConfig)  # deadbands, retention

    def space(self, name: str) -> SpaceConfig:
        return next(s for s in self.spaces if s.name == name)

    def devices_on(self, link: str) -> list[DeviceConfig]:
        return [d for d in self.devices if d.link == link]

    def spaces_of_kind(self, kind: str) -> list[str]:
        return [s.name for s in self.spaces if s.kind == kind]

    def remote_io_points(self) -> IoPoints:
        """The remote I/O point list the topology implies: antechambers, inner ports, chambers."""
        chambers = self.spaces_of_kind("process_chamber")
        sources = [src.name for src in STANDARD_LINE_SOURCES]
        return line_points(
            antechambers=self.spaces_of_kind("antechamber"),
            gate_valves=[p.name for p in self.ports if p.kind != "outer_door"],
            process_chambers=dict.fromkeys(chambers, sources),
            transfer_chambers=self.spaces_of_kind("transfer_chamber"),
        )


def load_line_config(path: str | Path | None = None) -> LineConfig:
    """Read and validate a line configuration; `None` loads the embedded standard line."""
    if path is None:
        text = resources.files("controller.config").joinpath(STANDARD_LINE).read_text(encoding="utf-8")
        shown = f"<embedded {STANDARD_LINE}>"
    else:
        shown = str(path)
        text = file_text(path, shown)
    data = toml_table(text, shown)
    return dataclasses.replace(_parse(TableReader(shown, data)), text=text)


def recorded_line_config(text: str, shown: str) -> LineConfig:
    """The configuration a run recorded, for reading its records back (a replay): its line, spaces,
    ports and instruments as they were. Its [database] and [mqtt] tables are left out: they name the
    recording site's files (password files, TLS keys) that a reader elsewhere does not have and does not
    need, since the records are read from wherever the reader was pointed."""
    data = dict(toml_table(text, shown))
    for unused in ("database", "mqtt"):
        data.pop(unused, None)
    return dataclasses.replace(_parse(TableReader(shown, data)), text=text)


def _parse(root: TableReader) -> LineConfig:
    line = root.table_reader("line", required=True)
    name = _name(line, "name")  # it names the spill folder and the MQTT topics: no path, no wildcard
    not_for_production = line.flag("not_for_production", False)
    line.finish()
    limits = _limits(root.table_reader("limits"), not_for_production)
    spaces = tuple(_space(t) for t in root.table_list("spaces"))
    space_names = [s.name for s in spaces]
    _unique(root, "spaces", space_names)
    if not spaces:
        raise root.fail("spaces", [], "at least one [[spaces]] table is required")
    ports = tuple(_port(t, spaces) for t in root.table_list("ports"))
    _unique(root, "ports", [p.name for p in ports])
    _check_transfer_chambers(root, spaces, ports)
    links_table = root.table_reader("links")
    links = {key: _link(links_table.table_reader(key), key) for key in list(links_table.table)}
    links_table.finish()
    devices = tuple(_device(t, space_names, links) for t in root.table_list("devices"))
    _unique(root, "devices", [d.name for d in devices])
    sources = read_sources(
        root.table_list("sources"), [s.name for s in spaces if s.kind == "process_chamber"]
    )
    _unique(root, "sources", [f"{s.chamber}/{s.name}" for s in sources])
    gas_supplies = read_gas_supplies(root.table_list("gas_supplies"), space_names)
    database = _database(root.table_reader("database"))
    mqtt = _mqtt(root.table_reader("mqtt")) if root.has("mqtt") else None
    hmi = _hmi(root.table_reader("hmi"))
    users = tuple(_user(t) for t in root.table_list("users"))
    _unique(root, "users", [u.name for u in users])
    sequence = _sequence(root.table_reader("sequence"))
    recording = read_recording(root.table_reader("recording"), {d.name for d in devices})
    root.finish()
    return LineConfig(
        root.path, name, limits, spaces, ports, links, devices, database, mqtt, hmi, users, sequence,
        not_for_production=not_for_production, sources=sources, gas_supplies=gas_supplies,
        recording=recording,
    )  # fmt: skip


def _sequence(t: TableReader) -> SequenceConfig:
    d = SequenceConfig()
    cycles = t.integer("purge_cycles", d.purge_cycles, min=1, max=20)
    config = SequenceConfig(
        purge_cycles=cycles,
        purge_max_cycles=t.integer("purge_max_cycles", max(d.purge_max_cycles, cycles), min=cycles, max=50),
        purge_evacuate_to_pa=t.number("purge_evacuate_to_pa", d.purge_evacuate_to_pa, min=0.1, max=1000.0),
        purge_min_gain_c=t.number("purge_min_gain_c", d.purge_min_gain_c, min=0.0, max=20.0),
        step_timeout_s=t.number("step_timeout_s", d.step_timeout_s, min=10.0, max=86_400.0),
        base_pressure_timeout_s=t.number(
            "base_pressure_timeout_s", d.base_pressure_timeout_s, min=60.0, max=172_800.0
        ),
        suspend_settle_s=t.number("suspend_settle_s", d.suspend_settle_s, min=0.0, max=7200.0),
        layer_time_margin=t.number("layer_time_margin", d.layer_time_margin, min=1.05, max=10.0),
        max_layer_s=t.number("max_layer_s", d.max_layer_s, min=60.0, max=7 * 86_400.0),
        queue_dir=t.text("queue_dir", d.queue_dir),
    )
    t.finish()
    return config


def _database(t: TableReader) -> DatabaseConfig:
    url = t.text("url", DEFAULT_DATABASE_URL)
    if "://" not in url:
        raise t.fail(
            "url",
            mask_secrets(url),
            "an SQLAlchemy URL such as sqlite:///data/line.db or postgresql://user@host/db",
        )
    password = read_password(t)  # from a file or a systemd credential, never shown
    if password is not None:
        url = url_with_password(t, url, password)
    t.finish()
    return DatabaseConfig(url)


def _mqtt(t: TableReader) -> MqttConfig:
    tls = _broker_tls(t)
    config = MqttConfig(
        host=t.text("host"),
        port=t.integer("port", 1883 if tls is None else 8883, min=1, max=65535),
        username=t.text("username", ""),
        password=_mqtt_password(t),
        topic_prefix=t.text("topic_prefix", "depline"),
        command_users=tuple(t.text_list("command_users", [])),
        commands=tuple(t.text_list("commands", [])),
        tls=tls,
    )
    t.finish()
    return config


def _broker_tls(t: TableReader) -> BrokerTls | None:
    """`tls = true` (implied by any of the files): verify the broker against `ca_file` (or the system
    store) and, with `cert_file` and `key_file`, present a client certificate. The files are loaded
    here, so a bad one is refused with its field's name when the file is read."""
    files = BrokerTls(t.text("ca_file", ""), t.text("cert_file", ""), t.text("key_file", ""))
    given = any((files.ca_file, files.cert_file, files.key_file))
    if not t.flag("tls", given):
        if given:
            raise t.fail("tls", False, "true when ca_file, cert_file or key_file is given")
        return None
    if bool(files.cert_file) != bool(files.key_file):
        missing = "key_file" if files.cert_file else "cert_file"
        raise t.fail(missing, "", "cert_file and key_file go together (the client certificate and its key)")
    try:
        broker_tls_context(files)
    except BrokerTlsError as exc:
        raise t.fail(exc.field, exc.value, str(exc)) from None
    return files


def _mqtt_password(t: TableReader) -> str:
    from_file = read_password(t)
    if from_file is not None and t.has("password"):
        raise t.fail("password", "<hidden>", "give password or password_file/password_credential, not both")
    return from_file if from_file is not None else t.text("password", "")


def _hmi(t: TableReader) -> HmiConfig:
    config = HmiConfig(host=t.text("host", "127.0.0.1"), port=t.integer("port", 8080, min=0, max=65535))
    t.finish()
    return config


def _user(t: TableReader) -> UserConfig:
    name = _name(t, "name")
    role = t.text("role", choices=ROLES)
    password_hash = t.text("password_hash")
    if not _well_formed_hash(password_hash):
        low, high = HASH_ITERATIONS
        raise t.fail(
            "password_hash",
            "<hidden>",
            f"pbkdf2_sha256$<iterations {low}..{high}>$<base64 salt>$<base64 32-byte hash>, "
            "as `depline user hash` prints it",
        )
    t.finish()
    return UserConfig(name, role, password_hash)


HASH_ITERATIONS = (10_000, 2_000_000)  # below: guessable offline; above: a login takes seconds of CPU


def _well_formed_hash(text: str) -> bool:
    """A hash a login can be checked against: otherwise the user silently could never log in."""
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256":
        return False
    if not (parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 9):
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except ValueError:  # binascii.Error
        return False
    low, high = HASH_ITERATIONS
    return low <= int(parts[1]) <= high and 8 <= len(salt) <= 64 and len(digest) == 32


def _unique(root: TableReader, key: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise root.fail(key, dupes[0], "names must be unique")


def _limits(t: TableReader, not_for_production: bool) -> Limits:
    d = Limits()
    limits = Limits(
        max_frost_point_c=t.number("max_frost_point_c", d.max_frost_point_c, min=-100.0, max=-20.0),
        max_o2_ppmv=t.number("max_o2_ppmv", d.max_o2_ppmv, min=0.1, max=1000.0),
        door_max_dp_pa=t.number("door_max_dp_pa", d.door_max_dp_pa, min=1.0, max=5000.0),
        atmospheric_window_pa=t.number(
            "atmospheric_window_pa", d.atmospheric_window_pa, min=100.0, max=20000.0
        ),
        vacuum_below_pa=t.number("vacuum_below_pa", d.vacuum_below_pa, min=1e-6, max=1000.0),
        turbo_gate_max_pa=t.number("turbo_gate_max_pa", d.turbo_gate_max_pa, min=1e-3, max=100.0),
        deposition_base_pressure_pa=t.number(
            "deposition_base_pressure_pa", d.deposition_base_pressure_pa, min=1e-8, max=1.33e-4
        ),
        stale_after_s=t.number("stale_after_s", d.stale_after_s, min=0.1, max=600.0),
        room_pressure_pa=t.number("room_pressure_pa", d.room_pressure_pa, min=50_000.0, max=110_000.0),
        inert_purge_margin=t.number("inert_purge_margin", d.inert_purge_margin, min=1.0, max=1e6),
    )
    t.finish()
    if not not_for_production:
        why = "looser than the production method's window; set [line] not_for_production = true to allow it"
        if limits.max_frost_point_c > METHOD_MAX_FROST_POINT_C:
            raise t.fail(
                "max_frost_point_c", limits.max_frost_point_c, f"<= {METHOD_MAX_FROST_POINT_C:g}: {why}"
            )
        if limits.max_o2_ppmv > METHOD_MAX_O2_PPMV:
            raise t.fail("max_o2_ppmv", limits.max_o2_ppmv, f"<= {METHOD_MAX_O2_PPMV:g}: {why}")
    return limits


def _space(t: TableReader) -> SpaceConfig:
    kind = t.text("kind", choices=SPACE_KINDS)
    space = SpaceConfig(
        name=_name(t, "name"),
        kind=kind,
        volume_l=t.number("volume_l", min=1.0, max=10000.0),
        wall_area_m2=t.number("wall_area_m2", min=0.01, max=100.0),
        outgassing_q1h_mbar_l_s_cm2=t.number("outgassing_q1h_mbar_l_s_cm2", 3e-8, min=1e-12, max=1e-5),
        rough_pump_m3_h=t.number("rough_pump_m3_h", min=0.5, max=1000.0),
        turbo_speed_l_s=t.number("turbo_speed_l_s", 0.0, min=0.0, max=10000.0),
    )
    if kind == "process_chamber" and space.turbo_speed_l_s <= 0:
        raise t.fail("turbo_speed_l_s", space.turbo_speed_l_s, "a process chamber needs a turbo: > 0")
    if kind == "transfer_chamber" and space.turbo_speed_l_s > 0:
        raise t.fail("turbo_speed_l_s", space.turbo_speed_l_s, "a transfer chamber is rough-pumped: 0")
    t.finish()
    return space


NAME_MAX_CHARS = 64


def _name(t: TableReader, key: str) -> str:
    """A name other things are made from (file names, topics, item locations): nothing that could
    climb out of a folder ("..", "/"), hide in a listing (a leading "."), or be mistaken for the room."""
    value = t.text(key)
    if (
        not 0 < len(value) <= NAME_MAX_CHARS
        or not all(c.isalnum() or c in "_-." for c in value)
        or value.startswith(".")
        or value == ROOM
    ):
        raise t.fail(
            key,
            value,
            f"1..{NAME_MAX_CHARS} letters, digits, '_', '-', '.', not starting with '.', not 'room'",
        )
    return value


def _port(t: TableReader, spaces: tuple[SpaceConfig, ...]) -> PortConfig:
    name = _name(t, "name")
    kind = t.text("kind", choices=PORT_KINDS)
    between = t.text_list("between")
    allowed = [*(s.name for s in spaces), ROOM]
    if len(between) != 2 or between[0] == between[1] or any(b not in allowed for b in between):
        raise t.fail("between", between, f"two different names from {', '.join(allowed)}")
    if (kind == "outer_door") != (ROOM in between):
        raise t.fail("kind", kind, "an outer_door, and only an outer_door, opens to the room")
    kinds = {s.name: s.kind for s in spaces}
    if any(kinds.get(b) == "transfer_chamber" for b in between) and ROOM in between:
        raise t.fail("between", between, "a transfer_chamber has no door to the room (it stays inert)")
    if all(kinds.get(b) == "process_chamber" for b in between):
        raise t.fail(
            "between",
            between,
            "not two process chambers: two deposition systems are joined through a transfer_chamber "
            "(the method's intermediate inert space), each with its own gate valve",
        )
    t.finish()
    return PortConfig(name, kind, (between[0], between[1]))


def _check_transfer_chambers(
    root: TableReader, spaces: tuple[SpaceConfig, ...], ports: tuple[PortConfig, ...]
) -> None:
    """A transfer chamber is there to pass the electrode from one deposition system to the next:
    exactly two gate valves, each to a process chamber (two different ones)."""
    kinds = {s.name: s.kind for s in spaces}
    for index, space in enumerate(spaces):
        if space.kind != "transfer_chamber":
            continue
        joined = [next(b for b in p.between if b != space.name) for p in ports if space.name in p.between]
        if len(joined) != 2 or len(set(joined)) != 2 or any(kinds[j] != "process_chamber" for j in joined):
            raise root.fail(
                f"spaces[{index}].kind",
                space.kind,
                f"a transfer_chamber joins two process chambers, one gate valve each; "
                f"{space.name} has ports to {', '.join(joined) or 'nothing'}",
            )


def _link(t: TableReader, key: str) -> LinkConfig:
    url = t.text("url")
    try:
        parse_url(url)
    except ConfigError as exc:
        raise t.fail("url", url, str(exc).split(": ", 1)[-1]) from None
    t.finish()
    return LinkConfig(key, url)


def _device(t: TableReader, spaces: list[str], links: dict[str, LinkConfig]) -> DeviceConfig:
    name = _name(t, "name")
    family = t.text("family", choices=FAMILIES)
    link = t.text("link", choices=list(links))
    address = read_address(family, t, family in MODBUS_FAMILIES)
    space = t.text("space", choices=spaces) if t.has("space") else None
    params = read_params(family, t.table_reader("params"))
    channels_reader = t.table_reader("channels")
    keys = channel_keys(family, len(params.get("gauge_types", ())))
    for key in channels_reader.table:
        if key not in keys:
            allowed = f"one of {', '.join(keys)}" if keys else f"a {family} has no channels: give its `space`"
            raise channels_reader.fail(key, channels_reader.table[key], allowed)
    channels = {key: channels_reader.text(key, choices=spaces) for key in list(channels_reader.table)}
    t.finish()
    return DeviceConfig(name, family, link, address, space, channels, params)
