"""Differential conformance with the official SDK, google-genai 2.x (3.x dropped Gemini-API
video): the SDK and VeoAdapter send the same logical calls to the recording emulator and must
agree on method, path, query, auth header and JSON body; the SDK's own types parse every reply
the emulator gives, which shows the emulator speaks what the real service speaks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from adapters.google.gemini import VeoAdapter
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import sample_mp4, serve
from tests.support.emulators.gemini import RAI_REASON, Recorded, VeoEmulator

KEY = "AIzaSy-sdk-test-key"
CREDS = Credentials({"api_key": KEY})
PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"
SOURCE = types.GenerateVideosSource(prompt="x")


@pytest.fixture
def served() -> Iterator[tuple[VeoEmulator, str]]:
    emu = VeoEmulator(api_key=KEY, latency=0.0)
    with serve(emu.app) as base_url:
        yield emu, base_url


def sdk(base_url: str, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url + "/"))


def wire(r: Recorded) -> tuple[str, str, str, str | None, object]:
    """What must match: telemetry headers (user-agent, x-goog-api-client) are left out."""
    return (r.method, r.path, r.query, r.headers.get("x-goog-api-key"), r.body)


def request(**kw: object) -> StandardVideoRequest:
    fields: dict[str, object] = {"prompt": "A red fox runs", "aspect_ratio": "16:9"}
    fields |= {"motion_intensity": 3, "duration": 8}
    return StandardVideoRequest.model_validate(fields | kw)


async def test_create_matches_the_sdk(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    client.models.generate_videos(
        model="veo-3.1-generate-preview",
        source=types.GenerateVideosSource(prompt="A red fox runs. Style: film noir."),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="16:9",
            duration_seconds=8,
            resolution="1080p",
            negative_prompt="blur",
        ),
    )
    async with VeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(
            request(style="film noir", negative_prompt="blur", resolution="1080p"), CREDS
        )
    by_sdk, by_adapter = emu.recorded[-2:]
    assert wire(by_adapter) == wire(by_sdk)
    assert by_adapter.headers["content-type"] == by_sdk.headers["content-type"]
    assert "authorization" not in by_sdk.headers and "authorization" not in by_adapter.headers


async def test_image_to_video_matches_the_sdk(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    client.models.generate_videos(
        model="veo-2.0-generate-001",
        source=types.GenerateVideosSource(
            prompt="A red fox runs", image=types.Image(image_bytes=PNG, mime_type="image/png")
        ),
        config=types.GenerateVideosConfig(
            number_of_videos=1, aspect_ratio="9:16", duration_seconds=6
        ),
    )
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    async with VeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(
            request(
                model="veo-2.0-generate-001", aspect_ratio="9:16", duration=6, image_url=data_url
            ),
            CREDS,
        )
    assert wire(emu.recorded[-1]) == wire(emu.recorded[-2])


async def test_poll_and_download_match_and_parse(
    served: tuple[VeoEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    client = sdk(base_url)
    operation = client.models.generate_videos(
        model="veo-3.1-generate-preview",
        source=types.GenerateVideosSource(prompt="A red fox runs"),
        config=types.GenerateVideosConfig(number_of_videos=1, duration_seconds=8),
    )
    assert operation.name and not operation.done
    operation = client.operations.get(operation)
    assert operation.done and operation.response and operation.response.generated_videos
    video = operation.response.generated_videos[0].video
    assert video is not None
    assert client.files.download(file=video) == sample_mp4(seconds=8)
    sdk_poll, sdk_download = emu.recorded[-2:]

    async with VeoAdapter(base_url=base_url) as adapter:
        result = await adapter.status(operation.name, CREDS)
        assert result.video_url == video.uri
        await adapter.download(result, CREDS, tmp_path / "v.mp4")
    assert wire(emu.recorded[-2]) == wire(sdk_poll)
    assert wire(emu.recorded[-1]) == wire(sdk_download)
    assert (tmp_path / "v.mp4").read_bytes() == sample_mp4(seconds=8)


def test_sdk_parses_rai_filtering_and_failures(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    operation = client.models.generate_videos(model="veo-3.1-generate-preview", source=SOURCE)
    emu.inject("status", "moderation")
    operation = client.operations.get(operation)
    assert operation.response is not None
    assert operation.response.rai_media_filtered_count == 1
    assert operation.response.rai_media_filtered_reasons == [RAI_REASON]
    assert not operation.response.generated_videos

    emu.inject("submit", "fail")
    failed = client.operations.get(
        client.models.generate_videos(model="veo-3.1-generate-preview", source=SOURCE)
    )
    assert failed.done and failed.error and failed.error["code"] == 13


def test_sdk_reads_the_emulators_errors(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    wrong, client = sdk(base_url, key="wrong"), sdk(base_url)
    with pytest.raises(errors.ClientError) as exc:
        wrong.models.generate_videos(model="veo-2.0-generate-001", source=SOURCE)
    assert (exc.value.code, exc.value.status) == (400, "INVALID_ARGUMENT")
    assert exc.value.message == "API key not valid. Please pass a valid API key."
    emu.inject("submit", "429")
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_videos(model="veo-2.0-generate-001", source=SOURCE)
    assert (exc.value.code, exc.value.status) == (429, "RESOURCE_EXHAUSTED")
    emu.inject("submit", "503")
    with pytest.raises(errors.ServerError) as server_exc:
        client.models.generate_videos(model="veo-2.0-generate-001", source=SOURCE)
    assert server_exc.value.code == 503
    assert emu.submissions == 0


async def test_connection_test_matches_models_list(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    pager = client.models.list(config={"page_size": 1})
    assert [m.name for m in pager][0] == "models/veo-3.1-generate-preview"
    by_sdk = emu.recorded[-1]
    async with VeoAdapter(base_url=base_url) as adapter:
        await adapter.test_connection(CREDS)
    assert wire(emu.recorded[-1]) == wire(by_sdk)


def test_sdk_refuses_what_the_adapter_marks_unsupported(served: tuple[VeoEmulator, str]) -> None:
    emu, base_url = served
    client = sdk(base_url)
    for config in ({"seed": 1}, {"fps": 24}):
        with pytest.raises(ValueError, match="not in Gemini Developer API mode"):
            client.models.generate_videos(
                model="veo-3.1-generate-preview", source=SOURCE, config=config
            )
    caps = VeoAdapter().capabilities().models["veo-3.1-generate-preview"]
    assert caps.fields["seed"].support == caps.fields["fps"].support == "unsupported"
    assert emu.recorded == []
