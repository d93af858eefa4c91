"""Differential conformance against the official `runwayml` SDK (5.24.0, the wire-format oracle).

The SDK and the adapter send the same logical request to the Runway emulator on 127.0.0.1, which
records every request; method, path, auth scheme and key, `X-Runway-Version`, the JSON content
type of bodies and the JSON bodies must be equal. Telemetry (`x-stainless-*`, `user-agent`) is
the SDK's own business and is ignored, as is `Accept` on GET/POST (the SDK asks for
`application/json`, the adapter takes httpx's `*/*`; Runway answers JSON either way). The DELETE's
`Accept: */*` is compared because the SDK sets it on purpose.

The emulator's replies are then parsed with the SDK's own response types, through the SDK client
and strictly with `model_validate`, to show the emulator speaks what Runway speaks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import runwayml
from runwayml import AsyncRunwayML
from runwayml.types import OrganizationRetrieveResponse
from runwayml.types import task_retrieve_response as task_types

from adapters.runway import RunwayAdapter
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.runway import API_KEY, RunwayEmulator

CREDS = Credentials({"api_key": API_KEY})
IMG = "https://img.example.com/fox.png"


@pytest.fixture
def emu() -> RunwayEmulator:
    return RunwayEmulator(latency=10)


@pytest.fixture
def base_url(emu: RunwayEmulator) -> Iterator[str]:
    with serve(emu.app) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def sdk(base_url: str) -> AsyncIterator[AsyncRunwayML]:
    client = AsyncRunwayML(api_key=API_KEY, base_url=base_url, max_retries=0)
    yield client
    await client.close()


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def adapter(base_url: str) -> AsyncIterator[RunwayAdapter]:
    async with RunwayAdapter(base_url=base_url) as a:
        yield a


def wire(record: dict[str, Any]) -> dict[str, Any]:
    """What must match between SDK and adapter."""
    headers = record["headers"]
    seen = {
        "method": record["method"],
        "path": record["path"],
        "authorization": headers.get("authorization"),
        "x-runway-version": headers.get("x-runway-version"),
        "body": record["body"],
    }
    if record["body"] is not None:
        seen["content-type"] = headers.get("content-type")
    if record["method"] == "DELETE":
        seen["accept"] = headers.get("accept")
        seen["path"] = record["path"].rsplit("/", 1)[0]  # two different tasks
    return seen


def req(**kw: Any) -> StandardVideoRequest:
    base = {"prompt": "A red fox runs", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | kw))


CASES = [
    pytest.param(
        req(seed=7),
        ("text_to_video", {"model": "gen4.5", "prompt_text": "A red fox runs", "ratio": "1280:720",
                           "duration": 5, "seed": 7}),
        id="gen4.5-text-default-model",
    ),
    pytest.param(
        req(model="veo3.1", aspect_ratio="9:16", resolution="1080p", duration=6, seed=3,
            negative_prompt="blur", style="noir"),
        ("text_to_video", {"model": "veo3.1", "prompt_text": "A red fox runs. Style: noir.",
                           "ratio": "1080:1920", "duration": 6, "seed": 3,
                           "negative_prompt": "blur"}),
        id="veo3.1-text-negative-prompt",
    ),
    pytest.param(
        req(aspect_ratio="21:9", image_url=IMG, duration=10),
        ("image_to_video", {"model": "gen4.5", "prompt_text": "A red fox runs", "ratio": "1584:672",
                            "duration": 10, "prompt_image": IMG}),
        id="gen4.5-image",
    ),
    pytest.param(
        req(model="gen4_turbo", aspect_ratio="1:1", image_url=IMG, duration=3),
        ("image_to_video", {"model": "gen4_turbo", "prompt_text": "A red fox runs",
                            "ratio": "960:960", "duration": 3, "prompt_image": IMG}),
        id="gen4_turbo-image",
    ),
    pytest.param(
        req(model="veo3.1_fast", image_url=IMG, duration=4, negative_prompt="rain"),
        ("image_to_video", {"model": "veo3.1_fast", "prompt_text": "A red fox runs",
                            "ratio": "1280:720", "duration": 4, "prompt_image": IMG,
                            "negative_prompt": "rain"}),
        id="veo3.1_fast-image",
    ),
    pytest.param(
        req(model="veo3.1", duration=8, audio=False),
        ("text_to_video", {"model": "veo3.1", "prompt_text": "A red fox runs",
                           "ratio": "1280:720", "duration": 8, "audio": False}),
        id="veo3.1-audio-off",
    ),
    pytest.param(
        req(model="veo3.1_fast", image_url=IMG, duration=4, audio=True),
        ("image_to_video", {"model": "veo3.1_fast", "prompt_text": "A red fox runs",
                            "ratio": "1280:720", "duration": 4, "prompt_image": IMG,
                            "audio": True}),
        id="veo3.1_fast-image-audio-on",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "sdk_call"), CASES)
async def test_create_matches_the_sdk(emu, sdk, adapter, request_, sdk_call):
    resource, kwargs = sdk_call
    created = await getattr(sdk, resource).create(**kwargs)
    job_id = await adapter.submit(request_, CREDS)

    by_sdk, by_adapter = emu.recorded
    assert wire(by_adapter) == wire(by_sdk)
    assert by_adapter["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert created.id in emu.jobs and created.estimated_cost.credits > 0
    assert job_id in emu.jobs and emu.submissions == 2


async def test_cancel_and_test_connection_match_the_sdk(emu, sdk, adapter):
    first = await sdk.text_to_video.create(
        model="gen4.5", prompt_text="x", ratio="1280:720", duration=5
    )
    second = await adapter.submit(req(), CREDS)

    await sdk.tasks.delete(first.id)
    await adapter.cancel(second, CREDS)
    deletes = [r for r in emu.recorded if r["method"] == "DELETE"]
    assert len(deletes) == 2 and wire(deletes[1]) == wire(deletes[0])
    assert wire(deletes[0])["accept"] == "*/*"

    org = await sdk.organization.retrieve()
    await adapter.test_connection(CREDS)
    assert wire(emu.recorded[-1]) == wire(emu.recorded[-2])
    assert org.credit_balance == 10_000


@pytest.mark.parametrize(
    ("setup", "status", "model"),
    [
        ("pending", "PENDING", task_types.Pending),
        ("throttled", "THROTTLED", task_types.Throttled),
        ("running", "RUNNING", task_types.Running),
        ("succeeded", "SUCCEEDED", task_types.Succeeded),
        ("failed", "FAILED", task_types.Failed),
        ("cancelled", "CANCELLED", task_types.Cancelled),
    ],
)
async def test_sdk_parses_every_task_state_the_emulator_sends(
    emu, sdk, adapter, base_url, setup, status, model
):
    emu.max_concurrent = 1 if setup == "throttled" else None
    if setup == "throttled":
        await adapter.submit(req(), CREDS)
    if setup == "failed":
        emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    elapsed = {"running": 6.5, "succeeded": 11, "failed": 11}.get(setup, 0)
    emu.jobs[job_id].created = time.monotonic() - elapsed
    if setup == "cancelled":
        await adapter.cancel(job_id, CREDS)

    task = await sdk.tasks.retrieve(job_id)
    assert isinstance(task, model) and task.status == status and task.id == job_id

    async with httpx.AsyncClient() as client:
        raw = (await client.get(f"{base_url}/v1/tasks/{job_id}", headers=headers())).json()
    model.model_validate(raw)  # strict: every required field present with the right type
    if status == "RUNNING":
        assert 0 <= raw["progress"] <= 1
    if status == "SUCCEEDED":
        assert raw["output"][0].startswith(f"{base_url}/_outputs/")


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}", "X-Runway-Version": "2024-11-06"}


async def test_organization_reply_is_the_sdk_type(base_url):
    async with httpx.AsyncClient() as client:
        raw = (await client.get(f"{base_url}/v1/organization", headers=headers())).json()
    OrganizationRetrieveResponse.model_validate(raw)


async def test_sdk_reads_the_emulators_errors(emu, base_url, sdk):
    wrong = AsyncRunwayML(api_key="key_" + "f" * 128, base_url=base_url, max_retries=0)
    with pytest.raises(runwayml.AuthenticationError) as auth:
        await wrong.organization.retrieve()
    await wrong.close()
    assert auth.value.body == {"error": "Invalid API key"}

    with pytest.raises(runwayml.BadRequestError) as bad:
        await sdk.text_to_video.create(
            model="gen4.5",
            prompt_text="x",
            ratio="1584:672",  # type: ignore[arg-type]
            duration=5,
        )
    assert bad.value.body["error"].startswith("ratio: must be one of")  # type: ignore[index]

    emu.inject("status", "429", retry_after=3)
    with pytest.raises(runwayml.RateLimitError) as limited:
        await sdk.tasks.retrieve("any")
    assert limited.value.response.headers["retry-after"] == "3"
