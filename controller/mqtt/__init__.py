"""The optional MQTT bridge: telemetry, state, alarms and events out; authenticated commands in, each
through the command gate like every other origin."""
