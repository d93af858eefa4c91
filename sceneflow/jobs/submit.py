"""Sending a job to its provider once, and finding the job a lost submit may have created.

The send is recorded (SUBMITTING) before it leaves. A submit whose reply never came back, or a
send a run recorded and then died on, may still have created and billed a job, so it is never
sent again blindly: the job is UNKNOWN and SceneFlow asks the provider. Where the provider can
list or query its jobs, a job created since the send with the same inputs, not already another
row's, is that send's job and is resumed. Where the search was complete and found nothing, the
send never arrived, and the job is sent again, once for that send, saying why in its attempt
log (a job whose replies are lost MAX_SENDS times in a row waits for the user). Where the
provider cannot be asked, or the search was not complete, the job stays UNKNOWN until the user
asks, per job, to send it again (design.md §3). A lookup costs nothing, so one that fails for a
moment (a 503, a rate limit) is asked again in place before the job waits for a retry.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    SceneFlowError,
    is_retryable,
)
from sceneflow.jobs.ledger import (
    JobRef,
    accept_submission,
    failures_logged,
    job_ref,
    last_send_error,
    load_job,
    log,
    log_attempt,
    mark_ambiguous,
    mark_sending,
    reject_key,
    resend_after_lookup,
    send_reference,
    unsend,
)
from sceneflow.jobs.poll import patiently
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, VideoAdapter
from sceneflow.tables import GenerationJob

__all__ = ["CLOCK_SKEW", "LostJob", "find_lost_job", "submit_job"]

# The provider's clock may run behind ours; a job it stamps this much before our send is still
# a candidate.
CLOCK_SKEW = timedelta(minutes=2)
# Each send a complete search proved lost is sent again once; a provider that loses this many
# replies in a row to one job is not sent it again without the user.
MAX_SENDS = 3
Logger = logging.Logger | logging.LoggerAdapter[Any]


class LostJob(BaseModel):
    """What asking the provider about a lost send found."""

    provider_job_id: str | None
    # The provider answered for the whole window since the send: nothing found means nothing
    # was created.
    complete: bool
    checked: str


def _resubmit_hint(job_id: str) -> str:
    return (
        f"`sceneflow jobs resubmit {job_id}` sends it again (it pays twice if the provider did "
        "create it; check its dashboard first), and `sceneflow batch ... --resubmit-unknown` "
        "does so for every such row of a batch"
    )


async def submit_job(
    adapter: VideoAdapter,
    job_id: str,
    credentials: Credentials,
    *,
    user_id: str,
    logger: Logger = log,
    warned: set[str] | None = None,
) -> JobRef:
    """Send the job once. A job with a provider id is resumed, never re-sent; one whose send
    may be out is looked up at the provider (see the module docstring). A warning already in
    `warned` (the batch's, for its provider) is not logged again."""
    job, send = mark_sending(job_id)
    if job.provider_job_id:
        logger.info("job %s already submitted as %s; resuming", job_id, job.provider_job_id)
        return job_ref(job)
    if send:
        return await _send(adapter, job, credentials, user_id, logger, warned)
    if job.status == JobStatus.SUBMITTING:
        mark_ambiguous(
            job_id,
            "the run that sent it stopped before the reply was recorded, so the provider may "
            "have created it",
            user_id,
        )
    return await _recover(adapter, job_id, credentials, user_id, logger, warned)


def _as_asked(request: StandardVideoRequest) -> StandardVideoRequest:
    """The request with only the fields that differ from their defaults marked as set.

    A job row stores every field, so a request read back from it has every field "set", and
    prepare would warn on every row about fields nobody asked for (fps, quality); the send
    itself still gets the stored request unchanged."""
    fields = StandardVideoRequest.model_fields
    data = request.model_dump()
    return StandardVideoRequest.model_validate(
        {
            name: value
            for name, value in data.items()
            if fields[name].is_required()
            or value != fields[name].get_default(call_default_factory=True)
        }
    )


async def _send(
    adapter: VideoAdapter,
    job: GenerationJob,
    credentials: Credentials,
    user_id: str,
    logger: Logger,
    warned: set[str] | None = None,
) -> JobRef:
    request = StandardVideoRequest.model_validate_json(job.request_json)
    reference = send_reference(job)
    # The adapter's last word before the send, with what it must read first (a Replicate or
    # fal model's schema): a value the schema refuses fails here, not at the provider, and the
    # fields it cannot map are reported in the run.
    try:
        warnings = await adapter.prepare(_as_asked(request), credentials)
    except BaseException as e:
        # Nothing left: back to QUEUED, so `settle` ends a refused request FAILED (not
        # UNKNOWN, as a send that may be out would be) and a transient error sends anew.
        unsend(job.id, e)
        raise
    for warning in dict.fromkeys(warnings):
        # Every row of a batch tends to share its warnings ("motion_intensity: runway has no
        # equivalent setting"): said once, not a log line a row in the run and the UI.
        if warned is None:
            logger.warning("job %s: %s", job.id, warning)
        elif warning not in warned:
            warned.add(warning)
            logger.warning("job %s: %s (said once for this batch's rows)", job.id, warning)
    sent = time.time()
    try:
        provider_job_id = await failures_logged(
            job.id, "submit", lambda: adapter.submit(request, credentials, reference=reference)
        )
    except AmbiguousSubmitError as e:
        mark_ambiguous(job.id, e, user_id)
        return await _recover(adapter, job.id, credentials, user_id, logger, warned)
    except SceneFlowError as e:
        if is_retryable(e):
            # It surely did not arrive (connection refused, 429, 503): the retry sends anew.
            unsend(job.id, e)
        raise
    # At DEBUG: the "saved" line names the provider's job, and each INFO line a row cost about
    # 0.9 ms of CPU between the flow and the Prefect API that stores it (issue 10).
    logger.debug("job %s submitted to %s as %s", job.id, adapter.key, provider_job_id)
    return accept_submission(job.id, provider_job_id, sent=sent)


async def _recover(
    adapter: VideoAdapter,
    job_id: str,
    credentials: Credentials,
    user_id: str,
    logger: Logger,
    warned: set[str] | None = None,
) -> JobRef:
    """Look the UNKNOWN job up; resume it, send it again once, or leave it UNKNOWN."""
    with session_scope() as session:
        job = load_job(session, job_id)
    cause = last_send_error(job_id) or (
        "the run that sent it stopped before the reply was recorded"
    )
    lost = f"The submit of job {job_id} to {adapter.key} may have created a job ({cause})"
    started = time.time()
    try:
        # A lookup costs nothing: one that fails for a moment is asked again in place.
        found = await patiently(
            lambda: find_lost_job(adapter, job_id, credentials),
            adapter.capabilities(),
            failed=lambda e, at: log_attempt(job_id, "lookup", error=e, started=at),
        )
    except SceneFlowError as e:
        # However the lookup failed (a 401 included), the job may exist: it stays UNKNOWN, and
        # the next run asks again. A rejected key still marks the credentials invalid.
        log_attempt(job_id, "lookup", error=e, started=started)
        error = AmbiguousSubmitError(
            f"{lost}, and asking {adapter.key} for it failed ({e}); the next run asks again.",
            provider=adapter.key,
        )
        mark_ambiguous(job_id, error, user_id)
        if isinstance(e, AuthError):
            reject_key(user_id, adapter.key)
        if is_retryable(e):
            raise  # the job stays UNKNOWN; the group's retry asks again, else the next run
        raise error from e
    if found.provider_job_id:
        log_attempt(job_id, "lookup", detail=f"found {found.provider_job_id}", started=started)
        logger.warning(
            "job %s: its lost submit had created %s; resuming", job_id, found.provider_job_id
        )
        return accept_submission(job_id, found.provider_job_id)
    if found.complete and job.attempts < MAX_SENDS:
        why = f"{found.checked} found no job for the lost send, so it never arrived; sending again"
        log_attempt(job_id, "lookup", detail=why, started=started)
        logger.warning("job %s: %s", job_id, why)
        return await _send(
            adapter, resend_after_lookup(job_id), credentials, user_id, logger, warned
        )
    if found.complete:
        outcome = (
            f"{found.checked} found none, but it was sent {job.attempts} times already, each "
            "reply lost"
        )
    else:
        outcome = found.checked
    error = AmbiguousSubmitError(
        f"{lost}; {outcome}. It stays UNKNOWN and is never sent again on its own: "
        f"{_resubmit_hint(job_id)}.",
        provider=adapter.key,
    )
    log_attempt(job_id, "lookup", error=error, started=started)
    mark_ambiguous(job_id, error, user_id)
    raise error


async def find_lost_job(adapter: VideoAdapter, job_id: str, credentials: Credentials) -> LostJob:
    """Ask the provider for the job the lost send of `job_id` may have created."""
    with session_scope() as session:
        job = load_job(session, job_id)
        request = StandardVideoRequest.model_validate_json(job.request_json)
        sent_at = job.submitted_at or job.created_at
        reference = send_reference(job)
    since = sent_at - CLOCK_SKEW
    with session_scope() as session:
        known = store.provider_job_ids_since(
            session=session, provider=adapter.key, since=since, other_than=job_id
        )
    lookup = await adapter.find_submitted(
        request, credentials, since=since, reference=reference, known=known
    )
    if lookup is None:
        return LostJob(
            provider_job_id=None,
            complete=False,
            checked=f"{adapter.key} offers no way to look it up",
        )
    with session_scope() as session:
        for candidate in lookup.job_ids:
            owner = store.find_job(session=session, job_id_or_provider_job_id=candidate)
            if owner is None or owner.id == job_id:
                return LostJob(provider_job_id=candidate, complete=True, checked="")
    window = f"{sent_at:%Y-%m-%d %H:%M:%S} UTC"
    if lookup.complete:
        checked = f"a complete search of the {adapter.key} jobs created since {window}"
    else:
        checked = (
            f"the {adapter.key} jobs SceneFlow could search since {window} cannot show whether "
            "the send arrived: the search did not reach back to it, or what it found cannot be "
            "told apart from other sends"
        )
    return LostJob(provider_job_id=None, complete=lookup.complete, checked=checked)
