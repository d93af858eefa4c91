"""The local provider's adapter: a real background render that behaves like a remote job.

The helpers here (req, make, wait, frames, ...) serve the renderer and render-pool tests too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from adapters import get_adapter
from adapters.local import job_store, renderer
from adapters.local.adapter import LocalAdapter
from adapters.local.job_store import jobs_dir
from sceneflow.errors import NotFoundError, ProviderError, RequestValidationError
from sceneflow.models import TERMINAL_STATUSES, JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, Lookup, VideoAdapter

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
    original = renderer.Scene.frame

    def frame(self: renderer.Scene, i: int) -> np.ndarray:
        time.sleep(seconds)
        return original(self, i)

    monkeypatch.setattr(renderer.Scene, "frame", frame)


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
    assert fields == set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert (
        "standard ultrafast/23, high veryfast/18"
        in caps.models[caps.default_model].fields["quality"].note
    )


async def test_connection_needs_nothing() -> None:
    await LocalAdapter().test_connection(NO_CREDS)
    assert jobs_dir().is_dir()


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
    while job_store.lock_is_held(job):  # the render thread notices and stops
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


def hashes(path: Path) -> list[str]:
    return [hashlib.sha256(f.tobytes()).hexdigest() for f in frames(path)]


async def test_new_adapter_reports_a_finished_job_and_downloads_it(tmp_path: Path) -> None:
    result, path = await make(req())
    fresh = LocalAdapter()
    again = await fresh.status(result.provider_job_id, NO_CREDS)
    assert again == result
    into_dir = await fresh.download(again, NO_CREDS, tmp_path)
    to_file = await fresh.download(again, NO_CREDS, tmp_path / "videos" / "one.mp4")
    assert into_dir == tmp_path / f"{result.provider_job_id}.mp4"
    assert into_dir.read_bytes() == to_file.read_bytes() == path.read_bytes()


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


async def test_a_lost_local_submit_is_found_by_its_reference_and_the_search_is_complete() -> None:
    adapter = LocalAdapter()
    job_id = await adapter.submit(req(), NO_CREDS, reference="sf-job1-0-1")
    await adapter.submit(req(), NO_CREDS, reference="sf-job2-0-1")
    since = datetime.now(UTC) - timedelta(minutes=5)
    found = await adapter.find_submitted(req(), NO_CREDS, since=since, reference="sf-job1-0-1")
    assert found == Lookup(job_ids=[job_id], complete=True)
    nothing = await adapter.find_submitted(req(), NO_CREDS, since=since, reference="sf-job3-0-1")
    assert nothing == Lookup(job_ids=[], complete=True)
    await wait(adapter, job_id)


async def test_a_download_is_one_hard_link_with_no_partial_file(tmp_path: Path) -> None:
    adapter = LocalAdapter()
    job_id = await adapter.submit(req(), NO_CREDS)
    result = await wait(adapter, job_id)
    target = tmp_path / "out" / "a.mp4"
    target.parent.mkdir()
    target.write_bytes(b"an older, broken download")
    await adapter.download(result, NO_CREDS, target)
    assert target.stat().st_ino == (jobs_dir() / job_id / "output.mp4").stat().st_ino
    assert [p.name for p in target.parent.iterdir()] == ["a.mp4"]
