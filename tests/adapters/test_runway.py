"""RunwayAdapter against the Runway emulator: in-process (ASGITransport) for the fast cases and
over real HTTP (uvicorn on 127.0.0.1) for the lifecycle, timeouts and downloads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest
import pytest_asyncio

from adapters.runway import RunwayAdapter
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.runway import API_KEY, RunwayEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "key_" + "f" * 128


def req(**kw: object) -> StandardVideoRequest:
    fields: dict[str, object] = {
        "prompt": "A red fox runs through snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
    }
    return StandardVideoRequest(**(fields | kw))  # type: ignore[arg-type]


def secret_free(exc: BaseException) -> BaseException:
    """No key or auth header anywhere in the exception or its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert API_KEY not in text and WRONG_KEY not in text and "Bearer" not in text
        seen = seen.__cause__ or seen.__context__
    return exc


@pytest.fixture
def emu() -> RunwayEmulator:
    # A long latency so jobs stay put until a test ages them (see `age`).
    return RunwayEmulator(latency=10, queued_fraction=0.3)


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def adapter(emu: RunwayEmulator) -> AsyncIterator[RunwayAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
    yield RunwayAdapter(client=client, base_url="http://runway.test")
    await client.aclose()


def age(emu: RunwayEmulator, job_id: str, seconds: float) -> None:
    emu.jobs[job_id].created = time.monotonic() - seconds


async def test_submit_sends_the_exact_body_for_the_default_model(adapter, emu):
    job_id = await adapter.submit(req(seed=42, style="watercolor"), CREDS)

    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"]) == ("POST", "/v1/text_to_video")
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["headers"]["x-runway-version"] == "2024-11-06"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "gen4.5",
        "promptText": "A red fox runs through snow. Style: watercolor.",
        "ratio": "1280:720",
        "duration": 5,
        "seed": 42,
    }
    assert job_id in emu.jobs and emu.submissions == 1


async def test_model_and_image_pick_the_endpoint_and_veo_fields(adapter, emu):
    request = req(
        model="veo3.1",
        aspect_ratio="9:16",
        resolution="1080p",
        duration=8,
        negative_prompt="blur",
        image_url="https://img.example.com/fox.png",
    )
    await adapter.submit(request, CREDS)

    sent = emu.recorded[-1]
    assert sent["path"] == "/v1/image_to_video"
    assert sent["body"] == {
        "model": "veo3.1",
        "promptText": "A red fox runs through snow",
        "ratio": "1080:1920",
        "duration": 8,
        "negativePrompt": "blur",
        "promptImage": "https://img.example.com/fox.png",
    }


IMG = "https://img.example.com/a.png"


@pytest.mark.parametrize(
    ("kw", "ratio"),
    [
        ({"aspect_ratio": "9:16"}, "720:1280"),
        ({"aspect_ratio": "21:9", "image_url": IMG}, "1584:672"),
        ({"model": "gen4_turbo", "aspect_ratio": "1:1", "image_url": IMG}, "960:960"),
        ({"model": "gen4_turbo", "aspect_ratio": "4:3", "image_url": IMG,
          "resolution": "1104x832"}, "1104:832"),
        ({"model": "veo3.1", "resolution": "1920x1080", "duration": 6}, "1920:1080"),
        ({"model": "veo3.1_fast", "resolution": "720p", "duration": 6}, "1280:720"),
    ],
)  # fmt: skip
def test_aspect_ratio_and_resolution_map_to_runway_pixel_ratio(kw, ratio):
    _, body = RunwayAdapter().build_body(req(**kw))
    assert body["ratio"] == ratio


def problems(request: StandardVideoRequest) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        RunwayAdapter().validate(request)
    assert info.value.provider == "runway"
    return info.value.problems


def test_validate_lists_every_problem_with_the_allowed_values():
    bad = req(model="veo3.1", aspect_ratio="4:3", duration=15, image_url="http://x.example/a.png")
    assert problems(bad) == [
        "aspect_ratio: veo3.1 image-to-video supports 16:9, 9:16; got 4:3",
        "duration: veo3.1 takes one of 4, 6, 8 seconds; got 15",
        "image_url: Runway fetches only https:// URLs or data: URIs; got http://",
    ]


LONG = "prompt: Runway takes at most 1000 characters (UTF-16 units) including the folded-in style"
TEXT_MODELS = "gen4.5, veo3.1, veo3.1_fast"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (req(resolution="1080p"), "resolution: gen4.5 text-to-video at 16:9 supports 720p, "
         "1280x720; got 1080p"),
        (req(aspect_ratio="1:1"), "aspect_ratio: gen4.5 text-to-video supports 16:9, 9:16; "
         "got 1:1"),
        (req(duration=5.5), "duration: gen4.5 takes whole seconds from 2 to 10; got 5.5"),
        (req(duration=15), "duration: gen4.5 takes whole seconds from 2 to 10; got 15"),
        (req(model="gen4_turbo"), "image_url: gen4_turbo only turns an image into video; set "
         f"image_url, or choose one of {TEXT_MODELS}"),
        (req(model="gen3a_turbo"), "model: 'gen3a_turbo' is not a Runway model SceneFlow maps; "
         "allowed: gen4.5, gen4_turbo, veo3.1, veo3.1_fast"),
        (req(prompt="x" * 990, style="film noir"), f"{LONG}; got 1009"),
        (req(prompt="🦊" * 600), f"{LONG}; got 1200"),
        (req(image_url="https://x.example/" + "a" * 2100),
         "image_url: Runway takes URLs up to 2048 characters; got 2118"),
        (req(image_url="data:image/png;base64," + "A" * (5 * 1024 * 1024)),
         "image_url: Runway takes data: URIs up to 5 MB; got 5242902 bytes"),
    ],
)  # fmt: skip
def test_validate_rejects_what_runway_cannot_do(request_, problem):
    assert problems(request_) == [problem]


async def test_submit_of_an_invalid_request_sends_nothing(adapter, emu):
    with pytest.raises(RequestValidationError):
        await adapter.submit(req(duration=30), CREDS)
    assert emu.recorded == [] and emu.submissions == 0


def test_warnings_name_each_field_without_an_equivalent():
    assert RunwayAdapter().validate(req()) == [
        "motion_intensity: runway has no equivalent setting; describe the amount of motion in "
        "the prompt"
    ]
    warnings = RunwayAdapter().validate(req(fps=30, quality="high", negative_prompt="blur"))
    assert [w.split(":")[0] for w in warnings] == ["motion_intensity", "fps", "quality"] + [
        "negative_prompt"
    ]
    assert "gen4.5 ignores it (only veo3.1 models take one)" in warnings[-1]
    veo = RunwayAdapter().validate(req(model="veo3.1", duration=4, negative_prompt="blur"))
    assert [w.split(":")[0] for w in veo] == ["motion_intensity"]


def test_capabilities_cover_every_field_per_model():
    caps = RunwayAdapter().capabilities()
    fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.default_model == "gen4.5" and caps.credential_fields == ["api_key"]
    assert caps.can_cancel and caps.poll_interval >= 5
    assert caps.connection_test.startswith("GET /v1/organization")
    for name, model in caps.models.items():
        assert set(model.fields) == fields, name
    assert caps.models["veo3.1"].fields["negative_prompt"].support == "native"
    assert caps.models["gen4.5"].fields["negative_prompt"].support == "unsupported"
    assert caps.models["gen4.5"].fields["aspect_ratio"].support == "mapped"
    assert not caps.models["gen4_turbo"].text_to_video
    assert caps.models["veo3.1"].durations == [4, 6, 8]
    assert caps.models["veo3.1"].resolutions == ["1080p", "720p"]


async def test_pending_running_succeeded_map_with_progress_and_cost(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)

    queued = await adapter.status(job_id, CREDS)
    assert (queued.status, queued.progress, queued.cost) == (JobStatus.QUEUED, 0, 60)
    assert queued.provider_details["runway_status"] == "PENDING"
    assert queued.provider_details["cost_is_estimate"] is True

    age(emu, job_id, 6.5)  # queued for 3 s, then 7 s running: half-way
    running = await adapter.status(job_id, CREDS)
    assert running.status == JobStatus.PROCESSING and running.progress == pytest.approx(50)

    age(emu, job_id, 11)
    done = await adapter.status(job_id, CREDS)
    assert (done.status, done.progress, done.cost) == (JobStatus.COMPLETED, 100, 60)
    assert done.video_url and "_jwt=" in done.video_url
    assert done.provider_details["cost_is_estimate"] is False
    assert "_jwt" not in json.dumps(done.provider_details)


async def test_throttled_is_queued(adapter, emu):
    emu.max_concurrent = 1
    await adapter.submit(req(), CREDS)
    second = await adapter.submit(req(), CREDS)
    result = await adapter.status(second, CREDS)
    assert result.status == JobStatus.QUEUED
    assert result.provider_details["runway_status"] == "THROTTLED"


async def test_async_failure_is_failed_with_runways_reason(adapter, emu):
    emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED and result.cost == 60
    assert result.error_message == "An unexpected error occurred. (INTERNAL.BAD_OUTPUT.CODE01)"
    assert result.provider_details["failure_code"] == "INTERNAL.BAD_OUTPUT.CODE01"


async def test_moderation_raises_with_runways_message(adapter, emu):
    emu.inject("submit", "moderation")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    with pytest.raises(ModerationError) as info:
        await adapter.status(job_id, CREDS)
    message = str(secret_free(info.value))
    assert "SAFETY.INPUT.TEXT" in message
    assert "The prompt text did not pass content moderation." in message
    assert "billed (60 credits)" in message


@pytest.mark.parametrize(("elapsed", "charged"), [(0, 0), (6.5, 60)])
async def test_cancel_active_task(adapter, emu, elapsed, charged):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, elapsed)
    await adapter.cancel(job_id, CREDS)

    delete = emu.recorded[-1]
    assert (delete["method"], delete["path"]) == ("DELETE", f"/v1/tasks/{job_id}")
    assert delete["headers"]["accept"] == "*/*"
    assert delete["headers"]["x-runway-version"] == "2024-11-06"
    result = await adapter.status(job_id, CREDS)
    assert (result.status, result.cost) == (JobStatus.CANCELLED, charged)


async def test_cancel_never_deletes_a_finished_task_and_ignores_a_gone_one(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    await adapter.cancel(job_id, CREDS)
    assert [r["method"] for r in emu.recorded] == ["POST", "GET"]
    assert (await adapter.status(job_id, CREDS)).status == JobStatus.COMPLETED

    await adapter.cancel("0b4e6f3c-0000-4000-8000-000000000000", CREDS)


async def test_runways_error_bodies_reach_the_error(adapter):
    with pytest.raises(RejectedError) as info:
        await adapter.status("no-such-task", CREDS)
    assert info.value.status_code == 404 and "Task not found" in str(info.value)
    body = {"model": "gen4.5", "promptText": "x", "ratio": "999:1", "duration": 5}
    with pytest.raises(RejectedError) as info:
        await adapter.request("POST", "/v1/text_to_video", credentials=CREDS, json=body)
    assert str(info.value).startswith("runway answered HTTP 400: ratio: must be one of")


async def test_test_connection_and_wrong_key_is_auth_error_everywhere(adapter, emu):
    await adapter.test_connection(CREDS)
    assert emu.recorded[-1]["path"] == "/v1/organization"
    wrong = Credentials({"api_key": WRONG_KEY})
    for call in (
        adapter.submit(req(), wrong),
        adapter.status("x", wrong),
        adapter.test_connection(wrong),
    ):
        with pytest.raises(AuthError) as info:
            await call
        assert "sceneflow creds set USER runway" in str(secret_free(info.value))
        assert info.value.status_code == 401


async def test_credentials_problems_are_caught_before_sending(adapter, emu):
    with pytest.raises(CredentialsError, match="have no 'api_key' field"):
        await adapter.test_connection(Credentials({"key": API_KEY}))
    with pytest.raises(CredentialsError, match="spaces, line breaks") as info:
        await adapter.submit(req(), Credentials({"api_key": API_KEY + "\n"}))
    secret_free(info.value)
    assert emu.recorded == []


async def test_429_is_rate_limited_with_retry_after(adapter, emu):
    emu.inject("submit", "429", retry_after=2)
    with pytest.raises(RateLimitedError) as info:
        await adapter.submit(req(), CREDS)
    assert secret_free(info.value).retry_after == 2 and emu.submissions == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
        ("status", "503", TransientError),
        ("status", "500", TransientError),
        ("status", "malformed", TransientError),
    ],
)
async def test_server_faults_translate(adapter, emu, op, kind, error):
    job_id = await adapter.submit(req(), CREDS) if op == "status" else None
    emu.inject(op, kind)
    with pytest.raises(ProviderError) as info:
        if job_id:
            await adapter.status(job_id, CREDS)
        else:
            await adapter.submit(req(), CREDS)
    assert type(secret_free(info.value)) is error


def canned(reply: dict[str, object]) -> RunwayAdapter:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
    return RunwayAdapter(client=httpx.AsyncClient(transport=transport))


async def test_unreadable_task_reply_is_transient_and_names_the_field():
    with pytest.raises(TransientError, match=r"cannot read \(HTTP 200; fields: status\)"):
        await canned({"id": "t", "status": "ARCHIVED"}).status("t", CREDS)


async def test_succeeded_without_output_is_failed():
    reply = {"id": "t", "status": "SUCCEEDED", "cost": {"credits": 5}, "output": []}
    result = await canned(reply).status("t", CREDS)
    assert result.status == JobStatus.FAILED and result.video_url is None
    assert result.error_message == "Runway reported SUCCEEDED but returned no output"


async def wait_done(adapter: RunwayAdapter, job_id: str) -> StandardVideoResult:
    for _ in range(100):
        result = await adapter.status(job_id, CREDS)
        if result.status == JobStatus.COMPLETED:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the emulator job never completed")


def assert_mp4(path: Path) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) > 0


async def test_lifecycle_and_download_over_http(tmp_path):
    emu = RunwayEmulator(latency=0.3)
    with serve(emu.app) as url:
        async with RunwayAdapter(base_url=url) as adapter:
            job_id = await adapter.submit(req(), CREDS)
            result = await wait_done(adapter, job_id)
            path = await adapter.download(result, CREDS, tmp_path / "out" / "v.mp4")
    assert_mp4(path)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    # Signed CDN URLs need no auth: our key and version header must not travel there.
    assert "authorization" not in emu.output_fetches[-1]
    assert "x-runway-version" not in emu.output_fetches[-1]


async def test_expired_output_url_is_signed_afresh(adapter, emu, tmp_path):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    emu.url_ttl = -60
    stale = await adapter.status(job_id, CREDS)
    with pytest.raises(RejectedError, match="refused even with a freshly signed URL") as info:
        await adapter.download(stale, CREDS, tmp_path / "a.mp4")
    assert not isinstance(info.value, AuthError)  # the key is fine; don't mark it invalid

    emu.url_ttl = 3600
    path = await adapter.download(stale, CREDS, tmp_path / "b.mp4")
    assert_mp4(path)
    assert len(emu.output_fetches) == 4  # each download: the stale URL, then a fresh one


async def test_lost_submit_reply_is_ambiguous_over_http():
    emu = RunwayEmulator()
    emu.inject("submit", "slow", delay=1.0)
    with serve(emu.app) as url:
        client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
        adapter = RunwayAdapter(client=client, base_url=url)
        with pytest.raises(AmbiguousSubmitError, match="may have been accepted") as info:
            await adapter.submit(req(), CREDS)
        secret_free(info.value)
        await client.aclose()
        await asyncio.sleep(1.0)  # the emulator still creates the task: the danger in question
    assert emu.submissions == 1


async def test_a_lost_reply_is_ambiguous_and_the_task_exists() -> None:
    emu = RunwayEmulator(latency=0.2)
    emu.inject("submit", "lost")
    with serve(emu.app) as url:
        async with RunwayAdapter(base_url=url) as adapter:
            with pytest.raises(AmbiguousSubmitError, match="HTTP 504"):
                await adapter.submit(req(), CREDS)
    assert emu.submissions == 1 and len(emu.jobs) == 1
