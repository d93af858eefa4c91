"""Differential conformance: the official `lumaai` SDK and LumaAdapter send the same requests to
the Luma emulator, and the emulator's replies validate against the SDK's own response types.

The SDK is pointed at 127.0.0.1 with `base_url` and `max_retries=0` (its retries would hide the
fault replies). Telemetry headers (`x-stainless-*`, `user-agent`) are the SDK's own business and
are not compared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import lumaai
import pytest
from lumaai.types import CreditGetResponse, Generation, PingCheckResponse
from lumaai.types.generation import RequestGenerationRequest

from adapters.luma import LumaAdapter
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.luma import API_KEY, PREFIX, LumaEmulator

COMPARED_HEADERS = ("authorization", "content-type", "accept")
CREDS = Credentials({"api_key": API_KEY})
IMAGE = "https://example.com/first.png"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LumaEmulator, str]]:
    emu = LumaEmulator(latency=0.4)
    with serve(emu.app) as url:
        yield emu, url + PREFIX


@pytest.fixture
def sdk(server: tuple[LumaEmulator, str]) -> Iterator[lumaai.LumaAI]:
    client = lumaai.LumaAI(auth_token=API_KEY, base_url=server[1], max_retries=0)
    yield client
    client.close()


def wire(entry: dict[str, Any]) -> dict[str, Any]:
    """What must match between the SDK and the adapter."""
    headers = entry["headers"]
    return {
        "method": entry["method"],
        "path": entry["path"],
        "headers": {h: headers.get(h) for h in COMPARED_HEADERS},
        "body": entry.get("body"),
    }


async def test_create_matches_the_sdk(server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI) -> None:
    emu, base_url = server
    sdk.generations.create(
        model="ray-flash-2",
        prompt="A red fox runs through fresh snow. Style: watercolor.",
        aspect_ratio="9:16",
        duration="9s",
        resolution="1080p",
        keyframes={"frame0": {"type": "image", "url": IMAGE}},
    )
    from_sdk = wire(emu.recorded[-1])
    request = StandardVideoRequest(
        prompt="A red fox runs through fresh snow",
        style="watercolor",
        aspect_ratio="9:16",
        motion_intensity=5,
        duration=9,
        resolution="1080p",
        quality="draft",
        image_url=IMAGE,
    )
    luma = LumaAdapter(base_url=base_url)
    async with luma:
        await luma.submit(request, CREDS)
    from_adapter = wire(emu.recorded[-1])
    assert from_adapter == from_sdk
    assert from_sdk["path"] == f"{PREFIX}/generations/video"
    assert from_sdk["headers"]["authorization"] == f"Bearer {API_KEY}"
    # The SDK's video resource posts the same thing.
    sdk.generations.video.create(
        model="ray-flash-2",
        prompt="A red fox runs through fresh snow. Style: watercolor.",
        aspect_ratio="9:16",
        duration="9s",
        resolution="1080p",
        keyframes={"frame0": {"type": "image", "url": IMAGE}},
    )
    assert wire(emu.recorded[-1]) == from_adapter


async def test_poll_and_connection_test_match_the_sdk(
    server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI
) -> None:
    emu, base_url = server
    created = sdk.generations.create(model="ray-2", prompt="A lighthouse at dusk")
    assert created.id is not None
    luma = LumaAdapter(base_url=base_url)
    async with luma:
        sdk.generations.get(created.id)
        from_sdk = wire(emu.recorded[-1])
        await luma.status(created.id, CREDS)
        assert wire(emu.recorded[-1]) == from_sdk

        sdk.credits.get()
        from_sdk = wire(emu.recorded[-1])
        await luma.test_connection(CREDS)
        assert (
            wire(emu.recorded[-1])
            == from_sdk
            == {
                "method": "GET",
                "path": f"{PREFIX}/credits",
                "headers": {
                    "authorization": f"Bearer {API_KEY}",
                    "content-type": None,
                    "accept": "application/json",
                },
                "body": None,
            }
        )


def test_emulator_replies_validate_as_sdk_types(
    server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI
) -> None:
    emu, _ = server
    emu.inject("submit", "fail")
    failing = sdk.generations.create(model="ray-2", prompt="A lighthouse at dusk")
    raw = sdk.generations.with_raw_response.create(
        model="ray-2",
        prompt="A lighthouse at dusk",
        keyframes={"frame0": {"type": "image", "url": IMAGE}},
    )
    # Stainless parses leniently; model_validate checks the reply against the SDK's types.
    created = Generation.model_validate(raw.http_response.json())
    assert created.state == "queued" and created.id is not None
    assert isinstance(created.request, RequestGenerationRequest)
    assert created.request.keyframes is not None
    states = set()
    while "completed" not in states:
        reply = sdk.generations.with_raw_response.get(created.id).http_response.json()
        states.add(Generation.model_validate(reply).state)
        time.sleep(0.03)
    assert states == {"queued", "dreaming", "completed"}
    done = sdk.generations.get(created.id)
    assert done.assets is not None and done.assets.video and done.generation_type == "video"
    assert failing.id is not None
    failed = sdk.generations.get(failing.id)
    assert failed.state == "failed" and failed.failure_reason == "Job failed"
    CreditGetResponse.model_validate(sdk.credits.with_raw_response.get().http_response.json())
    assert PingCheckResponse.model_validate(
        sdk.ping.with_raw_response.check().http_response.json()
    ).message


def test_sdk_reads_emulator_errors_and_delete(
    server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI
) -> None:
    emu, base_url = server
    wrong = lumaai.LumaAI(auth_token="luma-wrong", base_url=base_url, max_retries=0)
    with pytest.raises(lumaai.AuthenticationError) as auth:
        wrong.credits.get()
    assert auth.value.body == {"detail": "Invalid API key is provided"}
    wrong.close()
    emu.inject("submit", "429", retry_after=2)
    with pytest.raises(lumaai.RateLimitError) as limited:
        sdk.generations.create(model="ray-2", prompt="A lighthouse at dusk")
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(lumaai.UnprocessableEntityError):
        sdk.generations.create(model="ray-2", prompt="A lighthouse", duration="7s")
    # DELETE answers 204 with no body, as the SDK expects, and removes the generation.
    created = sdk.generations.create(model="ray-2", prompt="A lighthouse at dusk")
    assert created.id is not None
    sdk.generations.delete(created.id)
    assert emu.recorded[-1]["headers"]["accept"] == "*/*"
    with pytest.raises(lumaai.NotFoundError) as missing:
        sdk.generations.get(created.id)
    assert missing.value.body == {"detail": "Generation not found"}


async def test_adapter_maps_what_the_sdk_sees(
    server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI
) -> None:
    emu, base_url = server
    latency, emu.latency = emu.latency, 60  # hold the job in one state while both look
    try:
        created = sdk.generations.create(model="ray-2", prompt="A lighthouse at dusk")
        assert created.id is not None
        luma = LumaAdapter(base_url=base_url)
        async with luma:
            ours = await luma.status(created.id, CREDS)
        theirs = sdk.generations.get(created.id)
    finally:
        emu.latency = latency
    assert theirs.state == ours.provider_details["state"] == "queued"
    assert ours.status is JobStatus.QUEUED and ours.provider_job_id == theirs.id
    assert ours.provider_details["model"] == theirs.model == "ray-2"


async def test_loop_matches_the_sdk(server: tuple[LumaEmulator, str], sdk: lumaai.LumaAI) -> None:
    emu, base_url = server
    sdk.generations.create(
        model="ray-2",
        prompt="A red fox runs through fresh snow",
        aspect_ratio="16:9",
        duration="5s",
        resolution="720p",
        loop=True,
    )
    from_sdk = wire(emu.recorded[-1])
    request = StandardVideoRequest(
        prompt="A red fox runs through fresh snow",
        aspect_ratio="16:9",
        motion_intensity=5,
        duration=5,
        options={"loop": True},
    )
    async with LumaAdapter(base_url=base_url) as luma:
        await luma.submit(request, CREDS)
    assert wire(emu.recorded[-1]) == from_sdk and from_sdk["body"]["loop"] is True
