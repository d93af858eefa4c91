"""The life of one generation job, as plain functions over the job table and an adapter.

Prefect tasks (``tasks/``) wrap these one to one (polling is in ``sceneflow.polling``); the
gateway calls them directly. The ``generation_job`` row is the source of truth: it is written
before anything is sent, the provider's job id is stored the moment the submit returns, and
every later step resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from sceneflow import storage, store
from sceneflow.db import session_scope
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    GenerationFailedError,
    NotFoundError,
    RateLimitedError,
    SceneFlowError,
    TransientError,
)
from sceneflow.lost_submits import find_lost_job
from sceneflow.media import InvalidVideoError, probe_video, verify_video
from sceneflow.models import (
    TERMINAL_STATUSES,
    JobStatus,
    StandardVideoRequest,
    StandardVideoResult,
)

if TYPE_CHECKING:
    from sceneflow.providers import Credentials, VideoAdapter

log = logging.getLogger("sceneflow.jobs")

# Statuses a re-run starts over from; TIMED_OUT and UNKNOWN keep their provider job (design §3).
_RESTARTABLE = {JobStatus.FAILED, JobStatus.CANCELLED}


class JobRef(BaseModel):
    """What tasks pass around and Prefect may cache: ids, paths and statuses, never a secret."""

    job_id: str
    idempotency_key: str
    generation: int
    provider: str
    status: JobStatus
    provider_job_id: str | None = None
    output_path: str | None = None
    duration: float | None = None


def now() -> datetime:
    return datetime.now(UTC)


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


def load_job(session: Any, job_id: str) -> Any:
    job = store.get_job(session=session, job_id=job_id)
    if job is None:
        raise NotFoundError(f"No generation job {job_id!r}; `sceneflow status` lists known jobs.")
    return job


def _ref(job: Any) -> JobRef:
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
    with session_scope() as session:
        job, created = store.get_or_create_job(
            session=session,
            idempotency_key=key,
            batch_id=batch_id,
            row_number=row_number,
            user_id=user_id,
            provider=provider,
            request_json=request.model_dump_json(),
            status=JobStatus.QUEUED.value,
        )
        restart = force or JobStatus(job.status) in _RESTARTABLE
        if not created and (restart or job.request_json != request.model_dump_json()):
            job = store.update_job(
                session=session,
                job_id=job.id,
                generation=job.generation + 1,
                request_json=request.model_dump_json(),
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
        return _ref(job)


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
            finished_at=now(),
        )


def fail_job(job_id: str, status: JobStatus, error: BaseException, user_id: str) -> None:
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            status=status.value,
            error=str(error),
            finished_at=now(),
        )
        if isinstance(error, AuthError):
            store.set_validity(
                session=session, user_id=user_id, provider=job.provider, is_valid=False
            )


async def call_logged(
    job_id: str, user_id: str, operation: str, fn: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one adapter call, log it as an attempt, and mark the key invalid on AuthError."""
    started = time.time()
    try:
        value = await fn()
    except SceneFlowError as e:
        log_attempt(job_id, operation, error=e, started=started)
        if isinstance(e, AuthError):
            fail_job(job_id, JobStatus.FAILED, e, user_id)
        raise
    log_attempt(job_id, operation, detail=f"{operation} ok", started=started)
    return value


async def submit_job(
    adapter: VideoAdapter,
    job_id: str,
    credentials: Credentials,
    *,
    user_id: str,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> JobRef:
    """Send the job once. A job that already has a provider id is resumed, never re-sent; one
    whose submit reply was lost is looked up at the provider, never re-sent (design.md §3)."""
    with session_scope() as session:
        job = load_job(session, job_id)
        request = StandardVideoRequest.model_validate_json(job.request_json)
        if job.provider_job_id:
            logger.info("job %s already submitted as %s; resuming", job_id, job.provider_job_id)
            return _ref(job)
        lost = job.status == JobStatus.UNKNOWN
        if not lost:
            # Stamped before sending: a lost reply's job was created after this moment.
            store.update_job(
                session=session, job_id=job_id, attempts=job.attempts + 1, submitted_at=now()
            )
    cause = None
    if not lost:
        try:
            provider_job_id = await call_logged(
                job_id, user_id, "submit", lambda: adapter.submit(request, credentials)
            )
        except AmbiguousSubmitError as e:
            fail_job(job_id, JobStatus.UNKNOWN, e, user_id)
            cause = str(e)
        except SceneFlowError as e:
            if not is_retryable(e):
                fail_job(job_id, JobStatus.FAILED, e, user_id)
            raise
        else:
            return _accepted(job_id, provider_job_id, logger)
    try:
        provider_job_id = await call_logged(
            job_id, user_id, "lookup", lambda: find_lost_job(adapter, job_id, credentials, cause)
        )
    except SceneFlowError as e:
        # However the lookup failed (a 401 included), the job may exist: it stays UNKNOWN, which
        # a re-run never starts over, instead of FAILED, which it would submit anew.
        fail_job(job_id, JobStatus.UNKNOWN, e, user_id)
        raise
    logger.warning("job %s: its lost submit had created %s; resuming", job_id, provider_job_id)
    return _accepted(job_id, provider_job_id, logger)


def _accepted(
    job_id: str, provider_job_id: str, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> JobRef:
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            provider_job_id=provider_job_id,
            status=JobStatus.QUEUED.value,
            finished_at=None,
            error=None,
        )
        logger.info("job %s submitted to %s as %s", job_id, job.provider, provider_job_id)
        return _ref(job)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, TransientError | RateLimitedError)


def output_name(job_id: str, row_id: str | None) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in (row_id or ""))[:80]
    return f"{safe or job_id}.mp4"


async def download_job(
    adapter: VideoAdapter,
    job_id: str,
    result: StandardVideoResult,
    credentials: Credentials,
    *,
    user_id: str,
    output_dir: str,
    row_id: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> JobRef:
    """Fetch the finished video at once (outputs expire), verify it, then mark COMPLETED."""
    with session_scope() as session:
        job = load_job(session, job_id)
    if job.status == JobStatus.COMPLETED and job.output_path and storage.exists(job.output_path):
        ref = _ref(job)
        if not storage.is_remote(job.output_path):
            ref.duration = probe_video(Path(job.output_path)).duration
        return ref
    request = StandardVideoRequest.model_validate_json(job.request_json)
    name = output_name(job_id, row_id)
    local = storage.staging_path(output_dir, name)
    await call_logged(
        job_id, user_id, "download", lambda: adapter.download(result, credentials, local)
    )
    try:
        info = verify_video(local, expected_duration=request.duration, tolerance=0.5)
    except InvalidVideoError as e:
        error = GenerationFailedError(
            f"{adapter.key} returned an unusable file: {e}", provider=adapter.key
        )
        fail_job(job_id, JobStatus.FAILED, error, user_id)
        raise error from e
    final = storage.publish(local, output_dir, name)
    with session_scope() as session:
        job = store.update_job(
            session=session,
            job_id=job_id,
            status=JobStatus.COMPLETED.value,
            progress=100,
            output_path=final,
            finished_at=now(),
            error=None,
        )
    logger.info(
        "job %s: saved %.1f s %dx%d video to %s",
        job_id,
        info.duration,
        info.width,
        info.height,
        final,
    )
    ref = _ref(job)
    ref.duration = info.duration
    return ref


def video_went_missing(job_id: str) -> bool:
    """True when the job was downloaded once but its file is no longer where it was saved."""
    with session_scope() as session:
        job = load_job(session, job_id)
        saved = job.status == JobStatus.COMPLETED and job.output_path
        return bool(saved) and not storage.exists(job.output_path)


def mark_failed(job_id: str, error: BaseException) -> None:
    """Record why a job stopped. A job still running at the provider keeps its status, so a
    re-run resumes it instead of paying for a new one."""
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
            error=f"{type(error).__name__}: {error}"
            if not isinstance(error, SceneFlowError)
            else str(error),
            finished_at=now(),
        )


def job_summary(job: Any) -> dict[str, Any]:
    """A job row as plain data for results.csv, artifacts and the CLI; no secret, no signed URL."""
    return {
        "job_id": job.id,
        "row_number": job.row_number,
        "provider": job.provider,
        "status": job.status,
        "provider_job_id": job.provider_job_id,
        "progress": job.progress,
        "output_path": job.output_path,
        "error": job.error,
        "attempts": job.attempts,
        "cost": job.cost,
        "request": json.loads(job.request_json),
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
    }
