"""ReplicateAdapter against the Replicate emulator: in-process (ASGITransport) for most cases,
over real HTTP (uvicorn on 127.0.0.1) for the lifecycle, timeouts and the download."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from starlette.applications import Starlette

from adapters import get_adapter
from adapters.replicate import DEFAULT_BASE_URL, DEFAULT_MODEL, MODELS, ReplicateAdapter
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
from tests.support.emulators._base import Emulator, serve
from tests.support.emulators.replicate import (
    FAILURE_ERROR,
    MODERATION_ERROR,
    TOKEN,
    VERSIONS,
    create_app,
    expire_output,
    set_status,
)

CREDS = Credentials({"api_key": TOKEN})
WRONG = Credentials({"api_key": "r8_wrong_token_that_must_never_leak"})
KLING, VEO, HAILUO = "kwaivgi/kling-v2.5-turbo-pro", "google/veo-3.1", "minimax/hailuo-02"


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {"prompt": "A red fox runs through snow", "aspect_ratio": "16:9"}
    return StandardVideoRequest(**(fields | {"motion_intensity": 5} | kw))


def warn(model: str, field: str, what: str = "it is not sent") -> str:
    return f"{field}: replicate model {model} has no equivalent setting; {what}"


@pytest.fixture
def emu() -> Emulator:
    return Emulator(latency=0.3)


@pytest.fixture
def app(emu: Emulator) -> Starlette:
    return create_app(emu)


@pytest.fixture
def recorded(app: Starlette) -> list[dict[str, Any]]:
    return app.state.recorded  # type: ignore[no-any-return]


@pytest.fixture
async def adapter(app: Starlette) -> AsyncIterator[ReplicateAdapter]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    yield ReplicateAdapter(client=client, base_url="http://replicate.test")
    await client.aclose()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Emulator, str]]:
    emu = Emulator(latency=0.6)
    with serve(create_app(emu)) as url:
        yield emu, url


async def raises(exc: type[Exception], coro: Any) -> Exception:
    """Await `coro`, expect `exc`, and check no credential leaked into the message."""
    with pytest.raises(exc) as info:
        await coro
    for secret in (TOKEN, WRONG.get("api_key"), "Bearer"):
        assert secret not in str(info.value) and secret not in repr(info.value)
    return info.value


# -- mapping and validation ------------------------------------------------------------------


async def test_default_model_gets_the_exact_body_and_bearer_auth(
    adapter: ReplicateAdapter, emu: Emulator, recorded: list[dict[str, Any]]
) -> None:
    request = req(style="film noir", negative_prompt="blurry text", duration=10)
    job_id = await adapter.submit(request, CREDS)
    sent = recorded[-1]
    assert (sent["method"], sent["path"]) == ("POST", f"/v1/models/{DEFAULT_MODEL}/predictions")
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(sent["body"]) == {
        "input": {
            "prompt": "A red fox runs through snow. Style: film noir.",
            "negative_prompt": "blurry text",
            "aspect_ratio": "16:9",
            "duration": 10,
        }
    }
    assert emu.jobs[job_id].extra["model"] == DEFAULT_MODEL
    assert emu.submissions == 1


@pytest.mark.parametrize(
    ("model", "extra", "expected"),
    [
        (
            VEO,
            {"duration": 8, "resolution": "1080p", "seed": 42, "negative_prompt": "rain"},
            {
                "aspect_ratio": "9:16",
                "duration": 8,
                "resolution": "1080p",
                "seed": 42,
                "negative_prompt": "rain",
                "image": "https://example.com/first.png",
            },
        ),
        (
            HAILUO,
            {"duration": 10, "resolution": "720p"},
            {
                "duration": 10,
                "resolution": "768p",
                "first_frame_image": "https://example.com/first.png",
            },
        ),
    ],
)
async def test_request_model_picks_the_model_and_its_input_names(
    adapter: ReplicateAdapter,
    recorded: list[dict[str, Any]],
    model: str,
    extra: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    request = req(
        model=model, aspect_ratio="9:16", image_url="https://example.com/first.png", **extra
    )
    await adapter.submit(request, CREDS)
    assert recorded[-1]["path"] == f"/v1/models/{model}/predictions"
    assert json.loads(recorded[-1]["body"])["input"] == {"prompt": request.prompt} | expected


async def test_a_pinned_version_goes_to_the_predictions_endpoint(
    adapter: ReplicateAdapter, recorded: list[dict[str, Any]]
) -> None:
    version = next(v for v, m in VERSIONS.items() if m == VEO)
    await adapter.submit(req(model=f"{VEO}:{version}", duration=4), CREDS)
    assert recorded[-1]["path"] == "/v1/predictions"
    assert json.loads(recorded[-1]["body"]) == {
        "version": version,
        "input": {
            "prompt": "A red fox runs through snow",
            "aspect_ratio": "16:9",
            "duration": 4,
            "resolution": "720p",  # the standard default; Replicate's own default is 1080p
        },
    }


async def test_a_prompt_only_model_gets_the_prompt_and_a_warning_for_every_other_field(
    adapter: ReplicateAdapter, recorded: list[dict[str, Any]]
) -> None:
    """Outside the table, the model's schema decides (tests/adapters/test_replicate_schemas.py):
    lightricks/ltx-video publishes only `prompt`."""
    model = "lightricks/ltx-video"
    request = req(model=model, style="anime", seed=7, fps=30)
    assert adapter.validate(request)[0].startswith(
        f"model: replicate model {model} is not in SceneFlow's built-in table"
    )
    what = "it is not sent (its schema has no input for it)"
    assert await adapter.prepare(request, CREDS) == [
        warn(model, "aspect_ratio", "it is not sent; the model picks the shape"),
        warn(model, "motion_intensity", what),
        warn(model, "fps", what),
        warn(model, "seed", what),
    ]
    await adapter.submit(request, CREDS)
    assert json.loads(recorded[-1]["body"]) == {
        "input": {"prompt": "A red fox runs through snow. Style: anime."}
    }


def test_warnings_name_every_field_without_an_equivalent() -> None:
    adapter = ReplicateAdapter()
    request = req(seed=3, fps=30, quality="high", resolution="1080p")
    assert adapter.validate(request) == [
        warn(KLING, "resolution", "the model picks its own output size"),
        warn(KLING, "seed"),
        warn(KLING, "motion_intensity"),
        warn(KLING, "fps"),
        warn(KLING, "quality"),
    ]
    hailuo = req(model=HAILUO, duration=6, negative_prompt="x", image_url="https://e.com/a.png")
    assert adapter.validate(hailuo.model_copy(update={"aspect_ratio": "1:1"})) == [
        f"aspect_ratio: {HAILUO} takes the frame shape from image_url; 1:1 has no effect",
        warn(HAILUO, "negative_prompt"),
        warn(HAILUO, "motion_intensity"),
    ]


def test_validate_lists_every_problem_with_the_allowed_values() -> None:
    adapter = ReplicateAdapter()
    with pytest.raises(RequestValidationError) as info:
        adapter.validate(req(model=VEO, duration=15, aspect_ratio="4:3", resolution="4k"))
    assert info.value.problems == [
        f"duration: {VEO} makes videos of 4, 6, 8 seconds; got 15",
        f"aspect_ratio: {VEO} accepts 16:9, 9:16; got 4:3",
        f"resolution: {VEO} renders 720p, 1080p; got 4k",
    ]
    with pytest.raises(RequestValidationError) as info:
        adapter.validate(req(model=HAILUO, duration=10, resolution="1080p", aspect_ratio="9:16"))
    assert info.value.problems == [
        f"aspect_ratio: {HAILUO} accepts 16:9; got 9:16",
        f"duration: {HAILUO} makes 10 s videos only at resolution 720p (sent as 768p); got 1080p",
    ]
    with pytest.raises(RequestValidationError) as info:
        adapter.validate(req(model=HAILUO, resolution="4k", duration=5.5))
    assert info.value.problems == [
        f"duration: {HAILUO} makes videos of 6, 10 seconds; got 5.5",
        f"resolution: {HAILUO} renders 480p (sent as 512p), 720p (sent as 768p), 1080p; got 4k",
    ]
    with pytest.raises(RequestValidationError, match=r"model: must be 'owner/name' or"):
        adapter.validate(req(model="kling v2"))


def test_capabilities_cover_every_field_per_model() -> None:
    caps = ReplicateAdapter().capabilities()
    assert caps.default_model == DEFAULT_MODEL and set(caps.models) == set(MODELS)
    assert caps.credential_fields == ["api_key"] and caps.can_cancel
    assert caps.connection_test == "GET /v1/account"
    request_fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    for model in caps.models.values():
        assert set(model.fields) == request_fields
    assert caps.models[VEO].fields["seed"].support == "native"
    assert caps.models[HAILUO].fields["resolution"].support == "mapped"
    assert caps.models[KLING].fields["style"].note == "appended to the prompt"
    assert ReplicateAdapter().base_url == DEFAULT_BASE_URL == "https://api.replicate.com"
    adapter = get_adapter("replicate", base_url="http://127.0.0.1:9/")
    assert isinstance(adapter, ReplicateAdapter) and adapter.base_url == "http://127.0.0.1:9"


# -- lifecycle -----------------------------------------------------------------------------


async def poll(adapter: ReplicateAdapter, job_id: str) -> list[StandardVideoResult]:
    seen = [await adapter.status(job_id, CREDS)]
    while seen[-1].status not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        await asyncio.sleep(0.05)
        seen.append(await adapter.status(job_id, CREDS))
    return seen


async def test_lifecycle_over_http_then_download_a_valid_mp4(
    server: tuple[Emulator, str], tmp_path: Path
) -> None:
    _, url = server
    async with ReplicateAdapter(base_url=url) as adapter:
        job_id = await adapter.submit(req(), CREDS)
        seen = await poll(adapter, job_id)
        statuses = [r.status for r in seen]
        assert statuses[0] is JobStatus.QUEUED and JobStatus.PROCESSING in statuses
        assert any(0 < r.progress < 100 for r in seen if r.status is JobStatus.PROCESSING)
        done = seen[-1]
        assert done.status is JobStatus.COMPLETED and done.progress == 100
        assert done.video_url == f"{url}/delivery/xezq/{job_id}/output.mp4"
        assert done.provider_details["status"] == "succeeded"
        assert done.provider_details["metrics"]["predict_time"] > 0
        assert "http" not in json.dumps(done.provider_details)
        path = await adapter.download(done, CREDS, tmp_path / "out" / "video.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert not list(path.parent.glob("*.part"))


async def test_download_sends_the_token_only_to_replicate_hosts(tmp_path: Path) -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    adapter = ReplicateAdapter(client=client)
    for n, url in enumerate(
        ["https://replicate.delivery/xezq/a/out.mp4", "https://cdn.example.com/out.mp4"]
    ):
        result = StandardVideoResult(status=JobStatus.COMPLETED, video_url=url)
        await adapter.download(result, CREDS, tmp_path / f"{n}.mp4")
    await client.aclose()
    assert seen == {"replicate.delivery": f"Bearer {TOKEN}", "cdn.example.com": None}


async def test_cancel_posts_no_body_and_canceled_or_aborted_are_cancelled(
    adapter: ReplicateAdapter, emu: Emulator, recorded: list[dict[str, Any]]
) -> None:
    job_id = await adapter.submit(req(), CREDS)
    await adapter.cancel(job_id, CREDS)
    assert (recorded[-1]["path"], recorded[-1]["body"]) == (f"/v1/predictions/{job_id}/cancel", b"")
    assert "content-type" not in recorded[-1]["headers"]
    assert (await adapter.status(job_id, CREDS)).status is JobStatus.CANCELLED
    job_id = await adapter.submit(req(), CREDS)
    set_status(emu.jobs[job_id], "aborted")  # its Cancel-After deadline passed while queued
    result = await adapter.status(job_id, CREDS)
    assert (result.status, result.provider_details["status"]) == (JobStatus.CANCELLED, "aborted")


async def test_async_failure_is_failed_with_replicates_reason(
    adapter: ReplicateAdapter, emu: Emulator
) -> None:
    emu.latency = 0
    emu.inject("submit", "fail")
    result = await adapter.status(await adapter.submit(req(), CREDS), CREDS)
    assert (result.status, result.error_message) == (JobStatus.FAILED, FAILURE_ERROR)


async def test_moderation_raises_with_replicates_message(
    adapter: ReplicateAdapter, emu: Emulator
) -> None:
    emu.latency = 0
    emu.inject("submit", "moderation")
    job_id = await adapter.submit(req(), CREDS)
    err = await raises(ModerationError, adapter.status(job_id, CREDS))
    assert str(err) == f"replicate: prediction {job_id} was refused by the content filter: " + (
        MODERATION_ERROR
    )


async def test_deleted_output_is_reported_not_downloaded(
    adapter: ReplicateAdapter, emu: Emulator
) -> None:
    emu.latency = 0
    job_id = await adapter.submit(req(), CREDS)
    expire_output(emu.jobs[job_id])
    result = await adapter.status(job_id, CREDS)
    assert result.status is JobStatus.FAILED and result.video_url is None
    assert result.error_message == (
        "succeeded but Replicate deleted its output (outputs are kept one hour); run the job again"
    )


# -- errors --------------------------------------------------------------------------------


async def test_rejected_token_is_an_auth_error_without_the_token(
    adapter: ReplicateAdapter,
) -> None:
    err = await raises(AuthError, adapter.submit(req(), WRONG))
    assert str(err).startswith(
        "replicate answered HTTP 401: Unauthenticated: You did not pass a valid authentication "
        "token. The stored key was rejected: run `sceneflow creds set USER replicate`"
    )
    await raises(AuthError, adapter.status("abc", WRONG))


async def test_429_is_rate_limited_with_retry_after(
    adapter: ReplicateAdapter, emu: Emulator
) -> None:
    emu.inject("submit", "429", retry_after=3)
    err = await raises(RateLimitedError, adapter.submit(req(), CREDS))
    assert err.retry_after == 3  # type: ignore[attr-defined]
    assert "Request was throttled. Your rate limit resets in ~3s." in str(err)
    assert emu.submissions == 0


async def test_server_errors_on_submit_and_status(adapter: ReplicateAdapter, emu: Emulator) -> None:
    emu.inject("submit", "500")
    await raises(AmbiguousSubmitError, adapter.submit(req(), CREDS))
    emu.inject("submit", "503")
    err = await raises(TransientError, adapter.submit(req(), CREDS))
    assert not isinstance(err, AmbiguousSubmitError)
    job_id = await adapter.submit(req(), CREDS)
    emu.inject("status", "503")
    await raises(TransientError, adapter.status(job_id, CREDS))
    emu.inject("status", "malformed")
    err = await raises(TransientError, adapter.status(job_id, CREDS))
    assert str(err) == "replicate sent a reply that is not JSON (HTTP 200); will retry"


async def test_replicate_refusals_carry_its_problem_details(adapter: ReplicateAdapter) -> None:
    # A version Replicate does not have, of a model in the table (sent without a schema read).
    model = f"{KLING}:{'f' * 64}"
    err = await raises(RejectedError, adapter.submit(req(model=model), CREDS))
    assert "HTTP 422: Invalid version or not permitted: The specified version" in str(err)


async def test_lost_submit_reply_is_ambiguous(server: tuple[Emulator, str]) -> None:
    emu, url = server
    emu.inject("submit", "slow", delay=1.0)
    client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
    async with ReplicateAdapter(client=client, base_url=url) as adapter:
        err = await raises(AmbiguousSubmitError, adapter.submit(req(), CREDS))
    await client.aclose()
    assert "it may have been accepted and billed" in str(err)


async def test_connection_test(adapter: ReplicateAdapter, recorded: list[dict[str, Any]]) -> None:
    await adapter.test_connection(CREDS)
    assert (recorded[-1]["method"], recorded[-1]["path"]) == ("GET", "/v1/account")
    await raises(AuthError, adapter.test_connection(WRONG))
    err = await raises(CredentialsError, adapter.test_connection(Credentials({"token": "x"})))
    assert "no 'api_key' field. Run `sceneflow creds set USER replicate`" in str(err)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"id": "p1", "status": "succeeded", "output": ["https://replicate.delivery/a.mp4"]}, None),
        ({"id": "p1", "status": "queued"}, "cannot read (HTTP 200; fields: status)"),
        ({"status": "starting"}, "cannot read (HTTP 200; fields: id)"),
    ],
)
async def test_reply_shapes(reply: dict[str, Any], expected: str | None) -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=reply))
    )
    adapter = ReplicateAdapter(client=client)
    if expected is None:
        result = await adapter.status("p1", CREDS)
        assert result.video_url == "https://replicate.delivery/a.mp4"
    else:
        err = await raises(TransientError, adapter.status("p1", CREDS))
        assert expected in str(err)
    await client.aclose()
