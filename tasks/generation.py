"""The Prefect task that runs a group of jobs, one at a time (`sceneflow.jobs.lanes`).

One task run a group, not three a job: each task run costs Prefect's API its state events and
the flow its task engine (docs/architecture.md, "Task runs"). The group is cached by its jobs'
idempotency keys and generations once every video is in place, so a re-run is answered from
Prefect's cache; the cached result holds only ids, paths and statuses. The job table stays the
source of truth when the cache is cold or on another machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from adapters import get_adapter
from sceneflow.jobs import lanes, ledger
from sceneflow.jobs.lanes import LaneJob, LaneWork, RowHooks
from sceneflow.jobs.ledger import JobRef
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import VideoAdapter
from sceneflow.providers import validate_request as validate_with
from tasks.policies import RETRY_OPTIONS

# The jobs each group's last try left for its retry, by task run (a retry is the same task run,
# in the same process); the retry takes its entry.
_PENDING: dict[UUID, list[str]] = {}


def _group_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    jobs: list[LaneJob] = parameters["jobs"]
    # Only a group whose every video is saved can be answered without a fetch; the statuses
    # the flow prepared tell most groups apart without reading a row.
    if any(job.status != JobStatus.COMPLETED for job in jobs) or not all(
        ledger.video_in_place(job.job_id) for job in jobs
    ):
        return None
    # The job ids pin the key to rows of one database: a cache that outlives its database (or
    # is shared with another) can never answer for different jobs.
    ids = "|".join(f"{j.idempotency_key}-{j.job_id}-g{j.generation}" for j in jobs)
    return f"sceneflow-group-{hashlib.sha256(ids.encode()).hexdigest()}"


def check_request(
    provider: str, request: StandardVideoRequest, *, strict: bool = False
) -> list[str]:
    """The provider's own limits; raises RequestValidationError, returns warnings. With
    `strict`, a field the provider would go without is refused too."""
    return validate_with(get_adapter(provider), request, strict=strict)


def request_checker() -> Callable[[str, StandardVideoRequest], list[str]]:
    """`check_request` with one adapter a provider, for validating many rows: building an
    adapter a row was about 6% of validating a 100,000-row CSV under cProfile (issue 10)."""
    built: dict[str, VideoAdapter] = {}

    def check(provider: str, request: StandardVideoRequest) -> list[str]:
        adapter = built.get(provider)
        if adapter is None:
            adapter = built[provider] = get_adapter(provider)
        return validate_with(adapter, request)

    return check


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="validate[{provider}]")
def validate_request(
    provider: str, request: StandardVideoRequest, strict: bool = False
) -> list[str]:
    """Check the request against SceneFlow's and the provider's limits before anything is sent."""
    warnings = check_request(provider, request, strict=strict)
    for warning in warnings:
        get_run_logger().warning("%s", warning)
    return warnings


@task(
    cache_key_fn=_group_key,
    persist_result=True,
    **RETRY_OPTIONS,
    task_run_name="generate[{label}]",
)
async def generate_videos(
    jobs: list[LaneJob],
    work: LaneWork,
    label: str,
    hooks: RowHooks | None = None,
    raise_error: bool = False,
) -> list[JobRef | None]:
    """Take each job of the group to a verified video, one after another, and end every one in
    the ledger. A transient error is retried by Prefect (the policy in tasks/policies.py); the
    retry resumes only the jobs the last try left pending. With `raise_error` (a group
    of one job, for a caller that wants its error), a job that did not complete raises why."""
    context = TaskRunContext.get()
    run_count = context.task_run.run_count if context else 1
    retries = context.task.retries if context else 0
    run_id = context.task_run.id if context else None
    only = _PENDING.pop(run_id, None) if run_id is not None and run_count > 1 else None
    result = await lanes.run_lane(
        jobs,
        work,
        retry_left=run_count <= retries,
        only=only,
        hooks=hooks,
        logger=get_run_logger(),
    )
    if result.retry is not None:
        if run_id is not None:
            _PENDING[run_id] = result.pending
        raise result.retry
    if raise_error and result.errors:
        raise next(iter(result.errors.values()))
    return result.done
