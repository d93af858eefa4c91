"""Differential conformance against the official `volcengine-ark-runtime` SDK (5.0.54, the wire
format oracle; module `volcenginesdkarkruntime`).

The SDK and the adapter send the same logical request to the Ark emulator on 127.0.0.1, which
records every request; method, path, query, auth scheme and key, content type, `Accept` and the
JSON body must be equal. Two differences are by design and normalised here: the SDK writes every
unset create option as an explicit JSON null, which the adapter leaves out (the service reads a
null as absent, providers.md "Corrections"), and the SDK's random `X-Client-Request-Id` and
`User-Agent` are its own telemetry.

The emulator's replies are parsed back through the SDK client, and every field they carry is
checked strictly against the type the SDK declares for it. (The SDK builds its models with
`construct`, without validation, and declares fields required that a queued task cannot have,
such as `error` and `content`, so a whole-model `model_validate` would prove nothing.)
"""

from __future__ import annotations

import time
import typing
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pydantic
import pytest
import pytest_asyncio
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkNotFoundError,
    ArkRateLimitError,
)
from volcenginesdkarkruntime.types.content_generation.content_generation_task import (
    ContentGenerationTask,
)
from volcenginesdkarkruntime.types.content_generation.content_generation_task_id import (
    ContentGenerationTaskID,
)
from volcenginesdkarkruntime.types.content_generation.list_content_generation_tasks_response import (  # noqa: E501
    ListContentGenerationTasksResponse,
)

from adapters.seedance import SeedanceAdapter
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.seedance import API_KEY, PREFIX, SeedanceEmulator

CREDS = Credentials({"api_key": API_KEY})
IMG = "https://img.example.com/fox.png"
TELEMETRY = {"x-client-request-id", "user-agent"}


@pytest.fixture
def emu() -> SeedanceEmulator:
    return SeedanceEmulator(latency=10)


@pytest.fixture
def base_url(emu: SeedanceEmulator) -> Iterator[str]:
    with serve(emu.app) as url:
        yield url + PREFIX


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def sdk(base_url: str) -> AsyncIterator[AsyncArk]:
    client = AsyncArk(api_key=API_KEY, base_url=base_url, max_retries=0)
    yield client
    await client.close()


@pytest_asyncio.fixture(loop_scope="function")
async def adapter(base_url: str) -> AsyncIterator[SeedanceAdapter]:
    async with SeedanceAdapter(base_url=base_url) as a:
        yield a


def wire(record: dict[str, Any], *, same_task: bool = True) -> dict[str, Any]:
    """What must match between SDK and adapter."""
    headers = record["headers"]
    body = record["body"]
    if isinstance(body, dict) and record["method"] == "POST":
        body = {k: v for k, v in body.items() if v is not None}  # the SDK's explicit nulls
    seen = {
        "method": record["method"],
        "path": record["path"] if same_task else record["path"].rsplit("/", 1)[0],
        "query": record["query"],
        "authorization": headers.get("authorization"),
        "accept": headers.get("accept"),
        "body": body,
    }
    if record["body"] is not None:
        seen["content-type"] = headers.get("content-type")
    return seen


def req(**kw: Any) -> StandardVideoRequest:
    base = {"prompt": "A red fox runs", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | kw))


def text(prompt: str) -> dict[str, str]:
    return {"type": "text", "text": prompt}


def first_frame(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "role": "first_frame"}


CASES = [
    pytest.param(
        req(seed=7),
        {"model": "seedance-1-0-pro-250528", "content": [text("A red fox runs")], "ratio": "16:9",
         "resolution": "720p", "duration": 5, "camera_fixed": False, "seed": 7},
        id="pro-text-default-model",
    ),
    pytest.param(
        req(model="seedance-1-0-pro-fast-251015", aspect_ratio="21:9", resolution="1080p",
            duration=12, style="noir", motion_intensity=1),
        {"model": "seedance-1-0-pro-fast-251015", "content": [text("A red fox runs. Style: noir.")],
         "ratio": "21:9", "resolution": "1080p", "duration": 12, "camera_fixed": True},
        id="pro-fast-text-still-camera",
    ),
    pytest.param(
        req(model="seedance-1-5-pro-251215", image_url=IMG, aspect_ratio="9:16", duration=4,
            seed=0),
        {"model": "seedance-1-5-pro-251215", "content": [text("A red fox runs"), first_frame(IMG)],
         "ratio": "9:16", "resolution": "720p", "duration": 4, "camera_fixed": False, "seed": 0},
        id="1.5-pro-first-frame",
    ),
    pytest.param(
        req(model="seedance-1-0-lite-i2v-250428", image_url="data:image/png;base64,iVBORw0KGgo=",
            aspect_ratio="1:1", resolution="480p", duration=2),
        {"model": "seedance-1-0-lite-i2v-250428",
         "content": [text("A red fox runs"), first_frame("data:image/png;base64,iVBORw0KGgo=")],
         "ratio": "1:1", "resolution": "480p", "duration": 2, "camera_fixed": False},
        id="lite-i2v-data-url",
    ),
    pytest.param(
        req(model="seedance-1-0-lite-t2v-250428", aspect_ratio="4:3", duration=8),
        {"model": "seedance-1-0-lite-t2v-250428", "content": [text("A red fox runs")],
         "ratio": "4:3", "resolution": "720p", "duration": 8, "camera_fixed": False},
        id="lite-t2v",
    ),
    pytest.param(
        req(model="seedance-1-5-pro-251215", duration=4, audio=False, options={"watermark": True}),
        {"model": "seedance-1-5-pro-251215", "content": [text("A red fox runs")], "ratio": "16:9",
         "resolution": "720p", "duration": 4, "camera_fixed": False, "generate_audio": False,
         "watermark": True},
        id="1.5-pro-audio-off-watermark",
    ),
    pytest.param(
        req(model="seedance-1-5-pro-251215", duration=4, audio=True, motion_intensity=1,
            options={"camera_fixed": False}),
        {"model": "seedance-1-5-pro-251215", "content": [text("A red fox runs")], "ratio": "16:9",
         "resolution": "720p", "duration": 4, "camera_fixed": False, "generate_audio": True},
        id="1.5-pro-audio-on-camera-fixed-option",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "sdk_kwargs"), CASES)
async def test_create_matches_the_sdk(emu, sdk, adapter, request_, sdk_kwargs):
    created = await sdk.content_generation.tasks.create(**sdk_kwargs)
    job_id = await adapter.submit(request_, CREDS)

    by_sdk, by_adapter = emu.recorded
    assert wire(by_adapter) == wire(by_sdk)
    assert None in by_sdk["body"].values()  # the SDK's nulls, which the emulator accepts
    assert by_adapter["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert isinstance(created, ContentGenerationTaskID) and created.id in emu.jobs
    assert job_id in emu.jobs and emu.submissions == 2


async def test_a_seed_named_by_the_reference_is_the_sdks_seed_argument(emu, sdk, adapter):
    # With a reference and no seed of its own, the adapter sends a seed derived from it (so a
    # lost send's task can be found), which must be the body the SDK sends for that seed.
    await sdk.content_generation.tasks.create(**(CASES[0].values[1] | {"seed": 926353264}))
    await adapter.submit(req(), CREDS, reference="sf-job-1-1")

    by_sdk, by_adapter = emu.recorded
    assert wire(by_adapter) == wire(by_sdk)


async def test_get_list_and_delete_match_the_sdk(emu, sdk, adapter):
    first = (await sdk.content_generation.tasks.create(**CASES[0].values[1])).id
    second = await adapter.submit(req(seed=7), CREDS)

    await sdk.content_generation.tasks.get(task_id=first)
    await adapter.status(first, CREDS)
    assert wire(emu.recorded[-1]) == wire(emu.recorded[-2])

    await sdk.content_generation.tasks.list(page_num=1, page_size=1)
    await adapter.test_connection(CREDS)
    assert wire(emu.recorded[-1]) == wire(emu.recorded[-2])

    model = "seedance-1-0-pro-250528"
    await sdk.content_generation.tasks.list(page_num=1, page_size=500, model=model)
    await adapter.find_submitted(req(seed=7), CREDS, since=datetime.now(UTC) - timedelta(hours=1))
    lists = [r for r in emu.recorded if r["method"] == "GET" and r["path"].endswith("/tasks")]
    assert wire(lists[-1]) == wire(lists[-2])

    await sdk.content_generation.tasks.delete(first)
    await adapter.cancel(second, CREDS)  # reads the task first, then deletes it (queued)
    deletes = [r for r in emu.recorded if r["method"] == "DELETE"]
    assert len(deletes) == 2
    assert wire(deletes[1], same_task=False) == wire(deletes[0], same_task=False)
    assert deletes[0]["body"] == {} and deletes[0]["headers"]["content-type"] == "application/json"


def typed_fields(model: type[pydantic.BaseModel], raw: dict[str, Any]) -> None:
    """Every non-null field in `raw` that `model` declares has the type the SDK declares."""
    hints = typing.get_type_hints(model)
    for name, value in raw.items():
        if value is None or name not in hints:
            continue
        annotation = hints[name]
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            typed_fields(annotation, value)
        else:
            pydantic.TypeAdapter(annotation).validate_python(value, strict=True)


@pytest.mark.parametrize(
    ("setup", "elapsed"),
    [
        ("queued", 0),
        ("running", 5),
        ("succeeded", 11),
        ("failed", 11),
        ("cancelled", 0),
        ("expired", 0),
    ],
)
async def test_sdk_parses_every_task_state_the_emulator_sends(
    emu, sdk, adapter, base_url, setup, elapsed
):
    if setup == "failed":
        emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    emu.jobs[job_id].created = time.monotonic() - elapsed
    if setup == "cancelled":
        await adapter.cancel(job_id, CREDS)
    if setup == "expired":
        emu.expire(job_id)

    task = await sdk.content_generation.tasks.get(task_id=job_id)
    assert isinstance(task, ContentGenerationTask)
    assert (task.id, task.status, task.model) == (job_id, setup, "seedance-1-0-pro-250528")
    assert isinstance(task.created_at, int) and task.framespersecond == 24
    if setup == "succeeded":
        assert task.content.video_url.startswith(base_url.removesuffix(PREFIX) + "/tos/")
        assert task.usage.completion_tokens > 0
    if setup == "failed":
        assert task.error.code == "InternalServiceError" and task.error.message

    async with httpx.AsyncClient() as client:
        url = f"{base_url}/contents/generations/tasks/{job_id}"
        raw = (await client.get(url, headers=auth())).json()
    typed_fields(ContentGenerationTask, raw)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


async def test_sdk_reads_the_emulators_list_pages(emu, sdk, adapter, base_url):
    ids = [await adapter.submit(req(prompt=f"take {n}"), CREDS) for n in range(3)]
    await adapter.submit(req(model="seedance-1-0-pro-fast-251015"), CREDS)
    page = await sdk.content_generation.tasks.list(
        page_num=1, page_size=2, model="seedance-1-0-pro-250528"
    )
    assert isinstance(page, ListContentGenerationTasksResponse)
    assert page.total == 3 and [t.id for t in page.items] == ids[:0:-1]  # newest first
    picked = await sdk.content_generation.tasks.list(task_ids=[ids[0], ids[2]])
    assert {t.id for t in picked.items} == {ids[0], ids[2]}
    queued = await sdk.content_generation.tasks.list(status="queued")
    assert queued.total == 4

    async with httpx.AsyncClient() as client:
        url = f"{base_url}/contents/generations/tasks"
        raw = (await client.get(url, params={"page_size": 2}, headers=auth())).json()
    assert set(raw) == {"total", "items"} and isinstance(raw["total"], int)
    for item in raw["items"]:
        typed_fields(ContentGenerationTask, item)


async def test_sdk_reads_the_emulators_errors(emu, base_url, sdk):
    wrong = AsyncArk(api_key="ffffffff-0000", base_url=base_url, max_retries=0)
    with pytest.raises(ArkAuthenticationError) as denied:
        await wrong.content_generation.tasks.list(page_num=1, page_size=1)
    await wrong.close()
    assert denied.value.code == "AuthenticationError"

    with pytest.raises(ArkBadRequestError) as bad:
        await sdk.content_generation.tasks.create(
            model="seedance-1-0-pro-250528", content=[text("x")], duration=30
        )
    assert bad.value.code == "InvalidParameter.duration" and bad.value.param == "duration"

    with pytest.raises(ArkNotFoundError):
        await sdk.content_generation.tasks.get(task_id="cgt-none")

    emu.inject("status", "429", retry_after=3)
    with pytest.raises(ArkRateLimitError) as limited:
        await sdk.content_generation.tasks.get(task_id="any")
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.code == "RateLimitExceeded.EndpointRPMExceeded"

    emu.inject("submit", "moderation")
    with pytest.raises(ArkBadRequestError) as flagged:
        await sdk.content_generation.tasks.create(
            model="seedance-1-0-pro-250528", content=[text("x")]
        )
    assert flagged.value.code == "InputTextSensitiveContentDetected"
