"""Finding the job a lost submit may have created (design.md §3).

A submit whose reply never came back may still have created, and billed, a job. Sending it again
could pay twice, so the job row is marked UNKNOWN and SceneFlow asks the provider instead: where
the provider lists recent jobs, a job created since the submit went out, with the same inputs,
and not already owned by another row, is that submit's job and is resumed. Where the provider
offers no list, or none matches, the row stays UNKNOWN and the error says what to do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AmbiguousSubmitError, NotFoundError
from sceneflow.models import StandardVideoRequest

if TYPE_CHECKING:
    from sceneflow.providers import Credentials, VideoAdapter

# The provider's clock may run behind ours; a job it stamps this much before our send is still
# a candidate.
CLOCK_SKEW = timedelta(minutes=2)


async def find_lost_job(
    adapter: VideoAdapter, job_id: str, credentials: Credentials, cause: str | None = None
) -> str:
    """The provider job id the lost submit of `job_id` created, or AmbiguousSubmitError saying
    what was checked and how to go on. `cause` is the error that lost the reply, when known."""
    with session_scope() as session:
        job = store.get_job(session=session, job_id=job_id)
        if job is None:
            raise NotFoundError(f"No generation job {job_id!r}; `sceneflow status` lists jobs.")
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
        for candidate in found:
            owner = store.find_job(session=session, job_id_or_provider_job_id=candidate)
            if owner is None or owner.id == job_id:
                return candidate
    raise AmbiguousSubmitError(
        f"{lost}, but no {adapter.key} job created since {sent_at:%Y-%m-%d %H:%M:%S} UTC has "
        f"its inputs, so most likely it was not. {retry}",
        provider=adapter.key,
    )
