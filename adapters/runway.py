"""Runway API (https://docs.dev.runwayml.com): text/image to video through /v1 tasks.

Wire facts come from the official SDK `runwayml` 5.24.0, which is the oracle where the docs are
silent (tests/adapters/test_runway_sdk.py replays the same requests through it). Runway wants a
pixel `ratio` ("1280:720") instead of an aspect ratio, whole-second durations from a per-model
set, and `X-Runway-Version` on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from adapters.base import (
    HttpAdapter,
    audio_warnings,
    compose_prompt,
    option_problems,
    require_output_url,
    unsupported_warning,
)
from adapters.fields import field_table, mapped, native, unsupported
from sceneflow.errors import (
    AuthError,
    CredentialsError,
    ModerationError,
    RejectedError,
    RequestValidationError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, ModelCapabilities

__all__ = ["RunwayAdapter"]

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"  # not api.runwayml.com (troubleshooting page)
API_VERSION = "2024-11-06"
DEFAULT_MODEL = "gen4.5"
MAX_PROMPT_UTF16 = 1000
MAX_DATA_URI_BYTES = 5 * 1024 * 1024

_STATUS = {
    "PENDING": JobStatus.QUEUED,
    # Stored but not enqueued while the organisation is at its concurrency limit (usage tiers).
    "THROTTLED": JobStatus.QUEUED,
    "RUNNING": JobStatus.PROCESSING,
    "SUCCEEDED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "CANCELLED": JobStatus.CANCELLED,
}
_ACTIVE = {"PENDING", "THROTTLED", "RUNNING"}

# size tier -> aspect ratio -> Runway pixel ratio
Sizes = dict[str, dict[str, str]]
_GEN4_TEXT = {"16:9": "1280:720", "9:16": "720:1280"}
_GEN4_IMAGE = _GEN4_TEXT | {
    "4:3": "1104:832",
    "3:4": "832:1104",
    "1:1": "960:960",
    "21:9": "1584:672",
}
_VEO: Sizes = {
    "720p": {"16:9": "1280:720", "9:16": "720:1280"},
    "1080p": {"16:9": "1920:1080", "9:16": "1080:1920"},
}


@dataclass(frozen=True)
class Model:
    text: Sizes | None  # None: image-to-video only
    image: Sizes
    durations: tuple[int, ...]
    negative_prompt: bool
    # The SDK's `audio` switch ("Whether to generate audio for the video. Audio inclusion
    # affects pricing."), on Runway's Veo models only; the others make silent video.
    audio: bool = False


# From the SDK's *_create_params unions. gen4_turbo's duration is typed only as int; 2-10 is
# what the API reference states for it.
MODELS: dict[str, Model] = {
    "gen4.5": Model({"720p": _GEN4_TEXT}, {"720p": _GEN4_IMAGE}, tuple(range(2, 11)), False),
    "gen4_turbo": Model(None, {"720p": _GEN4_IMAGE}, tuple(range(2, 11)), False),
    "veo3.1": Model(_VEO, _VEO, (4, 6, 8), True, audio=True),
    "veo3.1_fast": Model(_VEO, _VEO, (4, 6, 8), True, audio=True),
}


def describe_durations(durations: tuple[int, ...]) -> str:
    if durations == tuple(range(durations[0], durations[-1] + 1)):
        return f"whole seconds from {durations[0]} to {durations[-1]}"
    return "one of " + ", ".join(str(d) for d in durations) + " seconds"


def model_capabilities(m: Model) -> ModelCapabilities:
    def table(sizes: Sizes) -> str:
        return ", ".join(
            f"{aspect}@{tier}->{ratio}"
            for tier, by_aspect in sizes.items()
            for aspect, ratio in by_aspect.items()
        )

    text = f"text: {table(m.text)}; " if m.text else ""
    aspects = {a for sizes in (m.text or {}, m.image) for tier in sizes.values() for a in tier}
    tiers = {t for sizes in (m.text or {}, m.image) for t in sizes}
    return ModelCapabilities(
        fields=field_table(
            prompt=native("promptText, <= 1000 UTF-16 units"),
            negative_prompt=native("negativePrompt")
            if m.negative_prompt
            else unsupported("only Runway's Veo models take one"),
            aspect_ratio=mapped(f"ratio in pixels; {text}image: {table(m.image)}"),
            motion_intensity=unsupported("describe it in the prompt"),
            duration=native(f"duration, {describe_durations(m.durations)}"),
            resolution=mapped("picks the size tier of ratio; or WxH equal to a ratio"),
            style=mapped("appended to promptText"),
            quality=unsupported("pick the model instead"),
            fps=unsupported("the model's own frame rate"),
            seed=native("seed"),
            image_url=native("promptImage via /v1/image_to_video; https or data:"),
            audio=native("audio; unset: not sent, Runway's default")
            if m.audio
            else unsupported("silent video only; audio on is warned"),
        ),
        aspect_ratios=sorted(aspects),
        durations=[float(d) for d in m.durations],
        min_duration=m.durations[0],
        max_duration=m.durations[-1],
        resolutions=sorted(tiers),
        text_to_video=m.text is not None,
        image_to_video=True,
    )


MODEL_CAPABILITIES = {name: model_capabilities(m) for name, m in MODELS.items()}


class _Credits(BaseModel):
    credits: float


class _Created(BaseModel):
    id: str
    estimated_cost: _Credits | None = Field(None, alias="estimatedCost")


class _Task(BaseModel):
    id: str
    status: Literal["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    created_at: str | None = Field(None, alias="createdAt")
    progress: float | None = None  # a 0..1 fraction while RUNNING (API reference)
    estimated_cost: _Credits | None = Field(None, alias="estimatedCost")
    cost: _Credits | None = None  # final, on terminal tasks
    output: list[str] = Field(default_factory=list)  # signed URLs: never logged or stored
    failure: str | None = None
    failure_code: str | None = Field(None, alias="failureCode")


class _Organization(BaseModel):
    credit_balance: float = Field(alias="creditBalance")


def _utf16_len(text: str) -> int:
    # ASCII text (most prompts) is one unit a character: encoding it to count took 0.5 µs of
    # the 5 µs Runway's check of a CSV row takes (issue 10); the length test takes 0.1 µs.
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


class RunwayAdapter(HttpAdapter):
    """Runway's task API. One attempt per call; errors are translated by HttpAdapter."""

    key = "runway"
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        api_key = credentials.require("api_key", provider=self.key)
        # A key pasted with a trailing newline makes httpx fail mid-request, which on a submit
        # would look like a lost (possibly billed) reply.
        if not api_key.isascii() or any(c.isspace() for c in api_key):
            raise CredentialsError(
                "Stored credentials for 'runway' have an 'api_key' with spaces, line breaks or "
                "non-ASCII characters; Runway keys are 'key_' followed by 128 hex digits. Run "
                "`sceneflow creds set USER runway` with the key exactly as issued."
            )
        return {"Authorization": f"Bearer {api_key}", "X-Runway-Version": API_VERSION}

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=DEFAULT_MODEL,
            models=MODEL_CAPABILITIES,
            credential_fields=["api_key"],
            can_cancel=True,
            connection_test="GET /v1/organization (credit balance; costs nothing)",
            # Runway: "do not expect updates more often than every 5 seconds".
            poll_interval=5,
            max_poll_interval=30,
            deadline=1800,
        )

    def validate(self, request: StandardVideoRequest) -> list[str]:
        name, model, _ = self._resolve(request)
        unsupported = {"motion_intensity": "describe the amount of motion in the prompt"}
        if "fps" in request.model_fields_set:
            unsupported["fps"] = f"{name} renders at its own frame rate"
        if "quality" in request.model_fields_set:
            unsupported["quality"] = "choose the model instead (veo3.1 over veo3.1_fast)"
        if request.negative_prompt and not model.negative_prompt:
            unsupported["negative_prompt"] = f"{name} ignores it (only veo3.1 models take one)"
        warnings = [unsupported_warning(self.key, f, what) for f, what in unsupported.items()]
        renders = None if model.audio else False
        return warnings + audio_warnings(f"{self.key} model {name}", request, renders=renders)

    def _resolve(self, request: StandardVideoRequest) -> tuple[str, Model, str | None]:
        """The model and pixel ratio for `request`, or RequestValidationError with every problem."""
        name = request.model or DEFAULT_MODEL
        model = MODELS.get(name)
        if model is None:
            allowed = ", ".join(MODELS)
            problem = f"model: {name!r} is not a Runway model SceneFlow maps; allowed: {allowed}"
            raise RequestValidationError([problem], provider=self.key)
        problems: list[str] = []
        ratio = None
        sizes = model.image if request.image_url else model.text
        if sizes is None:
            text_models = ", ".join(n for n, m in MODELS.items() if m.text)
            problems.append(
                f"image_url: {name} only turns an image into video; set image_url, or choose "
                f"one of {text_models}"
            )
        else:
            ratio = self._ratio(name, sizes, request, problems)
        if request.duration not in model.durations:  # 5.0 == 5; 5.5 is in no tuple
            problems.append(
                f"duration: {name} takes {describe_durations(model.durations)}; "
                f"got {request.duration:g}"
            )
        prompt_len = _utf16_len(compose_prompt(request))
        if prompt_len > MAX_PROMPT_UTF16:
            problems.append(
                f"prompt: Runway takes at most {MAX_PROMPT_UTF16} characters (UTF-16 units) "
                f"including the folded-in style; got {prompt_len}"
            )
        if request.image_url:
            problems += self._image_problems(request.image_url)
        problems += option_problems(request, MODEL_CAPABILITIES, name, f"{self.key} model {name}")
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return name, model, ratio

    @staticmethod
    def _ratio(
        name: str, sizes: Sizes, request: StandardVideoRequest, problems: list[str]
    ) -> str | None:
        mode = "image-to-video" if request.image_url else "text-to-video"
        aspect = request.aspect_ratio
        tiers = [tier for tier, by_aspect in sizes.items() if aspect in by_aspect]
        if not tiers:
            allowed = sorted({a for by_aspect in sizes.values() for a in by_aspect})
            problems.append(
                f"aspect_ratio: {name} {mode} supports {', '.join(allowed)}; got {aspect}"
            )
            return None
        if request.resolution in tiers:
            return sizes[request.resolution][aspect]
        exact = {sizes[t][aspect].replace(":", "x"): sizes[t][aspect] for t in tiers}
        if request.resolution in exact:
            return exact[request.resolution]
        problems.append(
            f"resolution: {name} {mode} at {aspect} supports {', '.join(tiers + list(exact))}; "
            f"got {request.resolution}"
        )
        return None

    @staticmethod
    def _image_problems(url: str) -> list[str]:
        # Runway fetches inputs itself: https only, a domain not an IP, URL <= 2048 chars;
        # data URIs up to 5 MB (docs: assets/inputs). The URL is never echoed: it may be signed.
        if url.startswith("data:"):
            if len(url) > MAX_DATA_URI_BYTES:
                return [f"image_url: Runway takes data: URIs up to 5 MB; got {len(url)} bytes"]
            return []
        if not url.startswith("https://"):
            return ["image_url: Runway fetches only https:// URLs or data: URIs; got http://"]
        if len(url) > 2048:
            return [f"image_url: Runway takes URLs up to 2048 characters; got {len(url)}"]
        return []

    def build_body(self, request: StandardVideoRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for `request` (validating it first)."""
        name, model, ratio = self._resolve(request)
        body: dict[str, Any] = {
            "model": name,
            "promptText": compose_prompt(request),
            "ratio": ratio,
            "duration": int(request.duration),
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.negative_prompt and model.negative_prompt:
            body["negativePrompt"] = request.negative_prompt
        if request.audio is not None and model.audio:
            body["audio"] = request.audio
        if request.image_url:
            body["promptImage"] = request.image_url
            return "/v1/image_to_video", body
        return "/v1/text_to_video", body

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        path, body = self.build_body(request)
        response = await self.request("POST", path, credentials=credentials, submit=True, json=body)
        return self.parse(_Created, response, "task creation", submit=True).id

    async def _task(self, provider_job_id: str, credentials: Credentials) -> _Task:
        response = await self.request(
            "GET", self._task_path(provider_job_id), credentials=credentials
        )
        return self.parse(_Task, response, "task")

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        """The task mapped onto the standard result. A task refused by Runway's moderation
        (failureCode SAFETY.*) raises ModerationError: it must not be retried as is."""
        task = await self._task(provider_job_id, credentials)
        final = task.cost is not None
        charged = task.cost or task.estimated_cost
        credits = charged.credits if charged else None
        details: dict[str, Any] = {
            "runway_status": task.status,
            "created_at": task.created_at,
            "cost_is_estimate": not final,
        }
        if task.failure_code:
            details["failure_code"] = task.failure_code
        if task.status == "FAILED" and "SAFETY" in (task.failure_code or "").split("."):
            billed = f" ({credits:g} credits)" if credits is not None else ""
            raise ModerationError(
                f"runway refused the content ({task.failure_code}): {task.failure}. Moderated "
                f"generations are billed{billed} and repeated ones can suspend the account: "
                "change the prompt or image rather than retrying",
                provider=self.key,
            )
        result = StandardVideoResult(
            status=_STATUS[task.status],
            provider_job_id=task.id,
            cost=credits,
            provider_details=details,
        )
        if task.status == "RUNNING":
            result.progress = min(max((task.progress or 0) * 100, 0), 100)
        elif task.status == "FAILED":
            code = f" ({task.failure_code})" if task.failure_code else ""
            result.error_message = f"{task.failure or 'no reason given'}{code}"
        elif task.status == "SUCCEEDED":
            if not task.output:
                result.status = JobStatus.FAILED
                result.error_message = "Runway reported SUCCEEDED but returned no output"
            else:
                result.progress, result.video_url = 100, task.output[0]
                details["outputs"] = len(task.output)
        return result

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """DELETE cancels an active task, but on a finished task it deletes the output, so
        only active tasks are sent it. A task already gone (404) counts as cancelled."""
        try:
            if (await self._task(provider_job_id, credentials)).status not in _ACTIVE:
                return
            path, headers = self._task_path(provider_job_id), {"Accept": "*/*"}  # as the SDK sends
            await self.request("DELETE", path, credentials=credentials, headers=headers)
        except RejectedError as e:
            if e.status_code != 404:
                raise

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        """Output URLs are signed and need no auth; sending our key to the CDN would leak it."""
        try:
            return await self.fetch_to_file(require_output_url(result, self.key), destination)
        except AuthError:
            if not result.provider_job_id:
                raise
            return await self._download_fresh(result.provider_job_id, credentials, destination)

    async def _download_fresh(
        self, provider_job_id: str, credentials: Credentials, destination: Path
    ) -> Path:
        # Signatures expire within 24-48 h; Runway says to GET the task again for fresh URLs.
        fresh = await self.status(provider_job_id, credentials)
        try:
            return await self.fetch_to_file(require_output_url(fresh, self.key), destination)
        except AuthError as e:
            raise RejectedError(
                f"runway: the output of task {provider_job_id} was refused even with a "
                "freshly signed URL; it may have been deleted",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self.request("GET", "/v1/organization", credentials=credentials)
        self.parse(_Organization, response, "organization")

    @staticmethod
    def _task_path(provider_job_id: str) -> str:
        return "/v1/tasks/" + quote(provider_job_id, safe="")
