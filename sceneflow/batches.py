"""A batch: prompt CSVs in, one record a row, results.csv and a summary out. No Prefect, and no
provider calls: the provider's own checks come in as a function.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first prompt row 2.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError, field_validator

from sceneflow.errors import ConfigError, RequestValidationError, UnknownProviderError
from sceneflow.jobs.ledger import JobSummary
from sceneflow.models import JobStatus, StandardVideoRequest, format_validation_error

__all__ = [
    "BatchSummary",
    "PromptBatch",
    "PromptRow",
    "RESULT_COLUMNS",
    "ResultRecord",
    "RowProblem",
    "batch_id_for",
    "check_columns",
    "invalid_record",
    "parse_prompts",
    "read_csv_text",
    "results_csv",
    "row_record",
    "summarize_batch",
]

EXTRA_COLUMNS = ("id", "provider")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class PromptRow(BaseModel):
    row_number: int
    row_id: str | None
    provider: str
    request: StandardVideoRequest
    occurrence: int = 0
    warnings: list[str] = []


class RowProblem(BaseModel):
    row_number: int
    row_id: str | None
    provider: str | None
    problems: list[str]
    prompt: str | None = None

    def message(self) -> str:
        return f"row {self.row_number}: " + "; ".join(self.problems)


class PromptBatch(BaseModel):
    rows: list[PromptRow]
    problems: list[RowProblem]


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


def batch_id_for(csv_path: str, user_id: str) -> str:
    """The same CSV for the same user is the same batch, so a re-run resumes it."""
    return hashlib.sha256(f"{user_id}\x1f{csv_path}".encode()).hexdigest()[:16]


def read_csv_text(source: str) -> pd.DataFrame:
    """A path or any fsspec URL; every cell as text, empty cells as empty strings."""
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as e:
        raise ConfigError(f"Prompt CSV not found: {source}. Pass an existing file or URL.") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"Cannot read {source} as CSV ({e}). Save it as UTF-8 CSV with a header row."
        ) from e


def check_columns(columns: Iterable[Any]) -> list[str]:
    """The header, normalised; raises ConfigError naming unknown or missing columns."""
    names = [str(c).strip().lower() for c in columns]
    allowed = set(StandardVideoRequest.model_fields) | set(EXTRA_COLUMNS)
    unknown = [c for c in names if c not in allowed]
    if unknown:
        raise ConfigError(
            f"Unknown column(s) {', '.join(unknown)}. Allowed columns: "
            f"{', '.join(sorted(allowed))}."
        )
    if "prompt" not in names:
        raise ConfigError("The CSV has no 'prompt' column; every row needs a prompt.")
    return names


def parse_prompts(
    frame: pd.DataFrame,
    *,
    default_provider: str,
    provider_check: Callable[[str, StandardVideoRequest], list[str]],
) -> PromptBatch:
    """Validate every row in one pass. `provider_check(provider, request)` raises
    RequestValidationError / UnknownProviderError for what the provider cannot do, and returns
    warnings. Bad rows are collected, never raised."""
    frame.columns = check_columns(frame.columns)
    rows: list[PromptRow] = []
    problems: list[RowProblem] = []
    seen_ids: dict[str, int] = {}
    occurrences: Counter[str] = Counter()
    for index, record in enumerate(frame.to_dict(orient="records")):
        row_number = index + 2
        cells = {k: v.strip() for k, v in record.items() if isinstance(v, str) and v.strip()}
        row_id = cells.pop("id", None)
        provider = cells.pop("provider", None) or default_provider
        errors: list[str] = []
        if row_id is not None:
            if row_id in seen_ids:
                errors.append(
                    f"id: {row_id!r} is already used by row {seen_ids[row_id]}; ids must be unique"
                )
            seen_ids.setdefault(row_id, row_number)
        request = None
        try:
            request = StandardVideoRequest.model_validate(cells)
        except ValidationError as e:
            errors.extend(format_validation_error(e))
        warnings: list[str] = []
        if request is not None:
            try:
                warnings = provider_check(provider, request)
            except UnknownProviderError as e:
                errors.append(f"provider: {e}")
            except RequestValidationError as e:
                errors.extend(e.problems)
        if errors or request is None:
            problems.append(
                RowProblem(
                    row_number=row_number,
                    row_id=row_id,
                    provider=provider,
                    problems=errors,
                    prompt=cells.get("prompt"),
                )
            )
            continue
        signature = f"{provider}\x1f{request.model_dump_json()}"
        rows.append(
            PromptRow(
                row_number=row_number,
                row_id=row_id,
                provider=provider,
                request=request,
                occurrence=occurrences[signature],
                warnings=warnings,
            )
        )
        occurrences[signature] += 1
    return PromptBatch(rows=rows, problems=problems)


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


def row_record(row: PromptRow, job: JobSummary, duration: float | None) -> ResultRecord:
    return ResultRecord(
        id=row.row_id,
        row_number=row.row_number,
        provider=row.provider,
        model=row.request.model,
        prompt=row.request.prompt,
        status=job.status.value,
        provider_job_id=job.provider_job_id,
        output_path=job.output_path,
        duration=duration,
        error=job.error,
        warnings="; ".join(row.warnings),
        attempts=job.attempts,
        cost=job.cost,
        submitted_at=job.submitted_at,
        finished_at=job.finished_at,
        job_id=job.job_id,
    )


def summarize_batch(
    batch_id: str, records: list[ResultRecord], *, results_csv: str, output_dir: str
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
    )


def results_csv(records: list[ResultRecord]) -> str:
    ordered = sorted(records, key=lambda r: r.row_number)
    # Cells are neutralised before pandas sees them and the frame stays dtype=object: pandas
    # infers a float column from whole numbers with gaps and would write attempts as 1.0.
    cells = [{k: neutralise(v) for k, v in r.model_dump().items()} for r in ordered]
    frame = pd.DataFrame(cells, columns=RESULT_COLUMNS, dtype=object)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
