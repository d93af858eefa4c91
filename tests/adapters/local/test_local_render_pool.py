"""The local render pool: jobs queue for a bounded set of threads, and a render that dies with
its process is resumed by the next status call from any process, at most a few times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.local import render_pool
from adapters.local.adapter import LocalAdapter
from adapters.local.job_store import jobs_dir
from sceneflow.models import JobStatus
from tests.adapters.local.test_local_adapter import (
    NO_CREDS,
    ROOT,
    hashes,
    make,
    req,
    slow_frames,
    wait,
)


async def test_lifecycle_queued_processing_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker and two slow jobs: the second must wait in the queue, then render.
    monkeypatch.setattr(render_pool, "POOL", render_pool.RenderPool(1))
    slow_frames(monkeypatch, 0.02)
    adapter = LocalAdapter()
    first = await adapter.submit(req(duration=2), NO_CREDS)
    second = await adapter.submit(req(duration=2, seed=8), NO_CREDS)
    seen: list[Any] = []
    result = await wait(adapter, second, seen)
    statuses = [s for s, _ in seen]
    assert statuses[0] is JobStatus.QUEUED and statuses[-1] is JobStatus.COMPLETED
    order = [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    progress = [p for s, p in seen if s is JobStatus.PROCESSING]
    assert progress == sorted(progress) and len(set(progress)) >= 3 and progress[-1] < 100
    assert result.progress == 100 and result.provider_details["frames"] == 24
    assert (await wait(adapter, first)).status is JobStatus.COMPLETED


KILLED_RENDER = """
import asyncio, sys, time, json
import adapters.local.renderer as r
from adapters.local.adapter import LocalAdapter
from adapters.local.job_store import jobs_dir
from sceneflow.providers import Credentials
from sceneflow.models import StandardVideoRequest
frame = r.Scene.frame
r.Scene.frame = lambda self, i: (time.sleep(0.05), frame(self, i))[1]
request = StandardVideoRequest.model_validate_json(sys.argv[1])
job_id = asyncio.run(LocalAdapter().submit(request, Credentials({})))
print(job_id, flush=True)
progress = jobs_dir() / job_id / "progress.json"
while not progress.exists() or json.loads(progress.read_text())["frames"] == 0:
    time.sleep(0.01)
print("rendering", flush=True)
time.sleep(120)
"""


async def test_a_new_process_resumes_a_job_whose_renderer_was_killed() -> None:
    request = req(duration=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RENDER, request.model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "rendering"
        adapter = LocalAdapter()
        alive = await adapter.status(job_id, NO_CREDS)
        assert alive.status is JobStatus.PROCESSING and 0 < alive.progress < 100
        assert not render_pool.POOL.owns(jobs_dir() / job_id)  # the other process renders, not us
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = await adapter.status(job_id, NO_CREDS)
    assert resumed.status is JobStatus.QUEUED and resumed.provider_details == {"restarted": True}
    result = await wait(adapter, job_id)
    assert result.status is JobStatus.COMPLETED and result.provider_details["attempts"] == 2
    _, reference = await make(request)
    assert hashes(Path(result.video_url.removeprefix("file://"))) == hashes(reference)


async def test_a_render_that_keeps_dying_fails() -> None:
    job = jobs_dir() / ("loc_" + "a" * 32)
    job.mkdir(parents=True)
    (job / "request.json").write_text(req().model_dump_json())
    (job / "attempts.json").write_text('{"n": 5}')
    result = await wait(LocalAdapter(), job.name)
    assert result.status is JobStatus.FAILED
    assert result.error_message == (
        "local: the render was interrupted 5 times (the process rendering it died each time); "
        "submit it again"
    )


async def test_an_unreadable_job_fails_with_the_reason() -> None:
    job = jobs_dir() / ("loc_" + "b" * 32)
    job.mkdir(parents=True)
    (job / "request.json").write_text('{"prompt": ""}')
    result = await wait(LocalAdapter(), job.name)
    assert result.status is JobStatus.FAILED
    assert result.error_message.startswith("local: rendering failed: ValidationError")
