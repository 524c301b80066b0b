"""The line core: what the line is, what it measures, and what may be done to it now.

The line model (spaces, ports, items, materials), the line state built from the poller's readings,
atmosphere classification, the pure interlocks and the one command gate every actuator command passes,
the actuators behind it, station state machines, the supervisor's continuous permissives, alarms, the
exposure ledger, and the line controller that wires them. Nothing here knows about recipes, the
historian, the web or MQTT: those layers sit above it (see pyproject.toml's layers contract).
"""
