"""Emulator of Veo on the Gemini Developer API (https://ai.google.dev/gemini-api/docs/video, and
the wire format of the official SDK `google-genai` 2.34.0).

Speaks what generativelanguage.googleapis.com speaks: `x-goog-api-key` auth (a wrong key is a
400 `API_KEY_INVALID`, a missing one a 403, as the real service answers), Google JSON errors
(`{"error": {"code", "message", "status"}}`), long-running operations that are `done` after the
Emulator clock runs out, Gemini file URIs that only download with the key, and `GET /v1beta/models`.

Faults beyond `_base`: "moderation" on "submit" is a 400 Responsible-AI refusal; on "status" it
finishes the job with every sample withheld (`raiMediaFilteredCount`), as Veo does for outputs.
Every request is kept in `recorded` so the SDK conformance test can compare wire traffic.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, requested_seconds, sample_mp4

PUBLIC_HOST = "https://generativelanguage.googleapis.com"
RAI_MESSAGE = (
    "The prompt could not be submitted. This prompt contains words that violate Google's "
    "Responsible AI practices. Try rephrasing the prompt."
)
RAI_REASON = (
    "Veo could not generate videos because the input image contains content that has been "
    "flagged by our safety filters."
)
# Limits the emulator enforces, written out on their own so they check the adapter's table.
LIMITS: dict[str, dict[str, Any]] = {
    "veo-3.1-generate-preview": {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p"}},
    "veo-3.1-fast-generate-preview": {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p"}},
    "veo-2.0-generate-001": {"durations": {5, 6, 7, 8}, "resolutions": set()},
}
PARAMETERS = {
    "sampleCount",
    "durationSeconds",
    "aspectRatio",
    "resolution",
    "personGeneration",
    "negativePrompt",
    "enhancePrompt",
}


def google_error(code: int, message: str, status: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
    if reason := extra.pop("reason", None):
        body["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}
        ]
    return JSONResponse(body, code, headers=extra.pop("headers", None))


_STATUS_NAMES = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


async def google_fault(
    emu: Emulator, op: str, moderation: Response | None = None
) -> Response | None:
    """`Emulator.apply_fault`, with 429/5xx bodies in Google's error shape."""
    response = await emu.apply_fault(op, moderation)
    if response is None or response.status_code not in _STATUS_NAMES:
        return response
    code = response.status_code
    headers = {"Retry-After": response.headers["retry-after"]} if code == 429 else None
    message = "Resource has been exhausted (e.g. check quota)." if code == 429 else "Internal error"
    return google_error(code, message, _STATUS_NAMES[code], headers=headers)


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


async def record(emu: Emulator, recorded: list[Recorded], request: Request) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    recorded.append(
        Recorded(
            request.method,
            request.url.path,
            request.url.query,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
    )
    emu.requests.append((request.method, request.url.path))
    return body


def check_instances(body: Any) -> str | None:
    """The shape errors Google reports for a predictLongRunning body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        return "Invalid JSON payload: `instances` must be a list."
    if len(body["instances"]) != 1 or not isinstance(body["instances"][0], dict):
        return "Exactly one instance is supported."
    instance = body["instances"][0]
    if not isinstance(instance.get("prompt"), str) and "image" not in instance:
        return "A prompt or an image is required."
    image = instance.get("image")
    if image is not None and not {"bytesBase64Encoded", "mimeType"} <= set(image):
        return "image needs bytesBase64Encoded and mimeType."
    return None


def check_parameters(
    model: str, params: dict[str, Any], limits: dict[str, dict[str, Any]], known: set[str]
) -> str | None:
    for name in params:
        if name not in known:
            return f"`{name}` isn't supported by this model. Please remove it or refer to the docs."
    if params.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        return "Aspect ratio must be one of 16:9, 9:16."
    if params.get("durationSeconds", 8) not in limits[model]["durations"]:
        allowed = sorted(limits[model]["durations"])
        return f"The number value for `durationSeconds` is out of bound. Allowed: {allowed}."
    resolution = params.get("resolution")
    if resolution is not None and resolution not in limits[model]["resolutions"]:
        return f"`resolution` {resolution} isn't supported by this model."
    return None


def clip(body: dict[str, Any]) -> bytes:
    """The video a predictLongRunning body asks for; Veo makes 8 s without `durationSeconds`."""
    seconds = requested_seconds(body.get("parameters", {}).get("durationSeconds"), 8)
    return sample_mp4(seconds=seconds)


class VeoEmulator(Emulator):
    """State plus the Starlette app (`.app`); `api_key` is the only key it accepts."""

    def __init__(self, *, api_key: str = "gemini-test-key", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.recorded: list[Recorded] = []
        self.files: dict[str, str] = {}
        self.app = Starlette(
            routes=[
                Route("/v1beta/models", self.list_models, methods=["GET"]),
                Route("/v1beta/models/{target}", self.predict, methods=["POST"]),
                Route("/v1beta/models/{model}/operations/{op}", self.get_op, methods=["GET"]),
                Route("/v1beta/files/{target}", self.download, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    def auth(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key")
        if not key:
            return google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
                "PERMISSION_DENIED",
            )
        if key != self.api_key:
            return google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                "INVALID_ARGUMENT",
                reason="API_KEY_INVALID",
            )
        return None

    async def list_models(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        models = [{"name": f"models/{m}", "displayName": m} for m in LIMITS]
        return JSONResponse({"models": models})

    async def predict(self, request: Request) -> Response:
        body = await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        model, _, method = request.path_params["target"].partition(":")
        if method != "predictLongRunning" or model not in LIMITS:
            return google_error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                f"for {method or 'this method'}.",
                "NOT_FOUND",
            )
        rai = google_error(400, RAI_MESSAGE, "INVALID_ARGUMENT")
        if fault := await google_fault(self, "submit", rai):
            return fault
        problem = check_instances(body)
        params = body.get("parameters", {}) if isinstance(body, dict) else {}
        problem = problem or check_parameters(model, params, LIMITS, PARAMETERS)
        if problem:
            return google_error(400, problem, "INVALID_ARGUMENT")
        job = self.new_job(body, fail=self.pop_fail_flag(), job_id=uuid.uuid4().hex[:12])
        job.extra["model"] = model
        return JSONResponse({"name": f"models/{model}/operations/{job.id}"})

    def operation(self, job: Job) -> dict[str, Any]:
        name = f"models/{job.extra['model']}/operations/{job.id}"
        phase, _ = self.phase(job)
        if phase in ("queued", "running") and not job.extra.get("rai"):
            return {"name": name}
        if phase == "failed":
            message = "Video generation failed due to an internal error. Please try again."
            return {"name": name, "done": True, "error": {"code": 13, "message": message}}
        generated: dict[str, Any]
        if job.extra.get("rai"):
            generated = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}
        else:
            file_id = self.files.setdefault(job.id, uuid.uuid4().hex[:16])
            # The public host, as the real service writes it; clients rebuild the URL on their
            # own base from the id (the SDK's t_file_name does the same).
            uri = f"{PUBLIC_HOST}/v1beta/files/{file_id}:download?alt=media"
            generated = {"generatedSamples": [{"video": {"uri": uri}}]}
        response = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
            "PredictLongRunningResponse",
            "generateVideoResponse": generated,
        }
        return {"name": name, "done": True, "response": response}

    async def get_op(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        job = self.jobs.get(request.path_params["op"])
        if job is None or job.extra["model"] != request.path_params["model"]:
            return google_error(404, "Operation not found.", "NOT_FOUND")
        if self.faults.get("status") and self.faults["status"][0].kind == "moderation":
            self.take_fault("status")
            job.extra["rai"] = True
        if fault := await google_fault(self, "status"):
            return fault
        return JSONResponse(self.operation(job))

    async def download(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        file_id, _, method = request.path_params["target"].partition(":")
        if fault := await google_fault(self, "download"):
            return fault
        job_id = next((j for j, f in self.files.items() if f == file_id), None)
        if method != "download" or request.query_params.get("alt") != "media" or job_id is None:
            return google_error(404, f"File {file_id} not found.", "NOT_FOUND")
        return Response(clip(self.jobs[job_id].body), media_type="video/mp4")
