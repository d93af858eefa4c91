"""Polling a submitted job until it ends, adaptively and against a wall-clock deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sceneflow import storage, store
from sceneflow.db import session_scope
from sceneflow.errors import (
    GenerationFailedError,
    GenerationTimeoutError,
    ProviderError,
    SceneFlowError,
)
from sceneflow.jobs import (
    call_logged,
    fail_job,
    is_retryable,
    load_job,
    log,
    strip_signature,
)
from sceneflow.models import JobStatus, StandardVideoResult

if TYPE_CHECKING:
    from adapters.base import Credentials, VideoAdapter

PROGRESS_WRITE_SECONDS = 5.0


async def wait_for_job(
    adapter: VideoAdapter,
    job_id: str,
    credentials: Credentials,
    *,
    user_id: str,
    deadline_at: float,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> StandardVideoResult:
    """Poll until the job ends or `deadline_at` (epoch seconds) passes; then cancel it and mark
    it TIMED_OUT. Intervals start at the provider's guidance and back off."""
    caps = adapter.capabilities()
    interval = caps.poll_interval
    with session_scope() as session:
        job = load_job(session, job_id)
    if job.status == JobStatus.COMPLETED and job.output_path and storage.exists(job.output_path):
        return StandardVideoResult(
            status=JobStatus.COMPLETED,
            provider_job_id=job.provider_job_id,
            progress=100,
            output_path=job.output_path,
        )
    pid = job.provider_job_id
    if not pid:
        raise GenerationFailedError(f"job {job_id} was never submitted", provider=job.provider)
    last_status: str | None = None
    last_write = 0.0
    while True:
        try:
            result: StandardVideoResult = await adapter.status(pid, credentials)
        except SceneFlowError as e:
            # Moderation and auth failures can surface while polling; they end the job.
            if not is_retryable(e):
                fail_job(job_id, JobStatus.FAILED, e, user_id)
            raise
        changed = result.status.value != last_status
        # A status change is an attempt worth logging; progress alone is written now and then,
        # since every write holds the event loop and (on SQLite) the database's write lock.
        if changed or time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS:
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
            if changed:
                logger.info("job %s: %s %.0f%%", job_id, result.status.value, result.progress)
            last_status, last_write = result.status.value, time.monotonic()
        if result.status == JobStatus.COMPLETED:
            return result
        if result.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            error = GenerationFailedError(
                f"{job.provider} job {pid} {result.status.value.lower()}: "
                f"{result.error_message or 'no reason given'}",
                provider=job.provider,
            )
            fail_job(job_id, result.status, error, user_id)
            raise error
        if time.time() >= deadline_at:
            return await _time_out(adapter, job_id, pid, credentials, user_id, logger)
        await sleep(min(interval, max(deadline_at - time.time(), 0.05)))
        interval = min(interval * 1.5, caps.max_poll_interval)


async def _time_out(
    adapter: VideoAdapter,
    job_id: str,
    pid: str,
    credentials: Credentials,
    user_id: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> Any:
    cancelled = "no cancel call exists for this provider"
    if adapter.capabilities().can_cancel:
        try:
            await call_logged(job_id, user_id, "cancel", lambda: adapter.cancel(pid, credentials))
            cancelled = "a cancel was sent"
        except ProviderError as e:
            cancelled = f"the cancel failed ({e})"
    error = GenerationTimeoutError(
        f"{adapter.key} job {pid} did not finish before its deadline; {cancelled}. The job id is "
        f"kept: `sceneflow status {job_id}` checks it later.",
        provider=adapter.key,
    )
    logger.warning("%s", error)
    fail_job(job_id, JobStatus.TIMED_OUT, error, user_id)
    raise error
