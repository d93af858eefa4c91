"""Smoke test against the real Kling API; runs only with KLING_ACCESS_KEY and KLING_SECRET_KEY
set. It submits one cheap generation (kling-v1-6, std mode, 720p, 5 s, text-to-video: a few
credits), then checks what the emulator can only assume: that the status path and envelope
read as expected, and that the task is found again by its external_task_id, and that an unknown
one is answered "not found" (UNCONFIRMED choices of adapters/kling.py). The base URL comes from
SCENEFLOW_BASE_URLS__KLING when set. The task is not awaited or downloaded; it costs as much
either way and shows up in Kling's console.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.kling import ENV_KEYS, KlingAdapter
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, Lookup

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(os.environ.get(k) for k in ENV_KEYS),
        reason=f"set {' and '.join(ENV_KEYS)} to run the live Kling test",
    ),
]


async def test_one_cheap_generation_and_its_lookup_by_reference() -> None:
    access, secret = (os.environ[k] for k in ENV_KEYS)
    creds = Credentials({"access_key": access, "secret_key": secret})
    request = StandardVideoRequest(
        prompt="A paper boat drifts on a calm pond",
        aspect_ratio="16:9",
        motion_intensity=3,
        duration=5,
        resolution="720p",
        model="kling-v1-6",
    )
    reference = f"sceneflow-smoke-{uuid.uuid4().hex[:16]}"
    since = datetime.now(UTC) - timedelta(minutes=2)
    async with KlingAdapter(base_url=os.environ.get("SCENEFLOW_BASE_URLS__KLING")) as kling:
        await kling.test_connection(creds)
        job_id = await kling.submit(request, creds, reference=reference)
        assert job_id.startswith("text2video:")
        result = await kling.status(job_id, creds)
        assert result.status in (JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED)
        found = await kling.find_submitted(request, creds, since=since, reference=reference)
        assert found == Lookup(job_ids=[job_id], complete=True)
        unknown = f"sceneflow-never-sent-{uuid.uuid4().hex[:16]}"
        missing = await kling.find_submitted(request, creds, since=since, reference=unknown)
        assert missing == Lookup(job_ids=[], complete=True)
