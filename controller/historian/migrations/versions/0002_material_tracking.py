"""Material tracking: the items on the line and the exposure ledger that proves where they were.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

A revision of its own because it serves a different reader (the exposure report, DESIGN.md's promise)
than the telemetry of 0001; a database at 0001 is "behind head" and the historian refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("material", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("space", sa.Text(), nullable=False),
        sa.Column("atmosphere", sa.Text(), nullable=False),
        sa.Column("exposed", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
    )
    op.create_index("ix_ledger_item_ts", "ledger", ["item", "ts"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("items")
