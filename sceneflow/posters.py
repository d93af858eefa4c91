"""Posters: one still JPEG per video, for the gallery and the results table.

The frame comes from the middle of the clip, not the start: generated videos often open on a
black or half-formed frame. PyAV decodes and scales it and Pillow writes it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from sceneflow.media import InvalidVideoError

__all__ = ["PosterError", "poster_path", "write_poster"]

JPEG_QUALITY = 82


class PosterError(InvalidVideoError):
    """No poster could be made: the file is not a video PyAV can decode."""


def poster_path(video: Path) -> Path:
    """Where a video's poster goes by default: beside it, with `.jpg`."""
    return video.with_suffix(".jpg")


def write_poster(video: Path, poster: Path | None = None, *, width: int = 480) -> Path:
    """Write a JPEG of the frame in the middle of `video`, `width` pixels wide (or the video's
    own width, if narrower) with the video's aspect ratio, to `poster` (default: the video's
    path with `.jpg`) and return its path.

    The file appears whole or not at all: it is written under a temporary name in the same
    folder and then renamed. Raises PosterError (a ValueError) naming the file if PyAV cannot
    decode a frame of it."""
    if width < 1:
        raise ValueError(f"width must be at least 1 pixel, not {width}")
    video = Path(video)
    target = Path(poster) if poster is not None else poster_path(video)
    image = _middle_frame(video, width)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return target


def _middle_frame(video: Path, width: int) -> Image.Image:
    if not video.is_file():
        raise PosterError(video, "cannot make a poster: no such file")
    if video.stat().st_size == 0:
        raise PosterError(video, "cannot make a poster: empty file (0 bytes)")
    try:
        container = av.open(str(video))
    except av.FFmpegError as e:
        raise PosterError(
            video, f"cannot make a poster: not a video PyAV can decode ({e.strerror})"
        ) from e
    with container:
        if not container.streams.video:
            raise PosterError(video, "cannot make a poster: the file has no video stream")
        stream = container.streams.video[0]
        middle = _duration(container, stream) / 2
        try:
            if middle > 0 and stream.time_base is not None:
                # Seeking lands on the keyframe at or before the middle, which can be the very
                # first frame of a short clip, so frames are decoded on up to the middle.
                with contextlib.suppress(av.FFmpegError):
                    container.seek(int(middle / stream.time_base), stream=stream)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time >= middle:
                    break
        except av.FFmpegError as e:
            raise PosterError(
                video, f"cannot make a poster: damaged video data ({e.strerror})"
            ) from e
        if chosen is None:
            raise PosterError(video, "cannot make a poster: no frame could be decoded")
        # libswscale scales while converting to RGB: decoding a full-size RGB image and then
        # scaling it in Pillow cost about three times as much (issue 10's profile).
        # Never larger than the video: an enlarged still shows nothing more and cost the
        # batch more than the rest of a small video's checks together.
        width = min(width, chosen.width)
        height = max(1, round(width * chosen.height / chosen.width))
        return chosen.to_image(width=width, height=height, interpolation="AREA")


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds, from the stream (exact for MP4), else the container; 0 when neither knows."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * Fraction(stream.time_base))
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0
