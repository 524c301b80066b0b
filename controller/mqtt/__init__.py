"""The optional MQTT bridge: the line's telemetry, states, alarms and command records on the plant
broker, and authenticated operator commands from it, each through the command gate like every other
origin.

Off unless the line configuration has an `[mqtt]` table (DESIGN.md §5). Topic contract, with
``<root>`` = ``<topic_prefix>/<line name>``; every payload is UTF-8 JSON, QoS 1:

- ``<root>/status`` (retained): ``{"state": "online", "ts", "dropped": {"telemetry", "records"}}`` on
  every connection; the Will (sent by the broker if the bridge vanishes) and a clean stop leave
  ``{"state": "offline", "reason"}``.
- ``<root>/telemetry/<device>/<channel>``: ``{"seq", "ts", "value", "unit", "quality"}``. A non-finite
  value is ``null`` with the quality saying why (the driver's "over_range", "sensor_off" ...; an "ok"
  reading that is not finite becomes "error") and ``"nonfinite": "nan" | "inf" | "-inf"``. Archive
  back-fill adds ``"archived": true`` and has ``"seq": null``.
- ``<root>/state/<station>`` (retained): ``{"seq", "ts", "station", "kind", "state"}`` on every change.
- ``<root>/alarm/<alarm id>`` (retained while not normal, see `bridge`): ``{"seq", **AlarmRecord.as_dict()}``
  for every journal record.
- ``<root>/event``: every gate record, whatever its origin: ``{"seq", "ts", "command": {"type", ...},
  "user", "origin", "outcome", "reason", "refusals": [{"invariant", "rule", "reason"}],
  "request_reason", "duration_s"}``.
- ``<root>/cmd/<name>`` (in): ``{"user", "action": {"type"?, ...fields}, "id"?, "reply_to"?, "reason"?}``;
  the answer goes to ``<root>/cmd/<name>/reply`` or ``reply_to``: ``{"seq", "ts", "id", "command",
  "user", "outcome", "reason", "refusals", "error", "action"}`` with outcome "done", "refused",
  "failed" (the gate's) or "rejected", "invalid" (the bridge's).

``seq`` numbers every message the bridge produces, in production order; it restarts at 1 when the
bridge does (the "online" status marks that).

The decisions behind the contract sit with the code that carries them out: `bridge` (retained alarms,
telemetry pacing, the supervised connection), `outbox` (order, bounds, drops and their back-fill),
`commands` (who may command what, and how a payload becomes an action).
"""
