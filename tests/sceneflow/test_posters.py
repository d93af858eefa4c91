"""Posters: a JPEG of the middle frame, scaled, written atomically, with a clear error for a
file that is not a video."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageStat

from sceneflow.media import InvalidVideoError
from sceneflow.posters import PosterError, poster_path, write_poster
from tests.support.emulators._base import sample_mp4


def black_then_bright(path: Path, *, seconds: float = 2, fps: int = 10) -> Path:
    """An MP4 whose first 40% of frames are black and the rest bright, so a poster taken from
    the first frame (or the first keyframe: x264 puts only one in a clip this short) is black."""
    width, height = 96, 54
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frames = int(seconds * fps)
        for i in range(frames):
            level = 0 if i < frames * 0.4 else 230
            img = np.full((height, width, 3), level, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def brightness(path: Path) -> float:
    with Image.open(path) as img:
        return float(ImageStat.Stat(img.convert("L")).mean[0])


def test_the_poster_is_a_jpeg_beside_the_video_at_the_asked_width(tmp_path: Path) -> None:
    video = tmp_path / "kite.mp4"
    video.write_bytes(sample_mp4(seconds=1, width=640, height=360))

    poster = write_poster(video, width=320)

    assert poster == tmp_path / "kite.jpg" == poster_path(video)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"  # the JPEG signature
    with Image.open(poster) as img:
        assert img.format == "JPEG"
        assert img.size == (320, 180)  # 640x360 keeps its 16:9 shape
    assert poster.stat().st_size < 50_000


def test_the_default_width_is_480_and_an_explicit_path_is_used(tmp_path: Path) -> None:
    video = tmp_path / "boat.mp4"
    video.write_bytes(sample_mp4(seconds=1, width=640, height=640))

    poster = write_poster(video, tmp_path / "posters" / "boat-poster.jpg")

    assert poster == tmp_path / "posters" / "boat-poster.jpg"
    with Image.open(poster) as img:
        assert img.size == (480, 480)
    assert not (tmp_path / "boat.jpg").exists()


def test_a_small_video_gets_a_poster_of_its_own_size_not_an_enlarged_one(tmp_path: Path) -> None:
    video = tmp_path / "thumb.mp4"
    video.write_bytes(sample_mp4(seconds=1, width=64, height=36))
    with Image.open(write_poster(video)) as img:
        assert img.size == (64, 36)


def test_the_frame_comes_from_the_middle_not_the_black_start(tmp_path: Path) -> None:
    video = black_then_bright(tmp_path / "dawn.mp4")
    with av.open(str(video)) as container:
        first = next(container.decode(video=0)).to_image()
    assert ImageStat.Stat(first.convert("L")).mean[0] < 10  # the test video is what it claims

    assert brightness(write_poster(video, width=96)) > 200


def test_the_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(sample_mp4(seconds=1))
    poster = tmp_path / "clip.jpg"
    poster.write_bytes(b"an older poster")

    write_poster(video)
    write_poster(video)  # writing again replaces the file in one step

    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.jpg", "clip.mp4"]
    assert Image.open(io.BytesIO(poster.read_bytes())).format == "JPEG"


def test_a_failed_write_keeps_the_old_poster_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(sample_mp4(seconds=1))
    poster = tmp_path / "clip.jpg"
    poster.write_bytes(b"an older poster")

    def disk_full(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"half a jpe")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_poster(video)

    assert poster.read_bytes() == b"an older poster"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.jpg", "clip.mp4"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"<html>502 Bad Gateway</html>", "not a video PyAV can decode"),
        (b"", "empty file"),
        (None, "no such file"),
    ],
)
def test_a_file_that_is_not_a_video_is_a_clear_error_naming_it(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    bad = tmp_path / "broken.mp4"
    if content is not None:
        bad.write_bytes(content)

    with pytest.raises(PosterError, match=problem) as caught:
        write_poster(bad)

    assert str(bad) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidVideoError)
    assert caught.value.path == bad
    assert list(tmp_path.iterdir()) == ([bad] if content is not None else [])


def test_a_truncated_video_is_a_poster_error(tmp_path: Path) -> None:
    video = tmp_path / "cut.mp4"
    video.write_bytes(sample_mp4(seconds=1)[:600])

    with pytest.raises(PosterError, match="cut.mp4"):
        write_poster(video)


def test_a_width_below_one_pixel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="width must be at least 1"):
        write_poster(tmp_path / "x.mp4", width=0)
