"""Batch-level tasks: read and validate the prompt CSV once, publish results and progress."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from sceneflow import batches, gallery, prompts, storage
from sceneflow.batches import BatchSummary, ResultRecord
from sceneflow.prompts import PromptBatch
from tasks.generation import request_checker


@task(cache_policy=NO_CACHE, persist_result=False)
def read_prompts(csv_path: str, default_provider: str, strict: bool = False) -> PromptBatch:
    """Read the whole CSV in one pass and validate every row; bad rows are reported, not raised.
    With `strict`, a row the provider would run without a field it sets is a bad row."""
    batch = prompts.parse_prompts(
        prompts.read_csv_text(csv_path),
        default_provider=default_provider,
        provider_check=request_checker(),
        strict=strict,
    )
    logger = get_run_logger()
    for problem in batch.problems:
        logger.warning("%s", problem.message())
    logger.info(
        "%d valid rows, %d invalid rows in %s", len(batch.rows), len(batch.problems), csv_path
    )
    return batch


@task(cache_policy=NO_CACHE, persist_result=False)
async def write_results(
    records: list[ResultRecord], output_dir: str, batch_id: str
) -> BatchSummary:
    """Write results.csv and the gallery (index.html) beside the videos, and the batch's
    artifacts: a results table and a summary that links both files."""
    location = storage.write_text(
        f"{output_dir.rstrip('/')}/results.csv", batches.results_csv(records)
    )
    page = gallery.write_gallery(records, output_dir, title=f"Batch {batch_id}")
    summary = batches.summarize_batch(
        batch_id, records, results_csv=location, output_dir=output_dir, gallery=page
    )
    shown = {"id", "row_number", "provider", "status", "output_path", "error"}
    await acreate_table_artifact(
        table=[r.model_dump(include=shown) for r in sorted(records, key=lambda r: r.row_number)],
        key=f"batch-{batch_id}-results",
        description=f"Results of batch {batch_id}; full detail in {location}",
    )
    await acreate_markdown_artifact(
        markdown=batches.summary_markdown(summary, records),
        key=f"batch-{batch_id}-summary",
        description=f"Batch {batch_id}: the gallery and results.csv",
    )
    return summary


class Progress:
    """A progress artifact updated as rows finish, at most about once a second."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self._artifact: UUID | None = None
        self._last = 0.0

    async def start(self, batch_id: str, already_done: int) -> None:
        self.done = already_done
        self._artifact = await acreate_progress_artifact(
            progress=self.percent(),
            key=f"batch-{batch_id}-progress",
            description=f"Rows finished in batch {batch_id}",
        )

    def percent(self) -> float:
        return round(100 * self.done / self.total, 1)

    async def tick(self, *, final: bool = False) -> None:
        if not final:
            self.done += 1
        if self._artifact and (final or time.monotonic() - self._last > 1.0):
            self._last = time.monotonic()
            await aupdate_progress_artifact(self._artifact, self.percent())
