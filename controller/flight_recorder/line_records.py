"""The rows `line_at` rebuilds the line at an instant from, read from a historian.

Why apart from `line_at`: the rebuilding is pure and tested on hand-written rows; this is the one
place that knows which queries feed it. Each is bounded by the instant, not by the night: a last
sample per channel (an indexed look-up each), the samples and commands of the warm-up window (from
the start of the service run the instant is in, at most `WARMUP_S` before it), and each
alarm's, station's and the mode's newest row (`RecordSearch.latest_rows_at`). Only the channels the
line state reads are asked for (`channels_read`).
"""

from __future__ import annotations

from controller.config.line_config import LineConfig
from controller.flight_recorder.line_at import WARMUP_S, LineRecords
from controller.flight_recorder.rejudge import channels_read
from controller.historian.record_search import SampleRow
from controller.historian.store import Historian

MAX_ITEMS = 1_000_000


async def line_records(historian: Historian, config: LineConfig, at: float) -> LineRecords:
    started = await historian.run_start_at(at)
    warm_from = at - WARMUP_S if started is None else max(at - WARMUP_S, started)
    read = set(channels_read(config))
    channels = {
        int(r["id"]): (str(r["device"]), str(r["channel"]), str(r["unit"]))
        for r in await historian.channel_rows()
        if (r["device"], r["channel"]) in read
    }
    seed = [r for r in await historian.latest_readings_at(warm_from) if r.channel_id in channels]
    samples: list[SampleRow] = []
    async for page in historian.sample_pages(list(channels), warm_from, at):
        samples += [row for row in page if row.ts > warm_from]
    commands = [
        c for c in (await historian.timeline_rows(warm_from, at))["command"] if float(c["ts"]) > warm_from
    ]
    known = [
        (str(r["id"]), str(r["kind"]), str(r["material"])) for r in await historian.items(limit=MAX_ITEMS)
    ]
    modes = await historian.latest_rows_at("mode", "line", at)
    return LineRecords(
        at=at,
        warm_from=warm_from,
        channels=channels,
        seed=seed,
        samples=samples,
        commands=commands,
        known_items=known,
        inventory_actions=await historian.inventory_actions_until(at),
        transitions=await historian.latest_rows_at("station", "station", at),
        alarm_events=await historian.latest_rows_at("alarm", "alarm_id", at),
        mode=modes[-1] if modes else None,
    )
