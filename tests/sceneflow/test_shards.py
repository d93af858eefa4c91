"""Splitting a prompt CSV into shards and merging the shards' results back, with the original
row numbers and an id for every row."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from sceneflow.errors import ConfigError
from sceneflow.shards import merge_results, split_prompts


def frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def test_shards_are_contiguous_near_equal_and_every_row_gets_an_id() -> None:
    rows = "".join(f",prompt {n}\n" if n % 2 else f"x{n},prompt {n}\n" for n in range(7))
    shards = split_prompts(frame("id,prompt\n" + rows), 3)
    assert [(s.index, s.first_row, s.rows) for s in shards] == [(0, 2, 3), (1, 5, 2), (2, 7, 2)]
    first = frame(shards[0].csv_text)
    assert list(first["id"]) == ["x0", "row-3", "x2"]
    assert list(frame(shards[2].csv_text)["prompt"]) == ["prompt 5", "prompt 6"]


def test_a_csv_without_an_id_column_gets_one_and_tiny_csvs_get_fewer_shards() -> None:
    shards = split_prompts(frame("prompt\na\nb\n"), 5)
    assert len(shards) == 2
    assert frame(shards[1].csv_text).to_dict(orient="records") == [{"id": "row-3", "prompt": "b"}]


def test_errors_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match=r"id\(s\) row-3 are already used by other rows"):
        split_prompts(frame("id,prompt\nrow-3,a\n,b\n"), 2)
    with pytest.raises(ConfigError, match="shards must be at least 1, not 0"):
        split_prompts(frame("prompt\na\n"), 0)
    with pytest.raises(ConfigError, match="has no rows"):
        split_prompts(frame("prompt\n"), 2)


def test_merged_results_carry_the_original_row_numbers() -> None:
    shards = split_prompts(frame("prompt\na\nb\nc\nd\ne\n"), 2)
    parts = [
        (shard, f"id,row_number,status\n{shard.index}a,2,COMPLETED\n{shard.index}b,3,FAILED\n")
        for shard in shards
    ]
    records, text = merge_results(parts)
    assert [r.row_number for r in records] == [2, 3, 5, 6]
    merged = frame(text)
    assert list(merged["row_number"]) == ["2", "3", "5", "6"]
    assert list(merged["id"]) == ["0a", "0b", "1a", "1b"]
