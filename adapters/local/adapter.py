"""The local provider's adapter: `submit` returns a job id at once, a background render
(`render_pool`) reports real progress, and any process can ask for the status.

Job state lives on disk (`job_store`), so a process that did not start a job, say one restarted
after a SIGKILL, can still report it; an unfinished job that no render owns is scheduled again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import av

from adapters.base import audio_warnings, option_problems
from adapters.fields import field_table, mapped, native, unsupported
from adapters.local import job_store, render_pool
from adapters.local.renderer import ENCODER, decode_image
from sceneflow.errors import ProviderError, RequestValidationError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, Lookup, ModelCapabilities

__all__ = ["LocalAdapter"]

KEY = "local"
MODEL = "procedural-v1"
# 1080p at every aspect ratio (21:9 1080p is 2520x1080); 4k takes minutes per clip on 2 cores.
MAX_SIDE, MAX_PIXELS = 2560, 2560 * 1080

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
    audio=unsupported("silent video only; audio on is warned"),
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
        return _capabilities()

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
        problems += option_problems(
            request, self.capabilities().models, MODEL, f"{KEY} model {MODEL}"
        )
        if problems:
            raise RequestValidationError(problems, provider=KEY)
        return audio_warnings(KEY, request, renders=False)

    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        """`validate`: the local renderer has nothing to read first."""
        return self.validate(request)

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        self.validate(request)
        job = job_store.create(request, reference)
        render_pool.POOL.schedule(job)
        return job.name

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        job = job_store.find(provider_job_id)
        if final := job_store.read_json(job / "final.json"):
            return _outcome(provider_job_id, job, final)
        if job_store.lock_is_held(job):
            progress = job_store.read_json(job / "progress.json") or {"frames": 0, "total": 1}
            done, total = progress["frames"], progress["total"]
            elapsed = time.time() - progress.get("started", time.time())
            eta = elapsed / done * (total - done) if done else None
            return StandardVideoResult(
                status=JobStatus.PROCESSING,
                provider_job_id=provider_job_id,
                progress=min(99.0, 100 * done / total),
                estimated_time_remaining=eta,
                provider_details={"frames_done": done, "frames": total},
            )
        # The lock is free: the render finished just now, waits in our queue, or died with
        # the process that ran it. The outcome is written before the lock is dropped.
        if final := job_store.read_json(job / "final.json"):
            return _outcome(provider_job_id, job, final)
        restarted = not render_pool.POOL.owns(job)
        if restarted:
            (job / "progress.json").unlink(missing_ok=True)
            render_pool.POOL.schedule(job)
        return StandardVideoResult(
            status=JobStatus.QUEUED,
            provider_job_id=provider_job_id,
            provider_details={"restarted": restarted},
        )

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """Stop the render; a job that already has an outcome keeps it."""
        job_store.finish(job_store.find(provider_job_id), JobStatus.CANCELLED)

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        provider_job_id = result.provider_job_id or ""
        job = job_store.find(provider_job_id)
        final = job_store.read_json(job / "final.json") or {"status": "not finished"}
        source = job / "output.mp4"
        if final["status"] != JobStatus.COMPLETED or not source.is_file():
            raise ProviderError(
                f"local: job {provider_job_id} is {final['status']} and has no video "
                "to download; check `sceneflow status` first",
                provider=KEY,
            )
        if destination.is_dir():
            destination = destination / f"{provider_job_id}.mp4"
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.unlink(missing_ok=True)
        try:
            # Same filesystem: no second copy of the bytes, and a link appears whole or not at
            # all, so a crash leaves no partial file behind.
            os.link(source, destination)
        except OSError:
            partial = destination.with_name(destination.name + ".part")
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
        job_store.jobs_dir().mkdir(parents=True, exist_ok=True)

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup | None:
        """The job folder made for `reference`. A local submit's reply is lost only when the
        process dies between making the folder and recording its id; the folders on disk are
        the whole truth, so the search is always complete."""
        if not reference:
            return None
        return Lookup(job_ids=job_store.find_by_reference(reference), complete=True)


def _outcome(provider_job_id: str, job: Path, final: dict[str, Any]) -> StandardVideoResult:
    status = JobStatus(final.pop("status"))
    if status is not JobStatus.COMPLETED:
        error = final.get("error") or ("cancelled" if status is JobStatus.CANCELLED else None)
        return StandardVideoResult(
            status=status,
            provider_job_id=provider_job_id,
            error_message=f"local: {error}" if error else None,
        )
    return StandardVideoResult(
        status=status,
        provider_job_id=provider_job_id,
        progress=100,
        video_url=(job / "output.mp4").resolve().as_uri(),
        estimated_time_remaining=0,
        provider_details=final,
    )


@cache
def _capabilities() -> Capabilities:
    # Built once: validating a CSV asks for them on every row, and nothing here varies.
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
