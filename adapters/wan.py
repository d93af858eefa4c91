"""Alibaba Wan video models through DashScope (Alibaba Cloud Model Studio): async tasks.

Sources, in the order they win:

* The official SDK `dashscope` 2.0.2, the wire-format oracle (tests/adapters/test_wan_sdk.py
  replays the same requests through it): create is `POST /services/aigc/video-generation/
  video-synthesis` with `X-DashScope-Async: enable`, keyframe (`kf2v`) models go to
  `/services/aigc/image2video/video-synthesis`; the body always carries `input.extend_prompt`
  and `input.function: "video-synthesis"`; `Accept` and `Content-Type` are
  `application/json; charset=utf-8`; the workspace is the `X-DashScope-WorkSpace` header
  (`client/base_api.py`, `aigc/video_synthesis.py`). Task states are `TaskStatus` in
  `common/constants.py`; `v2/resources/_jobs.py` says an unknown or expired task id is answered
  HTTP 200 with `task_status: UNKNOWN`, and that `GET /tasks` answers flat
  `{page_no, page_size, total, tasks: [...]}`. Cancel works on PENDING tasks only (the SDK's
  `cancel` docstring). `start_time`/`end_time` of the list are `YYYYMMDDhhmmss` (SDK docstring).
* Alibaba Cloud's docs: https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference
  (sizes "W*H" per tier, prompt 800 characters, negative prompt 500, both silently truncated
  beyond that), https://www.alibabacloud.com/help/en/model-studio/manage-asynchronous-tasks
  (task query at 20 QPS, tasks and their output URLs kept 24 h, `submit_time` as
  "2025-07-27 21:05:15.212", failures as `output.code`/`output.message`, `orig_prompt`).

UNCONFIRMED, and what this module does about it:

* The zone of the list window and of `submit_time` (the docs' examples read as Beijing time,
  UTC+8; Singapore's clock is UTC+8 too). The window is sent so that it covers `since..now`
  whether the server reads it as UTC or as UTC+8, and a listed task is dropped as older only
  when it is older under either reading (see `find_submitted`).
* `SUSPENDED` has no documented meaning: it is reported QUEUED (not running, not finished), so
  the queue deadline applies to it.
* The per-model size and duration tables below are the doc tables as read; DashScope refuses
  other values with HTTP 400, which SceneFlow reports before sending anything.
* Whether a pending task already carries `orig_prompt`: a lost submit's candidate without it
  cannot be matched, so the lookup then says it is not complete rather than guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import AliasChoices, BaseModel, Field

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
from sceneflow.errors import (
    AuthError,
    CredentialsError,
    ModerationError,
    RejectedError,
    RequestValidationError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import (
    LOOKUP_REACH,
    Capabilities,
    Credentials,
    Lookup,
    ModelCapabilities,
    OptionSpec,
)

__all__ = ["DEFAULT_MODEL", "ENV_KEY", "MODELS", "REGIONS", "WanAdapter"]

# region (the credential's "region") -> API base; model, endpoint and key must share a region.
REGIONS = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
}
DEFAULT_REGION = "singapore"
DEFAULT_BASE_URL = REGIONS[DEFAULT_REGION]
ENV_KEY = "DASHSCOPE_API_KEY"  # the SDK's variable; used here only by the live smoke test
DEFAULT_MODEL = "wanx2.1-t2v-turbo"  # takes the standard request's defaults (16:9, 720p, 5 s)
DEFAULT_IMAGE_MODEL = "wanx2.1-i2v-turbo"  # chosen when image_url is set and model is not

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"
KEYFRAME_PATH = "/services/aigc/image2video/video-synthesis"  # models named *kf2v* (SDK)
JSON_TYPE = "application/json; charset=utf-8"  # what the SDK sends as Accept and Content-Type
NEGATIVE_PROMPT_MAX = 500
SEED_MAX = 2_147_483_647
# DashScope's refusals by its content inspection (code DataInspectionFailed, "Input/Output data
# may contain inappropriate content"), at submit (HTTP 400) or on the task (FAILED).
MODERATION_MARKERS = (
    "datainspectionfailed",
    "data_inspection_failed",
    "inappropriate content",
    "ipinfringementsuspect",
)
_WORKSPACE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # the SDK's validate_workspace_id
_LIST_TIME = "%Y%m%d%H%M%S"
_UTC8 = timezone(timedelta(hours=8))
_LOOKUP_PAGE_SIZE = 50
_LOOKUP_PAGES = -(-LOOKUP_REACH // _LOOKUP_PAGE_SIZE)  # how far back a lost submit is looked for

_STATUS = {
    "PENDING": JobStatus.QUEUED,
    "SUSPENDED": JobStatus.QUEUED,  # UNCONFIRMED meaning; not running and not finished
    "RUNNING": JobStatus.PROCESSING,
    "SUCCEEDED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "CANCELED": JobStatus.CANCELLED,
    "UNKNOWN": JobStatus.FAILED,  # unknown or expired id: the job is lost (see status())
}
_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"}

# tier -> aspect ratio -> DashScope "W*H" size, from the text-to-video doc tables.
Sizes = dict[str, dict[str, str]]
_480 = {"16:9": "832*480", "9:16": "480*832", "1:1": "624*624"}
_720 = {
    "16:9": "1280*720",
    "9:16": "720*1280",
    "1:1": "960*960",
    "4:3": "1088*832",
    "3:4": "832*1088",
}
_1080 = {
    "16:9": "1920*1080",
    "9:16": "1080*1920",
    "1:1": "1440*1440",
    "4:3": "1632*1248",
    "3:4": "1248*1632",
}


@dataclass(frozen=True)
class Model:
    """One Wan model. Text models take a `size` per tier and aspect ratio; image models take a
    `resolution` tier and follow the image's shape; keyframe models take `first_frame_url`."""

    mode: Literal["text", "image", "keyframe"]
    sizes: Sizes  # image and keyframe models: the tiers, each with no sizes
    durations: tuple[int, ...]
    prompt_max: int = 800
    # wan2.5 makes sound of its own; how DashScope turns it on or off is not in the SDK
    # (2.0.2 has only audio_url and audio_setting) and UNCONFIRMED, so nothing is sent.
    sound: bool = False


MODELS: dict[str, Model] = {
    "wanx2.1-t2v-turbo": Model("text", {"480p": _480, "720p": _720}, (5,)),
    "wanx2.1-t2v-plus": Model("text", {"720p": _720}, (5,)),
    "wan2.2-t2v-plus": Model("text", {"480p": _480, "1080p": _1080}, (5,)),
    "wan2.5-t2v-preview": Model(
        "text", {"480p": _480, "720p": _720, "1080p": _1080}, (5, 10), prompt_max=2000, sound=True
    ),
    "wanx2.1-i2v-turbo": Model("image", {"480p": {}, "720p": {}}, (3, 4, 5)),
    "wanx2.1-i2v-plus": Model("image", {"720p": {}}, (5,)),
    "wan2.2-i2v-plus": Model("image", {"480p": {}, "1080p": {}}, (5,)),
    "wanx2.1-kf2v-plus": Model("keyframe", {"720p": {}}, (5,)),
}


def _durations(durations: tuple[int, ...]) -> str:
    if len(durations) == 1:
        return f"only {durations[0]} seconds"
    return "one of " + ", ".join(str(d) for d in durations) + " seconds"


# `parameters` switches the SDK sends under these names (dashscope 2.0.2, VideoSynthesis.call).
OPTIONS = {
    "prompt_extend": OptionSpec(
        type="boolean",
        wire="parameters.prompt_extend",
        description="let DashScope rewrite the prompt (its default: on)",
    ),
    "watermark": OptionSpec(
        type="boolean", wire="parameters.watermark", description="add DashScope's watermark"
    ),
}


def _model_capabilities(name: str, m: Model) -> ModelCapabilities:
    text = m.mode == "text"
    sizes = "; ".join(
        f"{tier}: " + ", ".join(f"{a}->{s}" for a, s in by_aspect.items())
        for tier, by_aspect in m.sizes.items()
    )
    image_field = {"text": "", "image": "input.img_url", "keyframe": "input.first_frame_url"}
    return ModelCapabilities(
        fields=field_table(
            prompt=native(f"input.prompt, at most {m.prompt_max} characters (style included)"),
            negative_prompt=native(f"input.negative_prompt, at most {NEGATIVE_PROMPT_MAX}"),
            aspect_ratio=mapped(f"parameters.size as W*H; {sizes}")
            if text
            else unsupported("the video takes the shape of the image; warned"),
            motion_intensity=unsupported("no motion setting; not sent, warned"),
            duration=native(f"parameters.duration, {_durations(m.durations)}"),
            resolution=mapped("picks the size tier (or WxH equal to a size)")
            if text
            else mapped("parameters.resolution: " + ", ".join(t.upper() for t in m.sizes)),
            style=mapped("appended to input.prompt"),
            quality=unsupported("pick the model instead (turbo or plus); warned when set"),
            fps=unsupported("Wan renders at its own frame rate; warned when set"),
            seed=native("parameters.seed"),
            image_url=unsupported(f"{name} is text-to-video; refused")
            if text
            else native(f"{image_field[m.mode]}; a public http(s) URL"),
            audio=unsupported(
                "makes sound of its own; no audio setting is sent, warned when set"
                if m.sound
                else "silent video only; audio on is warned, not sent"
            ),
        ),
        options=OPTIONS,
        aspect_ratios=sorted({a for by_aspect in m.sizes.values() for a in by_aspect})
        if text
        else ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
        durations=[float(d) for d in m.durations],
        min_duration=m.durations[0],
        max_duration=m.durations[-1],
        resolutions=list(m.sizes),
        text_to_video=text,
        image_to_video=not text,
    )


_CAPABILITIES = Capabilities(
    provider="wan",
    default_model=DEFAULT_MODEL,
    models={name: _model_capabilities(name, m) for name, m in MODELS.items()},
    credential_fields=["api_key"],  # optional: "region" (singapore|virginia|beijing), "workspace"
    can_cancel=True,  # PENDING tasks only; a running task's cancel is refused and reported
    connection_test="GET /api/v1/tasks?page_no=1&page_size=1 (lists tasks; costs nothing)",
    # The SDK polls every 1 s, backing off to 5 s (1.x) or 8 s (2.x); task queries are limited
    # to 20 QPS per account, and a Wan video takes minutes.
    poll_interval=5,
    max_poll_interval=30,
    deadline=1800,
    queue_deadline=3600,
)


class _Created(BaseModel):
    task_id: str
    task_status: str | None = None


class _CreateReply(BaseModel):
    request_id: str | None = None
    output: _Created


class _TaskOutput(BaseModel):
    task_id: str
    task_status: Literal[
        "PENDING", "SUSPENDED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"
    ]
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    video_url: str | None = None  # signed OSS URL: never logged or stored in details
    orig_prompt: str | None = None
    code: str | None = None
    message: str | None = None


class _Usage(BaseModel):
    video_duration: float | None = None
    video_count: int | None = None
    video_ratio: str | None = None


class _TaskReply(BaseModel):
    request_id: str | None = None
    output: _TaskOutput
    usage: _Usage | None = None


class _Listed(BaseModel):
    task_id: str
    status: str | None = Field(None, validation_alias=AliasChoices("task_status", "status"))
    model_name: str | None = None
    submit_time: str | None = Field(
        None, validation_alias=AliasChoices("submit_time", "gmt_create")
    )


class _TaskPage(BaseModel):
    tasks: list[_Listed] = Field(default_factory=list)
    total: int | None = None
    page_no: int | None = None
    page_size: int | None = None


def _read_time(text: str | None) -> datetime | None:
    """A DashScope time read as UTC: of the zones it may be in (UTC, UTC+8), the latest instant
    it can mean, so a task is never dropped as too old when it might not be."""
    return parse_timestamp(text.replace(" ", "T", 1) if text else None)


class WanAdapter(HttpAdapter):
    """Wan text-, image- and keyframe-to-video on DashScope. One attempt per call.

    The credential is `{"api_key", "region"?, "workspace"?}`; the region picks the API host
    (Singapore by default), and an explicit `base_url` (SCENEFLOW_BASE_URLS__WAN) overrides it.
    """

    key = "wan"
    default_base_url = DEFAULT_BASE_URL
    moderation_markers = HttpAdapter.moderation_markers + MODERATION_MARKERS

    def __init__(
        self, *, client: httpx.AsyncClient | None = None, base_url: str | None = None
    ) -> None:
        super().__init__(client=client, base_url=base_url)
        self._explicit_base = base_url is not None

    # -- credentials and errors ------------------------------------------------------------

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        api_key = credentials.require("api_key", provider=self.key)
        # A key pasted with a newline makes httpx fail mid-request, which on a submit would
        # look like a lost (possibly billed) reply.
        if not api_key.isascii() or any(c.isspace() for c in api_key):
            raise CredentialsError(
                "Stored credentials for 'wan' have an 'api_key' with spaces, line breaks or "
                "non-ASCII characters; DashScope keys look like 'sk-' and hex digits. Run "
                "`sceneflow creds set USER wan` with the key exactly as issued."
            )
        headers = {"Authorization": f"Bearer {api_key}", "Accept": JSON_TYPE}
        workspace = credentials.get("workspace")
        if workspace:
            if not isinstance(workspace, str) or not _WORKSPACE.match(workspace):
                raise CredentialsError(
                    "Stored credentials for 'wan' have a 'workspace' that is not a DashScope "
                    "workspace id (letters, digits, '_' and '-', at most 64). Run "
                    "`sceneflow creds set USER wan` with the id from the Model Studio console."
                )
            headers["X-DashScope-WorkSpace"] = workspace
        return headers

    def api_base(self, credentials: Credentials) -> str:
        """The region's API base, unless SceneFlow was given one (SCENEFLOW_BASE_URLS__WAN)."""
        if self._explicit_base:
            return self.base_url
        region = credentials.get("region") or DEFAULT_REGION
        if region not in REGIONS:
            raise CredentialsError(
                f"Stored credentials for 'wan' name the region {region!r}; allowed: "
                f"{', '.join(REGIONS)}. The key works only in the region that issued it."
            )
        return REGIONS[region]

    def error_message(self, response: httpx.Response) -> str:
        """DashScope's `{"request_id", "code", "message"}` as "code: message (request id)"."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:300] or response.reason_phrase
        if not isinstance(body, dict) or not (body.get("code") or body.get("message")):
            return super().error_message(response)
        text = ": ".join(str(body[k]) for k in ("code", "message") if body.get(k))
        if body.get("request_id"):
            text += f" (request_id {body['request_id']})"
        return text[:500]

    async def _call(
        self,
        method: str,
        path: str,
        credentials: Credentials,
        *,
        submit: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        url = self.api_base(credentials) + path
        return await self.request(method, url, credentials=credentials, submit=submit, **kwargs)

    # -- capabilities and request mapping --------------------------------------------------

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    @staticmethod
    def model_for(request: StandardVideoRequest) -> str:
        if request.model:
            return request.model
        return DEFAULT_IMAGE_MODEL if request.image_url else DEFAULT_MODEL

    def validate(self, request: StandardVideoRequest) -> list[str]:
        name, model, _ = self._resolve(request)
        warnings = {"motion_intensity": "not sent; describe the amount of motion in the prompt"}
        if "fps" in request.model_fields_set:
            warnings["fps"] = f"not sent; {name} renders at its own frame rate"
        if "quality" in request.model_fields_set:
            warnings["quality"] = "not sent; choose the model instead (turbo or plus)"
        if model.mode != "text":
            warnings["aspect_ratio"] = (
                f"not sent; {name} makes the video in the shape of the image, not "
                f"{request.aspect_ratio}"
            )
        if model.sound and request.audio is not None:
            warnings["audio"] = f"not sent; {name} decides on its sound itself"
        notes = [unsupported_warning(self.key, f, what) for f, what in warnings.items()]
        if model.sound:
            return notes
        return notes + audio_warnings(f"wan model {name}", request, renders=False)

    def _resolve(self, request: StandardVideoRequest) -> tuple[str, Model, str]:
        """The model and its size ("W*H") or resolution tier ("720P"), or
        RequestValidationError with every problem at once."""
        name = self.model_for(request)
        model = MODELS.get(name)
        if model is None:
            problem = f"model: {name!r} is not a Wan model SceneFlow maps; allowed: " + ", ".join(
                MODELS
            )
            raise RequestValidationError([problem], provider=self.key)
        problems: list[str] = []
        size = self._size(name, model, request, problems)
        if request.duration not in model.durations:
            problems.append(
                f"duration: {name} takes {_durations(model.durations)}; got {request.duration:g}"
            )
        prompt_len = len(compose_prompt(request))
        if prompt_len > model.prompt_max:
            # DashScope would cut the prompt silently.
            problems.append(
                f"prompt: {name} takes at most {model.prompt_max} characters including the "
                f"folded-in style; got {prompt_len}"
            )
        if request.negative_prompt and len(request.negative_prompt) > NEGATIVE_PROMPT_MAX:
            problems.append(
                f"negative_prompt: Wan takes at most {NEGATIVE_PROMPT_MAX} characters; got "
                f"{len(request.negative_prompt)}"
            )
        problems += self._image_problems(name, model, request)
        problems += option_problems(request, _CAPABILITIES.models, name, f"wan model {name}")
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return name, model, size

    @staticmethod
    def _size(name: str, model: Model, request: StandardVideoRequest, problems: list[str]) -> str:
        tiers = list(model.sizes)
        if model.mode != "text":
            if request.resolution in tiers:
                return request.resolution.upper()
            problems.append(
                f"resolution: {name} takes {', '.join(tiers)} (the video takes the image's "
                f"shape); got {request.resolution}"
            )
            return ""
        aspect = request.aspect_ratio
        fits = [tier for tier in tiers if aspect in model.sizes[tier]]
        if not fits:
            allowed = sorted({a for by_aspect in model.sizes.values() for a in by_aspect})
            problems.append(f"aspect_ratio: {name} takes {', '.join(allowed)}; got {aspect}")
            return ""
        if request.resolution in fits:
            return model.sizes[request.resolution][aspect]
        exact = {model.sizes[t][aspect].replace("*", "x"): model.sizes[t][aspect] for t in fits}
        if request.resolution in exact:
            return exact[request.resolution]
        problems.append(
            f"resolution: {name} at {aspect} takes {', '.join(fits + list(exact))}; "
            f"got {request.resolution}"
        )
        return ""

    @staticmethod
    def _image_problems(name: str, model: Model, request: StandardVideoRequest) -> list[str]:
        image_models = ", ".join(n for n, m in MODELS.items() if m.mode != "text")
        text_models = ", ".join(n for n, m in MODELS.items() if m.mode == "text")
        if model.mode == "text":
            if request.image_url:
                return [
                    f"image_url: {name} is text-to-video; choose one of {image_models}, or "
                    "drop image_url"
                ]
            return []
        if not request.image_url:
            return [
                f"image_url: {name} turns an image into video; set image_url, or choose one of "
                f"{text_models}"
            ]
        if not request.image_url.startswith(("http://", "https://")):
            # The URL is never echoed: it may be signed.
            return [
                "image_url: DashScope fetches the image itself, so it must be a public http(s) "
                "URL; data: URLs are not accepted. Upload the image and pass its URL"
            ]
        return []

    def build(self, request: StandardVideoRequest) -> tuple[str, dict[str, Any]]:
        """The create path and JSON body for `request` (validating it first)."""
        name, model, size = self._resolve(request)
        # extend_prompt and function are what the SDK always sends (dashscope 2.0.2).
        inputs: dict[str, Any] = {
            "prompt": compose_prompt(request),
            "extend_prompt": True,
            "function": "video-synthesis",
        }
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        parameters: dict[str, Any] = {}
        if model.mode == "text":
            parameters["size"] = size
        else:
            parameters["resolution"] = size
            image_key = "img_url" if model.mode == "image" else "first_frame_url"
            inputs[image_key] = request.image_url
        parameters["duration"] = int(request.duration)
        if request.seed is not None:
            parameters["seed"] = request.seed
        # validate() checked them: each is a `parameters` key. input.extend_prompt stays true
        # beside them, as the SDK sends it (deprecated there in favour of prompt_extend).
        parameters |= request.options
        path = KEYFRAME_PATH if "kf2v" in name else CREATE_PATH
        return path, {"model": name, "input": inputs, "parameters": parameters}

    # -- calls -----------------------------------------------------------------------------

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        path, body = self.build(request)
        response = await self._call(
            "POST",
            path,
            credentials,
            submit=True,
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": JSON_TYPE, "X-DashScope-Async": "enable"},
        )
        return self.parse(_CreateReply, response, "task creation", submit=True).output.task_id

    async def _task(self, provider_job_id: str, credentials: Credentials) -> _TaskReply:
        response = await self._call("GET", _task_path(provider_job_id), credentials)
        return self.parse(_TaskReply, response, "task")

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        """The task on the standard result. A task refused by DashScope's content inspection
        raises ModerationError; an UNKNOWN task (an id DashScope does not know, or one older
        than its 24 h retention) is FAILED: the job is lost and is never re-submitted
        silently."""
        reply = await self._task(provider_job_id, credentials)
        task = reply.output
        details: dict[str, Any] = {"dashscope_status": task.task_status}
        for key in ("submit_time", "scheduled_time", "end_time", "code"):
            if getattr(task, key):
                details[key] = getattr(task, key)
        if reply.usage is not None:
            details["usage"] = reply.usage.model_dump(exclude_none=True)
        reason = ": ".join(x for x in (task.code, task.message) if x)
        if task.task_status == "FAILED" and any(m in reason.lower() for m in MODERATION_MARKERS):
            raise ModerationError(
                f"wan: task {task.task_id} was refused by DashScope's content inspection "
                f"({reason}); change the prompt or image rather than retrying",
                provider=self.key,
            )
        result = StandardVideoResult(
            status=_STATUS[task.task_status],
            provider_job_id=task.task_id,
            provider_details=details,
        )
        if task.task_status == "FAILED":
            result.error_message = reason or "DashScope reported the task FAILED without a reason"
        elif task.task_status == "UNKNOWN":
            result.error_message = (
                f"DashScope does not know task {provider_job_id} (UNKNOWN): the id is wrong, or "
                "the task is older than the 24 hours DashScope keeps tasks. The job is lost; "
                "SceneFlow never re-submits it silently: submit it again yourself if wanted"
            )
        elif task.task_status == "SUCCEEDED":
            if not task.video_url:
                result.status = JobStatus.FAILED
                result.error_message = "DashScope reported SUCCEEDED but returned no video_url"
            else:
                result.progress, result.video_url = 100, task.video_url
        return result

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """DashScope cancels PENDING tasks only. A finished task needs nothing; a RUNNING (or
        SUSPENDED) one cannot be stopped, so RejectedError says it will finish and be billed,
        rather than pretending it was cancelled."""
        task = (await self._task(provider_job_id, credentials)).output
        if task.task_status in _TERMINAL:
            return
        if task.task_status != "PENDING":
            raise RejectedError(
                f"wan: task {provider_job_id} is {task.task_status}; DashScope cancels only "
                "PENDING tasks, so it will run to the end and be billed",
                provider=self.key,
            )
        try:
            await self._call("POST", _task_path(provider_job_id) + "/cancel", credentials)
        except RejectedError as e:
            raise RejectedError(
                f"wan: DashScope refused to cancel task {provider_job_id}, most likely because "
                f"it started running meanwhile (only PENDING tasks can be cancelled): {e}",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        """The video_url is a signed OSS link: fetched with no auth header (our key must not
        reach another host). A refused link is read afresh from the task once."""
        try:
            return await self.fetch_to_file(require_output_url(result, self.key), destination)
        except AuthError as e:
            # A 403 from OSS is an expired signature, not a bad key: never an AuthError here.
            if result.provider_job_id:
                fresh = await self.status(result.provider_job_id, credentials)
                if fresh.video_url and fresh.video_url != result.video_url:
                    try:
                        return await self.fetch_to_file(fresh.video_url, destination)
                    except AuthError:
                        pass
            raise RejectedError(
                f"wan: the output of task {result.provider_job_id} was refused; its signed URL "
                "has expired (DashScope keeps outputs 24 hours)",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self._call(
            "GET", "/tasks", credentials, params={"page_no": 1, "page_size": 1}
        )
        self.parse(_TaskPage, response, "task list")

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup:
        """Tasks of the same model created since `since` whose `orig_prompt` is the prompt this
        request sends, newest first, from `GET /tasks` over a time window and then each
        candidate's `GET /tasks/{id}`.

        The window's zone is unconfirmed, so `start_time` is `since` written in UTC and
        `end_time` is now written in UTC+8: whether DashScope reads them as UTC or UTC+8, the
        window covers since..now. Likewise a listed `submit_time` is read as UTC, the later of
        its two readings, so a task up to 8 h older than `since` may still be a candidate (it
        must then match the model, prompt and any reported length and size) but the lost
        task is never dropped. The search is complete when every page of the window was read
        (within the page cap) and every candidate's prompt could be read."""
        _, body = self.build(request)
        name, prompt = body["model"], body["input"]["prompt"]
        window = {
            "start_time": since.astimezone(UTC).strftime(_LIST_TIME),
            "end_time": (datetime.now(_UTC8) + timedelta(minutes=1)).strftime(_LIST_TIME),
            "model_name": name,
        }
        candidates: list[tuple[datetime, str]] = []
        complete, read = False, 0
        for page_no in range(1, _LOOKUP_PAGES + 1):
            params = {"page_no": page_no, "page_size": _LOOKUP_PAGE_SIZE, **window}
            response = await self._call("GET", "/tasks", credentials, params=params)
            page = self.parse(_TaskPage, response, "task list")
            read += len(page.tasks)
            for listed in page.tasks:
                at = _read_time(listed.submit_time)
                if (at is not None and at < since) or listed.model_name not in (None, name):
                    continue
                candidates.append((at or datetime.max.replace(tzinfo=UTC), listed.task_id))
            short = len(page.tasks) < (page.page_size or _LOOKUP_PAGE_SIZE)
            if not page.tasks or short or (page.total is not None and read >= page.total):
                complete = True
                break
        found = []
        for _, task_id in sorted(candidates, reverse=True):
            if task_id in known:
                continue  # another job's: reading every task of a batch made the lookup fail
            reply = await self._task(task_id, credentials)
            if reply.output.orig_prompt is None:
                complete = False  # cannot tell whether it is ours: never guess
            elif reply.output.orig_prompt == prompt and _same_output(reply.usage, body):
                found.append(task_id)
        return Lookup(job_ids=found, complete=complete)


def _same_output(usage: _Usage | None, body: dict[str, Any]) -> bool:
    """A finished task's usage (length, size) does not contradict the body; unfinished tasks
    report no usage and are judged by their prompt alone."""
    if usage is None:
        return True
    parameters = body["parameters"]
    size = parameters.get("size") or parameters.get("resolution")
    return usage.video_duration in (None, parameters["duration"]) and usage.video_ratio in (
        None,
        size,
    )


def _task_path(provider_job_id: str) -> str:
    return "/tasks/" + quote(provider_job_id, safe="")
