"""Ctrl-C in `sceneflow batch`, sent as a terminal sends it: SIGINT to the whole process group.

The first one stops the batch within seconds with exit code 130 and a results.csv that names
every row; the rows in flight keep their jobs, and a re-run completes them without paying for
any row twice. A second one exits at once. Either way no local Prefect API is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from sqlmodel import select

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.models import JobStatus

ROWS = 8
CSV = "id,prompt,aspect_ratio,motion_intensity,duration,resolution,fps,seed\n" + "".join(
    f"r{i},Scene {i} with drifting red lights,16:9,{i % 7 + 3},3,640x360,24,{i}\n"
    for i in range(ROWS)
)
# Generous bounds: they tell "within seconds" from the minutes this used to take.
EXIT_AFTER_SIGINT = 30
EXIT_AFTER_SECOND_SIGINT = 10


def _batch(home: Path, source: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "SCENEFLOW_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    for name in ("DATABASE_URL", "PREFECT_API_URL"):
        env.pop(name, None)
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "sceneflow"),
            "batch",
            str(source),
            "--user",
            "ctrlc",
            "--output",
            str(out),
            "--max-concurrency",
            "2",
        ],  # fmt: skip
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group, which the test signals as a terminal would
    )


def _jobs() -> list[store.GenerationJob]:
    with session_scope() as session:
        return list(session.exec(select(store.GenerationJob)))


def _server_pid(home: Path) -> int:
    [pid_file] = (home / "local-api").glob("*.json")
    return int(json.loads(pid_file.read_text())["pid"])


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"  # gone meanwhile


# Not GENERATED: a local video is saved within milliseconds of that, so a signal sent then could
# find both lanes between rows (recording the one just done), with none in flight. QUEUED with a
# provider id is a job accepted and waiting for its first poll.
def _in_flight(job: store.GenerationJob) -> bool:
    return job.status in (JobStatus.SUBMITTING, JobStatus.PROCESSING) or bool(
        job.status == JobStatus.QUEUED and job.provider_job_id
    )


def _wait_for_a_completed_row(batch: subprocess.Popen[bytes], home: Path, log: Path) -> int:
    """Wait until the batch is mid-run, a row completed and one in flight (both lanes may end
    a row at the same moment, and then none is in flight until their next rows start);
    returns its local API's pid."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and batch.poll() is None:
        if (home / "sceneflow.db").exists():
            jobs = _jobs()
            if any(j.status == JobStatus.COMPLETED for j in jobs) and any(map(_in_flight, jobs)):
                break
        time.sleep(0.05)
    assert batch.poll() is None, log.read_text()
    return _server_pid(home)


def _exit_code_within(batch: subprocess.Popen[bytes], seconds: float, log: Path) -> int:
    try:
        return batch.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(batch.pid, signal.SIGKILL)
        batch.wait()
        raise AssertionError(f"still running {seconds} s after SIGINT\n{log.read_text()}") from None


def test_first_ctrl_c_records_every_row_and_a_rerun_resumes_without_paying_twice(
    tmp_path: Path, sceneflow_env: Path
) -> None:
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    out, log = tmp_path / "out", tmp_path / "batch.log"
    first = _batch(sceneflow_env, source, out, log)
    try:
        server = _wait_for_a_completed_row(first, sceneflow_env, log)
        os.killpg(first.pid, signal.SIGINT)
        sent = time.monotonic()
        assert _exit_code_within(first, EXIT_AFTER_SIGINT, log) == 130, log.read_text()
        took = time.monotonic() - sent
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    print(f"exit {took:.1f} s after SIGINT")
    output = log.read_text()
    assert "Interrupted:" in output and "Traceback" not in output, output
    # Of every row, though the rows whose groups never started have no job yet.
    assert f"of {ROWS} rows completed" in output, output
    assert not _alive(server), "the local Prefect API stops with the command"
    assert list((sceneflow_env / "local-api").glob("*.json")) == []

    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    assert sorted(results["id"]) == sorted(f"r{i}" for i in range(ROWS)), output
    completed = results[results["status"] == JobStatus.COMPLETED]
    in_flight = results[results["error"] == "interrupted; a re-run resumes it"]
    not_started = results[results["error"].str.startswith("not started")]
    assert 1 <= len(completed) < ROWS
    assert len(in_flight) >= 1, results[["id", "status", "error"]]
    assert len(completed) + len(in_flight) + len(not_started) == ROWS
    assert set(not_started["status"]) <= {JobStatus.QUEUED}
    # Every row that started has its job, so a re-run finds it; a row whose group never
    # started has none yet (its group prepares it).
    assert all(results[results["error"] == "interrupted; a re-run resumes it"]["job_id"])
    assert all(completed["job_id"])
    with_ids = in_flight[in_flight["status"] != JobStatus.QUEUED]
    assert all(with_ids["provider_job_id"])  # a job the provider has keeps its id

    second = _batch(sceneflow_env, source, out, log)
    assert second.wait(timeout=300) == 0, log.read_text()
    jobs = _jobs()
    assert len(jobs) == ROWS and all(j.status == JobStatus.COMPLETED for j in jobs)
    # The rows in flight were resumed, not sent again: one job per row at the provider.
    assert set(results["job_id"]) - {""} <= {j.id for j in jobs}
    with session_scope() as session:
        attempts = list(session.exec(select(store.GenerationAttempt)))
    # A send is recorded with the id it got, in one transaction; one cut off before that is
    # found by the re-run's lookup instead.
    sends = [a for a in attempts if a.operation == "submit" and a.outcome == "ok"]
    found = [a for a in attempts if a.operation == "lookup" and a.detail.startswith("found ")]
    assert len(sends) + len(found) == ROWS  # nobody paid twice
    assert len(list((sceneflow_env / "local" / "jobs").iterdir())) == ROWS
    rerun = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    assert set(rerun["status"]) == {JobStatus.COMPLETED}


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, sceneflow_env: Path) -> None:
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    log = tmp_path / "batch.log"
    batch = _batch(sceneflow_env, source, tmp_path / "out", log)
    try:
        server = _wait_for_a_completed_row(batch, sceneflow_env, log)
        os.killpg(batch.pid, signal.SIGINT)
        time.sleep(0.2)
        os.killpg(batch.pid, signal.SIGINT)
        assert _exit_code_within(batch, EXIT_AFTER_SECOND_SIGINT, log) == 130, log.read_text()
    finally:
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
            batch.wait()
    deadline = time.monotonic() + 5
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server), "no local Prefect API is left behind"
