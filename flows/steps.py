"""The one run-a-job step the flows share: submit, wait, download, as three task runs.

Three task runs a job, not six: every task run costs the batch CPU in Prefect's bookkeeping
(design.md §6), and validation, credentials and recording are done once a batch or as plain
calls.
"""

from __future__ import annotations

from prefect import tags

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
    """Take one prepared job to a verified video; raises the error that stopped it."""
    # The provider tag lets a Prefect tag concurrency limit cap one provider across workers.
    with tags(f"provider:{job.provider}"):
        job = await submit_generation(job, adapter, credentials, user_id)
        result = await wait_for_generation(job, adapter, credentials, user_id, deadlines)
        return await download_video(job, adapter, credentials, result, user_id, output_dir, row_id)
