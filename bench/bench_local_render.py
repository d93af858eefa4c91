"""How fast the local provider renders 5 s of 1280x720 at 24 fps (issue 3: "well under its
playing time on 2 cores").

Run: `python -m bench.bench_local_render [--jobs N] [--quality Q] [--json]`.

The machine is shared and noisy, so the same run also times a baseline: PyAV encoding the same
number of solid-colour frames with the same x264 settings. A solid frame costs the encoder almost
nothing, so the baseline is the floor of container, encoder and frame-transfer overhead on this
machine right now. `vs_baseline` is how much the real picture costs on top of that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 24, 5.0
PROMPT = "A calm ocean at sunset, waves rolling under gold light"


def baseline_seconds(frames: int, preset: str, crf: int, path: Path) -> float:
    """Encode `frames` solid-colour 720p frames with PyAV, as the local renderer does."""
    solid = np.full((HEIGHT * 3 // 2, WIDTH), 96, np.uint8)
    started = time.perf_counter()
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf)}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(solid, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return time.perf_counter() - started


async def render_jobs(jobs: int, quality: str) -> tuple[float, list[dict[str, Any]]]:
    """Submit `jobs` different 5 s 720p videos at once; wall time until all are COMPLETED."""
    from adapters.local.adapter import LocalAdapter
    from sceneflow.models import JobStatus, StandardVideoRequest
    from sceneflow.providers import Credentials

    adapter, creds = LocalAdapter(), Credentials({})
    requests = [
        StandardVideoRequest(prompt=PROMPT, aspect_ratio="16:9", resolution="720p", fps=FPS,
                             duration=SECONDS, motion_intensity=6, quality=quality, seed=seed)
        for seed in range(jobs)
    ]  # fmt: skip
    started = time.perf_counter()
    ids = [await adapter.submit(r, creds) for r in requests]
    details: dict[str, dict[str, Any]] = {}
    while len(details) < jobs:
        for job_id in ids:
            if job_id in details:
                continue
            result = await adapter.status(job_id, creds)
            if result.status is JobStatus.COMPLETED:
                details[job_id] = result.provider_details
            elif (
                result.status is not JobStatus.PROCESSING and result.status is not JobStatus.QUEUED
            ):
                raise RuntimeError(f"{job_id} ended {result.status}: {result.error_message}")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started, [details[i] for i in ids]


def run(*, jobs: int = 2, quality: str = "standard") -> dict[str, Any]:
    """All measurements in one fresh data directory; returns them as a dict."""
    from adapters.local.renderer import ENCODER
    from sceneflow.settings import get_settings

    frames = round(SECONDS * FPS)
    preset, crf = ENCODER[quality]
    previous = os.environ.get("SCENEFLOW_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        os.environ["SCENEFLOW_HOME"] = tmp
        get_settings.cache_clear()
        try:
            base = baseline_seconds(frames, preset, crf, Path(tmp) / "baseline.mp4")
            one_wall, (one,) = asyncio.run(render_jobs(1, quality))
            many_wall = asyncio.run(render_jobs(jobs, quality))[0] if jobs > 1 else one_wall
        finally:
            if previous is None:
                os.environ.pop("SCENEFLOW_HOME")
            else:
                os.environ["SCENEFLOW_HOME"] = previous
            get_settings.cache_clear()
    return {
        "video": f"{WIDTH}x{HEIGHT} @ {FPS} fps, {SECONDS:g} s ({frames} frames)",
        "quality": quality, "preset": preset, "crf": crf, "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "baseline_solid_seconds": round(base, 3),
        "one_job_wall_seconds": round(one_wall, 3),
        "one_job_render_seconds": one["render_seconds"],
        "one_job_ratio": round(one_wall / SECONDS, 3),
        "one_job_vs_baseline": round(one_wall / base, 2),
        "jobs": jobs,
        "jobs_wall_seconds": round(many_wall, 3),
        "jobs_ratio_per_video": round(many_wall / (jobs * SECONDS), 3),
    }  # fmt: skip


def table(r: dict[str, Any]) -> str:
    base = r["baseline_solid_seconds"]
    rows = [
        ("baseline: PyAV, solid frames", base, base / SECONDS),
        ("local adapter, 1 job", r["one_job_wall_seconds"], r["one_job_ratio"]),
    ]
    if r["jobs"] > 1:
        name = f"local adapter, {r['jobs']} jobs at once"
        rows.append((name, r["jobs_wall_seconds"], r["jobs_ratio_per_video"]))
    lines = [
        f"{r['video']}, quality={r['quality']} (x264 {r['preset']}, crf {r['crf']}), "
        f"{r['cpus']} cpus, load {r['load_average_1m']}",
        f"{'run':<34} {'wall s':>8} {'render/playing':>15}",
    ]
    lines += [f"{name:<34} {wall:>8.2f} {ratio:>15.2f}" for name, wall, ratio in rows]
    lines.append(
        f"1 job costs {r['one_job_vs_baseline']:.1f}x the solid-frame baseline; "
        "render/playing < 1.0 is faster than real time (per video for N jobs)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2, help="jobs rendered at once (default 2)")
    parser.add_argument("--quality", default="standard", choices=["draft", "standard", "high"])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = run(jobs=args.jobs, quality=args.quality)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
