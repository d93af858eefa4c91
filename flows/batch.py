"""generate_batch: a prompt CSV fanned out in parallel, bounded per provider."""

from __future__ import annotations

import asyncio
import time

from prefect import flow, get_run_logger

from adapters import Provider, get_adapter
from flows.steps import run_job
from sceneflow import batches
from sceneflow.batches import BatchSummary, ResultRecord
from sceneflow.errors import SceneFlowError
from sceneflow.jobs import ledger
from sceneflow.jobs.ledger import JobRef
from sceneflow.jobs.poll import deadlines_for
from sceneflow.prompts import PromptRow
from sceneflow.providers import Credentials
from tasks.batch import Progress, read_prompts, write_results
from tasks.credentials import load_credentials
from tasks.record import finish_job


@flow(name="generate-batch", flow_run_name="generate-batch[{provider}]")
async def generate_batch(
    csv_path: str,
    user_id: str,
    provider: Provider = Provider.LOCAL,
    output_dir: str = "outputs",
    max_concurrency: int = 4,
    force: bool = False,
    deadline_seconds: float | None = None,
) -> BatchSummary:
    """Generate a video for every valid row of a prompt CSV and write results.csv.

    Args:
        csv_path: Path or fsspec URL of the prompt CSV (columns: the request fields, plus
            optional id, provider and model).
        user_id: Whose stored credentials to use.
        provider: Default provider for rows without a provider column.
        output_dir: Folder or fsspec URL for the videos and results.csv.
        max_concurrency: Jobs in flight at once, per provider.
        force: Generate every row anew, even those already done.
        deadline_seconds: Give up on a job (and cancel it) once it has run this many seconds;
            default per provider. Time in the provider's queue has its own limit.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    logger = get_run_logger()
    batch_id = batches.batch_id_for(csv_path, user_id)
    batch = read_prompts(csv_path, Provider(provider).value)
    providers = sorted({row.provider for row in batch.rows})
    credentials: dict[str, Credentials | SceneFlowError] = {}
    for key in providers:
        try:
            credentials[key] = await load_credentials(user_id, key)
        except SceneFlowError as e:
            logger.error("%s rows cannot run: %s", key, e)
            credentials[key] = e
    adapters = {key: get_adapter(key) for key in providers}
    deadlines = {
        key: deadlines_for(key, adapter.capabilities(), deadline_seconds)
        for key, adapter in adapters.items()
    }
    limits = {key: asyncio.Semaphore(max_concurrency) for key in providers}
    refs = [
        ledger.prepare_job(
            user_id=user_id,
            provider=row.provider,
            request=row.request,
            row_id=row.row_id,
            occurrence=row.occurrence,
            batch_id=batch_id,
            row_number=row.row_number,
            force=force,
        )
        for row in batch.rows
    ]
    progress = Progress(len(batch.rows) + len(batch.problems))
    await progress.start(batch_id, already_done=len(batch.problems))

    def record(row: PromptRow, job: JobRef, duration: float | None) -> ResultRecord:
        summary = finish_job(job.job_id, user_id=user_id, batch_id=batch_id, row_id=row.row_id)
        return batches.row_record(row, summary, duration)

    async def run(row: PromptRow, job: JobRef) -> ResultRecord:
        duration = None
        async with limits[row.provider]:
            try:
                opened = credentials[row.provider]
                if isinstance(opened, SceneFlowError):
                    raise opened
                done = await run_job(
                    job,
                    adapters[row.provider],
                    opened,
                    user_id=user_id,
                    output_dir=output_dir,
                    # A row's queue deadline starts when its turn comes, not when the batch does.
                    deadlines=deadlines[row.provider].model_copy(
                        update={"started_at": time.time()}
                    ),
                    row_id=row.row_id,
                )
                duration = done.duration
            except SceneFlowError as e:
                ledger.give_up(job.job_id, e)
        await progress.tick()
        return record(row, job, duration)

    try:
        # return_exceptions: a bug hit by one row must not abandon the rows still running.
        outcomes = await asyncio.gather(
            *(run(r, j) for r, j in zip(batch.rows, refs, strict=True)), return_exceptions=True
        )
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
    await progress.tick(final=True)
    records = [batches.invalid_record(p) for p in batch.problems]
    unexpected: list[BaseException] = []
    for row, job, outcome in zip(batch.rows, refs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            logger.error("row %d hit an unexpected error", row.row_number, exc_info=outcome)
            ledger.give_up(job.job_id, outcome)
            unexpected.append(outcome)
            outcome = record(row, job, None)
        records.append(outcome)
    location = await write_results(records, output_dir, batch_id)
    summary = batches.summarize_batch(
        batch_id, records, results_csv=location, output_dir=output_dir
    )
    logger.info(
        "batch %s: %d completed, %d failed, %d invalid; results in %s",
        batch_id,
        summary.completed,
        summary.failed,
        summary.invalid,
        location,
    )
    if unexpected:
        raise unexpected[0]
    return summary
