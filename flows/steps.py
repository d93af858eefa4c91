"""The one run-jobs step every caller shares: a group of jobs, one task run, one policy.

The single-video flow runs a group of one job, a batch runs its rows in groups (one lane of
the provider's concurrency each, `sceneflow.jobs.lanes`), and the gateway's full run is the
single-video flow. Every job ends through `ledger.settle`, so one failure policy decides how
every job ends, whoever ran it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from prefect import get_run_logger, tags
from prefect.client.orchestration import get_client

from sceneflow.errors import OrchestrationError, SceneFlowError
from sceneflow.jobs import ledger
from sceneflow.jobs.lanes import LaneJob, LaneWork, RowHooks
from sceneflow.jobs.ledger import JobRef
from tasks.generation import generate_videos

# Limits a page when listing them; a Prefect server refuses pages over its
# PREFECT_SERVER_API_DEFAULT_LIMIT (200 unless set lower).
_PAGE = 100


def provider_tag(key: str) -> str:
    """The tag whose Prefect concurrency limit caps a provider's jobs in flight across workers
    (`prefect concurrency-limit create provider:runway 5`)."""
    return f"provider:{key}"


async def limit_tags(keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The tags each provider's task runs carry: its provider tag where a concurrency limit of
    that tag exists, none where none does. Read once, when a flow starts.

    Prefect's task engine asks its API for a slot of every tag a task run carries, limit or
    not: a write transaction (the API's SQLite answered it 503 about once a batch while it
    stored events, issue 10) that every group starting behind it waited for. Where there is
    no limit, the ask can only ever answer "no limit", so it is not made. The limits are
    listed rather than looked up by name, which answers 404 for each one missing."""
    names: set[str] = set()
    async with get_client() as client:
        offset = 0
        while page := await client.read_global_concurrency_limits(limit=_PAGE, offset=offset):
            names.update(limit.name for limit in page)
            offset += len(page)
    found: dict[str, tuple[str, ...]] = {}
    for key in keys:
        tag = provider_tag(key)
        found[key] = (tag,) if f"tag:{tag}" in names else ()
    return found


async def run_group(
    jobs: list[LaneJob],
    work: LaneWork,
    *,
    label: str,
    since: datetime,
    limits: tuple[str, ...],
    hooks: RowHooks | None = None,
    raise_error: bool = False,
) -> list[JobRef | None]:
    """Run the jobs in one task run, tagged with `limits` (`limit_tags`); returns what each
    job's download returned (or None).

    When Prefect itself fails the task run (its API refuses to start it, say), every job of
    the group that has not ended is settled with an OrchestrationError: one never sent stays
    unpaid and a re-run runs it; one the provider has keeps its provider job."""
    # Each task run carries one job at a time, so a tag limit counts jobs in flight.
    with tags(*limits):
        try:
            return await generate_videos(jobs, work, label, hooks, raise_error)
        except (SceneFlowError, asyncio.CancelledError, KeyboardInterrupt):
            raise  # the jobs are settled: a group of one's own error, or an interrupt
        except Exception as e:
            error = OrchestrationError(
                f"Prefect could not run the task that carries this job ({type(e).__name__}: "
                f"{e}); nothing more was sent for it, and a re-run picks it up"
            )
            get_run_logger().warning("group %s: %s", label, error)
            for job in jobs:
                if not ledger.ended_since(job.job_id, since):
                    ledger.settle(job.job_id, error, work.user_id)
            if raise_error:
                raise error from e
            return [None] * len(jobs)
