"""The local provider's render pool: a few daemon threads per process that render queued jobs.

Renders run on threads, not in detached subprocesses. The hot paths release the GIL: libx264
encodes in C on its own threads, and numpy ufuncs and `take` run without it. So threads fill
both cores without paying interpreter and import start-up per job (about 0.5 s here), the bound
on concurrent renders is one in-process queue rather than cross-process slot bookkeeping, and
no orphan processes outlive tests or a killed pipeline. The price is that a render dies with
its process. That is noticed through the job's lock (`job_store`), which the kernel drops even
on SIGKILL, and the next `status` call from any process schedules the job again. The output is
the same, because rendering is deterministic.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import av

from adapters.local import job_store
from adapters.local.renderer import render
from sceneflow.models import JobStatus, StandardVideoRequest

__all__ = ["MAX_ATTEMPTS", "POOL", "WORKERS", "RenderPool", "run_job"]

MAX_ATTEMPTS = 5
# One render already keeps x264 busy on both cores; a second one per core overlaps one job's
# frame building and file writing with another's encoding. More would only queue in the kernel.
WORKERS = max(1, min(os.cpu_count() or 1, 4))


def run_job(job: Path) -> None:
    """Render one job if no other thread or process owns it and it has no outcome yet."""
    with job_store.claim(job) as owned:
        if not owned or (job / "final.json").exists():
            return
        attempts = job_store.count_attempt(job)
        if attempts > MAX_ATTEMPTS:
            job_store.finish(
                job,
                JobStatus.FAILED,
                error=f"the render was interrupted {MAX_ATTEMPTS} "
                "times (the process rendering it died each time); submit it again",
            )
            return
        try:
            request = StandardVideoRequest.model_validate_json((job / "request.json").read_text())
            details = render(request, job / "output.part.mp4", job_store.progress_reporter(job))
        except (av.FFmpegError, OSError, ValueError) as e:
            job_store.finish(
                job, JobStatus.FAILED, error=f"rendering failed: {type(e).__name__}: {e}"
            )
            return
        if details is None:
            return  # cancelled: final.json already says so
        os.replace(job / "output.part.mp4", job / "output.mp4")
        if not job_store.finish(job, JobStatus.COMPLETED, attempts=attempts, **details):
            (job / "output.mp4").unlink(missing_ok=True)  # cancelled while finishing


class RenderPool:
    """A bounded set of daemon threads. Daemon, because a render must die with its process
    exactly as under SIGKILL (the next status restarts it) instead of holding up exit."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._pending: set[Path] = set()
        self._threads: list[threading.Thread] = []
        self._workers = workers
        self._lock = threading.Lock()

    def schedule(self, job: Path) -> None:
        with self._lock:
            if job in self._pending:
                return
            self._pending.add(job)
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="local-render", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._queue.put(job)

    def owns(self, job: Path) -> bool:
        with self._lock:
            return job in self._pending

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                run_job(job)
            finally:
                with self._lock:
                    self._pending.discard(job)


POOL = RenderPool(WORKERS)
