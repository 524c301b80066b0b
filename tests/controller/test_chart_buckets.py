"""`GET /api/samples?max_points=N`: a chart's worth of the record, per channel and time bucket the lowest,
the highest and the first untrusted reading, so a spike and a gap survive the downsampling."""

from __future__ import annotations

from controller.api.flight_record import ChartBuckets
from controller.historian.record_search import SampleRow


def test_each_bucket_keeps_its_extremes_and_its_first_untrusted_reading_in_time_order() -> None:
    rows = [SampleRow(i, float(i), 1, 10.0, "ok") for i in range(100)]
    rows[17] = SampleRow(17, 17.0, 1, 99.0, "ok")  # a spike in bucket 1
    rows[18] = SampleRow(18, 18.0, 1, -5.0, "ok")  # and a dip beside it
    rows[60] = SampleRow(60, 60.0, 1, None, "stale")  # a gap in bucket 6
    rows[61] = SampleRow(61, 61.0, 1, 10.0, "error")
    other = [SampleRow(1000 + i, float(i), 2, float(i), "ok") for i in range(100)]
    buckets = ChartBuckets(0.0, 100.0, 10)
    buckets.add(rows[:50])  # as the pages stream in
    buckets.add(rows[50:] + other)
    kept = buckets.rows()
    mine = [r for r in kept if r.channel_id == 1]
    assert len(mine) <= 3 * 10
    assert [r.ts for r in kept] == sorted(r.ts for r in kept)
    assert {17, 18, 60} <= {r.id for r in mine}
    assert 61 not in {r.id for r in mine}  # one untrusted reading per bucket marks the gap
    theirs = [r.value for r in kept if r.channel_id == 2 and r.value is not None]  # bucketed on its own
    assert min(theirs) == 0.0
    assert max(theirs) == 99.0
    assert len(theirs) == 20


def test_an_instant_at_the_end_of_the_range_falls_in_the_last_bucket() -> None:
    buckets = ChartBuckets(0.0, 10.0, 2)
    buckets.add([SampleRow(1, 10.0, 1, 1.0, "ok"), SampleRow(2, 0.0, 1, 2.0, "ok")])
    assert [r.id for r in buckets.rows()] == [2, 1]
