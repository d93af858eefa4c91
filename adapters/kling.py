"""Kling AI (Kuaishou) over its /v1/videos API: text2video and image2video tasks.

Kling has no official Python SDK, so no SDK is the oracle here. Every wire fact comes from
third-party copies of Kling's official pages (app.klingai.com/global/dev/document-api, a JS app
that cannot be read directly): "General Information" (JWT auth, the service-code table),
"Concurrency Rules", "Video Generation - Text to Video / Image to Video" (create, query single,
query list, the capability map), "Callback Protocol". The emulator
(tests/support/emulators/kling.py) writes those rules out independently, and it and
tests/adapters/test_kling.py are the oracle. Choices no source confirms are marked UNCONFIRMED:

* Auth: an HS256 JWT `{"iss": access key, "exp": now+1800, "nbf": now-5}` signed with the secret
  key, minted afresh for every request (nothing secret is cached; the docs' example values).
* The provider job id is `<kind>:<task_id>`, kind `text2video` or `image2video`: each kind has its
  own status path, `GET /v1/videos/<kind>/<task_id>`.
* Service codes in the `{code, message, request_id}` body decide the error, not the HTTP status
  alone: 1000-1004 AuthError; 1100-1102 (an account in arrears or out of resource packs, sent
  as HTTP 429) RejectedError, since waiting does not help; 1103 (no access to the model, HTTP 403)
  RejectedError, since the key itself is good; 1301 ModerationError; 1302/1303 RateLimitedError;
  1304 (IP allow-list) RejectedError; 5000/5002 on a submit AmbiguousSubmitError, 5001
  TransientError. A Retry-After header is honoured if sent (UNCONFIRMED that Kling sends one).
* Lost submits: `submit` sends `external_task_id` = SceneFlow's `reference`, and
  `find_submitted` asks `GET /v1/videos/<kind>/<reference>`. The docs say the single query takes
  "task_id or external_task_id" as the path parameter; that Kling tells them apart this way
  is UNCONFIRMED, and so is its "not found" answer (HTTP 400, code 1201, "Task not found", as a
  third-party probe reported). The live smoke test checks both against the real API. Without a
  reference, the list query (`GET /v1/videos/<kind>?pageNum=&pageSize=`) can only prove that no
  task at all was created since the send: Kling's list echoes no inputs.
* test_connection: that list query with pageSize=1 (free; suggested by third parties).
* Cancel: Kling documents no cancel or delete endpoint, so `can_cancel` is False and `cancel`
  sends nothing; a task runs to its end and then frees its concurrency slot.
* Downloads: `task_result.videos[0].url` is a CDN link in "hotlink protection format" kept for 30
  days; it is fetched with no auth header (there is no API key to send, only the per-request
  JWT, and it never leaves the API host).
* Polling: Kling gives no guidance; 10 s at first (third-party examples) up to 30 s.

Standard fields: `resolution` picks `mode` (std 720p / pro 1080p, per the capability map), and
`quality` picks between modes only where both render the requested resolution (kling-v1).
`motion_intensity` is not sent: `cfg_scale` is prompt adherence, not motion, and
`camera_control` moves the camera (and only on kling-v1 std 5 s), not the scene, so neither is
an honest home; it is warned about, as are `fps` (fixed per model: 30 for kling-v1 and
kling-v1-6 image-to-video, else 24) and `seed` (Kling has none). Image-to-video sends no
aspect ratio: the video takes the image's shape. `audio` is Kling's `sound` ("on"/"off",
kling-v2-6, default off), sent only when set; the other models make silent video.

Options (`request.options`): `mode` ("std"/"pro", where the model has both, instead of letting
`resolution` and `quality` pick it) and, on kling-v1 std 5 s (the capability map),
`camera_control` `{type, config: {horizontal, vertical, pan, tilt, roll, zoom}}`: type one of
simple, down_back, forward_up, right_turn_forward, left_turn_forward; `config` (each value -10
to 10, exactly one of them non-zero) only with simple. Both are sent under their own names.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import jwt
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
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RequestValidationError,
    TransientError,
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

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ENV_KEYS", "MODELS", "KlingAdapter"]

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"  # outside China ("General Information")
ENV_KEYS = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")  # used only by the live smoke test
DEFAULT_MODEL = "kling-v1-6"
TOKEN_LIFETIME = 1800  # seconds; the docs' example (a hard maximum is UNCONFIRMED)
TOKEN_LEEWAY = 5  # nbf this far in the past, for clock skew (the docs' example)
MAX_PROMPT = 2500  # prompt and negative_prompt, characters
MAX_IMAGE_BYTES = 10 * 1024 * 1024
DURATIONS = {5.0: "5", 10.0: "10"}
TEXT_ASPECT_RATIOS = ["16:9", "9:16", "1:1"]
KINDS = ("text2video", "image2video")
Kind = Literal["text2video", "image2video"]

_STATUS = {
    "submitted": JobStatus.QUEUED,
    "processing": JobStatus.PROCESSING,
    "succeed": JobStatus.COMPLETED,  # sic: the legacy API's spelling
    "failed": JobStatus.FAILED,
}
# Kling reports a late refusal only in task_status_msg ("such as triggering the content risk
# control of the platform"); these are the words it and its proxies use.
_MODERATION = ("risk control", "content security", "moderation", "sensitive", "violat")
_DATA_URL = re.compile(r"^data:image/(png|jpe?g);base64,(.*)$", re.DOTALL)
_LOOKUP_PAGE_SIZE = 500  # pageSize may be 1..500
_LOOKUP_PAGES = -(-LOOKUP_REACH // _LOOKUP_PAGE_SIZE)
_NOT_FOUND = ("not found", "not exist")


@dataclass(frozen=True)
class Model:
    """One Kling model: its modes (None: the model takes no mode) and their resolutions."""

    modes: dict[str | None, str]
    kinds: tuple[Kind, ...]
    fps: dict[Kind, int]
    sound: bool = False  # takes `sound` on/off
    camera_control: bool = False  # takes `camera_control` (std mode, 5 s)


_STD_PRO: dict[str | None, str] = {"std": "720p", "pro": "1080p"}
_BOTH: tuple[Kind, ...] = ("text2video", "image2video")
_FPS_24: dict[Kind, int] = {"text2video": 24, "image2video": 24}
# From the capability map of the "Video Generation" pages (kling-v1.x also take cfg_scale, not
# sent; kling-v2-6 takes sound, sent for `audio`). kling-v2-5-turbo std (720p) and kling-v2-6
# (pro only) are UNCONFIRMED: the map and the resolution table disagree.
MODELS: dict[str, Model] = {
    "kling-v1": Model(
        {"std": "720p", "pro": "720p"},
        _BOTH,
        {"text2video": 30, "image2video": 30},
        camera_control=True,
    ),
    "kling-v1-6": Model(_STD_PRO, _BOTH, {"text2video": 24, "image2video": 30}),
    "kling-v2-master": Model({None: "720p"}, _BOTH, _FPS_24),
    "kling-v2-1": Model(_STD_PRO, ("image2video",), {"image2video": 24}),
    "kling-v2-1-master": Model({None: "1080p"}, _BOTH, _FPS_24),
    "kling-v2-5-turbo": Model(_STD_PRO, _BOTH, _FPS_24),
    "kling-v2-6": Model({"pro": "1080p"}, _BOTH, _FPS_24, sound=True),
}
CAMERA_TYPES = ["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
CAMERA_CONTROL = OptionSpec(
    type="object",
    wire="camera_control",
    description="camera movement: a preset type, or simple with one config axis -10..10",
    fields={
        "type": OptionSpec(type="string", choices=CAMERA_TYPES, description="the movement"),
        "config": OptionSpec(
            type="object",
            description="simple only: exactly one axis non-zero",
            fields={
                axis: OptionSpec(type="number", minimum=-10, maximum=10, description=axis)
                for axis in CAMERA_AXES
            },
        ),
    },
    required=["type"],
)
_SHORT_SIDES = {720: "720p", 1080: "1080p"}
_WXH = re.compile(r"^(\d+)x(\d+)$")


def _resolutions(m: Model) -> list[str]:
    return sorted(set(m.modes.values()))


def model_capabilities(name: str, m: Model) -> ModelCapabilities:
    modes = ", ".join(f"{res} -> {mode}" for mode, res in m.modes.items() if mode) or "none"
    fps = ", ".join(f"{kind} {rate}" for kind, rate in m.fps.items())
    multi = len(m.modes) > 1 and len(set(m.modes.values())) == 1
    options: dict[str, OptionSpec] = {}
    named_modes = [mode for mode in m.modes if mode]
    if named_modes:
        options["mode"] = OptionSpec(
            type="string",
            choices=named_modes,
            wire="mode",
            description="the mode, instead of resolution and quality picking it",
        )
    if m.camera_control:
        options["camera_control"] = CAMERA_CONTROL
    return ModelCapabilities(
        fields=field_table(
            prompt=native("<= 2,500 characters, style included"),
            negative_prompt=native("<= 2,500 characters"),
            aspect_ratio=native("text-to-video: 16:9, 9:16, 1:1; image-to-video follows the image"),
            motion_intensity=unsupported(
                "not sent, warned: cfg_scale is prompt adherence and camera_control moves the "
                "camera, neither is motion intensity"
            ),
            duration=mapped('"5" or "10" (a string); other lengths rejected'),
            resolution=mapped(
                f"picks mode ({modes})" if any(m.modes) else f"fixed {_resolutions(m)[0]}"
            ),
            style=mapped("appended to the prompt"),
            quality=mapped("draft/standard -> std, high -> pro")
            if multi
            else unsupported("resolution picks the mode; warned when set"),
            fps=unsupported(f"fixed per model ({fps}); warned when set otherwise"),
            seed=unsupported("Kling has no seed; warned when set"),
            image_url=mapped(
                "image on /v1/videos/image2video; http(s) URL, or a PNG/JPEG data: URL sent as "
                "bare base64, <= 10 MB"
            ),
            audio=native('sound "on"/"off"; unset: not sent, Kling\'s default (off)')
            if m.sound
            else unsupported("silent video only; audio on is warned, not sent"),
        ),
        options=options,
        aspect_ratios=TEXT_ASPECT_RATIOS,
        durations=sorted(DURATIONS),
        min_duration=min(DURATIONS),
        max_duration=max(DURATIONS),
        resolutions=_resolutions(m),
        text_to_video="text2video" in m.kinds,
        image_to_video="image2video" in m.kinds,
    )


_CAPABILITIES = Capabilities(
    provider="kling",
    default_model=DEFAULT_MODEL,
    models={name: model_capabilities(name, m) for name, m in MODELS.items()},
    credential_fields=["access_key", "secret_key"],
    can_cancel=False,  # no cancel or delete endpoint is documented
    connection_test="GET /v1/videos/text2video?pageNum=1&pageSize=1 (lists one task; free)",
    poll_interval=10,
    max_poll_interval=30,
    deadline=1800,
    queue_deadline=3600,
)


class _Video(BaseModel):
    id: str | None = None
    url: str  # a CDN link: never logged or stored
    duration: str | None = None


class _TaskResult(BaseModel):
    videos: list[_Video] = Field(default_factory=list)


class _TaskInfo(BaseModel):
    external_task_id: str | None = None


class _Task(BaseModel):
    task_id: str
    task_status: Literal["submitted", "processing", "succeed", "failed"]
    task_status_msg: str | None = None
    task_info: _TaskInfo | None = None
    created_at: int | None = None  # ms since the epoch
    updated_at: int | None = None
    final_unit_deduction: str | None = None
    task_result: _TaskResult | None = None


class _Created(BaseModel):
    task_id: str


class _CreateReply(BaseModel):
    code: Literal[0]
    data: _Created


class _TaskReply(BaseModel):
    code: Literal[0]
    data: _Task


class _ListReply(BaseModel):
    code: Literal[0]
    data: list[_Task]


def _service_code(response: httpx.Response) -> tuple[int | None, str]:
    """Kling's `code` and `message` from a body, or (None, "") when it has none."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        return None, ""
    return body["code"], str(body.get("message") or "")[:300]


def _now() -> int:
    return int(time.time())


def _split(provider_job_id: str) -> tuple[Kind, str]:
    kind, _, task_id = provider_job_id.partition(":")
    if kind not in KINDS or not task_id:
        raise NotFoundError(
            f"kling job id {provider_job_id!r} is not '<text2video|image2video>:<task id>' as "
            "submit returns it; copy the whole job id"
        )
    return kind, task_id  # type: ignore[return-value]


class KlingAdapter(HttpAdapter):
    """Kling's legacy /v1/videos text2video and image2video tasks, with JWT auth."""

    key = "kling"
    default_base_url = DEFAULT_BASE_URL
    moderation_markers = (*HttpAdapter.moderation_markers, *_MODERATION)

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        access = credentials.require("access_key", provider=self.key)
        secret = credentials.require("secret_key", provider=self.key)
        for name, value in (("access_key", access), ("secret_key", secret)):
            if not value.isascii() or any(c.isspace() for c in value):
                raise CredentialsError(
                    f"Stored credentials for 'kling' have a {name!r} with spaces, line breaks or "
                    "non-ASCII characters. Run `sceneflow creds set USER kling` with the keys "
                    "exactly as issued."
                )
        now = _now()
        claims = {"iss": access, "exp": now + TOKEN_LIFETIME, "nbf": now - TOKEN_LEEWAY}
        token = jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})
        return {"Authorization": f"Bearer {token}"}

    # -- errors ----------------------------------------------------------------------------

    def error_message(self, response: httpx.Response) -> str:
        code, message = _service_code(response)
        if code is None:
            return super().error_message(response)
        return f"{message or 'no message'} (code {code})"

    def raise_for_status(self, response: httpx.Response, *, submit: bool = False) -> None:
        """Kling's service code decides, where the body has one (see the module docstring)."""
        code, _ = _service_code(response)
        if code is None or code == 0:
            super().raise_for_status(response, submit=submit)
            return
        status = response.status_code
        msg = f"kling answered HTTP {status}: {self.error_message(response)}"
        if 1000 <= code <= 1004:
            clock = " (and that this machine's clock is right)" if code in (1003, 1004) else ""
            raise AuthError(
                f"{msg}. The stored keys were rejected: run `sceneflow creds set USER kling` with "
                f"a valid access key and secret key{clock}, then `sceneflow creds test USER kling`",
                provider=self.key,
                status_code=status,
            )
        if code in (1302, 1303):
            raise RateLimitedError(
                f"{msg}; Kling counts running tasks per account, so wait for some to finish",
                provider=self.key,
                retry_after=parse_retry_after(response.headers),
                status_code=status,
            )
        if code == 1301:
            raise ModerationError(
                f"{msg}. Kling's content filter refused the input: change the prompt or image",
                provider=self.key,
                status_code=status,
            )
        if code in (1100, 1101, 1102):
            raise RejectedError(
                f"{msg}. The Kling account cannot run tasks (arrears, or resource packs used up "
                "or expired): top it up in Kling's console",
                provider=self.key,
                status_code=status,
            )
        if code in (5000, 5002) and submit:
            raise AmbiguousSubmitError(
                f"{msg}; the task may have been created", provider=self.key, status_code=status
            )
        if 5000 <= code <= 5999:
            raise TransientError(msg, provider=self.key, status_code=status)
        # 1103 (no access to the model), 12xx (parameters), 1300, 1304 and unknown codes.
        raise RejectedError(msg, provider=self.key, status_code=status)

    # -- request mapping -------------------------------------------------------------------

    def _resolve(self, request: StandardVideoRequest) -> tuple[str, Model, Kind, str | None]:
        """Model, kind and mode for `request`, or RequestValidationError with every problem."""
        name = request.model or DEFAULT_MODEL
        problems: list[str] = []
        model = MODELS.get(name)
        if model is None:
            problems.append(
                f"model: {name!r} is not a Kling model SceneFlow maps; allowed: {', '.join(MODELS)}"
            )
            model = MODELS[DEFAULT_MODEL]  # keep checking so every problem is reported at once
        kind: Kind = "image2video" if request.image_url else "text2video"
        if kind not in model.kinds:
            problems.append(
                f"image_url: {name} only turns an image into video; set image_url, or choose one "
                f"of {', '.join(n for n, m in MODELS.items() if 'text2video' in m.kinds)}"
            )
        prompt = len(compose_prompt(request))
        if prompt > MAX_PROMPT:
            problems.append(
                f"prompt: Kling takes at most {MAX_PROMPT} characters including the folded-in "
                f"style; got {prompt}"
            )
        if request.negative_prompt and len(request.negative_prompt) > MAX_PROMPT:
            problems.append(
                f"negative_prompt: Kling takes at most {MAX_PROMPT} characters; "
                f"got {len(request.negative_prompt)}"
            )
        if kind == "text2video" and request.aspect_ratio not in TEXT_ASPECT_RATIOS:
            problems.append(
                f"aspect_ratio: Kling text-to-video makes {', '.join(TEXT_ASPECT_RATIOS)}; "
                f"got {request.aspect_ratio}"
            )
        if request.duration not in DURATIONS:
            problems.append(f"duration: Kling makes 5 s or 10 s videos; got {request.duration:g}")
        chosen = request.options.get("mode")
        if isinstance(chosen, str) and chosen in model.modes:
            mode: str | None = chosen
            wanted = self._resolution(request)
            if "resolution" in request.model_fields_set and wanted != model.modes[chosen]:
                problems.append(
                    f"options.mode: {name} renders {model.modes[chosen]} in mode {chosen}, not "
                    f"resolution {request.resolution}; set resolution {model.modes[chosen]} or "
                    "leave it out"
                )
        else:
            mode = self._mode(name, model, request, problems)
        if request.image_url:
            problems += self._image_problems(request.image_url)
        problems += option_problems(request, _CAPABILITIES.models, name, f"kling model {name}")
        if not any(p.startswith("options.camera_control") for p in problems):
            problems += self._camera_problems(name, mode, request)
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        return name, model, kind, mode

    @staticmethod
    def _camera_problems(name: str, mode: str | None, request: StandardVideoRequest) -> list[str]:
        """Kling's rules for camera_control beyond its shape (the capability map and the
        create pages): std mode, 5 s, and `config` with exactly one axis only for simple."""
        camera = request.options.get("camera_control")
        if not isinstance(camera, dict) or name not in _CAPABILITIES.models:
            return []
        if "camera_control" not in _CAPABILITIES.models[name].options:
            return []
        problems = []
        if mode != "std" or request.duration != 5:
            problems.append(
                f"options.camera_control: {name} moves the camera only in mode std at 5 s; "
                f"this request is mode {mode} at {request.duration:g} s"
            )
        config = camera.get("config")
        if camera.get("type") == "simple":
            moving = [a for a, v in (config or {}).items() if v not in (0, None)]
            if not isinstance(config, dict) or len(moving) != 1:
                problems.append(
                    "options.camera_control.config: type simple needs exactly one of "
                    f"{', '.join(CAMERA_AXES)} set to a non-zero value from -10 to 10"
                )
        elif config is not None:
            problems.append(
                f"options.camera_control.config: only type simple takes a config; type "
                f"{camera.get('type')} is a preset movement, so leave config out"
            )
        return problems

    @staticmethod
    def _resolution(request: StandardVideoRequest) -> str | None:
        m = _WXH.match(request.resolution)
        if m:
            return _SHORT_SIDES.get(min(int(m.group(1)), int(m.group(2))))
        return request.resolution if request.resolution in _SHORT_SIDES.values() else None

    def _mode(
        self, name: str, model: Model, request: StandardVideoRequest, problems: list[str]
    ) -> str | None:
        wanted = self._resolution(request)
        modes = [mode for mode, res in model.modes.items() if res == wanted]
        if not modes:
            allowed = ", ".join(_resolutions(model))
            problems.append(
                f"resolution: {name} renders {allowed} (or WxH with that short side); "
                f"got {request.resolution}"
            )
            return None
        if len(modes) > 1:  # both modes render it: quality chooses
            return "pro" if request.quality == "high" else "std"
        return modes[0]

    @staticmethod
    def _image_problems(url: str) -> list[str]:
        # The URL is never echoed: it may be signed.
        if not url.startswith("data:"):
            return []
        m = _DATA_URL.match(url)
        if not m:
            return [
                "image_url: Kling takes PNG or JPEG images; a data: URL must be data:image/png "
                "or data:image/jpeg with ;base64"
            ]
        try:
            size = len(base64.b64decode(m.group(2), validate=True))
        except (binascii.Error, ValueError):
            return ["image_url: the data: URL's base64 cannot be decoded"]
        if size > MAX_IMAGE_BYTES:
            return [f"image_url: Kling takes images up to 10 MB; got {size} bytes"]
        return []

    def validate(self, request: StandardVideoRequest) -> list[str]:
        name, model, kind, mode = self._resolve(request)
        notes = {"motion_intensity": "not sent; describe the amount of motion in the prompt"}
        if kind == "image2video":
            notes["aspect_ratio"] = "not sent for image-to-video; the video takes the image's shape"
        fps = model.fps[kind]
        if "fps" in request.model_fields_set and request.fps != fps:
            notes["fps"] = f"not sent; {name} renders {fps} fps"
        if request.seed is not None:
            notes["seed"] = "not sent; results are not reproducible"
        warnings = [unsupported_warning(self.key, f, what) for f, what in notes.items()]
        chooses = len(model.modes) > 1 and len(set(model.modes.values())) == 1
        if "quality" in request.model_fields_set and not chooses:
            picked = f"mode {mode}" if mode else "the model's only mode"
            warnings.append(
                f"quality: ignored; on {name} resolution {request.resolution} picks {picked}"
            )
        renders = None if model.sound else False
        return warnings + audio_warnings(f"kling model {name}", request, renders=renders)

    def build_body(
        self, request: StandardVideoRequest, reference: str | None = None
    ) -> tuple[Kind, dict[str, Any]]:
        """The kind (endpoint) and JSON body for `request`, validating it first."""
        name, _, kind, mode = self._resolve(request)
        body: dict[str, Any] = {"model_name": name, "prompt": compose_prompt(request)}
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if mode:
            body["mode"] = mode
        if kind == "text2video":
            body["aspect_ratio"] = request.aspect_ratio
        else:
            assert request.image_url  # kind says so
            m = _DATA_URL.match(request.image_url)
            body["image"] = m.group(2) if m else request.image_url  # bare base64, no prefix
        body["duration"] = DURATIONS[request.duration]
        if request.audio is not None and MODELS[name].sound:
            body["sound"] = "on" if request.audio else "off"
        if "camera_control" in request.options:
            body["camera_control"] = request.options["camera_control"]
        if reference:
            body["external_task_id"] = reference
        return kind, body

    # -- calls -----------------------------------------------------------------------------

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        kind, body = self.build_body(request, reference)
        response = await self.request(
            "POST", f"/v1/videos/{kind}", credentials=credentials, submit=True, json=body
        )
        reply = self.parse(_CreateReply, response, "task creation", submit=True)
        return f"{kind}:{reply.data.task_id}"

    async def _task(self, kind: Kind, task_id: str, credentials: Credentials) -> _Task:
        path = f"/v1/videos/{kind}/{quote(task_id, safe='')}"
        response = await self.request("GET", path, credentials=credentials)
        return self.parse(_TaskReply, response, "task").data

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        """The task mapped onto the standard result. A task Kling's content filter refused
        later (task_status_msg about risk control) raises ModerationError."""
        kind, task_id = _split(provider_job_id)
        task = await self._task(kind, task_id, credentials)
        reason = task.task_status_msg or ""
        if task.task_status == "failed" and any(m in reason.lower() for m in _MODERATION):
            raise ModerationError(
                f"kling: task {task_id} was refused by the content filter: {reason}. Change "
                "the prompt or image rather than retrying",
                provider=self.key,
            )
        details: dict[str, Any] = {"kling_status": task.task_status, "kind": kind}
        if task.created_at is not None:
            details["created_at"] = datetime.fromtimestamp(task.created_at / 1000, UTC).isoformat()
        result = StandardVideoResult(
            status=_STATUS[task.task_status],
            provider_job_id=f"{kind}:{task.task_id}",
            provider_details=details,
        )
        if task.final_unit_deduction:
            try:
                result.cost = float(task.final_unit_deduction)
            except ValueError:
                pass
        videos = task.task_result.videos if task.task_result else []
        if task.task_status == "failed":
            result.error_message = reason or "Kling reported the task failed without a reason"
        elif task.task_status == "succeed":
            if not videos:
                result.status = JobStatus.FAILED
                result.error_message = "Kling reported succeed but returned no video"
            else:
                result.progress, result.video_url = 100, videos[0].url
                details["video_duration"] = videos[0].duration
        return result

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """Does nothing: Kling documents no way to cancel or delete a task (`can_cancel` is
        False). The task runs to its end on Kling's side and stays visible under its id."""

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        """Fetch the CDN link without auth: the JWT is for the API host only. A refusal by the
        CDN says nothing about the keys, so it is not an AuthError."""
        try:
            return await self.fetch_to_file(require_output_url(result, self.key), destination)
        except AuthError as e:
            raise RejectedError(
                f"kling: the CDN refused the output of {result.provider_job_id} (HTTP "
                f"{e.status_code}); outputs are kept 30 days",
                provider=self.key,
                status_code=e.status_code,
            ) from e

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self.request(
            "GET",
            "/v1/videos/text2video",
            credentials=credentials,
            params={"pageNum": 1, "pageSize": 1},
        )
        self.parse(_ListReply, response, "task list")

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup:
        """The task a lost submit created, asked for by its external_task_id (`reference`).
        Kling's answer for that id, found or not, is complete: the id is unique per account.

        Without a reference, Kling's list (which echoes no inputs) can only show that no task
        of this kind was created since `since` (complete) or that some were (not complete)."""
        kind, _ = self.build_body(request)
        if reference is None:
            return await self._nothing_since(kind, credentials, since)
        try:
            task = await self._task(kind, reference, credentials)
        except RejectedError as e:
            if e.status_code in (400, 404) and any(w in str(e).lower() for w in _NOT_FOUND):
                return Lookup(job_ids=[], complete=True)
            raise
        echoed = task.task_info.external_task_id if task.task_info else None
        if echoed != reference:  # Kling read the id as a task id of some other task
            return Lookup(job_ids=[], complete=True)
        return Lookup(job_ids=[f"{kind}:{task.task_id}"], complete=True)

    async def _nothing_since(self, kind: Kind, credentials: Credentials, since: datetime) -> Lookup:
        # The list's order is not documented, so every page is read up to the cap.
        after_ms = since.timestamp() * 1000
        for page in range(1, _LOOKUP_PAGES + 1):
            response = await self.request(
                "GET",
                f"/v1/videos/{kind}",
                credentials=credentials,
                params={"pageNum": page, "pageSize": _LOOKUP_PAGE_SIZE},
            )
            tasks = self.parse(_ListReply, response, "task list").data
            if any(t.created_at is None or t.created_at >= after_ms for t in tasks):
                return Lookup(job_ids=[], complete=False)
            if len(tasks) < _LOOKUP_PAGE_SIZE:
                return Lookup(job_ids=[], complete=True)
        return Lookup(job_ids=[], complete=False)
