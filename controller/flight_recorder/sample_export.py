"""`depline samples`: every recorded reading of a space or a channel over a range, as CSV or JSON lines.

Why it is built this way:

- **A space means all its instruments.** The configuration binds devices to spaces (a device's `space`,
  or one of its channels bound by name); asking for the process chamber gives its gauges, turbo,
  heater, gas flow and sources together, as an engineer looking at an incident wants them.
- **Every row, with its quality.** A stale, out-of-range or faulted reading is exported as such (the
  value empty where it was not a number), never dropped or interpolated: the export is evidence.
- **Streamed.** Rows are written page by page (`RecordSearch.sample_pages`), so an export of a day is
  bounded in memory however many rows it holds; the writing goes to a file object the caller owns.
- **Or summarised for a trend, on request only.** With `max_points` each channel's range is cut into
  `max_points // 2` equal buckets and each bucket is one record with its first and last time, its
  lowest and highest usable value and how many samples it holds (and how many were not usable): a
  trend draws the two extremes, so a spike survives, and 8 h of a channel is ~2000 points instead of
  ~115 k. Such records say they are buckets (other columns than a raw export), so they are never
  mistaken for the evidence itself; an export without `max_points` stays every row.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from controller.config.line_config import LineConfig
from controller.errors import UserError
from controller.historian.record_search import SampleBucket, SampleRow
from controller.historian.store import Historian
from controller.reports.gather import shown_url
from controller.reports.wording import utc

CSV_HEADER: Final = ("ts", "time_utc", "device", "channel", "space", "value", "unit", "quality")
BUCKET_CSV_HEADER: Final = (
    "ts", "time_utc", "ts_last", "device", "channel", "space", "min", "max", "unit", "samples", "unusable",
)  # fmt: skip
MIN_POINTS: Final = 4  # two buckets: anything less is not a trend


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    device: str
    channel: str
    unit: str
    space: str  # "" where the channel serves no one space (a remote I/O point, say)


def space_of_channels(config: LineConfig) -> dict[tuple[str, str], str]:
    """(device, channel) → space for every channel bound by name; other channels of a device with a
    `space` belong to that space (see `channel_space`)."""
    return {(d.name, channel): space for d in config.devices for channel, space in d.channels.items()}


def channel_space(config: LineConfig, device: str, channel: str) -> str:
    bound = space_of_channels(config).get((device, channel))
    if bound is not None:
        return bound
    owner = next((d for d in config.devices if d.name == device), None)
    return owner.space or "" if owner is not None and not owner.channels else ""


async def select_channels(
    historian: Historian, config: LineConfig, *, space: str | None, channel: str | None
) -> list[Channel]:
    """The recorded channels of `space` (all its instruments) or the one `channel` (DEVICE.CHANNEL)."""
    recorded = [
        Channel(int(r["id"]), str(r["device"]), str(r["channel"]), str(r["unit"]), "")
        for r in await historian.channel_rows()
    ]
    recorded = [
        Channel(c.id, c.device, c.channel, c.unit, channel_space(config, c.device, c.channel))
        for c in recorded
    ]
    if space is not None:
        spaces = [s.name for s in config.spaces]
        if space not in spaces:
            raise UserError(
                f"--space {space!r}: not a space of line {config.name!r} (spaces: {', '.join(spaces)})"
            )
        chosen = [c for c in recorded if c.space == space]
        if not chosen:
            raise UserError(f"--space {space}: {shown_url(historian.url)} holds no recorded channel of it")
        return chosen
    assert channel is not None
    device, _, name = channel.partition(".")
    chosen = [c for c in recorded if c.device == device and c.channel == name]
    if not chosen:
        known = ", ".join(sorted(f"{c.device}.{c.channel}" for c in recorded)[:12])
        raise UserError(
            f"--channel {channel!r}: {shown_url(historian.url)} has no such recorded channel "
            f"(DEVICE.CHANNEL, e.g. {known or 'none recorded'})"
        )
    return chosen


async def write_samples(
    historian: Historian, chosen: Sequence[Channel], since_ts: float, until_ts: float, fmt: str, out: TextIO
) -> int:
    """Every sample of `chosen` in [since, until], oldest first, to `out`; returns the row count.

    Nothing is written (not even the CSV header) when the range holds no sample, so the caller can
    refuse an empty range without leaving a file that looks like an export. Each page is formatted in
    memory and written from a worker thread: a slow disk or pipe never stalls the event loop."""
    by_id = {c.id: c for c in chosen}
    count = 0
    async for page in historian.sample_pages(list(by_id), since_ts, until_ts):
        records = [sample_record(row, by_id[row.channel_id]) for row in page]
        text = csv_text(records, header=count == 0) if fmt == "csv" else jsonl_text(records)
        await asyncio.to_thread(out.write, text)
        count += len(page)
    return count


async def write_sample_buckets(
    historian: Historian,
    chosen: Sequence[Channel],
    since_ts: float,
    until_ts: float,
    fmt: str,
    out: TextIO,
    *,
    max_points: int,
) -> int:
    """Each channel of `chosen` over [since, until] in at most `max_points // 2` buckets (two points
    each: the lowest and the highest), oldest first, to `out`; returns the number of samples they
    summarise (0: nothing written, as `write_samples`)."""
    records, count = await sample_bucket_records(historian, chosen, since_ts, until_ts, max_points)
    if records:
        await asyncio.to_thread(out.write, bucket_text(records, fmt))
    return count


def bucket_text(records: Sequence[dict[str, Any]], fmt: str) -> str:
    return csv_text(records, header=True, columns=BUCKET_CSV_HEADER) if fmt == "csv" else jsonl_text(records)


async def sample_bucket_records(
    historian: Historian, chosen: Sequence[Channel], since_ts: float, until_ts: float, max_points: int
) -> tuple[list[dict[str, Any]], int]:
    """The bucket records of `write_sample_buckets` and the samples they summarise."""
    if max_points < MIN_POINTS:
        raise UserError(f"--max-points {max_points}: at least {MIN_POINTS} (two buckets of min and max)")
    by_id = {c.id: c for c in chosen}
    found = await historian.sample_buckets(list(by_id), since_ts, until_ts, buckets=max_points // 2)
    return [bucket_record(b, by_id[b.channel_id]) for b in found], sum(b.samples for b in found)


def bucket_record(bucket: SampleBucket, channel: Channel) -> dict[str, Any]:
    return {
        "ts": bucket.first_ts,
        "time_utc": utc(bucket.first_ts, digits=3),
        "ts_last": bucket.last_ts,
        "device": channel.device,
        "channel": channel.channel,
        "space": channel.space,
        "min": bucket.low,
        "max": bucket.high,
        "unit": channel.unit,
        "samples": bucket.samples,
        "unusable": bucket.unusable,
    }


def csv_text(records: Sequence[dict[str, Any]], *, header: bool, columns: Sequence[str] = CSV_HEADER) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in r.values()] for r in records)
    return buffer.getvalue()


def jsonl_text(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def sample_record(row: SampleRow, channel: Channel) -> dict[str, Any]:
    value = row.value
    return {
        "ts": row.ts,
        "time_utc": utc(row.ts, digits=3),
        "device": channel.device,
        "channel": channel.channel,
        "space": channel.space,
        "value": None if value is None or math.isnan(value) else value,
        "unit": channel.unit,
        "quality": row.quality,
    }
