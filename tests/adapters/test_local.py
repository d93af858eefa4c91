"""The local provider: a real background render that behaves like a remote job."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import adapters._local_render as render_mod
import adapters.local as local
from adapters import get_adapter
from adapters.local import LocalAdapter, jobs_dir
from sceneflow.errors import NotFoundError, ProviderError, RequestValidationError
from sceneflow.media import probe_video
from sceneflow.models import TERMINAL_STATUSES, JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, VideoAdapter

NO_CREDS = Credentials({})
ROOT = Path(__file__).resolve().parents[2]


def req(**overrides: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = dict(
        prompt="a calm ocean",
        aspect_ratio="16:9",
        motion_intensity=5,
        duration=1,
        resolution="160x90",
        fps=12,
        quality="draft",
        seed=7,
    )
    return StandardVideoRequest(**(fields | overrides))


async def wait(adapter: LocalAdapter, job_id: str, seen: list[Any] | None = None) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = await adapter.status(job_id, NO_CREDS)
        if seen is not None:
            seen.append((result.status, result.progress))
        if result.status in TERMINAL_STATUSES:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish in 60 s")


async def make(request: StandardVideoRequest) -> tuple[Any, Path]:
    adapter = LocalAdapter()
    result = await wait(adapter, await adapter.submit(request, NO_CREDS))
    assert result.status is JobStatus.COMPLETED, result
    return result, Path(result.video_url.removeprefix("file://"))


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def slow_frames(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    original = render_mod.Scene.frame

    def frame(self: render_mod.Scene, i: int) -> np.ndarray:
        time.sleep(seconds)
        return original(self, i)

    monkeypatch.setattr(render_mod.Scene, "frame", frame)


def png_data_url(rgb: tuple[int, int, int], size: int = 8) -> str:
    row = b"\x00" + bytes(rgb) * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_registered_and_keyless() -> None:
    adapter = get_adapter("local")
    assert isinstance(adapter, LocalAdapter) and isinstance(adapter, VideoAdapter)
    caps = adapter.capabilities()
    assert caps.credential_fields == [] and caps.can_cancel
    assert caps.connection_test.startswith("none needed")
    fields = set(caps.models[caps.default_model].fields)
    assert fields == set(StandardVideoRequest.model_fields) - {"model"}
    assert (
        "standard ultrafast/23, high veryfast/18"
        in caps.models[caps.default_model].fields["quality"].note
    )


async def test_connection_needs_nothing() -> None:
    await LocalAdapter().test_connection(NO_CREDS)
    assert jobs_dir().is_dir()


async def test_lifecycle_queued_processing_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker and two slow jobs: the second must wait in the queue, then render.
    monkeypatch.setattr(local, "POOL", local._RenderPool(1))
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


async def test_cancel_stops_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_frames(monkeypatch, 0.02)
    adapter = LocalAdapter()
    job_id = await adapter.submit(req(duration=8), NO_CREDS)
    while (await adapter.status(job_id, NO_CREDS)).progress == 0:
        await asyncio.sleep(0.01)
    await adapter.cancel(job_id, NO_CREDS)
    result = await adapter.status(job_id, NO_CREDS)
    assert result.status is JobStatus.CANCELLED and result.error_message == "local: cancelled"
    job = jobs_dir() / job_id
    while local._lock_is_held(job):  # the render thread notices and stops
        await asyncio.sleep(0.01)
    done = json.loads((job / "progress.json").read_text())["frames"]
    assert done < 96
    assert not (job / "output.mp4").exists() and not (job / "output.part.mp4").exists()
    with pytest.raises(ProviderError, match=f"local: job {job_id} is CANCELLED and has no video"):
        await adapter.download(result, NO_CREDS, Path("out.mp4"))


async def test_cancel_after_completion_keeps_the_video() -> None:
    result, path = await make(req())
    await LocalAdapter().cancel(result.provider_job_id, NO_CREDS)
    again = await LocalAdapter().status(result.provider_job_id, NO_CREDS)
    assert again.status is JobStatus.COMPLETED and path.is_file()


@pytest.mark.parametrize(
    ("aspect", "resolution", "fps", "duration", "size"),
    [
        ("16:9", "160x90", 12, 1.0, (160, 90)),
        ("1:1", "96x96", 10, 1.5, (96, 96)),
        ("9:16", "90x160", 24, 1.3, (90, 160)),
        ("21:9", "480p", 8, 1.0, (1120, 480)),
        ("3:4", "480p", 6, 2.0, (480, 640)),
        ("1:1", "16x16", 6, 1.0, (16, 16)),  # too small for a caption
    ],
)
async def test_output_honours_size_fps_duration(
    aspect: str, resolution: str, fps: int, duration: float, size: tuple[int, int]
) -> None:
    request = req(aspect_ratio=aspect, resolution=resolution, fps=fps, duration=duration)
    result, path = await make(request)
    info = probe_video(path)
    count = round(duration * fps)
    assert (info.width, info.height) == size == request.frame_size()
    assert (info.fps, info.frames, info.codec) == (fps, count, "h264")
    assert info.duration == pytest.approx(count / fps, abs=1e-3)
    details = result.provider_details
    assert (details["width"], details["height"], details["fps"], details["frames"]) == (
        *size,
        fps,
        count,
    )


async def test_720p_at_24_fps() -> None:
    _, path = await make(req(resolution="720p", fps=24, duration=1))
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.frames) == (1280, 720, 24, 24)


def hashes(path: Path) -> list[str]:
    return [hashlib.sha256(f.tobytes()).hexdigest() for f in frames(path)]


async def test_same_request_same_frames() -> None:
    _, a = await make(req())
    _, b = await make(req())
    _, other_seed = await make(req(seed=8))
    _, c = await make(req(seed=None))
    _, d = await make(req(seed=None))
    assert hashes(a) == hashes(b) and len(hashes(a)) == 12
    assert hashes(a) != hashes(other_seed)
    assert hashes(c) == hashes(d)


async def test_motion_rises_with_intensity() -> None:
    diffs = []
    for intensity in (1, 5, 10):
        _, path = await make(req(motion_intensity=intensity, duration=2))
        video = np.stack(frames(path)).astype(np.int16)
        diffs.append(float(np.abs(np.diff(video, axis=0)).mean()))
    assert diffs[0] < diffs[1] < diffs[2], diffs
    assert diffs[0] < 2 < diffs[2]


async def mean_rgb(prompt: str) -> np.ndarray:
    _, path = await make(req(prompt=prompt, resolution="320x180"))
    return np.stack(frames(path))[:, :150].reshape(-1, 3).mean(axis=0)  # above the caption


async def test_palette_follows_scene_and_colour_words() -> None:
    r, g, b = await mean_rgb("a calm ocean")
    assert b > r + 40 and b > g
    r, g, b = await mean_rgb("sunset over the hills")
    assert r > b + 40 and r > g
    r, g, b = await mean_rgb("a deep forest")
    assert g > r and g > b


def test_palette_words_negative_prompt_and_fallback() -> None:
    assert render_mod.palette_for(req(prompt="red and blue"))[:2] == [(200, 16, 46), (31, 95, 209)]
    assert (200, 16, 46) not in render_mod.palette_for(
        req(prompt="red and blue", negative_prompt="no red")
    )
    plain = render_mod.palette_for(req(prompt="a quiet moment"))
    assert len(plain) == 3 and plain == render_mod.palette_for(req(prompt="a quiet moment"))
    assert plain != render_mod.palette_for(req(prompt="a loud moment"))


async def test_caption_shows_the_prompt() -> None:
    _, path = await make(req(prompt="Hello world", resolution="320x180"))
    mask = render_mod.caption_mask("Hello world", 320, 180)
    assert mask is not None and mask.any()
    long = render_mod.caption_mask("word " * 200, 320, 180)
    assert long is not None and long.shape == (20, 320)  # two lines, then "..."
    band = frames(path)[0][180 - mask.shape[0] :].mean(axis=2)
    assert band[mask].mean() > 180 > 60 > band[~mask].mean()


async def test_data_url_image_opens_the_video() -> None:
    request = req(image_url=png_data_url((250, 20, 20)), prompt="a calm ocean", duration=2)
    assert LocalAdapter().validate(request) == []
    _, path = await make(request)
    video = frames(path)
    first, later = video[0].reshape(-1, 3).mean(0), video[-1].reshape(-1, 3).mean(0)
    assert first[0] > 200 and first[2] < 60 and later[2] > later[0]


async def test_new_adapter_reports_a_finished_job_and_downloads_it(tmp_path: Path) -> None:
    result, path = await make(req())
    fresh = LocalAdapter()
    again = await fresh.status(result.provider_job_id, NO_CREDS)
    assert again == result
    into_dir = await fresh.download(again, NO_CREDS, tmp_path)
    to_file = await fresh.download(again, NO_CREDS, tmp_path / "videos" / "one.mp4")
    assert into_dir == tmp_path / f"{result.provider_job_id}.mp4"
    assert into_dir.read_bytes() == to_file.read_bytes() == path.read_bytes()


KILLED_RENDER = """
import asyncio, sys, time, json
import adapters._local_render as r
from adapters.base import Credentials
from adapters.local import LocalAdapter, jobs_dir
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
        assert not local.POOL.owns(jobs_dir() / job_id)  # the other process renders, not us
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


@pytest.mark.parametrize("job_id", ["loc_" + "c" * 32, "../../etc", "loc_xyz"])
async def test_unknown_job_ids(job_id: str) -> None:
    with pytest.raises(NotFoundError, match=f"local: no job '{job_id}' in "):
        await LocalAdapter().status(job_id, NO_CREDS)


def test_validate_names_the_field_and_the_limits() -> None:
    adapter = LocalAdapter()
    assert adapter.validate(req(resolution="1080p", aspect_ratio="21:9")) == []
    with pytest.raises(RequestValidationError) as err:
        adapter.validate(req(resolution="4k", model="veo-3", image_url="https://x.test/a.png"))
    assert err.value.provider == "local"
    assert err.value.problems == [
        "model: the local provider has one model, 'procedural-v1'; got 'veo-3'. Leave model "
        "empty or set it to 'procedural-v1'",
        "resolution: 4k at 16:9 is 3840x2160; the local renderer draws at most 2560x1080 "
        "pixels (1080p at any aspect ratio, no 4k). Use 480p, 720p, 1080p or a smaller WxH",
        "image_url: the local renderer works offline and reads only data: URLs; embed the "
        "image as a data: URL or leave it out",
    ]
    with pytest.raises(RequestValidationError, match="image_url: the data: URL is not a readable"):
        adapter.validate(req(image_url="data:image/png;base64,aGVsbG8="))


async def test_submit_validates_first() -> None:
    with pytest.raises(RequestValidationError, match="resolution: 4k"):
        await LocalAdapter().submit(req(resolution="4k"), NO_CREDS)
    assert not jobs_dir().exists() or not any(jobs_dir().iterdir())
