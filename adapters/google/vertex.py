"""Google Veo on Vertex AI (`{location}-aiplatform.googleapis.com`).

Docs: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation
and https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/predictLongRunning;
checked against the official SDK `google-genai` 2.34.0 in Vertex mode (test_vertex_sdk.py).
The same `instances`/`parameters` body as the Gemini API (`veo_base.py`), but: OAuth2 bearer
tokens minted from a service account, project/location in every path, `seed` and `fps`
accepted, polling by `POST ...:fetchPredictOperation {"operationName": ...}`, and the video
comes back inline as base64 in the finished operation (we never set `storageUri`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from adapters.google.operations import FilteredMedia, Operation, result_of
from adapters.google.veo_base import VeoBase
from adapters.google.veo_models import VEO2, VEO3, VEO_FPS, ModelSpec
from sceneflow.errors import (
    AuthError,
    CredentialsError,
    ProviderError,
    TransientError,
)
from sceneflow.models import StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials

__all__ = ["VertexVeoAdapter"]

DEFAULT_LOCATION = "us-central1"
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
    """Veo on Vertex AI; credentials are a service account plus project and location."""

    key = "vertex"
    default_base_url = f"https://{DEFAULT_LOCATION}-aiplatform.googleapis.com"
    models = MODELS
    default_model = DEFAULT_MODEL
    draft_model = DRAFT_MODEL
    native_seed_fps = True
    credential_fields = ("service_account", "project", "location")
    connection_test = (
        "mints an OAuth token from the service account, then "
        f"GET /{API_VERSION}/projects/{{project}}/locations/{{location}}/models?pageSize=1"
    )

    def __init__(
        self, *, client: httpx.AsyncClient | None = None, base_url: str | None = None
    ) -> None:
        super().__init__(client=client, base_url=base_url)
        # Without a configured base URL the host follows the credentials' location.
        self._fixed_base = base_url is not None
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def _account(self, credentials: Credentials) -> dict[str, Any]:
        info = credentials.get("service_account")
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise CredentialsError(
                f"Stored credentials for {self.key!r} need 'service_account': the JSON key "
                "file of a Google Cloud service account (type service_account). Run "
                f"`sceneflow creds set USER {self.key}` with "
                '{"service_account": {...}, "project": "...", "location": "us-central1"}.'
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
        """The cached bearer token; every call awaits `_ensure_token` first."""
        token, _ = self._tokens[self._token_key(self._account(credentials))]
        return {"Authorization": f"Bearer {token}"}

    def _scope(self, credentials: Credentials) -> tuple[str, str]:
        project = credentials.require("project", provider=self.key)
        location = credentials.require("location", provider=self.key)
        if self._fixed_base:
            root = self.base_url
        elif location == "global":
            root = "https://aiplatform.googleapis.com"
        else:
            root = f"https://{location}-aiplatform.googleapis.com"
        return f"{root}/{API_VERSION}", f"projects/{project}/locations/{location}"

    async def _call(
        self, method: str, path: str, credentials: Credentials, **kw: Any
    ) -> httpx.Response:
        """One authenticated call on `{root}/v1/{path}`."""
        root, _ = self._scope(credentials)
        await self._ensure_token(credentials)
        return await self.request(method, f"{root}/{path}", credentials=credentials, **kw)

    def extra_problems(self, request: StandardVideoRequest, where: str) -> list[str]:
        if request.fps != VEO_FPS:
            return [f"fps: {where} renders {VEO_FPS} fps only; allowed: {VEO_FPS}"]
        return []

    def extra_parameters(self, request: StandardVideoRequest, spec: ModelSpec) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if request.seed is not None:
            extra["seed"] = request.seed
        if "fps" in request.model_fields_set:
            extra["fps"] = request.fps
        if spec.audio:
            extra["generateAudio"] = True
        return extra

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        self.validate(request)
        body = await self.build_body(request)
        _, scope = self._scope(credentials)
        path = f"{scope}/publishers/google/models/{self.model_for(request)}:predictLongRunning"
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
        # The bytes stay in the operation; download() fetches it again rather than keeping
        # megabytes of base64 in the result.
        video_url = INLINE_PREFIX + op.name if response.videos else None
        return result_of(
            op, response, provider=self.key, video_url=video_url, samples=len(response.videos)
        )

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        url = result.video_url or ""
        if not url.startswith(INLINE_PREFIX):
            raise ProviderError(
                f"{self.key}: the job {result.provider_job_id} has no inline video to download",
                provider=self.key,
            )
        op = await self._operation(url.removeprefix(INLINE_PREFIX), credentials)
        videos = op.response.videos if op.response else []
        encoded = next((v.bytesBase64Encoded for v in videos if v.bytesBase64Encoded), None)
        if encoded is None:
            raise ProviderError(
                f"{self.key}: the operation {op.name} holds no inline video (a storageUri set "
                "elsewhere sends it to Cloud Storage instead; SceneFlow never sets one)",
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

    async def test_connection(self, credentials: Credentials) -> None:
        _, scope = self._scope(credentials)
        await self._call("GET", f"{scope}/models", credentials, params={"pageSize": 1})
