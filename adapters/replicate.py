"""Replicate: predictions on hosted models.

Docs: https://replicate.com/docs/topics/predictions/create-a-prediction and
https://replicate.com/docs/topics/predictions/lifecycle; checked against the official SDK
`replicate` 1.0.7 (tests/adapters/test_replicate_sdk.py).

Every Replicate model has its own input names. A small explicit table of well-known video
models (`MODELS`, below) says where each StandardVideoRequest field goes. Any other
`owner/name` (or `owner/name:<version>`) model is mapped from its published input schema
(`adapters/schemas.py`): `GET /v1/models/{owner}/{name}` -> `latest_version.openapi_schema`,
or `GET /v1/models/{owner}/{name}/versions/{id}` -> `openapi_schema` for a pinned version, then
`components.schemas.Input`. Reading it needs the user's token, so `submit` (and `prepare`)
fetch it, check the request against its enums and ranges, and send nothing when a value does
not fit. The schema is kept for the life of the process: a public model's under its name, a
private one's only for the token that could read it. `validate()` has no token; it checks
against a schema already read, and otherwise says that the check happens at submit.

Replicate deletes API outputs an hour after the prediction, so the pipeline downloads at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

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
from adapters.schemas import (
    InputSchema,
    SchemaCache,
    SchemaModel,
    SchemaReport,
    pending_schema_warning,
)
from sceneflow.errors import ModerationError, ProviderError, RejectedError, RequestValidationError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import (
    LOOKUP_REACH,
    Capabilities,
    Credentials,
    FieldMapping,
    Lookup,
    ModelCapabilities,
    OptionSpec,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ENV_KEY", "MODELS", "ReplicateAdapter"]

DEFAULT_BASE_URL = "https://api.replicate.com"
ENV_KEY = "REPLICATE_API_TOKEN"  # the SDK's variable; used only by the live smoke test
# Accepts the standard request's defaults (16:9, 5 s, text only) and has a negative prompt.
DEFAULT_MODEL = "kwaivgi/kling-v2.5-turbo-pro"
# Output files live on Replicate's CDN. The SDK sends its token with every output download;
# we do the same, but only to Replicate's own hosts so a model cannot steer the token elsewhere.
_TRUSTED_DOWNLOAD_HOSTS = ("replicate.delivery", "replicate.com")
_REF = re.compile(r"^([A-Za-z0-9][\w.-]*)/([\w.-]+)(?::([0-9a-f]{64}))?$")
# tqdm progress bars in the logs, as the SDK parses them (`Prediction.Progress._pattern`).
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
_STATUS = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.PROCESSING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.CANCELLED,  # its Cancel-After deadline passed before it started
}

# A lost submit is looked for among at most this many pages of predictions (100 a page).
_LOOKUP_PAGES = LOOKUP_REACH // 100


class Spec(BaseModel):
    """Where one model takes each request field; None means the model has no such input."""

    image: str
    negative_prompt: str | None = None
    seed: str | None = None
    aspect_ratio: str | None = None
    aspect_ratios: list[str]
    durations: list[int]
    # Our resolution tier (the frame's short side) -> the model's `resolution` value.
    resolutions: dict[int, str] | None = None
    # The model ignores aspect_ratio when given a first frame: the image sets the shape.
    image_sets_aspect: bool = False
    # Durations allowed only at one resolution tier (Hailuo: 10 s only at 768p).
    duration_needs: dict[int, int] = {}
    # The model's sound switch (a boolean input); None: it makes silent video.
    audio: str | None = None
    # Inputs no standard field fills that a request may set in `options`, by input name.
    options: dict[str, OptionSpec] = {}
    notes: dict[str, str] = {}


# Input names from each model's API page on replicate.com (schema of the latest version).
MODELS: dict[str, Spec] = {
    "kwaivgi/kling-v2.5-turbo-pro": Spec(
        image="start_image",
        negative_prompt="negative_prompt",
        aspect_ratio="aspect_ratio",
        aspect_ratios=["16:9", "9:16", "1:1"],
        durations=[5, 10],
        image_sets_aspect=True,
        notes={"resolution": "the model picks its own output size"},
    ),
    "google/veo-3.1": Spec(
        image="image",
        negative_prompt="negative_prompt",
        seed="seed",
        aspect_ratio="aspect_ratio",
        aspect_ratios=["16:9", "9:16"],
        durations=[4, 6, 8],
        resolutions={720: "720p", 1080: "1080p"},
        audio="generate_audio",
    ),
    "minimax/hailuo-02": Spec(
        image="first_frame_image",
        # No aspect input: text-to-video renders 16:9, image-to-video follows the image.
        aspect_ratios=["16:9"],
        durations=[6, 10],
        image_sets_aspect=True,
        resolutions={480: "512p", 512: "512p", 720: "768p", 768: "768p", 1080: "1080p"},
        duration_needs={10: 720},
        options={
            "prompt_optimizer": OptionSpec(
                type="boolean",
                wire="input.prompt_optimizer",
                description="let the model rewrite the prompt",
            )
        },
        notes={"resolution": "480p is sent as 512p, 720p as 768p"},
    ),
}
TIERS = (480, 720, 1080, 2160)  # short sides of the named resolutions 480p..4k


def model_capabilities(spec: Spec) -> ModelCapabilities:
    not_sent = unsupported("not sent; validate() warns")

    def named(field: str) -> FieldMapping:
        input_name = getattr(spec, field)
        return native(input_name) if input_name else not_sent

    aspect_ratio = named("aspect_ratio")
    if spec.aspect_ratio is None:
        aspect_ratio = mapped("not sent: 16:9 from text; an image_url sets the shape")
    resolution = not_sent
    if spec.resolutions:
        same = all(f"{k}p" == v for k, v in spec.resolutions.items())
        note = spec.notes.get("resolution", "resolution, by the frame's short side")
        resolution = native(note) if same else mapped(note)
    elif "resolution" in spec.notes:
        resolution = unsupported(spec.notes["resolution"])
    fields = field_table(
        prompt=native("prompt"),
        negative_prompt=named("negative_prompt"),
        aspect_ratio=aspect_ratio,
        motion_intensity=not_sent,
        duration=native("duration (whole seconds)"),
        resolution=resolution,
        style=mapped("appended to the prompt"),
        quality=not_sent,
        fps=not_sent,
        seed=named("seed"),
        image_url=native(spec.image),
        audio=native(f"{spec.audio}; unset: not sent, the model's default")
        if spec.audio
        else unsupported("silent video only; audio on is warned, not sent"),
    )
    return ModelCapabilities(
        fields=fields,
        options=spec.options,
        aspect_ratios=spec.aspect_ratios,
        durations=[float(d) for d in spec.durations],
        min_duration=min(spec.durations),
        max_duration=max(spec.durations),
        resolutions=[f"{k}p" for k in TIERS if k in spec.resolutions] if spec.resolutions else None,
        text_to_video=True,
        image_to_video=True,
    )


TABLE_CAPABILITIES = {name: model_capabilities(spec) for name, spec in MODELS.items()}


class _Prediction(BaseModel):
    id: str
    model: str | None = None
    version: str | None = None
    status: Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
    input: dict[str, Any] | None = None
    output: Any = None  # model-specific; video models give a URI or a list of them
    logs: str | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    data_removed: bool = False
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class _PredictionPage(BaseModel):
    results: list[_Prediction]
    next: str | None = None  # a URL whose `cursor` query parameter fetches the older page


class _Account(BaseModel):
    type: str
    username: str


class _Version(BaseModel):
    id: str
    openapi_schema: dict[str, Any] | None = None


class _Model(BaseModel):
    owner: str
    name: str
    visibility: Literal["public", "private"] = "private"
    latest_version: _Version | None = None


@dataclass(frozen=True)
class _Schema:
    model: SchemaModel
    public: bool


# (base URL, "owner/name[:version]", token fingerprint or None for a public model) -> schema.
# Per process: every adapter made in it (one per task) shares what one of them read.
SCHEMAS: SchemaCache[tuple[str, str, str | None], _Schema] = SchemaCache()


def _fingerprint(token: str) -> str:
    """Which token read a private schema; kept in memory only, never shown."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def _progress(logs: str | None) -> float:
    for line in reversed((logs or "").splitlines()):
        if m := _PROGRESS.match(line.strip()):
            return min(float(m.group(1)), 100.0)
    return 0.0


class ReplicateAdapter(HttpAdapter):
    """Replicate predictions API: create on a model, poll, cancel, download the output URI."""

    key = "replicate"
    default_base_url = DEFAULT_BASE_URL
    # Reading a model's schema takes the user's token (`describe_model`, `prepare`).
    schema_credentials = True
    moderation_markers = (*HttpAdapter.moderation_markers, "flagged as sensitive", "(e005)")

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=DEFAULT_MODEL,
            # The table's models, then every model whose public schema this process has read.
            models=TABLE_CAPABILITIES
            | {
                ref: cached.model.capabilities()
                for (base, ref, token), cached in SCHEMAS.items()
                if base == self.base_url and token is None
            },
            credential_fields=["api_key"],
            can_cancel=True,
            connection_test="GET /v1/account",
            # The SDK polls every 0.5 s; video predictions take minutes and reads are limited
            # to 3000/min per account, so start at 2 s. Outputs vanish after an hour.
            poll_interval=2,
            max_poll_interval=15,
            deadline=1800,  # Replicate stops a prediction after 30 minutes
        )

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.require('api_key', provider=self.key)}"}

    def error_message(self, response: httpx.Response) -> str:
        """Replicate errors are RFC 7807 problem details: {type, title, status, detail}."""
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        if not isinstance(body, dict) or not (body.get("detail") or body.get("title")):
            return super().error_message(response)
        title, detail = str(body.get("title") or ""), str(body.get("detail") or "").strip()
        if title and detail and title.lower() not in detail.lower():
            return f"{title}: {detail}"[:500]
        return (detail or title)[:500]

    def validate(self, request: StandardVideoRequest) -> list[str]:
        model, version = self._ref(request)
        if model in MODELS:
            return self._build(request)[2]
        ref = f"{model}:{version}" if version else model
        cached = SCHEMAS.get((self.base_url, ref, None))
        if cached is not None:
            return cached.model.build(request)[1]
        command = f"sceneflow providers {self.key} --model {ref}"
        return [pending_schema_warning(f"{self.key} model {ref}", command, request)]

    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        """validate() with the model's schema read first (a model outside the table needs the
        token for that): raises RequestValidationError, returns the warnings."""
        return (await self._build_any(request, credentials))[2]

    def _ref(self, request: StandardVideoRequest) -> tuple[str, str | None]:
        return self._parse_ref(request.model or DEFAULT_MODEL)

    def _parse_ref(self, ref: str) -> tuple[str, str | None]:
        m = _REF.match(ref)
        if not m:
            raise RequestValidationError(
                [
                    f"model: must be 'owner/name' or 'owner/name:<64-hex version id>' of a "
                    f"Replicate model (tested: {', '.join(MODELS)}); got {ref!r}"
                ],
                provider=self.key,
            )
        owner, name, version = m.groups()
        return f"{owner}/{name}", version

    @staticmethod
    def _route(model: str, version: str | None, inputs: dict[str, Any]) -> tuple[str, dict]:
        if version:
            return "/v1/predictions", {"version": version, "input": inputs}
        return f"/v1/models/{model}/predictions", {"input": inputs}

    def _build(self, request: StandardVideoRequest) -> tuple[str, dict[str, Any], list[str]]:
        """(path, body, warnings) for a model of the table, or RequestValidationError with
        every problem."""
        model, version = self._ref(request)
        inputs: dict[str, Any] = {"prompt": compose_prompt(request)}
        warnings = self._map(request, model, MODELS[model], inputs)
        inputs |= request.options  # _map checked them: each is an input of the model
        return (*self._route(model, version, inputs), warnings)

    async def _build_any(
        self, request: StandardVideoRequest, credentials: Credentials
    ) -> tuple[str, dict[str, Any], list[str]]:
        model, version = self._ref(request)
        if model in MODELS:
            return self._build(request)
        schema = await self.model_schema(f"{model}:{version}" if version else model, credentials)
        inputs, warnings = schema.build(request)
        return (*self._route(model, version, inputs), warnings)

    async def model_schema(self, ref: str, credentials: Credentials) -> SchemaModel:
        """The mapping onto `ref`'s published input schema, read once per process (per token
        for a private model)."""
        public = SCHEMAS.get((self.base_url, ref, None))
        if public is not None:
            return public.model
        token = credentials.require("api_key", provider=self.key)
        key = (self.base_url, ref, _fingerprint(token))
        found = await SCHEMAS.fetch(key, lambda: self._fetch_schema(ref, credentials))
        if found.public:
            SCHEMAS.put((self.base_url, ref, None), found)
        return found.model

    async def describe_model(self, ref: str, credentials: Credentials) -> SchemaReport:
        """Where each field goes for `ref`: the built-in table, or its schema's mapping."""
        model, _ = self._parse_ref(ref)
        if model in MODELS:
            caps = model_capabilities(MODELS[model])
            return SchemaReport(model=ref, source="SceneFlow's built-in table", capabilities=caps)
        return (await self.model_schema(ref, credentials)).report(ref)

    async def _fetch_schema(self, ref: str, credentials: Credentials) -> _Schema:
        model, _, version = ref.partition(":")
        path = f"/v1/models/{model}/versions/{version}" if version else f"/v1/models/{model}"
        try:
            response = await self.request("GET", path, credentials=credentials)
        except RejectedError as e:
            if e.status_code == 404:
                raise RequestValidationError(
                    [
                        f"model: Replicate has no model {ref!r} that this token can see "
                        f"(GET {path} answered 404); check the name"
                        + (" and version" if version else "")
                        + " on replicate.com, or use one of "
                        + ", ".join(MODELS)
                    ],
                    provider=self.key,
                ) from e
            raise _schema_failed(e, ref) from e
        except ProviderError as e:
            raise _schema_failed(e, ref) from e
        try:
            if version:
                reply = self.parse(_Version, response, "model version")
                document, public = reply.openapi_schema, False
                source = f"the published input schema of version {reply.id}"
            else:
                found = self.parse(_Model, response, "model")
                if found.latest_version is None:
                    raise RequestValidationError(
                        [
                            f"model: {ref} has no published version, so it has no input schema "
                            "to map; choose a model that has one"
                        ],
                        provider=self.key,
                    )
                document, public = found.latest_version.openapi_schema, found.visibility == "public"
                source = (
                    f"the published input schema of its latest version {found.latest_version.id}"
                )
        except ProviderError as e:
            raise _schema_failed(e, ref) from e
        try:
            node = ((document or {}).get("components") or {}).get("schemas", {}).get("Input")
            if not isinstance(node, dict):
                raise ValueError("openapi_schema has no components.schemas.Input")
            schema = InputSchema.from_openapi(node, document or {})
        except (ValueError, AttributeError) as e:
            raise RequestValidationError(
                [
                    f"model: SceneFlow cannot read the input schema {ref} publishes ({e}); "
                    f"use one of {', '.join(MODELS)}"
                ],
                provider=self.key,
            ) from e
        who = f"{self.key} model {ref}"
        return _Schema(SchemaModel(who, schema, provider=self.key, source=source), public)

    def _map(
        self, request: StandardVideoRequest, model: str, spec: Spec, inputs: dict[str, Any]
    ) -> list[str]:
        problems: list[str] = []
        warnings: list[str] = []
        given = request.model_fields_set

        def unsupported(field: str, what: str = "it is not sent") -> None:
            warnings.append(unsupported_warning(f"{self.key} model {model}", field, what))

        duration = int(request.duration) if float(request.duration).is_integer() else None
        if duration not in spec.durations:
            allowed = ", ".join(str(d) for d in spec.durations)
            problems.append(
                f"duration: {model} makes videos of {allowed} seconds; got {request.duration:g}"
            )
        shape_from_image = bool(request.image_url) and spec.image_sets_aspect
        if shape_from_image:
            warnings.append(
                f"aspect_ratio: {model} takes the frame shape from image_url; "
                f"{request.aspect_ratio} has no effect"
            )
        if request.aspect_ratio not in spec.aspect_ratios and not (
            shape_from_image and spec.aspect_ratio is None
        ):
            problems.append(
                f"aspect_ratio: {model} accepts {', '.join(spec.aspect_ratios)}; "
                f"got {request.aspect_ratio}"
            )
        if spec.resolutions is not None:
            short = min(request.frame_size())
            value = spec.resolutions.get(short)
            if value is None:
                allowed = ", ".join(
                    f"{k}p" + (f" (sent as {v})" if v != f"{k}p" else "")
                    for k, v in spec.resolutions.items()
                    if k in TIERS
                )
                problems.append(f"resolution: {model} renders {allowed}; got {request.resolution}")
            else:
                inputs["resolution"] = value
                tier = spec.duration_needs.get(duration or 0)
                if tier and value != spec.resolutions[tier]:
                    problems.append(
                        f"duration: {model} makes {duration} s videos only at resolution "
                        f"{tier}p (sent as {spec.resolutions[tier]}); got {request.resolution}"
                    )
        elif "resolution" in given:
            unsupported("resolution", spec.notes.get("resolution", "it is not sent"))
        problems += option_problems(request, TABLE_CAPABILITIES, model, f"{self.key} model {model}")
        if problems:
            raise RequestValidationError(problems, provider=self.key)

        if spec.aspect_ratio:
            inputs[spec.aspect_ratio] = request.aspect_ratio
        inputs["duration"] = duration
        if request.image_url:
            inputs[spec.image] = request.image_url
        for field in ("negative_prompt", "seed"):
            value = getattr(request, field)
            if value is None:
                continue
            if input_name := getattr(spec, field):
                inputs[input_name] = value
            else:
                unsupported(field)
        unsupported("motion_intensity")
        for field in ("fps", "quality"):
            if field in given:
                unsupported(field)
        if spec.audio and request.audio is not None:
            inputs[spec.audio] = request.audio
        renders = None if spec.audio else False
        return warnings + audio_warnings(f"{self.key} model {model}", request, renders=renders)

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        path, body, _ = await self._build_any(request, credentials)
        response = await self.request("POST", path, credentials=credentials, json=body, submit=True)
        prediction: _Prediction = self.parse(_Prediction, response, "prediction", submit=True)
        return prediction.id

    async def status(self, provider_job_id: str, credentials: Credentials) -> StandardVideoResult:
        response = await self.request(
            "GET", f"/v1/predictions/{provider_job_id}", credentials=credentials
        )
        p: _Prediction = self.parse(_Prediction, response)
        # Raw vendor fields, minus output (a download URL) and logs (model chatter).
        details = p.model_dump(exclude={"id", "output", "logs", "error"})
        status = _STATUS[p.status]
        result = StandardVideoResult(
            status=status,
            provider_job_id=p.id,
            progress=100.0 if status is JobStatus.COMPLETED else _progress(p.logs),
            error_message=p.error,
            provider_details=details,
        )
        if status is JobStatus.FAILED and p.error:
            if any(marker in p.error.lower() for marker in self.moderation_markers):
                raise ModerationError(
                    f"{self.key}: prediction {p.id} was refused by the content filter: "
                    f"{p.error[:500]}",
                    provider=self.key,
                )
        if status is not JobStatus.COMPLETED:
            return result
        url = self._output_url(p.output)
        if p.data_removed or url is None:
            why = (
                "Replicate deleted its output (outputs are kept one hour); run the job again"
                if p.data_removed
                else f"its output holds no video URL ({type(p.output).__name__})"
            )
            return result.model_copy(
                update={"status": JobStatus.FAILED, "error_message": f"succeeded but {why}"}
            )
        return result.model_copy(update={"video_url": url})

    @staticmethod
    def _output_url(output: Any) -> str | None:
        """Video models return one URI; some return a list of them."""
        if isinstance(output, list) and output:
            output = output[0]
        if isinstance(output, str) and output.startswith(("https://", "http://")):
            return output
        return None

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        # The SDK sends this POST with no body at all (content-length: 0).
        await self.request(
            "POST", f"/v1/predictions/{provider_job_id}/cancel", credentials=credentials
        )

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        url = require_output_url(result, self.key)
        host = urlsplit(url).hostname or ""
        trusted = urlsplit(url)[:2] == urlsplit(self.base_url)[:2] or any(
            host == h or host.endswith("." + h) for h in _TRUSTED_DOWNLOAD_HOSTS
        )
        headers = self.auth_headers(credentials) if trusted else None
        return await self.fetch_to_file(url, destination, headers=headers)

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup:
        """Predictions created since `since` on the same model with the same input, walking
        `GET /v1/predictions` (newest first, 100 a page) back to `since`. The search is complete
        when it reached `since` or the end of the list within the page cap."""
        path, body, _ = await self._build_any(request, credentials)
        model = path.removeprefix("/v1/models/").removesuffix("/predictions")
        found: list[str] = []
        params: dict[str, str] = {}
        for _ in range(_LOOKUP_PAGES):
            response = await self.request(
                "GET", "/v1/predictions", credentials=credentials, params=params
            )
            page = self.parse(_PredictionPage, response, "prediction list")
            for p in page.results:
                created = parse_timestamp(p.created_at)
                if created is not None and created < since:
                    return Lookup(job_ids=found, complete=True)
                same_model = p.version == body["version"] if "version" in body else p.model == model
                if same_model and p.input == body["input"]:
                    found.append(p.id)
            # Follow only the cursor, never the URL: the token must not go to another host.
            cursor = parse_qs(urlsplit(page.next or "").query).get("cursor")
            if not cursor:
                return Lookup(job_ids=found, complete=True)
            params = {"cursor": cursor[0]}
        return Lookup(job_ids=found, complete=False)

    async def test_connection(self, credentials: Credentials) -> None:
        response = await self.request("GET", "/v1/account", credentials=credentials)
        self.parse(_Account, response)


def _schema_failed(e: ProviderError, ref: str) -> ProviderError:
    """The same error (so retries and key checks still apply), saying what was being read."""
    e.args = (f"replicate: reading the input schema of {ref} failed, so nothing was sent: {e}",)
    return e
