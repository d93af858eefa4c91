"""KlingAdapter over real HTTP (uvicorn on 127.0.0.1) against the Kling emulator. Kling has no
official Python SDK, so the emulator and these tests are the oracle for the wire format."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import jwt
import pytest
import pytest_asyncio

import adapters
import adapters.kling
from adapters.kling import KlingAdapter
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, Lookup
from tests.support.emulators._base import serve
from tests.support.emulators.kling import ACCESS_KEY, SECRET_KEY, KlingEmulator

CREDS = Credentials({"access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
WRONG_SECRET = "SK" + "0" * 32
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
IMG = "https://img.example.com/fox.png"


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A red fox runs through snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
    }
    return StandardVideoRequest(**(fields | kw))


def secret_free(exc: BaseException, emu: KlingEmulator | None = None) -> BaseException:
    """No secret key, JWT or auth header anywhere in the exception or its causes."""
    tokens = [r["headers"].get("authorization", "") for r in (emu.recorded if emu else [])]
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert SECRET_KEY not in text and WRONG_SECRET not in text and "Bearer" not in text
            assert not any(t and t.split()[-1] in text for t in tokens)
        seen = seen.__cause__ or seen.__context__
    return exc


@pytest.fixture
def server() -> Iterator[tuple[KlingEmulator, str]]:
    # A long latency so tasks stay put until a test ages them (see `age`).
    emu = KlingEmulator(latency=10, queued_fraction=0.3)
    with serve(emu.app) as url:
        yield emu, url


@pytest.fixture
def emu(server: tuple[KlingEmulator, str]) -> KlingEmulator:
    return server[0]


@pytest_asyncio.fixture
async def kling(server: tuple[KlingEmulator, str]) -> AsyncIterator[KlingAdapter]:
    async with KlingAdapter(base_url=server[1]) as adapter:
        yield adapter


def age(emu: KlingEmulator, provider_job_id: str, seconds: float) -> None:
    emu.jobs[provider_job_id.partition(":")[2]].created = time.monotonic() - seconds


# -- request mapping ---------------------------------------------------------------------------


async def test_text_to_video_sends_the_exact_body_path_and_a_fresh_jwt(kling, emu):
    job_id = await kling.submit(req(style="watercolor", negative_prompt="blur"), CREDS)

    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/v1/videos/text2video", {})
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "model_name": "kling-v1-6",
        "prompt": "A red fox runs through snow. Style: watercolor.",
        "negative_prompt": "blur",
        "mode": "std",
        "aspect_ratio": "16:9",
        "duration": "5",
    }
    scheme, token = sent["headers"]["authorization"].split(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
    assert set(claims) == {"iss", "exp", "nbf"} and claims["iss"] == ACCESS_KEY
    assert claims["exp"] - claims["nbf"] == 1805 and claims["nbf"] <= time.time()
    task_id = next(iter(emu.jobs))
    assert job_id == f"text2video:{task_id}" and emu.submissions == 1


async def test_image_to_video_sends_bare_base64_the_reference_and_no_aspect_ratio(kling, emu):
    request = req(image_url=f"data:image/png;base64,{PNG}", resolution="1080p", duration=10)
    job_id = await kling.submit(request, CREDS, reference="sf-job-42")

    sent = emu.recorded[-1]
    assert sent["path"] == "/v1/videos/image2video"
    assert sent["body"] == {
        "model_name": "kling-v1-6",
        "prompt": "A red fox runs through snow",
        "mode": "pro",
        "image": PNG,
        "duration": "10",
        "external_task_id": "sf-job-42",
    }
    assert job_id.startswith("image2video:")


@pytest.mark.parametrize(
    ("kw", "mode"),
    [
        ({}, "std"),
        ({"resolution": "1080p"}, "pro"),
        ({"resolution": "1920x1080"}, "pro"),
        ({"resolution": "720x1280", "aspect_ratio": "9:16"}, "std"),
        ({"model": "kling-v1"}, "std"),
        ({"model": "kling-v1", "quality": "high"}, "pro"),
        ({"model": "kling-v2-master"}, None),
        ({"model": "kling-v2-1-master", "resolution": "1080p"}, None),
        ({"model": "kling-v2-6", "resolution": "1080p"}, "pro"),
        ({"model": "kling-v2-1", "image_url": IMG, "resolution": "1080p"}, "pro"),
    ],
)
async def test_resolution_and_quality_pick_the_mode_kling_accepts(kling, emu, kw, mode):
    _, body = kling.build_body(req(**kw))
    assert body.get("mode") == mode
    await kling.submit(req(**kw), CREDS)  # and the emulator takes it
    assert emu.submissions == 1


# -- validation ----------------------------------------------------------------------------------


def problems(request: StandardVideoRequest) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        KlingAdapter().validate(request)
    assert info.value.provider == "kling"
    return info.value.problems


def test_validate_lists_every_problem_with_the_allowed_values():
    bad = req(model="kling-v2-1", aspect_ratio="4:3", duration=8, resolution="4k")
    assert problems(bad) == [
        "image_url: kling-v2-1 only turns an image into video; set image_url, or choose one of "
        "kling-v1, kling-v1-6, kling-v2-master, kling-v2-1-master, kling-v2-5-turbo, kling-v2-6",
        "aspect_ratio: Kling text-to-video makes 16:9, 9:16, 1:1; got 4:3",
        "duration: Kling makes 5 s or 10 s videos; got 8",
        "resolution: kling-v2-1 renders 1080p, 720p (or WxH with that short side); got 4k",
    ]


ALLOWED = "kling-v1, kling-v1-6, kling-v2-master, kling-v2-1, kling-v2-1-master, "
ALLOWED += "kling-v2-5-turbo, kling-v2-6"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (req(model="kling-v9"), f"model: 'kling-v9' is not a Kling model SceneFlow maps; "
         f"allowed: {ALLOWED}"),
        (req(prompt="x" * 2490, style="film noir"), "prompt: Kling takes at most 2500 "
         "characters including the folded-in style; got 2509"),
        (req(negative_prompt="n" * 2501), "negative_prompt: Kling takes at most 2500 "
         "characters; got 2501"),
        (req(duration=5.5), "duration: Kling makes 5 s or 10 s videos; got 5.5"),
        (req(model="kling-v1", resolution="1080p"), "resolution: kling-v1 renders 720p (or WxH "
         "with that short side); got 1080p"),
        (req(model="kling-v2-6"), "resolution: kling-v2-6 renders 1080p (or WxH with that "
         "short side); got 720p"),
        (req(resolution="480p"), "resolution: kling-v1-6 renders 1080p, 720p (or WxH with that "
         "short side); got 480p"),
        (req(image_url="data:image/webp;base64,AAAA"), "image_url: Kling takes PNG or JPEG "
         "images; a data: URL must be data:image/png or data:image/jpeg with ;base64"),
        (req(image_url="data:image/png;base64,@@@"), "image_url: the data: URL's base64 cannot "
         "be decoded"),
        (req(image_url="data:image/jpeg;base64," + "A" * (14 * 1024 * 1024)),
         "image_url: Kling takes images up to 10 MB; got 11010048 bytes"),
    ],
)  # fmt: skip
def test_validate_rejects_what_kling_cannot_do(request_, problem):
    assert problems(request_) == [problem]


async def test_an_invalid_request_sends_nothing(kling, emu):
    with pytest.raises(RequestValidationError):
        await kling.submit(req(duration=7), CREDS)
    assert emu.recorded == [] and emu.submissions == 0


def test_warnings_name_each_field_without_an_equivalent():
    motion = (
        "motion_intensity: kling has no equivalent setting; not sent; describe the amount of "
        "motion in the prompt"
    )
    assert KlingAdapter().validate(req()) == [motion]
    warnings = KlingAdapter().validate(req(fps=30, seed=7, quality="high"))
    assert warnings == [
        motion,
        "fps: kling has no equivalent setting; not sent; kling-v1-6 renders 24 fps",
        "seed: kling has no equivalent setting; not sent; results are not reproducible",
        "quality: ignored; on kling-v1-6 resolution 720p picks mode std",
    ]
    image = KlingAdapter().validate(req(image_url=IMG, fps=30, model="kling-v1-6"))
    assert image == [
        motion,
        "aspect_ratio: kling has no equivalent setting; not sent for image-to-video; the video "
        "takes the image's shape",
    ]  # kling-v1-6 image-to-video renders 30 fps: no fps warning
    assert KlingAdapter().validate(req(model="kling-v1", quality="high")) == [
        motion,
    ]  # on kling-v1 quality picks the mode


def test_capabilities_cover_every_field_per_model():
    caps = KlingAdapter().capabilities()
    fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.provider == "kling" and caps.default_model == "kling-v1-6"
    assert caps.credential_fields == ["access_key", "secret_key"]
    assert not caps.can_cancel and caps.connection_test.startswith("GET /v1/videos/text2video")
    assert (caps.poll_interval, caps.max_poll_interval) == (10, 30)
    for name, model in caps.models.items():
        assert set(model.fields) == fields, name
        assert model.durations == [5, 10] and model.aspect_ratios == ["16:9", "9:16", "1:1"]
    assert caps.models["kling-v1-6"].resolutions == ["1080p", "720p"]
    assert caps.models["kling-v1"].fields["quality"].support == "mapped"
    assert caps.models["kling-v1-6"].fields["quality"].support == "unsupported"
    assert caps.models["kling-v1-6"].fields["motion_intensity"].support == "unsupported"
    assert caps.models["kling-v1-6"].fields["negative_prompt"].support == "native"
    assert not caps.models["kling-v2-1"].text_to_video
    assert caps.models["kling-v2-1"].image_to_video


# -- status ----------------------------------------------------------------------------------


async def test_submitted_processing_succeed_map_with_the_video_and_units(kling, emu):
    job_id = await kling.submit(req(), CREDS)

    queued = await kling.status(job_id, CREDS)
    assert (queued.status, queued.progress, queued.video_url) == (JobStatus.QUEUED, 0, None)
    assert queued.provider_details["kling_status"] == "submitted"
    assert emu.recorded[-1]["path"] == f"/v1/videos/text2video/{job_id.partition(':')[2]}"

    age(emu, job_id, 5)
    running = await kling.status(job_id, CREDS)
    assert running.status == JobStatus.PROCESSING
    assert running.provider_details["kling_status"] == "processing"

    age(emu, job_id, 11)
    done = await kling.status(job_id, CREDS)
    assert (done.status, done.progress, done.cost) == (JobStatus.COMPLETED, 100, 1.0)
    assert done.provider_job_id == job_id and done.video_url and "sig=" in done.video_url
    assert "sig=" not in str(done.provider_details)


async def test_async_failure_is_failed_with_klings_reason(kling, emu):
    emu.inject("submit", "fail")
    job_id = await kling.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await kling.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED and result.video_url is None
    assert result.error_message == "Internal error: the generation did not finish, please retry"


async def test_a_late_refusal_by_the_content_filter_raises_moderation(kling, emu):
    emu.inject("job", "moderation")
    job_id = await kling.submit(req(), CREDS)
    age(emu, job_id, 11)
    with pytest.raises(ModerationError) as info:
        await kling.status(job_id, CREDS)
    assert "Failure to pass the risk control system" in str(secret_free(info.value, emu))


async def test_an_up_front_refusal_by_the_content_filter_raises_moderation(kling, emu):
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError) as info:
        await kling.submit(req(), CREDS)
    message = str(secret_free(info.value, emu))
    assert message.startswith("kling answered HTTP 400: Trigger the content security policy")
    assert "(code 1301" in message and emu.submissions == 0


def canned(status: int, body: dict[str, Any]) -> KlingAdapter:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return KlingAdapter(client=httpx.AsyncClient(transport=transport))


async def test_succeed_without_a_video_is_failed():
    task = {"task_id": "1", "task_status": "succeed", "task_result": {"videos": []}}
    result = await canned(200, {"code": 0, "data": task}).status("text2video:1", CREDS)
    assert result.status == JobStatus.FAILED
    assert result.error_message == "Kling reported succeed but returned no video"


async def test_unreadable_task_reply_is_transient_and_names_the_field():
    reply = {"code": 0, "data": {"task_id": "1", "task_status": "done"}}
    with pytest.raises(TransientError, match=r"fields: data\.task_status\)"):
        await canned(200, reply).status("text2video:1", CREDS)


async def test_a_job_id_without_its_kind_is_not_found(kling, emu):
    with pytest.raises(NotFoundError, match="'<text2video|image2video>:<task id>'"):
        await kling.status("123456", CREDS)
    assert emu.recorded == []


async def test_an_unknown_task_is_rejected_with_klings_words(kling):
    with pytest.raises(RejectedError) as info:
        await kling.status("text2video:999", CREDS)
    assert str(info.value) == "kling answered HTTP 400: Task not found (code 1201)"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        Credentials({"access_key": ACCESS_KEY, "secret_key": WRONG_SECRET}),
        Credentials({"access_key": "AK-unknown-000000", "secret_key": SECRET_KEY}),
    ],
)
async def test_rejected_keys_are_auth_errors_everywhere(kling, emu, creds):
    for call in (
        kling.submit(req(), creds),
        kling.status("text2video:1", creds),
        kling.test_connection(creds),
        kling.find_submitted(req(), creds, since=datetime.now(UTC), reference="r-1"),
    ):
        with pytest.raises(AuthError) as info:
            await call
        message = str(secret_free(info.value, emu))
        assert "sceneflow creds set USER kling" in message and info.value.status_code == 401
    assert emu.submissions == 0


async def test_an_expired_token_says_to_check_the_clock(kling, emu, monkeypatch):
    monkeypatch.setattr(adapters.kling, "_now", lambda: int(time.time()) - 4000)
    with pytest.raises(AuthError, match=r"Authorization has expired \(code 1004\).*clock"):
        await kling.test_connection(CREDS)


async def test_credentials_problems_are_caught_before_sending(kling, emu):
    with pytest.raises(CredentialsError, match="have no 'secret_key' field"):
        await kling.test_connection(Credentials({"access_key": ACCESS_KEY}))
    spaced = Credentials({"access_key": ACCESS_KEY, "secret_key": SECRET_KEY + "\n"})
    with pytest.raises(CredentialsError, match="'secret_key' with spaces") as info:
        await kling.submit(req(), spaced)
    secret_free(info.value)
    assert emu.recorded == []


async def test_429_is_rate_limited_with_retry_after(kling, emu):
    emu.inject("submit", "429", retry_after=2)
    with pytest.raises(RateLimitedError) as info:
        await kling.submit(req(), CREDS)
    assert secret_free(info.value, emu).retry_after == 2  # type: ignore[attr-defined]
    assert "parallel task over resource pack limit (code 1303" in str(info.value)
    assert emu.submissions == 0


async def test_the_accounts_parallel_task_limit_is_rate_limited(kling, emu):
    emu.max_parallel = 1
    await kling.submit(req(), CREDS)
    with pytest.raises(RateLimitedError) as info:
        await kling.submit(req(), CREDS)
    assert info.value.retry_after is None and emu.submissions == 1


@pytest.mark.parametrize(
    ("status", "code", "error", "words"),
    [
        (429, 1102, RejectedError, "resource packs used up"),
        (429, 1101, RejectedError, "top it up"),
        (403, 1103, RejectedError, "no access"),
        (429, 1304, RejectedError, "IP"),
        (429, 1302, RateLimitedError, "too fast"),
        (400, 1300, RejectedError, "strategy"),
        (401, 1004, AuthError, "clock"),
        (200, 1201, RejectedError, "bad value"),
    ],
)
async def test_service_codes_decide_the_error(status, code, error, words):
    messages = {1103: "no access to the model", 1304: "IP allow-list", 1302: "too fast",
                1300: "platform strategy", 1201: "bad value"}  # fmt: skip
    body = {"code": code, "message": messages.get(code, "account"), "request_id": "r"}
    with pytest.raises(ProviderError) as info:
        await canned(status, body).submit(req(), CREDS)
    assert type(info.value) is error and words in str(info.value)
    assert info.value.status_code == status


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
    ],
)
async def test_server_faults_translate(kling, emu, op, kind, error):
    job_id = await kling.submit(req(), CREDS) if op == "status" else None
    emu.inject(op, kind)
    with pytest.raises(ProviderError) as info:
        if job_id:
            await kling.status(job_id, CREDS)
        else:
            await kling.submit(req(), CREDS)
    assert type(secret_free(info.value, emu)) is error


async def test_klings_refusal_of_a_body_reaches_the_error(kling):
    body = {"model_name": "kling-v1-6", "prompt": "x", "duration": 5}
    with pytest.raises(RejectedError) as info:
        await kling.request("POST", "/v1/videos/text2video", credentials=CREDS, json=body)
    assert str(info.value) == (
        "kling answered HTTP 400: duration must be one of '5', '10' (code 1201)"
    )
    body = {"model_name": "kling-v9", "prompt": "x"}
    with pytest.raises(RejectedError, match=r"HTTP 404: model_name kling-v9 .*\(code 1203\)"):
        await kling.request("POST", "/v1/videos/text2video", credentials=CREDS, json=body)


async def test_a_lost_reply_is_ambiguous_and_the_task_exists():
    emu = KlingEmulator()
    emu.inject("submit", "slow", delay=1.0)
    with serve(emu.app) as url:
        client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
        adapter = KlingAdapter(client=client, base_url=url)
        with pytest.raises(AmbiguousSubmitError, match="may have been accepted") as info:
            await adapter.submit(req(), CREDS)
        secret_free(info.value, emu)
        await client.aclose()
        time.sleep(1.0)  # the emulator still creates the task: the danger in question
    assert emu.submissions == 1


# -- download, cancel, connection -----------------------------------------------------------


def assert_mp4(path: Path) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) > 0


async def test_download_fetches_the_video_without_auth(kling, emu, tmp_path):
    job_id = await kling.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await kling.status(job_id, CREDS)
    path = await kling.download(result, CREDS, tmp_path / "out" / "v.mp4")
    assert_mp4(path)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    assert "authorization" not in emu.output_fetches[-1]


async def test_a_cdn_refusal_is_rejected_not_an_auth_error(kling, emu, tmp_path):
    job_id = await kling.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await kling.status(job_id, CREDS)
    assert result.video_url
    forged = result.model_copy(update={"video_url": result.video_url.split("?")[0] + "?sig=x"})
    with pytest.raises(RejectedError, match="the CDN refused the output") as info:
        await kling.download(forged, CREDS, tmp_path / "v.mp4")
    assert not isinstance(info.value, AuthError)  # the keys are fine; don't mark them invalid
    assert "sig=" not in str(info.value)


async def test_cancel_sends_nothing(kling, emu):
    job_id = await kling.submit(req(), CREDS)
    await kling.cancel(job_id, CREDS)
    assert [r["method"] for r in emu.recorded] == ["POST"]
    assert (await kling.status(job_id, CREDS)).status == JobStatus.QUEUED


async def test_test_connection_lists_one_task(kling, emu):
    await kling.test_connection(CREDS)
    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"]) == ("GET", "/v1/videos/text2video")
    assert sent["query"] == {"pageNum": "1", "pageSize": "1"}
    assert sent["headers"]["authorization"].startswith("Bearer ey")
    assert emu.submissions == 0


# -- lost submits ------------------------------------------------------------------------------


async def test_a_lost_submit_is_found_by_its_reference(kling, emu):
    sent_at = datetime.now(UTC)
    emu.inject("submit", "lost")
    with pytest.raises(AmbiguousSubmitError, match="HTTP 504"):
        await kling.submit(req(), CREDS, reference="sf-lost-1")
    (task_id,) = emu.jobs
    await kling.submit(req(), CREDS, reference="sf-other-2")
    found = await kling.find_submitted(req(), CREDS, since=sent_at, reference="sf-lost-1")
    assert found == Lookup(job_ids=[f"text2video:{task_id}"], complete=True)
    assert emu.recorded[-1]["path"] == "/v1/videos/text2video/sf-lost-1"


async def test_an_image_submit_is_looked_up_on_its_own_path(kling, emu):
    image = req(image_url=IMG)
    await kling.submit(image, CREDS, reference="sf-img-1")
    found = await kling.find_submitted(image, CREDS, since=datetime.now(UTC), reference="sf-img-1")
    assert found.job_ids[0].startswith("image2video:") and found.complete
    assert emu.recorded[-1]["path"] == "/v1/videos/image2video/sf-img-1"


async def test_a_reference_kling_does_not_know_means_nothing_was_created(kling, emu):
    await kling.submit(req(), CREDS, reference="sf-known")
    since = datetime.now(UTC) - timedelta(minutes=1)
    found = await kling.find_submitted(req(), CREDS, since=since, reference="sf-never-sent")
    assert found == Lookup(job_ids=[], complete=True)


async def test_a_failing_lookup_raises_rather_than_answering(kling, emu):
    emu.inject("status", "503")
    with pytest.raises(TransientError):
        await kling.find_submitted(req(), CREDS, since=datetime.now(UTC), reference="sf-1")


async def test_without_a_reference_only_an_empty_window_is_a_complete_answer(kling, emu):
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert await kling.find_submitted(req(), CREDS, since=before) == Lookup(
        job_ids=[], complete=True
    )
    await kling.submit(req(), CREDS)
    # A task exists since the send, but Kling's list echoes no inputs: not a complete search.
    assert await kling.find_submitted(req(), CREDS, since=before) == Lookup(
        job_ids=[], complete=False
    )
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await kling.find_submitted(req(), CREDS, since=later) == Lookup(
        job_ids=[], complete=True
    )
    sent = emu.recorded[-1]
    assert (sent["path"], sent["query"]) == (
        "/v1/videos/text2video",
        {"pageNum": "1", "pageSize": "500"},
    )


async def test_a_walk_that_hits_the_page_cap_is_incomplete(kling, emu, monkeypatch):
    monkeypatch.setattr(adapters.kling, "_LOOKUP_PAGE_SIZE", 2)
    monkeypatch.setattr(adapters.kling, "_LOOKUP_PAGES", 2)
    for _ in range(5):
        await kling.submit(req(), CREDS)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await kling.find_submitted(req(), CREDS, since=later) == Lookup(
        job_ids=[], complete=False
    )
    pages = [r["query"]["pageNum"] for r in emu.recorded if r["method"] == "GET"]
    assert pages == ["1", "2"]


# -- registry ---------------------------------------------------------------------------------


async def test_the_registry_builds_it_with_the_base_url_setting(server, monkeypatch):
    emu, url = server
    monkeypatch.setitem(adapters.REGISTRY, "kling", "adapters.kling:KlingAdapter")
    monkeypatch.setenv("SCENEFLOW_BASE_URLS__KLING", url)
    from sceneflow.settings import get_settings

    get_settings.cache_clear()
    adapter = adapters.get_adapter("kling")
    try:
        assert isinstance(adapter, KlingAdapter) and adapter.base_url == url
        await adapter.test_connection(CREDS)
    finally:
        await adapter.aclose()
    assert KlingAdapter().base_url == "https://api-singapore.klingai.com"
    assert emu.recorded[-1]["path"] == "/v1/videos/text2video"
