"""Sending a job to its provider once, and finding the job a lost submit may have created.

A submit whose reply never came back may still have created, and billed, a job. Sending it again
could pay twice, so the job is marked UNKNOWN and SceneFlow asks the provider instead: where the
provider lists recent jobs, a job created since the submit went out, with the same inputs, and
not already owned by another row, is that submit's job and is resumed. Where the provider offers
no list, or none matches, the job stays UNKNOWN and the error says what to do (design.md §3).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AmbiguousSubmitError, SceneFlowError, is_retryable
from sceneflow.jobs.ledger import (
    JobRef,
    accept_submission,
    end_job,
    job_ref,
    load_job,
    log,
    logged_call,
    mark_sending,
)
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, VideoAdapter

__all__ = ["CLOCK_SKEW", "find_lost_job", "submit_job"]

# The provider's clock may run behind ours; a job it stamps this much before our send is still
# a candidate.
CLOCK_SKEW = timedelta(minutes=2)


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
    job, send = mark_sending(job_id)
    request = StandardVideoRequest.model_validate_json(job.request_json)
    if job.provider_job_id:
        logger.info("job %s already submitted as %s; resuming", job_id, job.provider_job_id)
        return job_ref(job)
    cause = None
    if send:
        try:
            provider_job_id = await logged_call(
                job_id, user_id, "submit", lambda: adapter.submit(request, credentials)
            )
        except AmbiguousSubmitError as e:
            end_job(job_id, JobStatus.UNKNOWN, e, user_id)
            cause = str(e)
        except SceneFlowError as e:
            if not is_retryable(e):
                end_job(job_id, JobStatus.FAILED, e, user_id)
            raise
        else:
            logger.info("job %s submitted to %s as %s", job_id, adapter.key, provider_job_id)
            return accept_submission(job_id, provider_job_id)
    try:
        provider_job_id = await logged_call(
            job_id, user_id, "lookup", lambda: find_lost_job(adapter, job_id, credentials, cause)
        )
    except SceneFlowError as e:
        # However the lookup failed (a 401 included), the job may exist: it stays UNKNOWN, which
        # a re-run never starts over, instead of FAILED, which it would submit anew.
        end_job(job_id, JobStatus.UNKNOWN, e, user_id)
        raise
    logger.warning("job %s: its lost submit had created %s; resuming", job_id, provider_job_id)
    return accept_submission(job_id, provider_job_id)


async def find_lost_job(
    adapter: VideoAdapter, job_id: str, credentials: Credentials, cause: str | None = None
) -> str:
    """The provider job id the lost submit of `job_id` created, or AmbiguousSubmitError saying
    what was checked and how to go on. `cause` is the error that lost the reply, when known."""
    with session_scope() as session:
        job = load_job(session, job_id)
        request = StandardVideoRequest.model_validate_json(job.request_json)
        sent_at = job.submitted_at or job.created_at
    lost = (
        f"The submit of job {job_id} to {adapter.key} went out but its reply was lost"
        f"{f' ({cause})' if cause else ''}, so it may have been accepted and billed"
    )
    retry = "Check the provider's dashboard, then run again with --force to submit anew."
    found = await adapter.find_submitted(request, credentials, since=sent_at - CLOCK_SKEW)
    if found is None:
        raise AmbiguousSubmitError(
            f"{lost}; {adapter.key} offers no way to look it up. {retry}", provider=adapter.key
        )
    with session_scope() as session:
        for candidate in found.job_ids:
            owner = store.find_job(session=session, job_id_or_provider_job_id=candidate)
            if owner is None or owner.id == job_id:
                return candidate
    raise AmbiguousSubmitError(
        f"{lost}, but no {adapter.key} job created since {sent_at:%Y-%m-%d %H:%M:%S} UTC has "
        f"its inputs, so most likely it was not. {retry}",
        provider=adapter.key,
    )
