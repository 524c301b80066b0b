"""First-out: which alarm opened a cascade, and which alarm each later one in it follows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

An engineer reading last night's journal after a restart must see that the chamber-pressure trip
followed a turbo drive fault, not only that both happened: the mark is kept with each alarm event.
Rows written before this revision have NULL in both (no cascade was known then).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_events") as batch:
        batch.add_column(sa.Column("first_out", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("follows", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarm_events") as batch:
        batch.drop_column("follows")
        batch.drop_column("first_out")
