"""VertexVeoAdapter against the Vertex emulator over real HTTP: google-auth mints the token from a
fake service account (an RSA key made here) at the emulator's OAuth2 endpoint; express mode sends
the emulator's API key; storageUri outputs are read from its fake Cloud Storage JSON API."""

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

from adapters.google.gemini import VeoAdapter
from adapters.google.vertex import STORAGE_URL, VertexVeoAdapter
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
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials, validate_request
from sceneflow.settings import get_settings
from tests.support.emulators._base import sample_mp4, serve
from tests.support.emulators.vertex import RAI_MESSAGE, RAI_REASON, VertexEmulator

EMAIL = "sceneflow@sf-proj.iam.gserviceaccount.com"
MODEL_PATH = "/v1/projects/sf-proj/locations/us-central1/publishers/google/models"
EXPRESS_PATH = "/v1/publishers/google/models"
API_KEY = "vertex-express-test-key"


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


def express(**kw: Any) -> Credentials:
    return Credentials({"api_key": API_KEY} | kw)


def req(**kw: object) -> StandardVideoRequest:
    base: dict[str, object] = {"prompt": "A red fox runs", "aspect_ratio": "9:16", "duration": 8}
    base["motion_intensity"] = 5
    return StandardVideoRequest.model_validate(base | kw)


def gs_req(image_url: str, **kw: object) -> StandardVideoRequest:
    """A request with a gs:// first frame put in past the request model's own check, for the
    adapter's checks of URLs the model already refuses (a bucket with no object)."""
    return req(**kw).model_copy(update={"image_url": image_url})


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
    assert fields["image_url"].note.startswith("gs:// sent as instances[0].image.gcsUri")
    assert "express mode (api_key)" in caps.connection_test


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
    assert str(exc.value).startswith(
        "Stored credentials for 'vertex': hold neither 'service_account' nor 'api_key'. Run "
        "`sceneflow creds set USER vertex` with "
        '{"service_account": {<the JSON key file>}, "project": "...", "location": "us-central1"}'
        ' or, for express mode, {"api_key": "..."}'
    )
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(Credentials({"service_account": "not a dict"} | SCOPE))
    assert "'service_account' must be the JSON key file of a Google Cloud service" in str(exc.value)
    broken = service_account(base_url + "/token", private_key="-----BEGIN PRIVATE KEY-----\nxx")
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(
            Credentials({"service_account": broken, "project": "p", "location": "us-central1"})
        )
    assert "is not a usable service-account key" in str(exc.value)
    with pytest.raises(CredentialsError) as exc:
        await adapter.test_connection(creds(base_url, location=""))
    assert "have no 'location' field (a service account needs one)" in str(exc.value)
    text = repr(creds(base_url)) + json.dumps(adapter.capabilities().model_dump())
    assert SECRET_MARK not in text


SCOPE = {"project": "sf-proj", "location": "us-central1"}


async def test_every_credential_problem_is_named_at_once(
    served: tuple[VertexEmulator, str],
) -> None:
    emu, base_url = served
    sa = service_account(base_url + "/token")
    adapter = VertexVeoAdapter(base_url=base_url)
    cases = {
        "both": (
            {"api_key": API_KEY, "service_account": sa} | SCOPE,
            ["hold 'api_key' (express mode) or 'service_account', not both"],
        ),
        "half scope and bad storage": (
            {"api_key": API_KEY, "project": "sf-proj", "storage_uri": "s3://bucket/x"},
            [
                "with 'api_key', give both 'project' and 'location' or neither (express mode "
                "needs neither)",
                "'storage_uri' must be a Cloud Storage prefix gs://BUCKET/PREFIX/ (such as "
                "gs://my-bucket/sceneflow/)",
            ],
        ),
        "express with storage": (
            {"api_key": API_KEY, "storage_uri": "gs://sf-bucket/out/"},
            [
                "'storage_uri' needs a service account: SceneFlow reads the outputs through "
                "Cloud Storage's JSON API, which takes an OAuth token, not an API key. Drop "
                "'storage_uri' (videos then come back inline) or store a service account"
            ],
        ),
        "no project, bad bucket": (
            {"service_account": sa, "location": "us-central1", "storage_uri": "gs://No_Caps/"},
            [
                "have no 'project' field (a service account needs one)",
                "'storage_uri' must be a Cloud Storage prefix gs://BUCKET/PREFIX/ (such as "
                "gs://my-bucket/sceneflow/)",
            ],
        ),
    }
    for name, (values, problems) in cases.items():
        with pytest.raises(CredentialsError) as exc:
            await adapter.submit(req(), Credentials(values))
        assert str(exc.value).startswith(
            "Stored credentials for 'vertex': " + "; ".join(problems) + ". Run `sceneflow"
        ), name
        assert API_KEY not in str(exc.value) and SECRET_MARK not in str(exc.value)
    # Refused before anything was sent, not even a token request.
    assert emu.submissions == 0 and emu.token_requests == 0 and emu.recorded == []


@pytest.mark.parametrize(
    "uri",
    ["gs://sf-bucket", "gs://sf-bucket/", "gs://sf-bucket/a/b/", "gs://my.bucket.example/x"],
)
def test_storage_uri_forms_accepted(uri: str) -> None:
    target = VertexVeoAdapter()._target(creds("http://unused", storage_uri=uri))
    assert target.storage_uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "sf-bucket/out/",
        "gs://",
        "gs://ab",
        "gs://-bucket/x",
        "gs://sf-bucket/a//b",
        "gs://sf-bucket/../x",
        "gs://sf bucket/x",
        "gs://" + "a" * 64,
        "https://storage.googleapis.com/sf-bucket/x",
    ],
)
def test_storage_uri_forms_refused(uri: str) -> None:
    with pytest.raises(CredentialsError) as exc:
        VertexVeoAdapter()._target(creds("http://unused", storage_uri=uri))
    assert "'storage_uri' must be a Cloud Storage prefix gs://BUCKET/PREFIX/" in str(exc.value)


async def test_express_mode_lifecycle(served: tuple[VertexEmulator, str], tmp_path: Path) -> None:
    emu, base_url = served
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(req(seed=7), express())
        await asyncio.sleep(0.35)
        done = await adapter.status(job_id, express())
        out = await adapter.download(done, express(), tmp_path / "v.mp4")
        await adapter.test_connection(express())
    submit, poll, fetch, check = emu.recorded
    assert (submit.method, submit.path) == (
        "POST",
        f"{EXPRESS_PATH}/veo-3.1-generate-001:predictLongRunning",
    )
    for call in emu.recorded:
        assert call.headers["x-goog-api-key"] == API_KEY and "authorization" not in call.headers
        assert "key=" not in call.query
    assert submit.body["parameters"]["generateAudio"] is True
    assert submit.body["parameters"]["seed"] == 7
    assert job_id == f"{EXPRESS_PATH[4:]}/veo-3.1-generate-001/operations/{next(iter(emu.jobs))}"
    assert (poll.path, poll.body) == (
        f"{EXPRESS_PATH}/veo-3.1-generate-001:fetchPredictOperation",
        {"operationName": job_id},
    )
    assert done.status is JobStatus.COMPLETED and fetch.path == poll.path
    assert out.read_bytes() == sample_mp4(seconds=8)
    assert (check.method, check.path) == ("GET", f"{EXPRESS_PATH}/veo-3.1-generate-001")
    assert emu.token_requests == 0 and emu.submissions == 1


async def test_express_key_with_project_keeps_the_project_path(
    served: tuple[VertexEmulator, str],
) -> None:
    emu, base_url = served
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        job_id = await adapter.submit(req(), express(**SCOPE))
        await adapter.status(job_id, express(**SCOPE))
        await adapter.test_connection(express(**SCOPE))
    assert [r.path for r in emu.recorded] == [
        f"{MODEL_PATH}/veo-3.1-generate-001:predictLongRunning",
        f"{MODEL_PATH}/veo-3.1-generate-001:fetchPredictOperation",
        "/v1/projects/sf-proj/locations/us-central1/models",
    ]
    assert all(r.headers["x-goog-api-key"] == API_KEY for r in emu.recorded)


async def test_express_mode_rejected_key(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    wrong = Credentials({"api_key": "not-the-right-key-123"})
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        with pytest.raises(AuthError) as exc:
            await adapter.test_connection(wrong)
        assert str(exc.value) == (
            "vertex answered HTTP 400: API key not valid. Please pass a valid API key.. The "
            "stored key was rejected: run `sceneflow creds set USER vertex` with a valid key, "
            "then `sceneflow creds test USER vertex`"
        )
        with pytest.raises(AuthError):
            await adapter.submit(req(), wrong)
    assert "not-the-right-key-123" not in str(exc.value) + repr(exc.value)
    assert emu.submissions == 0


async def test_storage_uri_output_is_read_from_cloud_storage(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    c = creds(base_url, storage_uri="gs://sf-bucket/sceneflow/")
    async with VertexVeoAdapter(base_url=base_url, storage_url=base_url) as adapter:
        await adapter.test_connection(c)
        job_id = await adapter.submit(req(duration=6), c)
        await asyncio.sleep(0.35)
        done = await adapter.status(job_id, c)
        out = await adapter.download(done, c, tmp_path / "v.mp4")
    listing, submit = emu.recorded[1], emu.recorded[2]
    assert (listing.path, listing.query) == (
        "/storage/v1/b/sf-bucket/o",
        "prefix=sceneflow%2F&maxResults=1",
    )
    assert submit.body["parameters"]["storageUri"] == "gs://sf-bucket/sceneflow/"
    object_name = f"sceneflow/{next(iter(emu.jobs))}/sample_0.mp4"
    assert done.video_url == f"gs://sf-bucket/{object_name}"
    assert done.status is JobStatus.COMPLETED and done.provider_details == {"samples": 1}
    fetch = emu.recorded[-1]
    # The object name is one escaped path segment, as the JSON API wants it.
    assert fetch.path == f"/storage/v1/b/sf-bucket/o/{object_name}" and fetch.query == "alt=media"
    assert fetch.headers["authorization"].removeprefix("Bearer ") in emu.tokens
    assert out.read_bytes() == sample_mp4(seconds=6)
    assert emu.token_requests == 1  # the same token reads Vertex and Cloud Storage


async def test_cloud_storage_refusals_say_what_to_fix(
    served: tuple[VertexEmulator, str], tmp_path: Path
) -> None:
    emu, base_url = served
    c = creds(base_url, storage_uri="gs://sf-bucket/out")
    async with VertexVeoAdapter(base_url=base_url, storage_url=base_url) as adapter:
        job_id = await adapter.submit(req(), c)
        await asyncio.sleep(0.35)
        done = await adapter.status(job_id, c)
        emu.readable_buckets.clear()  # the service account lost read access to the bucket
        with pytest.raises(AuthError) as exc:
            await adapter.download(done, c, tmp_path / "v.mp4")
        assert str(exc.value) == (
            f"vertex: Cloud Storage would not let the service account read {done.video_url} "
            "(HTTP 403: The caller does not have storage.objects.get access to the Google Cloud"
            " Storage bucket sf-bucket. Permission 'storage.objects.get' denied.). Grant it "
            "roles/storage.objectViewer on gs://sf-bucket (and make sure the object exists), "
            "then try again"
        )
        no_secret(exc.value)
        with pytest.raises(AuthError) as exc:
            await adapter.test_connection(c)
        assert "would not let the service account list gs://sf-bucket/out" in str(exc.value)
        emu.readable_buckets.add("sf-bucket")
        emu.objects.clear()  # deleted by a lifecycle rule
        with pytest.raises(RejectedError) as missing:
            await adapter.download(done, c, tmp_path / "v.mp4")
        assert missing.value.status_code == 404 and "No such object: sf-bucket/out/" in str(
            missing.value
        )
        # A gs:// output cannot be read with an API key: said, not sent with the key.
        with pytest.raises(CredentialsError) as keyed:
            await adapter.download(done, express(), tmp_path / "v.mp4")
        assert "reading it needs a service account; an API key cannot" in str(keyed.value)
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.glob("*.part"))


def test_storage_host_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert VertexVeoAdapter().storage_url == STORAGE_URL
    monkeypatch.setenv("SCENEFLOW_BASE_URLS__VERTEX_STORAGE", "http://127.0.0.1:9/")
    get_settings.cache_clear()
    try:
        assert VertexVeoAdapter().storage_url == "http://127.0.0.1:9"
        assert VertexVeoAdapter(storage_url="http://127.0.0.1:8").storage_url == (
            "http://127.0.0.1:8"
        )
    finally:
        get_settings.cache_clear()


async def test_gcs_first_frame_is_sent_as_gcs_uri(served: tuple[VertexEmulator, str]) -> None:
    emu, base_url = served
    emu.objects[("sf-bucket", "frames/fox.PNG")] = b"\x89PNG"
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        await adapter.submit(gs_req("gs://sf-bucket/frames/fox.PNG"), creds(base_url))
        await adapter.submit(req(image_url="data:image/webp;base64,UklG"), creds(base_url))
        with pytest.raises(RejectedError) as exc:
            await adapter.submit(gs_req("gs://sf-bucket/frames/gone.jpg"), creds(base_url))
    assert emu.recorded[0].body["instances"] == [
        {
            "prompt": "A red fox runs",
            "image": {"gcsUri": "gs://sf-bucket/frames/fox.PNG", "mimeType": "image/png"},
        }
    ]
    # data: URLs stay inline, as before.
    assert emu.recorded[1].body["instances"][0]["image"] == {
        "bytesBase64Encoded": "UklG",
        "mimeType": "image/webp",
    }
    assert "Unable to read the image at gs://sf-bucket/frames/gone.jpg" in str(exc.value)
    assert emu.submissions == 2


async def test_a_gs_first_frame_reaches_vertex_through_the_request_and_the_contract(
    served: tuple[VertexEmulator, str],
) -> None:
    """End to end: the request model accepts the gs:// URL, validate_request passes it (Vertex
    declares gcs_images), and the submit sends it as instances[0].image.gcsUri over HTTP."""
    emu, base_url = served
    emu.objects[("sf-bucket", "frames/fox.webp")] = b"RIFF"
    request = StandardVideoRequest.model_validate(
        {
            "prompt": "A red fox runs",
            "aspect_ratio": "9:16",
            "motion_intensity": 5,
            "duration": 8,
            "image_url": "gs://sf-bucket/frames/fox.webp",
        }
    )
    async with VertexVeoAdapter(base_url=base_url) as adapter:
        assert adapter.capabilities().gcs_images
        warnings = validate_request(adapter, request, strict=False)
        job_id = await adapter.submit(request, creds(base_url))
        assert (await adapter.status(job_id, creds(base_url))).provider_job_id == job_id
    assert warnings == [
        "motion_intensity: vertex has no equivalent setting; not sent; describe the motion in "
        "the prompt"
    ]
    (sent,) = [r for r in emu.recorded if r.path.endswith(":predictLongRunning")]
    assert sent.body["instances"][0]["image"] == {
        "gcsUri": "gs://sf-bucket/frames/fox.webp",
        "mimeType": "image/webp",
    }
    assert emu.submissions == 1


def test_gcs_first_frame_validation() -> None:
    with pytest.raises(RequestValidationError) as exc:
        VertexVeoAdapter().validate(gs_req("gs://sf-bucket/frames/fox.gif", duration=9))
    assert exc.value.problems == [
        "duration: vertex model veo-3.1-generate-001 makes 4, 6, 8 second videos, not 9",
        "image_url: a gs:// image must end in .jpg, .jpeg, .png, .webp so its mimeType is known",
    ]
    for url in ("gs://sf-bucket", "gs://sf-bucket/", "gs://sf-bucket/frames/"):
        with pytest.raises(RequestValidationError) as exc:
            VertexVeoAdapter().validate(gs_req(url))
        assert exc.value.problems == [
            "image_url: a gs:// image must name an object: gs://BUCKET/PATH/FILE.png"
        ]
    # The Gemini API takes no gs:// image (its SDK refuses gcs_uri): said before sending.
    with pytest.raises(RequestValidationError) as exc:
        VeoAdapter().validate(gs_req("gs://sf-bucket/frames/fox.png"))
    assert exc.value.problems == [
        "image_url: veo cannot read a gs:// image (only Vertex AI reads Cloud Storage); use an "
        "http(s) or data: URL, or the provider vertex"
    ]


async def test_unreachable_token_endpoint_is_transient() -> None:
    adapter = VertexVeoAdapter(base_url="http://127.0.0.1:9")
    with pytest.raises(TransientError) as exc:
        await adapter.test_connection(creds("http://127.0.0.1:9"))
    assert "token endpoint" in str(exc.value)


def test_host_follows_the_location_without_a_base_url() -> None:
    adapter = VertexVeoAdapter()
    c = creds("http://unused")
    assert adapter._target(c).root == "https://us-central1-aiplatform.googleapis.com/v1"
    c = creds("http://unused", location="global")
    assert adapter._target(c).root == "https://aiplatform.googleapis.com/v1"
    # Express mode: the global host and no project or location, as the SDK (and the express
    # mode REST reference) has it; with both beside the key, the SDK keeps the regional scope.
    target = adapter._target(express())
    assert (target.mode, target.root, target.scope) == (
        "api_key",
        "https://aiplatform.googleapis.com/v1",
        "",
    )
    target = adapter._target(express(project="sf-proj", location="europe-west4"))
    assert (target.root, target.scope) == (
        "https://europe-west4-aiplatform.googleapis.com/v1",
        "projects/sf-proj/locations/europe-west4/",
    )
