"""Differential conformance with google-genai 2.x in Vertex mode (`vertexai=True`, project,
location, service-account credentials). Both the SDK and VertexVeoAdapter mint their tokens at
the emulator's OAuth2 endpoint through google-auth and send the same logical calls; method, path,
auth scheme and JSON body must agree. The SDK is told `api_version="v1"` (its default is v1beta1;
the REST docs and the adapter use v1). The SDK's own types parse the emulator's replies.

Express mode is the SDK's `vertexai=True, api_key=...` client; `storage_uri` is its
`output_gcs_uri`, a gs:// first frame its `Image(gcs_uri=...)`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account as google_sa

from adapters.google.vertex import SCOPE, VertexVeoAdapter
from tests.adapters.google.test_vertex import (
    API_KEY,
    EMAIL,
    PUBLIC_KEY,
    creds,
    express,
    req,
    service_account,
)
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


def express_sdk(base_url: str) -> genai.Client:
    return genai.Client(
        vertexai=True,
        api_key=API_KEY,
        http_options=types.HttpOptions(base_url=base_url + "/", api_version="v1"),
    )


def express_wire(r: Recorded) -> tuple[str, str, str, str | None, object]:
    """What must match in express mode: the key travels in x-goog-api-key, never a bearer."""
    assert "authorization" not in r.headers and "key=" not in r.query
    content_type = r.headers.get("content-type", "").split(";")[0]
    return (r.method, r.path, content_type, r.headers.get("x-goog-api-key"), r.body)


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


async def test_express_mode_create_and_poll_match_the_sdk(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    client = express_sdk(base_url)
    operation = client.models.generate_videos(
        model="veo-3.1-fast-generate-001",
        source=types.GenerateVideosSource(prompt="A red fox runs"),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="9:16",
            duration_seconds=8,
            resolution="720p",
            seed=3,
            generate_audio=True,
        ),
    )
    operation = client.operations.get(operation)
    assert operation.done and operation.response and operation.response.generated_videos
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(req(quality="draft", seed=3), express())
        result = await adapter.status(job_id, express())
        await adapter.download(result, express(), tmp_path / "v.mp4")
    sdk_submit, sdk_poll, our_submit, our_poll = emu.recorded[:4]
    assert express_wire(our_submit) == express_wire(sdk_submit)
    assert (
        our_submit.path
        == "/v1/publishers/google/models/veo-3.1-fast-generate-001:predictLongRunning"
    )
    assert express_wire(our_poll)[:4] == express_wire(sdk_poll)[:4]
    assert our_poll.body == {"operationName": job_id}
    assert emu.token_requests == 0 and emu.submissions == 2
    assert (tmp_path / "v.mp4").read_bytes() == sample_mp4(seconds=8)


async def test_express_connection_test_reads_the_model_like_the_sdk(
    served: tuple[VertexEmulator, str],
) -> None:
    emu, base_url = served
    client = express_sdk(base_url)  # kept: the SDK closes its HTTP client when collected
    model = client.models.get(model="veo-3.1-generate-001")
    assert model.name == "publishers/google/models/veo-3.1-generate-001"
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.test_connection(express())
    by_sdk, by_adapter = emu.recorded
    # A GET has no body; the SDK labels every request application/json, which says nothing.
    ours, theirs = express_wire(by_adapter), express_wire(by_sdk)
    assert (ours[0], ours[1], ours[3]) == (theirs[0], theirs[1], theirs[3])
    assert ours[1] == "/v1/publishers/google/models/veo-3.1-generate-001"


async def test_storage_uri_matches_the_sdk_and_both_read_the_gcs_uri(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    client = sdk(base_url)
    operation = client.models.generate_videos(
        model="veo-3.1-generate-001",
        source=types.GenerateVideosSource(prompt="A red fox runs"),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="9:16",
            duration_seconds=8,
            resolution="720p",
            output_gcs_uri="gs://sf-bucket/sceneflow/",
            generate_audio=True,
        ),
    )
    operation = client.operations.get(operation)
    assert operation.response and operation.response.generated_videos
    sdk_video = operation.response.generated_videos[0].video
    sdk_job = next(iter(emu.jobs))
    assert sdk_video is not None and sdk_video.video_bytes is None
    assert sdk_video.uri == f"gs://sf-bucket/sceneflow/{sdk_job}/sample_0.mp4"
    c = creds(base_url, storage_uri="gs://sf-bucket/sceneflow/")
    async with VertexVeoAdapter(base_url=base_url, storage_url=base_url) as adapter:
        job_id = await adapter.submit(req(), c)
        result = await adapter.status(job_id, c)
        await adapter.download(result, c, tmp_path / "v.mp4")
    by_sdk, by_adapter = emu.recorded[0], emu.recorded[2]
    assert wire(emu, by_adapter) == wire(emu, by_sdk)
    assert by_adapter.body["parameters"]["storageUri"] == "gs://sf-bucket/sceneflow/"
    our_job = list(emu.jobs)[1]
    assert result.video_url == f"gs://sf-bucket/sceneflow/{our_job}/sample_0.mp4"
    assert (tmp_path / "v.mp4").read_bytes() == sample_mp4(seconds=8)


async def test_gcs_first_frame_matches_the_sdk(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    emu.objects[("sf-bucket", "frames/fox.jpg")] = b"\xff\xd8"
    client = express_sdk(base_url)
    client.models.generate_videos(
        model="veo-3.1-generate-001",
        source=types.GenerateVideosSource(
            prompt="A red fox runs",
            image=types.Image(gcs_uri="gs://sf-bucket/frames/fox.jpg", mime_type="image/jpeg"),
        ),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="9:16",
            duration_seconds=8,
            resolution="720p",
            generate_audio=True,
        ),
    )
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        # Through the request model, which takes gs:// first frames.
        await adapter.submit(req(image_url="gs://sf-bucket/frames/fox.jpg"), express())
    by_sdk, by_adapter = emu.recorded
    assert express_wire(by_adapter) == express_wire(by_sdk)
    assert by_adapter.body["instances"][0]["image"] == {
        "gcsUri": "gs://sf-bucket/frames/fox.jpg",
        "mimeType": "image/jpeg",
    }


def test_sdk_has_no_generate_audio_default(served: tuple[VertexEmulator, str]) -> None:
    """Why the adapter decides: the SDK sends generateAudio only when asked, and Google's
    reference calls it required for Veo 3 with no default (see extra_parameters)."""
    emu, base_url = served
    client = express_sdk(base_url)
    client.models.generate_videos(
        model="veo-3.1-generate-001", source=types.GenerateVideosSource(prompt="x")
    )
    assert "generateAudio" not in emu.recorded[0].body.get("parameters", {})


@pytest.mark.parametrize("audio", [True, False])
async def test_audio_and_options_match_the_sdk(
    served: tuple[VertexEmulator, str], audio: bool
) -> None:
    emu, base_url = served
    client = sdk(base_url)
    client.models.generate_videos(
        model="veo-3.1-generate-001",
        source=types.GenerateVideosSource(prompt="A red fox runs"),
        config=types.GenerateVideosConfig(
            number_of_videos=1,
            aspect_ratio="9:16",
            duration_seconds=8,
            resolution="720p",
            generate_audio=audio,
            person_generation="dont_allow",
            enhance_prompt=False,
        ),
    )
    options = {"personGeneration": "dont_allow", "enhancePrompt": False}
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(req(audio=audio, options=options), creds(base_url))
    by_sdk, by_adapter = emu.recorded[-2:]
    assert wire(emu, by_adapter) == wire(emu, by_sdk)
    assert by_adapter.body["parameters"]["generateAudio"] is audio
