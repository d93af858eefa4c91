"""Differential conformance with google-genai 2.x in Vertex mode (`vertexai=True`, project,
location, service-account credentials). Both the SDK and VertexVeoAdapter mint their tokens at
the emulator's OAuth2 endpoint through google-auth and send the same logical calls; method, path,
auth scheme and JSON body must agree. The SDK is told `api_version="v1"` (its default is v1beta1;
the REST docs and the adapter use v1). The SDK's own types parse the emulator's replies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account as google_sa

from adapters.google.vertex import SCOPE, VertexVeoAdapter
from tests.adapters.google.test_vertex import EMAIL, PUBLIC_KEY, creds, req, service_account
from tests.support.emulators._base import sample_mp4, serve
from tests.support.emulators.gemini import Recorded
from tests.support.emulators.vertex import RAI_REASON, VertexEmulator


@pytest.fixture
def served() -> Iterator[tuple[VertexEmulator, str]]:
    emu = VertexEmulator(public_keys={EMAIL: PUBLIC_KEY}, latency=0.0)
    with serve(emu.app) as base_url:
        yield emu, base_url


def sdk(base_url: str) -> genai.Client:
    credentials = google_sa.Credentials.from_service_account_info(
        service_account(base_url + "/token"), scopes=[SCOPE]
    )
    return genai.Client(
        vertexai=True,
        project="sf-proj",
        location="us-central1",
        credentials=credentials,
        http_options=types.HttpOptions(base_url=base_url + "/", api_version="v1"),
    )


def wire(emu: VertexEmulator, r: Recorded) -> tuple[str, str, str, object]:
    """What must match; the bearer token differs per mint, so only its issuer is checked."""
    scheme, _, token = r.headers["authorization"].partition(" ")
    assert scheme == "Bearer" and token in emu.tokens
    return (r.method, r.path, r.headers["content-type"].split(";")[0], r.body)


async def test_create_matches_the_sdk(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    client.models.generate_videos(
        model="veo-3.1-generate-001",
        source=types.GenerateVideosSource(prompt="A red fox runs. Style: anime."),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="9:16",
            duration_seconds=8,
            resolution="1080p",
            negative_prompt="blur",
            seed=42,
            fps=24,
            generate_audio=True,
        ),
    )
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(
            req(style="anime", negative_prompt="blur", resolution="1080p", seed=42, fps=24),
            creds(base_url),
        )
    by_sdk, by_adapter = emu.recorded[-2:]
    assert wire(emu, by_adapter) == wire(emu, by_sdk)
    assert emu.token_requests == 2 and emu.submissions == 2


async def test_poll_matches_and_the_sdk_reads_the_video(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    client = sdk(base_url)
    operation = client.models.generate_videos(
        model="veo-2.0-generate-001",
        source=types.GenerateVideosSource(prompt="A red fox runs"),
        config=types.GenerateVideosConfig(number_of_videos=1, duration_seconds=5),
    )
    operation = client.operations.get(operation)
    assert operation.done and operation.response and operation.response.generated_videos
    video = operation.response.generated_videos[0].video
    assert video is not None and video.video_bytes == sample_mp4(seconds=5)
    assert video.mime_type == "video/mp4"
    assert operation.name is not None
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        result = await adapter.status(operation.name, creds(base_url))
        await adapter.download(result, creds(base_url), tmp_path / "v.mp4")
    assert wire(emu, emu.recorded[-2]) == wire(emu, emu.recorded[1])
    assert (tmp_path / "v.mp4").read_bytes() == sample_mp4(seconds=5)


def test_sdk_parses_rai_filtering_and_failures(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    source = types.GenerateVideosSource(prompt="x")
    operation = client.models.generate_videos(model="veo-3.1-generate-001", source=source)
    emu.inject("status", "moderation")
    operation = client.operations.get(operation)
    assert operation.response is not None
    assert operation.response.rai_media_filtered_count == 1
    assert operation.response.rai_media_filtered_reasons == [RAI_REASON]
    emu.inject("submit", "fail")
    failed = client.operations.get(
        client.models.generate_videos(model="veo-3.1-generate-001", source=source)
    )
    assert failed.done and failed.error and failed.error["code"] == 13


def test_sdk_reads_the_emulators_errors(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    source = types.GenerateVideosSource(prompt="x")
    emu.inject("submit", "429")
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_videos(model="veo-3.1-generate-001", source=source)
    assert (exc.value.code, exc.value.status) == (429, "RESOURCE_EXHAUSTED")
    emu.tokens.clear()
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_videos(model="veo-3.1-generate-001", source=source)
    assert (exc.value.code, exc.value.status) == (401, "UNAUTHENTICATED")
    assert emu.submissions == 0


async def test_connection_test_lists_project_models_like_the_sdk(
    served: tuple[VertexEmulator, str],
) -> None:
    emu, base_url = served
    client = sdk(base_url)
    assert list(client.models.list(config={"query_base": False, "page_size": 1})) == []
    by_sdk = emu.recorded[-1]
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.test_connection(creds(base_url))
    by_adapter = emu.recorded[-1]
    # The SDK adds a tuned-model label filter to the same project-scoped list call.
    assert (by_adapter.method, by_adapter.path) == (by_sdk.method, by_sdk.path)
    assert by_adapter.query == "pageSize=1" and "pageSize=1" in by_sdk.query
