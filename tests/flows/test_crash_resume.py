"""A batch killed with SIGKILL mid-run, then run again, completes every row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import select

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.media import verify_video
from sceneflow.models import JobStatus

ROWS = 6
CSV = "id,prompt,aspect_ratio,motion_intensity,duration,resolution,fps,seed\n" + "".join(
    f"r{i},Scene {i} with drifting red lights,16:9,{i + 3},3,640x360,24,{i}\n" for i in range(ROWS)
)


def _batch(home: Path, source: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"SCENEFLOW_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    env.pop("DATABASE_URL", None)
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "sceneflow"),
            "batch",
            str(source),
            "--user",
            "crash",
            "--output",
            str(out),
            "--max-concurrency",
            "1",
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _jobs() -> list[store.GenerationJob]:
    with session_scope() as session:
        return list(session.exec(select(store.GenerationJob)))


def test_sigkill_mid_batch_then_rerun_completes_every_row_once(tmp_path: Path, sceneflow_env: Path):
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    out, log = tmp_path / "out", tmp_path / "batch.log"
    first = _batch(sceneflow_env, source, out, log)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and first.poll() is None:
            db = sceneflow_env / "sceneflow.db"
            if db.exists() and any(j.status == JobStatus.COMPLETED for j in _jobs()):
                break
            time.sleep(0.2)
        assert first.poll() is None, log.read_text()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished = sum(j.status == JobStatus.COMPLETED for j in _jobs())
    assert 1 <= finished < ROWS, f"the kill must land mid-batch\n{log.read_text()}"

    second = _batch(sceneflow_env, source, out, log)
    assert second.wait(timeout=300) == 0, log.read_text()

    jobs = _jobs()
    assert len(jobs) == ROWS and all(j.status == JobStatus.COMPLETED for j in jobs)
    with session_scope() as session:
        attempts = list(session.exec(select(store.GenerationAttempt)))
    # A send is recorded with the id it got, in one transaction; one whose run died before that
    # is found by the re-run's lookup instead.
    sends = [a for a in attempts if a.operation == "submit" and a.outcome == "ok"]
    found = [a for a in attempts if a.operation == "lookup" and a.detail.startswith("found ")]
    assert len(sends) + len(found) == ROWS  # nobody paid twice
    assert len(list((sceneflow_env / "local" / "jobs").iterdir())) == ROWS
    for job in jobs:
        verify_video(Path(job.output_path), expected_duration=3)  # type: ignore[arg-type]
