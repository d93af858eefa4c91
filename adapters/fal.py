"""fal.ai queue API: submit to `queue.fal.run/<model>`, poll status, read the result, cancel.

Wire protocol: https://fal.ai/docs/model-endpoints/queue and
https://fal.ai/docs/inference-api/queue/cancel, checked against the official SDK `fal-client` 1.0.3
(`client.py`, `auth.py`; tests/adapters/test_fal_sdk.py). Inputs are model-specific, so this module
ships an explicit table of four well-known video endpoints and maps every StandardVideoRequest
field onto each (see `capabilities()`). Any other endpoint is mapped from its published OpenAPI
document (`adapters/schemas.py`), `GET https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id>`
(the "OpenAPI" link of every model's API page; public, so it is fetched without the key, which
never leaves queue.fal.run). The host is `DEFAULT_SCHEMA_BASE_URL`, replaced by the
`schema_base_url` argument or the SCENEFLOW_BASE_URLS__FAL_SCHEMA setting. The input object is
the JSON body of the endpoint's POST in `paths`. Documents are kept for the life of the process,
so many submits to one endpoint read it once; `submit` checks the request against it (enums,
ranges, types) and sends nothing when a value does not fit.

The job id is `<endpoint id>:<request id>` (`fal-ai/veo3/fast:6d5fbbbd-...`): stable, unsigned.
Status, result and cancel URLs are rebuilt from it as the SDK's `get_handle()` does
(`<base>/<owner>/<app>/requests/<id>`, sub-path dropped) rather than stored as fal returns them.

fal has no status value for failure or cancellation: a finished request is `COMPLETED`, and
`error`/`error_type` say it failed. `error_type == "client_cancelled"` (fal's request-error
table) is read as CANCELLED. A COMPLETED request whose result GET answers 4xx also FAILED
(legacy apps report errors only there), unless fal's content checker refused it: that raises
ModerationError, as a refusal at submit does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from adapters.base import (
    HttpAdapter,
    audio_warnings,
    compose_prompt,
    option_problems,
    require_output_url,
    unsupported_warning,
)
from adapters.fields import field_table, mapped, native, unsupported
from adapters.schemas import (
    InputSchema,
    SchemaCache,
    SchemaModel,
    SchemaReport,
    pending_schema_warning,
)
from sceneflow.errors import (
    AuthError,
    ModerationError,
    NotFoundError,
    ProviderError,
    RejectedError,
    RequestValidationError,
    TransientError,
)
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials, ModelCapabilities, OptionSpec
from sceneflow.settings import get_settings

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "DEFAULT_SCHEMA_BASE_URL", "FalAdapter"]

DEFAULT_BASE_URL = "https://queue.fal.run"
# Where each endpoint's OpenAPI document lives; `schema_base_url` or the setting replaces it.
DEFAULT_SCHEMA_BASE_URL = "https://fal.ai"
SCHEMA_PATH = "/api/openapi/queue/openapi.json"
SCHEMA_SETTING = "fal_schema"  # SCENEFLOW_BASE_URLS__FAL_SCHEMA
KLING_T2V = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
KLING_I2V = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
VEO3_FAST = "fal-ai/veo3/fast"
WAN_T2V = "fal-ai/wan/v2.2-a14b/text-to-video"
DEFAULT_MODEL = KLING_T2V

# fal namespaces whose app path has three parts (fal_client.client.APP_NAMESPACES).
_NAMESPACES = ("workflows", "comfy")
_ENDPOINT = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]+$")
# A fal key is "<key id>:<key secret>" (the SDK sends FAL_KEY_ID:FAL_KEY_SECRET the same way).
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{8,}:[A-Za-z0-9_-]{8,}$")


class _SubmitReply(BaseModel):
    request_id: str


class _StatusReply(BaseModel):
    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    queue_position: int | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None


class _File(BaseModel):
    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class _VideoResult(BaseModel):
    video: _File
    seed: int | None = None


class _ErrorItem(BaseModel):
    loc: list[str | int] = []
    msg: str
    type: str | None = None


class _ErrorBody(BaseModel):
    """Model errors carry a `detail` list, request errors a string plus `error_type`, cancel
    answers a `status` word (fal docs: "Model Errors", "Request Errors", queue cancel)."""

    detail: str | list[_ErrorItem] | None = None
    error_type: str | None = None
    status: str | None = None


_COMMON = {
    "prompt": native(),
    "style": mapped("appended to the prompt"),
    "negative_prompt": native("negative_prompt"),
    "aspect_ratio": native("aspect_ratio"),
    "motion_intensity": unsupported("not sent"),
    "quality": unsupported("not sent; choose the model for the quality instead"),
    "image_url": unsupported(f"text only; refused (use {KLING_I2V} for a first frame)"),
}
_SILENT = unsupported("silent video only; audio on is warned, not sent")
_KLING = field_table(
    **_COMMON,
    duration=mapped('duration as the string "5" or "10"'),
    resolution=unsupported("not sent; the model fixes it"),
    fps=unsupported("not sent; the model fixes it"),
    seed=unsupported("not sent; results vary from run to run"),
    audio=_SILENT,
)
# Inputs of each model's fal API page that no standard field fills, sent under their names.
_KLING_OPTIONS = {
    "cfg_scale": OptionSpec(
        type="number",
        minimum=0,
        maximum=1,
        wire="cfg_scale",
        description="how closely to follow the prompt (fal's default 0.5)",
    )
}

_RATIOS3 = ["16:9", "9:16", "1:1"]
_CAPS: dict[str, ModelCapabilities] = {
    KLING_T2V: ModelCapabilities(
        fields=_KLING,
        options=_KLING_OPTIONS,
        aspect_ratios=_RATIOS3,
        durations=[5, 10],
        min_duration=5,
        max_duration=10,
    ),
    KLING_I2V: ModelCapabilities(
        fields=field_table(
            **_KLING
            | {
                "aspect_ratio": unsupported("not sent; the video follows the input image"),
                "image_url": native("image_url (required)"),
            }
        ),
        options=_KLING_OPTIONS,
        aspect_ratios=["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"],
        durations=[5, 10],
        min_duration=5,
        max_duration=10,
        text_to_video=False,
        image_to_video=True,
    ),
    VEO3_FAST: ModelCapabilities(
        fields=field_table(
            **_COMMON,
            duration=mapped('duration as "4s", "6s" or "8s"'),
            resolution=mapped('"720p"/"1080p"; WxH picks the tier by its short side'),
            fps=unsupported("not sent; the model fixes it"),
            seed=native("seed"),
            # fal's Veo 3 page bills $0.20 a second with audio off and $0.40 with it on.
            audio=native("generate_audio; unset: not sent, fal's default (on)"),
        ),
        options={
            "enhance_prompt": OptionSpec(
                type="boolean",
                wire="enhance_prompt",
                description="let the model rewrite the prompt (fal's default: on)",
            )
        },
        aspect_ratios=["16:9", "9:16"],
        durations=[4, 6, 8],
        min_duration=4,
        max_duration=8,
        resolutions=["720p", "1080p"],
    ),
    WAN_T2V: ModelCapabilities(
        fields=field_table(
            **_COMMON,
            duration=mapped("num_frames = duration x fps, 17 to 161 frames"),
            resolution=mapped('"480p"/"580p"/"720p"; WxH picks the tier by short side'),
            fps=native("frames_per_second"),
            seed=native("seed"),
            audio=_SILENT,
        ),
        aspect_ratios=_RATIOS3,
        max_duration=26,
        resolutions=["480p", "580p", "720p"],
    ),
}


def _tier(request: StandardVideoRequest) -> str:
    """The resolution as fal's "<short side>p" tier name."""
    if not re.match(r"^\d+x\d+$", request.resolution):
        return request.resolution
    return f"{min(request.frame_size())}p"


def _body(model: str, r: StandardVideoRequest) -> dict[str, Any]:
    """The model's input JSON. Fields it has no slot for are left out (validate() warns)."""
    caps = _CAPS[model]
    body: dict[str, Any] = {"prompt": compose_prompt(r)}
    if model == WAN_T2V:
        body |= {"num_frames": round(r.duration * r.fps), "frames_per_second": r.fps}
    else:
        body["duration"] = f"{r.duration:g}s" if model == VEO3_FAST else f"{r.duration:g}"
    if caps.image_to_video:
        body["image_url"] = r.image_url
    else:
        body["aspect_ratio"] = r.aspect_ratio
    if caps.resolutions:
        body["resolution"] = _tier(r)
    if r.negative_prompt:
        body["negative_prompt"] = r.negative_prompt
    if r.seed is not None and caps.fields["seed"].support == "native":
        body["seed"] = r.seed
    if r.audio is not None and caps.fields["audio"].support == "native":
        body["generate_audio"] = r.audio
    return body | r.options  # validate() checked them: each is an input of the model


# (schema host, endpoint id) -> the mapping onto its input schema, for the life of the process.
SCHEMAS: SchemaCache[tuple[str, str], SchemaModel] = SchemaCache()


def _input_node(document: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The JSON body schema of the endpoint's POST (its own path first, else the one POST)."""
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise ValueError("the document has no paths")
    candidates = [paths.get("/" + endpoint)] + [
        item for path, item in paths.items() if "/requests/" not in path
    ]
    for item in candidates:
        if not isinstance(item, dict) or not isinstance(item.get("post"), dict):
            continue
        body = item["post"].get("requestBody") or {}
        node = (body.get("content") or {}).get("application/json", {}).get("schema")
        if isinstance(node, dict):
            return node
    raise ValueError(f"no POST with a JSON body for {endpoint}")


def _queue_path(provider_job_id: str) -> str:
    """`/<owner>/<app>/requests/<id>` (plus namespace, minus sub-path), as the SDK builds it."""
    endpoint, _, request_id = provider_job_id.rpartition(":")
    if not (_ENDPOINT.match(endpoint) and _REQUEST_ID.match(request_id)):
        raise NotFoundError(
            f"fal job id {provider_job_id!r} is not '<model endpoint>:<request id>' as submit "
            "returns it; copy the whole job id"
        )
    parts = endpoint.split("/")
    size = 3 if parts[0] in _NAMESPACES else 2
    return "/" + "/".join(parts[:size]) + f"/requests/{request_id}"


class FalAdapter(HttpAdapter):
    """fal.ai queue API. Credentials: {"api_key": "<key id>:<key secret>"}."""

    key = "fal"
    default_base_url = DEFAULT_BASE_URL
    # fal's OpenAPI documents are public: `describe_model` needs no stored key.
    schema_credentials = False
    moderation_markers = ("content_policy_violation", "content checker", "nsfw", "moderation")

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        schema_base_url: str | None = None,
    ) -> None:
        super().__init__(client=client, base_url=base_url)
        self._schema_base_url = schema_base_url

    @property
    def schema_base_url(self) -> str:
        """Argument, else SCENEFLOW_BASE_URLS__FAL_SCHEMA, else https://fal.ai (read late:
        only an endpoint outside the table needs it)."""
        if self._schema_base_url is None:
            urls = {k.lower(): v for k, v in get_settings().base_urls.items()}
            self._schema_base_url = urls.get(SCHEMA_SETTING) or DEFAULT_SCHEMA_BASE_URL
        return self._schema_base_url.rstrip("/")

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        # fal's scheme word is "Key", not "Bearer" (fal_client.auth.AuthCredentials).
        return {"Authorization": f"Key {credentials.require('api_key', provider=self.key)}"}

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=DEFAULT_MODEL,
            # The table's endpoints, then every endpoint whose schema this process has read.
            models=_CAPS
            | {
                endpoint: model.capabilities()
                for (host, endpoint), model in SCHEMAS.items()
                if host == self.schema_base_url
            },
            credential_fields=["api_key"],
            can_cancel=True,
            connection_test=(
                "no network call: fal has no endpoint that only checks a key, so the key's "
                "shape ('<key id>:<key secret>') is checked locally; a revoked key shows up "
                "as AuthError on the first submit"
            ),
            # fal gives no polling guidance (the SDK polls every 0.1 s); video jobs take
            # minutes and can wait long in the queue.
            poll_interval=5,
            max_poll_interval=30,
            deadline=1800,
        )

    def validate(self, request: StandardVideoRequest) -> list[str]:
        model = request.model or DEFAULT_MODEL
        caps = _CAPS.get(model)
        if caps is None:
            self._check_endpoint(model)
            cached = SCHEMAS.get((self.schema_base_url, model))
            if cached is not None:
                return cached.build(request)[1]
            command = f"sceneflow providers {self.key} --model {model}"
            return [pending_schema_warning(f"{self.key} model {model}", command, request)]
        problems = self._problems(model, caps, request)
        problems += option_problems(request, _CAPS, model, f"fal model {model}")
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        renders = None if caps.fields["audio"].support == "native" else False
        return self._warnings(model, caps, request) + audio_warnings(
            f"fal model {model}", request, renders=renders
        )

    def _check_endpoint(self, model: str) -> None:
        if not _ENDPOINT.match(model):
            raise RequestValidationError(
                [
                    f"model: must be a fal endpoint id such as {KLING_T2V} (owner/app and an "
                    f"optional path; built in: {', '.join(_CAPS)}); got {model!r}"
                ],
                provider=self.key,
            )

    async def prepare(
        self, request: StandardVideoRequest, credentials: Credentials | None = None
    ) -> list[str]:
        """validate() with the endpoint's schema read first: raises RequestValidationError,
        returns the warnings. fal's schemas are public, so no credentials are needed."""
        model = request.model or DEFAULT_MODEL
        if model in _CAPS:
            return self.validate(request)
        return (await self.model_schema(model)).build(request)[1]

    async def model_schema(self, endpoint: str) -> SchemaModel:
        """The mapping onto `endpoint`'s published input schema, read once per process."""
        self._check_endpoint(endpoint)
        return await SCHEMAS.fetch(
            (self.schema_base_url, endpoint), lambda: self._fetch_schema(endpoint)
        )

    async def describe_model(
        self, endpoint: str, credentials: Credentials | None = None
    ) -> SchemaReport:
        """Where each field goes for `endpoint`: the built-in table, or its schema's mapping."""
        if endpoint in _CAPS:
            return SchemaReport(
                model=endpoint, source="SceneFlow's built-in table", capabilities=_CAPS[endpoint]
            )
        return (await self.model_schema(endpoint)).report(endpoint)

    async def _fetch_schema(self, endpoint: str) -> SchemaModel:
        url = self.schema_base_url + SCHEMA_PATH
        where = f"{url}?endpoint_id={endpoint}"
        try:
            # Public document: no credentials, so the key never goes to this other host.
            response = await self.request("GET", url, params={"endpoint_id": endpoint})
        except ProviderError as e:
            if isinstance(e, RejectedError) and e.status_code == 404:
                raise RequestValidationError(
                    [
                        f"model: fal has no endpoint {endpoint!r} (its OpenAPI document {where} "
                        "answered 404); check the endpoint id on https://fal.ai/models, or use "
                        f"one of {', '.join(_CAPS)}"
                    ],
                    provider=self.key,
                ) from e
            e.args = (
                f"fal: reading the input schema of {endpoint} from {where} failed, so nothing "
                f"was sent: {e}",
            )
            raise
        try:
            document = response.json()
        except ValueError as e:
            raise TransientError(
                f"fal sent an OpenAPI document for {endpoint} that is not JSON (HTTP "
                f"{response.status_code}); nothing was sent, will retry",
                provider=self.key,
                status_code=response.status_code,
            ) from e
        try:
            if not isinstance(document, dict):
                raise ValueError("the document is not a JSON object")
            schema = InputSchema.from_openapi(_input_node(document, endpoint), document)
        except ValueError as e:
            raise RequestValidationError(
                [
                    f"model: SceneFlow cannot read the input schema fal publishes for "
                    f"{endpoint} at {where} ({e}); use one of {', '.join(_CAPS)}"
                ],
                provider=self.key,
            ) from e
        source = f"its published OpenAPI document ({where})"
        return SchemaModel(f"{self.key} model {endpoint}", schema, provider=self.key, source=source)

    def _problems(self, model: str, caps: ModelCapabilities, r: StandardVideoRequest) -> list[str]:
        problems = []
        if r.aspect_ratio not in caps.aspect_ratios:
            allowed = ", ".join(caps.aspect_ratios)
            problems.append(f"aspect_ratio: {model} supports {allowed}, not {r.aspect_ratio}")
        if caps.durations is not None and r.duration not in caps.durations:
            allowed = " or ".join(f"{d:g}" for d in caps.durations)
            problems.append(f"duration: {model} makes {allowed} second videos, not {r.duration:g}")
        if model == WAN_T2V and not 17 <= round(r.duration * r.fps) <= 161:
            problems.append(
                f"duration: {model} renders 17 to 161 frames; at fps={r.fps} that is "
                f"{17 / r.fps:.1f} to {161 / r.fps:.1f} seconds, not {r.duration:g} "
                "(lower fps for a longer video)"
            )
        if caps.resolutions is not None and _tier(r) not in caps.resolutions:
            problems.append(
                f"resolution: {model} supports {', '.join(caps.resolutions)}, not {r.resolution}"
            )
        if r.image_url and not caps.image_to_video:
            problems.append(f"image_url: {model} is text-to-video only; use model {KLING_I2V}")
        if not r.image_url and not caps.text_to_video:
            others = ", ".join(m for m, c in _CAPS.items() if c.text_to_video)
            problems.append(f"image_url: {model} needs a first frame; set it or use {others}")
        return problems

    def _warnings(self, model: str, caps: ModelCapabilities, r: StandardVideoRequest) -> list[str]:
        who = f"fal model {model}"
        unsupported = {f for f, m in caps.fields.items() if m.support == "unsupported"}
        # A field counts as set when the caller gave it (defaults are not requests).
        given = set(r.model_fields_set)
        if r.seed is None:
            given.discard("seed")
        warnings = []
        for field in ("aspect_ratio", "motion_intensity", "resolution", "quality", "fps", "seed"):
            if field in unsupported and field in given:
                warnings.append(unsupported_warning(who, field, caps.fields[field].note))
        return warnings

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        model = request.model or DEFAULT_MODEL
        if model in _CAPS:
            self.validate(request)
            body = _body(model, request)
        else:
            body = (await self.model_schema(model)).build(request)[0]
        response = await self.request(
            "POST", f"/{model}", credentials=credentials, json=body, submit=True
        )
        reply = self.parse(_SubmitReply, response, "submit", submit=True)
        return f"{model}:{reply.request_id}"

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        path = _queue_path(provider_job_id)
        response = await self.request("GET", f"{path}/status", credentials=credentials)
        reply = self.parse(_StatusReply, response, "status")
        model, _, request_id = provider_job_id.rpartition(":")
        details: dict[str, Any] = {"model": model, "request_id": request_id}

        def result(status: JobStatus, **kw: Any) -> StandardVideoResult:
            return StandardVideoResult(
                status=status, provider_job_id=provider_job_id, provider_details=details, **kw
            )

        if reply.status == "IN_QUEUE":
            details["queue_position"] = reply.queue_position
            return result(JobStatus.QUEUED)
        if reply.status == "IN_PROGRESS":
            return result(JobStatus.PROCESSING)  # fal reports no progress figure
        details["metrics"] = reply.metrics or {}
        if reply.error or reply.error_type:
            details["error_type"] = reply.error_type
            cancelled = reply.error_type == "client_cancelled"
            status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
            return result(status, error_message=reply.error or reply.error_type)
        try:
            response = await self.request("GET", path, credentials=credentials)
        except ModerationError:
            raise  # fal's content checker refused it after submission: the job ends here
        except RejectedError as e:
            # The run ended and fal refuses its result: the job failed with that reason.
            return result(JobStatus.FAILED, error_message=str(e))
        output = self.parse(_VideoResult, response, "result")
        details.update(output.video.model_dump(exclude={"url"}, exclude_none=True))
        if output.seed is not None:
            details["seed"] = output.seed
        return result(JobStatus.COMPLETED, progress=100, video_url=output.video.url)

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        path = _queue_path(provider_job_id)
        try:
            await self.request("PUT", f"{path}/cancel", credentials=credentials)
        except RejectedError as e:
            # fal answers 400 {"status": "ALREADY_COMPLETED"}: nothing is left to stop.
            if e.status_code != 400 or "ALREADY_COMPLETED" not in str(e):
                raise

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        # Outputs are public fal CDN URLs; sending the key there would hand it to another host.
        return await self.fetch_to_file(require_output_url(result, self.key), destination)

    async def test_connection(self, credentials: Credentials) -> None:
        key = credentials.require("api_key", provider=self.key)
        if not _KEY_SHAPE.match(key):
            raise AuthError(
                "fal: the stored api_key is not shaped like a fal key '<key id>:<key secret>' "
                "(create one at https://fal.ai/dashboard/keys; with a separate id and secret, "
                "join them with ':'); run `sceneflow creds set USER fal` with "
                '{"api_key": "<key id>:<key secret>"}',
                provider=self.key,
            )

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = _ErrorBody.model_validate_json(response.content)
        except ValidationError:
            return super().error_message(response)
        error_type = body.error_type or response.headers.get("x-fal-error-type")
        if isinstance(body.detail, list) and body.detail:
            return "; ".join(
                f"{'.'.join(str(p) for p in item.loc if p != 'body') or 'input'}: {item.msg}"
                + (f" ({item.type})" if item.type else "")
                for item in body.detail
            )[:500]
        text = body.detail if isinstance(body.detail, str) else body.status
        if not text:
            return super().error_message(response)
        return (f"{text} ({error_type})" if error_type else text)[:500]
