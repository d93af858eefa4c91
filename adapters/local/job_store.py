"""The local provider's jobs on disk: one folder per job under `$SCENEFLOW_HOME/local/jobs/`.

A job folder holds request.json (written at submit), progress.json (frames done), attempts.json
(renders started), output.mp4, final.json (the outcome, written once) and `lock`, an flock held
by whichever thread renders the job. The kernel drops an flock even on SIGKILL, so a free lock
on an unfinished job means no render owns it, in any process. Every write is atomic (a temporary
file, then a rename or link), so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sceneflow.errors import NotFoundError
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.settings import get_settings

__all__ = [
    "claim",
    "count_attempt",
    "create",
    "finish",
    "find",
    "jobs_dir",
    "lock_is_held",
    "progress_reporter",
    "read_json",
    "write_json",
]

_JOB_ID = re.compile(r"^loc_[0-9a-f]{32}$")


def jobs_dir() -> Path:
    return get_settings().home / "local" / "jobs"


def create(request: StandardVideoRequest, reference: str | None = None) -> Path:
    """A new job folder holding the request and the caller's reference for the send. It is
    built under a temporary name and renamed into place, so a job either exists whole or not
    at all, and `find_by_reference` can trust what it sees."""
    name = f"loc_{uuid.uuid4().hex}"
    building = jobs_dir() / f".{name}"
    building.mkdir(parents=True)
    (building / "request.json").write_text(request.model_dump_json())
    if reference:
        (building / "reference.txt").write_text(reference)
    job = jobs_dir() / name
    os.rename(building, job)
    return job


def find_by_reference(reference: str) -> list[str]:
    """Ids of the jobs created for `reference`, newest first."""
    found = []
    for job in jobs_dir().glob("loc_*"):
        mark = job / "reference.txt"
        if mark.is_file() and mark.read_text() == reference:
            found.append((mark.stat().st_mtime, job.name))
    return [name for _, name in sorted(found, reverse=True)]


def find(provider_job_id: str) -> Path:
    """The folder of an existing job; NotFoundError for any other id (including paths)."""
    job = jobs_dir() / provider_job_id
    if not _JOB_ID.match(provider_job_id) or not (job / "request.json").is_file():
        raise NotFoundError(
            f"local: no job {provider_job_id!r} in {jobs_dir()}; local job ids look "
            "like loc_<32 hex digits> and live in SCENEFLOW_HOME/local/jobs"
        )
    return job


def _writer() -> str:
    """Unique among every thread of every process writing to the jobs directory."""
    return f"{os.getpid()}.{threading.get_ident()}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{_writer()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def finish(job: Path, status: JobStatus, **details: Any) -> bool:
    """Record the outcome once: the first of render, cancel or failure wins (link is atomic)."""
    tmp = job / f".final.{_writer()}.tmp"
    tmp.write_text(json.dumps({"status": status.value, **details}))
    try:
        os.link(tmp, job / "final.json")
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def count_attempt(job: Path) -> int:
    """Add one to the job's render attempts and return the new count."""
    attempts = int((read_json(job / "attempts.json") or {}).get("n", 0)) + 1
    write_json(job / "attempts.json", {"n": attempts})
    return attempts


def lock_is_held(job: Path) -> bool:
    fd = os.open(job / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return False


@contextmanager
def claim(job: Path) -> Iterator[bool]:
    """Hold the job's lock for the block; yields False if another render owns the job."""
    fd = os.open(job / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        # A `status` probe holds the lock for microseconds; only a lock held this long means
        # another render owns the job, and that render will write the outcome.
        for _ in range(5):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.02)
        else:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def progress_reporter(job: Path) -> Callable[[int, int], bool]:
    """Report frames done to progress.json (at most every 0.1 s); say stop once cancelled."""
    started, last = time.time(), 0.0

    def on_frame(done: int, total: int) -> bool:
        nonlocal last
        if done == total or time.monotonic() - last > 0.1:
            last = time.monotonic()
            write_json(job / "progress.json", {"frames": done, "total": total, "started": started})
        return not (job / "final.json").exists()

    return on_frame
