"""Smoke test against the real Ark API. Runs only with ARK_API_KEY set (the SDK's own variable).

It checks the key with the task list (free), then submits one cheap generation (5 s at 480p on
Seedance 1.0 lite, text to video), waits for it and downloads it. The host is BytePlus unless
SCENEFLOW_BASE_URLS__SEEDANCE points elsewhere (for Volcengine,
https://ark.cn-beijing.volces.com/api/v3 with
SEEDANCE_LIVE_MODEL=doubao-seedance-1-0-lite-t2v-250428).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import av
import pytest

from adapters.seedance import ENV_KEY, SeedanceAdapter
from sceneflow.errors import RejectedError
from sceneflow.models import TERMINAL_STATUSES, JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from sceneflow.settings import get_settings

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get(ENV_KEY), reason=f"set {ENV_KEY} to run the live Seedance test"
    ),
]


async def test_one_cheap_generation_end_to_end(tmp_path: Path) -> None:
    urls = {k.lower(): v for k, v in get_settings().base_urls.items()}
    creds = Credentials({"api_key": os.environ[ENV_KEY]})
    request = StandardVideoRequest(
        prompt="A paper boat drifts on a calm pond, soft morning light",
        aspect_ratio="16:9",
        motion_intensity=3,
        duration=5,
        resolution="480p",
        model=os.environ.get("SEEDANCE_LIVE_MODEL", "seedance-1-0-lite-t2v-250428"),
    )
    async with SeedanceAdapter(base_url=urls.get("seedance")) as adapter:
        await adapter.test_connection(creds)
        job_id = await adapter.submit(request, creds)
        interval = adapter.capabilities().poll_interval
        for _ in range(120):  # about 10 minutes at most
            result = await adapter.status(job_id, creds)
            if result.status in TERMINAL_STATUSES:
                break
            await asyncio.sleep(interval)
        else:
            with contextlib.suppress(RejectedError):  # a running task cannot be cancelled
                await adapter.cancel(job_id, creds)
            pytest.fail(f"task {job_id} did not finish in time")
        assert result.status == JobStatus.COMPLETED, result.error_message
        path = await adapter.download(result, creds, tmp_path / "seedance.mp4")
    with av.open(str(path)) as container:
        assert container.duration and container.duration / 1_000_000 >= 4
