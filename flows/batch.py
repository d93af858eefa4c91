"""generate_batch: a prompt CSV fanned out in parallel, bounded per provider."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from prefect import flow, get_run_logger, tags
from pydantic import BaseModel

from adapters import Provider, get_adapter
from sceneflow import jobs
from sceneflow.batchfile import PromptRow, RowProblem
from sceneflow.errors import SceneFlowError
from sceneflow.models import JobStatus
from sceneflow.polling import Deadlines, deadlines_for
from sceneflow.providers import Credentials, VideoAdapter
from tasks.batch import Progress, read_prompts, write_results
from tasks.credentials import load_credentials
from tasks.generation import download_video, submit_generation, wait_for_generation
from tasks.record import finish_job


class BatchSummary(BaseModel):
    batch_id: str
    total: int
    completed: int
    failed: int
    invalid: int
    results_csv: str
    output_dir: str
    failures: list[str]


def batch_id_for(csv_path: str, user_id: str) -> str:
    """The same CSV for the same user is the same batch, so a re-run resumes it."""
    return hashlib.sha256(f"{user_id}\x1f{csv_path}".encode()).hexdigest()[:16]


def _problem_record(problem: RowProblem) -> dict[str, Any]:
    return {
        "id": problem.row_id,
        "row_number": problem.row_number,
        "provider": problem.provider,
        "status": "INVALID",
        "error": "; ".join(problem.problems),
    }


def _row_record(row: PromptRow, summary: dict[str, Any], duration: float | None) -> dict[str, Any]:
    return {
        "id": row.row_id,
        "row_number": row.row_number,
        "provider": row.provider,
        "status": summary["status"],
        "provider_job_id": summary["provider_job_id"],
        "output_path": summary["output_path"],
        "duration": duration,
        "error": summary["error"],
        "warnings": "; ".join(row.warnings),
        "attempts": summary["attempts"],
        "cost": summary["cost"],
        "submitted_at": summary["submitted_at"],
        "finished_at": summary["finished_at"],
        "job_id": summary["job_id"],
    }


async def _run_row(
    row: PromptRow,
    job: jobs.JobRef,
    adapter: VideoAdapter,
    credentials: Credentials | SceneFlowError,
    *,
    user_id: str,
    output_dir: str,
    deadlines: Deadlines,
) -> float | None:
    """Submit, wait, download. Three task runs a row, chosen to keep the batch's CPU low."""
    if isinstance(credentials, SceneFlowError):
        raise credentials
    job = await submit_generation(job, adapter, credentials, user_id)
    result = await wait_for_generation(job, adapter, credentials, user_id, deadlines)
    done = await download_video(job, adapter, credentials, result, user_id, output_dir, row.row_id)
    return done.duration


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
    batch_id = batch_id_for(csv_path, user_id)
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
    limits = {key: asyncio.Semaphore(max_concurrency) for key in providers}
    refs = [
        jobs.prepare_job(
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

    async def run(row: PromptRow, job: jobs.JobRef) -> dict[str, Any]:
        adapter = adapters[row.provider]
        duration = None
        # The provider tag lets a Prefect tag concurrency limit cap one provider across workers.
        async with limits[row.provider]:
            try:
                with tags(f"provider:{row.provider}"):
                    duration = await _run_row(
                        row,
                        job,
                        adapter,
                        credentials[row.provider],
                        user_id=user_id,
                        output_dir=output_dir,
                        deadlines=deadlines_for(
                            row.provider, adapter.capabilities(), deadline_seconds
                        ),
                    )
            except SceneFlowError as e:
                jobs.mark_failed(job.job_id, e)
        summary = finish_job(job.job_id, user_id=user_id, batch_id=batch_id)
        await progress.tick()
        return _row_record(row, summary, duration)

    try:
        # return_exceptions: a bug hit by one row must not abandon the rows still running.
        outcomes = await asyncio.gather(
            *(run(r, j) for r, j in zip(batch.rows, refs, strict=True)), return_exceptions=True
        )
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
    await progress.tick(final=True)
    records = [_problem_record(p) for p in batch.problems]
    unexpected: list[BaseException] = []
    for row, job, outcome in zip(batch.rows, refs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            logger.error("row %d hit an unexpected error", row.row_number, exc_info=outcome)
            jobs.mark_failed(job.job_id, outcome)
            unexpected.append(outcome)
            outcome = _row_record(
                row, finish_job(job.job_id, user_id=user_id, batch_id=batch_id), None
            )
        records.append(outcome)
    location = await write_results(records, output_dir, batch_id)
    failures = [
        f"row {r['row_number']}: {r['error']}"
        for r in records
        if r["status"] != JobStatus.COMPLETED.value
    ]
    summary = BatchSummary(
        batch_id=batch_id,
        total=len(records),
        invalid=len(batch.problems),
        completed=sum(r["status"] == JobStatus.COMPLETED.value for r in records),
        failed=len(failures) - len(batch.problems),
        results_csv=location,
        output_dir=output_dir,
        failures=failures,
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
