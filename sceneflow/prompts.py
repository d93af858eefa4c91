"""Prompt CSVs in: read in one pass, every row validated, every problem named with its row.
No Prefect, and no provider calls: the provider's own checks come in as a function.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first prompt row 2.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from sceneflow.errors import ConfigError, RequestValidationError, UnknownProviderError
from sceneflow.models import StandardVideoRequest, format_validation_error

__all__ = [
    "EXTRA_COLUMNS",
    "PromptBatch",
    "PromptRow",
    "RowProblem",
    "check_columns",
    "parse_prompts",
    "read_csv_text",
]

EXTRA_COLUMNS = ("id", "provider")


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
