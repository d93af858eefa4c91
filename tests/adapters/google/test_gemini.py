"""VeoAdapter against the Gemini-API emulator: in-process for the fast cases, over real HTTP for
the whole lifecycle, the download and the timeouts."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import av
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from adapters.google.gemini import VeoAdapter
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    ProviderError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.gemini import RAI_MESSAGE, RAI_REASON, VeoEmulator

KEY = "AIzaSy-test-SECRET-0123456789"
CREDS = Credentials({"api_key": KEY})
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def req(**kw: object) -> StandardVideoRequest:
    base: dict[str, object] = {"prompt": "A red fox runs", "aspect_ratio": "16:9", "duration": 8}
    base["motion_intensity"] = 5
    return StandardVideoRequest.model_validate(base | kw)


@pytest.fixture
def emu() -> VeoEmulator:
    return VeoEmulator(api_key=KEY, latency=0.3)


@pytest.fixture
def adapter(emu: VeoEmulator) -> VeoAdapter:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
    return VeoAdapter(client=client, base_url="http://veo.test")


async def finish(adapter: VeoAdapter, job_id: str) -> JobStatus:
    for _ in range(50):
        result = await adapter.status(job_id, CREDS)
        if result.status is not JobStatus.QUEUED:
            return result.status
        await asyncio.sleep(0.05)
    raise AssertionError("the job never finished")


async def test_request_mapping_sends_the_documented_body(
    adapter: VeoAdapter, emu: VeoEmulator
) -> None:
    request = req(
        negative_prompt="blur", style="film noir", resolution="1920x1080", aspect_ratio="16:9"
    )
    job_id = await adapter.submit(request, CREDS)
    sent = emu.recorded[-1]
    assert (sent.method, sent.path) == (
        "POST",
        "/v1beta/models/veo-3.1-generate-preview:predictLongRunning",
    )
    assert sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.body == {
        "instances": [{"prompt": "A red fox runs. Style: film noir."}],
        "parameters": {
            "sampleCount": 1,
            "aspectRatio": "16:9",
            "durationSeconds": 8,
            "resolution": "1080p",
            "negativePrompt": "blur",
        },
    }
    assert job_id.startswith("models/veo-3.1-generate-preview/operations/")
    assert emu.submissions == 1


async def test_model_choice_default_draft_and_explicit(
    adapter: VeoAdapter, emu: VeoEmulator
) -> None:
    await adapter.submit(req(quality="draft"), CREDS)
    assert emu.recorded[-1].path.endswith("/veo-3.1-fast-generate-preview:predictLongRunning")
    await adapter.submit(req(model="veo-2.0-generate-001", duration=5), CREDS)
    assert emu.recorded[-1].path == "/v1beta/models/veo-2.0-generate-001:predictLongRunning"
    # Veo 2 has one resolution and no parameter for it.
    assert "resolution" not in emu.recorded[-1].body["parameters"]
    assert adapter.capabilities().default_model == "veo-3.1-generate-preview"


def test_validate_lists_every_problem_with_allowed_values(adapter: VeoAdapter) -> None:
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(duration=15, aspect_ratio="1:1", resolution="4k"))
    assert exc.value.problems == [
        "aspect_ratio: veo model veo-3.1-generate-preview supports 16:9, 9:16, not 1:1",
        "duration: veo model veo-3.1-generate-preview makes 4, 6, 8 second videos, not 15",
        "resolution: veo model veo-3.1-generate-preview supports 720p, 1080p, not 4k",
    ]
    assert exc.value.provider == "veo"


def test_validate_model_and_per_model_rules(adapter: VeoAdapter) -> None:
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(model="veo-9"))
    assert exc.value.problems == [
        "model: veo has no model 'veo-9'; allowed: veo-3.1-generate-preview, "
        "veo-3.1-fast-generate-preview, veo-2.0-generate-001"
    ]
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(duration=4, resolution="1080p"))
    assert exc.value.problems == [
        "resolution: veo model veo-3.1-generate-preview renders 1080p only at duration 8; "
        "use duration 8 or resolution 720p"
    ]
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(model="veo-2.0-generate-001", duration=4, resolution="1080p"))
    assert exc.value.problems == [
        "duration: veo model veo-2.0-generate-001 makes 5, 6, 7, 8 second videos, not 4",
        "resolution: veo model veo-2.0-generate-001 supports 720p, not 1080p",
    ]
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(image_url="data:image/gif;base64,R0lG"))
    assert exc.value.problems == [
        "image_url: a data URL must be base64 of image/jpeg, image/png, image/webp"
    ]


def test_warnings_for_fields_without_equivalent(adapter: VeoAdapter) -> None:
    assert adapter.validate(req()) == [
        "motion_intensity: veo has no equivalent setting; not sent; describe the motion in "
        "the prompt"
    ]
    warnings = adapter.validate(
        req(seed=7, fps=30, model="veo-3.1-generate-preview", quality="high")
    )
    assert warnings[1:] == [
        "quality: veo has no equivalent setting; ignored because model "
        "veo-3.1-generate-preview was chosen",
        "seed: veo has no equivalent setting; not sent; the Gemini API refuses it",
        "fps: veo has no equivalent setting; not sent; Veo renders 24 fps",
    ]


def test_capabilities_per_model(adapter: VeoAdapter) -> None:
    caps = adapter.capabilities()
    assert set(caps.models) == {
        "veo-3.1-generate-preview",
        "veo-3.1-fast-generate-preview",
        "veo-2.0-generate-001",
    }
    veo3, veo2 = caps.models["veo-3.1-generate-preview"], caps.models["veo-2.0-generate-001"]
    assert veo3.durations == [4, 6, 8] and veo2.durations == [5, 6, 7, 8]
    assert veo3.fields["resolution"].support == "native"
    assert veo2.fields["resolution"].support == "mapped"
    assert {f: m.support for f, m in veo3.fields.items() if m.support == "unsupported"} == {
        "motion_intensity": "unsupported",
        "seed": "unsupported",
        "fps": "unsupported",
    }
    assert caps.credential_fields == ["api_key"]
    assert not caps.can_cancel


async def test_image_url_is_fetched_and_inlined(emu: VeoEmulator) -> None:
    images = Starlette(routes=[Route("/f.png", lambda r: Response(PNG, media_type="image/png"))])
    client = httpx.AsyncClient(
        mounts={
            "http://images.test": httpx.ASGITransport(app=images),
            "all://": httpx.ASGITransport(app=emu.app),
        }
    )
    adapter = VeoAdapter(client=client, base_url="http://veo.test")
    await adapter.submit(req(image_url="http://images.test/f.png"), CREDS)
    image = {"bytesBase64Encoded": base64.b64encode(PNG).decode(), "mimeType": "image/png"}
    assert emu.recorded[-1].body["instances"][0]["image"] == image
    await adapter.submit(req(image_url="data:image/png;base64,AAAA"), CREDS)
    assert emu.recorded[-1].body["instances"][0]["image"] == {
        "bytesBase64Encoded": "AAAA",
        "mimeType": "image/png",
    }
    with pytest.raises(RequestValidationError) as exc:
        await adapter.submit(req(image_url="http://images.test/missing.png?sig=SECRET"), CREDS)
    assert exc.value.problems == [
        "image_url: fetching it gave HTTP 404 text/plain; it must serve one of image/jpeg, "
        "image/png, image/webp publicly, or be a data: URL"
    ]
    assert "SECRET" not in str(exc.value)


async def test_lifecycle_queued_then_completed(adapter: VeoAdapter, emu: VeoEmulator) -> None:
    job_id = await adapter.submit(req(), CREDS)
    first = await adapter.status(job_id, CREDS)
    assert (first.status, first.progress, first.video_url) == (JobStatus.QUEUED, 0, None)
    assert await finish(adapter, job_id) is JobStatus.COMPLETED
    done = await adapter.status(job_id, CREDS)
    assert done.progress == 100 and done.provider_job_id == job_id
    assert done.video_url is not None and "/v1beta/files/" in done.video_url
    assert done.provider_details == {"samples": 1}
    assert emu.recorded[-1].path == f"/v1beta/{job_id}"


async def test_async_failure_is_failed_with_the_reason(
    adapter: VeoAdapter, emu: VeoEmulator
) -> None:
    emu.inject("submit", "fail")
    job_id = await adapter.submit(req(), CREDS)
    assert await finish(adapter, job_id) is JobStatus.FAILED
    result = await adapter.status(job_id, CREDS)
    assert result.error_message == (
        "Video generation failed due to an internal error. Please try again."
    )
    assert result.provider_details == {"samples": 0, "error_code": 13}


async def test_rai_filtered_output_is_a_moderation_error_with_the_reason(
    adapter: VeoAdapter, emu: VeoEmulator
) -> None:
    job_id = await adapter.submit(req(), CREDS)
    emu.inject("status", "moderation")
    with pytest.raises(ModerationError) as exc:
        await adapter.status(job_id, CREDS)
    assert str(exc.value) == (
        f"veo: operation {job_id} was blocked by the safety filter: {RAI_REASON}"
    )
    assert exc.value.provider == "veo"


async def test_submit_refusal_is_moderation_error(adapter: VeoAdapter, emu: VeoEmulator) -> None:
    emu.inject("submit", "moderation")
    with pytest.raises(ModerationError) as exc:
        await adapter.submit(req(), CREDS)
    assert RAI_MESSAGE in str(exc.value) and exc.value.status_code == 400


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "malformed", AmbiguousSubmitError),
        ("status", "500", TransientError),
        ("status", "503", TransientError),
        ("status", "malformed", TransientError),
    ],
)
async def test_server_faults(
    adapter: VeoAdapter, emu: VeoEmulator, op: str, kind: str, error: type[Exception]
) -> None:
    job_id = await adapter.submit(req(), CREDS) if op == "status" else ""
    emu.inject(op, kind)
    with pytest.raises(error) as exc:
        if op == "submit":
            await adapter.submit(req(), CREDS)
        else:
            await adapter.status(job_id, CREDS)
    assert type(exc.value) is error
    assert KEY not in str(exc.value) and KEY not in repr(exc.value)


async def test_rate_limit_carries_retry_after(adapter: VeoAdapter, emu: VeoEmulator) -> None:
    emu.inject("submit", "429", retry_after=7)
    with pytest.raises(RateLimitedError) as exc:
        await adapter.submit(req(), CREDS)
    assert exc.value.retry_after == 7
    assert "Resource has been exhausted" in str(exc.value)
    assert emu.submissions == 0


async def test_wrong_key_is_auth_error_without_the_key(
    adapter: VeoAdapter, emu: VeoEmulator
) -> None:
    wrong = Credentials({"api_key": "AIzaSy-WRONG-secret"})
    for call in (adapter.submit(req(), wrong), adapter.test_connection(wrong)):
        with pytest.raises(AuthError) as exc:
            await call
        assert str(exc.value) == (
            "veo answered HTTP 400: API key not valid. Please pass a valid API key.. The "
            "stored key was rejected: run `sceneflow creds set USER veo` with a valid key, "
            "then `sceneflow creds test USER veo`"
        )
        assert "WRONG" not in str(exc.value)
    assert emu.submissions == 0


def test_401_and_403_are_auth_errors(adapter: VeoAdapter) -> None:
    for code in (401, 403):
        body = {"error": {"code": code, "message": "denied", "status": "UNAUTHENTICATED"}}
        with pytest.raises(AuthError):
            adapter.raise_for_status(httpx.Response(code, json=body))


async def test_missing_key_field_names_the_fix(adapter: VeoAdapter) -> None:
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(Credentials({"key": KEY}))
    assert str(exc.value) == (
        "Stored credentials for 'veo' have no 'api_key' field. Run `sceneflow creds set USER "
        "veo` with JSON that includes 'api_key'."
    )


async def test_test_connection_lists_models(adapter: VeoAdapter, emu: VeoEmulator) -> None:
    await adapter.test_connection(CREDS)
    assert (emu.recorded[-1].path, emu.recorded[-1].query) == ("/v1beta/models", "pageSize=1")


async def test_cancel_is_a_documented_no_op(adapter: VeoAdapter, emu: VeoEmulator) -> None:
    job_id = await adapter.submit(req(), CREDS)
    before = len(emu.recorded)
    assert await adapter.cancel(job_id, CREDS) is None
    assert len(emu.recorded) == before
    assert adapter.capabilities().can_cancel is False


async def test_over_http_submit_poll_download_valid_mp4(tmp_path: Path) -> None:
    emu = VeoEmulator(api_key=KEY, latency=0.2)
    with serve(emu.app) as base_url:
        async with VeoAdapter(base_url=base_url) as adapter:
            job_id = await adapter.submit(req(), CREDS)
            assert await finish(adapter, job_id) is JobStatus.COMPLETED
            result = await adapter.status(job_id, CREDS)
            out = await adapter.download(result, CREDS, tmp_path / "out.mp4")
            fetched = emu.recorded[-1]
            assert fetched.path.endswith(":download") and fetched.query == "alt=media"
            assert fetched.headers["x-goog-api-key"] == KEY
            with pytest.raises(AuthError):
                await adapter.download(result, Credentials({"api_key": "bad"}), tmp_path / "x")
            emu.inject("download", "503")
            with pytest.raises(TransientError):
                await adapter.download(result, CREDS, tmp_path / "x")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.duration and container.duration > 0
    assert not (tmp_path / "out.mp4.part").exists() and not (tmp_path / "x").exists()
    assert emu.submissions == 1


async def test_download_needs_a_gemini_file_uri(adapter: VeoAdapter, tmp_path: Path) -> None:
    result = (await adapter.status(await adapter.submit(req(), CREDS), CREDS)).model_copy(
        update={"video_url": "https://example.test/video.mp4"}
    )
    with pytest.raises(ProviderError) as exc:
        await adapter.download(result, CREDS, tmp_path / "v.mp4")
    assert "is not a Gemini file URI" in str(exc.value)


async def test_slow_submit_reply_is_ambiguous(tmp_path: Path) -> None:
    emu = VeoEmulator(api_key=KEY)
    emu.inject("submit", "slow", delay=1.0)
    with serve(emu.app) as base_url:
        client = httpx.AsyncClient(timeout=httpx.Timeout(0.3))
        async with client:
            adapter = VeoAdapter(client=client, base_url=base_url)
            with pytest.raises(AmbiguousSubmitError) as exc:
                await adapter.submit(req(), CREDS)
    assert "may have been accepted and billed" in str(exc.value)
    assert KEY not in str(exc.value)


async def test_faults_injected_over_http(tmp_path: Path) -> None:
    emu = VeoEmulator(api_key=KEY)
    with serve(emu.app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as control:
            await control.post("/_emulator/faults", json={"op": "submit", "kind": "503"})
            async with VeoAdapter(base_url=base_url) as adapter:
                with pytest.raises(TransientError):
                    await adapter.submit(req(), CREDS)
                await adapter.submit(req(), CREDS)
            stats = (await control.get("/_emulator/stats")).json()
    assert stats == {"submissions": 1, "jobs": 1}
