"""Reading videos back: probe_video describes a file, verify_video refuses the wrong one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sceneflow.media import InvalidVideoError, VideoInfo, probe_video, verify_video


def write_mp4(
    path: Path,
    *,
    frames: int = 12,
    fps: int = 12,
    size: tuple[int, int] = (64, 48),
    faststart: bool = False,
) -> Path:
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            noise = np.random.default_rng(i).integers(0, 255, (height, width, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(noise, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_wav(path: Path) -> Path:
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_probe_reads_what_the_file_holds(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "v.mp4", frames=30, fps=12, size=(64, 48))
    assert probe_video(path) == VideoInfo(
        duration=2.5, width=64, height=48, fps=12.0, frames=30, codec="h264",
        size_bytes=path.stat().st_size,
    )  # fmt: skip


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(InvalidVideoError) as err:
        probe_video(path)
    assert str(err.value) == f"{path}: no such file" and err.value.path == path


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(InvalidVideoError, match=r"empty.mp4: empty file \(0 bytes\)$"):
        probe_video(path)


def test_not_a_container(tmp_path: Path) -> None:
    path = tmp_path / "page.mp4"
    path.write_text("<html><body>403 Forbidden: signature expired</body></html>")
    with pytest.raises(InvalidVideoError, match=r"page.mp4: not a video container \(.+\)$"):
        probe_video(path)


def test_no_video_stream(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "sound.wav")
    with pytest.raises(InvalidVideoError, match=r"sound.wav: no video stream$"):
        probe_video(path)


def test_truncated_download_is_refused(tmp_path: Path) -> None:
    # Index at the end: a cut file has no index at all.
    whole = write_mp4(tmp_path / "whole.mp4", frames=24).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(InvalidVideoError, match=r"cut.mp4: not a video container \("):
        verify_video(cut, expected_duration=2)
    # Index at the front (faststart): it still lists every frame, so the probe alone is fooled.
    whole = write_mp4(tmp_path / "fast.mp4", frames=24, faststart=True).read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    assert probe_video(cut).frames == 24
    with pytest.raises(InvalidVideoError) as err:
        verify_video(cut, expected_duration=2)
    assert err.value.problem.startswith("truncated: the index lists 24 frames but only ")
    assert err.value.problem.endswith(" are in the file; download it again")


def test_verify_checks_the_duration(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "v.mp4", frames=12, fps=12)
    assert verify_video(path, expected_duration=1.2).duration == 1.0
    assert verify_video(path).frames == 12
    with pytest.raises(InvalidVideoError) as err:
        verify_video(path, expected_duration=5)
    assert err.value.problem == (
        "lasts 1.00 s but 5.00 s was asked for (off by 80%, more than the 25% allowed)"
    )
    assert verify_video(path, expected_duration=5, tolerance=0.85).frames == 12
