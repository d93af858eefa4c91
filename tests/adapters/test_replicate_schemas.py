"""ReplicateAdapter on models outside its table: the input schema is read from the emulator
(`GET /v1/models/{owner}/{name}`, or `.../versions/{id}`), cached, and every request is checked
against it before anything is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from starlette.applications import Starlette

from adapters import replicate
from adapters.replicate import ReplicateAdapter
from sceneflow.errors import AuthError, RequestValidationError, TransientError
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import Emulator, serve
from tests.support.emulators.replicate import TOKEN, VERSIONS, create_app

CREDS = Credentials({"api_key": TOKEN})
OTHER = Credentials({"api_key": "r8_another_users_token_000000000000"})
ENUMS, RANGES, FRAMES = "acme/enum-video", "acme/range-video", "acme/frames-video"
IMAGE = "https://example.com/first.png"


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {"prompt": "A red fox", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(fields | kw))


def not_sent(model: str, field: str) -> str:
    return (
        f"{field}: replicate model {model} has no equivalent setting; it is not sent (its "
        "schema has no input for it)"
    )


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    replicate.SCHEMAS.clear()
    yield
    replicate.SCHEMAS.clear()


@pytest.fixture
def emu() -> Emulator:
    return Emulator(latency=0.2)


@pytest.fixture
def app(emu: Emulator) -> Starlette:
    return create_app(emu)


@pytest.fixture
async def adapter(app: Starlette) -> AsyncIterator[ReplicateAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    yield ReplicateAdapter(client=client, base_url="http://replicate.test")
    await client.aclose()


def sent(app: Starlette) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in app.state.recorded]


def last_input(app: Starlette) -> dict[str, Any]:
    return json.loads(app.state.recorded[-1]["body"])["input"]  # type: ignore[no-any-return]


# -- mapping by name and type ----------------------------------------------------------------


async def test_a_model_with_enums_gets_each_field_under_its_input_name(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    request = req(
        model=ENUMS,
        aspect_ratio="9:16",
        duration=10,
        resolution="1080p",
        seed=7,
        negative_prompt="blur",
        style="noir",
        image_url=IMAGE,
    )
    assert await adapter.prepare(request, CREDS) == [not_sent(ENUMS, "motion_intensity")]
    await adapter.submit(request, CREDS)
    assert sent(app) == [
        ("GET", f"/v1/models/{ENUMS}"),
        ("POST", f"/v1/models/{ENUMS}/predictions"),
    ]
    assert last_input(app) == {
        "prompt": "A red fox. Style: noir.",
        "negative_prompt": "blur",
        "aspect_ratio": "9:16",
        "duration": 10,
        "resolution": "1080p",
        "seed": 7,
        "image": IMAGE,
    }
    assert emu.submissions == 1


async def test_enum_values_outside_the_schema_are_all_refused_and_nothing_is_sent(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    bad = req(model=ENUMS, aspect_ratio="4:3", duration=7, resolution="4k")
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(bad, CREDS)
    who = f"replicate model {ENUMS}"
    assert info.value.problems == [
        f'aspect_ratio: {who} takes "16:9", "9:16", "1:1" in its input \'aspect_ratio\'; got 4:3',
        f"duration: {who} makes videos of 5, 10 seconds (its input 'duration'); got 7",
        f'resolution: {who} renders "480p", "720p", "1080p" (its input \'resolution\'); got '
        "4k (a WxH whose short side is one of these picks that tier)",
    ]
    assert emu.submissions == 0 and sent(app) == [("GET", f"/v1/models/{ENUMS}")]
    # A WxH picks the tier by its short side.
    await adapter.submit(req(model=ENUMS, resolution="854x480"), CREDS)
    assert last_input(app)["resolution"] == "480p"


async def test_a_model_with_ranges_is_checked_against_them(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model=RANGES, duration=20, fps=60), CREDS)
    who = f"replicate model {RANGES}"
    assert info.value.problems == [
        f"fps: {who} takes whole numbers from 8 to 30 in its input 'fps'; got 60",
        f"duration: {who} takes whole numbers from 2 to 12 in its input 'duration'; got 20",
    ]
    with pytest.raises(RequestValidationError, match=r"duration: .* takes whole seconds"):
        await adapter.submit(req(model=RANGES, duration=2.5), CREDS)
    assert emu.submissions == 0

    request = req(model=RANGES, duration=12, fps=30, seed=5, resolution="1080p", image_url=IMAGE)
    assert await adapter.prepare(request, CREDS) == [
        (
            f"aspect_ratio: replicate model {RANGES} has no equivalent setting; it is not "
            "sent; the model picks the shape"
        ),
        not_sent(RANGES, "motion_intensity"),
        not_sent(RANGES, "resolution"),
    ]
    await adapter.submit(request, CREDS)
    assert last_input(app) == {
        "prompt": "A red fox",
        "fps": 30,
        "duration": 12,
        "seed": 5,
        "start_image": IMAGE,
    }
    # fps left unset: the model's own default (24) applies and is not sent.
    await adapter.submit(req(model=RANGES, duration=4), CREDS)
    assert last_input(app) == {"prompt": "A red fox", "duration": 4}


async def test_other_names_frames_at_a_frame_rate_a_pixel_size_and_a_required_first_frame(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    await adapter.submit(
        req(model=FRAMES, duration=4, fps=20, aspect_ratio="9:16", image_url=IMAGE), CREDS
    )
    assert last_input(app) == {
        "prompt": "A red fox",
        "frames_per_second": 20,
        "num_frames": 80,  # 4 s at 20 fps
        "width": 720,
        "height": 1280,
        "first_frame_image": IMAGE,
    }
    # Without an fps, the model's default (16) is its rate: 5 s is 80 frames.
    await adapter.submit(req(model=FRAMES, image_url=IMAGE), CREDS)
    assert last_input(app)["num_frames"] == 80 and "frames_per_second" not in last_input(app)

    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model=FRAMES, duration=10, fps=24, resolution="4k"), CREDS)
    who = f"replicate model {FRAMES}"
    assert info.value.problems == [
        f"duration: {who} renders 17 to 161 frames (its input 'num_frames'); at 24 fps that is "
        "0.7 to 6.7 seconds; got 10 s = 240 frames (a lower fps makes a longer video)",
        f"resolution: {who} takes width whole numbers from 256 to 1280 and height whole "
        "numbers from 256 to 1280; 4k at 16:9 is 3840x2160",
        f"image_url: {who} needs a first frame (its input 'first_frame_image' is required); "
        "set image_url to an http(s) or data: URL",
    ]
    assert emu.submissions == 2


async def test_a_first_frame_for_a_model_without_an_image_input_is_refused(
    adapter: ReplicateAdapter, emu: Emulator
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model="lightricks/ltx-video", image_url=IMAGE), CREDS)
    assert info.value.problems == [
        "image_url: replicate model lightricks/ltx-video takes no first frame (its schema has "
        "no image input); leave image_url empty or choose an image-to-video model"
    ]
    assert emu.submissions == 0


async def test_a_pinned_version_reads_that_versions_schema(
    adapter: ReplicateAdapter, app: Starlette
) -> None:
    version = next(v for v, m in VERSIONS.items() if m == ENUMS)
    await adapter.submit(req(model=f"{ENUMS}:{version}", duration=5), CREDS)
    assert sent(app) == [
        ("GET", f"/v1/models/{ENUMS}/versions/{version}"),
        ("POST", "/v1/predictions"),
    ]
    assert json.loads(app.state.recorded[-1]["body"])["version"] == version
    report = await adapter.describe_model(f"{ENUMS}:{version}", CREDS)
    assert report.source == f"the published input schema of version {version}"


# -- what validate() and capabilities() say ---------------------------------------------------


async def test_validate_says_the_check_waits_for_the_schema_then_uses_it(
    adapter: ReplicateAdapter,
) -> None:
    request = req(model=ENUMS, duration=7, seed=1)
    assert adapter.validate(request) == [
        f"model: replicate model {ENUMS} is not in SceneFlow's built-in table, so its limits "
        "are read from its published input schema when the job is submitted, and the request "
        "is checked against that schema before anything is sent; of the fields set here "
        "(aspect_ratio, duration, motion_intensity, seed), those its schema has no input for "
        f"are then not sent. `sceneflow providers replicate --model {ENUMS}` shows the "
        "mapping now"
    ]
    assert ENUMS not in adapter.capabilities().models
    await adapter.describe_model(ENUMS, CREDS)
    # Read once in this process, the schema answers validate() for every adapter made here.
    fresh = ReplicateAdapter(base_url="http://replicate.test")
    with pytest.raises(RequestValidationError, match=r"duration: .* makes videos of 5, 10"):
        fresh.validate(request)
    caps = fresh.capabilities().models[ENUMS]
    assert caps.durations == [5.0, 10.0] and caps.resolutions == ["480p", "720p", "1080p"]
    assert caps.aspect_ratios == ["16:9", "9:16", "1:1"] and caps.image_to_video
    assert caps.fields["duration"].note == "input 'duration': 5, 10"
    assert caps.fields["fps"].support == "unsupported"
    # Another base URL is another service: its cache is its own.
    assert ENUMS not in ReplicateAdapter(base_url="http://other.test").capabilities().models


async def test_the_report_lists_what_is_mapped_what_is_not_and_the_audio_switch(
    adapter: ReplicateAdapter,
) -> None:
    report = await adapter.describe_model(ENUMS, CREDS)
    assert report.unused == []
    assert report.notes == [
        "audio: the model has a switch, input 'generate_audio' (default true); the request's "
        "audio sets it, and unset leaves the model's default"
    ]
    assert report.capabilities.fields["audio"].note == (
        "input 'generate_audio': true or false; unset: not sent, default true"
    )
    frames = await adapter.describe_model(FRAMES, CREDS)
    assert frames.capabilities.fields["duration"].support == "mapped"
    assert frames.capabilities.fields["image_url"].note == "input 'first_frame_image' (required)"
    assert not frames.capabilities.text_to_video and frames.unused == []
    table = await adapter.describe_model("google/veo-3.1", CREDS)
    assert table.source == "SceneFlow's built-in table"


# -- fetch failures and the cache -----------------------------------------------------------


async def test_an_unknown_model_is_a_clear_error_and_nothing_is_submitted(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    with pytest.raises(RequestValidationError) as info:
        await adapter.submit(req(model="nobody/no-such-model"), CREDS)
    assert info.value.problems == [
        "model: Replicate has no model 'nobody/no-such-model' that this token can see (GET "
        "/v1/models/nobody/no-such-model answered 404); check the name on replicate.com, or use "
        "one of kwaivgi/kling-v2.5-turbo-pro, google/veo-3.1, minimax/hailuo-02"
    ]
    assert emu.submissions == 0 and [m for m, _ in sent(app)] == ["GET"]


async def test_a_failed_schema_fetch_sends_nothing_is_retryable_and_is_not_cached(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    emu.inject("schema", "500")
    with pytest.raises(TransientError) as info:
        await adapter.submit(req(model=ENUMS), CREDS)
    assert str(info.value) == (
        f"replicate: reading the input schema of {ENUMS} failed, so nothing was sent: "
        "replicate answered HTTP 500: Internal Server Error: Something went wrong on our side"
    )
    assert emu.submissions == 0
    await adapter.submit(req(model=ENUMS), CREDS)  # the retry reads it again
    assert emu.submissions == 1 and sent(app)[-2:] == [
        ("GET", f"/v1/models/{ENUMS}"),
        ("POST", f"/v1/models/{ENUMS}/predictions"),
    ]


async def test_many_submits_read_the_schema_once(
    adapter: ReplicateAdapter, app: Starlette, emu: Emulator
) -> None:
    requests = [req(model=ENUMS, seed=i) for i in range(8)]
    await asyncio.gather(*(adapter.submit(r, CREDS) for r in requests))
    await adapter.submit(req(model=ENUMS), CREDS)
    # Another adapter of the process (one per task), looking up a lost submit, reads no more.
    other = ReplicateAdapter(client=adapter._client, base_url="http://replicate.test")
    await other.find_submitted(req(model=ENUMS), CREDS, since=datetime(2020, 1, 1, tzinfo=UTC))
    schema_reads = [p for m, p in sent(app) if m == "GET" and p.startswith("/v1/models/")]
    assert schema_reads == [f"/v1/models/{ENUMS}"]
    assert emu.submissions == 9


async def test_a_private_schema_serves_only_the_token_that_read_it(
    adapter: ReplicateAdapter, app: Starlette
) -> None:
    private = "acme/private-video"
    await adapter.submit(req(model=private, duration=4), CREDS)
    await adapter.submit(req(model=private, duration=8), CREDS)
    assert [p for m, p in sent(app) if m == "GET"] == [f"/v1/models/{private}"]
    # Not for validate() (no token) nor capabilities(), and another token must read it itself.
    assert adapter.validate(req(model=private, duration=5))[0].startswith("model: ")
    assert private not in adapter.capabilities().models
    with pytest.raises(AuthError):
        await adapter.submit(req(model=private, duration=4), OTHER)


# -- over real HTTP, to the verified file ---------------------------------------------------


async def test_a_frames_model_video_lasts_what_was_asked(tmp_path: Path) -> None:
    with serve(create_app(Emulator(latency=0.3))) as url:
        async with ReplicateAdapter(base_url=url) as adapter:
            request = req(model=FRAMES, duration=3, fps=16, image_url=IMAGE)
            job_id = await adapter.submit(request, CREDS)
            for _ in range(100):
                result = await adapter.status(job_id, CREDS)
                if result.status is JobStatus.COMPLETED:
                    break
                await asyncio.sleep(0.05)
            path = await adapter.download(result, CREDS, tmp_path / "out.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        assert float(stream.duration * stream.time_base) == pytest.approx(3, abs=0.2)
