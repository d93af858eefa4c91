"""ByteDance Seedance through Ark (BytePlus ModelArk, or Volcengine Ark by base URL).

The wire format is the official SDK `volcengine-ark-runtime` 5.0.54
(`resources/content_generation/tasks.py`, `types/content_generation/*`), which is the oracle
(tests/adapters/test_seedance_sdk.py sends the same requests through it): a create is
`POST /contents/generations/tasks` with `model`, a `content[]` list (one `text` item, and an
`image_url` item for the first frame) and top-level `ratio`, `resolution`, `duration`, `seed` and
`camera_fixed`; a task is `GET /contents/generations/tasks/{id}`; the list and the cancel are
`GET` and `DELETE` on the same collection. The SDK sends every unset option as an explicit JSON
null and a `{}` body with DELETE; SceneFlow leaves unset options out (the service reads a null as
absent) and sends the same `{}` with DELETE.

The SDK is silent on these, so each rests on the source named (all UNCONFIRMED by the SDK):

* The BytePlus host `https://ark.ap-southeast.bytepluses.com/api/v3` is the default; the SDK's
  own default, Volcengine's `https://ark.cn-beijing.volces.com/api/v3`, is reached by setting
  `SCENEFLOW_BASE_URLS__SEEDANCE`. Volcengine names the same models with a `doubao-` prefix,
  which is accepted and sent as given (BytePlus ModelArk, Video Generation API,
  https://docs.byteplus.com/ja/docs/ModelArk/1520757; the prefixed ids from copies of
  Volcengine's pages).
* The model table (ids, text/image support, 480p/720p/1080p, whole seconds 2-12 and 4-12 for
  1.5 pro, the six ratios) and the `first_frame` role name come from copies of the BytePlus
  ModelArk Video Generation API page; Seedance renders 24 fps (the page's `--fps 24`, and the
  `framespersecond` a task reports).
* `expired` (a task that outlived `execution_expires_after`, 48 h by default) joins the SDK's
  five statuses, from a copy of the BytePlus reference; it is FAILED with the reason.
* Content-filter refusals carry Ark error codes ending in `SensitiveContentDetected` (or
  `...RiskDetection` on Volcengine), from Ark's error-code page: a 400 on create, or a task
  failed with such an `error.code`. Both raise ModerationError.
* DELETE cancels a `queued` task and deletes the record of a finished one; a running task cannot
  be stopped (third-party descriptions of BytePlus's "Cancel or delete a video generation task").
  `cancel` therefore reads the task first and sends DELETE only while it is queued.
* The list keeps the last 7 days and takes `page_num`/`page_size` from 1 to 500 (a copy of
  BytePlus's "List video generation tasks" page); it is read newest first by `created_at` (unix
  seconds). It filters by model and echoes no prompt, only the settings and the `seed` (the SDK's
  `ContentGenerationTask.seed`, which Ark fills with its own random pick when none was sent).
* Output URLs are signed object-storage links that need no auth and expire after 24 h (third
  parties): the key is never sent with a download.

Finding a lost submit. Same-settings rows of one batch differ only in prompt, which no task
shows, so a match on the settings alone cannot tell their sends apart: a row whose send never
arrived would adopt another row's task, and that row would then be sent (and paid) again. So a
request that sets no seed is sent with one derived from SceneFlow's reference for the send
(`_reference_seed`), and the lookup matches that exact seed: what it finds is that send's task.
Where the request set its own seed, or no reference was given, the sends cannot be told apart: a
matching task makes the lookup answer "unknown" (no ids, incomplete), so the job waits for its
user rather than taking a task that may be another row's; a complete search with no match still
says the send never arrived.

`motion_intensity`: Ark has no motion amount, only `camera_fixed`; intensity 1 ("still") is sent
as `camera_fixed: true`, any other value as `camera_fixed: false` with a warning to describe the
motion in the prompt, unless `options.camera_fixed` says it outright (then it is sent as given).
`fps`: not settable; a value other than 24 is warned about and not sent. `audio` is Ark's
`generate_audio` on the models that make sound (seedance-1-5-pro; the 1.0 models are silent),
sent only when set.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
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
from sceneflow.providers import (
    LOOKUP_REACH,
    Capabilities,
    Credentials,
    Lookup,
    ModelCapabilities,
    OptionSpec,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ENV_KEY", "VOLCENGINE_BASE_URL", "SeedanceAdapter"]

DEFAULT_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"  # BytePlus ModelArk
VOLCENGINE_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"  # the SDK's default (China)
ENV_KEY = "ARK_API_KEY"  # the SDK's variable; read here only by the live smoke test
TASKS = "/contents/generations/tasks"
DEFAULT_MODEL = "seedance-1-0-pro-250528"
VOLCENGINE_PREFIX = "doubao-"
FIRST_FRAME = "first_frame"
NATIVE_FPS = 24
ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]  # Ark also has "adaptive"
SHORT_SIDES = {480: "480p", 720: "720p", 1080: "1080p"}
# Ark's codes for a content-filter refusal, matched in lower case (error-code page).
MODERATION_MARKERS = ("sensitivecontentdetected", "riskdetection")
LIST_WINDOW = timedelta(days=7)  # how far back the task list reaches
_LOOKUP_PAGE_SIZE = 500  # page_size may be 1..500
_LOOKUP_PAGES = -(-LOOKUP_REACH // _LOOKUP_PAGE_SIZE)
_WXH = re.compile(r"^(\d+)x(\d+)$")
_JSON = {"Accept": "application/json"}  # what the SDK asks for on every call

_STATUS = {
    "queued": JobStatus.QUEUED,
    "running": JobStatus.PROCESSING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "expired": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]


@dataclass(frozen=True)
class Model:
    text: bool
    image: bool
    resolutions: tuple[str, ...]
    min_duration: int
    max_duration: int
    audio: bool = False  # takes generate_audio (the 1.5 models make sound)


_ALL_SIZES = ("480p", "720p", "1080p")
MODELS: dict[str, Model] = {
    "seedance-1-0-pro-250528": Model(True, True, _ALL_SIZES, 2, 12),
    "seedance-1-0-pro-fast-251015": Model(True, True, _ALL_SIZES, 2, 12),
    "seedance-1-5-pro-251215": Model(True, True, _ALL_SIZES, 4, 12, audio=True),
    "seedance-1-0-lite-t2v-250428": Model(True, False, ("480p", "720p"), 2, 12),
    "seedance-1-0-lite-i2v-250428": Model(False, True, ("480p", "720p"), 2, 12),
}


# Top-level create fields of the SDK's tasks.create (volcengine-ark-runtime 5.0.54).
OPTIONS = {
    "camera_fixed": OptionSpec(
        type="boolean",
        wire="camera_fixed",
        description="hold the camera still (else motion_intensity 1 decides)",
    ),
    "watermark": OptionSpec(type="boolean", wire="watermark", description="add Ark's watermark"),
}


def model_capabilities(m: Model) -> ModelCapabilities:
    sizes = ", ".join(m.resolutions)
    image = (
        native("content[] image_url item, role first_frame; http(s) or data:image/...;base64")
        if m.image
        else unsupported("text-to-video only; an image is refused")
    )
    return ModelCapabilities(
        fields=field_table(
            prompt=native("content[] text item"),
            negative_prompt=unsupported("no such field; not sent, warned"),
            aspect_ratio=native("ratio"),
            motion_intensity=mapped(
                "1 -> camera_fixed true (still camera); 2-10 -> camera_fixed false, warned"
            ),
            duration=native(f"duration, whole seconds {m.min_duration}-{m.max_duration}"),
            resolution=native(f"resolution {sizes}; WxH by its short side"),
            style=mapped("appended to the prompt"),
            quality=unsupported("pick the model instead (pro-fast or lite for drafts); warned"),
            fps=unsupported(f"always {NATIVE_FPS} fps; other values warned"),
            seed=native("seed; unset: one derived from SceneFlow's reference for the send"),
            image_url=image,
            audio=native("generate_audio; unset: not sent, Ark's default")
            if m.audio
            else unsupported("silent video only; audio on is warned, not sent"),
        ),
        options=OPTIONS,
        aspect_ratios=ASPECT_RATIOS,
        durations=[float(d) for d in range(m.min_duration, m.max_duration + 1)],
        min_duration=m.min_duration,
        max_duration=m.max_duration,
        resolutions=list(m.resolutions),
        text_to_video=m.text,
        image_to_video=m.image,
    )


MODEL_CAPABILITIES = {name: model_capabilities(m) for name, m in MODELS.items()}


class _Created(BaseModel):
    id: str


class _TaskError(BaseModel):
    code: str | None = None
    message: str | None = None


class _Content(BaseModel):
    video_url: str | None = None  # signed: never logged or stored in details
    last_frame_url: str | None = None


class _Usage(BaseModel):
    completion_tokens: int | None = None
    total_tokens: int | None = None


class _Task(BaseModel):
    id: str
    model: str | None = None
    status: TaskStatus
    error: _TaskError | None = None
    content: _Content | None = None
    usage: _Usage | None = None
    created_at: int | None = None  # unix seconds
    updated_at: int | None = None
    seed: int | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    framespersecond: int | None = None
    service_tier: str | None = None
    execution_expires_after: int | None = None


class _TaskPage(BaseModel):
    total: int
    items: list[_Task] = Field(default_factory=list)


class SeedanceAdapter(HttpAdapter):
    """Seedance video generation through Ark's content-generation tasks."""

    key = "seedance"
    default_base_url = DEFAULT_BASE_URL
    moderation_markers = (*HttpAdapter.moderation_markers, *MODERATION_MARKERS)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=DEFAULT_MODEL,
            models=MODEL_CAPABILITIES,
            credential_fields=["api_key"],
            can_cancel=True,  # queued tasks only; see cancel()
            connection_test="GET /contents/generations/tasks?page_num=1&page_size=1 (lists "
            "tasks; costs nothing)",
            # Ark publishes no polling guidance and the SDK has no waiter; a 5 s clip takes
            # about a minute, so 5 s backing off to 30 s keeps polls few.
            poll_interval=5,
            max_poll_interval=30,
            deadline=1800,
            # At most 120 tasks queue per account (BytePlus docs); a full queue waits long.
            queue_deadline=3600,
        )

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        api_key = credentials.require("api_key", provider=self.key)
        # A key pasted with a trailing newline makes httpx fail mid-request, which on a submit
        # would look like a lost (possibly billed) reply.
        if not api_key.isascii() or any(c.isspace() for c in api_key):
            raise CredentialsError(
                "Stored credentials for 'seedance' have an 'api_key' with spaces, line breaks "
                "or non-ASCII characters. Run `sceneflow creds set USER seedance` with the Ark "
                "API key exactly as issued."
            )
        return {"Authorization": f"Bearer {api_key}"}

    def error_message(self, response: httpx.Response) -> str:
        """Ark's `{"error": {"code", "message", "param", "type"}}` as `code: message`; the code
        is what tells a content-filter refusal or a rate limit apart."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            code, message = error.get("code"), error.get("message")
            return (f"{code}: {message}" if code and message else str(code or message))[:500]
        return super().error_message(response)

    # -- request mapping -------------------------------------------------------------------

    @staticmethod
    def _spec(name: str) -> Model | None:
        return MODELS.get(name.removeprefix(VOLCENGINE_PREFIX))

    @staticmethod
    def _resolution(request: StandardVideoRequest) -> str | None:
        m = _WXH.match(request.resolution)
        if m:
            return SHORT_SIDES.get(min(int(m.group(1)), int(m.group(2))))
        return request.resolution if request.resolution in SHORT_SIDES.values() else None

    def validate(self, request: StandardVideoRequest) -> list[str]:
        name = request.model or DEFAULT_MODEL
        model = self._spec(name)
        if model is None:
            allowed = ", ".join(MODELS)
            raise RequestValidationError(
                [
                    f"model: {name!r} is not a Seedance model SceneFlow maps; allowed: {allowed} "
                    f"(or the same with the Volcengine prefix {VOLCENGINE_PREFIX!r})"
                ],
                provider=self.key,
            )
        problems: list[str] = []
        if request.image_url and not model.image:
            image_models = ", ".join(n for n, m in MODELS.items() if m.image)
            problems.append(
                f"image_url: {name} is text-to-video only; leave image_url empty, or choose one "
                f"of {image_models}"
            )
        if not request.image_url and not model.text:
            text_models = ", ".join(n for n, m in MODELS.items() if m.text)
            problems.append(
                f"image_url: {name} turns an image into video and needs a first frame; set "
                f"image_url, or choose one of {text_models}"
            )
        if request.aspect_ratio not in ASPECT_RATIOS:
            problems.append(
                f"aspect_ratio: seedance accepts {', '.join(ASPECT_RATIOS)}; "
                f"got {request.aspect_ratio}"
            )
        if (
            request.duration != int(request.duration)
            or not model.min_duration <= request.duration <= model.max_duration
        ):
            problems.append(
                f"duration: {name} takes whole seconds from {model.min_duration} to "
                f"{model.max_duration}; got {request.duration:g}"
            )
        resolution = self._resolution(request)
        if resolution not in model.resolutions:
            problems.append(
                f"resolution: {name} renders {', '.join(model.resolutions)} (or WxH with that "
                f"short side); got {request.resolution}"
            )
        if request.image_url and request.image_url.startswith("data:"):
            if not re.match(r"^data:image/[\w.+-]+;base64,", request.image_url):
                problems.append(
                    "image_url: seedance takes a data: URL only as data:image/<format>;base64,..."
                )
        spec_name = name.removeprefix(VOLCENGINE_PREFIX)
        problems += option_problems(
            request, MODEL_CAPABILITIES, spec_name, f"seedance model {name}"
        )
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        renders = None if model.audio else False
        return self._warnings(request, resolution) + audio_warnings(
            f"seedance model {name}", request, renders=renders
        )

    def _warnings(self, request: StandardVideoRequest, resolution: str | None) -> list[str]:
        warn: dict[str, str] = {}
        if "camera_fixed" in request.options:
            warn["motion_intensity"] = "not sent; options.camera_fixed sets the camera instead"
        elif request.motion_intensity != 1:
            warn["motion_intensity"] = (
                "only 1 (a still camera, camera_fixed=true) is expressed; other values send "
                "camera_fixed=false, so describe the amount of motion in the prompt"
            )
        if request.negative_prompt:
            warn["negative_prompt"] = "not sent; say what to avoid in the prompt"
        if request.fps != NATIVE_FPS:
            warn["fps"] = f"not sent; seedance renders {NATIVE_FPS} fps"
        if request.quality != "standard":
            warn["quality"] = "not sent; choose the model instead (pro-fast or lite for drafts)"
        warnings = [unsupported_warning(self.key, f, what) for f, what in warn.items()]
        m = _WXH.match(request.resolution)
        if m:
            a, b = (int(x) for x in request.aspect_ratio.split(":"))
            if abs(int(m.group(1)) / int(m.group(2)) - a / b) > 0.02:
                warnings.append(
                    f"resolution: {request.resolution} is not {request.aspect_ratio}; seedance "
                    f"shapes the frame by aspect_ratio at {resolution}"
                )
        return warnings

    def build_body(
        self, request: StandardVideoRequest, *, reference: str | None = None
    ) -> dict[str, Any]:
        """The create body. Raises RequestValidationError as validate() does. With the send's
        `reference`, a request that sets no seed gets `_reference_seed(reference)`, so a lost
        send's task can be told from same-settings tasks of other sends (see find_submitted)."""
        self.validate(request)
        content: list[dict[str, Any]] = [{"type": "text", "text": compose_prompt(request)}]
        if request.image_url:
            content.append(
                {"type": "image_url", "image_url": {"url": request.image_url}, "role": FIRST_FRAME}
            )
        body: dict[str, Any] = {
            "model": request.model or DEFAULT_MODEL,
            "content": content,
            "ratio": request.aspect_ratio,
            "resolution": self._resolution(request),
            "duration": int(request.duration),
            "camera_fixed": request.motion_intensity == 1,
        }
        if request.seed is not None:
            body["seed"] = request.seed  # the user's own, sent unchanged
        elif reference:
            # No seed means "any seed": Ark would pick a random one, and one hashed from the
            # reference is just as arbitrary, so the user gets what they asked for, and the
            # task's echoed seed names the send that created it.
            body["seed"] = _reference_seed(reference)
        spec = self._spec(body["model"])
        if request.audio is not None and spec is not None and spec.audio:
            body["generate_audio"] = request.audio
        body |= request.options  # validate() checked them: each is a top-level create field
        return body

    # -- calls -----------------------------------------------------------------------------

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        """Create the task. Ark has no field for a caller's name of a task (`safety_identifier`
        names the end user for abuse tracking, not a send), so `reference` travels only as the
        seed derived from it, and only when the request sets no seed of its own."""
        body = self.build_body(request, reference=reference)
        response = await self.request(
            "POST", TASKS, credentials=credentials, submit=True, json=body, headers=_JSON
        )
        return self.parse(_Created, response, "task creation", submit=True).id

    async def _task(self, provider_job_id: str, credentials: Credentials) -> _Task:
        response = await self.request(
            "GET", _task_path(provider_job_id), credentials=credentials, headers=_JSON
        )
        return self.parse(_Task, response, "task")

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        """The task mapped onto the standard result. A task the content filter refused (an
        error code ending in SensitiveContentDetected) raises ModerationError."""
        task = await self._task(provider_job_id, credentials)
        error = task.error or _TaskError()
        reason = f"{error.message or 'no reason given'}" + (
            f" ({error.code})" if error.code else ""
        )
        if task.status == "failed" and _is_moderation(error.code):
            raise ModerationError(
                f"seedance refused the content of task {task.id}: {reason}. Change the prompt "
                "or image rather than retrying",
                provider=self.key,
            )
        details: dict[str, Any] = {
            "seedance_status": task.status,
            "model": task.model,
            "created_at": task.created_at,
            "seed": task.seed,
            "ratio": task.ratio,
            "resolution": task.resolution,
            "duration": task.duration,
            "fps": task.framespersecond,
        }
        if task.usage and task.usage.completion_tokens is not None:
            details["completion_tokens"] = task.usage.completion_tokens  # what Ark bills
        result = StandardVideoResult(
            status=_STATUS[task.status], provider_job_id=task.id, provider_details=details
        )
        if task.status == "failed":
            result.error_message = reason
            result.provider_details["error_code"] = error.code
        elif task.status == "expired":
            expiry = task.execution_expires_after
            within = f" within {expiry} s" if expiry else ""
            result.error_message = (
                f"the task expired: Ark did not finish it{within} (execution_expires_after)"
            )
        elif task.status == "succeeded":
            video = task.content.video_url if task.content else None
            if not video:
                result.status = JobStatus.FAILED
                result.error_message = "seedance reported succeeded but sent no content.video_url"
            else:
                result.progress, result.video_url = 100, video
        return result

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """DELETE cancels a queued task, but on a finished task it deletes the record (and the
        output with it), and a running task cannot be stopped. So the task is read first and
        DELETE is sent only while it is queued; otherwise RejectedError says why nothing was
        sent. A task already cancelled, or gone (404), counts as cancelled."""
        try:
            task = await self._task(provider_job_id, credentials)
            if task.status == "cancelled":
                return
            if task.status != "queued":
                why = (
                    "Ark cannot stop a running task; it will finish and be billed"
                    if task.status == "running"
                    else "a DELETE would delete its record and output"
                )
                raise RejectedError(
                    f"seedance: no cancel sent for task {task.id}, which is {task.status}: {why}",
                    provider=self.key,
                )
            await self.request(
                "DELETE",
                _task_path(provider_job_id),
                credentials=credentials,
                json={},
                headers=_JSON,
            )
        except RejectedError as e:
            if e.status_code != 404:
                raise

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        """Output URLs are signed storage links: fetched without our key, which must not travel
        to another host. A refused (expired) link is fetched once more from a fresh task read;
        a refusal there is RejectedError, not AuthError, since the key itself is fine."""
        job_id = result.provider_job_id
        try:
            return await self.fetch_to_file(require_output_url(result, self.key), destination)
        except AuthError:
            if not job_id:
                raise
        fresh = await self.status(job_id, credentials)
        try:
            return await self.fetch_to_file(require_output_url(fresh, self.key), destination)
        except AuthError as e:
            raise RejectedError(
                f"seedance: the output of task {job_id} was refused even from a "
                "fresh task read; its link expires after about 24 h",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self.request(
            "GET",
            TASKS,
            credentials=credentials,
            params={"page_num": 1, "page_size": 1},
            headers=_JSON,
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
        """The task the send named `reference` created, if Ark has it: tasks created since
        `since` on the same model with the same ratio, resolution and duration, walking
        `GET /contents/generations/tasks?filter.model=` newest first, a page at a time.

        A request that sets no seed was sent with `_reference_seed(reference)`, so a task with
        exactly that seed is this send's, and those are returned. Otherwise (the request set its
        own seed, or no reference is given) a matching task may be another send's with the same
        settings and another prompt, which Ark does not echo: any match gives no ids and
        `complete=False`, so the job stays UNKNOWN for its user to decide, and never takes a
        task another row paid for. A task that echoes no seed cannot be told apart either.

        The search is complete when it reached a page older than `since` or the end of the list
        within the page cap, and `since` lies within the 7 days the list keeps; a complete search
        with no match means nothing of the kind was created, so the send never arrived."""
        body = self.build_body(request, reference=reference)
        by_reference = request.seed is None and bool(reference)  # then the seed names the send
        cutoff = int(since.timestamp())  # created_at is whole seconds
        found: list[tuple[int, str]] = []
        unprovable = False  # a task matched that may be another send's
        complete = False
        for page_num in range(1, _LOOKUP_PAGES + 1):
            response = await self.request(
                "GET",
                TASKS,
                credentials=credentials,
                params={
                    "page_num": page_num,
                    "page_size": _LOOKUP_PAGE_SIZE,
                    "filter.model": body["model"],
                },
                headers=_JSON,
            )
            page = self.parse(_TaskPage, response, "task list")
            for task in page.items:
                at = task.created_at
                if (at is None or at >= cutoff) and _same_inputs(task, body):
                    if by_reference and task.seed == body["seed"]:
                        found.append((at or cutoff, task.id))
                    else:
                        unprovable = True
            older = all(t.created_at is not None and t.created_at < cutoff for t in page.items)
            if older or page_num * _LOOKUP_PAGE_SIZE >= page.total:
                complete = True
                break
        if not found and unprovable:
            return Lookup(job_ids=[], complete=False)
        in_window = since >= datetime.now(UTC) - LIST_WINDOW
        ids = [task_id for _, task_id in sorted(found, key=lambda f: f[0], reverse=True)]
        return Lookup(job_ids=list(dict.fromkeys(ids)), complete=complete and in_window)


def _reference_seed(reference: str) -> int:
    """A seed named by the send: the first 4 bytes of sha256(reference), 0 to 4294967295,
    inside Ark's seed range (-1 to 4294967295). The same reference always gives the same seed,
    across runs and versions, or a lookup made after an upgrade would miss the task a send
    made before it."""
    return int.from_bytes(hashlib.sha256(reference.encode()).digest()[:4], "big")


def _is_moderation(code: str | None) -> bool:
    return any(m in (code or "").lower() for m in MODERATION_MARKERS)


def _same_inputs(task: _Task, body: dict[str, Any]) -> bool:
    """The task's echoed settings agree with `body`; a setting the task does not echo cannot
    rule it out."""
    echoed: dict[str, Any] = {  # the model is filtered by the list call itself
        "ratio": task.ratio,
        "resolution": task.resolution,
        "duration": task.duration,
    }
    if "seed" in body:
        echoed["seed"] = task.seed
    return all(value is None or value == body[k] for k, value in echoed.items())


def _task_path(provider_job_id: str) -> str:
    return f"{TASKS}/{quote(provider_job_id, safe='')}"
