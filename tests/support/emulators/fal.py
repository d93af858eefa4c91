"""fal.ai queue API emulator (https://fal.ai/docs/model-endpoints/queue), for seven video endpoints.

    POST /<endpoint id>                     submit -> request_id + status/response/cancel URLs
    GET  /api/openapi/queue/openapi.json?endpoint_id=<id>   the endpoint's OpenAPI document,
                                            public (fal.ai serves it; here the same app does)
    GET  /<owner>/<app>/requests/<id>/status  IN_QUEUE (queue_position) | IN_PROGRESS | COMPLETED
    GET  /<owner>/<app>/requests/<id>         the model output {"video": {"url": ...}}
    PUT  /<owner>/<app>/requests/<id>/cancel  202 CANCELLATION_REQUESTED | 400 ALREADY_COMPLETED
    GET  /files/<id>/output.mp4               the "CDN": public, no auth (fal media URLs are)

Auth is `Authorization: Key <key>`; anything else is 401 with fal's `{"detail": ...}`. Inputs are
checked against each model's documented schema (fal's model pages) and refused with fal's
model-error body `{"detail": [{"loc", "msg", "type", "url"}]}`, at submit by default. Real fal may
report such errors only when the result is fetched; `late_validation=True` does that (status ends
COMPLETED, the result GET answers 422), and then the "moderation" fault is reported late too.
A failed run ("fail" fault) ends COMPLETED with `error`/`error_type`, as fal-client 1.0.3 parses;
a cancelled one ends COMPLETED with `error_type: client_cancelled`.
Every request is appended to `emu.log` for the SDK conformance test.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, requested_seconds, sample_mp4

API_KEY = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b:7e6d5c4b3a29180f7e6d5c4b3a29180f"

_RATIOS3 = ["16:9", "9:16", "1:1"]
_PROMPT = {"prompt": ("str", None, True), "negative_prompt": ("str", None, False)}
_KLING = _PROMPT | {"duration": ("enum", ["5", "10"], False), "cfg_scale": ("float", (0, 1), False)}
# field -> (kind, allowed values or (min, max), required), from each model's fal API page.
SCHEMAS: dict[str, dict[str, tuple[str, Any, bool]]] = {
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": _KLING
    | {"aspect_ratio": ("enum", _RATIOS3, False)},
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": _KLING | {"image_url": ("str", None, True)},
    "fal-ai/veo3/fast": _PROMPT
    | {
        "aspect_ratio": ("enum", ["16:9", "9:16"], False),
        "duration": ("enum", ["4s", "6s", "8s"], False),
        "resolution": ("enum", ["720p", "1080p"], False),
        "seed": ("int", (0, 2**32 - 1), False),
        "generate_audio": ("bool", None, False),
        "enhance_prompt": ("bool", None, False),
    },
    "fal-ai/wan/v2.2-a14b/text-to-video": _PROMPT
    | {
        "aspect_ratio": ("enum", _RATIOS3, False),
        "resolution": ("enum", ["480p", "580p", "720p"], False),
        "num_frames": ("int", (17, 161), False),
        "frames_per_second": ("int", (4, 60), False),
        "seed": ("int", (0, 2**32 - 1), False),
    },
    # Endpoints outside the adapter's table, mapped from their OpenAPI documents: enums...
    "fal-ai/acme/enum-video": _PROMPT
    | {
        "image_url": ("str", None, False),
        "aspect_ratio": ("enum", _RATIOS3, False),
        "duration": ("enum", ["5", "10"], False),
        "resolution": ("enum", ["480p", "720p", "1080p"], False),
        "seed": ("int", (0, 2**32 - 1), False),
        "generate_audio": ("bool", None, False),
    },
    # ...ranges...
    "fal-ai/acme/range-video": {
        "prompt": ("str", None, True),
        "start_image_url": ("str", None, False),
        "duration": ("int", (2, 12), False),
        "fps": ("int", (8, 30), False),
        "guidance_scale": ("float", (1, 20), False),
    },
    # ...and other names: frames and a frame rate, a pixel size, a required first frame.
    "fal-ai/acme/frames-video/image-to-video": {
        "prompt": ("str", None, True),
        "image": ("str", None, True),
        "num_frames": ("int", (17, 161), False),
        "frames_per_second": ("int", (4, 30), False),
        "width": ("int", (256, 1280), False),
        "height": ("int", (256, 1280), False),
    },
}
# Defaults the OpenAPI documents state (fal's models document theirs).
DEFAULTS: dict[str, dict[str, Any]] = {
    "fal-ai/acme/enum-video": {"duration": "5", "generate_audio": True, "resolution": "720p"},
    "fal-ai/acme/range-video": {"duration": 5, "fps": 24, "guidance_scale": 7.5},
    "fal-ai/acme/frames-video/image-to-video": {"num_frames": 81, "frames_per_second": 16},
}


def openapi(endpoint: str) -> dict[str, Any]:
    """The endpoint's document as fal publishes it: the input object in
    `components.schemas`, reached from the POST body of `paths["/<endpoint>"]`, optional
    numbers as pydantic writes them (`anyOf: [X, {"type": "null"}]`), field order in
    `x-fal-order-properties`."""
    properties: dict[str, Any] = {}
    for name, (kind, rule, required) in SCHEMAS[endpoint].items():
        prop: dict[str, Any] = {"title": name.replace("_", " ").title()}
        if kind == "enum":
            prop |= {"enum": rule, "type": "integer" if isinstance(rule[0], int) else "string"}
        elif kind in ("int", "float"):
            number = {"type": "integer" if kind == "int" else "number"}
            number |= {"minimum": rule[0], "maximum": rule[1]}
            if name in DEFAULTS.get(endpoint, {}) or required:
                prop |= number
            else:
                prop["anyOf"] = [number, {"type": "null"}]
        else:
            prop["type"] = {"str": "string", "bool": "boolean"}[kind]
        if name in DEFAULTS.get(endpoint, {}):
            prop["default"] = DEFAULTS[endpoint][name]
        properties[name] = prop
    title = "".join(p.title() for p in re.split(r"[^a-zA-Z0-9]+", endpoint)) + "Input"
    required = [n for n, (_, _, needed) in SCHEMAS[endpoint].items() if needed]
    app = _app_of(endpoint)
    body = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{title}"}}}}
    return {
        "openapi": "3.0.4",
        "info": {"title": "Queue OpenAPI for " + endpoint, "version": "1.0.0"},
        "components": {
            "securitySchemes": {
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
            "schemas": {
                title: {
                    "type": "object",
                    "title": title,
                    "required": required,
                    "x-fal-order-properties": list(properties),
                    "properties": properties,
                },
                "QueueStatus": {"type": "object", "properties": {"status": {"type": "string"}}},
            },
        },
        "paths": {
            f"/{app}/requests/{{request_id}}/status": {"get": {}},
            f"/{app}/requests/{{request_id}}/cancel": {"put": {}},
            f"/{endpoint}": {"post": {"requestBody": {"required": True, **body}}},
            f"/{app}/requests/{{request_id}}": {"get": {}},
        },
        "servers": [{"url": "https://queue.fal.run"}],
        "security": [{"apiKeyAuth": []}],
    }


MODERATION_MSG = (
    "The content could not be processed because it contained material flagged by a content checker."
)
FAIL_MSG = "Video generation failed: the model returned no frames"


def _problem(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {
        "loc": ["body", field],
        "msg": msg,
        "type": kind,
        "url": f"https://docs.fal.ai/errors#{kind}",
    }


def check_input(endpoint: str, body: Any) -> list[dict[str, Any]]:
    """fal's model-error items for `body`, empty when it is valid."""
    if not isinstance(body, dict):
        return [_problem("body", "Input should be a valid dictionary", "dict_type")]
    problems = []
    for name, (kind, rule, required) in SCHEMAS[endpoint].items():
        if name not in body:
            if required:
                problems.append(_problem(name, "Field required", "missing"))
            continue
        value = body[name]
        if kind == "enum" and value not in rule:
            allowed = " or ".join(repr(v) for v in rule)
            problems.append(_problem(name, f"Input should be {allowed}", "literal_error"))
        elif kind == "str" and not isinstance(value, str):
            problems.append(_problem(name, "Input should be a valid string", "string_type"))
        elif kind == "bool" and not isinstance(value, bool):
            problems.append(_problem(name, "Input should be a valid boolean", "bool_type"))
        elif kind in ("int", "float"):
            ok_type = int if kind == "int" else (int, float)
            if not isinstance(value, ok_type) or isinstance(value, bool):
                problems.append(_problem(name, f"Input should be a valid {kind}", f"{kind}_type"))
            elif not rule[0] <= value <= rule[1]:
                problems.append(
                    _problem(name, f"Input should be between {rule[0]} and {rule[1]}", "range")
                )
    return problems


def clip(job: Job) -> bytes:
    """The video a job asked for: `duration` ("5", "8s") or Wan's num_frames/frames_per_second,
    else each model's documented default (Kling 5 s, Veo 3 8 s, Wan 81 frames at 16 fps)."""
    endpoint = job.extra["endpoint"]
    if "num_frames" in SCHEMAS[endpoint]:
        frames = requested_seconds(job.body.get("num_frames"), 81)
        seconds = frames / requested_seconds(job.body.get("frames_per_second"), 16)
    else:
        seconds = requested_seconds(job.body.get("duration"), 8 if "veo" in endpoint else 5)
    return sample_mp4(seconds=seconds)


def _app_of(endpoint: str) -> str:
    return "/".join(endpoint.split("/")[:2])


class FalEmulator(Emulator):
    def __init__(self, *, api_key: str = API_KEY, late_validation: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.late_validation = late_validation
        self.log: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                *self.control_routes(),
                Route("/api/openapi/queue/openapi.json", self._openapi, methods=["GET"]),
                Route("/files/{rid}/output.mp4", self._file, methods=["GET"]),
                Route("/{app:path}/requests/{rid}/status", self._status, methods=["GET"]),
                Route("/{app:path}/requests/{rid}/cancel", self._cancel, methods=["PUT"]),
                Route("/{app:path}/requests/{rid}", self._result, methods=["GET"]),
                Route("/{endpoint:path}", self._submit, methods=["POST"]),
            ]
        )

    # -- plumbing -------------------------------------------------------------------------

    async def _record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "json": body,
        }
        self.log.append(entry)
        self.requests.append((request.method, request.url.path))
        return entry

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header:
            return JSONResponse(
                {"detail": "Authentication is required to access this application."}, 401
            )
        scheme, _, token = header.partition(" ")
        if scheme != "Key" or token != self.api_key:
            return JSONResponse({"detail": "No user found for Key ID and Secret"}, 401)
        return None

    async def _infra_fault(self, op: str) -> tuple[Response | None, str | None]:
        """A fault's response, or (None, "moderation"/"fail") for the ones the route applies."""
        fault = self.take_fault(op)
        if fault is None:
            return None, None
        headers = {"x-fal-request-id": str(uuid.uuid4())}
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, None
        if fault.kind == "429":
            headers["Retry-After"] = f"{fault.retry_after:g}"
            return JSONResponse({"detail": "Rate limit exceeded"}, 429, headers=headers), None
        if fault.kind == "500":
            headers["x-fal-error-type"] = "internal_error"
            body = {
                "detail": "An unexpected internal error occurred",
                "error_type": "internal_error",
            }
            return JSONResponse(body, 500, headers=headers), None
        if fault.kind == "503":
            headers["x-fal-error-type"] = "runner_scheduling_failure"
            body = {
                "detail": "No runner could be allocated to handle the request",
                "error_type": "runner_scheduling_failure",
            }
            return JSONResponse(body, 503, headers=headers), None
        if fault.kind == "malformed":
            return Response("<html>upstream proxy error", 200, media_type="application/json"), None
        return None, fault.kind

    async def _find(self, request: Request, op: str, missing: dict[str, str]) -> Job | Response:
        """The steps every request-id route shares: record, faults, auth, then the job."""
        await self._record(request)
        response, _ = await self._infra_fault(op)
        if response is not None:
            return response
        if (denied := self._auth(request)) is not None:
            return denied
        job = self._job(request.path_params["app"], request.path_params["rid"])
        return job if job is not None else JSONResponse(missing, 404)

    def _job(self, app: str, rid: str) -> Job | None:
        job = self.jobs.get(rid)
        return job if job is not None and job.extra["app"] == app else None

    def _phase(self, job: Job) -> str:
        return self.phase(job)[0]

    def _ahead(self, job: Job) -> int:
        return sum(
            1 for j in self.jobs.values() if j.created < job.created and self._phase(j) == "queued"
        )

    # -- routes ---------------------------------------------------------------------------

    async def _submit(self, request: Request) -> Response:
        entry = await self._record(request)
        response, pending = await self._infra_fault("submit")
        if response is not None:
            return response
        if (denied := self._auth(request)) is not None:
            return denied
        endpoint = request.path_params["endpoint"]
        if endpoint not in SCHEMAS:
            return JSONResponse({"detail": f"Application '{endpoint}' not found"}, 404)
        body = entry["json"]
        problems = check_input(endpoint, body)
        if pending == "moderation":
            problems.append(_problem("prompt", MODERATION_MSG, "content_policy_violation"))
        if problems and not self.late_validation:
            return JSONResponse({"detail": problems}, 422)
        job = self.new_job(body if isinstance(body, dict) else {}, fail=pending == "fail")
        job.extra.update(app=_app_of(endpoint), endpoint=endpoint, invalid=problems)
        base = f"{str(request.base_url).rstrip('/')}/{job.extra['app']}/requests/{job.id}"
        return JSONResponse(
            {
                "status": "IN_QUEUE",
                "request_id": job.id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": self._ahead(job),
            },
            headers={"x-fal-request-id": job.id},
        )

    async def _openapi(self, request: Request) -> Response:
        """Public, as on fal.ai: no key needed (and none should be sent to that host)."""
        await self._record(request)
        response, _ = await self._infra_fault("schema")
        if response is not None:
            return response
        endpoint = request.query_params.get("endpoint_id", "")
        if endpoint not in SCHEMAS:
            return JSONResponse({"detail": f"Endpoint '{endpoint}' not found"}, 404)
        return JSONResponse(openapi(endpoint))

    async def _status(self, request: Request) -> Response:
        job = await self._find(request, "status", {"detail": "Request not found"})
        if isinstance(job, Response):
            return job
        logs: list[dict[str, Any]] | None = None
        if request.query_params.get("logs") in ("1", "true", "True"):
            logs = [
                {
                    "message": "Generating video",
                    "level": "INFO",
                    "source": "user",
                    "timestamp": "2026-01-01T00:00:00.000000",
                }
            ]
        phase = self._phase(job)
        headers = {"x-fal-request-id": job.id}
        if phase == "queued":
            body = {"status": "IN_QUEUE", "queue_position": self._ahead(job)}
            return JSONResponse(body, headers=headers)
        if phase == "running":
            return JSONResponse({"status": "IN_PROGRESS", "logs": logs}, headers=headers)
        body: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": logs,
            "metrics": {"inference_time": round(self.latency, 3)},
        }
        if phase == "failed":
            body.update(error=FAIL_MSG, error_type="runner_server_error")
        elif phase == "cancelled":
            body.update(
                error="The request was cancelled by the client.", error_type="client_cancelled"
            )
        return JSONResponse(body, headers=headers)

    async def _result(self, request: Request) -> Response:
        job = await self._find(request, "status", {"detail": "Request not found"})
        if isinstance(job, Response):
            return job
        phase = self._phase(job)
        if phase in ("queued", "running"):
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        if job.extra["invalid"]:
            return JSONResponse({"detail": job.extra["invalid"]}, 422)
        if phase == "failed":
            return JSONResponse({"detail": FAIL_MSG, "error_type": "runner_server_error"}, 500)
        if phase == "cancelled":
            return JSONResponse(
                {"detail": "Request was cancelled", "error_type": "client_cancelled"}, 400
            )
        url = f"{str(request.base_url).rstrip('/')}/files/{job.id}/output.mp4"
        video = {
            "url": url,
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": len(clip(job)),
        }
        body: dict[str, Any] = {"video": video}
        if "seed" in SCHEMAS[job.extra["endpoint"]]:
            body["seed"] = job.body.get("seed", 42)
        return JSONResponse(body, headers={"x-fal-request-id": job.id})

    async def _cancel(self, request: Request) -> Response:
        job = await self._find(request, "cancel", {"status": "NOT_FOUND"})
        if isinstance(job, Response):
            return job
        if self._phase(job) not in ("queued", "running"):
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        job.cancelled = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)

    async def _file(self, request: Request) -> Response:
        await self._record(request)
        response, _ = await self._infra_fault("download")
        if response is not None:
            return response
        if request.path_params["rid"] not in self.jobs:
            return JSONResponse({"detail": "Not Found"}, 404)
        return Response(clip(self.jobs[request.path_params["rid"]]), media_type="video/mp4")
