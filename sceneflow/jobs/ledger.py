"""The job ledger: the only writer of `generation_job` rows and their attempt log.

Everything else in the job engine (`submit`, `poll`, `download`), the gateway and the flows move
a job by calling one of these functions; none of them writes a job row itself. The row is the
source of truth: it is written before anything is sent, the provider's job id is stored the
moment the submit returns, and every later step resumes from it.

    prepare_job ──► mark_sending ──► accept_submission ──► record_status ... ──► complete_job
                        │                                        │
                        └──► end_job (UNKNOWN / FAILED) ◄────────┴──► end_job (FAILED,
                                                                       CANCELLED, TIMED_OUT)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from sceneflow import storage, store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, NotFoundError, SceneFlowError, is_retryable
from sceneflow.models import TERMINAL_STATUSES, JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.tables import GenerationJob, utcnow

__all__ = [
    "JobRef",
    "JobSummary",
    "accept_submission",
    "cancel_job",
    "complete_job",
    "end_job",
    "find_owned_job",
    "give_up",
    "idempotency_key",
    "job_ref",
    "load_job",
    "logged_call",
    "mark_sending",
    "prepare_job",
    "record_status",
    "strip_signature",
    "summarize",
    "video_went_missing",
]

log = logging.getLogger("sceneflow.jobs")

# Statuses a re-run starts over from; TIMED_OUT and UNKNOWN keep their provider job (design §3).
_RESTARTABLE = {JobStatus.FAILED, JobStatus.CANCELLED}


class JobRef(BaseModel):
    """What tasks pass around and Prefect may cache: ids, paths and statuses, never a secret.

    `job_id` is always SceneFlow's own id; the provider's is `provider_job_id`."""

    job_id: str
    idempotency_key: str
    generation: int
    provider: str
    status: JobStatus
    provider_job_id: str | None = None
    output_path: str | None = None
    duration: float | None = None


class JobSummary(BaseModel):
    """A job row as plain data for results.csv, artifacts, events and the CLI. It holds no
    secret and no signed URL."""

    job_id: str
    row_number: int | None
    provider: str
    status: JobStatus
    provider_job_id: str | None
    progress: float
    output_path: str | None
    error: str | None
    attempts: int
    cost: float | None
    request: dict[str, Any]
    submitted_at: datetime | None
    finished_at: datetime | None


def idempotency_key(
    *,
    user_id: str,
    provider: str,
    request: StandardVideoRequest,
    row_id: str | None = None,
    occurrence: int = 0,
) -> str:
    """(user, provider, row id) when the row has an id, else (user, provider, request hash)."""
    if row_id:
        basis = ["id", user_id, provider, row_id]
    else:
        basis = ["req", user_id, provider, request.model_dump_json(), str(occurrence)]
    return hashlib.sha256("\x1f".join(basis).encode()).hexdigest()[:32]


def strip_signature(url: str | None) -> str | None:
    """Signed URLs carry their secret in the query string; only the rest may be stored."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def load_job(session: Any, job_id: str) -> GenerationJob:
    job = store.get_job(session=session, job_id=job_id)
    if job is None:
        raise NotFoundError(f"No generation job {job_id!r}; `sceneflow status` lists known jobs.")
    return job


def find_owned_job(user_id: str, provider: str, job_id: str) -> GenerationJob:
    """Our job id or the provider's, as long as it belongs to this user and provider."""
    with session_scope() as session:
        job = store.find_job(session=session, job_id_or_provider_job_id=job_id)
    if job is None or job.user_id != user_id or job.provider != provider:
        raise NotFoundError(
            f"No {provider} job {job_id!r} for user {user_id!r}. Use the job id that "
            "trigger_generation returned (provider_details['job_id'])."
        )
    return job


def job_ref(job: GenerationJob) -> JobRef:
    return JobRef(
        job_id=job.id,
        idempotency_key=job.idempotency_key,
        generation=job.generation,
        provider=job.provider,
        status=JobStatus(job.status),
        provider_job_id=job.provider_job_id,
        output_path=job.output_path,
    )


def prepare_job(
    *,
    user_id: str,
    provider: str,
    request: StandardVideoRequest,
    row_id: str | None = None,
    occurrence: int = 0,
    batch_id: str | None = None,
    row_number: int | None = None,
    force: bool = False,
) -> JobRef:
    """Find or create the job row. Failed and cancelled jobs start a new generation; `force`
    starts one whatever the state; anything else resumes."""
    key = idempotency_key(
        user_id=user_id, provider=provider, request=request, row_id=row_id, occurrence=occurrence
    )
    request_json = request.model_dump_json()
    with session_scope() as session:
        job, created = store.get_or_create_job(
            session=session,
            idempotency_key=key,
            batch_id=batch_id,
            row_number=row_number,
            user_id=user_id,
            provider=provider,
            request_json=request_json,
            status=JobStatus.QUEUED.value,
        )
        restart = force or JobStatus(job.status) in _RESTARTABLE
        if not created and (restart or job.request_json != request_json):
            job = store.update_job(
                session=session,
                job_id=job.id,
                generation=job.generation + 1,
                request_json=request_json,
                status=JobStatus.QUEUED.value,
                provider_job_id=None,
                video_url=None,
                output_path=None,
                error=None,
                progress=0,
                submitted_at=None,
                finished_at=None,
                batch_id=batch_id,
                row_number=row_number,
            )
        elif batch_id is not None and (job.batch_id, job.row_number) != (batch_id, row_number):
            job = store.update_job(
                session=session, job_id=job.id, batch_id=batch_id, row_number=row_number
            )
        return job_ref(job)


def mark_sending(job_id: str) -> tuple[GenerationJob, bool]:
    """Stamp the send before it happens (a lost reply's job was created after this moment).
    Returns the job and whether a send may go out now: not when it already has a provider id,
    and not when an earlier send is UNKNOWN (that one is looked up instead, design.md §3)."""
    with session_scope() as session:
        job = load_job(session, job_id)
        if job.provider_job_id or job.status == JobStatus.UNKNOWN:
            return job, False
        job = store.update_job(
            session=session, job_id=job_id, attempts=job.attempts + 1, submitted_at=utcnow()
        )
        return job, True


def accept_submission(job_id: str, provider_job_id: str) -> JobRef:
    """The provider took the job: store its id at once, so no later step sends it again."""
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            provider_job_id=provider_job_id,
            status=JobStatus.QUEUED.value,
            finished_at=None,
            error=None,
        )
        return job_ref(job)


def record_status(job_id: str, result: StandardVideoResult, *, changed: bool = True) -> None:
    """Write what the provider last said of the job; a change of status is logged as an
    attempt too. The one place a provider's status reaches the row."""
    with session_scope() as session:
        store.update_job(
            session=session,
            job_id=job_id,
            status=result.status.value,
            progress=result.progress,
            video_url=strip_signature(result.video_url),
            cost=result.cost,
            error=result.error_message,
        )
        if changed:
            store.record_attempt(
                session=session,
                job_id=job_id,
                operation="status",
                outcome="ok",
                detail=f"{result.status.value} {result.progress:.0f}%",
            )


def complete_job(job_id: str, output_path: str) -> JobRef:
    """The video is verified and in its final place: only now is the job COMPLETED."""
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            status=JobStatus.COMPLETED.value,
            progress=100,
            output_path=output_path,
            finished_at=utcnow(),
            error=None,
        )
        return job_ref(job)


def end_job(job_id: str, status: JobStatus, error: BaseException | str, user_id: str) -> None:
    """Record why the job stopped in `status`. A rejected key also marks the stored
    credentials invalid, so later runs fail fast instead of paying for 401s."""
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            status=status.value,
            error=str(error),
            finished_at=utcnow(),
        )
        if isinstance(error, AuthError):
            store.set_validity(
                session=session, user_id=user_id, provider=job.provider, is_valid=False
            )


def cancel_job(job_id: str, note: str) -> GenerationJob:
    """The user cancelled the job (at the provider where it can be)."""
    with session_scope() as session:
        return store.update_job(
            session=session,
            job_id=job_id,
            status=JobStatus.CANCELLED.value,
            error=f"cancelled: {note}",
            finished_at=utcnow(),
        )


def give_up(job_id: str, error: BaseException) -> None:
    """Record why a run stopped working on a job. A job still running at the provider keeps
    its status, so a re-run resumes it instead of paying for a new one."""
    with session_scope() as session:
        job = load_job(session, job_id)
        status = JobStatus(job.status)
        if status in TERMINAL_STATUSES or status == JobStatus.UNKNOWN:
            return
        if job.provider_job_id and is_retryable(error):
            store.update_job(
                session=session,
                job_id=job_id,
                error=f"gave up after retries, the job may still be running: {error}",
            )
            return
        store.update_job(
            session=session,
            job_id=job_id,
            status=JobStatus.FAILED.value,
            error=str(error)
            if isinstance(error, SceneFlowError)
            else f"{type(error).__name__}: {error}",
            finished_at=utcnow(),
        )


def log_attempt(
    job_id: str,
    operation: str,
    *,
    error: BaseException | None = None,
    detail: str = "",
    started: float,
) -> None:
    with session_scope() as session:
        store.record_attempt(
            session=session,
            job_id=job_id,
            operation=operation,
            outcome="error" if error else "ok",
            http_status=getattr(error, "status_code", None),
            error_class=type(error).__name__ if error else None,
            detail=str(error) if error else detail,
            started_at=datetime.fromtimestamp(started, UTC),
            finished_at=utcnow(),
        )


async def logged_call(
    job_id: str, user_id: str, operation: str, fn: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one adapter call, log it as an attempt, and end the job FAILED on a rejected key."""
    started = time.time()
    try:
        value = await fn()
    except SceneFlowError as e:
        log_attempt(job_id, operation, error=e, started=started)
        if isinstance(e, AuthError):
            end_job(job_id, JobStatus.FAILED, e, user_id)
        raise
    log_attempt(job_id, operation, detail=f"{operation} ok", started=started)
    return value


def video_went_missing(job_id: str) -> bool:
    """True when the job was downloaded once but its file is no longer where it was saved."""
    with session_scope() as session:
        job = load_job(session, job_id)
        saved = job.status == JobStatus.COMPLETED and job.output_path
        return bool(saved) and not storage.exists(job.output_path or "")


def summarize(job_id: str) -> JobSummary:
    """The job's row as a `JobSummary`."""
    with session_scope() as session:
        job = load_job(session, job_id)
        return JobSummary(
            job_id=job.id,
            row_number=job.row_number,
            provider=job.provider,
            status=JobStatus(job.status),
            provider_job_id=job.provider_job_id,
            progress=job.progress,
            output_path=job.output_path,
            error=job.error,
            attempts=job.attempts,
            cost=job.cost,
            request=json.loads(job.request_json),
            submitted_at=job.submitted_at,
            finished_at=job.finished_at,
        )
