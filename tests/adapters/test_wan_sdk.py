"""Differential conformance against the official `dashscope` SDK (2.0.2, the wire-format oracle).

The SDK (its 1.x `VideoSynthesis` API, pointed at the emulator through
`dashscope.base_http_api_url`) and the adapter send the same logical request to the DashScope
emulator on 127.0.0.1, which records every request. Method, path, query, auth scheme and key,
`Content-Type` and `Accept`, `X-DashScope-Async`, `X-DashScope-WorkSpace` and the JSON body must
be equal. Telemetry (`user-agent`, `x-dashscope-sdk-client`, `x-dashscope-sdk-session-id`) is the
SDK's own business and is ignored.

The emulator's replies are then parsed with the SDK's own response types: `VideoSynthesisResponse`
through the SDK client, and the 2.x `Job` and `JobList` models from the raw JSON, to show the
emulator speaks what DashScope speaks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dashscope
import httpx
import pytest
import pytest_asyncio
from dashscope import VideoSynthesis
from dashscope.api_entities.dashscope_response import VideoSynthesisResponse
from dashscope.v2.resources._jobs import Job, JobList

from adapters.wan import WanAdapter
from sceneflow.errors import ModerationError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.wan import API_KEY, PREFIX, WanEmulator

CREDS = Credentials({"api_key": API_KEY})
IMG = "https://img.example.com/fox.png"
COMPARED = (
    "authorization",
    "accept",
    "x-dashscope-async",
    "x-dashscope-workspace",
)


@pytest.fixture
def emu() -> WanEmulator:
    return WanEmulator(latency=10)


@pytest.fixture
def base_url(emu: WanEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(emu.app) as url:
        monkeypatch.setattr(dashscope, "base_http_api_url", url + PREFIX)
        yield url + PREFIX


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def adapter(base_url: str) -> AsyncIterator[WanAdapter]:
    async with WanAdapter(base_url=base_url) as a:
        yield a


def wire(record: dict[str, Any], *, task_id: str | None = None) -> dict[str, Any]:
    """What must match between SDK and adapter; `task_id` is blanked out of the path."""
    headers = record["headers"]
    seen = {
        "method": record["method"],
        "path": record["path"].replace(task_id, "{id}") if task_id else record["path"],
        "query": record["query"],
        "body": record["body"],
        **{name: headers.get(name) for name in COMPARED},
    }
    if record["body"] is not None:
        seen["content-type"] = headers.get("content-type")
    return seen


def req(**kw: Any) -> StandardVideoRequest:
    base = {"prompt": "A red fox runs", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | kw))


CASES = [
    pytest.param(
        req(seed=7), {},
        {"model": "wanx2.1-t2v-turbo", "prompt": "A red fox runs", "size": "1280*720",
         "duration": 5, "seed": 7},
        id="t2v-default-model",
    ),
    pytest.param(
        req(model="wan2.2-t2v-plus", resolution="1080p", aspect_ratio="9:16", style="noir",
            negative_prompt="blur"), {},
        {"model": "wan2.2-t2v-plus", "prompt": "A red fox runs. Style: noir.",
         "negative_prompt": "blur", "size": "1080*1920", "duration": 5},
        id="t2v-negative-prompt-1080p",
    ),
    pytest.param(
        req(model="wan2.5-t2v-preview", duration=10, aspect_ratio="1:1", resolution="480p"),
        {"workspace": "ws-1"},
        {"model": "wan2.5-t2v-preview", "prompt": "A red fox runs", "size": "624*624",
         "duration": 10, "workspace": "ws-1"},
        id="t2v-workspace",
    ),
    pytest.param(
        req(image_url=IMG, duration=3, resolution="480p", seed=11), {},
        {"model": "wanx2.1-i2v-turbo", "prompt": "A red fox runs", "img_url": IMG,
         "resolution": "480P", "duration": 3, "seed": 11},
        id="i2v",
    ),
    pytest.param(
        req(model="wanx2.1-kf2v-plus", image_url=IMG), {},
        {"model": "wanx2.1-kf2v-plus", "prompt": "A red fox runs", "first_frame_url": IMG,
         "resolution": "720P", "duration": 5},
        id="kf2v-image2video-path",
    ),
    pytest.param(
        req(options={"prompt_extend": False, "watermark": True}), {},
        {"model": "wanx2.1-t2v-turbo", "prompt": "A red fox runs", "size": "1280*720",
         "duration": 5, "prompt_extend": False, "watermark": True},
        id="t2v-prompt-extend-off-watermark",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "extra_creds", "sdk_kwargs"), CASES)
async def test_create_matches_the_sdk(emu, adapter, request_, extra_creds, sdk_kwargs):
    created = VideoSynthesis.async_call(api_key=API_KEY, **sdk_kwargs)
    job_id = await adapter.submit(request_, Credentials({"api_key": API_KEY} | extra_creds))

    by_sdk, by_adapter = emu.recorded
    assert wire(by_adapter) == wire(by_sdk)
    assert by_adapter["headers"]["x-dashscope-async"] == "enable"
    assert isinstance(created, VideoSynthesisResponse) and created.status_code == 200
    assert created.output.task_id in emu.jobs and created.output.task_status == "PENDING"
    assert job_id in emu.jobs and emu.submissions == 2


async def test_fetch_cancel_and_list_match_the_sdk(emu, adapter):
    creds = Credentials({"api_key": API_KEY, "workspace": "ws-1"})
    first = VideoSynthesis.async_call(
        model="wanx2.1-t2v-turbo", prompt="x", api_key=API_KEY, workspace="ws-1"
    ).output.task_id
    second = await adapter.submit(req(), creds)

    VideoSynthesis.fetch(first, api_key=API_KEY, workspace="ws-1")
    await adapter.status(second, creds)
    assert wire(emu.recorded[-1], task_id=second) == wire(emu.recorded[-2], task_id=first)

    VideoSynthesis.cancel(first, api_key=API_KEY, workspace="ws-1")
    sdk_cancel = emu.recorded[-1]
    await adapter.cancel(second, creds)  # a GET for the state, then the cancel
    assert wire(emu.recorded[-1], task_id=second) == wire(sdk_cancel, task_id=first)
    assert sdk_cancel["headers"]["content-length"] == emu.recorded[-1]["headers"]["content-length"]

    VideoSynthesis.list(page_no=1, page_size=1, api_key=API_KEY, workspace="ws-1")
    await adapter.test_connection(creds)
    assert wire(emu.recorded[-1]) == wire(emu.recorded[-2])

    await adapter.find_submitted(req(), creds, since=datetime.now(UTC) - timedelta(minutes=1))
    lookup = next(r for r in reversed(emu.recorded) if "start_time" in r["query"])
    q = lookup["query"]
    VideoSynthesis.list(
        start_time=q["start_time"],
        end_time=q["end_time"],
        model_name=q["model_name"],
        page_no=1,
        page_size=int(q["page_size"]),
        api_key=API_KEY,
        workspace="ws-1",
    )
    assert wire(emu.recorded[-1]) == wire(lookup)


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ("pending", "PENDING"),
        ("suspended", "SUSPENDED"),
        ("running", "RUNNING"),
        ("succeeded", "SUCCEEDED"),
        ("failed", "FAILED"),
        ("canceled", "CANCELED"),
        ("unknown", "UNKNOWN"),
    ],
)
async def test_sdk_parses_every_task_state_the_emulator_sends(
    emu, adapter, base_url, setup, status
):
    if setup == "failed":
        emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    elapsed = {"running": 6, "succeeded": 11, "failed": 11}.get(setup, 0)
    emu.jobs[job_id].created = time.monotonic() - elapsed
    if setup == "suspended":
        emu.suspend(job_id)
    if setup == "canceled":
        await adapter.cancel(job_id, CREDS)
    if setup == "unknown":
        emu.expire(job_id)

    fetched = VideoSynthesis.fetch(job_id, api_key=API_KEY)
    assert isinstance(fetched, VideoSynthesisResponse) and fetched.status_code == 200
    assert fetched.output.task_id == job_id and fetched.output.task_status == status

    async with httpx.AsyncClient() as client:
        raw = (await client.get(f"{base_url}/tasks/{job_id}", headers=headers())).json()
    job = Job.from_payload(raw)
    assert (job.task_id, job.status) == (job_id, status)
    assert job.finished is (status in ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"))
    if status == "SUCCEEDED":
        assert fetched.output.video_url.startswith(base_url.removesuffix(PREFIX) + "/_outputs/")
        # The signed query (its expiry counts from each reply) differs between two fetches.
        assert job.video_url.split("?")[0] == fetched.output.video_url.split("?")[0]
        assert fetched.usage.video_duration == 5 and fetched.usage.video_count == 1
    if status == "FAILED":
        assert (fetched.output.code, job.output["code"]) == ("InternalError.Algo",) * 2  # type: ignore[index]
    if status != "UNKNOWN":
        assert job.submitted_at is not None


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


async def test_the_task_list_is_the_sdks_job_list(emu, adapter, base_url):
    ids = [await adapter.submit(req(prompt=p), CREDS) for p in ("one", "two", "three")]
    listed = VideoSynthesis.list(page_no=1, page_size=2, api_key=API_KEY)
    assert listed.status_code == 200 and listed.output["total"] == 3

    async with httpx.AsyncClient() as client:
        params = {"page_no": 1, "page_size": 2}
        raw = (await client.get(f"{base_url}/tasks", params=params, headers=headers())).json()
    page = JobList.from_payload(raw)
    assert (page.page_no, page.page_size, page.total) == (1, 2, 3)
    assert {t.task_id for t in page.tasks} <= set(ids) and len(page.tasks) == 2
    assert all(t.status == "PENDING" and t.submitted_at for t in page.tasks)


def test_sdk_reads_the_emulators_errors(emu, base_url):
    wrong = VideoSynthesis.fetch("any", api_key="sk-" + "f" * 32)
    assert (wrong.status_code, wrong.code) == (401, "InvalidApiKey")
    assert wrong.message == "Invalid API-key provided."

    bad = VideoSynthesis.async_call(
        model="wanx2.1-t2v-turbo", prompt="x", size="1920*1080", api_key=API_KEY
    )
    assert (bad.status_code, bad.code) == (400, "InvalidParameter")
    assert bad.message.startswith("The size is not match")

    emu.inject("submit", "moderation")
    refused = VideoSynthesis.async_call(model="wanx2.1-t2v-turbo", prompt="x", api_key=API_KEY)
    assert (refused.status_code, refused.code) == (400, "DataInspectionFailed")

    emu.inject("status", "429", retry_after=3)
    limited = VideoSynthesis.fetch("any", api_key=API_KEY)
    assert (limited.status_code, limited.code) == (429, "Throttling.RateQuota")
    assert emu.submissions == 0


async def test_adapter_reads_the_moderation_the_sdk_sees(emu, adapter):
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError, match="DataInspectionFailed"):
        await adapter.submit(req(), CREDS)
