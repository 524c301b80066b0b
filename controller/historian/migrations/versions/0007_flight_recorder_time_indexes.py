"""Time indexes for the flight recorder: every line-scoped event table by (line, ts).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The flight recorder asks each event table for one line's rows in a time range (a job's timeline, the
inventory and alarms at a replay cursor's instant). Before this revision:
- the ledger was indexed by (line, item, ts) only, so a range over all items scanned the line's
  whole ledger (SQLite: `SCAN ledger`; a year of nights grows it without bound);
- commands, alarm events, station transitions and mode changes were indexed by `ts` alone: the range
  is found, but every row of every other line sharing the database in it is read and thrown away;
- `alarm_events (alarm_id, ts)` serves one alarm's history, not "which alarms were active at T".
(Job events are already reached by (job_id, ts): the timeline asks for the jobs of its line first.)

Samples were indexed by (channel_id, ts), the shape of every sample query, but not *covered* by it:
at the line's rate (~400 a second over a hundred channels) one channel's rows are spread one per
table page, so a day of one channel read ~a table page per row. The index now carries the value and
the quality as well (channel_id, ts, value, quality), so a trend, an export or a replay cursor reads
the index alone (SQLite: `USING COVERING INDEX`; PostgreSQL: index-only scans once vacuumed). It
replaces the old one rather than adding a second, so the sample write path still maintains one index.

Each table gets (line, ts): an equality on the line then a range on the time, the shape of every
flight-recorder query. The `ts`-only indexes stay: on tables written a few rows a second an extra
index costs nothing measurable, and leaving them keeps this revision additive (nothing to rebuild on
a downgrade, no plan of an older query changed for the worse).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME_INDEXED = ("ledger", "commands", "alarm_events", "transitions", "mode_changes")


COVERING = "ix_samples_channel_id_ts_value_quality"


def upgrade() -> None:
    for table in TIME_INDEXED:
        op.create_index(f"ix_{table}_line_ts", table, ["line", "ts"])
    # on PostgreSQL an index on the partitioned table is made on (and dropped from) every partition
    op.create_index(COVERING, "samples", ["channel_id", "ts", "value", "quality"])
    op.drop_index("ix_samples_channel_id_ts", table_name="samples")


def downgrade() -> None:
    op.create_index("ix_samples_channel_id_ts", "samples", ["channel_id", "ts"])
    op.drop_index(COVERING, table_name="samples")
    for table in reversed(TIME_INDEXED):
        op.drop_index(f"ix_{table}_line_ts", table_name=table)
