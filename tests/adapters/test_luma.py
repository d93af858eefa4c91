"""LumaAdapter against the Luma emulator: in-process (ASGITransport) for most cases, over real
HTTP (uvicorn on 127.0.0.1) for the lifecycle, timeouts and the download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from adapters import get_adapter
from adapters.luma import DEFAULT_BASE_URL, LumaAdapter
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    RateLimitedError,
    RejectedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.luma import API_KEY, PREFIX, LumaEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "luma-wrong-key-should-never-leak"
MOTION_WARNING = (
    "motion_intensity: luma has no equivalent setting; not sent; describe the motion in the prompt"
)


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A red fox runs through fresh snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
        "duration": 5,
    }
    return StandardVideoRequest(**(fields | kw))


@pytest.fixture
def emu() -> LumaEmulator:
    return LumaEmulator(latency=0.3)


@pytest.fixture
async def luma(emu: LumaEmulator) -> AsyncIterator[LumaAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
    yield LumaAdapter(client=client, base_url="http://luma.test" + PREFIX)
    await client.aclose()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LumaEmulator, str]]:
    emu = LumaEmulator(latency=0.6)
    with serve(emu.app) as url:
        yield emu, url + PREFIX


async def raises(exc: type[Exception], coro: Any) -> Exception:
    """Await `coro`, expect `exc`, and check no credential leaked into the message."""
    with pytest.raises(exc) as info:
        await coro
    for secret in (API_KEY, WRONG_KEY, "Bearer"):
        assert secret not in str(info.value)
    return info.value


# -- mapping and validation ------------------------------------------------------------------


async def test_submit_sends_the_exact_body_with_bearer_auth(
    luma: LumaAdapter, emu: LumaEmulator
) -> None:
    request = req(
        style="watercolor",
        aspect_ratio="9:16",
        duration=9,
        resolution="1080p",
        quality="high",
        image_url="https://example.com/first.png",
    )
    job_id = await luma.submit(request, CREDS)
    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"]) == ("POST", f"{PREFIX}/generations/video")
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["body"] == {
        "model": "ray-2",
        "prompt": "A red fox runs through fresh snow. Style: watercolor.",
        "aspect_ratio": "9:16",
        "duration": "9s",
        "resolution": "1080p",
        "keyframes": {"frame0": {"type": "image", "url": "https://example.com/first.png"}},
    }
    assert job_id in emu.jobs and emu.submissions == 1


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        ({}, "ray-2"),
        ({"quality": "draft"}, "ray-flash-2"),
        ({"model": "ray-flash-2"}, "ray-flash-2"),
        ({"model": "ray-2", "quality": "draft"}, "ray-2"),
    ],
)
async def test_model_comes_from_request_model_else_quality(
    luma: LumaAdapter, emu: LumaEmulator, fields: dict[str, Any], model: str
) -> None:
    await luma.submit(req(**fields), CREDS)
    assert emu.recorded[-1]["body"]["model"] == model


@pytest.mark.parametrize(
    ("resolution", "aspect", "sent"),
    [("720p", "16:9", "720p"), ("4k", "1:1", "4k"), ("960x540", "16:9", "540p"),
     ("1080x1920", "9:16", "1080p")],
)  # fmt: skip
def test_resolution_maps_to_luma_names(resolution: str, aspect: str, sent: str) -> None:
    body = LumaAdapter().build_body(req(resolution=resolution, aspect_ratio=aspect))
    assert body["resolution"] == sent


def test_validate_lists_every_problem_with_allowed_values() -> None:
    bad = req(
        model="ray-3", prompt="ab", duration=7, resolution="480p", image_url="data:image/png;b64,"
    )
    with pytest.raises(RequestValidationError) as info:
        LumaAdapter().validate(bad)
    assert info.value.provider == "luma"
    assert info.value.problems == [
        "model: luma has no model 'ray-3'; allowed: ray-2, ray-flash-2",
        "prompt: luma needs 3 to 5000 characters (style included); got 2",
        "duration: luma makes 5 s or 9 s videos; got 7. Use duration 5 or 9",
        "resolution: luma renders 540p, 720p, 1080p or 4k; got '480p'. "
        "Use 720p, 1080p, 4k, or WxH with a short side of 540, 720, 1080 or 2160",
        "image_url: luma fetches the first frame itself, so it must be a public http(s) URL; "
        "data: URLs are not accepted. Upload the image and pass its URL",
    ]


def test_an_aspect_ratio_luma_lacks_is_rejected() -> None:
    # The standard ratios are all Luma's today; a ratio added to the standard later must not slip
    # through to the provider.
    wider = req().model_copy(update={"aspect_ratio": "2:3"})
    with pytest.raises(RequestValidationError) as info:
        LumaAdapter().validate(wider)
    assert info.value.problems == [
        "aspect_ratio: luma accepts 16:9, 9:16, 1:1, 4:3, 3:4, 21:9; got '2:3'"
    ]


async def test_invalid_request_is_never_sent(luma: LumaAdapter, emu: LumaEmulator) -> None:
    error = await raises(RequestValidationError, luma.submit(req(duration=15), CREDS))
    assert "duration: luma makes 5 s or 9 s videos; got 15" in str(error)
    assert emu.submissions == 0 and emu.recorded == []


def test_warnings_name_every_field_without_an_equivalent() -> None:
    luma = LumaAdapter()
    assert luma.validate(req()) == [MOTION_WARNING]
    assert luma.validate(req(negative_prompt="blur", seed=7, fps=30)) == [
        MOTION_WARNING,
        "negative_prompt: luma has no equivalent setting; not sent; say what to avoid in the "
        "prompt",
        "seed: luma has no equivalent setting; not sent; results are not reproducible",
        "fps: luma has no equivalent setting; not sent; luma renders 24 fps",
    ]
    assert luma.validate(req(model="ray-2", quality="draft"))[1] == (
        "quality: ignored because model 'ray-2' was chosen; quality picks the luma model only "
        "when model is unset"
    )
    assert luma.validate(req(resolution="1280x720", aspect_ratio="1:1"))[1] == (
        "resolution: 1280x720 is not 1:1; luma shapes the frame by aspect_ratio at 720p"
    )


def test_capabilities_cover_every_request_field_per_model() -> None:
    caps = LumaAdapter().capabilities()
    expected = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert set(caps.models) == {"ray-2", "ray-flash-2"} and caps.default_model == "ray-2"
    for model in caps.models.values():
        assert set(model.fields) == expected
        assert model.durations == [5, 9]
    assert caps.credential_fields == ["api_key"]
    assert caps.can_cancel is False


def test_registry_builds_luma_with_its_public_default_url() -> None:
    assert isinstance(get_adapter("luma"), LumaAdapter)
    assert LumaAdapter().base_url == DEFAULT_BASE_URL
    pointed = get_adapter("luma", base_url="http://127.0.0.1:9/x/")
    assert isinstance(pointed, LumaAdapter) and pointed.base_url == "http://127.0.0.1:9/x"


# -- lifecycle --------------------------------------------------------------------------------


async def test_lifecycle_over_http_then_download(
    server: tuple[LumaEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = server
    luma = LumaAdapter(base_url=base_url)
    async with luma:
        job_id = await luma.submit(req(), CREDS)
        seen: list[StandardVideoResult] = []
        while not seen or seen[-1].status is not JobStatus.COMPLETED:
            seen.append(await luma.status(job_id, CREDS))
            await asyncio.sleep(0.05)
        statuses = [r.status for r in seen]
        assert sorted(set(statuses), key=statuses.index) == [
            JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED
        ]  # fmt: skip
        assert {r.provider_details["state"] for r in seen} == {"queued", "dreaming", "completed"}
        done = seen[-1]
        cdn = f"{base_url.removesuffix(PREFIX)}/cdn/{job_id}"
        assert done.progress == 100 and done.video_url == f"{cdn}/video.mp4"
        assert all(r.video_url is None and r.progress == 0 for r in seen[:-1])
        assert "/cdn/" not in str(done.provider_details)  # no asset URL kept in details
        path = await luma.download(done, CREDS, tmp_path / "out" / "luma.mp4")
    assert "authorization" not in emu.recorded[-1]["headers"]  # the key stays off the CDN
    with av.open(str(path)) as container:
        assert container.streams.video and sum(1 for _ in container.decode(video=0)) > 0


@pytest.mark.parametrize(
    ("state", "assets", "status"),
    [
        ("queued", None, JobStatus.QUEUED),
        ("dreaming", None, JobStatus.PROCESSING),
        ("completed", {"video": "https://cdn.example/v.mp4"}, JobStatus.COMPLETED),
        ("failed", None, JobStatus.FAILED),
        ("completed", {"image": "https://cdn.example/i.jpg"}, JobStatus.FAILED),
    ],
)
async def test_every_luma_state_maps(state: str, assets: Any, status: JobStatus) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "g1", "state": state, "assets": assets})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
        result = await LumaAdapter(client=client).status("g1", CREDS)
    assert result.status is status and result.provider_job_id == "g1"
    if state == "completed" and status is JobStatus.FAILED:
        assert result.error_message == (
            "luma reported the generation completed but sent no assets.video URL"
        )


async def test_async_failure_carries_lumas_reason(luma: LumaAdapter, emu: LumaEmulator) -> None:
    emu.inject("submit", "fail")
    job_id = await luma.submit(req(), CREDS)
    emu.latency = 0
    result = await luma.status(job_id, CREDS)
    assert result.status is JobStatus.FAILED and result.error_message == "Job failed"
    assert result.provider_details["failure_reason"] == "Job failed"


async def test_moderation_after_submission_is_a_moderation_error(
    luma: LumaAdapter, emu: LumaEmulator
) -> None:
    emu.inject("submit", "moderation")
    job_id = await luma.submit(req(), CREDS)
    emu.latency = 0
    error = await raises(ModerationError, luma.status(job_id, CREDS))
    assert str(error) == (
        f"luma: generation {job_id} was refused by the content filter: "
        "Advanced prompt moderation failed"
    )


async def test_a_moderation_refusal_on_create_is_a_moderation_error() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        detail = "400: prompt not allowed because advanced moderation failed"
        return httpx.Response(400, json={"detail": detail})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
        error = await raises(ModerationError, LumaAdapter(client=client).submit(req(), CREDS))
    assert "prompt not allowed because advanced moderation failed" in str(error)


async def test_cancel_sends_nothing_and_the_job_runs_on(
    luma: LumaAdapter, emu: LumaEmulator
) -> None:
    job_id = await luma.submit(req(), CREDS)
    before = len(emu.recorded)
    await luma.cancel(job_id, CREDS)
    assert len(emu.recorded) == before
    emu.latency = 0
    assert (await luma.status(job_id, CREDS)).status is JobStatus.COMPLETED


# -- errors -----------------------------------------------------------------------------------


async def test_wrong_or_missing_key_is_an_auth_error(luma: LumaAdapter) -> None:
    error = await raises(AuthError, luma.submit(req(), Credentials({"api_key": WRONG_KEY})))
    assert str(error).startswith("luma answered HTTP 401: Invalid API key is provided.")
    assert "sceneflow creds set USER luma" in str(error)
    error = await raises(AuthError, luma.request("GET", "/credits"))
    assert "Not authenticated" in str(error)
    error = await raises(CredentialsError, luma.status("g1", Credentials({})))
    assert "no 'api_key' field" in str(error)


async def test_429_is_rate_limited_with_retry_after(luma: LumaAdapter, emu: LumaEmulator) -> None:
    emu.inject("submit", "429", retry_after=7)
    error = await raises(RateLimitedError, luma.submit(req(), CREDS))
    assert isinstance(error, RateLimitedError) and error.retry_after == 7
    assert "Too many requests" in str(error) and emu.submissions == 0


@pytest.mark.parametrize(
    ("op", "kind", "exc"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("status", "503", TransientError),
        ("status", "500", TransientError),
        ("status", "malformed", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
    ],
)
async def test_server_faults_translate(
    luma: LumaAdapter, emu: LumaEmulator, op: str, kind: str, exc: type[Exception]
) -> None:
    emu.inject(op, kind)
    call = luma.submit(req(), CREDS) if op == "submit" else luma.status("g1", CREDS)
    error = await raises(exc, call)
    assert type(error) is exc
    if kind == "malformed" and op == "status":
        assert str(error) == "luma sent a reply that is not JSON (HTTP 200); will retry"
    elif kind == "malformed":
        # HTTP 200 means Luma took the request: retrying it could pay twice.
        assert str(error) == (
            "luma accepted the submit but sent a reply that is not JSON (HTTP 200); the job may "
            "exist and be billed"
        )


async def test_lost_submit_reply_is_ambiguous_over_http(server: tuple[LumaEmulator, str]) -> None:
    emu, base_url = server
    emu.inject("submit", "slow", delay=1.0)
    before = emu.submissions
    client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
    async with client:
        luma = LumaAdapter(client=client, base_url=base_url)
        error = await raises(AmbiguousSubmitError, luma.submit(req(), CREDS))
    assert "it may have been accepted and billed" in str(error)
    await asyncio.sleep(1.0)  # the emulator finishes the request the client gave up on
    assert emu.submissions == before + 1


async def test_server_side_validation_message_is_lumas(luma: LumaAdapter) -> None:
    body = {"model": "ray-2", "prompt": "A fox", "duration": "7s"}
    call = luma.request("POST", "/generations/video", credentials=CREDS, json=body)
    error = await raises(RejectedError, call)
    assert str(error) == "luma answered HTTP 422: duration: Input should be '5s', '9s'"


async def test_unknown_generation_is_rejected_with_lumas_detail(luma: LumaAdapter) -> None:
    error = await raises(RejectedError, luma.status("no-such-id", CREDS))
    assert str(error) == "luma answered HTTP 404: Generation not found"


async def test_connection_reads_credits(luma: LumaAdapter, emu: LumaEmulator) -> None:
    await luma.test_connection(CREDS)
    assert (emu.recorded[-1]["method"], emu.recorded[-1]["path"]) == ("GET", f"{PREFIX}/credits")
    await raises(AuthError, luma.test_connection(Credentials({"api_key": WRONG_KEY})))


async def test_a_slow_submit_makes_its_own_job_while_another_arrives() -> None:
    emu = LumaEmulator(latency=0.2)
    emu.inject("submit", "slow", delay=0.5)
    with serve(emu.app) as url:
        async with LumaAdapter(base_url=url + PREFIX) as luma:

            async def later() -> str:
                await asyncio.sleep(0.1)  # arrives while the slow one is held
                return await luma.submit(req(prompt="A quick sparrow"), CREDS)

            slow, quick = await asyncio.gather(
                luma.submit(req(prompt="A slow heron"), CREDS), later()
            )
    assert emu.jobs[slow].body["prompt"].startswith("A slow heron")
    assert emu.jobs[quick].body["prompt"].startswith("A quick sparrow")
