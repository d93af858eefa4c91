"""Keyword-only functions over the tables in `sceneflow.tables`, which are re-exported here.

Credentials are sealed by `sceneflow.vault` before they reach a row; no function here ever
writes plaintext. Functions flush but never commit: the caller's `db.session_scope()` decides.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, col, func, select

from sceneflow import vault
from sceneflow.errors import CredentialsError, NotFoundError
from sceneflow.tables import (
    GenerationAttempt,
    GenerationJob,
    UserProviderConfig,
    UserProviderConfigPublic,
    utcnow,
)

__all__ = [
    "ATTEMPT_OPERATIONS",
    "GenerationAttempt",
    "GenerationJob",
    "UserProviderConfig",
    "UserProviderConfigPublic",
    "delete_credentials",
    "find_job",
    "get_config",
    "get_job",
    "get_or_create_job",
    "batch_status_counts",
    "jobs_for_batch",
    "provider_job_ids_since",
    "list_all_configs",
    "list_configs",
    "move_job",
    "read_job",
    "unseal_credentials",
    "put_credentials",
    "record_attempt",
    "rotate_keys",
    "set_validity",
    "update_job",
    "utcnow",
]

ATTEMPT_OPERATIONS = frozenset({"submit", "lookup", "status", "cancel", "download", "test"})
_OUTCOMES = frozenset({"ok", "error"})


def _missing(user_id: str, provider: str) -> str:
    return (
        f"No credentials for provider {provider!r} and user {user_id!r}: "
        f"run `sceneflow creds set {user_id} {provider}`"
    )


# --- credentials -------------------------------------------------------------------------


def get_config(*, session: Session, user_id: str, provider: str) -> UserProviderConfig | None:
    stmt = select(UserProviderConfig).where(
        UserProviderConfig.user_id == user_id, UserProviderConfig.provider_name == provider
    )
    return session.exec(stmt).first()


def _require_config(*, session: Session, user_id: str, provider: str) -> UserProviderConfig:
    row = get_config(session=session, user_id=user_id, provider=provider)
    if row is None:
        raise NotFoundError(_missing(user_id, provider))
    return row


def put_credentials(
    *,
    session: Session,
    user_id: str,
    provider: str,
    credentials: dict[str, Any],
    keyring: vault.Keyring | None = None,
) -> UserProviderConfig:
    """Seal and store credentials, replacing any earlier ones; validity goes back to unknown."""
    if not user_id.strip():
        raise CredentialsError("The user id must not be blank.")
    if not credentials:
        raise CredentialsError(
            f"The credentials for provider {provider!r} are empty: give a JSON object with "
            'at least one field, such as {"api_key": "..."}.'
        )
    ring = keyring or vault.Keyring.from_settings()
    token, kid = ring.seal(user_id=user_id, provider=provider, credentials=credentials)
    row = get_config(session=session, user_id=user_id, provider=provider)
    if row is None:
        row = UserProviderConfig(
            user_id=user_id, provider_name=provider, encrypted_credentials=token, key_id=kid
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another writer stored this (user, provider) first; overwrite theirs below.
            row = _require_config(session=session, user_id=user_id, provider=provider)
    row.encrypted_credentials, row.key_id = token, kid
    row.is_valid, row.last_validated_at, row.updated_at = None, None, utcnow()
    session.add(row)
    session.flush()
    return row


def unseal_credentials(
    *, session: Session, user_id: str, provider: str, keyring: vault.Keyring | None = None
) -> dict[str, Any]:
    """The decrypted credentials; they live in memory only and must never be logged."""
    row = get_config(session=session, user_id=user_id, provider=provider)
    if row is None:
        raise CredentialsError(_missing(user_id, provider))
    ring = keyring or vault.Keyring.from_settings()
    return ring.unseal(user_id=user_id, provider=provider, token=row.encrypted_credentials)


def list_configs(*, session: Session, user_id: str) -> list[UserProviderConfig]:
    stmt = (
        select(UserProviderConfig)
        .where(UserProviderConfig.user_id == user_id)
        .order_by(col(UserProviderConfig.provider_name))
    )
    return list(session.exec(stmt))


def list_all_configs(*, session: Session) -> list[UserProviderConfig]:
    stmt = select(UserProviderConfig).order_by(
        col(UserProviderConfig.user_id), col(UserProviderConfig.provider_name)
    )
    return list(session.exec(stmt))


def delete_credentials(*, session: Session, user_id: str, provider: str) -> None:
    row = get_config(session=session, user_id=user_id, provider=provider)
    if row is None:
        raise NotFoundError(
            f"No credentials for provider {provider!r} and user {user_id!r}, so nothing was "
            f"deleted: `sceneflow creds list {user_id}` shows what is stored."
        )
    session.delete(row)
    session.flush()


def set_validity(
    *, session: Session, user_id: str, provider: str, is_valid: bool
) -> UserProviderConfig:
    """Record the outcome of a credentials test (or of a provider rejecting the key)."""
    row = _require_config(session=session, user_id=user_id, provider=provider)
    row.is_valid, row.last_validated_at = is_valid, utcnow()
    session.add(row)
    session.flush()
    return row


def rotate_keys(*, session: Session, keyring: vault.Keyring | None = None) -> int:
    """Re-seal every row not yet under the current key; returns how many were re-sealed.

    Everything happens in the caller's one transaction, so a failure leaves every row as it
    was (readable with the current and previous keys), and running it again finishes the job.
    """
    ring = keyring or vault.Keyring.from_settings()
    stmt = (
        select(UserProviderConfig)
        .where(UserProviderConfig.key_id != ring.current_id)
        .order_by(col(UserProviderConfig.id))
        .with_for_update()
    )
    rows = list(session.exec(stmt))
    for row in rows:
        creds = ring.unseal(
            user_id=row.user_id, provider=row.provider_name, token=row.encrypted_credentials
        )
        row.encrypted_credentials, row.key_id = ring.seal(
            user_id=row.user_id, provider=row.provider_name, credentials=creds
        )
        row.updated_at = utcnow()
        session.add(row)
    session.flush()
    return len(rows)


# --- jobs --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    # Enums go in as their values, whatever the driver would make of them.
    return value.value if isinstance(value, Enum) else value


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(GenerationJob.model_fields)
    if unknown:
        raise TypeError(
            f"Unknown generation_job field(s): {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(GenerationJob.model_fields)}"
        )


def get_job(*, session: Session, job_id: str) -> GenerationJob | None:
    return session.get(GenerationJob, job_id)


def _job_by_key(*, session: Session, idempotency_key: str) -> GenerationJob | None:
    stmt = select(GenerationJob).where(GenerationJob.idempotency_key == idempotency_key)
    return session.exec(stmt).first()


def get_or_create_job(
    *, session: Session, idempotency_key: str, **fields: Any
) -> tuple[GenerationJob, bool]:
    """The job with this idempotency key, creating it from `fields` if there is none.

    Returns (job, created). Safe against a concurrent writer inserting the same key.
    """
    _check_fields(fields)
    job = _job_by_key(session=session, idempotency_key=idempotency_key)
    if job is not None:
        return job, False
    job = GenerationJob(
        idempotency_key=idempotency_key, **{k: _plain(v) for k, v in fields.items()}
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = _job_by_key(session=session, idempotency_key=idempotency_key)
        if existing is None:
            raise
        return existing, False
    return job, True


def find_job(*, session: Session, job_id_or_provider_job_id: str) -> GenerationJob | None:
    """Look a job up by our id, else by the provider's job id (the newest match)."""
    job = get_job(session=session, job_id=job_id_or_provider_job_id)
    if job is not None:
        return job
    stmt = (
        select(GenerationJob)
        .where(GenerationJob.provider_job_id == job_id_or_provider_job_id)
        .order_by(col(GenerationJob.created_at).desc())
    )
    return session.exec(stmt).first()


def update_job(*, session: Session, job_id: str, **changes: Any) -> GenerationJob:
    """Apply `changes` to a job and bump its updated_at."""
    _check_fields(changes)
    job = get_job(session=session, job_id=job_id)
    if job is None:
        raise NotFoundError(f"No generation job with id {job_id!r}.")
    for name, value in changes.items():
        setattr(job, name, _plain(value))
    job.updated_at = utcnow()
    session.add(job)
    session.flush()
    return job


def record_attempt(
    *,
    session: Session,
    job_id: str,
    operation: str,
    outcome: str,
    detail: str = "",
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    http_status: int | None = None,
    error_class: str | None = None,
) -> GenerationAttempt:
    """Log one provider call. `detail` must describe, never quote, anything secret."""
    if operation not in ATTEMPT_OPERATIONS:
        raise ValueError(
            f"operation must be one of {sorted(ATTEMPT_OPERATIONS)}, not {operation!r}"
        )
    if outcome not in _OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(_OUTCOMES)}, not {outcome!r}")
    values: dict[str, Any] = {
        "job_id": job_id,
        "operation": operation,
        "outcome": outcome,
        "detail": detail,
        "started_at": started_at or utcnow(),
        "finished_at": finished_at or utcnow(),
        "http_status": http_status,
        "error_class": error_class,
    }
    # A statement built once and no ORM object: every job logs a few attempts.
    attempt_id = session.connection().execute(_INSERT_ATTEMPT, values).scalar_one()
    return GenerationAttempt.model_construct(id=attempt_id, **values)


# The ledger moves a job several times a row, each in its own transaction. Through the ORM a move
# (a get, a flush of the changed object, a commit) cost about 1.1 ms of the event loop, against
# 0.1 ms for the same statements in sqlite3 itself (issue 10). Statements built once and run on
# the session's connection, a job read back as a plain model: about 0.7 ms (mark_sending, 1,000
# moves, against 1.1 ms before).
configure_mappers()  # model_construct below needs the mapped attributes in place
_JOBS: sa.Table = GenerationJob.__table__  # type: ignore[attr-defined]
_ATTEMPTS: sa.Table = GenerationAttempt.__table__  # type: ignore[attr-defined]
_INSERT_ATTEMPT = sa.insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)
_READ_JOB = sa.select(_JOBS).where(_JOBS.c.id == sa.bindparam("job_id"))


def _as_job(row: Row[Any]) -> GenerationJob:
    return GenerationJob.model_construct(**row._mapping)


def read_job(*, session: Session, job_id: str) -> GenerationJob | None:
    """The job as it is in the database now, detached from the session: to read, not to edit."""
    row = session.connection().execute(_READ_JOB, {"job_id": job_id}).first()
    return None if row is None else _as_job(row)


@lru_cache(maxsize=256)
def _move_statement(
    status: str,
    sources: frozenset[str],
    fields: tuple[str, ...],
    bump_attempts: bool,
    release_claim: bool,
    unsent_only: bool,
) -> sa.Update:
    jobs = _JOBS.c
    values: dict[str, Any] = {name: sa.bindparam(f"v_{name}") for name in fields}
    if bump_attempts:
        bumped = jobs.attempts + sa.bindparam("bump", type_=sa.Integer)
        values["attempts"] = sa.case((bumped < 0, 0), else_=bumped)
    if release_claim:
        mine = jobs.claimed_by == sa.bindparam("owner")
        values["claimed_by"] = sa.case((mine, None), else_=jobs.claimed_by)
        values["claimed_until"] = sa.case((mine, None), else_=jobs.claimed_until)
    where = [jobs.id == sa.bindparam("job_id"), jobs.status.in_(sorted(sources))]
    if unsent_only:
        where.append(jobs.provider_job_id.is_(None))
    return (
        sa.update(_JOBS)
        .where(*where)
        .values(status=status, updated_at=sa.bindparam("v_updated_at"), **values)
        .returning(*_JOBS.c)
    )


def move_job(
    *,
    session: Session,
    job_id: str,
    status: str,
    sources: Collection[str],
    bump_attempts: int = 0,
    release_claim_of: str | None = None,
    unsent_only: bool = False,
    **changes: Any,
) -> GenerationJob | None:
    """Set the job's status (and `changes`) in one conditional UPDATE, only while its status is
    one of `sources` (and, with `unsent_only`, it has no provider id yet); returns the job as
    written, or None when the condition did not hold or there is no such job.

    `bump_attempts` adds to `attempts` (never below 0), and `release_claim_of` drops the claim
    if that run holds it, both in the same statement."""
    _check_fields(changes)
    stmt = _move_statement(
        status,
        frozenset(sources),
        tuple(sorted(changes)),
        bool(bump_attempts),
        release_claim_of is not None,
        unsent_only,
    )
    params = {f"v_{name}": _plain(value) for name, value in changes.items()}
    params |= {"job_id": job_id, "v_updated_at": utcnow(), "bump": bump_attempts}
    params["owner"] = release_claim_of
    row = session.connection().execute(stmt, params).first()
    return None if row is None else _as_job(row)


def batch_status_counts(*, session: Session, batch_id: str) -> dict[str, int]:
    """How many of the batch's jobs are in each status: one aggregate query, 9 ms for a
    10,000-row batch where loading its jobs to count them took 0.4 s of the event loop."""
    stmt = (
        select(GenerationJob.status, func.count())
        .where(GenerationJob.batch_id == batch_id)
        .group_by(col(GenerationJob.status))
    )
    return {str(status): count for status, count in session.exec(stmt)}


def provider_job_ids_since(
    *, session: Session, provider: str, since: datetime, other_than: str
) -> frozenset[str]:
    """The provider's ids SceneFlow holds for jobs other than `other_than` made since `since`."""
    stmt = select(GenerationJob.provider_job_id).where(
        GenerationJob.provider == provider,
        col(GenerationJob.provider_job_id).is_not(None),
        col(GenerationJob.updated_at) >= since,
        GenerationJob.id != other_than,
    )
    return frozenset(pid for pid in session.exec(stmt) if pid)


def jobs_for_batch(*, session: Session, batch_id: str) -> list[GenerationJob]:
    stmt = (
        select(GenerationJob)
        .where(GenerationJob.batch_id == batch_id)
        .order_by(col(GenerationJob.row_number), col(GenerationJob.created_at))
    )
    return list(session.exec(stmt))
