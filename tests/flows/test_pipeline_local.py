"""The pipeline end to end with the built-in local provider, under Prefect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.batch import generate_batch
from flows.generate import generate_video
from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.media import probe_video
from sceneflow.models import JobStatus, StandardVideoRequest

pytestmark = pytest.mark.usefixtures("prefect_harness")

GOOD = "prompt,aspect_ratio,motion_intensity,duration,resolution,fps,seed"
CSV = f"""id,{GOOD}
a,Blue ocean waves,16:9,3,1,160x90,12,1
b,Bad ratio and motion,5:4,11,1,160x90,12,1
c,Green forest path,9:16,5,1,90x160,12,2
d,,16:9,3,1,160x90,12,1
e,=HYPERLINK("http://evil"),16:9,3,1,160x90,12,3
"""


def submits() -> int:
    with session_scope() as session:
        from sqlmodel import select

        attempts = session.exec(select(store.GenerationAttempt)).all()
        return sum(a.operation == "submit" and a.outcome == "ok" for a in attempts)


async def test_one_video_has_the_duration_size_and_fps_it_asked_for(tmp_path: Path):
    request = StandardVideoRequest(
        prompt="Orange sunset over calm water",
        aspect_ratio="16:9",
        motion_intensity=6,
        duration=2,
        resolution="320x180",
        fps=15,
        seed=4,
    )
    result = await generate_video("u1", "local", request, output_dir=str(tmp_path))
    assert result.status == JobStatus.COMPLETED
    info = probe_video(Path(result.output_path))
    assert (info.width, info.height, info.fps) == (320, 180, 15)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.codec == "h264"


async def test_bad_rows_are_reported_and_good_rows_complete(tmp_path: Path):
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    out = tmp_path / "out"
    summary = await generate_batch(str(source), "u1", output_dir=str(out), max_concurrency=2)
    assert (summary.completed, summary.failed, summary.invalid) == (3, 0, 2)
    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    by_id = {row["id"]: row for _, row in results.iterrows()}
    bad = by_id["b"]
    assert bad["row_number"] == "3" and bad["status"] == "INVALID"
    assert "aspect_ratio: must be one of" in bad["error"]
    assert "motion_intensity: Input should be less than or equal to 10" in bad["error"]
    assert by_id["d"]["row_number"] == "5" and "prompt:" in by_id["d"]["error"]
    for row_id in "ace":
        assert by_id[row_id]["status"] == "COMPLETED"
        assert Path(by_id[row_id]["output_path"]).is_file()
        # A poster from the downloaded file sits beside the video.
        poster = Path(by_id[row_id]["poster"])
        assert poster.parent == out and poster.suffix == ".jpg" and poster.stat().st_size > 0
    assert any("row 3: aspect_ratio" in f for f in summary.failures)
    # The gallery beside results.csv has a card for every row, bad ones included.
    assert summary.gallery == str(out / "index.html")
    page = (out / "index.html").read_text()
    assert page.count('<article class="card') == 5 and "aspect_ratio: must be one of" in page
    # CSV injection: the prompt cell never reaches results.csv as a live formula.
    assert all(not cell.startswith("=") for cell in results.to_numpy().ravel())


async def test_rerunning_the_same_csv_submits_nothing_new(tmp_path: Path, sceneflow_env: Path):
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    out = str(tmp_path / "out")
    first = await generate_batch(str(source), "u1", output_dir=out)
    assert first.completed == 3 and submits() == 3
    second = await generate_batch(str(source), "u1", output_dir=out)
    assert second.completed == 3
    rerun = pd.read_csv(Path(out) / "results.csv", dtype=str, keep_default_na=False)
    assert set(rerun[rerun["status"] == "COMPLETED"]["duration"]) == {"1.0"}
    assert submits() == 3
    assert len(list((sceneflow_env / "local" / "jobs").iterdir())) == 3
    # Videos deleted since are fetched again from the provider's finished jobs, unpaid.
    import shutil

    shutil.rmtree(out)
    fetched = await generate_batch(str(source), "u1", output_dir=out)
    assert fetched.completed == 3 and submits() == 3
    assert len(list(Path(out).glob("*.mp4"))) == 3
    # Rows asked for by name are generated again; the others are reused.
    third = await generate_batch(str(source), "u1", output_dir=out, regenerate=["a", "e"])
    assert third.completed == 3 and submits() == 5


async def test_a_failed_row_is_retried_on_rerun_and_others_are_not(tmp_path: Path):
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    out = str(tmp_path / "out")
    await generate_batch(str(source), "u1", output_dir=out)
    with session_scope() as session:
        job = next(
            j
            for j in store.jobs_for_batch(session=session, batch_id=_batch(session))
            if j.row_number == 2
        )
        store.update_job(
            session=session, job_id=job.id, status=JobStatus.FAILED.value, error="boom"
        )
    again = await generate_batch(str(source), "u1", output_dir=out)
    assert again.completed == 3 and submits() == 4


def _batch(session) -> str:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    return session.exec(select(store.GenerationJob.batch_id)).first()
