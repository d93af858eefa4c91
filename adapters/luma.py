"""Luma Dream Machine (Ray) over its REST API: create, poll, download.

Wire protocol: Luma's OpenAPI description
(https://raw.githubusercontent.com/lumalabs/lumaai-api/refs/heads/main/openapi.yaml), checked
against the official SDK `lumaai` 1.21.0 (create posts to /generations/video, the SDK's own
path; tests/adapters/test_luma_sdk.py). Failure reasons, prompt limits,
the 3 s polling loop and plain (unauthenticated) asset downloads come from Luma's guides:
https://docs.lumalabs.ai/docs/python-video-generation and https://docs.lumalabs.ai/docs/errors.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from adapters.base import (
    HttpAdapter,
    audio_warnings,
    compose_prompt,
    option_problems,
    parse_timestamp,
    require_output_url,
    unsupported_warning,
)
from adapters.fields import field_table, mapped, native, unsupported
from sceneflow.errors import ModerationError, RequestValidationError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import (
    LOOKUP_REACH,
    Capabilities,
    Credentials,
    Lookup,
    ModelCapabilities,
    OptionSpec,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ENV_KEY", "LumaAdapter"]

DEFAULT_BASE_URL = "https://api.lumalabs.ai/dream-machine/v1"
ENV_KEY = "LUMAAI_API_KEY"  # the SDK's variable; used here only by the live smoke test
DEFAULT_MODEL = "ray-2"
FLASH_MODEL = "ray-flash-2"
MODELS = (DEFAULT_MODEL, FLASH_MODEL)
DURATIONS = {5.0: "5s", 9.0: "9s"}
# Luma names a resolution by the frame's short side.
SHORT_SIDES = {540: "540p", 720: "720p", 1080: "1080p", 2160: "4k"}
NAMED_RESOLUTIONS = {"720p": "720p", "1080p": "1080p", "4k": "4k"}
ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]  # Luma also has 9:21
PROMPT_MIN, PROMPT_MAX = 3, 5000  # "Prompt is too short/long" on create (docs, Errors)
NATIVE_FPS = 24
# Luma moderates after submission; the reason lands in failure_reason (docs, Errors), and
# status() raises ModerationError for it.
MODERATION_REASONS = ("moderation", "blacklisted")

_LOOKUP_PAGE_SIZE = 100
_LOOKUP_PAGES = -(-LOOKUP_REACH // _LOOKUP_PAGE_SIZE)  # how far back a lost submit is looked for
_WXH = re.compile(r"^(\d+)x(\d+)$")

_FIELDS = field_table(
    prompt=native("3 to 5,000 characters"),
    negative_prompt=unsupported("no such field since SDK 1.x; not sent, warned"),
    aspect_ratio=native(),
    motion_intensity=unsupported("no motion control; not sent, warned"),
    duration=mapped('5 -> "5s", 9 -> "9s"; other lengths rejected'),
    resolution=mapped("720p, 1080p, 4k, or WxH by its short side (540, 720, 1080, 2160)"),
    style=mapped("appended to the prompt"),
    quality=mapped(
        "picks the model when model is unset: draft -> ray-flash-2, standard/high -> ray-2"
    ),
    fps=unsupported("always 24 fps; other values warned"),
    seed=unsupported("not sent, warned"),
    image_url=mapped("keyframes.frame0 image; public http(s) URL only"),
    # Ray 2 makes silent video; sound is a separate paid call (POST /generations/{id}/audio).
    audio=unsupported("silent video only; audio on is warned, not sent"),
)
# The create body's own settings (openapi.yaml, GenerationRequest; SDK 1.21.0 `loop`).
OPTIONS = {
    "loop": OptionSpec(
        type="boolean",
        wire="loop",
        description="make the video loop, its last frame leading back to its first",
    ),
}

_MODEL_CAPS = ModelCapabilities(
    fields=_FIELDS,
    options=OPTIONS,
    aspect_ratios=ASPECT_RATIOS,
    durations=sorted(DURATIONS),
    min_duration=min(DURATIONS),
    max_duration=max(DURATIONS),
    resolutions=list(SHORT_SIDES.values()),
    text_to_video=True,
    image_to_video=True,
)

_CAPABILITIES = Capabilities(
    provider="luma",
    default_model=DEFAULT_MODEL,
    models={m: _MODEL_CAPS for m in MODELS},
    credential_fields=["api_key"],
    # DELETE /generations/{id} removes the record; nothing says it stops a running job, and
    # failed or removed jobs are refunded anyway. Deleting would only lose the id the user
    # needs to check the job later (design.md §3), so cancel() sends nothing.
    can_cancel=False,
    connection_test="GET /credits (reads the credit balance; costs nothing)",
    poll_interval=3,  # Luma's own polling loop sleeps 3 s
    max_poll_interval=30,
    deadline=1800,
)

_STATES: dict[str, JobStatus] = {
    "queued": JobStatus.QUEUED,
    "dreaming": JobStatus.PROCESSING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}


class _Assets(BaseModel):
    video: str | None = None
    image: str | None = None
    progress_video: str | None = None


class _Generation(BaseModel):
    id: str
    state: Literal["queued", "dreaming", "completed", "failed"]
    failure_reason: str | None = None
    created_at: str | None = None
    model: str | None = None
    generation_type: str | None = None
    assets: _Assets | None = None
    request: dict[str, Any] | None = None  # the create body, echoed


class _GenerationPage(BaseModel):
    generations: list[_Generation]
    has_more: bool | None = None


class _Credits(BaseModel):
    credit_balance: float


class LumaAdapter(HttpAdapter):
    """Luma Dream Machine: Ray 2 and Ray Flash 2 text/image-to-video."""

    key = "luma"
    default_base_url = DEFAULT_BASE_URL

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.require('api_key', provider=self.key)}"}

    def error_message(self, response: httpx.Response) -> str:
        """Luma's `{"detail": ...}`, where request validation gives a list of `{loc, msg}`.

        Only `loc` and `msg` are kept: the list items also echo the input, which may be a
        signed image URL.
        """
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            return "; ".join(parts)[:500]
        return super().error_message(response)

    # -- request mapping -------------------------------------------------------------------

    @staticmethod
    def model_for(request: StandardVideoRequest) -> str:
        """`request.model`, else the tier `quality` asks for."""
        if request.model:
            return request.model
        return FLASH_MODEL if request.quality == "draft" else DEFAULT_MODEL

    @staticmethod
    def _resolution(request: StandardVideoRequest) -> str | None:
        if request.resolution in NAMED_RESOLUTIONS:
            return NAMED_RESOLUTIONS[request.resolution]
        m = _WXH.match(request.resolution)
        if m:
            return SHORT_SIDES.get(min(int(m.group(1)), int(m.group(2))))
        return None

    def validate(self, request: StandardVideoRequest) -> list[str]:
        model = self.model_for(request)
        caps = _CAPABILITIES.models.get(model)
        problems = []
        if caps is None:
            problems.append(f"model: luma has no model {model!r}; allowed: {', '.join(MODELS)}")
            caps = _MODEL_CAPS  # keep checking so every problem is reported at once
        prompt_len = len(compose_prompt(request))
        if not PROMPT_MIN <= prompt_len <= PROMPT_MAX:
            problems.append(
                f"prompt: luma needs {PROMPT_MIN} to {PROMPT_MAX} characters (style included); "
                f"got {prompt_len}"
            )
        if request.aspect_ratio not in caps.aspect_ratios:
            problems.append(
                f"aspect_ratio: luma accepts {', '.join(caps.aspect_ratios)}; "
                f"got {request.aspect_ratio!r}"
            )
        if request.duration not in DURATIONS:
            problems.append(
                f"duration: luma makes 5 s or 9 s videos; got {request.duration:g}. "
                "Use duration 5 or 9"
            )
        if self._resolution(request) is None:
            problems.append(
                f"resolution: luma renders 540p, 720p, 1080p or 4k; got {request.resolution!r}. "
                "Use 720p, 1080p, 4k, or WxH with a short side of 540, 720, 1080 or 2160"
            )
        if request.image_url and not request.image_url.startswith(("http://", "https://")):
            problems.append(
                "image_url: luma fetches the first frame itself, so it must be a public "
                "http(s) URL; data: URLs are not accepted. Upload the image and pass its URL"
            )
        problems += option_problems(request, _CAPABILITIES.models, model, f"luma model {model}")
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return self._warnings(request, model) + audio_warnings(
            f"luma model {model}", request, renders=False
        )

    def _warnings(self, request: StandardVideoRequest, model: str) -> list[str]:
        warnings = [
            unsupported_warning(
                self.key, "motion_intensity", "not sent; describe the motion in the prompt"
            )
        ]
        if request.negative_prompt:
            warnings.append(
                unsupported_warning(
                    self.key, "negative_prompt", "not sent; say what to avoid in the prompt"
                )
            )
        if request.seed is not None:
            warnings.append(
                unsupported_warning(self.key, "seed", "not sent; results are not reproducible")
            )
        if request.fps != NATIVE_FPS:
            warnings.append(
                unsupported_warning(self.key, "fps", f"not sent; luma renders {NATIVE_FPS} fps")
            )
        if request.model and request.quality != "standard":
            warnings.append(
                f"quality: ignored because model {model!r} was chosen; quality picks the luma "
                "model only when model is unset"
            )
        m = _WXH.match(request.resolution)
        if m:
            a, b = (int(x) for x in request.aspect_ratio.split(":"))
            w, h = int(m.group(1)), int(m.group(2))
            if abs(w / h - a / b) > 0.02:
                warnings.append(
                    f"resolution: {request.resolution} is not {request.aspect_ratio}; luma "
                    f"shapes the frame by aspect_ratio at {self._resolution(request)}"
                )
        return warnings

    def build_body(self, request: StandardVideoRequest) -> dict[str, object]:
        """The create body. Raises RequestValidationError as validate() does."""
        self.validate(request)
        body: dict[str, object] = {
            "model": self.model_for(request),
            "prompt": compose_prompt(request),
            "aspect_ratio": request.aspect_ratio,
            "duration": DURATIONS[request.duration],
            "resolution": self._resolution(request),
        }
        if request.image_url:
            body["keyframes"] = {"frame0": {"type": "image", "url": request.image_url}}
        body |= request.options  # validate() checked them: each is a create-body field
        return body

    # -- calls -----------------------------------------------------------------------------

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        response = await self.request(
            "POST",
            "/generations/video",
            credentials=credentials,
            submit=True,
            json=self.build_body(request),
            headers={"Accept": "application/json"},
        )
        return self.parse(_Generation, response, "generation", submit=True).id

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        response = await self.request(
            "GET",
            f"/generations/{provider_job_id}",
            credentials=credentials,
            headers={"Accept": "application/json"},
        )
        gen = self.parse(_Generation, response)
        details: dict[str, object] = {
            "state": gen.state,
            "model": gen.model,
            "created_at": gen.created_at,
            "generation_type": gen.generation_type,
        }
        status = _STATES[gen.state]
        video = gen.assets.video if gen.assets else None
        error = None
        if status is JobStatus.FAILED:
            error = gen.failure_reason or "luma reported the generation failed without a reason"
            if any(m in error.lower() for m in MODERATION_REASONS):
                raise ModerationError(
                    f"{self.key}: generation {gen.id} was refused by the content filter: {error}",
                    provider=self.key,
                )
            details["failure_reason"] = gen.failure_reason
        elif status is JobStatus.COMPLETED and not video:
            status = JobStatus.FAILED
            error = "luma reported the generation completed but sent no assets.video URL"
        return StandardVideoResult(
            status=status,
            provider_job_id=gen.id,
            progress=100 if status is JobStatus.COMPLETED else 0,  # Luma reports no percentage
            video_url=video if status is JobStatus.COMPLETED else None,
            error_message=error,
            provider_details=details,
        )

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """Does nothing: Luma cannot stop a running generation (see `can_cancel`).

        The pipeline stops polling; the job finishes or fails on Luma's side and stays
        visible under its id.
        """

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        # Asset URLs are public CDN links; the API key is never sent to another host.
        return await self.fetch_to_file(require_output_url(result, self.key), destination)

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup:
        """Generations created since `since` whose echoed request has every field this request
        sends, from `GET /generations?limit=&offset=`. Luma documents no order for the list, so
        the walk stops at a page wholly older than `since` or the last page (complete), or at
        the page cap (not complete)."""
        body = self.build_body(request)
        found: list[tuple[datetime, str]] = []
        for page_no in range(_LOOKUP_PAGES):
            response = await self.request(
                "GET",
                "/generations",
                credentials=credentials,
                params={"limit": _LOOKUP_PAGE_SIZE, "offset": page_no * _LOOKUP_PAGE_SIZE},
                headers={"Accept": "application/json"},
            )
            page = self.parse(_GenerationPage, response, "generation list")
            created = [parse_timestamp(g.created_at) for g in page.generations]
            for gen, at in zip(page.generations, created, strict=True):
                echo = gen.request or {}
                if (at is None or at >= since) and all(echo.get(k) == v for k, v in body.items()):
                    found.append((at or since, gen.id))
            if not page.has_more or all(at is not None and at < since for at in created):
                complete = True
                break
        else:
            complete = False
        return Lookup(
            job_ids=[gen_id for _, gen_id in sorted(found, reverse=True)], complete=complete
        )

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self.request(
            "GET", "/credits", credentials=credentials, headers={"Accept": "application/json"}
        )
        self.parse(_Credits, response)
