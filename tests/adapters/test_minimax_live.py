"""Live smoke test against the real MiniMax API; runs only with MINIMAX_API_KEY set.

It checks the key, then submits ONE cheap generation (MiniMax-Hailuo-2.3, 6 s at 768P, which is
billed), polls it to the end and downloads the video. Set SCENEFLOW_BASE_URLS__MINIMAX to
https://api.minimaxi.com for a key of the China platform.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from adapters.minimax import ENV_KEY, MiniMaxAdapter
from sceneflow.media import verify_video
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get(ENV_KEY), reason=f"set {ENV_KEY} to run the live MiniMax test"
    ),
]


@pytest.mark.timeout(1500)
async def test_one_cheap_generation_end_to_end(tmp_path: Path) -> None:
    credentials = Credentials({"api_key": os.environ[ENV_KEY]})
    request = StandardVideoRequest(
        prompt="A paper boat drifts slowly on a calm pond, soft morning light",
        aspect_ratio="16:9",
        motion_intensity=3,
        duration=6,
        resolution="720p",  # MiniMax's 768P, its cheapest tier for this model
    )
    async with MiniMaxAdapter(base_url=os.environ.get("SCENEFLOW_BASE_URLS__MINIMAX")) as mm:
        await mm.test_connection(credentials)
        task_id = await mm.submit(request, credentials)
        deadline = time.monotonic() + 1200
        while True:
            result = await mm.status(task_id, credentials)
            if result.status in (JobStatus.COMPLETED, JobStatus.FAILED):
                break
            assert time.monotonic() < deadline, f"task {task_id} did not finish in 20 minutes"
            await asyncio.sleep(mm.capabilities().poll_interval)
        assert result.status == JobStatus.COMPLETED, result.error_message
        path = await mm.download(result, credentials, tmp_path / "minimax.mp4")
    verify_video(path, expected_duration=6)
