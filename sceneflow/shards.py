"""Split a prompt CSV into shards and merge the shards' results. Pure functions, no Prefect.

Shards are contiguous slices, so a shard's row numbers map back to the original CSV by one
offset. Every row gets an id: without one, a row's job is keyed by its request and its
occurrence within the CSV, and two equal rows in different shards would share a job.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from sceneflow.batches import ResultRecord, results_csv
from sceneflow.errors import ConfigError

__all__ = ["Shard", "merge_results", "split_prompts"]

FIRST_ROW = 2  # the header is row 1, as a spreadsheet shows it


@dataclass(frozen=True)
class Shard:
    index: int
    first_row: int
    rows: int
    csv_text: str

    @property
    def offset(self) -> int:
        """Add to a row number in this shard to get the row number in the original CSV."""
        return self.first_row - FIRST_ROW


def _with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    id_column = next((c for c in frame.columns if str(c).strip().lower() == "id"), None)
    if id_column is None:
        id_column = "id"
        frame.insert(0, id_column, "")
    ids = frame[id_column].astype(str).str.strip()
    given = set(ids[ids != ""])
    filled = [value or f"row-{FIRST_ROW + position}" for position, value in enumerate(ids.tolist())]
    clash = sorted(v for v, old in zip(filled, ids.tolist(), strict=True) if not old and v in given)
    if clash:
        raise ConfigError(
            f"Rows without an id are named row-<row number> for sharding, but id(s) "
            f"{', '.join(clash)} are already used by other rows: give every row an id."
        )
    frame[id_column] = filled
    return frame


def split_prompts(frame: pd.DataFrame, shards: int) -> list[Shard]:
    """At most `shards` contiguous shards of near-equal size, each a complete prompt CSV."""
    if shards < 1:
        raise ConfigError(f"shards must be at least 1, not {shards}.")
    if frame.empty:
        raise ConfigError("The prompt CSV has no rows, so there is nothing to shard.")
    frame = _with_ids(frame)
    count = min(shards, len(frame))
    size, extra = divmod(len(frame), count)
    result, start = [], 0
    for index in range(count):
        stop = start + size + (1 if index < extra else 0)
        buf = io.StringIO()
        frame.iloc[start:stop].to_csv(buf, index=False)
        result.append(
            Shard(
                index=index, first_row=FIRST_ROW + start, rows=stop - start, csv_text=buf.getvalue()
            )
        )
        start = stop
    return result


def merge_results(parts: list[tuple[Shard, str]]) -> tuple[list[ResultRecord], str]:
    """The shards' results.csv texts as one set of records (original row numbers) and CSV."""
    records: list[ResultRecord] = []
    for shard, text in parts:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        for cells in frame.to_dict(orient="records"):
            record = ResultRecord.model_validate(cells)
            record.row_number += shard.offset
            records.append(record)
    return records, results_csv(records)
