"""Unit modes: every change of the line's mode, and every device taken out of or put back into service.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Who had the line when (a batch in production, operators in manual, engineers in maintenance) is part
of a night's record: a maintenance engineer reading it after a restart must see it, so it is kept in
the historian with the commands and alarms, not in the service's memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mode_changes",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("device", sa.Text(), nullable=True),
        sa.Column("in_service", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_mode_changes_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_mode_changes"),
    )
    op.create_index("ix_mode_changes_ts", "mode_changes", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_mode_changes_ts", table_name="mode_changes")
    op.drop_table("mode_changes")
