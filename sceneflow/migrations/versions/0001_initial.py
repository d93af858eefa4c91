"""Initial schema: credentials, generation jobs and their attempt log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "user_provider_config",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("provider_name", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("encrypted_credentials", sa.Text(), nullable=False),
        sa.Column("is_valid", sa.Boolean(), nullable=True),
        _ts("last_validated_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("user_id", "provider_name", name="uq_user_provider"),
    )
    op.create_index("ix_user_provider_config_user_id", "user_provider_config", ["user_id"])

    op.create_table(
        "generation_job",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("request_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("provider_job_id", sa.String(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("video_url", sa.Text(), nullable=True),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("submitted_at", nullable=True),
        _ts("finished_at", nullable=True),
    )
    for column in ("batch_id", "provider_job_id", "status", "user_id"):
        op.create_index(f"ix_generation_job_{column}", "generation_job", [column])
    op.create_index(
        "ix_generation_job_idempotency_key", "generation_job", ["idempotency_key"], unique=True
    )

    op.create_table(
        "generation_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("generation_job.id"), nullable=False
        ),
        sa.Column("operation", sa.String(), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_generation_attempt_job_id", "generation_attempt", ["job_id"])


def downgrade() -> None:
    op.drop_table("generation_attempt")
    op.drop_table("generation_job")
    op.drop_table("user_provider_config")
