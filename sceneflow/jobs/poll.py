"""Polling a submitted job until it ends, adaptively and against wall-clock deadlines.

A job has two limits (design.md §3): how long it may wait in the provider's queue, and how long
it may run once started. Slow models can queue for a long time on a busy provider; one limit for
both would cancel jobs that never had a chance to run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from sceneflow.db import session_scope
from sceneflow.errors import (
    GenerationFailedError,
    GenerationTimeoutError,
    ProviderError,
    RateLimitedError,
    SceneFlowError,
    is_retryable,
)
from sceneflow.jobs.ledger import (
    LEASE_SECONDS,
    JobRef,
    claim,
    end_job,
    load_job,
    log,
    log_attempt,
    logged_call,
    record_status,
    saved_video,
)
from sceneflow.models import JobStatus, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, VideoAdapter
from sceneflow.settings import get_settings

__all__ = [
    "PATIENCE_SECONDS",
    "Deadlines",
    "deadlines_for",
    "patiently",
    "time_left",
    "wait_for_job",
]

PROGRESS_WRITE_SECONDS = 5.0
# How long a call that costs nothing (a lookup, a download) is asked again in place while it
# fails transiently, before the job is left to its group's retry.
PATIENCE_SECONDS = 300.0
T = TypeVar("T")


async def patiently(
    call: Callable[[], Awaitable[T]],
    caps: Capabilities,
    *,
    failed: Callable[[SceneFlowError, float], None] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """`call`, asked again with the provider's poll backoff (and at least a rate limit's
    Retry-After) while it fails transiently, for up to PATIENCE_SECONDS. Only for calls that
    cost nothing, like a status check: a job's few Prefect retries are kept for its submit.
    `failed(error, started)` hears each failure that is asked again."""
    interval = caps.poll_interval
    give_up = time.monotonic() + PATIENCE_SECONDS
    while True:
        started = time.time()
        try:
            return await call()
        except SceneFlowError as e:
            pause = interval
            if isinstance(e, RateLimitedError) and e.retry_after:
                pause = max(pause, e.retry_after)
            if not is_retryable(e) or time.monotonic() + pause > give_up:
                raise
            if failed is not None:
                failed(e, started)
        await sleep(pause)
        interval = min(interval * 1.5, caps.max_poll_interval)


class Deadlines(BaseModel):
    """Seconds a job may wait `queued`, then run; counted from `started_at` (epoch seconds)."""

    started_at: float
    queued: float
    running: float

    def restarted(self) -> Deadlines:
        """The same limits, counted from now: a job's clock starts when its wait does."""
        return self.model_copy(update={"started_at": time.time()})


def deadlines_for(provider: str, caps: Capabilities, running: float | None = None) -> Deadlines:
    """From now: `running` if given, else SCENEFLOW_DEADLINES__<KEY>, else the provider's own
    deadline; the queue's from SCENEFLOW_QUEUE_DEADLINES__<KEY>, else the provider's."""
    settings = get_settings()
    configured = {k.lower(): v for k, v in settings.deadlines.items()}
    queue = {k.lower(): v for k, v in settings.queue_deadlines.items()}
    return Deadlines(
        started_at=time.time(),
        queued=queue.get(provider, caps.queue_deadline),
        running=running or configured.get(provider, caps.deadline),
    )


async def wait_for_job(
    adapter: VideoAdapter,
    job_id: str,
    credentials: Credentials,
    *,
    user_id: str,
    deadlines: Deadlines,
    owner: str | None = None,
    claimed_at: float | None = None,
    sent: JobRef | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> StandardVideoResult:
    """Poll until the job ends or a deadline passes: the queue's while the provider reports it
    QUEUED, then the running one from when it is first seen running (and never later than both
    together from the start). At a deadline, cancel it and mark it TIMED_OUT. Intervals start
    at the provider's guidance and back off; while the provider reports progress, the next
    poll is aimed at when that progress says the job ends (`time_left`), never sooner than the
    guidance's interval nor later than its longest. A job just sent is first polled after one
    interval.

    A failed status check costs nothing, so transient errors and rate limits are retried here
    until the deadline, however many come in a row; other errors end the wait at once. While it
    waits, the run's claim on the job (`owner`) is renewed, counting from `claimed_at` (its
    `time.monotonic()`) when the caller just took it."""
    caps = adapter.capabilities()
    interval = caps.poll_interval
    pid: str | None
    if sent is not None and sent.provider_job_id and sent.status != JobStatus.COMPLETED:
        # What the send just recorded: reading the row again would say the same.
        pid, provider = sent.provider_job_id, sent.provider
    else:
        with session_scope() as session:
            job = load_job(session, job_id)
        if (saved := saved_video(job)) is not None:
            return StandardVideoResult(
                status=JobStatus.COMPLETED,
                provider_job_id=job.provider_job_id,
                progress=100,
                output_path=saved,
            )
        pid, provider = job.provider_job_id, job.provider
    if not pid:
        raise GenerationFailedError(f"job {job_id} was never submitted", provider=provider)
    last_status: str | None = None
    last_write = 0.0
    if sent is not None and sent.provider_job_id and sent.status != JobStatus.COMPLETED:
        # The send just wrote the job's status: a first poll that only says it again (the
        # provider's queue) is not worth a transaction a row (issue 10).
        last_status, last_write = sent.status.value, time.monotonic()
        if sent.status == JobStatus.QUEUED:
            # Nothing a provider makes is done the moment it is accepted: the first poll waits
            # its interval instead of spending a request on the queue (issue 10: at Runway's
            # guidance a 10-second job took a submit, three polls and a download).
            await sleep(interval)
    renewed = claimed_at or 0.0
    queued_seen = deadlines.started_at  # the last time the job was known to be queued
    running_since: float | None = None
    failing: SceneFlowError | None = None
    while True:
        if owner and time.monotonic() - renewed > LEASE_SECONDS / 3:
            if holder := claim(job_id, owner):
                logger.warning("job %s: its claim ran out and %s took it over", job_id, holder)
            renewed = time.monotonic()
        try:
            result: StandardVideoResult = await adapter.status(pid, credentials)
        except SceneFlowError as e:
            if not is_retryable(e):
                raise
            if type(e) is not type(failing):
                log_attempt(job_id, "status", error=e, started=time.time())
            failing = e
            result = StandardVideoResult(
                status=JobStatus(last_status or JobStatus.QUEUED), provider_job_id=pid
            )
        else:
            failing = None
        changed = result.status.value != last_status
        # A status change is an attempt worth logging; progress alone is written now and then,
        # since every write holds the event loop and (on SQLite) the database's write lock.
        if failing is None and (changed or time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS):
            record_status(job_id, result, changed=changed)
            if changed:
                # At DEBUG: two lines a row of a 10,000-row batch in the UI's run log were
                # noise beside its results table, and shipping them to the Prefect API took
                # about 6% of the flow's main thread (issue 10). The attempt log keeps them.
                logger.debug("job %s: %s %.0f%%", job_id, result.status.value, result.progress)
            last_status, last_write = result.status.value, time.monotonic()
        if result.status == JobStatus.COMPLETED:
            return result
        if result.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            error = GenerationFailedError(
                f"{provider} job {pid} {result.status.value.lower()}: "
                f"{result.error_message or 'no reason given'}",
                provider=provider,
            )
            end_job(job_id, result.status, error, user_id)
            raise error
        now = time.time()
        if result.status == JobStatus.QUEUED:
            queued_seen = now
        elif running_since is None:
            running_since = now
        if running_since is None:
            limit_at = deadlines.started_at + deadlines.queued
            why = f"did not start before its queue deadline (queued over {deadlines.queued:g} s)"
        else:
            total = deadlines.started_at + deadlines.queued + deadlines.running
            limit_at = min(running_since + deadlines.running, total)
            why = f"did not finish before its deadline (ran over {deadlines.running:g} s)"
        if now >= limit_at:
            if failing is not None:
                why += f"; its status could not be read at the end ({failing})"
            return await _time_out(adapter, job_id, pid, credentials, user_id, why, logger)
        pause = interval
        if failing is None and running_since is not None:
            left = time_left(result.progress, now, started=(queued_seen + running_since) / 2)
            if left is not None:
                pause = min(max(left, caps.poll_interval), caps.max_poll_interval)
        if isinstance(failing, RateLimitedError) and failing.retry_after:
            pause = max(pause, failing.retry_after)
        await sleep(min(pause, max(limit_at - now, 0.05)))
        interval = min(interval * 1.5, caps.max_poll_interval)


# A poll that lands a moment before the job ends costs a request and then a whole interval, so
# the estimate is aimed a little past the end.
OVERSHOOT = 1.1


def time_left(progress: float, now: float, *, started: float) -> float | None:
    """Seconds until a job `progress` percent done is done, at the pace it ran since `started`
    (aimed OVERSHOOT past it); None when its progress tells nothing (0, or already 100)."""
    if not 0 < progress < 100 or now <= started:
        return None
    return (now - started) * (100 - progress) / progress * OVERSHOOT


async def _time_out(
    adapter: VideoAdapter,
    job_id: str,
    pid: str,
    credentials: Credentials,
    user_id: str,
    why: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> Any:
    cancelled = "no cancel call exists for this provider"
    if adapter.capabilities().can_cancel:
        try:
            await logged_call(job_id, "cancel", lambda: adapter.cancel(pid, credentials))
            cancelled = "a cancel was sent"
        except ProviderError as e:
            cancelled = f"the cancel failed ({e})"
    error = GenerationTimeoutError(
        f"{adapter.key} job {pid} {why}; {cancelled}. The job id is kept: "
        f"`sceneflow status {job_id}` checks it later.",
        provider=adapter.key,
    )
    logger.warning("%s", error)
    end_job(job_id, JobStatus.TIMED_OUT, error, user_id)
    raise error
