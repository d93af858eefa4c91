"""FalAdapter on endpoints outside its table: each endpoint's OpenAPI document is read from the
schema host (the emulator here), without the key, once per process, and every request is
checked against it before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from adapters import fal, get_adapter
from adapters.fal import DEFAULT_SCHEMA_BASE_URL, FalAdapter
from sceneflow.errors import RequestValidationError, TransientError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from sceneflow.settings import get_settings
from tests.support.emulators._base import serve
from tests.support.emulators.fal import API_KEY, FalEmulator

CREDS = Credentials({"api_key": API_KEY})
ENUMS, RANGES = "fal-ai/acme/enum-video", "fal-ai/acme/range-video"
FRAMES = "fal-ai/acme/frames-video/image-to-video"
IMAGE = "https://img.test/first.png"
SCHEMA_PATH = "/api/openapi/queue/openapi.json"


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | kw))


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    fal.SCHEMAS.clear()
    yield
    fal.SCHEMAS.clear()


@pytest.fixture
def emu() -> FalEmulator:
    return FalEmulator(latency=0.2)


@pytest.fixture
async def adapter(emu: FalEmulator) -> AsyncIterator[FalAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
    yield FalAdapter(client=client, base_url="http://fal.test", schema_base_url="http://fal.test")
    await client.aclose()


def schema_reads(emu: FalEmulator) -> list[dict[str, Any]]:
    return [e for e in emu.log if e["path"] == SCHEMA_PATH]


async def test_an_endpoint_with_enums_gets_each_field_under_its_input_name(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    request = req(model=ENUMS, duration=10, resolution="1080p", seed=3, negative_prompt="blur")
    job_id = await adapter.submit(request, CREDS)
    assert emu.log[-1]["path"] == f"/{ENUMS}"
    assert emu.log[-1]["headers"]["authorization"] == f"Key {API_KEY}"
    assert emu.log[-1]["json"] == {
        "prompt": "A red fox",
        "negative_prompt": "blur",
        "aspect_ratio": "16:9",
        "duration": "10",  # the schema's enum is text
        "resolution": "1080p",
        "seed": 3,
    }
    assert job_id.startswith(f"{ENUMS}:")
    # The document is public: it is read without the key, which stays on the queue host.
    (read,) = schema_reads(emu)
    assert read["query"] == {"endpoint_id": ENUMS} and "authorization" not in read["headers"]


async def test_values_outside_an_endpoints_enums_and_ranges_are_refused_at_once(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model=ENUMS, duration=7, resolution="4k"), CREDS)
    assert info.value.problems == [
        f"duration: fal model {ENUMS} makes videos of 5, 10 seconds (its input 'duration'); got 7",
        f'resolution: fal model {ENUMS} renders "480p", "720p", "1080p" (its input '
        "'resolution'); got 4k (a WxH whose short side is one of these picks that tier)",
    ]
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model=RANGES, duration=13, fps=6), CREDS)
    assert info.value.problems == [
        f"fps: fal model {RANGES} takes whole numbers from 8 to 30 in its input 'fps'; got 6",
        f"duration: fal model {RANGES} takes whole numbers from 2 to 12 in its input "
        "'duration'; got 13",
    ]
    assert emu.submissions == 0
    await adapter.submit(req(model=RANGES, duration=3, fps=12, image_url=IMAGE), CREDS)
    assert emu.log[-1]["json"] == {
        "prompt": "A red fox",
        "fps": 12,
        "duration": 3,
        "start_image_url": IMAGE,
    }


async def test_other_names_frames_size_and_a_required_image(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    await adapter.submit(req(model=FRAMES, duration=2, resolution="480p", image_url=IMAGE), CREDS)
    assert emu.log[-1]["path"] == f"/{FRAMES}"
    assert emu.log[-1]["json"] == {
        "prompt": "A red fox",
        "num_frames": 32,  # 2 s at the model's default 16 fps
        "width": 852,  # 480p at 16:9, even-sided
        "height": 480,
        "image": IMAGE,
    }
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model=FRAMES), CREDS)
    assert info.value.problems == [
        f"image_url: fal model {FRAMES} needs a first frame (its input 'image' is required); "
        "set image_url to an http(s) or data: URL"
    ]
    caps = adapter.capabilities().models[FRAMES]
    assert not caps.text_to_video and caps.image_to_video
    assert (caps.min_duration, caps.max_duration) == (1.06, 10.06)  # 17..161 frames at 16 fps


async def test_validate_and_capabilities_before_and_after_the_read(adapter: FalAdapter) -> None:
    warning = adapter.validate(req(model=ENUMS, duration=7))[0]
    assert warning.startswith(f"model: fal model {ENUMS} is not in SceneFlow's built-in table")
    assert f"`sceneflow providers fal --model {ENUMS}` shows the mapping now" in warning
    assert ENUMS not in adapter.capabilities().models
    assert await adapter.prepare(req(model=ENUMS)) == [
        f"motion_intensity: fal model {ENUMS} has no equivalent setting; it is not sent (its "
        "schema has no input for it)"
    ]
    with pytest.raises(RequestValidationError, match="makes videos of 5, 10 seconds"):
        adapter.validate(req(model=ENUMS, duration=7))
    caps = adapter.capabilities().models[ENUMS]
    assert caps.durations == [5.0, 10.0] and caps.fields["duration"].support == "mapped"
    report = await adapter.describe_model(ENUMS)
    assert report.notes[0].startswith("audio: the model has a switch, input 'generate_audio'")
    assert report.source.startswith("its published OpenAPI document (http://fal.test/api/")


async def test_a_missing_endpoint_or_a_failed_read_sends_nothing(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model="fal-ai/no-such/model"), CREDS)
    assert info.value.problems[0].startswith(
        "model: fal has no endpoint 'fal-ai/no-such/model' (its OpenAPI document "
        "http://fal.test/api/openapi/queue/openapi.json?endpoint_id=fal-ai/no-such/model "
        "answered 404); check the endpoint id on https://fal.ai/models"
    )
    emu.inject("schema", "503")
    with pytest.raises(TransientError) as failed:
        await adapter.submit(req(model=ENUMS), CREDS)
    assert str(failed.value).startswith(
        f"fal: reading the input schema of {ENUMS} from http://fal.test{SCHEMA_PATH}"
        f"?endpoint_id={ENUMS} failed, so nothing was sent: fal answered HTTP 503"
    )
    assert emu.submissions == 0
    await adapter.submit(req(model=ENUMS), CREDS)
    assert emu.submissions == 1 and len(schema_reads(emu)) == 3


async def test_many_submits_read_the_document_once(adapter: FalAdapter, emu: FalEmulator) -> None:
    await asyncio.gather(*(adapter.submit(req(model=ENUMS, seed=i), CREDS) for i in range(6)))
    await adapter.submit(req(model=ENUMS), CREDS)
    assert len(schema_reads(emu)) == 1 and emu.submissions == 7


async def test_the_schema_host_is_fal_ai_or_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert FalAdapter().schema_base_url == DEFAULT_SCHEMA_BASE_URL == "https://fal.ai"
    emu = FalEmulator(latency=0.2)
    with serve(emu.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__FAL", url)
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__FAL_SCHEMA", url + "/")
        get_settings.cache_clear()
        adapter = get_adapter("fal")
        assert isinstance(adapter, FalAdapter) and adapter.schema_base_url == url
        try:
            await adapter.submit(req(model=ENUMS), CREDS)
        finally:
            await adapter.aclose()
    assert len(schema_reads(emu)) == 1 and emu.submissions == 1
