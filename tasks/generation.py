"""One Prefect task per step of a generation. Each wraps one function of `sceneflow.jobs`.

submit_generation and download_video are cached by the job's idempotency key and generation,
so a re-run is answered from Prefect's cache; their results hold only ids, paths and statuses.
The job table stays the source of truth when the cache is cold or on another machine.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from adapters import get_adapter
from sceneflow.jobs import download, ledger, poll, submit
from sceneflow.jobs.ledger import JobRef
from sceneflow.models import StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials, VideoAdapter
from tasks.policies import RETRY_OPTIONS


def _job_key(step: str):  # type: ignore[no-untyped-def]
    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
        job: JobRef = parameters["job"]
        if step == "download" and not ledger.video_in_place(job.job_id):
            return None  # not saved yet, or deleted since: only a fetch can answer, uncached
        # The job id pins the key to one row of one database: a cache that outlives its
        # database (or is shared with another) can never answer for a different job.
        return f"sceneflow-{step}-{job.idempotency_key}-{job.job_id}-g{job.generation}"

    return key


def check_request(provider: str, request: StandardVideoRequest) -> list[str]:
    """The provider's own limits; raises RequestValidationError, returns warnings."""
    return get_adapter(provider).validate(request)


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="validate[{provider}]")
def validate_request(provider: str, request: StandardVideoRequest) -> list[str]:
    """Check the request against SceneFlow's and the provider's limits before anything is sent."""
    warnings = check_request(provider, request)
    for warning in warnings:
        get_run_logger().warning("%s", warning)
    return warnings


@task(
    cache_key_fn=_job_key("submit"),
    persist_result=True,
    **RETRY_OPTIONS,
    task_run_name="submit[{job.provider}]",
)
async def submit_generation(
    job: JobRef, adapter: VideoAdapter, credentials: Credentials, user_id: str
) -> JobRef:
    """Send the job to the provider once and store its job id at once."""
    return await submit.submit_job(
        adapter, job.job_id, credentials, user_id=user_id, logger=get_run_logger()
    )


# No Prefect retries here: a failed status check costs nothing, so the wait itself retries
# transient errors until the job's deadline, however many come in a row.
@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="wait[{job.provider}]")
async def wait_for_generation(
    job: JobRef,
    adapter: VideoAdapter,
    credentials: Credentials,
    user_id: str,
    deadlines: poll.Deadlines,
    owner: str | None = None,
) -> StandardVideoResult:
    """Poll adaptively until the job is done; cancel it and time out at a deadline."""
    return await poll.wait_for_job(
        adapter,
        job.job_id,
        credentials,
        user_id=user_id,
        deadlines=deadlines,
        owner=owner,
        logger=get_run_logger(),
    )


@task(
    cache_key_fn=_job_key("download"),
    persist_result=True,
    **RETRY_OPTIONS,
    task_run_name="download[{job.provider}]",
)
async def download_video(
    job: JobRef,
    adapter: VideoAdapter,
    credentials: Credentials,
    result: StandardVideoResult,
    user_id: str,
    output_dir: str,
    row_id: str | None = None,
) -> JobRef:
    """Fetch the video as soon as it is done and verify it before calling the job COMPLETED."""
    return await download.download_job(
        adapter,
        job.job_id,
        result,
        credentials,
        user_id=user_id,
        output_dir=output_dir,
        row_id=row_id,
        logger=get_run_logger(),
    )
