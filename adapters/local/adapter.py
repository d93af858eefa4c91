"""The built-in provider: renders a real H.264 MP4 on this machine, with no key and no network.

It behaves like a remote provider. `submit` returns a job id at once and a background render
reports real progress. Job state lives on disk under `$SCENEFLOW_HOME/local/jobs/<job_id>/`:
request.json, progress.json, output.mp4 and final.json (the outcome, written once). A process
that did not start a job, say one restarted after a SIGKILL, can still ask for its status.
Unfinished jobs that no render owns are started again, and the output is the same because
rendering is deterministic.

Renders run on a few daemon threads per process, not in detached subprocesses. The hot paths
release the GIL: libx264 encodes in C on its own threads, and numpy ufuncs and `take` run
without it. So threads fill both cores without paying interpreter and import start-up per job
(about 0.5 s here), the bound on concurrent renders is one in-process queue rather than
cross-process slot bookkeeping, and no orphan processes outlive tests or a killed pipeline. The
price is that a render dies with its process. That is noticed through an flock on `lock`, which
the kernel drops even on SIGKILL, and the next `status` call from any process restarts it.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from adapters._local_render import ENCODER, decode_image, render
from adapters.fields import field_table, mapped, native
from sceneflow.errors import NotFoundError, ProviderError, RequestValidationError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, ModelCapabilities
from sceneflow.settings import get_settings

__all__ = ["LocalAdapter"]

KEY = "local"
MODEL = "procedural-v1"
# 1080p at every aspect ratio (21:9 1080p is 2520x1080); 4k takes minutes per clip on 2 cores.
MAX_SIDE, MAX_PIXELS = 2560, 2560 * 1080
MAX_ATTEMPTS = 5
# One render already keeps x264 busy on both cores; a second one per core overlaps one job's
# frame building and file writing with another's encoding. More would only queue in the kernel.
WORKERS = max(1, min(os.cpu_count() or 1, 4))
_JOB_ID = re.compile(r"^loc_[0-9a-f]{32}$")


def jobs_dir() -> Path:
    return get_settings().home / KEY / "jobs"


def _writer() -> str:
    """Unique among every thread of every process writing to the jobs directory."""
    return f"{os.getpid()}.{threading.get_ident()}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{_writer()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def _finish(job: Path, status: JobStatus, **details: Any) -> bool:
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


def _lock_is_held(job: Path) -> bool:
    fd = os.open(job / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return False


def _progress_writer(job: Path) -> Callable[[int, int], bool]:
    """Report frames done to progress.json (at most every 0.1 s); say stop once cancelled."""
    started, last = time.time(), 0.0

    def on_frame(done: int, total: int) -> bool:
        nonlocal last
        if done == total or time.monotonic() - last > 0.1:
            last = time.monotonic()
            _write_json(job / "progress.json", {"frames": done, "total": total, "started": started})
        return not (job / "final.json").exists()

    return on_frame


def run_job(job: Path) -> None:
    """Render one job if no other thread or process owns it and it has no outcome yet."""
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
            return
        if (job / "final.json").exists():
            return
        attempts = int((_read_json(job / "attempts.json") or {}).get("n", 0)) + 1
        _write_json(job / "attempts.json", {"n": attempts})
        if attempts > MAX_ATTEMPTS:
            _finish(
                job,
                JobStatus.FAILED,
                error=f"the render was interrupted {MAX_ATTEMPTS} "
                "times (the process rendering it died each time); submit it again",
            )
            return
        try:
            request = StandardVideoRequest.model_validate_json((job / "request.json").read_text())
            details = render(request, job / "output.part.mp4", _progress_writer(job))
        except (av.FFmpegError, OSError, ValueError) as e:
            _finish(job, JobStatus.FAILED, error=f"rendering failed: {type(e).__name__}: {e}")
            return
        if details is None:
            return  # cancelled: final.json already says so
        os.replace(job / "output.part.mp4", job / "output.mp4")
        if not _finish(job, JobStatus.COMPLETED, attempts=attempts, **details):
            (job / "output.mp4").unlink(missing_ok=True)  # cancelled while finishing
    finally:
        os.close(fd)


class _RenderPool:
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


POOL = _RenderPool(WORKERS)

FIELDS = field_table(
    prompt=native("palette from colour/scene words; caption"),
    negative_prompt=mapped("colours named here are left out"),
    aspect_ratio=native(),
    motion_intensity=native("speed and reach of the motion"),
    duration=native("frames = round(duration * fps)"),
    resolution=native("up to 2560x1080 pixels (1080p); no 4k"),
    style=mapped("its colour/scene words join the palette"),
    quality=mapped(
        "x264 preset/CRF: "
        + ", ".join(f"{q} {preset}/{crf}" for q, (preset, crf) in ENCODER.items())
        + " (high takes about 2.5x as long as standard)"
    ),
    fps=native(),
    seed=native("unset: derived from the request"),
    image_url=mapped("data: URLs only: the image opens the video and fades out"),
)


class LocalAdapter:
    """Renders procedural videos that follow the prompt's colours, caption and motion."""

    key = KEY

    def __init__(self, *, client: Any = None, base_url: str | None = None) -> None:
        del client, base_url  # the signature every adapter shares; nothing goes over a network

    async def __aenter__(self) -> LocalAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    def capabilities(self) -> Capabilities:
        model = ModelCapabilities(
            fields=FIELDS,
            aspect_ratios=["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
            min_duration=1,
            max_duration=120,
            resolutions=["480p", "720p", "1080p"],
            text_to_video=True,
            image_to_video=True,
        )
        return Capabilities(
            provider=KEY,
            default_model=MODEL,
            models={MODEL: model},
            credential_fields=[],
            can_cancel=True,
            poll_interval=0.5,
            max_poll_interval=2,
            deadline=900,
            connection_test="none needed: checks that PyAV's bundled libx264 encoder is present",
        )

    def validate(self, request: StandardVideoRequest) -> list[str]:
        problems = []
        if request.model not in (None, MODEL):
            problems.append(
                f"model: the local provider has one model, {MODEL!r}; "
                f"got {request.model!r}. Leave model empty or set it to {MODEL!r}"
            )
        width, height = request.frame_size()
        if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
            problems.append(
                f"resolution: {request.resolution} at {request.aspect_ratio} is {width}x{height}; "
                "the local renderer draws at most 2560x1080 pixels (1080p at any aspect ratio, "
                "no 4k). Use 480p, 720p, 1080p or a smaller WxH"
            )
        if request.image_url:
            if not request.image_url.startswith("data:"):
                problems.append(
                    "image_url: the local renderer works offline and reads only "
                    "data: URLs; embed the image as a data: URL or leave it out"
                )
            else:
                try:
                    decode_image(request.image_url, 16, 16)
                except (av.FFmpegError, ValueError, StopIteration) as e:
                    problems.append(
                        f"image_url: the data: URL is not a readable image "
                        f"({type(e).__name__}); use a base64 PNG or JPEG"
                    )
        if problems:
            raise RequestValidationError(problems, provider=KEY)
        return []

    async def submit(self, request: StandardVideoRequest, credentials: Credentials) -> str:
        self.validate(request)
        job_id = f"loc_{uuid.uuid4().hex}"
        job = jobs_dir() / job_id
        job.mkdir(parents=True)
        (job / "request.json").write_text(request.model_dump_json())
        POOL.schedule(job)
        return job_id

    def _job(self, job_id: str) -> Path:
        job = jobs_dir() / job_id
        if not _JOB_ID.match(job_id) or not (job / "request.json").is_file():
            raise NotFoundError(
                f"local: no job {job_id!r} in {jobs_dir()}; local job ids look "
                "like loc_<32 hex digits> and live in SCENEFLOW_HOME/local/jobs"
            )
        return job

    async def status(self, job_id: str, credentials: Credentials) -> StandardVideoResult:
        job = self._job(job_id)
        if final := _read_json(job / "final.json"):
            return _outcome(job_id, job, final)
        if _lock_is_held(job):
            progress = _read_json(job / "progress.json") or {"frames": 0, "total": 1}
            done, total = progress["frames"], progress["total"]
            elapsed = time.time() - progress.get("started", time.time())
            eta = elapsed / done * (total - done) if done else None
            return StandardVideoResult(
                status=JobStatus.PROCESSING,
                provider_job_id=job_id,
                progress=min(99.0, 100 * done / total),
                estimated_time_remaining=eta,
                provider_details={"frames_done": done, "frames": total},
            )
        # The lock is free: the render finished just now, waits in our queue, or died with
        # the process that ran it. The outcome is written before the lock is dropped.
        if final := _read_json(job / "final.json"):
            return _outcome(job_id, job, final)
        restarted = not POOL.owns(job)
        if restarted:
            (job / "progress.json").unlink(missing_ok=True)
            POOL.schedule(job)
        return StandardVideoResult(
            status=JobStatus.QUEUED,
            provider_job_id=job_id,
            provider_details={"restarted": restarted},
        )

    async def cancel(self, job_id: str, credentials: Credentials) -> None:
        """Stop the render; a job that already has an outcome keeps it."""
        _finish(self._job(job_id), JobStatus.CANCELLED)

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        job_id = result.provider_job_id or ""
        job = self._job(job_id)
        final = _read_json(job / "final.json") or {"status": "not finished"}
        source = job / "output.mp4"
        if final["status"] != JobStatus.COMPLETED or not source.is_file():
            raise ProviderError(
                f"local: job {job_id} is {final['status']} and has no video "
                "to download; check `sceneflow status` first",
                provider=KEY,
            )
        if destination.is_dir():
            destination = destination / f"{job_id}.mp4"
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        partial.unlink(missing_ok=True)
        try:
            os.link(source, partial)  # same filesystem: no second copy of the bytes
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, destination)
        return destination

    async def test_connection(self, credentials: Credentials) -> None:
        if "libx264" not in av.codecs_available:
            raise ProviderError(
                "local: this PyAV build has no libx264 encoder; reinstall the "
                "`av` wheel from PyPI, which bundles it",
                provider=KEY,
            )
        jobs_dir().mkdir(parents=True, exist_ok=True)

    async def find_submitted(
        self, request: StandardVideoRequest, credentials: Credentials, *, since: datetime
    ) -> list[str] | None:
        return None  # a local submit is a folder written in-process: its reply is never lost


def _outcome(job_id: str, job: Path, final: dict[str, Any]) -> StandardVideoResult:
    status = JobStatus(final.pop("status"))
    if status is not JobStatus.COMPLETED:
        error = final.get("error") or ("cancelled" if status is JobStatus.CANCELLED else None)
        return StandardVideoResult(
            status=status,
            provider_job_id=job_id,
            error_message=f"local: {error}" if error else None,
        )
    return StandardVideoResult(
        status=status,
        provider_job_id=job_id,
        progress=100,
        video_url=(job / "output.mp4").resolve().as_uri(),
        estimated_time_remaining=0,
        provider_details=final,
    )
