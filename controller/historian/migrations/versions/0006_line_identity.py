"""Line identity: every line-scoped row names its line; the `lines` table holds each line's lease.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Many lines share one site database, so a run, an item, a batch or an alarm must say whose it is: a
restart that marked another line's run incomplete, or resumed another line's batch, is a safety fault.

Which line do the rows already in the database belong to? Before this revision one database served
one line, and every run records the configuration text it ran with, whose `[line] name` is that line.
So:
- `depline db upgrade --config LINE` passes the line it upgrades for (`alembic_config(url, line=...)`);
  the recorded runs must agree with it (none of them may name another line), or the upgrade is
  refused: relabelling another line's records as this one's is the very fault this revision ends;
- without a given line the recorded runs must name exactly one;
- a database with rows but neither is refused with the instruction to give `--config`; an empty
  one needs no answer.
Samples carry their line through their channel, job events through their job: neither gets a column.

Storage that lasts: each line records how long it keeps raw samples (`lines.retention_s`), and on
PostgreSQL `samples` becomes a table partitioned by day of `ts` (plus a default partition), so that old
samples leave as whole partitions (`controller.historian.retention`). The rows already there are moved
into it once, by this migration (the default partition takes them; new days get their own partitions
from the historian, ahead of time).
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINE_TABLES = (
    "runs",
    "channels",
    "transitions",
    "mode_changes",
    "alarm_events",
    "items",
    "ledger",
    "commands",
    "batches",
    "jobs",
)


def _recorded_lines(conn: sa.Connection) -> set[str]:
    """The `[line] name` of every configuration a run recorded (unreadable texts name none)."""
    names: set[str] = set()
    for (text,) in conn.execute(sa.text("SELECT DISTINCT config_text FROM runs")):
        try:
            name = tomllib.loads(text).get("line", {}).get("name")
        except tomllib.TOMLDecodeError:
            continue
        if isinstance(name, str) and name:
            names.add(name)
    return names


def _has_rows(conn: sa.Connection) -> bool:
    return any(conn.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() for table in LINE_TABLES)


def existing_line(conn: sa.Connection, given: str | None) -> str | None:
    """The line the rows already here belong to (see the module docstring); None for no rows."""
    recorded = _recorded_lines(conn)
    if given is not None:
        others = sorted(recorded - {given})
        if others:
            raise RuntimeError(
                f"this database's runs were recorded by line(s) {', '.join(others)}, not {given!r}: "
                "upgrade it with that line's configuration (depline db upgrade --config ...)"
            )
        return given
    if len(recorded) == 1:
        return recorded.pop()
    if not _has_rows(conn):
        return None
    if recorded:
        raise RuntimeError(
            f"this database's runs name several lines ({', '.join(sorted(recorded))}): give the line "
            "its rows belong to (depline db upgrade --config ...)"
        )
    raise RuntimeError(
        "no run records which line this database served: upgrade with depline db upgrade --config"
    )


def upgrade() -> None:
    conn = op.get_bind()
    given = context.config.attributes.get("line")
    line = existing_line(conn, str(given) if given else None)
    op.create_table(
        "lines",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.Double(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("retention_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_lines"),
    )
    if line is not None:
        conn.execute(
            sa.text("INSERT INTO lines (name, registered_at) VALUES (:line, :now)"),
            {"line": line, "now": time.time()},
        )
    for table in LINE_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("line", sa.Text(), nullable=True))
        if line is not None:
            conn.execute(sa.text(f"UPDATE {table} SET line = :line"), {"line": line})
        with op.batch_alter_table(table) as batch:
            batch.alter_column("line", existing_type=sa.Text(), nullable=False)
            if table == "items":
                batch.drop_constraint("pk_items", type_="primary")
                batch.create_primary_key("pk_items", ["line", "id"])
            elif table == "channels":
                batch.drop_constraint("uq_channels_device_channel", type_="unique")
                batch.create_unique_constraint(
                    "uq_channels_line_device_channel", ["line", "device", "channel"]
                )
            elif table == "ledger":
                batch.drop_index("ix_ledger_item_ts")
                batch.create_index("ix_ledger_line_item_ts", ["line", "item", "ts"])
            elif table == "batches":
                batch.drop_index("ix_batches_queue_hash_status")
                batch.create_index("ix_batches_line_queue_hash_status", ["line", "queue_hash", "status"])
            elif table == "runs":
                batch.create_index("ix_runs_line_status", ["line", "status"])
    if conn.dialect.name == "postgresql":
        _partition_samples()


_SAMPLE_COLUMNS = "id, ts, channel_id, value, quality"


def _partition_samples() -> None:
    """`samples` as a table partitioned by range of `ts`; its rows moved into the default partition."""
    op.execute("ALTER TABLE samples RENAME TO samples_unpartitioned")
    op.execute("ALTER TABLE samples_unpartitioned RENAME CONSTRAINT pk_samples TO pk_samples_unpartitioned")
    op.execute("ALTER INDEX ix_samples_channel_id_ts RENAME TO ix_samples_unpartitioned_channel_id_ts")
    op.execute(
        "CREATE TABLE samples ("
        " id BIGINT NOT NULL DEFAULT nextval('samples_id_seq'),"
        " ts DOUBLE PRECISION NOT NULL, channel_id INTEGER NOT NULL, value DOUBLE PRECISION,"
        " quality TEXT NOT NULL, CONSTRAINT pk_samples PRIMARY KEY (id, ts)"
        ") PARTITION BY RANGE (ts)"
    )
    op.execute("CREATE INDEX ix_samples_channel_id_ts ON samples (channel_id, ts)")
    op.execute("CREATE TABLE samples_default PARTITION OF samples DEFAULT")
    op.execute(f"INSERT INTO samples ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} FROM samples_unpartitioned")
    op.execute("ALTER SEQUENCE samples_id_seq OWNED BY samples.id")
    op.execute("DROP TABLE samples_unpartitioned")


def _unpartition_samples() -> None:
    op.execute("ALTER TABLE samples RENAME TO samples_partitioned")
    op.execute("ALTER TABLE samples_partitioned RENAME CONSTRAINT pk_samples TO pk_samples_partitioned")
    op.execute("ALTER INDEX ix_samples_channel_id_ts RENAME TO ix_samples_partitioned_channel_id_ts")
    op.execute(
        "CREATE TABLE samples ("
        " id BIGINT NOT NULL DEFAULT nextval('samples_id_seq'),"
        " ts DOUBLE PRECISION NOT NULL, channel_id INTEGER NOT NULL, value DOUBLE PRECISION,"
        " quality TEXT NOT NULL, CONSTRAINT pk_samples PRIMARY KEY (id))"
    )
    op.execute("CREATE INDEX ix_samples_channel_id_ts ON samples (channel_id, ts)")
    op.execute(f"INSERT INTO samples ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} FROM samples_partitioned")
    op.execute("ALTER SEQUENCE samples_id_seq OWNED BY samples.id")
    op.execute("DROP TABLE samples_partitioned")  # its partitions with it


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_samples()
    for table in reversed(LINE_TABLES):
        with op.batch_alter_table(table) as batch:
            if table == "items":
                batch.drop_constraint("pk_items", type_="primary")
                batch.create_primary_key("pk_items", ["id"])
            elif table == "channels":
                batch.drop_constraint("uq_channels_line_device_channel", type_="unique")
                batch.create_unique_constraint("uq_channels_device_channel", ["device", "channel"])
            elif table == "ledger":
                batch.drop_index("ix_ledger_line_item_ts")
                batch.create_index("ix_ledger_item_ts", ["item", "ts"])
            elif table == "batches":
                batch.drop_index("ix_batches_line_queue_hash_status")
                batch.create_index("ix_batches_queue_hash_status", ["queue_hash", "status"])
            elif table == "runs":
                batch.drop_index("ix_runs_line_status")
            batch.drop_column("line")
    op.drop_table("lines")
