"""Production: batches of jobs, their checkpoints and the operator's confirmations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The batch queue lives in the historian so that a restarted controller resumes an overnight batch
from the last checkpoint that is safe to repeat, and so a job's record (who confirmed what, how long
the run waited) sits next to the exposure ledger it explains.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("queue_path", sa.Text(), nullable=False),
        sa.Column("queue_hash", sa.Text(), nullable=False),
        sa.Column("queue_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'complete', 'failed', 'stopped')", name="ck_batches_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
    )
    op.create_index("ix_batches_queue_hash_status", "batches", ["queue_hash", "status"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("recipe_path", sa.Text(), nullable=False),
        sa.Column("recipe_text", sa.Text(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("on_failure", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name="fk_jobs_batch_id_batches"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("batch_id", "position", name="uq_jobs_batch_id_position"),
    )
    op.create_table(
        "job_events",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    op.create_index("ix_job_events_job_id_ts", "job_events", ["job_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_job_events_job_id_ts", table_name="job_events")
    op.drop_table("job_events")
    op.drop_table("jobs")
    op.drop_index("ix_batches_queue_hash_status", table_name="batches")
    op.drop_table("batches")
