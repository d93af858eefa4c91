"""MiniMaxAdapter against the MiniMax emulator over real HTTP (uvicorn on 127.0.0.1).

MiniMax has no official Python SDK for video, so the emulator (written from MiniMax's docs and
its MCP client) and these tests are the oracle for the wire format. One server runs for the
module; each test gets a fresh emulator behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

import adapters
from adapters.minimax import DEFAULT_BASE_URL, MODELS, MiniMaxAdapter
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
from tests.support.emulators.minimax import API_KEY, MiniMaxEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "mm-wrong-key-that-must-never-leak"
IMG = "https://img.example.com/fox.png"
MOTION = (
    "motion_intensity: minimax has no equivalent setting; not sent; describe the amount of "
    "motion in the prompt"
)


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A red fox runs through snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
        "duration": 6,
    }
    return StandardVideoRequest(**(fields | kw))


def secret_free(exc: BaseException) -> BaseException:
    """No key or auth header anywhere in the exception or its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert API_KEY not in text and WRONG_KEY not in text and "Bearer" not in text
            assert "Signature=" not in text
        seen = seen.__cause__ or seen.__context__
    return exc


class Current:
    """An ASGI app that forwards to the test's own emulator, so one server serves them all."""

    emu: MiniMaxEmulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.emu.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Current, str]]:
    current = Current()
    with serve(current) as url:
        yield current, url


@pytest.fixture
def url(server: tuple[Current, str]) -> str:
    return server[1]


@pytest.fixture
def emu(server: tuple[Current, str]) -> MiniMaxEmulator:
    # A long latency so tasks stay put until a test ages them (see `age`).
    server[0].emu = MiniMaxEmulator(latency=10, queued_fraction=0.4)
    return server[0].emu


@pytest.fixture
async def mm(emu: MiniMaxEmulator, url: str) -> AsyncIterator[MiniMaxAdapter]:
    async with MiniMaxAdapter(base_url=url) as adapter:
        yield adapter


def age(emu: MiniMaxEmulator, task_id: str, seconds: float) -> None:
    emu.jobs[task_id].created = time.monotonic() - seconds


async def raises(exc: type[Exception], coro: Any) -> Any:
    """Await `coro`, expect exactly `exc`, and check no credential leaked into it."""
    with pytest.raises(ProviderError) as info:
        await coro
    assert type(info.value) is exc, repr(info.value)
    return secret_free(info.value)


# -- request mapping -------------------------------------------------------------------------


async def test_submit_sends_the_exact_body_with_bearer_auth(mm, emu):
    task_id = await mm.submit(req(style="watercolor"), CREDS)

    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/v1/video_generation", {})
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model": "MiniMax-Hailuo-2.3",
        "prompt": "A red fox runs through snow. Style: watercolor.",
        "duration": 6,
        "resolution": "768P",
    }
    assert task_id in emu.jobs and task_id.isdigit() and emu.submissions == 1


async def test_image_to_video_at_1080p_on_hailuo_02(mm, emu):
    request = req(model="MiniMax-Hailuo-02", resolution="1080p", image_url=IMG, aspect_ratio="1:1")
    await mm.submit(request, CREDS)
    assert emu.recorded[-1]["body"] == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "A red fox runs through snow",
        "first_frame_image": IMG,
        "duration": 6,
        "resolution": "1080P",
    }


async def test_the_01_series_takes_neither_duration_nor_resolution(mm, emu):
    await mm.submit(req(model="T2V-01-Director", prompt="[Pan left] A fox"), CREDS)
    assert emu.recorded[-1]["body"] == {"model": "T2V-01-Director", "prompt": "[Pan left] A fox"}
    data = "data:image/png;base64,iVBORw0KGgo="
    await mm.submit(req(model="I2V-01-live", image_url=data, resolution="1280x720"), CREDS)
    assert emu.recorded[-1]["body"] == {
        "model": "I2V-01-live",
        "prompt": "A red fox runs through snow",
        "first_frame_image": data,
    }


@pytest.mark.parametrize(
    ("kw", "resolution"),
    [
        ({"duration": 10}, "768P"),
        ({"resolution": "1366x768"}, "768P"),
        ({"resolution": "1280x720", "duration": 10}, "768P"),
        ({"resolution": "1920x1080"}, "1080P"),
        ({"model": "MiniMax-Hailuo-2.3-Fast", "image_url": IMG, "resolution": "1080p"}, "1080P"),
    ],
)
def test_resolution_maps_to_minimaxs_tiers(kw, resolution):
    assert MiniMaxAdapter().build_body(req(**kw))["resolution"] == resolution


# -- validation ------------------------------------------------------------------------------


def problems(request: StandardVideoRequest) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        MiniMaxAdapter().validate(request)
    assert info.value.provider == "minimax"
    return info.value.problems


def test_validate_lists_every_problem_at_once():
    bad = req(aspect_ratio="9:16", duration=5, resolution="4k", prompt="x" * 1990, style="noir")
    assert problems(bad) == [
        "aspect_ratio: minimax text-to-video renders 16:9 only; got 9:16. Use 16:9, or give an "
        "image_url of the shape you want",
        "resolution: MiniMax-Hailuo-2.3 renders 768P, 1080P; got '4k'. Use 720p (768P) or 1080p",
        "duration: MiniMax-Hailuo-2.3 renders 6 or 10 s; got 5",
        "prompt: minimax takes at most 2000 characters including the folded-in style; got 2004",
    ]


I2V = "MiniMax-Hailuo-2.3, MiniMax-Hailuo-2.3-Fast, MiniMax-Hailuo-02, I2V-01-Director, I2V-01, "
T2V = "MiniMax-Hailuo-2.3, MiniMax-Hailuo-02, T2V-01-Director, T2V-01"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (req(resolution="1080p", duration=10),
         "duration: MiniMax-Hailuo-2.3 renders 6 s at 1080P; got 10"),
        (req(resolution="480p"), "resolution: MiniMax-Hailuo-2.3 renders 768P, 1080P; got "
         "'480p'. Use 720p (768P) or 1080p"),
        (req(model="T2V-01", duration=10), "duration: T2V-01 renders 6 s; got 10"),
        (req(model="T2V-01", resolution="1080p"), "resolution: T2V-01 renders 720P; got "
         "'1080p'. Use 720p or 1280x720"),
        (req(model="T2V-01", image_url=IMG), "image_url: T2V-01 is text-to-video only; drop "
         f"image_url or choose one of {I2V}I2V-01-live"),
        (req(model="I2V-01"), f"image_url: I2V-01 turns an image into video; set image_url, or "
         f"choose one of {T2V}"),
        (req(model="hailuo-3"), "model: minimax has no model 'hailuo-3'; allowed: "
         + ", ".join(MODELS)),
    ],
)  # fmt: skip
def test_validate_rejects_what_minimax_cannot_do(request_, problem):
    assert problems(request_) == [problem]


async def test_an_invalid_request_sends_nothing(mm, emu):
    with pytest.raises(RequestValidationError):
        await mm.submit(req(duration=5), CREDS)
    assert emu.recorded == [] and emu.submissions == 0


def test_warnings_name_each_field_without_an_equivalent():
    assert MiniMaxAdapter().validate(req()) == [MOTION]
    warnings = MiniMaxAdapter().validate(
        req(image_url=IMG, negative_prompt="blur", seed=7, fps=30, quality="high")
    )
    assert [w.split(":")[0] for w in warnings] == [
        "motion_intensity",
        "aspect_ratio",
        "negative_prompt",
        "seed",
        "fps",
        "quality",
    ]
    assert warnings[1] == (
        "aspect_ratio: minimax has no equivalent setting; not sent; the video takes the shape "
        "of image_url"
    )
    director = MiniMaxAdapter().validate(req(model="T2V-01-Director"))
    assert director == [
        "motion_intensity: minimax has no equivalent setting; not sent; write camera commands "
        "such as [Static shot], [Pan left], [Push in], [Zoom out], [Tracking shot], [Shake] into "
        "the prompt"
    ]


def test_capabilities_cover_every_field_per_model():
    caps = MiniMaxAdapter().capabilities()
    fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.provider == "minimax" and caps.default_model == "MiniMax-Hailuo-2.3"
    assert caps.credential_fields == ["api_key"] and not caps.can_cancel
    assert caps.connection_test.startswith("GET /v1/query/video_generation")
    assert (caps.poll_interval, caps.max_poll_interval, caps.deadline) == (10, 30, 1800)
    assert set(caps.models) == set(MODELS)
    for name, model in caps.models.items():
        assert set(model.fields) == fields, name
    hailuo = caps.models["MiniMax-Hailuo-2.3"]
    assert hailuo.durations == [6, 10] and hailuo.resolutions == ["1080p", "768p"]
    assert hailuo.text_to_video and hailuo.image_to_video
    assert hailuo.fields["duration"].support == "native"
    assert hailuo.fields["motion_intensity"].support == "unsupported"
    assert hailuo.fields["fps"].support == "unsupported"
    fast = caps.models["MiniMax-Hailuo-2.3-Fast"]
    assert fast.image_to_video and not fast.text_to_video
    assert caps.models["T2V-01"].durations == [6] and caps.models["T2V-01"].resolutions == ["720p"]
    assert caps.models["T2V-01"].fields["image_url"].support == "unsupported"
    assert "[Static shot]" in caps.models["I2V-01-Director"].fields["motion_intensity"].note


def test_base_url_comes_from_the_setting_through_the_registry(monkeypatch):
    from sceneflow.settings import get_settings

    monkeypatch.setitem(adapters.REGISTRY, "minimax", "adapters.minimax:MiniMaxAdapter")
    assert adapters.get_adapter("minimax").base_url == DEFAULT_BASE_URL  # type: ignore[attr-defined]
    monkeypatch.setenv("SCENEFLOW_BASE_URLS__MINIMAX", "https://api.minimaxi.com/")
    get_settings.cache_clear()
    adapter = adapters.get_adapter("minimax")
    assert adapter.key == "minimax"
    assert adapter.base_url == "https://api.minimaxi.com"  # type: ignore[attr-defined]


# -- statuses --------------------------------------------------------------------------------


async def test_statuses_map_and_success_retrieves_the_download_url(mm, emu):
    task_id = await mm.submit(req(), CREDS)

    preparing = await mm.status(task_id, CREDS)
    assert preparing.status == JobStatus.QUEUED
    assert preparing.provider_details == {"minimax_status": "Preparing"}
    query = emu.recorded[-1]
    assert (query["method"], query["path"]) == ("GET", "/v1/query/video_generation")
    assert query["query"] == {"task_id": task_id}
    assert query["headers"]["authorization"] == f"Bearer {API_KEY}"

    age(emu, task_id, 3)
    queueing = await mm.status(task_id, CREDS)
    assert (queueing.status, queueing.provider_details["minimax_status"]) == (
        JobStatus.QUEUED,
        "Queueing",
    )

    age(emu, task_id, 6)
    assert (await mm.status(task_id, CREDS)).status == JobStatus.PROCESSING

    age(emu, task_id, 11)
    done = await mm.status(task_id, CREDS)
    assert (done.status, done.progress, done.provider_job_id) == (JobStatus.COMPLETED, 100, task_id)
    file_id = done.provider_details["file_id"]
    assert done.provider_details == {
        "minimax_status": "Success",
        "file_id": file_id,
        "width": 1366,
        "height": 768,
    }
    retrieve = emu.recorded[-1]
    assert (retrieve["path"], retrieve["query"]) == ("/v1/files/retrieve", {"file_id": file_id})
    assert done.video_url and "Signature=" in done.video_url
    assert "Signature" not in str(done.provider_details)


async def test_async_failure_is_failed_with_minimaxs_reason(mm, emu):
    emu.inject("submit", "fail")
    task_id = await mm.submit(req(), CREDS)
    age(emu, task_id, 11)
    result = await mm.status(task_id, CREDS)
    assert result.status == JobStatus.FAILED and result.video_url is None
    assert result.error_message == "unknown error: video generation failed (code 1000)"
    assert result.provider_details == {"minimax_status": "Fail"}


async def test_a_sensitive_input_is_refused_at_submit_and_no_task_is_made(mm, emu):
    emu.inject("submit", "moderation")
    error = await raises(ModerationError, mm.submit(req(), CREDS))
    assert str(error) == (
        "minimax refused the input as sensitive content: input new_sensitive (code 1026). "
        "Change the prompt or image rather than retrying"
    )
    assert emu.submissions == 0


async def test_a_sensitive_output_raises_moderation_from_status(mm, emu):
    emu.moderate_output()
    task_id = await mm.submit(req(), CREDS)
    age(emu, task_id, 11)
    error = await raises(ModerationError, mm.status(task_id, CREDS))
    assert "refused the generated video as sensitive content: output new_sensitive (code 1027)" in (
        str(error)
    )


async def test_an_unknown_task_is_rejected_with_minimaxs_words(mm):
    error = await raises(RejectedError, mm.status("123", CREDS))
    assert str(error) == "minimax refused the call: invalid params, task not found (code 2013)"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "error", "words"),
    [
        (1002, "rate limit", RateLimitedError, "minimax refused the call: rate limit (code 1002)"),
        (1004, "token not match group", AuthError, "run `sceneflow creds set USER minimax`"),
        (2049, "invalid api key", AuthError, "Keys are bound to their region"),
        (2038, "no real-name verification", AuthError,
         "The MiniMax account must complete real-name verification before it can generate: "
         "verify it at https://platform.minimax.io/user-center/basic-information "
         "(international) or https://platform.minimaxi.com/user-center/basic-information "
         "(China), then run again"),
        (1008, "insufficient balance", RejectedError, "Top up the MiniMax account's balance"),
        (1000, "unknown error", TransientError, "unknown error (code 1000); will retry"),
        (2013, "invalid params, duration", RejectedError, "invalid params, duration (code 2013)"),
    ],
)  # fmt: skip
async def test_business_errors_on_submit_mean_no_task(mm, emu, code, msg, error, words):
    emu.refuse("submit", code, msg)
    raised = await raises(error, mm.submit(req(), CREDS))
    assert words in str(raised)
    assert emu.submissions == 0  # a business error is never AmbiguousSubmitError


async def test_business_errors_on_status_and_retrieve(mm, emu):
    task_id = await mm.submit(req(), CREDS)
    emu.refuse("status", 1002, "rate limit")
    assert (await raises(RateLimitedError, mm.status(task_id, CREDS))).status_code == 200
    age(emu, task_id, 11)
    emu.refuse("retrieve", 1000, "unknown error")
    await raises(TransientError, mm.status(task_id, CREDS))
    assert (await mm.status(task_id, CREDS)).status == JobStatus.COMPLETED


async def test_a_wrong_key_is_auth_error_everywhere(mm, emu):
    wrong = Credentials({"api_key": WRONG_KEY})
    for call in (mm.submit(req(), wrong), mm.status("1", wrong), mm.test_connection(wrong)):
        error = await raises(AuthError, call)
        assert "The stored key was rejected: run `sceneflow creds set USER minimax`" in str(error)
        assert "login fail: Please carry the API secret key (code 1004)" in str(error)
    assert emu.submissions == 0


async def test_credentials_problems_are_caught_before_sending(mm, emu):
    with pytest.raises(CredentialsError, match="have no 'api_key' field"):
        await mm.test_connection(Credentials({"key": API_KEY}))
    with pytest.raises(CredentialsError, match="spaces, line breaks") as info:
        await mm.submit(req(), Credentials({"api_key": API_KEY + "\n"}))
    secret_free(info.value)
    assert emu.recorded == []


async def test_http_429_is_rate_limited_with_retry_after(mm, emu):
    emu.inject("submit", "429", retry_after=7)
    error = await raises(RateLimitedError, mm.submit(req(), CREDS))
    assert error.retry_after == 7 and error.status_code == 429 and emu.submissions == 0
    assert "rate limit (code 1002)" in str(error)


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
        ("status", "500", TransientError),
        ("status", "503", TransientError),
        ("status", "malformed", TransientError),
        ("retrieve", "malformed", TransientError),
    ],
)
async def test_server_faults_translate(mm, emu, op, kind, error):
    task_id = await mm.submit(req(), CREDS) if op != "submit" else None
    if task_id:
        age(emu, task_id, 11)
    emu.inject(op, kind)
    await raises(error, mm.status(task_id, CREDS) if task_id else mm.submit(req(), CREDS))


def canned(reply: dict[str, Any]) -> MiniMaxAdapter:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
    return MiniMaxAdapter(client=httpx.AsyncClient(transport=transport))


async def test_a_create_reply_without_task_id_is_ambiguous():
    ok = {"status_code": 0, "status_msg": "success"}
    with pytest.raises(AmbiguousSubmitError, match="sent no task_id"):
        await canned({"base_resp": ok}).submit(req(), CREDS)


async def test_unreadable_task_replies_are_transient_and_name_the_field():
    with pytest.raises(TransientError, match=r"cannot read \(HTTP 200; fields: status\)"):
        await canned({"task_id": "1", "status": "Archived"}).status("1", CREDS)
    success = {"task_id": "1", "status": "Success", "base_resp": {"status_code": 0}}
    result = await canned(success).status("1", CREDS)
    assert result.status == JobStatus.FAILED
    assert result.error_message == "MiniMax reported Success but sent no file_id"


# -- connection test, cancel, lost submits ---------------------------------------------------


async def test_connection_test_queries_an_unknown_task(mm, emu):
    await mm.test_connection(CREDS)
    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"], sent["query"]) == (
        "GET",
        "/v1/query/video_generation",
        {"task_id": "0"},
    )
    emu.refuse("status", 2038, "no real-name verification")
    await raises(AuthError, mm.test_connection(CREDS))
    assert emu.submissions == 0


async def test_cancel_sends_nothing(mm, emu):
    task_id = await mm.submit(req(), CREDS)
    await mm.cancel(task_id, CREDS)
    assert [r["method"] for r in emu.recorded] == ["POST"]


async def test_a_lost_reply_is_ambiguous_and_cannot_be_looked_up(mm, emu):
    emu.inject("submit", "lost")
    sent_at = datetime.now(UTC)
    error = await raises(AmbiguousSubmitError, mm.submit(req(), CREDS))
    assert "HTTP 504" in str(error) and "the job may have been created" in str(error)
    assert emu.submissions == 1  # the task exists: a blind re-send would pay twice
    assert await mm.find_submitted(req(), CREDS, since=sent_at) is None
    assert len(emu.recorded) == 1  # the lookup asked MiniMax nothing


async def test_a_reply_that_never_comes_is_ambiguous(url, emu):
    emu.inject("submit", "slow", delay=1.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        adapter = MiniMaxAdapter(client=client, base_url=url)
        error = await raises(AmbiguousSubmitError, adapter.submit(req(), CREDS))
    assert "may have been accepted" in str(error)
    await asyncio.sleep(1.0)  # MiniMax still creates the task: the danger in question
    assert emu.submissions == 1


# -- downloads -------------------------------------------------------------------------------


async def wait_done(adapter: MiniMaxAdapter, task_id: str) -> StandardVideoResult:
    for _ in range(100):
        result = await adapter.status(task_id, CREDS)
        if result.status == JobStatus.COMPLETED:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the emulator task never completed")


def assert_mp4(path: Path, seconds: float) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) > 0
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - seconds) < 0.5


async def test_lifecycle_and_download_right_after_completion(mm, emu, tmp_path):
    emu.latency = 0.3
    task_id = await mm.submit(req(duration=10), CREDS)
    result = await wait_done(mm, task_id)
    path = await mm.download(result, CREDS, tmp_path / "out" / "v.mp4")
    assert_mp4(path, 10)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    # The download URL is signed; our key must not travel to the storage host.
    assert "authorization" not in emu.output_fetches[-1]
    assert len(emu.output_fetches) == 1


async def test_an_expired_download_url_is_retrieved_afresh(mm, emu, tmp_path):
    task_id = await mm.submit(req(), CREDS)
    age(emu, task_id, 11)
    emu.url_ttl = -60
    stale = await mm.status(task_id, CREDS)
    error = await raises(RejectedError, mm.download(stale, CREDS, tmp_path / "a.mp4"))
    assert "refused even with a fresh download URL" in str(error)

    emu.url_ttl = 3600
    path = await mm.download(stale, CREDS, tmp_path / "b.mp4")
    assert_mp4(path, 6)
    assert [r["path"] for r in emu.recorded[-2:]] == ["/v1/files/retrieve"] * 2
    assert len(emu.output_fetches) == 4  # each download: the stale URL, then a fresh one


async def test_a_result_without_url_is_fetched_from_its_task(mm, emu, tmp_path):
    task_id = await mm.submit(req(), CREDS)
    age(emu, task_id, 11)
    bare = StandardVideoResult(status=JobStatus.COMPLETED, provider_job_id=task_id)
    assert_mp4(await mm.download(bare, CREDS, tmp_path / "c.mp4"), 6)
    emu.inject("download", "500")
    done = await mm.status(task_id, CREDS)
    await raises(TransientError, mm.download(done, CREDS, tmp_path / "d.mp4"))
