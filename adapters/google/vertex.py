"""Google Veo on Vertex AI (`{location}-aiplatform.googleapis.com`).

Docs: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation
and https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/predictLongRunning;
checked against the official SDK `google-genai` 2.34.0 in Vertex mode (test_vertex_sdk.py).
The same `instances`/`parameters` body as the Gemini API (`veo_base.py`), but `seed` and `fps`
are accepted, a `gs://` first frame goes as `image.gcsUri`, and polling is
`POST ...:fetchPredictOperation {"operationName": ...}`.

Two ways in, chosen by the stored credentials (the SDK's `vertexai=True` client, the same two):
- a service account (`service_account`, `project`, `location`): OAuth2 bearer tokens minted by
  google-auth, project and location in every path;
- an API key (`api_key`): "express mode", the key in `x-goog-api-key` (the SDK's header; the
  docs' curl uses `?key=`) on `https://aiplatform.googleapis.com/v1/publishers/google/models/...`
  with no project or location (https://cloud.google.com/vertex-ai/generative-ai/docs/start/express-mode/vertex-ai-express-mode-api-reference).
  With `project` and `location` beside the key, the SDK keeps the project path and the regional
  host; so does this adapter. Whether Google serves Veo to every express-mode key is
  UNCONFIRMED (the express-mode pages list Gemini models).

Outputs come back inline as base64 in the finished operation unless the credentials carry
`storage_uri` (`gs://BUCKET/PREFIX/`): it is sent as `parameters.storageUri`, the operation then
names `gcsUri` objects, and `download` reads them through Cloud Storage's JSON API
(`GET {storage}/storage/v1/b/{bucket}/o/{object}?alt=media`) with the service account's token.
An API key cannot read a private bucket, so express mode refuses `storage_uri` before anything
is sent (that Cloud Storage takes no Vertex API key is UNCONFIRMED; none of its docs offer one).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from adapters.google.operations import FilteredMedia, Operation, error_reasons, result_of
from adapters.google.veo_base import VeoBase
from adapters.google.veo_models import VEO2, VEO3, VEO_FPS, ModelSpec
from sceneflow.errors import (
    AuthError,
    CredentialsError,
    ProviderError,
    RejectedError,
    TransientError,
)
from sceneflow.models import StandardVideoRequest, StandardVideoResult, gcs_bucket_problem
from sceneflow.providers import Capabilities, Credentials
from sceneflow.settings import get_settings

__all__ = ["VertexVeoAdapter"]

DEFAULT_LOCATION = "us-central1"
# Express mode's one host: no location, no project in the path.
GLOBAL_ROOT = "https://aiplatform.googleapis.com"
# Cloud Storage's JSON API, where `storageUri` outputs are read. SCENEFLOW_BASE_URLS__VERTEX_STORAGE
# (or the adapter's `storage_url`) points it elsewhere, e.g. at an emulator.
STORAGE_URL = "https://storage.googleapis.com"
STORAGE_SETTING = "vertex_storage"
# Docs use v1 (GA); the SDK defaults to v1beta1 but speaks v1 when told (test_vertex_sdk.py).
API_VERSION = "v1"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_MODEL = "veo-3.1-generate-001"
DRAFT_MODEL = "veo-3.1-fast-generate-001"
MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL: VEO3,
    DRAFT_MODEL: VEO3,
    "veo-2.0-generate-001": VEO2,
}
# Tokens live an hour; renew a little early so a poll never carries one that expires in flight.
TOKEN_MARGIN = 300
INLINE_PREFIX = "vertex-inline:"
_STORAGE_FORM = "gs://BUCKET/PREFIX/ (such as gs://my-bucket/sceneflow/)"
CREDENTIAL_FORMS = (
    '{"service_account": {<the JSON key file>}, "project": "...", "location": "us-central1"} '
    'or, for express mode, {"api_key": "..."}; either may add "storage_uri": '
    '"gs://BUCKET/PREFIX/" to have outputs written to Cloud Storage'
)


@dataclass(frozen=True)
class _Target:
    """Where and how the stored credentials reach Vertex."""

    mode: Literal["service_account", "api_key"]
    root: str  # {host}/v1
    scope: str  # "projects/{p}/locations/{l}/", or "" in express mode
    storage_uri: str | None


class _Video(BaseModel):
    gcsUri: str | None = None
    bytesBase64Encoded: str | None = None
    mimeType: str | None = None


class _Response(FilteredMedia):
    videos: list[_Video] = []


_Operation = Operation[_Response]


def _transport() -> Any:
    # google-auth sends its token request through an HTTP library it does not ship; SceneFlow
    # depends on `requests` for exactly this (pyproject.toml). google-auth (~0.1 s to import)
    # is imported only when a token is minted, so reading this adapter's capabilities is free.
    from google.auth.transport.requests import Request

    return Request()


def _mint(info: dict[str, Any]) -> tuple[str, float]:
    """A fresh access token and its expiry (epoch seconds), by google-auth's JWT-bearer grant
    against the service account's own `token_uri`. Blocking: run it in a thread."""
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    creds.refresh(_transport())
    expiry = creds.expiry.replace(tzinfo=UTC).timestamp() if creds.expiry else time.time() + 3600
    return str(creds.token), expiry


class VertexVeoAdapter(VeoBase):
    """Veo on Vertex AI; credentials are a service account plus project and location, or an
    API key (express mode). See the module docstring."""

    key = "vertex"
    default_base_url = f"https://{DEFAULT_LOCATION}-aiplatform.googleapis.com"
    models = MODELS
    default_model = DEFAULT_MODEL
    draft_model = DRAFT_MODEL
    native_seed_fps = True
    gcs_images = True
    audio_switch = True
    person_generation = ("dont_allow", "allow_adult", "allow_all")
    # The service-account form; express mode stores "api_key" instead (CREDENTIAL_FORMS).
    credential_fields = ("service_account", "project", "location")
    connection_test = (
        "service account: mints an OAuth token, then "
        f"GET /{API_VERSION}/projects/{{project}}/locations/{{location}}/models?pageSize=1, and "
        "with storage_uri lists one object under it in Cloud Storage; express mode (api_key): "
        f"GET /{API_VERSION}/publishers/google/models/{DEFAULT_MODEL}"
    )

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        storage_url: str | None = None,
    ) -> None:
        super().__init__(client=client, base_url=base_url)
        # Without a configured base URL the host follows the credentials' location.
        self._fixed_base = base_url is not None
        self._storage_url = storage_url.rstrip("/") if storage_url else None
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    @property
    def storage_url(self) -> str:
        """Cloud Storage's JSON API root: the argument, else the setting, else Google's."""
        if self._storage_url is None:
            urls = {k.lower(): v for k, v in get_settings().base_urls.items()}
            self._storage_url = (urls.get(STORAGE_SETTING) or STORAGE_URL).rstrip("/")
        return self._storage_url

    def capabilities(self) -> Capabilities:
        # Vertex reads a gs:// first frame itself (`image.gcsUri`): the contract's flag, which
        # `sceneflow.providers.validate_request` checks for every provider.
        return super().capabilities().model_copy(update={"gcs_images": True})

    def _problem(self, text: str) -> CredentialsError:
        return CredentialsError(
            f"Stored credentials for {self.key!r}: {text}. Run "
            f"`sceneflow creds set USER {self.key}` with {CREDENTIAL_FORMS}."
        )

    def _target(self, credentials: Credentials) -> _Target:
        """Which of the two forms the credentials are, checked whole: every problem at once."""
        problems: list[str] = []
        has_key = credentials.get("api_key") is not None
        has_account = credentials.get("service_account") is not None
        project, location = credentials.get("project"), credentials.get("location")
        if has_key and has_account:
            # The SDK refuses both as well ("mutually exclusive").
            problems.append("hold 'api_key' (express mode) or 'service_account', not both")
        elif has_key:
            if not isinstance(credentials.get("api_key"), str) or not credentials.get("api_key"):
                problems.append("'api_key' must be the API key as a string")
            if bool(project) != bool(location):
                problems.append(
                    "with 'api_key', give both 'project' and 'location' or neither "
                    "(express mode needs neither)"
                )
        elif not has_account:
            problems.append("hold neither 'service_account' nor 'api_key'")
        else:
            for name, value in (("project", project), ("location", location)):
                if not value or not isinstance(value, str):
                    problems.append(f"have no {name!r} field (a service account needs one)")
        storage_uri = credentials.get("storage_uri") or None
        if storage_uri is not None:
            if not isinstance(storage_uri, str) or not _storage_ok(storage_uri):
                problems.append(f"'storage_uri' must be a Cloud Storage prefix {_STORAGE_FORM}")
            elif has_key and not has_account:
                problems.append(
                    "'storage_uri' needs a service account: SceneFlow reads the outputs "
                    "through Cloud Storage's JSON API, which takes an OAuth token, not an API "
                    "key. Drop 'storage_uri' (videos then come back inline) or store a service "
                    "account"
                )
        if problems:
            raise self._problem("; ".join(problems))
        scoped = bool(project and location)
        if self._fixed_base:
            host = self.base_url
        elif not scoped or location == "global":
            host = GLOBAL_ROOT
        else:
            host = f"https://{location}-aiplatform.googleapis.com"
        return _Target(
            mode="api_key" if has_key else "service_account",
            root=f"{host}/{API_VERSION}",
            scope=f"projects/{project}/locations/{location}/" if scoped else "",
            storage_uri=storage_uri,
        )

    def _account(self, credentials: Credentials) -> dict[str, Any]:
        info = credentials.get("service_account")
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise self._problem(
                "'service_account' must be the JSON key file of a Google Cloud service "
                "account (type service_account)"
            )
        return info

    @staticmethod
    def _token_key(info: dict[str, Any]) -> tuple[str, str, str]:
        return (
            str(info.get("client_email")),
            str(info.get("private_key_id")),
            str(info.get("token_uri")),
        )

    async def _ensure_token(self, credentials: Credentials) -> None:
        info = self._account(credentials)
        key = self._token_key(info)
        cached = self._tokens.get(key)
        if cached and cached[1] - time.time() > TOKEN_MARGIN:
            return
        from google.auth import exceptions as google_auth

        try:
            self._tokens[key] = await asyncio.to_thread(_mint, info)
        except ValueError as e:
            # The message of a key-parsing failure is not shown: it could quote key material.
            raise CredentialsError(
                f"Stored credentials for {self.key!r}: 'service_account' is not a usable "
                "service-account key (it needs client_email, private_key, private_key_id and "
                "token_uri as in the downloaded JSON file). Run "
                f"`sceneflow creds set USER {self.key}` with the whole JSON key file."
            ) from e
        except google_auth.RefreshError as e:
            reason = str(e.args[0]) if e.args else "refused"
            if e.retryable:
                raise TransientError(
                    f"{self.key}: the token endpoint failed ({reason}); will retry",
                    provider=self.key,
                ) from e
            raise AuthError(
                f"{self.key}: Google refused the service account's token request ({reason}). "
                f"Run `sceneflow creds set USER {self.key}` with a valid, enabled key, then "
                f"`sceneflow creds test USER {self.key}`",
                provider=self.key,
            ) from e
        except google_auth.TransportError as e:
            raise TransientError(
                f"{self.key}: could not reach the token endpoint ({type(e).__name__}); will retry",
                provider=self.key,
            ) from e

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        """The API key in express mode, else the cached bearer token (every call awaits
        `_ensure_token` first)."""
        if credentials.get("api_key") is not None:
            return {"x-goog-api-key": str(credentials.get("api_key")).strip()}
        token, _ = self._tokens[self._token_key(self._account(credentials))]
        return {"Authorization": f"Bearer {token}"}

    def raise_for_status(self, response: httpx.Response, *, submit: bool = False) -> None:
        # Google answers a wrong or expired API key with 400 INVALID_ARGUMENT, not 401.
        if response.status_code == 400 and "API_KEY_" in error_reasons(response):
            raise AuthError(
                f"{self.key} answered HTTP 400: {self.error_message(response)}. The stored key "
                f"was rejected: run `sceneflow creds set USER {self.key}` with a valid key, "
                f"then `sceneflow creds test USER {self.key}`",
                provider=self.key,
                status_code=400,
            )
        super().raise_for_status(response, submit=submit)

    async def _call(
        self, method: str, path: str, credentials: Credentials, **kw: Any
    ) -> httpx.Response:
        """One authenticated call on `{root}/v1/{path}`; `path` may start with the scope."""
        target = self._target(credentials)
        if target.mode == "service_account":
            await self._ensure_token(credentials)
        return await self.request(method, f"{target.root}/{path}", credentials=credentials, **kw)

    def extra_problems(self, request: StandardVideoRequest, where: str) -> list[str]:
        if request.fps != VEO_FPS:
            return [f"fps: {where} renders {VEO_FPS} fps only; allowed: {VEO_FPS}"]
        return []

    def extra_parameters(self, request: StandardVideoRequest, spec: ModelSpec) -> dict[str, Any]:
        """`seed` and `fps` when asked for, and `generateAudio` for Veo 3 models.

        `generateAudio` is the request's `audio` when it is set. Unset, Veo 3 still gets one:
        Google's Veo API reference
        (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation,
        the `parameters` table) says "generateAudio: Required for Veo 3 models ... Accepts true
        or false" and names no default, so leaving it out is not "the provider's default" but a
        request Google documents as incomplete. The official SDK has no default of its own
        either (google-genai 2.34.0 sends it only when `generate_audio` is set,
        `_GenerateVideosConfig_to_vertex`). SceneFlow then sends `true`, the clip the Gemini API
        makes for the same request, and says so in its field table (`sceneflow providers
        vertex`); `audio` off asks for the silent, cheaper clip. veo-2.0 takes no
        `generateAudio` (the same table), so nothing is sent for it.
        """
        extra: dict[str, Any] = {}
        if request.seed is not None:
            extra["seed"] = request.seed
        if "fps" in request.model_fields_set:
            extra["fps"] = request.fps
        if spec.audio:
            extra["generateAudio"] = True if request.audio is None else request.audio
        return extra

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        self.validate(request)
        target = self._target(credentials)  # bad credentials fail before anything is sent
        body = await self.build_body(request)
        if target.storage_uri:
            body["parameters"]["storageUri"] = target.storage_uri
        model = self.model_for(request)
        path = f"{target.scope}publishers/google/models/{model}:predictLongRunning"
        response = await self._call("POST", path, credentials, json=body, submit=True)
        return str(self.parse(_Operation, response, "operation", submit=True).name)

    async def _operation(self, provider_job_id: str, credentials: Credentials) -> _Operation:
        resource = provider_job_id.rpartition("/operations/")[0]
        if not resource:
            raise ProviderError(
                f"{self.key}: {provider_job_id!r} is not a Vertex operation name",
                provider=self.key,
            )
        response = await self._call(
            "POST",
            f"{resource}:fetchPredictOperation",
            credentials,
            json={"operationName": provider_job_id},
        )
        return self.parse(_Operation, response)

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        op = await self._operation(provider_job_id, credentials)
        response = op.response or _Response()
        # A storageUri output is a gs:// object, named in the result. Inline bytes stay in the
        # operation; download() fetches it again rather than keeping megabytes of base64 here.
        stored = next((v.gcsUri for v in response.videos if v.gcsUri), None)
        inline = any(v.bytesBase64Encoded for v in response.videos)
        video_url = stored or (INLINE_PREFIX + op.name if inline else None)
        return result_of(
            op, response, provider=self.key, video_url=video_url, samples=len(response.videos)
        )

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        url = result.video_url or ""
        if url.startswith("gs://"):
            return await self._download_object(url, credentials, destination)
        if not url.startswith(INLINE_PREFIX):
            raise ProviderError(
                f"{self.key}: the job {result.provider_job_id} has no video to download "
                "(neither inline bytes nor a gs:// object)",
                provider=self.key,
            )
        op = await self._operation(url.removeprefix(INLINE_PREFIX), credentials)
        videos = op.response.videos if op.response else []
        encoded = next((v.bytesBase64Encoded for v in videos if v.bytesBase64Encoded), None)
        if encoded is None:
            raise ProviderError(
                f"{self.key}: the operation {op.name} holds no inline video",
                provider=self.key,
            )
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error as e:
            raise TransientError(
                f"{self.key}: the video bytes in operation {op.name} are not valid base64",
                provider=self.key,
            ) from e
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        partial.write_bytes(data)
        partial.replace(destination)
        return destination

    async def _download_object(self, uri: str, credentials: Credentials, destination: Path) -> Path:
        """A `storageUri` output, read through Cloud Storage's JSON API with the same token."""
        target = self._target(credentials)
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if target.mode != "service_account":
            raise self._problem(
                f"the video is in Cloud Storage ({uri}), and reading it needs a service "
                "account; an API key cannot"
            )
        if not bucket or not name:
            raise ProviderError(
                f"{self.key}: {uri!r} is not a Cloud Storage object", provider=self.key
            )
        await self._ensure_token(credentials)
        url = (
            f"{self.storage_url}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}"
            f"/o/{urllib.parse.quote(name, safe='')}?alt=media"
        )
        try:
            return await self.fetch_to_file(
                url, destination, headers=self.auth_headers(credentials)
            )
        except (AuthError, RejectedError) as e:
            raise _storage_refusal(e, f"read {uri}", bucket) from e

    async def test_connection(self, credentials: Credentials) -> None:
        target = self._target(credentials)
        if target.mode == "api_key" and not target.scope:
            # Express mode has no project to list in; read the default model instead, as the
            # SDK's models.get does (that express keys may call it is UNCONFIRMED).
            await self._call("GET", f"publishers/google/models/{DEFAULT_MODEL}", credentials)
            return
        await self._call("GET", f"{target.scope}models", credentials, params={"pageSize": 1})
        if target.storage_uri:
            # The outputs will be read with this token: find out now, not after paying.
            bucket, _, prefix = target.storage_uri.removeprefix("gs://").partition("/")
            try:
                await self.request(
                    "GET",
                    f"{self.storage_url}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o",
                    credentials=credentials,
                    params={"prefix": prefix, "maxResults": 1},
                )
            except (AuthError, RejectedError) as e:
                raise _storage_refusal(e, f"list {target.storage_uri}", bucket) from e


def _storage_refusal(error: AuthError | RejectedError, what: str, bucket: str) -> ProviderError:
    """Cloud Storage's refusal, said as what to fix: it is the bucket's permissions, not the
    key, that a 403 there points at."""
    said = str(error).partition(": ")[2].partition(". The stored key was rejected")[0]
    return type(error)(
        f"vertex: Cloud Storage would not let the service account {what} (HTTP "
        f"{error.status_code}: {said}). Grant it roles/storage.objectViewer on gs://{bucket} "
        "(and make sure the object exists), then try again",
        provider="vertex",
        status_code=error.status_code,
    )


def _storage_ok(uri: str) -> bool:
    """`uri` is gs://BUCKET or gs://BUCKET/PREFIX with a valid bucket name and no blanks."""
    if not uri.startswith("gs://") or any(ch.isspace() for ch in uri):
        return False
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    parts = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
    # Bucket names by Google's rules, as the request's gs:// first frames are checked.
    return gcs_bucket_problem(bucket) is None and all(part not in ("", ".", "..") for part in parts)
