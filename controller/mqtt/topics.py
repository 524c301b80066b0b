"""The topic names of one line's tree, ``<root>`` = ``<topic_prefix>/<line name>`` (the contract is in
the package docstring). A bad prefix or line name is a configuration error when the bridge is built, not
a publication that fails later; device, channel, station and alarm names are made single levels, so no
name can reach into another's subtree."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.config.line_config import LineConfig, MqttConfig
from controller.errors import ConfigFileError


def _level(text: str) -> str:
    """One topic level: the separators and wildcards MQTT forbids in a name become '_'."""
    return re.sub(r"[/+#\x00]", "_", text) or "_"


@dataclass(frozen=True, slots=True)
class Topics:
    root: str

    @classmethod
    def for_line(cls, config: LineConfig, mqtt: MqttConfig) -> Topics:
        prefix = mqtt.topic_prefix
        if not prefix or any(c in prefix for c in "+#\x00") or "" in prefix.split("/"):
            raise ConfigFileError(
                config.path, "mqtt.topic_prefix", prefix, "topic levels without '+', '#' or empty levels"
            )
        if not config.name or any(c in config.name for c in "/+#\x00"):
            raise ConfigFileError(
                config.path, "line.name", config.name, "one MQTT topic level: no '/', '+', '#'"
            )
        return cls(f"{prefix}/{config.name}")

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    def telemetry(self, device: str, channel: str) -> str:
        return f"{self.root}/telemetry/{_level(device)}/{_level(channel)}"

    def state(self, station: str) -> str:
        return f"{self.root}/state/{_level(station)}"

    def alarm(self, alarm_id: str) -> str:
        return f"{self.root}/alarm/{_level(alarm_id)}"

    @property
    def event(self) -> str:
        return f"{self.root}/event"

    @property
    def commands(self) -> str:
        return f"{self.root}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def reply(self, name: str) -> str:
        return f"{self.root}/cmd/{name}/reply"
