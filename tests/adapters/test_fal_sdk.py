"""Differential conformance: FalAdapter and the official `fal-client` (1.0.3) against the same
recording emulator on 127.0.0.1.

Pointing the SDK at a local server: its host settings (`FAL_RUN_HOST`, `FAL_QUEUE_RUN_HOST`) are
read once at import and the scheme is hard-coded `https://`, so they cannot reach a plain-HTTP
emulator. The module constant `fal_client.client.QUEUE_URL_FORMAT` is read on every call
(`submit`: `QUEUE_URL_FORMAT + application`; `get_handle`: the status/result/cancel base), so
patching it to `http://127.0.0.1:<port>/` sends the SDK's real requests, through its real httpx
client and transport, to the emulator. Follow-up calls on a submit handle use the URLs the
emulator returned, as they would use fal's.

What is compared: method, path, query, `Authorization` scheme and value, `Content-Type` and the
JSON body. The SDK's `User-Agent` is its own business. The one difference is on purpose: the
SDK sends `?logs=false` on status polls; the adapter sends no query, which fal reads the same
way (logs are off unless asked for).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fal_client
import fal_client.client
import httpx
import pytest
import pytest_asyncio

from adapters.fal import KLING_I2V, KLING_T2V, VEO3_FAST, WAN_T2V, FalAdapter
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.fal import API_KEY, FAIL_MSG, MODERATION_MSG, FalEmulator

CREDS = Credentials({"api_key": API_KEY})
COMPARED = ("authorization", "content-type")


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox runs through snow", "aspect_ratio": "16:9"}
    return StandardVideoRequest(**(base | {"motion_intensity": 5} | kw))


def wire(entry: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in entry["headers"].items() if k in COMPARED}
    return {k: entry[k] for k in ("method", "path", "query", "json")} | {"headers": headers}


@pytest.fixture
def emu() -> FalEmulator:
    return FalEmulator(latency=0.3)


@pytest.fixture
def base_url(emu: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(emu.app) as url:
        monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{url}/")
        yield url


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def sdk(base_url: str) -> AsyncIterator[fal_client.AsyncClient]:
    client = fal_client.AsyncClient(key=API_KEY)
    yield client
    # The SDK builds its httpx client lazily and offers no close(); close what it built.
    if "_client" in client.__dict__:
        await (await client._client).aclose()


@pytest_asyncio.fixture(loop_scope="function")
async def adapter(base_url: str) -> AsyncIterator[FalAdapter]:
    async with httpx.AsyncClient() as client:
        yield FalAdapter(client=client, base_url=base_url)


# The same logical request, as a fal user would write the model's input from its API page.
CASES = [
    (
        req(negative_prompt="blur", duration=10),
        KLING_T2V,
        {
            "prompt": "A red fox runs through snow",
            "duration": "10",
            "aspect_ratio": "16:9",
            "negative_prompt": "blur",
        },
    ),
    (
        req(model=KLING_I2V, image_url="https://img.test/fox.png", style="watercolor"),
        KLING_I2V,
        {
            "prompt": "A red fox runs through snow. Style: watercolor.",
            "duration": "5",
            "image_url": "https://img.test/fox.png",
        },
    ),
    (
        req(model=VEO3_FAST, duration=8, resolution="1080p", seed=7, aspect_ratio="9:16"),
        VEO3_FAST,
        {
            "prompt": "A red fox runs through snow",
            "aspect_ratio": "9:16",
            "duration": "8s",
            "resolution": "1080p",
            "seed": 7,
        },
    ),
    (
        req(model=WAN_T2V, duration=5, fps=16, resolution="720p"),
        WAN_T2V,
        {
            "prompt": "A red fox runs through snow",
            "aspect_ratio": "16:9",
            "resolution": "720p",
            "num_frames": 80,
            "frames_per_second": 16,
        },
    ),
]


@pytest.mark.parametrize(
    ("request_", "model", "arguments"), CASES, ids=["kling-t2v", "kling-i2v", "veo3-fast", "wan"]
)
async def test_submit_is_what_the_sdk_sends(
    emu: FalEmulator,
    adapter: FalAdapter,
    sdk: fal_client.AsyncClient,
    request_: StandardVideoRequest,
    model: str,
    arguments: dict[str, Any],
) -> None:
    job_id = await adapter.submit(request_, CREDS)
    handle = await sdk.submit(model, arguments=arguments)
    ours, theirs = wire(emu.log[0]), wire(emu.log[1])
    assert ours == theirs
    assert theirs["headers"] == {
        "authorization": f"Key {API_KEY}",
        "content-type": "application/json",
    }
    assert theirs["path"] == f"/{model}"
    # The URLs fal hands back equal the ones the adapter rebuilds from its job id.
    request_id = job_id.rpartition(":")[2]
    await adapter.status(job_id, CREDS)
    await adapter.cancel(job_id, CREDS)
    status_path, cancel_path = emu.log[2]["path"], emu.log[3]["path"]
    assert handle.status_url.replace(handle.request_id, request_id).endswith(status_path)
    assert handle.cancel_url.replace(handle.request_id, request_id).endswith(cancel_path)
    assert emu.submissions == 2


async def test_status_result_cancel_are_what_the_sdk_sends(
    emu: FalEmulator, adapter: FalAdapter, sdk: fal_client.AsyncClient
) -> None:
    job_id = await adapter.submit(req(model=VEO3_FAST, duration=4), CREDS)
    request_id = job_id.rpartition(":")[2]
    await adapter.status(job_id, CREDS)
    await sdk.status(VEO3_FAST, request_id)
    pairs = [(wire(emu.log[-2]), wire(emu.log[-1]))]
    while (await adapter.status(job_id, CREDS)).status != JobStatus.COMPLETED:
        await asyncio.sleep(0.05)
    adapter_result = wire(emu.log[-1])
    output = await sdk.result(VEO3_FAST, request_id)
    pairs.append((adapter_result, wire(emu.log[-1])))
    for ours, theirs in pairs:
        assert ours | {"query": {}} == theirs | {"query": {}}
        assert ours["query"] == {} and theirs["query"] in ({}, {"logs": "false"})
    assert pairs[0][1]["path"] == f"/fal-ai/veo3/requests/{request_id}/status"
    assert pairs[1][1]["path"] == f"/fal-ai/veo3/requests/{request_id}"
    assert output["video"]["url"].endswith(f"/files/{request_id}/output.mp4")

    second = await adapter.submit(req(model=VEO3_FAST, duration=4), CREDS)
    await adapter.cancel(second, CREDS)
    ours = wire(emu.log[-1])
    third = await sdk.submit(VEO3_FAST, arguments={"prompt": "x"})
    await sdk.cancel(VEO3_FAST, third.request_id)
    theirs = wire(emu.log[-1])
    assert (ours["method"], ours["json"], ours["headers"]) == ("PUT", None, theirs["headers"])
    assert (theirs["method"], theirs["json"]) == ("PUT", None)
    assert ours["path"].replace(second.rpartition(":")[2], "ID") == theirs["path"].replace(
        third.request_id, "ID"
    )


async def test_sdk_parses_every_emulator_status(
    emu: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    emu.latency = 1.0  # a 0.3 s queued window, wide enough for a loaded machine
    handle = await sdk.submit(KLING_T2V, arguments={"prompt": "x"})
    seen = []
    async for event in handle.iter_events(with_logs=True, interval=0.03):
        seen.append(type(event))
        last = event
    assert [fal_client.Queued, fal_client.InProgress, fal_client.Completed] == list(
        dict.fromkeys(seen)
    )
    assert isinstance(last, fal_client.Completed) and last.error is None
    assert last.metrics == {"inference_time": 1.0} and last.logs
    assert (await handle.get())["video"]["content_type"] == "video/mp4"

    emu.inject("submit", "fail")
    failed = await sdk.submit(KLING_T2V, arguments={"prompt": "x"})
    async for event in failed.iter_events(interval=0.03):
        last = event
    assert isinstance(last, fal_client.Completed)
    assert (last.error, last.error_type) == (FAIL_MSG, "runner_server_error")

    emu.latency = 5
    cancelled = await sdk.submit(KLING_T2V, arguments={"prompt": "x"})
    await cancelled.cancel()
    status = await cancelled.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "client_cancelled"
    with pytest.raises(fal_client.client.FalClientHTTPError) as info:
        await cancelled.cancel()
    assert info.value.status_code == 400


async def test_sdk_reads_emulator_errors(emu: FalEmulator, base_url: str) -> None:
    wrong = fal_client.AsyncClient(key="deadbeef-id:wrong-secret-value")
    with pytest.raises(fal_client.client.FalClientHTTPError) as info:
        await wrong.submit(KLING_T2V, arguments={"prompt": "x"})
    assert (info.value.status_code, info.value.message) == (
        401,
        "No user found for Key ID and Secret",
    )
    await (await wrong._client).aclose()

    emu.inject("submit", "moderation")
    right = fal_client.AsyncClient(key=API_KEY)
    with pytest.raises(fal_client.client.FalClientHTTPError) as info:
        await right.submit(KLING_T2V, arguments={"prompt": "x"})
    assert info.value.status_code == 422
    assert info.value.message[0]["type"] == "content_policy_violation"  # type: ignore[index]
    assert info.value.message[0]["msg"] == MODERATION_MSG  # type: ignore[index]
    emu.inject("submit", "503")
    # fal-client retries only ingress 503s (no x-fal-request-id); fal's own 503 is final.
    with pytest.raises(fal_client.client.FalClientHTTPError) as info:
        await right.submit(KLING_T2V, arguments={"prompt": "x"})
    assert (info.value.status_code, info.value.error_type) == (503, "runner_scheduling_failure")
    await (await right._client).aclose()
