"""Reading videos back: what a file really holds, checked before a job is called COMPLETED.

A provider's word that a job succeeded is not proof: a download can be truncated, an HTML error
page, or a clip of the wrong length. The pipeline probes every download with `verify_video`.
"""

from __future__ import annotations

from pathlib import Path

import av
from pydantic import BaseModel, ConfigDict

__all__ = ["InvalidVideoError", "VideoInfo", "probe_video", "verify_video"]


class InvalidVideoError(ValueError):
    """The file is not a playable video, or not the video that was asked for."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class VideoInfo(BaseModel):
    """What a video file holds, as read from its container and first video stream."""

    model_config = ConfigDict(frozen=True)

    duration: float
    width: int
    height: int
    fps: float
    frames: int
    codec: str
    size_bytes: int


def probe_video(path: str | Path) -> VideoInfo:
    """Open `path` with PyAV and describe its first video stream; raise InvalidVideoError if
    the file is missing, empty, not a container, or has no video stream."""
    info, _ = _read(Path(path), count_packets=False)
    return info


def _read(path: Path, *, count_packets: bool) -> tuple[VideoInfo, int]:
    """The stream's description and, with `count_packets`, the video packets really in the
    file, from one open (each open costs about as much as the demux of a short clip)."""
    if not path.is_file():
        raise InvalidVideoError(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidVideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise InvalidVideoError(path, f"not a video container ({e.strerror})") from e
    with container:
        if not container.streams.video:
            raise InvalidVideoError(path, "no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        present = -1
        if count_packets or not stream.frames:
            try:
                present = sum(1 for p in container.demux(stream) if p.size)
            except av.FFmpegError as e:
                raise InvalidVideoError(path, f"damaged video data ({e.strerror})") from e
        frames = stream.frames or present
        # The stream's own duration is exact for MP4; the container's may include other
        # streams or be missing, and frames/fps is the last resort for raw streams.
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frames / fps if fps else 0.0
        info = VideoInfo(
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            frames=frames,
            codec=stream.codec_context.name,
            size_bytes=size,
        )
    return info, present


def verify_video(
    path: str | Path, *, expected_duration: float | None = None, tolerance: float = 0.25
) -> VideoInfo:
    """`probe_video`, then raise InvalidVideoError if the video has no frames, is cut short, or
    its duration is off from `expected_duration` by more than `tolerance` (0.25 is 25%)."""
    path = Path(path)
    # The index (moov) can sit at the front and list every frame of a file cut short, so
    # the packets really present are counted; demuxing reads no pixels and is cheap.
    info, present = _read(path, count_packets=True)
    if info.frames == 0 or info.duration <= 0:
        raise InvalidVideoError(path, "the video stream holds no frames")
    if present < info.frames:
        raise InvalidVideoError(
            path,
            f"truncated: the index lists {info.frames} frames but only {present} are in "
            "the file; download it again",
        )
    if expected_duration is not None and expected_duration > 0:
        off = abs(info.duration - expected_duration) / expected_duration
        if off > tolerance:
            raise InvalidVideoError(
                path,
                f"lasts {info.duration:.2f} s but {expected_duration:.2f} s was asked for "
                f"(off by {off:.0%}, more than the {tolerance:.0%} allowed)",
            )
    return info
