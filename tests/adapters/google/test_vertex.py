"""VertexVeoAdapter against the Vertex emulator over real HTTP: google-auth mints the token from a
fake service account (an RSA key made here) at the emulator's OAuth2 endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.google.vertex import VertexVeoAdapter
from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    CredentialsError,
    ModerationError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import sample_mp4, serve
from tests.support.emulators.vertex import RAI_MESSAGE, RAI_REASON, VertexEmulator

EMAIL = "sceneflow@sf-proj.iam.gserviceaccount.com"
MODEL_PATH = "/v1/projects/sf-proj/locations/us-central1/publishers/google/models"


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE_KEY, PUBLIC_KEY = _keypair()
SECRET_MARK = PRIVATE_KEY.splitlines()[5]


def service_account(token_uri: str, **kw: str) -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": "sf-proj",
        "private_key_id": "k1",
        "private_key": PRIVATE_KEY,
        "client_email": EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    } | kw


def creds(base_url: str, **kw: Any) -> Credentials:
    sa = service_account(base_url + "/token")
    return Credentials(
        {"service_account": sa, "project": "sf-proj", "location": "us-central1"} | kw
    )


def req(**kw: object) -> StandardVideoRequest:
    base: dict[str, object] = {"prompt": "A red fox runs", "aspect_ratio": "9:16", "duration": 8}
    base["motion_intensity"] = 5
    return StandardVideoRequest.model_validate(base | kw)


@pytest.fixture
def served() -> Iterator[tuple[VertexEmulator, str]]:
    emu = VertexEmulator(public_keys={EMAIL: PUBLIC_KEY}, latency=0.3)
    with serve(emu.app) as base_url:
        yield emu, base_url


def no_secret(exc: BaseException) -> None:
    text = str(exc) + repr(exc)
    assert SECRET_MARK not in text and "ya29." not in text and "Bearer" not in text


async def test_body_auth_and_token_cache(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    c = creds(base_url)
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(
            req(seed=42, fps=24, negative_prompt="blur", style="anime", resolution="720p"), c
        )
        await adapter.status(job_id, c)
        await adapter.test_connection(c)
    sent = emu.recorded[0]
    assert (sent.method, sent.path) == (
        "POST",
        f"{MODEL_PATH}/veo-3.1-generate-001:predictLongRunning",
    )
    assert sent.headers["authorization"].startswith("Bearer ya29.emu-")
    assert sent.body == {
        "instances": [{"prompt": "A red fox runs. Style: anime."}],
        "parameters": {
            "sampleCount": 1,
            "aspectRatio": "9:16",
            "durationSeconds": 8,
            "resolution": "720p",
            "negativePrompt": "blur",
            "seed": 42,
            "fps": 24,
            "generateAudio": True,
        },
    }
    assert job_id == f"{MODEL_PATH[4:]}/veo-3.1-generate-001/operations/{next(iter(emu.jobs))}"
    poll = emu.recorded[1]
    assert (poll.method, poll.path, poll.body) == (
        "POST",
        f"{MODEL_PATH}/veo-3.1-generate-001:fetchPredictOperation",
        {"operationName": job_id},
    )
    listing = emu.recorded[2]
    assert (listing.path, listing.query) == (
        "/v1/projects/sf-proj/locations/us-central1/models",
        "pageSize=1",
    )
    # One token for three calls: it is cached until shortly before it expires.
    assert emu.token_requests == 1


async def test_token_renewed_near_expiry(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    emu.token_lifetime = 200  # under the adapter's 300 s renewal margin
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.test_connection(creds(base_url))
        await adapter.test_connection(creds(base_url))
    assert emu.token_requests == 2


async def test_model_choice_and_veo2(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(req(quality="draft"), creds(base_url))
        await adapter.submit(req(model="veo-2.0-generate-001", duration=5), creds(base_url))
    assert emu.recorded[0].path == f"{MODEL_PATH}/veo-3.1-fast-generate-001:predictLongRunning"
    assert emu.recorded[1].path == f"{MODEL_PATH}/veo-2.0-generate-001:predictLongRunning"
    assert emu.recorded[1].body["parameters"] == {
        "sampleCount": 1,
        "aspectRatio": "9:16",
        "durationSeconds": 5,
    }


def test_validate_and_warnings() -> None:
    adapter = VertexVeoAdapter()
    with pytest.raises(RequestValidationError) as exc:
        adapter.validate(req(duration=15, aspect_ratio="4:3", fps=30))
    assert exc.value.problems == [
        "aspect_ratio: vertex model veo-3.1-generate-001 supports 16:9, 9:16, not 4:3",
        "duration: vertex model veo-3.1-generate-001 makes 4, 6, 8 second videos, not 15",
        "fps: vertex model veo-3.1-generate-001 renders 24 fps only; allowed: 24",
    ]
    assert adapter.validate(req(seed=3)) == [
        "motion_intensity: vertex has no equivalent setting; not sent; describe the motion in "
        "the prompt"
    ]
    caps = adapter.capabilities()
    fields = caps.models["veo-3.1-generate-001"].fields
    assert (fields["seed"].support, fields["fps"].support) == ("native", "native")
    assert caps.credential_fields == ["service_account", "project", "location"]
    assert caps.default_model == "veo-3.1-generate-001" and not caps.can_cancel


async def test_lifecycle_and_inline_download(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    c = creds(base_url)
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(req(), c)
        assert (await adapter.status(job_id, c)).status is JobStatus.QUEUED
        await asyncio.sleep(0.35)
        done = await adapter.status(job_id, c)
        assert done.status is JobStatus.COMPLETED and done.progress == 100
        assert done.video_url == f"vertex-inline:{job_id}"
        assert done.provider_details == {"samples": 1}
        out = await adapter.download(done, c, tmp_path / "v" / "out.mp4")
        assert await adapter.cancel(job_id, c) is None
    assert out.read_bytes() == sample_mp4(seconds=8)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    # submit, two polls, the download's fetch; cancel sent nothing.
    assert emu.submissions == 1 and len(emu.recorded) == 4


async def test_async_failure_and_rai_filter(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    c = creds(base_url)
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        emu.inject("submit", "fail")
        failing = await adapter.submit(req(), c)
        filtered = await adapter.submit(req(), c)
        emu.inject("status", "moderation")
        with pytest.raises(ModerationError) as blocked:
            await adapter.status(filtered, c)
        await asyncio.sleep(0.35)
        failed = await adapter.status(failing, c)
    assert (failed.status, failed.error_message) == (
        JobStatus.FAILED,
        "Video generation failed: internal error.",
    )
    assert str(blocked.value) == (
        f"vertex: operation {filtered} was blocked by the safety filter: {RAI_REASON}"
    )


@pytest.mark.parametrize(
    ("op", "kind", "error"),
    [
        ("submit", "500", AmbiguousSubmitError),
        ("submit", "503", TransientError),
        ("submit", "429", RateLimitedError),
        ("submit", "moderation", ModerationError),
        ("status", "malformed", TransientError),
        ("status", "503", TransientError),
    ],
)
async def test_faults(
    served: tuple[VertexEmulator, str], op: str, kind: str, error: type[Exception]
) -> None:
    emu, base_url = served
    c = creds(base_url)
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(req(), c) if op == "status" else ""
        emu.inject(op, kind, retry_after=4)
        with pytest.raises(error) as exc:
            await (adapter.submit(req(), c) if op == "submit" else adapter.status(job_id, c))
    assert type(exc.value) is error
    no_secret(exc.value)
    if kind == "429":
        assert isinstance(exc.value, RateLimitedError) and exc.value.retry_after == 4
    if kind == "moderation":
        assert RAI_MESSAGE in str(exc.value)


async def test_auth_failures(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    _, other_public = _keypair()
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        emu.public_keys[EMAIL] = other_public  # the service account's key was rotated away
        with pytest.raises(AuthError) as exc:
            await adapter.test_connection(creds(base_url))
        assert str(exc.value) == (
            "vertex: Google refused the service account's token request (invalid_grant: "
            "Invalid JWT Signature.). Run `sceneflow creds set USER vertex` with a valid, "
            "enabled key, then `sceneflow creds test USER vertex`"
        )
        no_secret(exc.value)
        emu.public_keys[EMAIL] = PUBLIC_KEY
        with pytest.raises(AuthError) as exc:
            await adapter.test_connection(creds(base_url, project="someone-else"))
        assert exc.value.status_code == 403 and "aiplatform.endpoints.predict" in str(exc.value)
        emu.tokens.clear()  # the server revoked the cached token: a 401
        with pytest.raises(AuthError) as exc:
            await adapter.submit(req(), creds(base_url))
        assert exc.value.status_code == 401
        no_secret(exc.value)
    assert emu.submissions == 0


async def test_credentials_shape_errors(served: tuple[VertexEmulator, str]) -> None:
    _, base_url = served
    adapter = VertexVeoAdapter(base_url=base_url)
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(Credentials({"project": "p", "location": "us-central1"}))
    assert "need 'service_account'" in str(exc.value)
    broken = service_account(base_url + "/token", private_key="-----BEGIN PRIVATE KEY-----\nxx")
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(
            Credentials({"service_account": broken, "project": "p", "location": "us-central1"})
        )
    assert "is not a usable service-account key" in str(exc.value)
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(creds(base_url, location=""))
    assert "no 'location' field" in str(exc.value)
    text = repr(creds(base_url)) + json.dumps(adapter.capabilities().model_dump())
    assert SECRET_MARK not in text


async def test_unreachable_token_endpoint_is_transient() -> None:
    adapter = VertexVeoAdapter(base_url="http://127.0.0.1:9")
    with pytest.raises(TransientError) as exc:
        await adapter.test_connection(creds("http://127.0.0.1:9"))
    assert "token endpoint" in str(exc.value)


def test_host_follows_the_location_without_a_base_url() -> None:
    adapter = VertexVeoAdapter()
    c = creds("http://unused")
    assert adapter._scope(c)[0] == "https://us-central1-aiplatform.googleapis.com/v1"
    c = creds("http://unused", location="global")
    assert adapter._scope(c)[0] == "https://aiplatform.googleapis.com/v1"
