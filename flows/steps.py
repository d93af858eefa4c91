"""The one run-jobs step every caller shares: a group of jobs, one task run, one policy.

The single-video flow runs a group of one job, a batch runs its rows in groups (one lane of
the provider's concurrency each, `sceneflow.jobs.lanes`), and the gateway's full run is the
single-video flow. Every job ends through `ledger.settle`, so one failure policy decides how
every job ends, whoever ran it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from prefect import get_run_logger, tags

from sceneflow.errors import OrchestrationError, SceneFlowError
from sceneflow.jobs import ledger
from sceneflow.jobs.lanes import LaneJob, LaneWork, RowHooks
from sceneflow.jobs.ledger import JobRef
from tasks.generation import generate_videos


async def run_group(
    jobs: list[LaneJob],
    work: LaneWork,
    *,
    label: str,
    since: datetime,
    hooks: RowHooks | None = None,
    raise_error: bool = False,
) -> list[JobRef | None]:
    """Run the jobs in one task run; returns what each job's download returned (or None).

    When Prefect itself fails the task run (its API refuses to start it, say), every job of
    the group that has not ended is settled with an OrchestrationError: one never sent stays
    unpaid and a re-run runs it; one the provider has keeps its provider job."""
    # The provider tag lets a Prefect tag concurrency limit cap one provider across workers;
    # each task run carries one job at a time, so the limit counts jobs in flight.
    with tags(f"provider:{work.adapter.key}"):
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
