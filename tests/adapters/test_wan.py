"""WanAdapter against the DashScope emulator over real HTTP (uvicorn on 127.0.0.1): request
mapping, validation, the task lifecycle, errors, cancel, downloads and lost-submit lookups.
A few replies DashScope may send but the emulator does not are canned with MockTransport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import pytest_asyncio

import adapters
import adapters.wan
from adapters.wan import WanAdapter
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
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, Lookup
from sceneflow.settings import get_settings
from tests.support.emulators._base import serve
from tests.support.emulators.wan import API_KEY, PREFIX, WanEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "sk-" + "f" * 32
IMG = "https://img.example.com/fox.png"
JSON_TYPE = "application/json; charset=utf-8"


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A red fox runs through snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
    }
    return StandardVideoRequest(**(fields | kw))


def secret_free(exc: BaseException) -> BaseException:
    """No key, auth header or signature anywhere in the exception or its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert API_KEY not in text and WRONG_KEY not in text and "Bearer" not in text
            assert "Signature=" not in text
        seen = seen.__cause__ or seen.__context__
    return exc


@pytest.fixture
def emu() -> WanEmulator:
    # A long latency so tasks stay put until a test ages them (see `age`).
    return WanEmulator(latency=10, queued_fraction=0.3)


@pytest.fixture
def base_url(emu: WanEmulator) -> Iterator[str]:
    with serve(emu.app) as url:
        yield url + PREFIX


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def adapter(base_url: str) -> AsyncIterator[WanAdapter]:
    async with WanAdapter(base_url=base_url) as a:
        yield a


def age(emu: WanEmulator, job_id: str, seconds: float) -> None:
    emu.jobs[job_id].created = time.monotonic() - seconds


def calls(emu: WanEmulator) -> list[tuple[str, str]]:
    return [(r["method"], r["path"].removeprefix(PREFIX)) for r in emu.recorded]


# -- request mapping -----------------------------------------------------------------------


async def test_submit_sends_the_exact_request_for_the_default_model(adapter, emu):
    job_id = await adapter.submit(req(seed=42, style="watercolor", negative_prompt="blur"), CREDS)

    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"], sent["query"]) == (
        "POST",
        "/api/v1/services/aigc/video-generation/video-synthesis",
        {},
    )
    headers = sent["headers"]
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["x-dashscope-async"] == "enable"
    assert headers["content-type"] == headers["accept"] == JSON_TYPE
    assert "x-dashscope-workspace" not in headers
    assert sent["body"] == {
        "model": "wanx2.1-t2v-turbo",
        "input": {
            "prompt": "A red fox runs through snow. Style: watercolor.",
            "negative_prompt": "blur",
            "extend_prompt": True,
            "function": "video-synthesis",
        },
        "parameters": {"size": "1280*720", "duration": 5, "seed": 42},
    }
    assert job_id in emu.jobs and emu.submissions == 1


async def test_an_image_picks_the_image_model_and_keyframe_models_their_own_path(adapter, emu):
    await adapter.submit(req(image_url=IMG, duration=3, resolution="480p"), CREDS)
    sent = emu.recorded[-1]
    assert sent["path"] == "/api/v1/services/aigc/video-generation/video-synthesis"
    assert sent["body"] == {
        "model": "wanx2.1-i2v-turbo",
        "input": {
            "prompt": "A red fox runs through snow",
            "extend_prompt": True,
            "function": "video-synthesis",
            "img_url": IMG,
        },
        "parameters": {"resolution": "480P", "duration": 3},
    }

    await adapter.submit(req(model="wanx2.1-kf2v-plus", image_url=IMG), CREDS)
    sent = emu.recorded[-1]
    assert sent["path"] == "/api/v1/services/aigc/image2video/video-synthesis"
    assert sent["headers"]["x-dashscope-async"] == "enable"
    assert sent["body"]["input"]["first_frame_url"] == IMG
    assert sent["body"]["parameters"] == {"resolution": "720P", "duration": 5}
    assert emu.submissions == 2


@pytest.mark.parametrize(
    ("kw", "size"),
    [
        ({"aspect_ratio": "9:16"}, "720*1280"),
        ({"aspect_ratio": "1:1", "resolution": "480p"}, "624*624"),
        ({"aspect_ratio": "4:3"}, "1088*832"),
        ({"model": "wan2.2-t2v-plus", "resolution": "1080p", "aspect_ratio": "3:4"}, "1248*1632"),
        ({"model": "wan2.2-t2v-plus", "resolution": "832x480"}, "832*480"),
        ({"model": "wan2.5-t2v-preview", "resolution": "1920x1080", "duration": 10}, "1920*1080"),
    ],
)
def test_aspect_ratio_and_resolution_map_to_a_dashscope_size(kw, size):
    _, body = WanAdapter().build(req(**kw))
    assert body["parameters"]["size"] == size


async def test_region_picks_the_host_and_workspace_travels_as_a_header():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tasks": [], "total": 0})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        wan = WanAdapter(client=client)
        for region in (None, "singapore", "virginia", "beijing"):
            values = {"api_key": API_KEY} | ({"region": region} if region else {})
            await wan.test_connection(Credentials(values))
        await wan.test_connection(Credentials({"api_key": API_KEY, "workspace": "llm-ab12_C"}))
        with pytest.raises(CredentialsError, match="allowed: singapore, virginia, beijing"):
            await wan.test_connection(Credentials({"api_key": API_KEY, "region": "hangzhou"}))
        with pytest.raises(CredentialsError, match="not a DashScope workspace id"):
            await wan.test_connection(Credentials({"api_key": API_KEY, "workspace": "a.evil/x"}))
        # An explicit base URL (SCENEFLOW_BASE_URLS__WAN) wins over the region.
        pinned = WanAdapter(client=client, base_url="http://127.0.0.1:1/api/v1/")
        await pinned.test_connection(Credentials({"api_key": API_KEY, "region": "beijing"}))
    assert [str(r.url).split("?")[0] for r in seen] == [
        "https://dashscope-intl.aliyuncs.com/api/v1/tasks",
        "https://dashscope-intl.aliyuncs.com/api/v1/tasks",
        "https://dashscope-us.aliyuncs.com/api/v1/tasks",
        "https://dashscope.aliyuncs.com/api/v1/tasks",
        "https://dashscope-intl.aliyuncs.com/api/v1/tasks",
        "http://127.0.0.1:1/api/v1/tasks",
    ]
    assert seen[4].headers["x-dashscope-workspace"] == "llm-ab12_C"
    assert "x-dashscope-workspace" not in seen[0].headers


async def test_the_registry_builds_it_with_the_base_url_setting(base_url, emu, monkeypatch):
    monkeypatch.setitem(adapters.REGISTRY, "wan", "adapters.wan:WanAdapter")
    monkeypatch.setenv("SCENEFLOW_BASE_URLS__WAN", base_url)
    get_settings.cache_clear()
    wan = adapters.get_adapter("wan")
    try:
        await wan.test_connection(Credentials({"api_key": API_KEY, "region": "beijing"}))
    finally:
        await wan.aclose()
    assert calls(emu) == [("GET", "/tasks")]


# -- validation ----------------------------------------------------------------------------


def problems(request: StandardVideoRequest) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        WanAdapter().validate(request)
    assert info.value.provider == "wan"
    return info.value.problems


def test_validate_lists_every_problem_with_the_allowed_values():
    bad = req(model="wan2.2-t2v-plus", aspect_ratio="21:9", duration=8, image_url=IMG)
    assert problems(bad) == [
        "aspect_ratio: wan2.2-t2v-plus takes 16:9, 1:1, 3:4, 4:3, 9:16; got 21:9",
        "duration: wan2.2-t2v-plus takes only 5 seconds; got 8",
        "image_url: wan2.2-t2v-plus is text-to-video; choose one of wanx2.1-i2v-turbo, "
        "wanx2.1-i2v-plus, wan2.2-i2v-plus, wanx2.1-kf2v-plus, or drop image_url",
    ]


TEXT_MODELS = "wanx2.1-t2v-turbo, wanx2.1-t2v-plus, wan2.2-t2v-plus, wan2.5-t2v-preview"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (req(resolution="1080p"), "resolution: wanx2.1-t2v-turbo at 16:9 takes 480p, 720p, "
         "832x480, 1280x720; got 1080p"),
        (req(resolution="4k", model="wan2.5-t2v-preview"), "resolution: wan2.5-t2v-preview at "
         "16:9 takes 480p, 720p, 1080p, 832x480, 1280x720, 1920x1080; got 4k"),
        (req(duration=5.5), "duration: wanx2.1-t2v-turbo takes only 5 seconds; got 5.5"),
        (req(model="wan2.5-t2v-preview", duration=15),
         "duration: wan2.5-t2v-preview takes one of 5, 10 seconds; got 15"),
        (req(model="wan2.2-i2v-plus", resolution="480p"), "image_url: wan2.2-i2v-plus turns an "
         f"image into video; set image_url, or choose one of {TEXT_MODELS}"),
        (req(image_url=IMG, resolution="1280x720"), "resolution: wanx2.1-i2v-turbo takes 480p, "
         "720p (the video takes the image's shape); got 1280x720"),
        (req(image_url="data:image/png;base64,AAAA"), "image_url: DashScope fetches the image "
         "itself, so it must be a public http(s) URL; data: URLs are not accepted. Upload the "
         "image and pass its URL"),
        (req(model="wan2.6-t2v"), "model: 'wan2.6-t2v' is not a Wan model SceneFlow maps; "
         "allowed: " + ", ".join(adapters.wan.MODELS)),
        (req(prompt="x" * 790, style="film noir"), "prompt: wanx2.1-t2v-turbo takes at most "
         "800 characters including the folded-in style; got 809"),
        (req(negative_prompt="n" * 501), "negative_prompt: Wan takes at most 500 characters; "
         "got 501"),
    ],
)  # fmt: skip
def test_validate_rejects_what_wan_cannot_do(request_, problem):
    assert problems(request_) == [problem]


async def test_submit_of_an_invalid_request_sends_nothing(adapter, emu):
    with pytest.raises(RequestValidationError):
        await adapter.submit(req(duration=30), CREDS)
    with pytest.raises(RequestValidationError):
        await adapter.find_submitted(req(duration=30), CREDS, since=datetime.now(UTC))
    assert emu.recorded == [] and emu.submissions == 0


def test_warnings_name_each_field_without_an_equivalent():
    assert WanAdapter().validate(req()) == [
        "motion_intensity: wan has no equivalent setting; not sent; describe the amount of "
        "motion in the prompt"
    ]
    warnings = WanAdapter().validate(req(fps=30, quality="high", image_url=IMG))
    assert [w.split(":")[0] for w in warnings] == [
        "motion_intensity",
        "fps",
        "quality",
        "aspect_ratio",
    ]
    assert warnings[1].endswith("not sent; wanx2.1-i2v-turbo renders at its own frame rate")
    assert "in the shape of the image, not 16:9" in warnings[3]


def test_capabilities_cover_every_field_per_model():
    caps = WanAdapter().capabilities()
    fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.provider == "wan" and caps.default_model == "wanx2.1-t2v-turbo"
    assert caps.credential_fields == ["api_key"] and caps.can_cancel
    assert caps.connection_test.startswith("GET /api/v1/tasks?page_no=1&page_size=1")
    assert caps.poll_interval == 5 and caps.max_poll_interval == 30
    for name, model in caps.models.items():
        assert set(model.fields) == fields, name
    turbo = caps.models["wanx2.1-t2v-turbo"]
    assert turbo.aspect_ratios == ["16:9", "1:1", "3:4", "4:3", "9:16"]
    assert turbo.resolutions == ["480p", "720p"] and turbo.durations == [5]
    assert turbo.fields["aspect_ratio"].support == "mapped"
    assert turbo.fields["image_url"].support == "unsupported"
    assert turbo.fields["motion_intensity"].support == "unsupported"
    i2v = caps.models["wanx2.1-i2v-turbo"]
    assert i2v.image_to_video and not i2v.text_to_video and i2v.durations == [3, 4, 5]
    assert i2v.fields["image_url"].support == "native"
    assert i2v.fields["aspect_ratio"].support == "unsupported"
    assert caps.models["wan2.5-t2v-preview"].max_duration == 10


# -- the task lifecycle --------------------------------------------------------------------


async def test_pending_running_succeeded_map_with_details(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)

    queued = await adapter.status(job_id, CREDS)
    assert (queued.status, queued.progress) == (JobStatus.QUEUED, 0)
    assert queued.provider_details["dashscope_status"] == "PENDING"
    assert calls(emu)[-1] == ("GET", f"/tasks/{job_id}")

    age(emu, job_id, 6)
    running = await adapter.status(job_id, CREDS)
    assert running.status == JobStatus.PROCESSING
    assert "scheduled_time" in running.provider_details

    age(emu, job_id, 11)
    done = await adapter.status(job_id, CREDS)
    assert (done.status, done.progress, done.provider_job_id) == (JobStatus.COMPLETED, 100, job_id)
    assert done.video_url and "Signature=" in done.video_url
    assert done.provider_details["usage"] == {
        "video_duration": 5,
        "video_count": 1,
        "video_ratio": "1280*720",
    }
    assert "Signature" not in json.dumps(done.provider_details)


async def test_suspended_is_queued_and_canceled_is_cancelled(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    emu.suspend(job_id)
    suspended = await adapter.status(job_id, CREDS)
    assert suspended.status == JobStatus.QUEUED
    assert suspended.provider_details["dashscope_status"] == "SUSPENDED"

    other = await adapter.submit(req(), CREDS)
    await adapter.cancel(other, CREDS)
    assert (await adapter.status(other, CREDS)).status == JobStatus.CANCELLED


async def test_unknown_task_is_failed_as_lost_and_never_resubmitted(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    emu.expire(job_id)
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED
    assert result.provider_details["dashscope_status"] == "UNKNOWN"
    assert "older than the 24 hours" in result.error_message  # type: ignore[operator]
    assert "never re-submits it silently" in result.error_message  # type: ignore[operator]
    assert emu.submissions == 1


async def test_async_failure_is_failed_with_dashscopes_reason(adapter, emu):
    emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED and result.video_url is None
    assert result.error_message == (
        "InternalError.Algo: An internal error has occurred during execution."
    )
    assert result.provider_details["code"] == "InternalError.Algo"


async def test_moderation_raises_at_submit_and_at_status_with_the_reason(adapter, emu):
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError) as info:
        await adapter.submit(req(), CREDS)
    message = str(secret_free(info.value))
    assert "DataInspectionFailed: Input data may contain inappropriate content." in message
    assert info.value.status_code == 400 and emu.submissions == 0

    emu.inject("output", "moderation")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    with pytest.raises(ModerationError) as info:
        await adapter.status(job_id, CREDS)
    assert "Output data may contain inappropriate content." in str(secret_free(info.value))


async def test_succeeded_without_a_video_url_is_failed():
    reply = {"output": {"task_id": "t", "task_status": "SUCCEEDED"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
    async with httpx.AsyncClient(transport=transport) as client:
        result = await WanAdapter(client=client).status("t", CREDS)
    assert result.status == JobStatus.FAILED
    assert result.error_message == "DashScope reported SUCCEEDED but returned no video_url"


async def test_unreadable_task_reply_is_transient_and_names_the_field():
    reply = {"output": {"task_id": "t", "task_status": "ARCHIVED"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(TransientError, match=r"fields: output.task_status"):
            await WanAdapter(client=client).status("t", CREDS)


# -- errors --------------------------------------------------------------------------------


async def test_wrong_key_is_auth_error_everywhere(base_url, emu):
    wrong = Credentials({"api_key": WRONG_KEY})
    async with WanAdapter(base_url=base_url) as wan:
        for call in (
            wan.submit(req(), wrong),
            wan.status("x", wrong),
            wan.test_connection(wrong),
            wan.find_submitted(req(), wrong, since=datetime.now(UTC)),
        ):
            with pytest.raises(AuthError) as info:
                await call
            assert "InvalidApiKey: Invalid API-key provided." in str(secret_free(info.value))
            assert "sceneflow creds set USER wan" in str(info.value)
            assert info.value.status_code == 401
    assert emu.submissions == 0


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
    assert secret_free(info.value).retry_after == 2  # type: ignore[attr-defined]
    assert "Throttling.RateQuota" in str(info.value) and emu.submissions == 0


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
        ("submit", "lost", AmbiguousSubmitError),
        ("status", "500", TransientError),
        ("status", "503", TransientError),
        ("status", "malformed", TransientError),
        ("status", "429", RateLimitedError),
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


async def test_dashscopes_error_bodies_reach_the_error(adapter, base_url):
    body = {"model": "wanx2.1-t2v-turbo", "input": {"prompt": "x"}, "parameters": {"size": "1*1"}}
    with pytest.raises(RejectedError) as info:
        await adapter.request(
            "POST",
            base_url + "/services/aigc/video-generation/video-synthesis",
            credentials=CREDS,
            json=body,
            headers={"X-DashScope-Async": "enable"},
        )
    assert str(info.value).startswith("wan answered HTTP 400: InvalidParameter: The size is not")
    assert "(request_id " in str(info.value)


async def test_the_emulator_refuses_a_create_without_the_async_header(base_url, emu):
    body = {"model": "wanx2.1-t2v-turbo", "input": {"prompt": "x"}}
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            base_url + "/services/aigc/video-generation/video-synthesis",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert reply.status_code == 403
    assert reply.json()["message"] == "current user api does not support synchronous calls"
    assert emu.submissions == 0


async def test_lost_submit_reply_is_ambiguous(base_url, emu):
    emu.inject("submit", "slow", delay=1.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        wan = WanAdapter(client=client, base_url=base_url)
        with pytest.raises(AmbiguousSubmitError, match="may have been accepted") as info:
            await wan.submit(req(), CREDS)
        secret_free(info.value)
    await asyncio.sleep(1.0)  # the emulator still creates the task: the danger in question
    assert emu.submissions == 1


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_of_a_pending_task_posts_cancel(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    await adapter.cancel(job_id, CREDS)
    assert calls(emu)[-2:] == [("GET", f"/tasks/{job_id}"), ("POST", f"/tasks/{job_id}/cancel")]
    sent = emu.recorded[-1]
    assert sent["body"] is None and sent["headers"]["content-length"] == "0"
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert (await adapter.status(job_id, CREDS)).status == JobStatus.CANCELLED


async def test_cancel_of_a_running_task_is_reported_not_pretended(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 6)
    with pytest.raises(RejectedError, match="is RUNNING; DashScope cancels only PENDING tasks"):
        await adapter.cancel(job_id, CREDS)
    assert ("POST", f"/tasks/{job_id}/cancel") not in calls(emu)
    assert (await adapter.status(job_id, CREDS)).status == JobStatus.PROCESSING


async def test_cancel_of_a_finished_task_sends_nothing(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    await adapter.cancel(job_id, CREDS)
    assert calls(emu)[-1] == ("GET", f"/tasks/{job_id}")


async def test_cancel_refused_after_the_task_started_says_why():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"output": {"task_id": "t", "task_status": "PENDING"}})
        message = "Failed to cancel the task, please confirm if the task is in PENDING status."
        return httpx.Response(400, json={"code": "UnsupportedOperation", "message": message})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RejectedError, match="started running meanwhile") as info:
            await WanAdapter(client=client).cancel("t", CREDS)
    assert "UnsupportedOperation" in str(info.value) and info.value.status_code == 400


# -- downloads and the connection test -----------------------------------------------------


def assert_mp4(path: Path) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) > 0


async def test_lifecycle_and_download_over_http(tmp_path):
    emu = WanEmulator(latency=0.3)
    creds = Credentials({"api_key": API_KEY, "workspace": "ws-1"})
    with serve(emu.app) as url:
        async with WanAdapter(base_url=url + PREFIX) as wan:
            job_id = await wan.submit(req(), creds)
            for _ in range(100):
                result = await wan.status(job_id, creds)
                if result.status == JobStatus.COMPLETED:
                    break
                await asyncio.sleep(0.05)
            path = await wan.download(result, creds, tmp_path / "out" / "v.mp4")
    assert_mp4(path)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    assert all(r["headers"]["x-dashscope-workspace"] == "ws-1" for r in emu.recorded)
    # The signed OSS URL needs no auth: neither our key nor the workspace may travel there.
    assert "authorization" not in emu.output_fetches[-1]
    assert "x-dashscope-workspace" not in emu.output_fetches[-1]


async def test_an_expired_output_url_is_not_an_auth_error(adapter, emu, tmp_path):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    emu.url_ttl = -60
    stale = await adapter.status(job_id, CREDS)
    with pytest.raises(RejectedError, match="signed URL has expired") as info:
        await adapter.download(stale, CREDS, tmp_path / "a.mp4")
    assert not isinstance(info.value, AuthError)  # the key is fine; don't mark it invalid
    secret_free(info.value)
    assert not (tmp_path / "a.mp4").exists()

    emu.url_ttl = 3600  # a re-read of the task signs afresh
    assert_mp4(await adapter.download(stale, CREDS, tmp_path / "b.mp4"))


async def test_connection_test_is_a_one_item_task_list(adapter, emu):
    await adapter.test_connection(CREDS)
    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"]) == ("GET", "/api/v1/tasks")
    assert sent["query"] == {"page_no": "1", "page_size": "1"}
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert emu.submissions == 0


# -- lost submits --------------------------------------------------------------------------


def lists(emu: WanEmulator) -> list[dict[str, str]]:
    return [r["query"] for r in emu.recorded if r["path"] == "/api/v1/tasks"]


async def test_the_task_a_lost_reply_created_is_found_pages_back(adapter, emu, monkeypatch):
    monkeypatch.setattr(adapters.wan, "_LOOKUP_PAGE_SIZE", 2)  # so a lookup has to page
    sent_at = datetime.now(UTC)
    emu.inject("submit", "lost")
    with pytest.raises(AmbiguousSubmitError, match="HTTP 504"):
        await adapter.submit(req(), CREDS)
    (lost_id,) = emu.jobs
    for other in (req(aspect_ratio="9:16", prompt="A quiet harbour"), req(prompt="Rain")):
        await adapter.submit(other, CREDS)
    await adapter.submit(req(image_url=IMG), CREDS)  # another model: filtered by the server
    await adapter.submit(req(prompt="Dawn"), CREDS)

    found = await adapter.find_submitted(req(), CREDS, since=sent_at - timedelta(seconds=5))
    assert found == Lookup(job_ids=[lost_id], complete=True)
    queries = lists(emu)
    assert [q["page_no"] for q in queries] == ["1", "2"]  # 4 tasks of the model, 2 a page
    assert {q["model_name"] for q in queries} == {"wanx2.1-t2v-turbo"}
    start = datetime.strptime(queries[0]["start_time"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert start <= sent_at - timedelta(seconds=5) < start + timedelta(seconds=1)
    assert len(queries[0]["end_time"]) == 14


async def test_tasks_sceneflow_holds_for_other_jobs_are_not_read_again(adapter, emu):
    """A batch's lookup window holds all its other rows' tasks; reading each one made a lookup
    fail whenever any single read did."""
    since = datetime.now(UTC) - timedelta(seconds=5)
    others = [await adapter.submit(req(prompt=f"Row {i}"), CREDS) for i in range(3)]
    mine = await adapter.submit(req(), CREDS)
    found = await adapter.find_submitted(req(), CREDS, since=since, known=set(others))
    assert found == Lookup(job_ids=[mine], complete=True)
    read = {r["path"].rsplit("/", 1)[-1] for r in emu.recorded if r["path"] != "/api/v1/tasks"}
    assert mine in read and not read & set(others)


async def test_several_matches_come_newest_first(adapter, emu):
    since = datetime.now(UTC) - timedelta(seconds=5)
    first = await adapter.submit(req(), CREDS)
    emu.jobs[first].extra["wall"] -= 2  # a second is the list's finest grain
    second = await adapter.submit(req(), CREDS)
    found = await adapter.find_submitted(req(), CREDS, since=since)
    assert found == Lookup(job_ids=[second, first], complete=True)


async def test_older_tasks_are_not_candidates(adapter, emu):
    """The emulator writes times in UTC+8 and the adapter reads them as UTC (the zone is
    unconfirmed, and the lost task must never be dropped), so "older" means older by more than
    the 8 h the two readings differ."""
    job_id = await adapter.submit(req(), CREDS)
    nine_hours_on = datetime.now(UTC) + timedelta(hours=9)
    assert await adapter.find_submitted(req(), CREDS, since=nine_hours_on) == Lookup(
        job_ids=[], complete=True
    )
    in_a_minute = datetime.now(UTC) + timedelta(minutes=1)
    found = await adapter.find_submitted(req(), CREDS, since=in_a_minute)
    assert found == Lookup(job_ids=[job_id], complete=True)


async def test_a_finished_task_of_another_length_or_size_is_not_a_match(adapter, emu):
    since = datetime.now(UTC) - timedelta(seconds=5)
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    assert await adapter.find_submitted(req(resolution="480p"), CREDS, since=since) == Lookup(
        job_ids=[], complete=True
    )
    assert await adapter.find_submitted(req(), CREDS, since=since) == Lookup(
        job_ids=[job_id], complete=True
    )


async def test_a_search_cut_short_by_the_page_cap_is_not_complete(adapter, emu, monkeypatch):
    monkeypatch.setattr(adapters.wan, "_LOOKUP_PAGE_SIZE", 2)
    monkeypatch.setattr(adapters.wan, "_LOOKUP_PAGES", 1)
    since = datetime.now(UTC) - timedelta(seconds=5)
    for prompt in ("one", "two", "three"):
        await adapter.submit(req(prompt=prompt), CREDS)
    found = await adapter.find_submitted(req(prompt="one"), CREDS, since=since)
    assert found == Lookup(job_ids=[], complete=False)  # "one" is on the page not read
    assert len(lists(emu)) == 1


def canned_lookup(task: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tasks"):
            listed = {"task_id": "t1", "task_status": "PENDING", "submit_time": None}
            return httpx.Response(200, json={"total": 1, "tasks": [listed]})
        return httpx.Response(200, json={"output": {"task_id": "t1"} | task})

    return handler


async def test_a_candidate_whose_prompt_cannot_be_read_makes_the_search_incomplete():
    since = datetime.now(UTC)
    unreadable = httpx.MockTransport(canned_lookup({"task_status": "PENDING"}))
    async with httpx.AsyncClient(transport=unreadable) as client:
        found = await WanAdapter(client=client).find_submitted(req(), CREDS, since=since)
    assert found == Lookup(job_ids=[], complete=False)

    readable = {"task_status": "PENDING", "orig_prompt": "A red fox runs through snow"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(canned_lookup(readable))) as c:
        found = await WanAdapter(client=c).find_submitted(req(), CREDS, since=since)
    assert found == Lookup(job_ids=["t1"], complete=True)
