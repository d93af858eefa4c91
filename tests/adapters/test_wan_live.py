"""Smoke test against the real DashScope API. Runs only with DASHSCOPE_API_KEY set (the SDK's own
variable); DASHSCOPE_REGION (singapore, virginia or beijing; default singapore) and
DASHSCOPE_WORKSPACE_ID are optional. It checks the key with a one-item task list, then submits
one cheap generation (wanx2.1-t2v-turbo, 480p, 5 s: this is billed), waits for it and downloads
the video."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import av
import pytest

from adapters.wan import ENV_KEY, WanAdapter
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from sceneflow.settings import get_settings


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get(ENV_KEY), reason=f"set {ENV_KEY} to run the live Wan test")
async def test_one_cheap_generation_against_the_real_dashscope_api(tmp_path: Path) -> None:
    values = {"api_key": os.environ[ENV_KEY], "region": os.environ.get("DASHSCOPE_REGION")}
    values["workspace"] = os.environ.get("DASHSCOPE_WORKSPACE_ID")
    credentials = Credentials({k: v for k, v in values.items() if v})
    request = StandardVideoRequest(
        prompt="A paper boat drifts on a calm pond, soft morning light",
        aspect_ratio="16:9",
        motion_intensity=3,
        duration=5,
        resolution="480p",
        model="wanx2.1-t2v-turbo",
    )
    # The base URL comes from SCENEFLOW_BASE_URLS__WAN if set, else from the region.
    base_url = {k.lower(): v for k, v in get_settings().base_urls.items()}.get("wan")
    async with WanAdapter(base_url=base_url) as wan:
        await wan.test_connection(credentials)
        job_id = await wan.submit(request, credentials)
        deadline = time.monotonic() + 900
        result = await wan.status(job_id, credentials)
        while result.status in (JobStatus.QUEUED, JobStatus.PROCESSING):
            assert time.monotonic() < deadline, f"task {job_id} did not finish in 15 minutes"
            await asyncio.sleep(10)
            result = await wan.status(job_id, credentials)
        assert result.status == JobStatus.COMPLETED, result.error_message
        path = await wan.download(result, credentials, tmp_path / "wan.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video and container.duration
