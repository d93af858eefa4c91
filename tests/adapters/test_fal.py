"""FalAdapter against the fal emulator: in-process (ASGITransport) for most cases, over real
HTTP (uvicorn on 127.0.0.1) for the lifecycle, the lost-reply submit and the download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from adapters import get_adapter
from adapters.fal import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    KLING_I2V,
    KLING_T2V,
    VEO3_FAST,
    WAN_T2V,
    FalAdapter,
    _queue_path,
)
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.fal import API_KEY, FAIL_MSG, MODERATION_MSG, FalEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "deadbeef-wrong-key-id:thiswrongsecretmustneverleak00"
SECRETS = (API_KEY, WRONG_KEY, API_KEY.split(":")[1])


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox runs through snow", "aspect_ratio": "16:9"}
    return StandardVideoRequest(**(base | {"motion_intensity": 5} | kw))


def warn(model: str, field: str, what: str) -> str:
    return f"{field}: fal model {model} has no equivalent setting; {what}"


def clean(exc: BaseException) -> BaseException:
    """No credential may leak through the message or the repr."""
    for secret in SECRETS:
        assert secret not in str(exc) and secret not in repr(exc)
    return exc


@pytest.fixture
def emu() -> FalEmulator:
    return FalEmulator(latency=0.3)


@pytest.fixture
async def adapter(emu: FalEmulator) -> AsyncIterator[FalAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
    yield FalAdapter(client=client, base_url="http://fal.test")
    await client.aclose()


async def wait(adapter: FalAdapter, job_id: str, seen: list[JobStatus]) -> StandardVideoResult:
    for _ in range(200):
        result = await adapter.status(job_id, CREDS)
        if not seen or seen[-1] != result.status:
            seen.append(result.status)
        if result.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
            return result
        await asyncio.sleep(0.03)
    raise AssertionError(f"job {job_id} never finished: {seen}")


# -- capabilities and registry --------------------------------------------------------------


def test_capabilities_cover_every_field_per_model() -> None:
    caps = FalAdapter().capabilities()
    request_fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.default_model == DEFAULT_MODEL == KLING_T2V
    assert FalAdapter().base_url == DEFAULT_BASE_URL == "https://queue.fal.run"
    assert set(caps.models) == {KLING_T2V, KLING_I2V, VEO3_FAST, WAN_T2V}
    for model in caps.models.values():
        assert set(model.fields) == request_fields
    assert caps.credential_fields == ["api_key"] and caps.can_cancel
    assert caps.connection_test.startswith("no network call")
    assert caps.models[WAN_T2V].fields["fps"].support == "native"
    assert caps.models[KLING_T2V].fields["seed"].support == "unsupported"


# -- request mapping ------------------------------------------------------------------------


async def test_default_model_body_path_auth_and_job_id(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    job_id = await adapter.submit(
        req(negative_prompt="blur", style="watercolor", duration=10), CREDS
    )
    sent = emu.log[-1]
    assert (sent["method"], sent["path"]) == ("POST", f"/{KLING_T2V}")
    assert sent["headers"]["authorization"] == f"Key {API_KEY}"
    assert sent["json"] == {
        "prompt": "A red fox runs through snow. Style: watercolor.",
        "duration": "10",
        "aspect_ratio": "16:9",
        "negative_prompt": "blur",
    }
    request_id = next(iter(emu.jobs))
    assert job_id == f"{KLING_T2V}:{request_id}"
    assert emu.submissions == 1


@pytest.mark.parametrize(
    ("kw", "body"),
    [
        (
            {"model": VEO3_FAST, "duration": 8, "resolution": "1920x1080", "seed": 7},
            {"aspect_ratio": "16:9", "duration": "8s", "resolution": "1080p", "seed": 7},
        ),
        (
            {"model": WAN_T2V, "fps": 16, "resolution": "480p", "seed": 3, "aspect_ratio": "1:1"},
            dict(
                aspect_ratio="1:1", resolution="480p", num_frames=80, frames_per_second=16, seed=3
            ),
        ),
        (
            {"model": KLING_I2V, "image_url": "https://img.test/first.png"},
            {"duration": "5", "image_url": "https://img.test/first.png"},
        ),
    ],
)
async def test_model_choice_maps_fields(
    adapter: FalAdapter, emu: FalEmulator, kw: dict[str, Any], body: dict[str, Any]
) -> None:
    job_id = await adapter.submit(req(**kw), CREDS)
    assert emu.log[-1]["path"] == f"/{kw['model']}"
    assert emu.log[-1]["json"] == {"prompt": "A red fox runs through snow"} | body
    assert job_id.startswith(f"{kw['model']}:")


def test_validate_lists_every_problem_with_allowed_values() -> None:
    image = "https://img.test/a.png"
    bad = req(model=VEO3_FAST, duration=15, aspect_ratio="4:3", resolution="4k", image_url=image)
    with pytest.raises(RequestValidationError) as info:
        FalAdapter().validate(bad)
    assert info.value.provider == "fal"
    assert info.value.problems == [
        f"aspect_ratio: {VEO3_FAST} supports 16:9, 9:16, not 4:3",
        f"duration: {VEO3_FAST} makes 4 or 6 or 8 second videos, not 15",
        f"resolution: {VEO3_FAST} supports 720p, 1080p, not 4k",
        f"image_url: {VEO3_FAST} is text-to-video only; use model {KLING_I2V}",
    ]


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"duration": 7}, f"duration: {KLING_T2V} makes 5 or 10 second videos, not 7"),
        ({"aspect_ratio": "21:9"}, f"aspect_ratio: {KLING_T2V} supports 16:9, 9:16, 1:1, not 21:9"),
        (
            {"model": WAN_T2V, "duration": 10},
            f"duration: {WAN_T2V} renders 17 to 161 frames; at fps=24 that is 0.7 to 6.7 "
            "seconds, not 10 (lower fps for a longer video)",
        ),
        (
            {"model": KLING_I2V},
            f"image_url: {KLING_I2V} needs a first frame; set it or use "
            f"{KLING_T2V}, {VEO3_FAST}, {WAN_T2V}",
        ),
        (
            # Any endpoint id is read from its schema (test_fal_schemas.py); a malformed one is not.
            {"model": "ltx video"},
            f"model: must be a fal endpoint id such as {KLING_T2V} (owner/app and an optional "
            f"path; built in: {KLING_T2V}, {KLING_I2V}, {VEO3_FAST}, {WAN_T2V}); got 'ltx video'",
        ),
    ],
)
async def test_validate_rejects_and_submit_sends_nothing(
    adapter: FalAdapter, emu: FalEmulator, kw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RequestValidationError) as info:
        adapter.validate(req(**kw))
    assert info.value.problems == [problem]
    with pytest.raises(RequestValidationError):
        await adapter.submit(req(**kw), CREDS)
    assert emu.submissions == 0 and emu.log == []


def test_warnings_for_set_fields_without_equivalent() -> None:
    adapter = FalAdapter()
    assert adapter.validate(req()) == [warn(KLING_T2V, "motion_intensity", "not sent")]
    given = req(seed=1, fps=30, resolution="1080p", quality="high")
    assert adapter.validate(given) == [
        warn(KLING_T2V, "motion_intensity", "not sent"),
        warn(KLING_T2V, "resolution", "not sent; the model fixes it"),
        warn(KLING_T2V, "quality", "not sent; choose the model for the quality instead"),
        warn(KLING_T2V, "fps", "not sent; the model fixes it"),
        warn(KLING_T2V, "seed", "not sent; results vary from run to run"),
    ]
    i2v = req(model=KLING_I2V, image_url="https://img.test/a.png")
    assert warn(KLING_I2V, "aspect_ratio", "not sent; the video follows the input image") in (
        adapter.validate(i2v)
    )
    assert adapter.validate(req(model=WAN_T2V, fps=16, seed=2)) == [
        warn(WAN_T2V, "motion_intensity", "not sent")
    ]
    assert warn(VEO3_FAST, "fps", "not sent; the model fixes it") in adapter.validate(
        req(model=VEO3_FAST, duration=4, fps=30)
    )


# -- lifecycle over real HTTP ---------------------------------------------------------------


async def test_lifecycle_download_and_registry_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = FalEmulator(latency=1.0, queued_fraction=0.4)
    with serve(emu.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__FAL", url)
        from sceneflow.settings import get_settings

        get_settings.cache_clear()
        adapter = get_adapter("fal")
        assert isinstance(adapter, FalAdapter)
        job_id = await adapter.submit(req(model=VEO3_FAST, duration=6, seed=11), CREDS)
        first = await adapter.status(job_id, CREDS)
        assert first.status == JobStatus.QUEUED
        assert first.provider_details["queue_position"] == 0
        seen = [first.status]
        done = await wait(adapter, job_id, seen)
        assert seen == [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED]
        request_id = job_id.rpartition(":")[2]
        assert done.provider_job_id == job_id and done.progress == 100
        assert done.video_url == f"{url}/files/{request_id}/output.mp4"
        assert done.provider_details["metrics"] == {"inference_time": 1.0}
        assert done.provider_details["seed"] == 11
        assert emu.log[1]["path"] == f"/fal-ai/veo3/requests/{request_id}/status"
        assert emu.log[-1]["path"] == f"/fal-ai/veo3/requests/{request_id}"

        path = await adapter.download(done, CREDS, tmp_path / "out" / "fal.mp4")
        # fal media are public CDN URLs: the key must not travel to them.
        assert "authorization" not in emu.log[-1]["headers"]
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
        assert not list(tmp_path.glob("out/*.part"))
        await adapter.aclose()


async def test_async_failure_is_failed_with_fal_reason(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    result = await wait(adapter, job_id, [])
    assert result.status == JobStatus.FAILED
    assert result.error_message == FAIL_MSG
    assert result.provider_details["error_type"] == "runner_server_error"
    assert result.video_url is None


async def test_late_moderation_is_a_moderation_error_with_fal_message(tmp_path: Path) -> None:
    emu = FalEmulator(latency=0.1, late_validation=True)
    emu.inject("submit", "moderation")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app)) as client:
        adapter = FalAdapter(client=client, base_url="http://fal.test")
        job_id = await adapter.submit(req(), CREDS)
        with pytest.raises(ModerationError) as info:
            await wait(adapter, job_id, [])
    assert str(info.value) == (
        f"fal answered HTTP 422: prompt: {MODERATION_MSG} (content_policy_violation)"
    )


async def test_cancel_then_cancel_again(adapter: FalAdapter, emu: FalEmulator) -> None:
    emu.latency = 5
    job_id = await adapter.submit(req(), CREDS)
    await adapter.cancel(job_id, CREDS)
    assert emu.log[-1]["method"] == "PUT"
    assert emu.log[-1]["path"].endswith(f"/requests/{job_id.rpartition(':')[2]}/cancel")
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.CANCELLED
    assert result.provider_details["error_type"] == "client_cancelled"
    await adapter.cancel(job_id, CREDS)  # ALREADY_COMPLETED: nothing left to stop
    with pytest.raises(RejectedError) as info:
        await adapter.cancel(f"{KLING_T2V}:00000000-0000-0000-0000-000000000000", CREDS)
    assert info.value.status_code == 404 and "NOT_FOUND" in str(clean(info.value))


def test_queue_path_drops_subpath_and_keeps_namespace() -> None:
    assert _queue_path(f"{KLING_T2V}:abc-1") == "/fal-ai/kling-video/requests/abc-1"
    assert _queue_path("workflows/me/flow/run:r1") == "/workflows/me/flow/requests/r1"
    with pytest.raises(NotFoundError, match="not '<model endpoint>:<request id>'"):
        _queue_path("https://queue.fal.run/fal-ai/veo3/requests/x")


# -- errors ---------------------------------------------------------------------------------


async def test_wrong_key_is_auth_error_without_the_key(adapter: FalAdapter) -> None:
    with pytest.raises(AuthError) as info:
        await adapter.submit(req(), Credentials({"api_key": WRONG_KEY}))
    assert info.value.status_code == 401
    assert str(clean(info.value)) == (
        "fal answered HTTP 401: No user found for Key ID and Secret. The stored key was "
        "rejected: run `sceneflow creds set USER fal` with a valid key, then "
        "`sceneflow creds test USER fal`"
    )
    with pytest.raises(CredentialsError, match="have no 'api_key' field"):
        await adapter.submit(req(), Credentials({"key": API_KEY}))


@pytest.mark.parametrize(
    ("op", "kind", "error", "text"),
    [
        ("submit", "429", RateLimitedError, "HTTP 429: Rate limit exceeded"),
        ("submit", "500", AmbiguousSubmitError, "(internal_error); the job may have been created"),
        ("submit", "503", TransientError, "allocated to handle the request (runner_scheduling"),
        ("submit", "malformed", AmbiguousSubmitError, "accepted the submit but sent"),
        ("status", "500", TransientError, "An unexpected internal error occurred"),
        ("status", "malformed", TransientError, "sent a reply that is not JSON"),
    ],
)
async def test_faults_translate(
    adapter: FalAdapter, emu: FalEmulator, op: str, kind: str, error: type, text: str
) -> None:
    job_id = f"{KLING_T2V}:" + "0" * 8
    if op == "status":
        job_id = await adapter.submit(req(), CREDS)
    emu.inject(op, kind, retry_after=3)
    with pytest.raises(error) as info:
        if op == "submit":
            await adapter.submit(req(), CREDS)
        else:
            await adapter.status(job_id, CREDS)
    assert text in str(clean(info.value))
    assert type(info.value) is error
    if kind == "429":
        assert info.value.retry_after == 3


async def test_moderation_on_submit_carries_fal_message(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError) as info:
        await adapter.submit(req(), CREDS)
    assert str(clean(info.value)) == (
        f"fal answered HTTP 422: prompt: {MODERATION_MSG} (content_policy_violation)"
    )
    assert emu.submissions == 0


async def test_fal_input_validation_error_is_rejected(adapter: FalAdapter) -> None:
    # What fal says when an input breaks the model's schema (our validate() prevents it).
    with pytest.raises(RejectedError) as info:
        body = {"prompt": "x", "duration": "5s", "num_frames": 3}
        await adapter.request("POST", f"/{VEO3_FAST}", credentials=CREDS, json=body)
    assert type(info.value) is RejectedError and info.value.status_code == 422
    assert str(info.value) == (
        "fal answered HTTP 422: duration: Input should be '4s' or '6s' or '8s' (literal_error)"
    )


async def test_lost_submit_reply_is_ambiguous_over_http() -> None:
    emu = FalEmulator()
    emu.inject("submit", "slow", delay=1.0)
    with serve(emu.app) as url:
        client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
        adapter = FalAdapter(client=client, base_url=url)
        with pytest.raises(AmbiguousSubmitError, match="it may have been accepted and billed"):
            await adapter.submit(req(), CREDS)
        await client.aclose()


# -- test_connection ------------------------------------------------------------------------


async def test_connection_checks_key_shape_without_network(
    adapter: FalAdapter, emu: FalEmulator
) -> None:
    await adapter.test_connection(CREDS)
    await adapter.test_connection(Credentials({"api_key": WRONG_KEY}))  # shape only, no call
    assert emu.log == []
    with pytest.raises(AuthError) as info:
        await adapter.test_connection(Credentials({"api_key": "fal_only-a-secret-no-id"}))
    assert str(clean(info.value)) == (
        "fal: the stored api_key is not shaped like a fal key '<key id>:<key secret>' (create "
        "one at https://fal.ai/dashboard/keys; with a separate id and secret, join them with "
        '\':\'); run `sceneflow creds set USER fal` with {"api_key": "<key id>:<key secret>"}'
    )
    assert "fal_only-a-secret-no-id" not in str(info.value)
    with pytest.raises(CredentialsError):
        await adapter.test_connection(Credentials({}))
