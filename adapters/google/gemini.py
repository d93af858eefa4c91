"""Google Veo through the Gemini Developer API (generativelanguage.googleapis.com).

Docs: https://ai.google.dev/gemini-api/docs/video. Wire format checked against the official SDK
`google-genai` 2.34.0 (`models.py`, `operations.py`, `files.py`), the last SDK line that speaks
it: 3.x refuses video in API-key mode. A generation is a long-running operation
(`operations.py`): `POST /v1beta/models/{model}:predictLongRunning`, then
`GET /v1beta/{operation name}` until `done`. There is no progress and no cancel. Outputs are
Gemini Files that need the API key.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from pydantic import BaseModel

from adapters.base import require_output_url
from adapters.google.operations import FilteredMedia, Operation, error_reasons, result_of
from adapters.google.veo_base import VeoBase
from adapters.google.veo_models import VEO2, VEO3, ModelSpec
from sceneflow.errors import AuthError, ProviderError
from sceneflow.models import StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials

__all__ = ["VeoAdapter"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
DEFAULT_MODEL = "veo-3.1-generate-preview"
# quality="draft" without an explicit model picks the cheaper, faster tier.
DRAFT_MODEL = "veo-3.1-fast-generate-preview"
MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL: VEO3,
    DRAFT_MODEL: VEO3,
    "veo-2.0-generate-001": VEO2,
}
_FILE_ID = re.compile(r"/files/([a-z0-9]+)")


class _Video(BaseModel):
    uri: str | None = None


class _Sample(BaseModel):
    video: _Video | None = None


class _GenerateVideoResponse(FilteredMedia):
    generatedSamples: list[_Sample] = []


class _Response(BaseModel):
    generateVideoResponse: _GenerateVideoResponse | None = None


_Operation = Operation[_Response]


class VeoAdapter(VeoBase):
    """Veo on the Gemini Developer API; one API key in `x-goog-api-key`."""

    key = "veo"
    default_base_url = DEFAULT_BASE_URL
    models = MODELS
    default_model = DEFAULT_MODEL
    draft_model = DRAFT_MODEL
    native_seed_fps = False
    credential_fields = ("api_key",)
    connection_test = f"GET /{API_VERSION}/models (lists models with the key)"

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        return {"x-goog-api-key": credentials.require("api_key", provider=self.key)}

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

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        self.validate(request)
        body = await self.build_body(request)
        url = f"/{API_VERSION}/models/{self.model_for(request)}:predictLongRunning"
        response = await self.request("POST", url, credentials=credentials, json=body, submit=True)
        return self.parse(_Operation, response, "operation", submit=True).name

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        response = await self.request(
            "GET", f"/{API_VERSION}/{provider_job_id}", credentials=credentials
        )
        op = self.parse(_Operation, response)
        generated = op.response.generateVideoResponse if op.response else None
        generated = generated or _GenerateVideoResponse()
        uris = [s.video.uri for s in generated.generatedSamples if s.video and s.video.uri]
        first = uris[0] if uris else None
        return result_of(op, generated, provider=self.key, video_url=first, samples=len(uris))

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        # Rebuild the URL on our own base, as the SDK does, so the key goes nowhere else.
        match = _FILE_ID.search(require_output_url(result, self.key))
        if match is None:
            raise ProviderError(
                f"{self.key}: the output of {result.provider_job_id} is not a Gemini file URI",
                provider=self.key,
            )
        url = f"{self.base_url}/{API_VERSION}/files/{match.group(1)}:download?alt=media"
        return await self.fetch_to_file(url, destination, headers=self.auth_headers(credentials))

    async def test_connection(self, credentials: Credentials) -> None:
        params = {"pageSize": 1}
        await self.request("GET", f"/{API_VERSION}/models", credentials=credentials, params=params)
