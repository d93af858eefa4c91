"""The one run-a-job step every caller shares: claim, submit, wait, download, settle.

Three task runs a job, not six: every task run costs the batch CPU in Prefect's bookkeeping
(design.md §6), and validation, credentials and recording are done once a batch or as plain
calls. The single-video flow, each batch row and the gateway (through the single-video flow)
all run a job here, so one failure policy (`ledger.settle`) decides how every job ends.
"""

from __future__ import annotations

import asyncio

from prefect import get_run_logger, tags

from sceneflow.jobs import ledger
from sceneflow.jobs.ledger import JobRef
from sceneflow.jobs.poll import Deadlines
from sceneflow.providers import Credentials, VideoAdapter
from tasks.generation import download_video, submit_generation, wait_for_generation


async def run_job(
    job: JobRef,
    adapter: VideoAdapter,
    credentials: Credentials,
    *,
    user_id: str,
    output_dir: str,
    deadlines: Deadlines,
    row_id: str | None = None,
) -> JobRef:
    """Take one prepared job to a verified video. Only the run that holds the job's claim
    works on it; another run of the same batch waits for it. Whatever stops the job, the
    ledger's policy records what it means before the error goes on."""
    owner = ledger.run_owner()
    await ledger.hold(job.job_id, owner, logger=get_run_logger())
    try:
        # The provider tag lets a Prefect tag concurrency limit cap one provider across workers.
        with tags(f"provider:{job.provider}"):
            job = await submit_generation(job, adapter, credentials, user_id)
            result = await wait_for_generation(
                job, adapter, credentials, user_id, deadlines.restarted(), owner
            )
            return await download_video(
                job, adapter, credentials, result, user_id, output_dir, row_id
            )
    except (Exception, asyncio.CancelledError) as e:
        ledger.settle(job.job_id, e, user_id)
        raise
    finally:
        ledger.release(job.job_id, owner)
