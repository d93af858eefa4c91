"""The local renderer: the video follows the request's size, timing, seed, colours, caption
and first frame, and the same request gives the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.local import renderer
from adapters.local.adapter import LocalAdapter
from sceneflow.media import probe_video
from tests.adapters.local.test_local_adapter import (
    frames,
    hashes,
    make,
    png_data_url,
    req,
)


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
    assert renderer.palette_for(req(prompt="red and blue"))[:2] == [(200, 16, 46), (31, 95, 209)]
    assert (200, 16, 46) not in renderer.palette_for(
        req(prompt="red and blue", negative_prompt="no red")
    )
    plain = renderer.palette_for(req(prompt="a quiet moment"))
    assert len(plain) == 3 and plain == renderer.palette_for(req(prompt="a quiet moment"))
    assert plain != renderer.palette_for(req(prompt="a loud moment"))


async def test_caption_shows_the_prompt() -> None:
    _, path = await make(req(prompt="Hello world", resolution="320x180"))
    mask = renderer.caption_mask("Hello world", 320, 180)
    assert mask is not None and mask.any()
    long = renderer.caption_mask("word " * 200, 320, 180)
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
