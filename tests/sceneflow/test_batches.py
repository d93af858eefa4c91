"""Batch records, ids, summaries and results.csv: plain functions, no Prefect."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from sceneflow.batches import (
    ResultRecord,
    batch_id_for,
    invalid_record,
    results_csv,
    row_record,
    summarize_batch,
)
from sceneflow.jobs.ledger import JobRef, JobSummary
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.prompts import PromptRow, RowProblem
from sceneflow.shards import Shard, merge_results

REQUEST = StandardVideoRequest(prompt="A red kite", aspect_ratio="16:9", motion_intensity=4)


def _summary(status: JobStatus, error: str | None = None) -> JobSummary:
    return JobSummary(
        job_id="j1",
        row_number=2,
        provider="runway",
        status=status,
        provider_job_id="task-9",
        progress=100,
        output_path="/out/a.mp4" if status == JobStatus.COMPLETED else None,
        error=error,
        attempts=1,
        cost=5.0,
        request=REQUEST.model_dump(),
        submitted_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        finished_at=datetime(2026, 12, 1, 9, 1, tzinfo=UTC),
    )


def test_a_batch_is_one_csv_of_one_user() -> None:
    assert batch_id_for("/data/a.csv", "ann") == batch_id_for("/data/a.csv", "ann")
    assert batch_id_for("/data/a.csv", "ann") != batch_id_for("/data/a.csv", "bob")
    assert batch_id_for("/data/a.csv", "ann") != batch_id_for("/data/b.csv", "ann")


def test_records_carry_the_row_and_the_job() -> None:
    row = PromptRow(row_number=2, row_id="kite", provider="runway", request=REQUEST, warnings=["w"])
    done = JobRef(
        job_id="j1",
        idempotency_key="k",
        generation=0,
        provider="runway",
        status=JobStatus.COMPLETED,
        duration=5.0,
        poster="/out/kite.jpg",
    )
    record = row_record(row, _summary(JobStatus.COMPLETED), done)
    assert (record.poster, record.prompt) == ("/out/kite.jpg", "A red kite")
    assert record.model_dump(
        include={"id", "status", "provider_job_id", "duration", "warnings"}
    ) == {
        "id": "kite",
        "status": "COMPLETED",
        "provider_job_id": "task-9",
        "duration": 5.0,
        "warnings": "w",
    }
    bad = invalid_record(
        RowProblem(row_number=3, row_id=None, provider="luma", problems=["a", "b"])
    )
    assert (bad.status, bad.error, bad.row_number) == ("INVALID", "a; b", 3)


def test_the_summary_counts_and_lists_what_did_not_complete_in_row_order() -> None:
    records = [
        ResultRecord(row_number=4, status="FAILED", error="moderated"),
        ResultRecord(row_number=2, status="COMPLETED"),
        ResultRecord(row_number=3, status="INVALID", error="prompt: must not be blank"),
    ]
    summary = summarize_batch("b1", records, results_csv="r.csv", output_dir="out")
    assert (summary.total, summary.completed, summary.failed, summary.invalid) == (3, 1, 1, 1)
    assert summary.failures == ["row 3: prompt: must not be blank", "row 4: moderated"]


def test_results_csv_keeps_whole_numbers_whole_and_neutralises_formulas() -> None:
    records = [
        ResultRecord(row_number=3, status="INVALID", error="=HYPERLINK(1)"),
        ResultRecord(row_number=2, status="COMPLETED", attempts=1, cost=5.0),
    ]
    frame = pd.read_csv(io.StringIO(results_csv(records)), dtype=str, keep_default_na=False)
    assert frame["row_number"].tolist() == ["2", "3"]
    assert frame["attempts"].tolist() == ["1", ""]
    assert frame["error"].tolist() == ["", "'=HYPERLINK(1)"]


def test_results_read_back_from_shards_become_records_again() -> None:
    text = results_csv([ResultRecord(row_number=2, status="COMPLETED", attempts=2, duration=5.0)])
    shard = Shard(index=1, first_row=12, rows=1, csv_text="")
    records, merged = merge_results([(shard, text)])
    assert records == [ResultRecord(row_number=12, status="COMPLETED", attempts=2, duration=5.0)]
    assert "\n,12,,,,COMPLETED," in merged


def test_an_output_folder_belongs_to_one_batch(tmp_path: Path) -> None:
    from sceneflow.batches import claim_output_folder
    from sceneflow.errors import ConfigError

    folder = str(tmp_path / "out")
    claim_output_folder(folder, "batch-a")
    claim_output_folder(folder, "batch-a")  # a re-run of the same batch
    with pytest.raises(ConfigError) as e:
        claim_output_folder(folder, "batch-b")
    assert str(e.value) == (
        f"The output folder {folder} holds the videos of batch batch-a, so batch batch-b cannot "
        "write there: pass another --output (one folder per batch), or --batch-id batch-a if "
        "this CSV continues that batch."
    )


def test_video_names_never_collide_within_a_batch() -> None:
    from sceneflow.jobs.download import output_name

    ids = ["a/b", "a_b", "a.b", "x" * 300 + "1", "x" * 300 + "2", "kite", None]
    names = [output_name(f"job{n}", row_id) for n, row_id in enumerate(ids)]
    assert len(set(names)) == len(names)
    assert names[1] == "a_b.mp4" and names[5] == "kite.mp4" and names[6] == "job6.mp4"
    assert all(len(name) <= 80 for name in names)
