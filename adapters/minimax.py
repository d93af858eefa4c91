"""MiniMax Hailuo video generation over the v1 REST API: create, query, retrieve the file.

MiniMax has no official Python SDK for video. The wire format rests on MiniMax's public API
reference (https://platform.minimax.io/docs/api-reference/video-generation-intro, the text- and
image-to-video pages, the OpenAPI description
https://platform.minimax.io/docs/api-reference/video/generation/api/openapi.json, the query and
download pages, and the error-code table https://platform.minimax.io/docs/api-reference/errorcode)
and on MiniMax's official MCP server (github.com/MiniMax-AI/MiniMax-MCP: minimax_mcp/client.py,
server.py, const.py), which is the one client MiniMax ships. tests/support/emulators/minimax.py
and tests/adapters/test_minimax.py are the oracle for what is written here.

The flow is three calls: `POST /v1/video_generation` answers a `task_id`; `GET
/v1/query/video_generation?task_id=` answers a status and, on Success, a `file_id`; `GET
/v1/files/retrieve?file_id=` answers the file's `download_url`. `status()` makes the third call
as soon as a task succeeds, so `download()` can fetch at once; a URL that has expired is
retrieved afresh from the file id.

Business errors come in `base_resp.status_code`, usually with HTTP 200 (as the MCP client reads
them). They are translated here; on the reply to a create they mean no task was created, so
they are never AmbiguousSubmitError.

Choices that no MiniMax source confirms (UNCONFIRMED), each with what it rests on:

* Models and limits: the MCP `generate_video` tool and the docs list the models; 1080P renders
  only 6 s and 10 s needs 768P (Replicate's and other third-party copies of the model pages);
  the 01 series renders 6 s at 720P and takes no `duration`/`resolution` (the MCP tool sends
  them only for Hailuo-02, and third-party routers price 01 at one fixed size).
* Text-to-video renders 16:9 only (v1 has no aspect-ratio field; the query's example video is
  1280x720); image-to-video takes the shape of the first frame (docs).
* The prompt limit of 2,000 characters (docs' text-to-video page).
* The reason of a failed task: `base_resp.status_msg` of the query reply when its code is not 0
  (1026/1027 there are the moderation refusals, per a Baidu Qianfan copy of the query page).
* Codes beyond the brief's 1002/1004/1026/1027/2038: 1000, 1001, 1024 and 1033 are transient
  ("please retry later" in the table), 1008 insufficient balance and 2049 invalid key (table).
* HTTP 429 and Retry-After: MiniMax documents neither; a 429 is treated as every provider's.
* `test_connection` queries an unknown task id: it creates nothing, and only an auth failure
  makes it fail. MiniMax documents no free "who am I" call for this API key.
* Polling every 10 s (the docs' sample loop; the MCP server waits 20 s), up to 30 minutes (the
  MCP server gives up after 10, or 20 for Hailuo-02).

No cancel: MiniMax documents no way to stop or delete a video task (`can_cancel=False`).
No lost-submit lookup: the v1 API finds a task only by its id, and the create call takes no
reference of ours. MiniMax's newer v2 API has a task list, but whether it holds v1 tasks, and
its reply shape, are UNCONFIRMED; answering "not found" from it could make the user pay twice.
So `find_submitted` returns None and a lost submit stays UNKNOWN for the user to check.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

import httpx
from pydantic import BaseModel, Field

from adapters.base import (
    HttpAdapter,
    audio_warnings,
    compose_prompt,
    option_problems,
    parse_retry_after,
    require_output_url,
    unsupported_warning,
)
from adapters.fields import field_table, mapped, native, unsupported
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
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, Lookup, ModelCapabilities, OptionSpec

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ENV_KEY", "MODELS", "MiniMaxAdapter"]

DEFAULT_BASE_URL = "https://api.minimax.io"  # the China host is https://api.minimaxi.com
ENV_KEY = "MINIMAX_API_KEY"  # the MCP server's variable; used here only by the live smoke test
DEFAULT_MODEL = "MiniMax-Hailuo-2.3"
MAX_PROMPT = 2000
VERIFY_URL = {
    "international": "https://platform.minimax.io/user-center/basic-information",
    "China": "https://platform.minimaxi.com/user-center/basic-information",
}

_STATUS = {
    "Preparing": JobStatus.QUEUED,
    "Queueing": JobStatus.QUEUED,
    "Processing": JobStatus.PROCESSING,
    "Success": JobStatus.COMPLETED,
    "Fail": JobStatus.FAILED,
}

# base_resp.status_code values (error-code table; 2038 from the MCP client).
RATE_LIMITED = {1002}
AUTH_FAILED = {1004, 2049}
NOT_VERIFIED = 2038
MODERATED = {1026: "the input", 1027: "the generated video"}
RETRY_LATER = {1000, 1001, 1024, 1033}
NO_BALANCE = 1008

# MiniMax resolution -> the durations it renders at that resolution
_HAILUO_SIZES: dict[str, tuple[int, ...]] = {"768P": (6, 10), "1080P": (6,)}
_V01_SIZES: dict[str, tuple[int, ...]] = {"720P": (6,)}


@dataclass(frozen=True)
class Model:
    text: bool
    image: bool
    sizes: dict[str, tuple[int, ...]]
    sends_size: bool  # the 01 series takes no duration or resolution
    director: bool = False


MODELS: dict[str, Model] = {
    "MiniMax-Hailuo-2.3": Model(True, True, _HAILUO_SIZES, True),
    "MiniMax-Hailuo-2.3-Fast": Model(False, True, _HAILUO_SIZES, True),
    "MiniMax-Hailuo-02": Model(True, True, _HAILUO_SIZES, True),
    "T2V-01-Director": Model(True, False, _V01_SIZES, False, director=True),
    "T2V-01": Model(True, False, _V01_SIZES, False),
    "I2V-01-Director": Model(False, True, _V01_SIZES, False, director=True),
    "I2V-01": Model(False, True, _V01_SIZES, False),
    "I2V-01-live": Model(False, True, _V01_SIZES, False),
}

# SceneFlow resolution (a name, or the frame's short side of a WxH) -> MiniMax resolution.
_TIERS = {"768P": {"720p", "720", "768"}, "1080P": {"1080p", "1080"}, "720P": {"720p", "720"}}
_CAMERA = "[Static shot], [Pan left], [Push in], [Zoom out], [Tracking shot], [Shake]"


def _durations(m: Model) -> list[int]:
    return sorted({d for ds in m.sizes.values() for d in ds})


def model_capabilities(m: Model) -> ModelCapabilities:
    tiers = ", ".join(f"{t} {'/'.join(map(str, ds))} s" for t, ds in m.sizes.items())
    motion = "not sent, warned"
    if m.director:
        motion += f"; write bracketed camera commands such as {_CAMERA} in the prompt"
    if m.sends_size:
        duration = native(f"duration: {tiers}")
        resolution = mapped("resolution: 720p -> 768P, 1080p -> 1080P; WxH by its short side")
    else:
        duration = unsupported("the model renders 6 s; 6 is accepted and not sent")
        resolution = unsupported("the model renders 720P; 720p or 1280x720 accepted, not sent")
    if m.text and m.image:
        aspect = mapped("text-to-video renders 16:9 only; image-to-video follows the image")
    elif m.text:
        aspect = mapped("renders 16:9 only; other shapes refused")
    else:
        aspect = unsupported("the video takes the image's shape; warned")
    return ModelCapabilities(
        fields=field_table(
            prompt=native(f"prompt, up to {MAX_PROMPT} characters with the style"),
            negative_prompt=unsupported("not sent, warned"),
            aspect_ratio=aspect,
            motion_intensity=unsupported(motion),
            duration=duration,
            resolution=resolution,
            style=mapped("appended to the prompt"),
            quality=unsupported("not sent, warned when set; choose the model or resolution"),
            fps=unsupported("not sent, warned when set; MiniMax renders its own frame rate"),
            seed=unsupported("not sent, warned"),
            image_url=native("first_frame_image; http(s) or data: URL")
            if m.image
            else unsupported("refused: a text-to-video model; choose an I2V or Hailuo model"),
            audio=unsupported("silent video only; audio on is warned, not sent"),
        ),
        options={
            # The create body's switch (video-generation-t2v docs; MiniMax-MCP client).
            "prompt_optimizer": OptionSpec(
                type="boolean",
                wire="prompt_optimizer",
                description="let MiniMax rewrite the prompt (MiniMax's default: on)",
            )
        },
        aspect_ratios=["16:9"] if not m.image else ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
        durations=[float(d) for d in _durations(m)],
        min_duration=_durations(m)[0],
        max_duration=_durations(m)[-1],
        resolutions=sorted(t.lower() for t in m.sizes) if m.sends_size else ["720p"],
        text_to_video=m.text,
        image_to_video=m.image,
    )


_CAPABILITIES = Capabilities(
    provider="minimax",
    default_model=DEFAULT_MODEL,
    models={name: model_capabilities(m) for name, m in MODELS.items()},
    credential_fields=["api_key"],
    can_cancel=False,  # MiniMax documents no cancel or delete for video tasks
    connection_test="GET /v1/query/video_generation?task_id=0 (an unknown id; costs nothing)",
    poll_interval=10,
    max_poll_interval=30,
    deadline=1800,
)


class _BaseResp(BaseModel):
    status_code: int = 0
    status_msg: str = ""


class _Created(BaseModel):
    task_id: str = ""
    base_resp: _BaseResp = Field(default_factory=_BaseResp)


class _Task(BaseModel):
    task_id: str = ""
    status: Literal["Preparing", "Queueing", "Processing", "Success", "Fail", ""] = ""
    file_id: str | int | None = None
    video_width: int | None = None
    video_height: int | None = None
    base_resp: _BaseResp = Field(default_factory=_BaseResp)


class _File(BaseModel):
    file_id: int | str
    bytes: int | None = None
    created_at: int | None = None
    filename: str | None = None
    purpose: str | None = None
    download_url: str | None = None  # signed: never logged, stored only without its query


class _Retrieved(BaseModel):
    file: _File | None = None
    base_resp: _BaseResp = Field(default_factory=_BaseResp)


class MiniMaxAdapter(HttpAdapter):
    """MiniMax Hailuo text/image-to-video. One attempt per call; see the module docstring."""

    key = "minimax"
    default_base_url = DEFAULT_BASE_URL
    # 1026/1027 say "input new_sensitive" / "output new_sensitive" (error-code table).
    moderation_markers = (*HttpAdapter.moderation_markers, "sensitive")

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        api_key = credentials.require("api_key", provider=self.key)
        # A key pasted with a line break makes httpx fail mid-request, which on a submit would
        # look like a lost (possibly billed) reply.
        if not api_key.isascii() or any(c.isspace() for c in api_key):
            raise CredentialsError(
                "Stored credentials for 'minimax' have an 'api_key' with spaces, line breaks or "
                "non-ASCII characters. Run `sceneflow creds set USER minimax` with the key "
                "exactly as issued."
            )
        return {"Authorization": f"Bearer {api_key}"}

    def error_message(self, response: httpx.Response) -> str:
        """`base_resp.status_msg` (with its code) when an HTTP error carries one."""
        try:
            base = response.json().get("base_resp")
        except (ValueError, AttributeError):
            base = None
        if isinstance(base, dict) and base.get("status_code"):
            return f"{base.get('status_msg') or 'no message'} (code {base['status_code']})"
        return super().error_message(response)

    # -- request mapping -------------------------------------------------------------------

    def _resolve(self, request: StandardVideoRequest) -> tuple[str, Model, str]:
        """The model and MiniMax resolution, or RequestValidationError with every problem."""
        name = request.model or DEFAULT_MODEL
        model = MODELS.get(name)
        if model is None:
            problem = f"model: minimax has no model {name!r}; allowed: {', '.join(MODELS)}"
            raise RequestValidationError([problem], provider=self.key)
        problems: list[str] = []
        if request.image_url and not model.image:
            image_models = ", ".join(n for n, m in MODELS.items() if m.image)
            problems.append(
                f"image_url: {name} is text-to-video only; drop image_url or choose one of "
                f"{image_models}"
            )
        if not request.image_url and not model.text:
            text_models = ", ".join(n for n, m in MODELS.items() if m.text)
            problems.append(
                f"image_url: {name} turns an image into video; set image_url, or choose one "
                f"of {text_models}"
            )
        if not request.image_url and request.aspect_ratio != "16:9":
            problems.append(
                f"aspect_ratio: minimax text-to-video renders 16:9 only; got "
                f"{request.aspect_ratio}. Use 16:9, or give an image_url of the shape you want"
            )
        tier = self._tier(request.resolution, model)
        if tier is None:
            allowed = "720p or 1280x720" if not model.sends_size else "720p (768P) or 1080p"
            problems.append(
                f"resolution: {name} renders {', '.join(model.sizes)}; got "
                f"{request.resolution!r}. Use {allowed}"
            )
        durations = model.sizes.get(tier or "", tuple(_durations(model)))
        if request.duration not in durations:
            at = f" at {tier}" if tier and len(model.sizes) > 1 else ""
            listed = " or ".join(str(d) for d in durations)
            problems.append(f"duration: {name} renders {listed} s{at}; got {request.duration:g}")
        problems += option_problems(request, _CAPABILITIES.models, name, f"minimax model {name}")
        prompt_len = len(compose_prompt(request))
        if prompt_len > MAX_PROMPT:
            problems.append(
                f"prompt: minimax takes at most {MAX_PROMPT} characters including the "
                f"folded-in style; got {prompt_len}"
            )
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return name, model, tier or ""

    @staticmethod
    def _tier(resolution: str, model: Model) -> str | None:
        sides = resolution.split("x")
        short = str(min(int(s) for s in sides)) if len(sides) == 2 else resolution
        if not model.sends_size and len(sides) == 2 and resolution != "1280x720":
            return None  # the 01 series renders 1280x720 exactly
        for tier in model.sizes:
            if short in _TIERS[tier]:
                return tier
        return None

    def validate(self, request: StandardVideoRequest) -> list[str]:
        name, model, _ = self._resolve(request)
        what = "not sent; describe the amount of motion in the prompt"
        if model.director:
            what = f"not sent; write camera commands such as {_CAMERA} into the prompt"
        warn = {"motion_intensity": what}
        if request.image_url:
            warn["aspect_ratio"] = "not sent; the video takes the shape of image_url"
        if request.negative_prompt:
            warn["negative_prompt"] = "not sent; say what to avoid in the prompt"
        if request.seed is not None:
            warn["seed"] = "not sent; results are not reproducible"
        if "fps" in request.model_fields_set:
            warn["fps"] = f"not sent; {name} renders at its own frame rate"
        if "quality" in request.model_fields_set:
            warn["quality"] = "not sent; choose the model or resolution instead"
        warnings = [unsupported_warning(self.key, f, what) for f, what in warn.items()]
        return warnings + audio_warnings(f"minimax model {name}", request, renders=False)

    def build_body(self, request: StandardVideoRequest) -> dict[str, Any]:
        """The create body (validating the request first)."""
        name, model, tier = self._resolve(request)
        body: dict[str, Any] = {"model": name, "prompt": compose_prompt(request)}
        if request.image_url:
            body["first_frame_image"] = request.image_url
        if model.sends_size:
            body["duration"] = int(request.duration)
            body["resolution"] = tier
        body |= request.options  # validate() checked them: each is a create-body field
        return body

    # -- business errors -------------------------------------------------------------------

    def _refuse(
        self, base: _BaseResp, response: httpx.Response, credentials: Credentials
    ) -> NoReturn:
        """Raise the error a non-zero `base_resp.status_code` stands for."""
        code = base.status_code
        trace = response.headers.get("trace-id")
        said = f"{base.status_msg or 'no message'} (code {code}"
        said = credentials.redact(said + (f", Trace-Id {trace})" if trace else ")"))
        msg = f"{self.key} refused the call: {said}"
        fix = f"run `sceneflow creds set USER {self.key}` with a valid key"
        if code in AUTH_FAILED:
            raise AuthError(
                f"{msg}. The stored key was rejected: {fix}, then `sceneflow creds test USER "
                f"{self.key}`. Keys are bound to their region: api.minimax.io or api.minimaxi.com "
                "(SCENEFLOW_BASE_URLS__MINIMAX)",
                provider=self.key,
                status_code=response.status_code,
            )
        if code == NOT_VERIFIED:
            where = " or ".join(f"{url} ({region})" for region, url in VERIFY_URL.items())
            raise AuthError(
                f"{msg}. The MiniMax account must complete real-name verification before it "
                f"can generate: verify it at {where}, then run again",
                provider=self.key,
                status_code=response.status_code,
            )
        if code in RATE_LIMITED:
            raise RateLimitedError(
                f"{msg}; will retry",
                provider=self.key,
                retry_after=parse_retry_after(response.headers),
                status_code=response.status_code,
            )
        if code in MODERATED:
            raise ModerationError(
                f"{self.key} refused {MODERATED[code]} as sensitive content: {said}. Change the "
                "prompt or image rather than retrying",
                provider=self.key,
                status_code=response.status_code,
            )
        if code in RETRY_LATER:
            raise TransientError(f"{msg}; will retry", provider=self.key)
        if code == NO_BALANCE:
            raise RejectedError(
                f"{msg}. Top up the MiniMax account's balance, then run again",
                provider=self.key,
                status_code=response.status_code,
            )
        raise RejectedError(msg, provider=self.key, status_code=response.status_code)

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
            "/v1/video_generation",
            credentials=credentials,
            submit=True,
            json=self.build_body(request),
        )
        created = self.parse(_Created, response, "task creation", submit=True)
        if created.base_resp.status_code:
            self._refuse(created.base_resp, response, credentials)  # no task was created
        if not created.task_id:
            raise AmbiguousSubmitError(
                f"{self.key} accepted the submit but sent no task_id; the task may exist and be "
                "billed",
                provider=self.key,
                status_code=response.status_code,
            )
        return created.task_id

    async def _query(self, provider_job_id: str, credentials: Credentials) -> _Task:
        response = await self.request(
            "GET",
            "/v1/query/video_generation",
            credentials=credentials,
            params={"task_id": provider_job_id},
        )
        task = self.parse(_Task, response, "task")
        code = task.base_resp.status_code
        # A failed task carries its reason here; anything else non-zero is a refused call.
        if code and (task.status != "Fail" or code in AUTH_FAILED | RATE_LIMITED):
            self._refuse(task.base_resp, response, credentials)
        if not task.status:
            raise TransientError(
                f"{self.key} sent a task reply without a status; will retry", provider=self.key
            )
        if task.status == "Fail" and code in MODERATED:
            self._refuse(task.base_resp, response, credentials)
        return task

    async def _download_url(self, file_id: str, credentials: Credentials) -> str:
        response = await self.request(
            "GET", "/v1/files/retrieve", credentials=credentials, params={"file_id": file_id}
        )
        retrieved = self.parse(_Retrieved, response, "file")
        if retrieved.base_resp.status_code:
            self._refuse(retrieved.base_resp, response, credentials)
        if retrieved.file is None or not retrieved.file.download_url:
            raise TransientError(
                f"{self.key}: file {file_id} has no download_url yet; will retry",
                provider=self.key,
            )
        return retrieved.file.download_url

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        """The task mapped onto the standard result. On Success the file's download URL is
        retrieved at once. A task refused by MiniMax's filter (1026/1027) raises
        ModerationError: it must not be retried as is."""
        task = await self._query(provider_job_id, credentials)
        result = StandardVideoResult(
            status=_STATUS[task.status],
            provider_job_id=task.task_id or provider_job_id,
            provider_details={"minimax_status": task.status},
        )
        if task.status == "Fail":
            reason = task.base_resp.status_msg if task.base_resp.status_code else ""
            code = f" (code {task.base_resp.status_code})" if task.base_resp.status_code else ""
            result.error_message = credentials.redact(
                f"{reason or 'MiniMax reported the task failed without a reason'}{code}"
            )
        elif task.status == "Success":
            if task.file_id in (None, ""):
                result.status = JobStatus.FAILED
                result.error_message = "MiniMax reported Success but sent no file_id"
                return result
            result.provider_details.update(
                file_id=str(task.file_id), width=task.video_width, height=task.video_height
            )
            result.video_url = await self._download_url(str(task.file_id), credentials)
            result.progress = 100
        return result

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """Does nothing: MiniMax documents no way to stop or delete a video task (see
        `can_cancel`). The pipeline stops polling; the task finishes on MiniMax's side."""

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        """The download URL is signed and on MiniMax's storage host, so no key is sent to it.
        A URL that is missing or refused (expired) is retrieved afresh once, from the file id."""
        if result.video_url:
            try:
                return await self.fetch_to_file(result.video_url, destination)
            except AuthError:
                pass  # the signature expired: retrieve a fresh URL
        url = await self._fresh_url(result, credentials)
        try:
            return await self.fetch_to_file(url, destination)
        except AuthError as e:
            raise RejectedError(
                f"{self.key}: the output of task {result.provider_job_id} was refused even with "
                "a fresh download URL; it may have expired on MiniMax's side",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def _fresh_url(self, result: StandardVideoResult, credentials: Credentials) -> str:
        file_id = result.provider_details.get("file_id")
        if file_id:
            return await self._download_url(str(file_id), credentials)
        if not result.provider_job_id:
            return require_output_url(result, self.key)
        fresh = await self.status(result.provider_job_id, credentials)
        return require_output_url(fresh, self.key)

    async def test_connection(self, credentials: Credentials) -> None:
        """Query a task id that does not exist: it creates nothing, and MiniMax checks the key
        before the id. Only a refused key, an unverified account, a rate limit or a server
        failure fails the test; "no such task" means the key was accepted."""
        response = await self.request(
            "GET", "/v1/query/video_generation", credentials=credentials, params={"task_id": "0"}
        )
        base = self.parse(_Task, response, "task").base_resp
        if base.status_code in AUTH_FAILED | RATE_LIMITED | RETRY_LATER | {NOT_VERIFIED}:
            self._refuse(base, response, credentials)

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup | None:
        """None: MiniMax finds a v1 task only by its id (see the module docstring)."""
        return None
