"""SeedanceAdapter over real HTTP (uvicorn on 127.0.0.1) against the Ark emulator: request
mapping, validation, statuses, errors, cancel, downloads, the connection test and the lookup of
a lost submit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import pytest_asyncio

import adapters
import adapters.seedance
from adapters.seedance import DEFAULT_BASE_URL, SeedanceAdapter
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
from sceneflow.providers import Credentials, Lookup
from tests.support.emulators._base import serve
from tests.support.emulators.seedance import API_KEY, PREFIX, SeedanceEmulator

CREDS = Credentials({"api_key": API_KEY})
WRONG_KEY = "ffffffff-ffff-4fff-8fff-ffffffffffff"
TASKS = f"{PREFIX}/contents/generations/tasks"
IMG = "https://img.example.com/fox.png"


def req(**kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A red fox runs through snow",
        "aspect_ratio": "16:9",
        "motion_intensity": 5,
    }
    return StandardVideoRequest(**(fields | kw))


def secret_free(exc: BaseException) -> BaseException:
    """No key, auth header or signed URL anywhere in the exception or its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert API_KEY not in text and WRONG_KEY not in text and "Bearer" not in text
            assert "X-Tos-Signature" not in text
        seen = seen.__cause__ or seen.__context__
    return exc


@pytest.fixture
def emu() -> SeedanceEmulator:
    # A long latency so tasks stay put until a test ages them (see `age`).
    return SeedanceEmulator(latency=10, queued_fraction=0.3)


@pytest.fixture
def base_url(emu: SeedanceEmulator) -> Iterator[str]:
    with serve(emu.app) as url:
        yield url + PREFIX


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop owns the sockets
async def adapter(base_url: str) -> AsyncIterator[SeedanceAdapter]:
    async with SeedanceAdapter(base_url=base_url) as a:
        yield a


def age(emu: SeedanceEmulator, job_id: str, seconds: float) -> None:
    emu.jobs[job_id].created = time.monotonic() - seconds


# -- request mapping ---------------------------------------------------------------------------


async def test_submit_sends_the_exact_request_for_the_default_model(adapter, emu):
    job_id = await adapter.submit(req(seed=42, style="watercolor"), CREDS)

    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", TASKS, [])
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["accept"] == "application/json"
    assert sent["body"] == {
        "model": "seedance-1-0-pro-250528",
        "content": [{"type": "text", "text": "A red fox runs through snow. Style: watercolor."}],
        "ratio": "16:9",
        "resolution": "720p",
        "duration": 5,
        "camera_fixed": False,
        "seed": 42,
    }
    assert job_id.startswith("cgt-") and job_id in emu.jobs and emu.submissions == 1


async def test_image_model_still_camera_and_wxh_resolution(adapter, emu):
    request = req(
        model="seedance-1-0-lite-i2v-250428",
        image_url=IMG,
        aspect_ratio="9:16",
        resolution="480x864",
        duration=10,
        motion_intensity=1,
    )
    await adapter.submit(request, CREDS)
    assert emu.recorded[-1]["body"] == {
        "model": "seedance-1-0-lite-i2v-250428",
        "content": [
            {"type": "text", "text": "A red fox runs through snow"},
            {"type": "image_url", "image_url": {"url": IMG}, "role": "first_frame"},
        ],
        "ratio": "9:16",
        "resolution": "480p",
        "duration": 10,
        "camera_fixed": True,
    }


def test_volcengine_model_names_and_data_urls_are_accepted():
    body = SeedanceAdapter().build_body(
        req(
            model="doubao-seedance-1-5-pro-251215",
            resolution="1080p",
            duration=12,
            image_url="data:image/png;base64,iVBORw0KGgo=",
        )
    )
    assert body["model"] == "doubao-seedance-1-5-pro-251215"
    assert body["content"][1]["image_url"] == {"url": "data:image/png;base64,iVBORw0KGgo="}
    assert (body["resolution"], body["duration"]) == ("1080p", 12)


def test_the_default_host_is_byteplus_and_the_setting_overrides_it(monkeypatch):
    assert SeedanceAdapter().base_url == DEFAULT_BASE_URL
    monkeypatch.setitem(adapters.REGISTRY, "seedance", "adapters.seedance:SeedanceAdapter")
    monkeypatch.setenv("SCENEFLOW_BASE_URLS__SEEDANCE", "https://ark.cn-beijing.volces.com/api/v3")
    from sceneflow.settings import get_settings

    get_settings.cache_clear()
    built = adapters.get_adapter("seedance")
    assert isinstance(built, SeedanceAdapter)
    assert built.base_url == "https://ark.cn-beijing.volces.com/api/v3"


# -- validation --------------------------------------------------------------------------------


def problems(request: StandardVideoRequest) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        SeedanceAdapter().validate(request)
    assert info.value.provider == "seedance"
    return info.value.problems


def test_validate_lists_every_problem_at_once():
    bad = req(model="seedance-1-0-lite-t2v-250428", image_url=IMG, duration=5.5, resolution="4k")
    assert problems(bad) == [
        "image_url: seedance-1-0-lite-t2v-250428 is text-to-video only; leave image_url empty, "
        "or choose one of seedance-1-0-pro-250528, seedance-1-0-pro-fast-251015, "
        "seedance-1-5-pro-251215, seedance-1-0-lite-i2v-250428",
        "duration: seedance-1-0-lite-t2v-250428 takes whole seconds from 2 to 12; got 5.5",
        "resolution: seedance-1-0-lite-t2v-250428 renders 480p, 720p (or WxH with that short "
        "side); got 4k",
    ]


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (req(duration=15), "duration: seedance-1-0-pro-250528 takes whole seconds from 2 to 12; "
         "got 15"),
        (req(model="seedance-1-5-pro-251215", duration=3), "duration: seedance-1-5-pro-251215 "
         "takes whole seconds from 4 to 12; got 3"),
        (req(resolution="1280x640"), "resolution: seedance-1-0-pro-250528 renders 480p, 720p, "
         "1080p (or WxH with that short side); got 1280x640"),
        (req(model="seedance-1-0-lite-i2v-250428"), "image_url: seedance-1-0-lite-i2v-250428 "
         "turns an image into video and needs a first frame; set image_url, or choose one of "
         "seedance-1-0-pro-250528, seedance-1-0-pro-fast-251015, seedance-1-5-pro-251215, "
         "seedance-1-0-lite-t2v-250428"),
        (req(image_url="data:text/plain;base64,aGk="), "image_url: seedance takes a data: URL "
         "only as data:image/<format>;base64,..."),
        (req(model="seedance-2-0"), "model: 'seedance-2-0' is not a Seedance model SceneFlow "
         "maps; allowed: seedance-1-0-pro-250528, seedance-1-0-pro-fast-251015, "
         "seedance-1-5-pro-251215, seedance-1-0-lite-t2v-250428, seedance-1-0-lite-i2v-250428 "
         "(or the same with the Volcengine prefix 'doubao-')"),
    ],
)  # fmt: skip
def test_validate_rejects_what_seedance_cannot_do(request_, problem):
    assert problems(request_) == [problem]


async def test_an_invalid_request_sends_nothing(adapter, emu):
    with pytest.raises(RequestValidationError):
        await adapter.submit(req(duration=30), CREDS)
    assert emu.recorded == [] and emu.submissions == 0


def test_warnings_name_each_field_without_an_equivalent():
    assert SeedanceAdapter().validate(req(motion_intensity=1)) == []
    assert SeedanceAdapter().validate(req()) == [
        "motion_intensity: seedance has no equivalent setting; only 1 (a still camera, "
        "camera_fixed=true) is expressed; other values send camera_fixed=false, so describe the "
        "amount of motion in the prompt"
    ]
    warnings = SeedanceAdapter().validate(
        req(fps=30, quality="high", negative_prompt="blur", resolution="1080x1080")
    )
    assert [w.split(":")[0] for w in warnings] == [
        "motion_intensity",
        "negative_prompt",
        "fps",
        "quality",
        "resolution",
    ]
    assert warnings[2] == (
        "fps: seedance has no equivalent setting; not sent; seedance renders 24 fps"
    )
    assert warnings[4] == (
        "resolution: 1080x1080 is not 16:9; seedance shapes the frame by aspect_ratio at 1080p"
    )


def test_capabilities_cover_every_field_per_model():
    caps = SeedanceAdapter().capabilities()
    fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    assert caps.provider == "seedance" and caps.default_model == "seedance-1-0-pro-250528"
    assert caps.credential_fields == ["api_key"] and caps.can_cancel
    assert caps.connection_test.startswith("GET /contents/generations/tasks?page_num=1")
    for name, model in caps.models.items():
        assert set(model.fields) == fields, name
        assert model.aspect_ratios == ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]
    lite_t2v = caps.models["seedance-1-0-lite-t2v-250428"]
    assert lite_t2v.text_to_video and not lite_t2v.image_to_video
    assert lite_t2v.fields["image_url"].support == "unsupported"
    assert lite_t2v.resolutions == ["480p", "720p"]
    pro15 = caps.models["seedance-1-5-pro-251215"]
    assert (pro15.min_duration, pro15.max_duration, len(pro15.durations or [])) == (4, 12, 9)
    assert pro15.fields["motion_intensity"].support == "mapped"
    assert pro15.fields["fps"].support == "unsupported"


# -- statuses ----------------------------------------------------------------------------------


async def test_queued_running_succeeded_map_with_details(adapter, emu):
    job_id = await adapter.submit(req(seed=7), CREDS)

    queued = await adapter.status(job_id, CREDS)
    assert (queued.status, queued.progress, queued.video_url) == (JobStatus.QUEUED, 0, None)
    assert queued.provider_details["seedance_status"] == "queued"
    assert emu.recorded[-1]["path"] == f"{TASKS}/{job_id}"
    assert emu.recorded[-1]["headers"]["accept"] == "application/json"

    age(emu, job_id, 5)
    running = await adapter.status(job_id, CREDS)
    assert running.status == JobStatus.PROCESSING

    age(emu, job_id, 11)
    done = await adapter.status(job_id, CREDS)
    assert (done.status, done.progress) == (JobStatus.COMPLETED, 100)
    assert done.video_url and "X-Tos-Signature=" in done.video_url
    details = done.provider_details
    assert (details["seed"], details["ratio"], details["resolution"]) == (7, "16:9", "720p")
    assert (details["duration"], details["fps"], details["completion_tokens"]) == (5, 24, 50_000)
    assert "X-Tos" not in str(details)


async def test_async_failure_is_failed_with_arks_reason(adapter, emu):
    emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED and result.video_url is None
    assert result.error_message == (
        "The service encountered an unexpected internal error. (InternalServiceError)"
    )
    assert result.provider_details["error_code"] == "InternalServiceError"


async def test_expired_is_failed_with_the_reason(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    emu.expire(job_id)
    result = await adapter.status(job_id, CREDS)
    assert result.status == JobStatus.FAILED
    assert result.error_message == (
        "the task expired: Ark did not finish it within 172800 s (execution_expires_after)"
    )


async def test_a_flagged_prompt_is_refused_up_front_with_moderation_error(adapter, emu):
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError) as info:
        await adapter.submit(req(), CREDS)
    message = str(secret_free(info.value))
    assert message.startswith(
        "seedance answered HTTP 400: InputTextSensitiveContentDetected: The request failed "
        "because the input text may contain sensitive information."
    )
    assert emu.submissions == 0


async def test_a_flagged_output_raises_moderation_error_from_status(adapter, emu):
    emu.inject("output", "moderation")
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    with pytest.raises(ModerationError) as info:
        await adapter.status(job_id, CREDS)
    assert str(secret_free(info.value)) == (
        f"seedance refused the content of task {job_id}: The request failed because the output "
        "video may contain sensitive information. (OutputVideoSensitiveContentDetected). Change "
        "the prompt or image rather than retrying"
    )


def canned(reply: dict[str, object]) -> SeedanceAdapter:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
    return SeedanceAdapter(client=httpx.AsyncClient(transport=transport))


async def test_unknown_status_is_transient_and_succeeded_without_url_is_failed():
    with pytest.raises(TransientError, match=r"cannot read \(HTTP 200; fields: status\)"):
        await canned({"id": "t", "status": "archived"}).status("t", CREDS)
    result = await canned({"id": "t", "status": "succeeded", "content": None}).status("t", CREDS)
    assert result.status == JobStatus.FAILED
    assert result.error_message == "seedance reported succeeded but sent no content.video_url"


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_deletes_a_queued_task(adapter, emu):
    job_id = await adapter.submit(req(), CREDS)
    await adapter.cancel(job_id, CREDS)

    read, delete = emu.recorded[-2:]
    assert (read["method"], read["path"]) == ("GET", f"{TASKS}/{job_id}")
    assert (delete["method"], delete["path"], delete["body"]) == ("DELETE", f"{TASKS}/{job_id}", {})
    assert delete["headers"]["content-type"] == "application/json"
    assert (await adapter.status(job_id, CREDS)).status == JobStatus.CANCELLED
    await adapter.cancel(job_id, CREDS)  # already cancelled: nothing more is sent
    assert [r["method"] for r in emu.recorded].count("DELETE") == 1


@pytest.mark.parametrize(
    ("elapsed", "why"),
    [
        (5, "which is running: Ark cannot stop a running task; it will finish and be billed"),
        (11, "which is succeeded: a DELETE would delete its record and output"),
    ],
)
async def test_cancel_sends_no_delete_to_a_running_or_finished_task(adapter, emu, elapsed, why):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, elapsed)
    with pytest.raises(RejectedError) as info:
        await adapter.cancel(job_id, CREDS)
    assert str(info.value) == f"seedance: no cancel sent for task {job_id}, {why}"
    assert "DELETE" not in [r["method"] for r in emu.recorded]
    assert (await adapter.status(job_id, CREDS)).status != JobStatus.CANCELLED


async def test_cancel_of_a_task_that_is_gone_is_done(adapter):
    await adapter.cancel("cgt-20260101000000-gone", CREDS)


# -- errors ------------------------------------------------------------------------------------


async def test_arks_error_bodies_reach_the_error(adapter):
    with pytest.raises(RejectedError) as info:
        await adapter.status("cgt-none", CREDS)
    assert info.value.status_code == 404
    assert "ResourceNotFound: The specified task cgt-none is not found." in str(info.value)
    body = {"model": "seedance-1-0-pro-250528", "content": [{"type": "text", "text": "x"}]}
    with pytest.raises(RejectedError) as info:
        await adapter.request(
            "POST", "/contents/generations/tasks", credentials=CREDS, json=body | {"ratio": "2:1"}
        )
    assert str(info.value).startswith(
        "seedance answered HTTP 400: InvalidParameter.ratio: The parameter `ratio` specified"
    )


async def test_wrong_key_is_auth_error_everywhere(adapter):
    wrong = Credentials({"api_key": WRONG_KEY})
    for call in (
        adapter.submit(req(), wrong),
        adapter.status("cgt-x", wrong),
        adapter.cancel("cgt-x", wrong),
        adapter.test_connection(wrong),
        adapter.find_submitted(req(), wrong, since=datetime.now(UTC)),
    ):
        with pytest.raises(AuthError) as info:
            await call
        assert "sceneflow creds set USER seedance" in str(secret_free(info.value))
        assert "AuthenticationError" in str(info.value) and info.value.status_code == 401


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
    assert "RateLimitExceeded.EndpointRPMExceeded" in str(info.value) and emu.submissions == 0


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
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


async def test_a_lost_reply_is_ambiguous_and_the_task_exists(adapter, emu):
    emu.inject("submit", "lost")
    with pytest.raises(AmbiguousSubmitError, match="HTTP 504") as info:
        await adapter.submit(req(), CREDS)
    secret_free(info.value)
    assert emu.submissions == 1


async def test_a_reply_that_never_comes_is_ambiguous(emu, base_url):
    emu.inject("submit", "slow", delay=1.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        adapter = SeedanceAdapter(client=client, base_url=base_url)
        with pytest.raises(AmbiguousSubmitError, match="may have been accepted"):
            await adapter.submit(req(), CREDS)
    await asyncio.sleep(1.0)  # the emulator still creates the task: the danger in question
    assert emu.submissions == 1


# -- downloads and the connection test ---------------------------------------------------------


async def wait_done(adapter: SeedanceAdapter, job_id: str) -> StandardVideoResult:
    for _ in range(100):
        result = await adapter.status(job_id, CREDS)
        if result.status == JobStatus.COMPLETED:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the emulator task never completed")


def assert_mp4(path: Path, seconds: float) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert container.duration is not None
        assert container.duration / 1_000_000 == pytest.approx(seconds, abs=0.5)


async def test_lifecycle_and_download_without_the_key(tmp_path):
    emu = SeedanceEmulator(latency=0.3)
    with serve(emu.app) as url:
        async with SeedanceAdapter(base_url=url + PREFIX) as adapter:
            job_id = await adapter.submit(req(duration=3), CREDS)
            result = await wait_done(adapter, job_id)
            path = await adapter.download(result, CREDS, tmp_path / "out" / "v.mp4")
    assert_mp4(path, 3)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    assert "authorization" not in emu.output_fetches[-1]  # signed storage links need no key


async def test_an_expired_link_is_fetched_afresh_then_rejected_not_auth(adapter, emu, tmp_path):
    job_id = await adapter.submit(req(), CREDS)
    age(emu, job_id, 11)
    emu.url_ttl = -60
    stale = await adapter.status(job_id, CREDS)
    with pytest.raises(RejectedError, match="refused even from a fresh task read") as info:
        await adapter.download(stale, CREDS, tmp_path / "a.mp4")
    assert not isinstance(info.value, AuthError)  # the key is fine; don't mark it invalid
    secret_free(info.value)

    emu.url_ttl = 3600
    path = await adapter.download(stale, CREDS, tmp_path / "b.mp4")
    assert_mp4(path, 5)
    assert len(emu.output_fetches) == 4  # each download: the stale link, then a fresh one


async def test_test_connection_lists_one_task(adapter, emu):
    await adapter.test_connection(CREDS)
    sent = emu.recorded[-1]
    assert (sent["method"], sent["path"]) == ("GET", TASKS)
    assert sent["query"] == [("page_num", "1"), ("page_size", "1")]
    assert sent["body"] is None and emu.submissions == 0


# -- lost submits ------------------------------------------------------------------------------


def lists(emu: SeedanceEmulator) -> list[list[tuple[str, str]]]:
    return [r["query"] for r in emu.recorded if r["method"] == "GET" and r["path"] == TASKS]


REF = "sf-job-1-1"  # SceneFlow's name for one send (ledger.send_reference)
REF_SEED = 926353264  # the first 4 bytes of sha256(REF): pinned, as a lookup relies on it


async def test_an_unseeded_submit_sends_a_seed_named_by_its_reference(adapter, emu):
    first = await adapter.submit(req(), CREDS, reference=REF)
    again = await adapter.submit(req(prompt="Another take"), CREDS, reference=REF)
    other = await adapter.submit(req(), CREDS, reference="sf-job-1-2")

    seeds = [r["body"].get("seed") for r in emu.recorded if r["method"] == "POST"]
    assert seeds[:2] == [REF_SEED, REF_SEED] and seeds[2] not in (None, REF_SEED)
    assert 0 <= seeds[2] <= 4294967295  # Ark's range (-1 is Ark's "pick one")
    assert [emu.jobs[j].extra["seed"] for j in (first, again, other)] == seeds  # echoed as sent
    assert "seed" not in SeedanceAdapter().build_body(req())  # no reference: Ark picks


async def test_a_seed_the_user_set_is_sent_unchanged_with_a_reference(adapter, emu):
    await adapter.submit(req(seed=42), CREDS, reference=REF)
    assert emu.recorded[-1]["body"]["seed"] == 42


async def test_the_task_a_lost_reply_created_is_found_pages_back(adapter, emu, monkeypatch):
    monkeypatch.setattr(adapters.seedance, "_LOOKUP_PAGE_SIZE", 2)  # so a lookup has to page
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    emu.inject("submit", "lost")
    with pytest.raises(AmbiguousSubmitError):
        await adapter.submit(req(), CREDS, reference=REF)
    (lost_id,) = emu.jobs
    for n, other in enumerate((req(aspect_ratio="9:16"), req(duration=6), req(resolution="1080p"))):
        await adapter.submit(other, CREDS, reference=f"sf-other-1-{n}")
    fast = req(model="seedance-1-0-pro-fast-251015")  # filtered out by the list call
    await adapter.submit(fast, CREDS, reference=REF)

    found = await adapter.find_submitted(req(), CREDS, since=sent_at, reference=REF)
    assert found == Lookup(job_ids=[lost_id], complete=True)
    model = ("filter.model", "seedance-1-0-pro-250528")
    assert lists(emu) == [
        [("page_num", "1"), ("page_size", "2"), model],
        [("page_num", "2"), ("page_size", "2"), model],
    ]


async def test_same_settings_sends_are_each_found_as_their_own_task(adapter, emu):
    # The kill drill's batch: rows alike but for the prompt (which Ark does not echo), several
    # in flight at the kill. Each must find its own task, and a row whose send never arrived
    # none, or it would take another row's video and that row would be paid for twice.
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    fox = await adapter.submit(req(), CREDS, reference="sf-fox-1-1")
    owl = await adapter.submit(req(prompt="An owl at dusk"), CREDS, reference="sf-owl-1-1")

    async def lookup(reference: str, prompt: str = "A red fox runs through snow") -> Lookup:
        return await adapter.find_submitted(
            req(prompt=prompt), CREDS, since=sent_at, reference=reference
        )

    assert await lookup("sf-fox-1-1") == Lookup(job_ids=[fox], complete=True)
    assert await lookup("sf-owl-1-1", "An owl at dusk") == Lookup(job_ids=[owl], complete=True)
    assert await lookup("sf-fox-1-2") == Lookup(job_ids=[], complete=True)  # never arrived


@pytest.mark.parametrize(
    ("request_", "reference"),
    [(req(), None), (req(seed=11), REF)],
    ids=["no-reference", "user-seed"],
)
async def test_a_match_that_cannot_name_its_send_leaves_the_job_unknown(
    adapter, emu, request_, reference
):
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    await adapter.submit(request_.model_copy(update={"prompt": "Another row"}), CREDS)

    found = await adapter.find_submitted(request_, CREDS, since=sent_at, reference=reference)
    assert found == Lookup(job_ids=[], complete=False)  # maybe another row's: the user decides
    other = request_.model_copy(update={"duration": 6})  # nothing of this kind was created
    found = await adapter.find_submitted(other, CREDS, since=sent_at, reference=reference)
    assert found == Lookup(job_ids=[], complete=True)


async def test_a_task_that_echoes_no_seed_cannot_name_its_send(adapter, emu):
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    job_id = await adapter.submit(req(), CREDS, reference=REF)
    emu.jobs[job_id].extra["seed"] = None
    found = await adapter.find_submitted(req(), CREDS, since=sent_at, reference=REF)
    assert found == Lookup(job_ids=[], complete=False)


async def test_older_tasks_are_not_candidates_and_end_the_walk(adapter, emu, monkeypatch):
    monkeypatch.setattr(adapters.seedance, "_LOOKUP_PAGE_SIZE", 2)
    for _ in range(5):
        await adapter.submit(req(), CREDS, reference=REF)
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert await adapter.find_submitted(req(), CREDS, since=later, reference=REF) == Lookup(
        job_ids=[], complete=True
    )
    assert len(lists(emu)) == 1


async def test_a_search_cut_short_by_the_page_cap_is_incomplete(adapter, emu, monkeypatch):
    monkeypatch.setattr(adapters.seedance, "_LOOKUP_PAGE_SIZE", 2)
    monkeypatch.setattr(adapters.seedance, "_LOOKUP_PAGES", 2)
    sent_at = datetime.now(UTC) - timedelta(seconds=1)
    refs = [f"sf-take-1-{n}" for n in range(5)]
    ids = [
        await adapter.submit(req(prompt=f"take {n}"), CREDS, reference=r)
        for n, r in enumerate(refs)
    ]

    newest = await adapter.find_submitted(req(), CREDS, since=sent_at, reference=refs[4])
    assert newest == Lookup(job_ids=[ids[4]], complete=False)
    oldest = await adapter.find_submitted(req(), CREDS, since=sent_at, reference=refs[0])
    assert oldest == Lookup(job_ids=[], complete=False)  # on page 3, past the cap
    assert len(lists(emu)) == 4


async def test_a_window_older_than_the_list_keeps_is_incomplete(adapter):
    since = datetime.now(UTC) - timedelta(days=8)
    assert await adapter.find_submitted(req(), CREDS, since=since, reference=REF) == Lookup(
        job_ids=[], complete=False
    )


async def test_a_failing_list_call_raises_rather_than_answering_nothing(adapter, emu):
    emu.inject("list", "503")
    with pytest.raises(TransientError):
        await adapter.find_submitted(req(), CREDS, since=datetime.now(UTC), reference=REF)
