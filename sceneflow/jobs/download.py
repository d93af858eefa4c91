"""Fetching a finished video at once (outputs expire), verifying it, and only then COMPLETED."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from sceneflow import storage
from sceneflow.db import session_scope
from sceneflow.errors import TransientError
from sceneflow.jobs.ledger import (
    JobRef,
    complete_job,
    failures_logged,
    job_ref,
    load_job,
    log,
    log_attempt,
    release,
    saved_video,
)
from sceneflow.jobs.poll import patiently
from sceneflow.media import InvalidVideoError, VideoInfo, probe_video, verify_video
from sceneflow.models import StandardVideoRequest, StandardVideoResult
from sceneflow.posters import PosterError, poster_path, write_poster
from sceneflow.providers import Credentials, VideoAdapter

__all__ = ["download_job", "output_name"]

Logger = logging.Logger | logging.LoggerAdapter[Any]


def output_name(job_id: str, row_id: str | None) -> str:
    """The video's file name in its batch's folder: the row id where it is a safe file name,
    else its safe form plus a hash of the id, so that ids such as `a/b`, `a_b` and `a.b`, or two
    long ids that differ only at the end, never share a file."""
    if not row_id:
        return f"{job_id}.mp4"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in row_id)
    if safe == row_id and len(safe) <= 80:
        return f"{safe}.mp4"
    digest = hashlib.sha256(row_id.encode()).hexdigest()[:10]
    return f"{safe[:60]}-{digest}.mp4"


async def download_job(
    adapter: VideoAdapter,
    job_id: str,
    result: StandardVideoResult,
    credentials: Credentials,
    *,
    output_dir: str,
    row_id: str | None = None,
    owner: str | None = None,
    expected_duration: float | None = None,
    logger: Logger = log,
) -> JobRef:
    """Fetch the finished video, verify it in place, then mark the job COMPLETED. A job whose
    video is already saved is answered from the row. Either way `owner`'s claim on the job is
    released (with the completion, in its transaction).

    `expected_duration` (the request's, when the caller knows it) and a `result` fresh from
    the provider spare reading the row: a job the provider was just polled done for is
    GENERATED, never already saved (a transaction a row; issue 10)."""
    if expected_duration is None or result.output_path:
        with session_scope() as session:
            job = load_job(session, job_id)
        if (saved := saved_video(job)) is not None:
            if owner is not None:
                release(job_id, owner)
            ref = job_ref(job)
            if not storage.is_remote(saved):
                video = Path(saved)
                ref.duration = probe_video(video).duration
                ref.poster = _poster(video, logger, job_id)
            else:
                beside = saved.removesuffix(".mp4") + ".jpg"
                ref.poster = beside if storage.exists(beside) else None
            return ref
        expected_duration = StandardVideoRequest.model_validate_json(job.request_json).duration
    name = output_name(job_id, row_id)
    local = storage.staging_path(output_dir, name)
    fetched = time.time()

    async def fetch() -> VideoInfo:
        nonlocal fetched
        fetched = time.time()
        await failures_logged(
            job_id, "download", lambda: adapter.download(result, credentials, local)
        )
        try:
            # Checking and the poster run beside the event loop: libav works without the GIL,
            # so they take the second core instead of stalling every other job's polls.
            return await asyncio.to_thread(
                verify_video, local, expected_duration=expected_duration, tolerance=0.5
            )
        except InvalidVideoError as e:
            # The provider finished and was paid: a bad file must never make a re-run pay
            # again. A proxy's error page served as the video, or a cut-off transfer, is gone
            # on the next fetch, so it is transient like a 503; once the retries are spent the
            # job is DOWNLOAD_FAILED (ledger.settle), which a re-run fetches again.
            error = TransientError(
                f"{adapter.key} returned an unusable file ({e}); it is fetched again, and if "
                "it stays unusable `sceneflow batch ... --regenerate ID` pays for a new one",
                provider=adapter.key,
            )
            local.unlink(missing_ok=True)
            log_attempt(job_id, "download", error=error, started=fetched)
            raise error from e

    # A download costs nothing, so one that fails for a moment (a 429, a 503, a bad file) is
    # fetched again in place, keeping the job's Prefect retries for its submit.
    info = await patiently(fetch, adapter.capabilities())
    poster = await asyncio.to_thread(_poster, local, logger, job_id)
    final = storage.publish(local, output_dir, name)
    if poster is not None and storage.is_remote(output_dir):
        poster = storage.publish(Path(poster), output_dir, Path(poster).name)
    ref = complete_job(job_id, final, fetched=fetched, owner=owner)
    ref.poster = poster
    logger.info(
        "job %s (%s job %s): saved %.1f s %dx%d video to %s",
        job_id,
        ref.provider,
        ref.provider_job_id,
        info.duration,
        info.width,
        info.height,
        final,
    )
    ref.duration = info.duration
    return ref


def _poster(video: Path, logger: Logger, job_id: str) -> str | None:
    """A still beside the video (kept if already there); a poster never fails a job."""
    existing = poster_path(video)
    if existing.is_file():
        return str(existing.resolve())
    try:
        return str(write_poster(video).resolve())
    except PosterError as e:
        logger.warning("job %s: no poster: %s", job_id, e)
        return None
