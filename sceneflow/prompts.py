"""Prompt CSVs in: read in one pass, every row validated, every problem named with its row.
No Prefect, and no provider calls: the provider's own checks come in as a function.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first prompt row 2.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
from pydantic import BaseModel, ValidationError

from sceneflow.errors import ConfigError, RequestValidationError, UnknownProviderError
from sceneflow.models import StandardVideoRequest, format_validation_error
from sceneflow.providers import strict_problems

__all__ = [
    "AUDIO_VALUES",
    "EXTRA_COLUMNS",
    "REQUIRED_COLUMNS",
    "PromptBatch",
    "PromptRow",
    "RowProblem",
    "check_columns",
    "parse_audio",
    "parse_options",
    "parse_prompts",
    "read_csv_text",
]

EXTRA_COLUMNS = ("id", "provider")
# The fields a request cannot do without; a CSV without one of them has no valid row at all.
REQUIRED_COLUMNS = tuple(
    name for name, spec in StandardVideoRequest.model_fields.items() if spec.is_required()
)
_SAVE_AS = "save it as UTF-8 CSV (in Excel: CSV UTF-8) with a header row"
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
# The audio column's words; an empty cell leaves audio to the provider's default.
AUDIO_VALUES = {
    "on": True,
    "off": False,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
}
_OPTIONS_FORM = '{"loop": true} (in a CSV cell: "{""loop"": true}", quotes doubled)'


def parse_audio(text: str) -> bool | None:
    """An audio cell or argument: on/off, true/false, yes/no, 1/0 (any case), or empty for the
    provider's default. Raises ValueError naming the allowed values."""
    value = text.strip().lower()
    if not value:
        return None
    if value not in AUDIO_VALUES:
        raise ValueError(
            f"audio: {text.strip()!r} is not a switch; allowed: {', '.join(AUDIO_VALUES)}, "
            "or empty for the provider's default"
        )
    return AUDIO_VALUES[value]


def parse_options(text: str) -> dict[str, Any]:
    """An options cell or argument: a JSON object of the provider's own settings, or empty.
    Raises ValueError saying how to write one."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"options: not valid JSON ({e.msg} at character {e.pos + 1}); write a JSON object "
            f"such as {_OPTIONS_FORM}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"options: must be a JSON object of option names and values, not a JSON "
            f"{type(value).__name__}; for example {_OPTIONS_FORM}"
        )
    return value


# The rows are plain dataclasses, made once from values validated already: as pydantic models,
# making them was a quarter of validating a 100,000-row CSV (py-spy), and the batch model then
# checked each again; as dataclasses the whole took 1.2-1.5 s against 1.7-2.2 (issue 10).
# Nothing serialises them; a batch's jobs travel as `sceneflow.jobs` models.
@dataclass(frozen=True, slots=True)
class PromptRow:
    row_number: int
    row_id: str | None
    provider: str
    request: StandardVideoRequest
    occurrence: int = 0
    warnings: list[str] = field(default_factory=list)


class RowProblem(BaseModel):
    row_number: int
    row_id: str | None
    provider: str | None
    problems: list[str]
    prompt: str | None = None

    def message(self) -> str:
        return f"row {self.row_number}: " + "; ".join(self.problems)


@dataclass(frozen=True, slots=True)
class PromptBatch:
    rows: list[PromptRow]
    problems: list[RowProblem]


def _and(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _row_at(text: str, index: int) -> int:
    """The spreadsheet row of the character at `index`: line breaks inside a quoted cell (a
    multi-line prompt) stay in their row. The header is row 1."""
    outside_quotes = text[:index].split('"')[0::2]
    return 1 + sum(part.count("\n") for part in outside_quotes)


def _read_bytes(source: str) -> bytes:
    try:
        if "://" not in source or source.startswith("file://"):
            return Path(source.removeprefix("file://")).read_bytes()
        with fsspec.open(source, "rb") as fh:
            return bytes(fh.read())
    except FileNotFoundError as e:
        raise ConfigError(f"Prompt CSV not found: {source}. Pass an existing file or URL.") from e
    except IsADirectoryError as e:
        raise ConfigError(f"The prompt CSV {source} is a folder; pass a CSV file.") from e
    except OSError as e:
        reason = " ".join(str(e.strerror or e).split())
        raise ConfigError(
            f"Cannot read the prompt CSV {source} ({reason}); pass a file you can read."
        ) from e


def _decode(raw: bytes, source: str) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"The prompt CSV {source} is UTF-16 text; {_SAVE_AS}.")
    # Excel writes a UTF-8 byte order mark; it is not part of the first column's name.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        row = _row_at(raw[: e.start].decode("utf-8"), e.start)
        raise ConfigError(
            f"The prompt CSV {source} is not UTF-8: row {row} has the byte "
            f"0x{raw[e.start]:02x}, which UTF-8 does not allow (Latin-1 or Windows-1252 "
            f"text?); {_SAVE_AS}."
        ) from None
    # One line break, so a row number is one count; quoted multi-line prompts keep theirs.
    return text.replace("\r\n", "\n")


def _check_header_line(text: str, source: str) -> None:
    """What the header alone shows: another delimiter than comma, or a column named twice."""
    first = text.split("\n", 1)[0]
    header = next(csv.reader([first], skipinitialspace=True), [])
    if len(header) == 1:
        for sep, name in _DELIMITERS.items():
            if sep in header[0]:
                raise ConfigError(
                    f"The prompt CSV {source} looks {name}-delimited (its header is one column: "
                    f"{header[0][:80]!r}); save it with commas between the columns."
                )
    names = Counter(h.strip().lower() for h in header)
    twice = [name for name, count in names.items() if count > 1 and name]
    if twice:
        raise ConfigError(
            f"The prompt CSV {source} names the column(s) {', '.join(twice)} more than once in "
            "its header; keep one of each."
        )


def read_csv_text(source: str) -> pd.DataFrame:
    """A path or any fsspec URL; every cell as text, empty cells as empty strings.

    Raises ConfigError, in one line, for what makes the whole file unusable: missing, empty,
    not UTF-8 (naming the row), NUL bytes (naming the row), another delimiter than comma, no
    prompt rows. A UTF-8 byte order mark, CRLF line ends and quoted multi-line cells are fine.
    """
    text = _decode(_read_bytes(source), source)
    empty = ConfigError(
        f"The prompt CSV {source} is empty: write a header row ({', '.join(REQUIRED_COLUMNS)}, "
        "and any optional columns) and one row per video."
    )
    if not text.strip():
        raise empty
    nul = text.find("\x00")
    if nul >= 0:
        raise ConfigError(
            f"The prompt CSV {source} has a NUL byte in row {_row_at(text, nul)}, so it is not "
            f"CSV text; {_SAVE_AS}."
        )
    _check_header_line(text, source)
    try:
        # As bytes: from text, pandas encodes it back to UTF-8 a chunk at a time, which made
        # reading 100,000 rows 142 ms against 111 ms (issue 10).
        frame = pd.read_csv(
            io.BytesIO(text.encode()), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise empty from None
    except pd.errors.ParserError as e:
        detail = " ".join(str(e).split())
        m = _FIELD_COUNT.search(detail)
        if m:
            expected, row, saw = m.groups()
            detail = f"row {row} has {saw} cells but the header has {expected}"
        raise ConfigError(
            f"Cannot read {source} as CSV: {detail}; put quotes around cells that contain "
            f"commas, or {_SAVE_AS}."
        ) from None
    if frame.empty:
        raise ConfigError(
            f"The prompt CSV {source} has a header but no prompt rows: add one row per video "
            "below the header."
        )
    return frame


def check_columns(columns: Iterable[Any]) -> list[str]:
    """The header, normalised; raises one ConfigError naming unknown and missing columns."""
    names = [str(c).strip().lower() for c in columns]
    allowed = set(StandardVideoRequest.model_fields) | set(EXTRA_COLUMNS)
    unknown = [c for c in names if c not in allowed]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    problems = []
    if unknown:
        problems.append(
            f"Unknown column(s) {', '.join(unknown)}. Allowed columns: "
            f"{', '.join(sorted(allowed))}."
        )
    if missing:
        problems.append(
            f"The CSV has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}: "
            f"every row needs {_and(REQUIRED_COLUMNS)}; the other columns are optional."
        )
    if problems:
        raise ConfigError(" ".join(problems))
    return names


def parse_prompts(
    frame: pd.DataFrame,
    *,
    default_provider: str,
    provider_check: Callable[[str, StandardVideoRequest], list[str]],
    strict: bool = False,
) -> PromptBatch:
    """Validate every row in one pass. `provider_check(provider, request)` raises
    RequestValidationError / UnknownProviderError for what the provider cannot do, and returns
    warnings. With `strict`, a row the provider would run without a field it set is a bad row
    too (`sceneflow.providers.strict_problems`). Bad rows are collected, never raised."""
    # Every row leaves a few objects alive, and the cycle collector went over all of them again
    # and again as they piled up: a quarter of validating 100,000 rows (issue 10). It waits
    # until they are all made; any cycle among them is collected then.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse_prompts(frame, default_provider, provider_check, strict)
    finally:
        if collecting:
            gc.enable()


class _Occurrences:
    """How many earlier rows asked the same provider for the same request: rows without an id
    tell their jobs apart by it (`sceneflow.jobs.ledger.idempotency_key`).

    Equal requests have equal prompts, so a request's JSON is made only when a second row with
    its provider and prompt comes. A CSV's prompts mostly differ, and dumping every row to
    count it was a seventh of validating 100,000 rows (py-spy, issue 10)."""

    def __init__(self) -> None:
        # (provider, prompt): the first such row's request, and once a second comes, how many
        # rows had each request JSON.
        self._seen: dict[tuple[str, str], StandardVideoRequest | Counter[str]] = {}

    def count(self, provider: str, request: StandardVideoRequest) -> int:
        key = (provider, request.prompt)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = request
            return 0
        if isinstance(seen, StandardVideoRequest):
            seen = self._seen[key] = Counter([seen.model_dump_json()])
        signature = request.model_dump_json()
        occurrence = seen[signature]
        seen[signature] += 1
        return occurrence


def _stripped(column: pd.Series) -> list[str]:
    """A column's cells without surrounding whitespace; a missing cell (NaN) is empty."""
    return [v.strip() if isinstance(v, str) else "" for v in column.tolist()]


def _parse_prompts(
    frame: pd.DataFrame,
    default_provider: str,
    provider_check: Callable[[str, StandardVideoRequest], list[str]],
    strict: bool,
) -> PromptBatch:
    frame.columns = check_columns(frame.columns)
    rows: list[PromptRow] = []
    problems: list[RowProblem] = []
    seen_ids: dict[str, int] = {}
    occurrences = _Occurrences()
    columns = list(frame.columns)
    # Columns as lists and rows as tuples: DataFrame.to_dict(orient="records") boxed every
    # cell through pandas and took about a third of validating a 100,000-row CSV. Each
    # column is stripped in one pass, not cell by cell in every row's dict.
    for index, values in enumerate(zip(*(_stripped(frame[c]) for c in columns), strict=True)):
        row_number = index + 2
        fields: dict[str, Any] = {k: v for k, v in zip(columns, values, strict=True) if v}
        row_id = fields.pop("id", None)
        provider = fields.pop("provider", None) or default_provider
        errors: list[str] = []
        if row_id is not None:
            if row_id in seen_ids:
                errors.append(
                    f"id: {row_id!r} is already used by row {seen_ids[row_id]}; ids must be unique"
                )
            seen_ids.setdefault(row_id, row_number)
        for column, parse in (("audio", parse_audio), ("options", parse_options)):
            if column in fields:
                try:
                    fields[column] = parse(fields[column])
                except ValueError as e:
                    errors.append(str(e))
                    fields.pop(column)
        request = None
        try:
            request = StandardVideoRequest.model_validate(fields)
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
            else:
                if strict:
                    errors.extend(strict_problems(warnings))
        if errors or request is None:
            problems.append(
                RowProblem(
                    row_number=row_number,
                    row_id=row_id,
                    provider=provider,
                    problems=errors,
                    prompt=fields.get("prompt"),
                )
            )
            continue
        rows.append(
            PromptRow(
                row_number=row_number,
                row_id=row_id,
                provider=provider,
                request=request,
                occurrence=occurrences.count(provider, request),
                warnings=warnings,
            )
        )
    return PromptBatch(rows=rows, problems=problems)
