"""Google Veo through the Gemini Developer API (generativelanguage.googleapis.com).

Wire format: `/work/shared/reference/providers.md` §2a, checked against google-genai 2.x, the last
SDK line that speaks it (3.x refuses video in API-key mode). A generation is a long-running
operation: `POST /v1beta/models/{model}:predictLongRunning`, then `GET /v1beta/{operation name}`
until `done`. There is no progress and no cancel. Outputs are Gemini Files that need the API key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from adapters.base import HttpAdapter, compose_prompt, require_output_url, unsupported_warning
from adapters.fields import field_table, mapped, native, unsupported
from sceneflow.errors import AuthError, ProviderError, RequestValidationError, TransientError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, ModelCapabilities

__all__ = ["VeoAdapter"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
DEFAULT_MODEL = "veo-3.1-generate-preview"
# quality="draft" without an explicit model picks the cheaper, faster tier.
DRAFT_MODEL = "veo-3.1-fast-generate-preview"
VEO_FPS = 24
_FILE_ID = re.compile(r"/files/([a-z0-9]+)")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True)
class ModelSpec:
    """Per-model limits (Gemini video docs and the Vertex model pages, providers.md §2)."""

    durations: tuple[int, ...]
    resolutions: tuple[str, ...] = ("720p", "1080p")
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    # Veo 3.x renders 1080p only as an 8-second clip.
    full_hd_duration: int | None = 8
    # Veo 2 has one resolution and no `resolution` parameter.
    sends_resolution: bool = True
    # Veo 3.x makes sound. The Gemini API always adds it; Vertex documents `generateAudio` as
    # required for Veo 3 models, so the Vertex adapter asks for it to give the same clips.
    audio: bool = True


VEO3 = ModelSpec(durations=(4, 6, 8))
VEO2 = ModelSpec(
    (5, 6, 7, 8), ("720p",), full_hd_duration=None, sends_resolution=False, audio=False
)
MODELS = {DEFAULT_MODEL: VEO3, DRAFT_MODEL: VEO3, "veo-2.0-generate-001": VEO2}
# WxH sizes Veo renders, so "1280x720" means the same as "720p".
_SIZES = {"1280x720": "720p", "720x1280": "720p", "1920x1080": "1080p", "1080x1920": "1080p"}


class OperationError(BaseModel):
    """google.rpc.Status, as in an operation's `error` and in error replies."""

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] = []


class _ErrorBody(BaseModel):
    error: OperationError


class _Video(BaseModel):
    uri: str | None = None


class _Sample(BaseModel):
    video: _Video | None = None


class _GenerateVideoResponse(BaseModel):
    generatedSamples: list[_Sample] = []
    raiMediaFilteredCount: int | None = None
    raiMediaFilteredReasons: list[str] = []


class _Response(BaseModel):
    generateVideoResponse: _GenerateVideoResponse | None = None


class _Operation(BaseModel):
    name: str
    done: bool = False
    error: OperationError | None = None
    response: _Response | None = None


def finished(
    name: str,
    *,
    error: OperationError | None,
    video_url: str | None,
    filtered: int | None,
    reasons: list[str],
    details: dict[str, Any],
) -> StandardVideoResult:
    """A done operation: failed (`error`, or every sample withheld by the safety filter) or
    completed. Shared by the Gemini and Vertex adapters, whose operations differ only in shape."""
    failed = {"status": JobStatus.FAILED, "provider_job_id": name}
    if error is not None:
        code = error.status or error.code
        return StandardVideoResult(
            **failed,
            error_message=error.message or f"operation failed with {code}",
            provider_details=details | {"error_code": code},
        )
    if filtered:
        details |= {"rai_media_filtered_count": filtered, "rai_media_filtered_reasons": reasons}
    if video_url is None:
        why = "; ".join(reasons) if reasons else "the operation finished without a video"
        return StandardVideoResult(
            **failed,
            error_message=f"Blocked by the safety filter: {why}" if filtered else why,
            provider_details=details | {"moderated": bool(filtered)},
        )
    return StandardVideoResult(
        status=JobStatus.COMPLETED,
        provider_job_id=name,
        progress=100,
        video_url=video_url,
        provider_details=details,
    )


class VeoAdapter(HttpAdapter):
    """Veo on the Gemini Developer API; one API key in `x-goog-api-key`."""

    key = "veo"
    default_base_url = DEFAULT_BASE_URL
    models: dict[str, ModelSpec] = MODELS
    default_model = DEFAULT_MODEL
    draft_model = DRAFT_MODEL
    # Google words its refusals as breaking its "Responsible AI practices".
    moderation_markers = (*HttpAdapter.moderation_markers, "responsible ai", "usage guidelines")
    # The Gemini API refuses these (the SDK raises before sending); Vertex accepts them.
    native_seed_fps = False
    credential_fields: tuple[str, ...] = ("api_key",)
    connection_test = f"GET /{API_VERSION}/models (lists models with the key)"

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        return {"x-goog-api-key": credentials.require("api_key", provider=self.key)}

    def raise_for_status(self, response: httpx.Response, *, submit: bool = False) -> None:
        # Google answers a wrong or expired API key with 400 INVALID_ARGUMENT, not 401.
        if response.status_code == 400 and "API_KEY_" in self._error_reasons(response):
            raise AuthError(
                f"{self.key} answered HTTP 400: {self.error_message(response)}. The stored key "
                f"was rejected: run `sceneflow creds set USER {self.key}` with a valid key, "
                f"then `sceneflow creds test USER {self.key}`",
                provider=self.key,
                status_code=400,
            )
        super().raise_for_status(response, submit=submit)

    @staticmethod
    def _error_reasons(response: httpx.Response) -> str:
        try:
            error = _ErrorBody.model_validate_json(response.content).error
        except ValueError:
            return ""
        return " ".join(str(d.get("reason", "")) for d in error.details)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=self.default_model,
            models={name: self._model_caps(spec) for name, spec in self.models.items()},
            credential_fields=list(self.credential_fields),
            can_cancel=False,
            connection_test=self.connection_test,
            # Google's own examples poll every 10 s; clips take 11 s to 6 min at peak.
            poll_interval=10,
            max_poll_interval=30,
            deadline=900,
        )

    def _model_caps(self, spec: ModelSpec) -> ModelCapabilities:
        hd = f"; 1080p only at {spec.full_hd_duration} s" if spec.full_hd_duration else ""
        if self.native_seed_fps:
            seed = native("parameters.seed")
            fps = native(f"parameters.fps when set; {VEO_FPS} only")
        else:
            seed = unsupported("the Gemini API refuses seed; warning")
            fps = unsupported(f"always {VEO_FPS} fps; warning")
        return ModelCapabilities(
            fields=field_table(
                prompt=native("instances[0].prompt"),
                negative_prompt=native("parameters.negativePrompt"),
                aspect_ratio=native("parameters.aspectRatio"),
                duration=native("parameters.durationSeconds"),
                resolution=native("parameters.resolution; WxH mapped" + hd)
                if spec.sends_resolution
                else mapped("always 720p; not sent"),
                style=mapped("appended to the prompt"),
                quality=mapped(f"draft picks {self.draft_model} when no model is given"),
                image_url=mapped("fetched and sent inline as instances[0].image"),
                motion_intensity=unsupported("warning; not sent"),
                seed=seed,
                fps=fps,
            ),
            aspect_ratios=list(spec.aspect_ratios),
            durations=[float(d) for d in spec.durations],
            min_duration=min(spec.durations),
            max_duration=max(spec.durations),
            resolutions=list(spec.resolutions),
            image_to_video=True,
        )

    def model_for(self, request: StandardVideoRequest) -> str:
        if request.model:
            return request.model
        return self.draft_model if request.quality == "draft" else self.default_model

    def validate(self, request: StandardVideoRequest) -> list[str]:
        model = self.model_for(request)
        spec = self.models.get(model)
        if spec is None:
            raise RequestValidationError(
                [f"model: {self.key} has no model {model!r}; allowed: {', '.join(self.models)}"],
                provider=self.key,
            )
        problems: list[str] = []
        where = f"{self.key} model {model}"
        if request.aspect_ratio not in spec.aspect_ratios:
            problems.append(
                f"aspect_ratio: {where} supports {', '.join(spec.aspect_ratios)}, "
                f"not {request.aspect_ratio}"
            )
        if request.duration not in spec.durations:
            allowed = ", ".join(str(d) for d in spec.durations)
            problems.append(
                f"duration: {where} makes {allowed} second videos, not {request.duration:g}"
            )
        resolution = _SIZES.get(request.resolution, request.resolution)
        if resolution not in spec.resolutions:
            problems.append(
                f"resolution: {where} supports {', '.join(spec.resolutions)}, "
                f"not {request.resolution}"
            )
        elif resolution == "1080p" and request.duration != spec.full_hd_duration:
            problems.append(
                f"resolution: {where} renders 1080p only at duration {spec.full_hd_duration}; "
                "use duration 8 or resolution 720p"
            )
        if request.image_url and request.image_url.startswith("data:"):
            mime = request.image_url[5:].partition(";")[0]
            if mime not in _IMAGE_TYPES or ";base64," not in request.image_url:
                problems.append(
                    f"image_url: a data URL must be base64 of {', '.join(_IMAGE_TYPES)}"
                )
        problems += self.extra_problems(request, where)
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return self._warnings(request)

    def extra_problems(self, request: StandardVideoRequest, where: str) -> list[str]:
        return []

    def _warnings(self, request: StandardVideoRequest) -> list[str]:
        gemini = not self.native_seed_fps
        notes = [
            (True, "motion_intensity", "not sent; describe the motion in the prompt"),
            (
                bool(request.model) and request.quality != "standard",
                "quality",
                f"ignored because model {request.model} was chosen",
            ),
            (gemini and request.seed is not None, "seed", "not sent; the Gemini API refuses it"),
            (gemini and request.fps != VEO_FPS, "fps", f"not sent; Veo renders {VEO_FPS} fps"),
        ]
        return [unsupported_warning(self.key, field, what) for on, field, what in notes if on]

    async def build_body(self, request: StandardVideoRequest) -> dict[str, Any]:
        """The predictLongRunning body, the same on both Veo endpoints plus `extra_parameters`."""
        spec = self.models[self.model_for(request)]
        instance: dict[str, Any] = {"prompt": compose_prompt(request)}
        if request.image_url:
            instance["image"] = await self._inline_image(request.image_url)
        parameters: dict[str, Any] = {
            "sampleCount": 1,  # said explicitly so no endpoint default can bill several clips
            "aspectRatio": request.aspect_ratio,
            "durationSeconds": int(request.duration),
        }
        if spec.sends_resolution:
            parameters["resolution"] = _SIZES.get(request.resolution, request.resolution)
        if request.negative_prompt:
            parameters["negativePrompt"] = request.negative_prompt
        parameters |= self.extra_parameters(request, spec)
        return {"instances": [instance], "parameters": parameters}

    def extra_parameters(self, request: StandardVideoRequest, spec: ModelSpec) -> dict[str, Any]:
        return {}

    async def _inline_image(self, url: str) -> dict[str, str]:
        """Veo takes the first frame as inline base64 only (no URLs), so fetch it here."""
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            return {"bytesBase64Encoded": data, "mimeType": header[5:].partition(";")[0]}
        try:
            response = await self._client.get(url, follow_redirects=True)
        except httpx.TransportError as e:
            raise TransientError(
                f"{self.key}: could not fetch image_url ({type(e).__name__}); will retry",
                provider=self.key,
            ) from e
        mime = response.headers.get("content-type", "").partition(";")[0].strip()
        if response.status_code >= 400 or mime not in _IMAGE_TYPES:
            # The URL itself may be signed, so the message names the field, not the URL.
            raise RequestValidationError(
                [
                    f"image_url: fetching it gave HTTP {response.status_code} "
                    f"{mime or 'without a content type'}; it must serve one of "
                    f"{', '.join(_IMAGE_TYPES)} publicly, or be a data: URL"
                ],
                provider=self.key,
            )
        return {"bytesBase64Encoded": base64.b64encode(response.content).decode(), "mimeType": mime}

    async def submit(self, request: StandardVideoRequest, credentials: Credentials) -> str:
        self.validate(request)
        body = await self.build_body(request)
        url = f"/{API_VERSION}/models/{self.model_for(request)}:predictLongRunning"
        response = await self.request("POST", url, credentials=credentials, json=body, submit=True)
        return self.parse(_Operation, response).name

    async def status(self, job_id: str, credentials: Credentials) -> StandardVideoResult:
        response = await self.request("GET", f"/{API_VERSION}/{job_id}", credentials=credentials)
        op: _Operation = self.parse(_Operation, response)
        if not op.done:
            # The operation has no finer states than "not done" (providers.md, Lifecycle).
            return StandardVideoResult(status=JobStatus.QUEUED, provider_job_id=op.name)
        result = op.response.generateVideoResponse if op.response else None
        result = result or _GenerateVideoResponse()
        uris = [s.video.uri for s in result.generatedSamples if s.video and s.video.uri]
        return finished(
            op.name,
            error=op.error,
            video_url=uris[0] if uris else None,
            filtered=result.raiMediaFilteredCount,
            reasons=result.raiMediaFilteredReasons,
            details={"samples": len(uris)},
        )

    async def cancel(self, job_id: str, credentials: Credentials) -> None:
        """No-op: the Gemini API exposes no cancel for video operations (can_cancel=False);
        the pipeline simply stops polling."""

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
