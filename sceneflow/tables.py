"""The tables: sealed credentials per user and provider, generation jobs and their attempts.

`sceneflow.store` holds the functions over them; Alembic (``sceneflow/migrations``) creates them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sceneflow.models import JobStatus

__all__ = [
    "GenerationAttempt",
    "GenerationJob",
    "UTCDateTime",
    "UserProviderConfig",
    "UserProviderConfigPublic",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class _ConfigBase(SQLModel):
    user_id: str = Field(index=True)
    provider_name: str
    key_id: str
    is_valid: bool | None = Field(default=None, description="None while never tested.")
    last_validated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UserProviderConfig(_ConfigBase, table=True):
    """One user's sealed credentials for one provider."""

    __tablename__ = "user_provider_config"
    __table_args__ = (sa.UniqueConstraint("user_id", "provider_name", name="uq_user_provider"),)

    id: int | None = Field(default=None, primary_key=True)
    encrypted_credentials: str = Field(sa_type=sa.Text, repr=False)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class UserProviderConfigPublic(_ConfigBase):
    """What may be shown about stored credentials: everything except the sealed token."""

    id: int
    created_at: datetime
    updated_at: datetime

    @property
    def validity(self) -> str:
        return {True: "valid", False: "invalid", None: "unknown"}[self.is_valid]


class GenerationJob(SQLModel, table=True):
    """One requested video; the source of truth for its state (design.md section 3)."""

    __tablename__ = "generation_job"

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    idempotency_key: str = Field(unique=True, index=True)
    batch_id: str | None = Field(default=None, index=True)
    row_number: int | None = None
    user_id: str = Field(index=True)
    provider: str
    request_json: str = Field(sa_type=sa.Text)
    status: str = Field(default=JobStatus.QUEUED.value, index=True)
    provider_job_id: str | None = Field(default=None, index=True)
    progress: float = 0.0
    video_url: str | None = Field(default=None, sa_type=sa.Text)
    output_path: str | None = Field(default=None, sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)
    attempts: int = 0
    # Bumped when a failed job or a forced one starts over; part of Prefect's cache key.
    generation: int = 0
    cost: float | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The run that may send and poll this job, until its lease runs out (design.md §3).
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class GenerationAttempt(SQLModel, table=True):
    """One call to a provider and what came back. `detail` never holds a secret."""

    __tablename__ = "generation_attempt"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="generation_job.id", index=True, max_length=32)
    operation: str
    started_at: datetime = _created()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str
    http_status: int | None = None
    error_class: str | None = None
    detail: str = Field(default="", sa_type=sa.Text)
