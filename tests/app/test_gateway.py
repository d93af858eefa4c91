"""VideoGenerationGateway, method by method, with the local provider and with Runway's emulator
served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import adapters
from adapters.runway import RunwayAdapter
from sceneflow import db, store
from sceneflow.app.gateway import VideoGenerationGateway
from sceneflow.errors import UnknownProviderError
from sceneflow.jobs import ledger
from sceneflow.media import verify_video
from sceneflow.models import TERMINAL_STATUSES, JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.settings import get_settings
from tests.support.emulators import runway as runway_emulator
from tests.support.emulators._base import serve

USER = "gwuser"
KEY = "key_" + "6a7e3c1d" * 16
WRONG_KEY = "key_" + "0badc0de" * 16
gateway = VideoGenerationGateway()


def tiny(prompt: str, **kw: Any) -> StandardVideoRequest:
    fields = {"aspect_ratio": "16:9", "motion_intensity": 3, "duration": 1, "resolution": "160x90"}
    return StandardVideoRequest(prompt=prompt, **(fields | {"fps": 12} | kw))


REQUESTS = {
    "local": tiny("Teal kite over a beach"),
    "runway": StandardVideoRequest(
        prompt="A lighthouse in a storm", aspect_ratio="16:9", motion_intensity=4, duration=5
    ),
}


@dataclass
class Backend:
    provider: str
    request: StandardVideoRequest
    emulator: runway_emulator.RunwayEmulator | None


def put(provider: str, credentials: dict[str, Any]) -> None:
    with db.session_scope() as session:
        store.put_credentials(
            session=session, user_id=USER, provider=provider, credentials=credentials
        )


def validity(provider: str) -> bool | None:
    with db.session_scope() as session:
        config = store.get_config(session=session, user_id=USER, provider=provider)
        assert config is not None
        return config.is_valid


@pytest.fixture
def runway(monkeypatch: pytest.MonkeyPatch) -> Iterator[runway_emulator.RunwayEmulator]:
    """Runway's emulator on a real port, the adapter pointed at it, the key stored."""
    original = RunwayAdapter.capabilities
    # Runway asks for polls 5 s apart; the emulator finishes in 0.3 s.
    monkeypatch.setattr(
        RunwayAdapter,
        "capabilities",
        lambda self: original(self).model_copy(update={"poll_interval": 0.1}),
    )
    emu = runway_emulator.RunwayEmulator(api_key=KEY, latency=0.3)
    with serve(emu.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__RUNWAY", url)
        get_settings.cache_clear()
        put("runway", {"api_key": KEY})
        yield emu
    get_settings.cache_clear()


@pytest.fixture(params=["local", "runway"])
def backend(request: pytest.FixtureRequest) -> Backend:
    emu = request.getfixturevalue("runway") if request.param == "runway" else None
    return Backend(request.param, REQUESTS[request.param], emu)


async def until_finished(provider: str, job_id: str) -> StandardVideoResult:
    deadline = time.monotonic() + 30
    while True:
        response = await gateway.check_generation_status(USER, provider, job_id)
        assert response.success, response.message
        assert response.data is not None
        if response.data.status in TERMINAL_STATUSES or time.monotonic() > deadline:
            return response.data
        await asyncio.sleep(0.1)


async def test_trigger_returns_queued_and_status_follows_it_to_completed(backend: Backend) -> None:
    response = await gateway.trigger_generation(USER, backend.request, backend.provider)
    assert response.success and response.error is None, response.message
    assert response.data is not None and response.data.status == JobStatus.QUEUED
    job_id = response.data.provider_details["job_id"]
    provider_job_id = response.data.provider_job_id
    assert job_id and provider_job_id
    # The same request again resumes the same job instead of paying for a second one.
    again = await gateway.trigger_generation(USER, backend.request, backend.provider)
    assert again.data is not None and again.data.provider_details["job_id"] == job_id
    if backend.emulator is not None:
        assert backend.emulator.submissions == 1

    done = await until_finished(backend.provider, job_id)
    assert done.status == JobStatus.COMPLETED and done.progress == 100
    assert done.provider_details["job_id"] == job_id
    # COMPLETED comes with the verified video, fetched the moment the provider was done.
    assert done.output_path and Path(done.output_path).is_file()
    # The provider's own id finds the job too.
    by_provider_id = await gateway.check_generation_status(USER, backend.provider, provider_job_id)
    assert by_provider_id.data is not None and by_provider_id.data.status == JobStatus.COMPLETED
    with db.session_scope() as session:
        row = store.get_job(session=session, job_id=job_id)
        assert row is not None and row.status == JobStatus.COMPLETED
        assert row.video_url is None or "?" not in row.video_url  # no signature stored


async def test_cancel_stops_the_job_at_the_provider(backend: Backend) -> None:
    # Long enough that the local render is still running when the cancel arrives.
    request = (
        tiny("Slow red sunrise", duration=30, resolution="640x360", fps=24)
        if backend.provider == "local"
        else backend.request.model_copy(update={"prompt": "A slow red sunrise"})
    )
    if backend.emulator is not None:
        backend.emulator.latency = 30
    triggered = await gateway.trigger_generation(USER, request, backend.provider)
    assert triggered.data is not None
    job_id = triggered.data.provider_details["job_id"]

    cancelled = await gateway.cancel_generation(USER, backend.provider, job_id)
    assert cancelled.success, cancelled.message
    assert cancelled.data is not None and cancelled.data.status == JobStatus.CANCELLED
    assert cancelled.data.error_message == "cancelled: cancel sent to the provider"
    if backend.emulator is not None:
        assert [job.cancelled for job in backend.emulator.jobs.values()] == [True]
    # The provider agrees when asked again.
    status = await gateway.check_generation_status(USER, backend.provider, job_id)
    assert status.data is not None and status.data.status == JobStatus.CANCELLED


@pytest.mark.usefixtures("prefect_harness")
async def test_trigger_and_wait_returns_the_finished_video(
    backend: Backend, tmp_path: Path
) -> None:
    response = await gateway.trigger_generation(
        USER, backend.request, backend.provider, wait=True, output_dir=str(tmp_path)
    )
    assert response.success, response.message
    result = response.data
    assert result is not None and result.status == JobStatus.COMPLETED
    assert result.output_path is not None and Path(result.output_path).parent == tmp_path
    info = verify_video(result.output_path)
    assert info.duration == pytest.approx(backend.request.duration, rel=0.5)
    assert result.provider_details["job_id"]
    if backend.emulator is not None:
        assert backend.emulator.submissions == 1 and result.cost and result.cost > 0

    # A request the provider cannot do fails the flow before anything is sent.
    bad = backend.request.model_copy(update={"model": "no-such-model"})
    failed = await gateway.trigger_generation(USER, bad, backend.provider, wait=True)
    assert (failed.success, failed.error) == (False, "RequestValidationError")
    assert "model:" in (failed.message or "") and "no-such-model" in (failed.message or "")
    if backend.provider == "local":
        unknown = await gateway.trigger_generation(USER, backend.request, "kling-ultra", wait=True)
        assert (unknown.success, unknown.error) == (False, "UnknownProviderError")


async def test_available_providers_follow_the_stored_credentials() -> None:
    def names(response: Any) -> list[str]:
        assert response.success, response.message
        return [p["provider"] for p in response.data]

    only_local = await gateway.get_available_providers(USER)
    assert names(only_local) == ["local"]
    assert only_local.data == [{"provider": "local", "needs_credentials": False, "is_valid": None}]
    put("runway", {"api_key": KEY})
    put("luma", {"api_key": "luma-key"})
    put("fal", {"api_key": "id123456:secret12"})
    with db.session_scope() as session:
        store.set_validity(session=session, user_id=USER, provider="luma", is_valid=False)
        store.set_validity(session=session, user_id=USER, provider="fal", is_valid=True)
    listed = await gateway.get_available_providers(USER)
    assert names(listed) == ["fal", "local", "runway"]  # luma's key is known to be rejected
    assert {p["provider"]: p["is_valid"] for p in listed.data or []} == {
        "fal": True,
        "local": None,
        "runway": None,
    }
    assert names(await gateway.get_available_providers("someone-else")) == ["local"]


async def test_provider_capabilities_for_each_known_key_and_an_unknown_one() -> None:
    for key in adapters.known():
        response = await gateway.get_provider_capabilities(key)
        assert response.success and response.data is not None and response.data.provider == key
        assert response.data.default_model in response.data.models
    local = (await gateway.get_provider_capabilities("local")).data
    assert local is not None and local.credential_fields == []
    runway = (await gateway.get_provider_capabilities("runway")).data
    assert runway is not None and runway.can_cancel and "gen4.5" in runway.models

    unknown = await gateway.get_provider_capabilities("sora")
    assert (unknown.success, unknown.data, unknown.error) == (False, None, "UnknownProviderError")
    assert (
        unknown.message
        == f"Unknown provider 'sora'. Known providers: {', '.join(adapters.known())}."
    )


async def test_connection_test_accepts_a_good_key_and_flags_a_rejected_one(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    good = await gateway.test_provider_connection(USER, "runway")
    assert (good.success, good.data) == (True, True)
    assert good.message == "runway accepted the credentials"
    assert validity("runway") is True
    assert ("GET", "/v1/organization") in {(r["method"], r["path"]) for r in runway.recorded}

    put("runway", {"api_key": WRONG_KEY})
    bad = await gateway.test_provider_connection(USER, "runway")
    assert (bad.success, bad.data, bad.error) == (False, None, "ProviderError")
    assert f"`sceneflow creds set {USER} runway`" in (bad.message or "")
    assert WRONG_KEY not in (bad.message or "")
    assert validity("runway") is False

    missing = await gateway.test_provider_connection(USER, "luma")
    assert (missing.success, missing.error) == (False, "CredentialsError")
    assert "sceneflow creds set" in (missing.message or "")


async def test_the_local_provider_needs_no_stored_credentials_to_test() -> None:
    response = await gateway.test_provider_connection(USER, "local")
    assert (response.success, response.data) == (True, True), response.message


def test_get_adapter_builds_known_providers_and_names_the_known_keys_otherwise() -> None:
    assert gateway.get_adapter("local").key == "local"
    adapter = gateway.get_adapter("runway")
    assert isinstance(adapter, RunwayAdapter)
    asyncio.run(adapter.aclose())
    with pytest.raises(UnknownProviderError) as e:
        gateway.get_adapter("kling-ultra")
    assert all(key in str(e.value) for key in adapters.known())


async def test_failures_come_back_as_responses_that_say_how_to_fix_them(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    request = REQUESTS["runway"]

    unknown = await gateway.trigger_generation(USER, request, "kling-ultra")
    assert (unknown.success, unknown.error) == (False, "UnknownProviderError")
    assert f"Known providers: {', '.join(adapters.known())}." in (unknown.message or "")

    invalid = await gateway.trigger_generation(
        USER, request.model_copy(update={"duration": 15, "aspect_ratio": "4:3"}), "runway"
    )
    assert (invalid.success, invalid.error) == (False, "RequestValidationError")
    assert "duration: gen4.5 takes whole seconds from 2 to 10; got 15" in (invalid.message or "")
    assert "aspect_ratio: gen4.5 text-to-video supports 16:9, 9:16; got 4:3" in (
        invalid.message or ""
    )

    no_key = await gateway.trigger_generation("stranger", request, "runway")
    assert (no_key.success, no_key.error) == (False, "CredentialsError")
    assert "sceneflow creds set stranger runway" in (no_key.message or "")

    missing = await gateway.check_generation_status(USER, "runway", "no-such-job")
    assert (missing.success, missing.error) == (False, "NotFoundError")
    assert "provider_details['job_id']" in (missing.message or "")
    assert runway.submissions == 0

    put("runway", {"api_key": WRONG_KEY})
    rejected = await gateway.trigger_generation(USER, request, "runway")
    assert (rejected.success, rejected.error) == (False, "AuthError")
    assert "sceneflow creds test USER runway" in (rejected.message or "")
    assert WRONG_KEY not in (rejected.message or "")
    assert validity("runway") is False
    refused = await gateway.trigger_generation(USER, request, "runway")
    assert (refused.success, refused.error) == (False, "CredentialsError")
    assert f"sceneflow creds test {USER} runway" in (refused.message or "")


async def test_a_finished_job_cannot_be_cancelled(runway: runway_emulator.RunwayEmulator) -> None:
    runway.latency = 0.05
    triggered = await gateway.trigger_generation(USER, REQUESTS["runway"], "runway")
    assert triggered.data is not None
    job_id = triggered.data.provider_details["job_id"]
    await asyncio.sleep(0.1)
    assert (await until_finished("runway", job_id)).status == JobStatus.COMPLETED
    response = await gateway.cancel_generation(USER, "runway", job_id)
    assert (response.success, response.error) == (False, "NotFoundError")
    assert response.message == f"Job {job_id} is already COMPLETED; there is nothing to cancel."
    assert [job.cancelled for job in runway.jobs.values()] == [False]


async def test_a_job_another_run_is_working_on_is_answered_from_its_row_and_not_cancelled(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    triggered = await gateway.trigger_generation(USER, REQUESTS["runway"], "runway")
    assert triggered.data is not None
    job_id = triggered.data.provider_details["job_id"]
    other = "another-host:4242:batchrun"  # a live run elsewhere: its claim is not taken over
    assert ledger.claim(job_id, other) is None
    polled = len(runway.recorded)
    status = await gateway.check_generation_status(USER, "runway", job_id)
    assert status.success and status.data is not None
    assert status.data.status == JobStatus.QUEUED and len(runway.recorded) == polled
    refused = await gateway.cancel_generation(USER, "runway", job_id)
    assert (refused.success, refused.error) == (False, "ConfigError")
    assert refused.message == (
        f"Job {job_id} is being run by {other}; stop that run first (Ctrl-C stops a batch and "
        "keeps its jobs), then cancel the job."
    )
    assert [job.cancelled for job in runway.jobs.values()] == [False]
    ledger.release(job_id, other)
    assert (await gateway.cancel_generation(USER, "runway", job_id)).success


# -- audio, options and strict ------------------------------------------------------------------


async def test_trigger_sends_the_audio_and_options_arguments(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    request = StandardVideoRequest(
        prompt="A lighthouse at dusk", aspect_ratio="16:9", motion_intensity=4, duration=8
    )
    veo = request.model_copy(update={"model": "veo3.1"})
    response = await gateway.trigger_generation(USER, veo, "runway", audio=False)
    assert response.success, response.message
    assert runway.recorded[-1]["body"]["audio"] is False and runway.submissions == 1


async def test_strict_refuses_before_sending_and_options_are_checked(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    request = REQUESTS["runway"].model_copy(update={"fps": 30})
    lenient = await gateway.trigger_generation(USER, request, "runway", force=True)
    assert lenient.success and lenient.data is not None
    assert "fps: runway has no equivalent setting" in lenient.data.provider_details["warnings"][1]
    sent = runway.submissions
    strict = await gateway.trigger_generation(USER, request, "runway", strict=True)
    waited = await gateway.trigger_generation(USER, request, "runway", strict=True, wait=True)
    unknown = await gateway.trigger_generation(USER, request, "runway", options={"loop": True})
    for refused in (strict, waited, unknown):
        assert not refused.success and refused.error == "RequestValidationError"
    assert strict.message is not None and "fps: runway has no equivalent" in strict.message
    assert "[strict: refused before anything is sent" in strict.message
    assert unknown.message == (
        "Invalid request for provider 'runway': options.loop: runway model gen4.5 has no "
        "option 'loop' (it takes no options)"
    )
    assert runway.submissions == sent


async def test_a_gs_image_is_refused_for_a_provider_that_cannot_read_it(
    runway: runway_emulator.RunwayEmulator,
) -> None:
    request = REQUESTS["runway"].model_copy(update={"image_url": "gs://sf-bucket/frames/a.png"})
    for strict in (False, True):
        refused = await gateway.trigger_generation(USER, request, "runway", strict=strict)
        assert (refused.success, refused.error) == (False, "RequestValidationError")
        assert (refused.message or "").startswith(
            "Invalid request for provider 'runway': image_url: runway cannot read a gs:// image "
            "(providers that take one: vertex). Use an https URL it can fetch instead"
        )
    assert runway.submissions == 0
