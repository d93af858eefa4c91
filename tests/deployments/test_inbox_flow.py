"""The scheduled inbox: each dropped CSV is claimed by exactly one run and filed under done/ or
failed/ with its results. The flow is called directly instead of waiting for cron."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from flows.inbox import process_inbox
from sceneflow import inbox, store
from sceneflow.db import session_scope


def tiny_csv(rows: list[str]) -> str:
    """id,prompt rows rendered as 160x90, 1 s, 6 fps videos by the local provider."""
    lines = ["id,prompt,resolution,duration,fps,aspect_ratio,motion_intensity"]
    lines += [f"{row},160x90,1,6,16:9,3" for row in rows]
    return "\n".join(lines) + "\n"


def jobs_of(user_id: str) -> list[store.GenerationJob]:
    with session_scope() as session:
        stmt = select(store.GenerationJob).where(store.GenerationJob.user_id == user_id)
        return list(session.exec(stmt))


@pytest.mark.usefixtures("prefect_harness")
async def test_a_dropped_csv_is_processed_exactly_once_and_filed_with_its_results(
    tmp_path: Path,
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    (box / "shots.csv").write_text(tiny_csv(["a,A red kite", "b,A blue boat"]))
    (box / "readme.txt").write_text("not a CSV, left alone")
    out = tmp_path / "out"

    first = await process_inbox(str(box), "inbox-user", output_dir=str(out), settle_seconds=0)

    assert [(f.name, f.outcome, f.completed) for f in first.files] == [("shots.csv", "done", 2)]
    filed = Path(first.files[0].folder)
    assert filed.parent == box / "done"
    assert (filed / "shots.csv").read_text() == tiny_csv(["a,A red kite", "b,A blue boat"])
    results = pd.read_csv(filed / "results.csv")
    assert list(results["id"]) == ["a", "b"]
    assert set(results["status"]) == {"COMPLETED"}
    for video in results["output_path"]:
        assert Path(video).is_file() and Path(video).is_relative_to(out / filed.name)
    assert not (box / "shots.csv").exists()
    assert list((box / "processing").iterdir()) == []
    assert (box / "readme.txt").exists()

    second = await process_inbox(str(box), "inbox-user", output_dir=str(out), settle_seconds=0)
    assert second.files == []
    jobs = jobs_of("inbox-user")
    assert len(jobs) == 2 and {j.attempts for j in jobs} == {1}


@pytest.mark.usefixtures("prefect_harness")
async def test_a_broken_csv_goes_to_failed_with_an_explanation(tmp_path: Path) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    (box / "broken.csv").write_text("prompt,colour\nA cat,red\n")
    (box / "half.csv").write_text(tiny_csv(["ok,A calm lake", "bad,"]))

    summary = await process_inbox(
        str(box), "inbox-user-2", output_dir=str(tmp_path / "out"), settle_seconds=0
    )

    outcomes = {f.name: f for f in summary.files}
    assert {n: f.outcome for n, f in outcomes.items()} == {
        "broken.csv": "failed",
        "half.csv": "failed",
    }
    broken = Path(outcomes["broken.csv"].folder)
    assert broken.parent == box / "failed"
    assert (broken / "broken.csv").read_text() == "prompt,colour\nA cat,red\n"
    explanation = (broken / "error.txt").read_text()
    assert explanation.startswith("broken.csv could not be processed: Unknown column(s) colour.")
    half = Path(outcomes["half.csv"].folder)
    assert "1 of 2 rows did not complete" in (half / "error.txt").read_text()
    assert "row 3: prompt:" in (half / "error.txt").read_text()
    results = pd.read_csv(half / "results.csv")
    assert dict(zip(results["id"], results["status"], strict=True)) == {
        "ok": "COMPLETED",
        "bad": "INVALID",
    }
    assert sorted(p.name for p in box.iterdir()) == ["done", "failed", "processing"]


def test_overlapping_runs_claim_every_file_exactly_once(tmp_path: Path) -> None:
    inbox.prepare(tmp_path)
    for n in range(40):
        (tmp_path / f"f{n:02d}.csv").write_text("prompt\nx\n")
    claims: list[inbox.Claim] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        for path in inbox.pending(tmp_path):
            found = inbox.claim(path)
            if found is not None:
                claims.append(found)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.name for c in claims) == [f"f{n:02d}.csv" for n in range(40)]
    assert len({c.path for c in claims}) == 40
    assert all(c.path.is_file() for c in claims)
    assert inbox.pending(tmp_path) == []


def test_files_still_being_written_wait_for_the_next_run(tmp_path: Path) -> None:
    inbox.prepare(tmp_path)
    (tmp_path / "fresh.csv").write_text("prompt\nx\n")
    assert inbox.pending(tmp_path, settle_seconds=60) == []
    assert [p.name for p in inbox.pending(tmp_path, settle_seconds=0)] == ["fresh.csv"]
