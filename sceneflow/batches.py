"""A batch's outcome: one record a row, results.csv and a summary, and the batch's identity.
No Prefect. The prompt CSV itself is read by `sceneflow.prompts`.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, field_validator

from sceneflow import storage
from sceneflow.errors import ConfigError
from sceneflow.jobs.ledger import JobRef, JobSummary
from sceneflow.models import JobStatus
from sceneflow.prompts import PromptRow, RowProblem

__all__ = [
    "BatchSummary",
    "RESULT_COLUMNS",
    "ResultRecord",
    "batch_id_for",
    "claim_output_folder",
    "invalid_record",
    "results_csv",
    "row_record",
    "summarize_batch",
    "summary_markdown",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ResultRecord(BaseModel):
    """One row of results.csv: a prompt row's outcome. No secret, no signed URL."""

    id: str | None = None
    row_number: int
    provider: str | None = None
    model: str | None = None
    prompt: str | None = None
    status: str
    provider_job_id: str | None = None
    output_path: str | None = None
    poster: str | None = None
    duration: float | None = None
    error: str | None = None
    warnings: str | None = None
    attempts: int | None = None
    cost: float | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    job_id: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        # results.csv read back (shards) has empty cells where a value is absent.
        return None if value == "" else value


RESULT_COLUMNS = list(ResultRecord.model_fields)


class BatchSummary(BaseModel):
    batch_id: str
    total: int
    completed: int
    failed: int
    invalid: int
    results_csv: str
    output_dir: str
    failures: list[str]
    gallery: str | None = None


def batch_id_for(csv_path: str, user_id: str) -> str:
    """The same CSV for the same user is the same batch, so a re-run resumes it."""
    return hashlib.sha256(f"{user_id}\x1f{csv_path}".encode()).hexdigest()[:16]


OWNER_FILE = ".sceneflow-batch"


def claim_output_folder(output_dir: str, batch_id: str) -> None:
    """Make `output_dir` this batch's folder, or refuse before anything is sent: video names
    are unique within a batch, so two batches in one folder could overwrite each other's."""
    marker = f"{output_dir.rstrip('/')}/{OWNER_FILE}"
    if storage.exists(marker):
        owner = storage.read_text(marker).strip()
        if owner != batch_id:
            raise ConfigError(
                f"The output folder {output_dir} holds the videos of batch {owner}, so batch "
                f"{batch_id} cannot write there: pass another --output (one folder per batch), "
                f"or --batch-id {owner} if this CSV continues that batch."
            )
        return
    storage.write_text(marker, batch_id + "\n")


def neutralise(value: Any) -> Any:
    """Spreadsheets run cells that start with = + - @ as formulas (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def invalid_record(problem: RowProblem) -> ResultRecord:
    return ResultRecord(
        id=problem.row_id,
        row_number=problem.row_number,
        provider=problem.provider,
        prompt=problem.prompt,
        status="INVALID",
        error="; ".join(problem.problems),
    )


def _row_fields(row: PromptRow) -> dict[str, Any]:
    """What a row's record says of the row itself, whatever became of its job."""
    return {
        "id": row.row_id,
        "row_number": row.row_number,
        "provider": row.provider,
        "model": row.request.model,
        "prompt": row.request.prompt,
        "warnings": "; ".join(row.warnings),
    }


def unstarted_record(row: PromptRow, why: str) -> ResultRecord:
    """The record of a row that has no job yet: it is queued until a run starts it."""
    return ResultRecord(**_row_fields(row), status=JobStatus.QUEUED.value, error=why)


def row_record(row: PromptRow, job: JobSummary, done: JobRef | None = None) -> ResultRecord:
    """The row's record; `done` is what this run's download returned (duration, poster)."""
    return ResultRecord(
        **_row_fields(row),
        status=job.status.value,
        provider_job_id=job.provider_job_id,
        output_path=job.output_path,
        poster=done.poster if done else None,
        duration=done.duration if done else None,
        error=job.error,
        attempts=job.attempts,
        cost=job.cost,
        submitted_at=job.submitted_at,
        finished_at=job.finished_at,
        job_id=job.job_id,
    )


def summarize_batch(
    batch_id: str,
    records: list[ResultRecord],
    *,
    results_csv: str,
    output_dir: str,
    gallery: str | None = None,
) -> BatchSummary:
    """Counts and one line per row that did not complete, in row order."""
    ordered = sorted(records, key=lambda r: r.row_number)
    failures = [
        f"row {r.row_number}: {r.error}" for r in ordered if r.status != JobStatus.COMPLETED.value
    ]
    invalid = sum(r.status == "INVALID" for r in records)
    return BatchSummary(
        batch_id=batch_id,
        total=len(records),
        completed=sum(r.status == JobStatus.COMPLETED.value for r in records),
        failed=len(failures) - invalid,
        invalid=invalid,
        results_csv=results_csv,
        output_dir=output_dir,
        failures=failures,
        gallery=gallery,
    )


def _link(location: str) -> str:
    # A local file gets a file:// link and its path as text to copy: browsers often refuse
    # file:// links from an http:// page such as the Prefect UI.
    if "://" in location:
        return f"[{location}]({location})"
    return f"[{Path(location).name}]({Path(location).resolve().as_uri()}) (`{location}`)"


def summary_markdown(summary: BatchSummary, records: list[ResultRecord]) -> str:
    """The batch's summary for the Prefect UI: counts, cost per provider, links to the files."""
    costs: dict[str, float] = {}
    for r in records:
        if r.cost is not None and r.provider:
            costs[r.provider] = costs.get(r.provider, 0.0) + r.cost
    lines = [
        f"# Batch {summary.batch_id}",
        "",
        f"**{summary.completed}** completed, **{summary.failed}** failed, "
        f"**{summary.invalid}** invalid, of {summary.total} rows.",
        "",
    ]
    if costs:
        spent = ", ".join(f"{k}: {v:,.4g}" for k, v in sorted(costs.items()))
        lines += [f"Cost, in each provider's own units: {spent}.", ""]
    if summary.gallery:
        lines.append(f"- Gallery: {_link(summary.gallery)}")
    lines.append(f"- Results: {_link(summary.results_csv)}")
    return "\n".join(lines) + "\n"


def results_csv(records: list[ResultRecord]) -> str:
    ordered = sorted(records, key=lambda r: r.row_number)
    # Cells are neutralised before pandas sees them and the frame stays dtype=object: pandas
    # infers a float column from whole numbers with gaps and would write attempts as 1.0.
    cells = [{k: neutralise(v) for k, v in r.model_dump().items()} for r in ordered]
    frame = pd.DataFrame(cells, columns=RESULT_COLUMNS, dtype=object)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
