"""Ark (BytePlus ModelArk / Volcengine Ark) emulator: content-generation tasks under /api/v3, and
a signed-URL "object storage" for outputs.

Speaks what `volcengine-ark-runtime` 5.0.54 sends and parses (`ContentGenerationTaskID`,
`ContentGenerationTask`, `ListContentGenerationTasksResponse`; tests/adapters/test_seedance_sdk.py
checks it): `{"error": {"code", "message", "param", "type"}}` error bodies, Bearer keys, explicit
JSON nulls for unset options (read as absent), DELETE with a `{}` body cancelling a queued task
and deleting a finished one (a running task is refused), the list newest first with `page_num`,
`page_size` (1..500), `filter.model`, `filter.status` and repeated `filter.task_ids`. The model
rules are written out here independently of the adapter, so each checks the other; unknown body
fields are refused so a misspelt one is caught.

Faults (see `_base.py`): "submit" takes 429, 500, 503, malformed, slow, lost (the task is made,
the reply is a 504), moderation (a 400 InputTextSensitiveContentDetected up front) and fail (the
task fails later). "output" + "moderation" makes the next task fail later with
OutputVideoSensitiveContentDetected. "status", "list", "cancel" and "download" take the HTTP
kinds. `emu.expire(job_id)` makes a task report `expired`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Fault, Job, requested_seconds, sample_mp4

PREFIX = "/api/v3"
API_KEY = "0b7c3e2a-5d41-4f6e-9a8b-1c2d3e4f5a6b"
RATIOS = {"16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "adaptive"}
ALL = {"480p", "720p", "1080p"}
# model -> (text-to-video, image-to-video, resolutions, durations, audio)
MODELS: dict[str, tuple[bool, bool, set[str], range, bool]] = {
    "seedance-1-0-pro-250528": (True, True, ALL, range(2, 13), False),
    "seedance-1-0-pro-fast-251015": (True, True, ALL, range(2, 13), False),
    "seedance-1-5-pro-251215": (True, True, ALL, range(4, 13), True),
    "seedance-1-0-lite-t2v-250428": (True, False, {"480p", "720p"}, range(2, 13), False),
    "seedance-1-0-lite-i2v-250428": (False, True, {"480p", "720p"}, range(2, 13), False),
}
# What the SDK's create() may send besides model and content.
OPTIONS = {
    "safety_identifier", "callback_url", "return_last_frame", "service_tier",
    "execution_expires_after", "priority", "generate_audio", "draft", "camera_fixed",
    "watermark", "seed", "resolution", "ratio", "duration", "frames", "tools", "output_format",
    "omni_reference_task_type",
}  # fmt: skip
ROLES = {"first_frame", "last_frame", "reference_image"}
FAILURE = ("InternalServiceError", "The service encountered an unexpected internal error.")
MODERATED_INPUT = (
    "InputTextSensitiveContentDetected",
    "The request failed because the input text may contain sensitive information.",
)
MODERATED_OUTPUT = (
    "OutputVideoSensitiveContentDetected",
    "The request failed because the output video may contain sensitive information.",
)
_NOT_JSON = object()


def _error(code: str, message: str, status: int, param: str = "", **headers: str) -> JSONResponse:
    kind = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}
    body = {
        "error": {
            "code": code,
            "message": f"{message} Request id: {secrets.token_hex(8)}",
            "param": param,
            "type": kind.get(status, "InternalServerError"),
        }
    }
    return JSONResponse(body, status, headers=headers or None)


def _invalid(param: str, why: str) -> JSONResponse:
    return _error(
        f"InvalidParameter.{param}" if param else "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        400,
        param,
    )


def _body_problem(body: Any) -> JSONResponse | None:
    """Ark's refusal of a create body, naming the parameter, else None."""
    if not isinstance(body, dict):
        return _invalid("", "the body must be a JSON object")
    spec = MODELS.get(str(body.get("model", "")).removeprefix("doubao-"))
    if spec is None:
        return _error(
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {body.get('model')} does not exist or you do not have access.",
            404,
        )
    text_ok, image_ok, resolutions, durations, audio = spec
    unknown = set(body) - OPTIONS - {"model", "content"}
    if unknown:
        return _invalid(sorted(unknown)[0], "unknown parameter")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return _invalid("content", "must be a non-empty list")
    texts = [c for c in content if isinstance(c, dict) and c.get("type") == "text"]
    images = [c for c in content if isinstance(c, dict) and c.get("type") == "image_url"]
    if len(texts) + len(images) != len(content) or len(texts) > 1:
        return _invalid("content", "takes at most one text item and image_url items")
    if any(not isinstance(t.get("text"), str) or not t["text"].strip() for t in texts):
        return _invalid("content.text", "must be a non-empty string")
    for image in images:
        url = (image.get("image_url") or {}).get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
            return _invalid("content.image_url", "must be an http(s) URL or a base64 data URL")
        if image.get("role", "first_frame") not in ROLES:
            return _invalid("content.role", f"must be one of {sorted(ROLES)}")
    if images and not image_ok:
        return _invalid("content", f"{body['model']} does not accept images")
    if not images and not text_ok:
        return _invalid("content", f"{body['model']} needs a first-frame image")

    def value(name: str) -> Any:
        return body.get(name)  # an explicit null is absent

    if value("ratio") is not None and value("ratio") not in RATIOS:
        return _invalid("ratio", f"must be one of {sorted(RATIOS)}")
    if value("resolution") is not None and value("resolution") not in resolutions:
        return _invalid("resolution", f"must be one of {sorted(resolutions)} for this model")
    duration = value("duration")
    if duration is not None and (type(duration) is not int or duration not in durations):
        return _invalid("duration", f"must be an integer from {durations[0]} to {durations[-1]}")
    seed = value("seed")
    if seed is not None and (type(seed) is not int or not -1 <= seed <= 4294967295):
        return _invalid("seed", "must be an integer from -1 to 4294967295")
    for flag in ("camera_fixed", "watermark", "generate_audio", "draft", "return_last_frame"):
        if value(flag) is not None and type(value(flag)) is not bool:
            return _invalid(flag, "must be a boolean")
    if value("generate_audio") is not None and not audio:
        return _invalid("generate_audio", f"{body['model']} makes no audio")
    return None


class SeedanceEmulator(Emulator):
    """`emu.app` is the ASGI app; `emu.recorded` logs every API request (method, path, query
    pairs, headers, body) for conformance; `emu.output_fetches` logs output downloads' headers."""

    def __init__(self, *, api_key: str = API_KEY, url_ttl: float = 86400.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.url_ttl = url_ttl
        self.recorded: list[dict[str, Any]] = []
        self.output_fetches: list[dict[str, str]] = []
        self._signing_key = secrets.token_bytes(16)
        self.app = Starlette(
            routes=[
                Route(f"{PREFIX}/contents/generations/tasks", self.create, methods=["POST"]),
                Route(f"{PREFIX}/contents/generations/tasks", self.list, methods=["GET"]),
                Route(f"{PREFIX}/contents/generations/tasks/{{id}}", self.get, methods=["GET"]),
                Route(
                    f"{PREFIX}/contents/generations/tasks/{{id}}", self.delete, methods=["DELETE"]
                ),
                Route("/tos/{id}.mp4", self.output, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    def expire(self, job_id: str) -> None:
        self.jobs[job_id].extra["expired"] = True

    async def _gate(self, request: Request, op: str) -> tuple[Response | None, Any, Fault | None]:
        """Record, check auth, apply a queued HTTP fault. Returns (early response, parsed
        body, a fault the caller acts on: moderation, fail or lost)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _NOT_JSON
        self.requests.append((request.method, request.url.path))
        self.recorded.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": list(request.query_params.multi_items()),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] != self.api_key:
            return (
                _error(
                    "AuthenticationError",
                    "The API key or AK/SK in the request is missing or invalid.",
                    401,
                ),
                body,
                None,
            )
        if body is _NOT_JSON:
            return _invalid("", "the body is not valid JSON"), body, None
        fault = self.take_fault(op)
        if fault is None or fault.kind in ("moderation", "fail", "lost"):
            return None, body, fault
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, body, None
        if fault.kind == "429":
            return (
                _error(
                    "RateLimitExceeded.EndpointRPMExceeded",
                    "The request has exceeded the rate limit (RPM).",
                    429,
                    **{"Retry-After": f"{fault.retry_after:g}"},
                ),
                body,
                None,
            )
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway", 200, media_type="application/json"), body, None
        if fault.kind == "503":
            return _error("ServiceUnavailable", "The service is overloaded.", 503), body, None
        return _error(*FAILURE, 500), body, None

    async def create(self, request: Request) -> Response:
        early, body, fault = await self._gate(request, "submit")
        if early is not None:
            return early
        if fault is not None and fault.kind == "moderation":
            return _error(*MODERATED_INPUT, 400)  # Ark refuses a flagged prompt up front
        if (problem := _body_problem(body)) is not None:
            return problem
        with self.lock:  # only an "output" fault, never one queued for "any"
            queue = self.faults.get("output")
            late = queue.pop(0) if queue else None
        job = self.new_job(
            body,
            fail=(fault is not None and fault.kind == "fail") or late is not None,
            job_id=f"cgt-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}",
        )
        moderated = late is not None and late.kind == "moderation"
        seed = body.get("seed")
        job.extra.update(
            created_at=int(time.time()),
            seed=seed if seed not in (None, -1) else secrets.randbelow(2**31),
            failure=MODERATED_OUTPUT if moderated else FAILURE,
        )
        if fault is not None and fault.kind == "lost":
            return _error("GatewayTimeout", "The upstream did not answer in time.", 504)
        return JSONResponse({"id": job.id})

    def _status(self, job: Job) -> str:
        if job.extra.get("expired"):
            return "expired"
        return self.phase(job)[0]

    def task_json(self, job: Job, base_url: str) -> dict[str, Any]:
        status = self._status(job)
        body = job.body
        seconds = int(requested_seconds(body.get("duration"), 5))
        task: dict[str, Any] = {
            "id": job.id,
            "model": body["model"],
            "status": status,
            "error": None,
            "content": None,
            "usage": None,
            "created_at": job.extra["created_at"],
            "updated_at": int(time.time()),
            "seed": job.extra["seed"],
            "resolution": body.get("resolution") or "720p",
            "ratio": body.get("ratio") or "16:9",
            "duration": seconds,
            "framespersecond": 24,
            "service_tier": body.get("service_tier") or "default",
            "execution_expires_after": body.get("execution_expires_after") or 172800,
        }
        if status == "succeeded":
            task["content"] = {"video_url": self.sign(job.id, base_url)}
            task["usage"] = {
                "completion_tokens": 10_000 * seconds,
                "total_tokens": 10_000 * seconds,
            }
        elif status == "failed":
            code, message = job.extra["failure"]
            task["error"] = {"code": code, "message": message}
        return task

    def sign(self, job_id: str, base_url: str) -> str:
        expires = int(time.time() + self.url_ttl)
        mac = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        query = f"X-Tos-Expires={expires}&X-Tos-Signature={mac.hexdigest()}"
        return f"{base_url}/tos/{job_id}.mp4?{query}"

    def _job(self, request: Request) -> Job | None:
        job = self.jobs.get(request.path_params["id"])
        return None if job is None or job.extra.get("deleted") else job

    @staticmethod
    def _not_found(job_id: str) -> Response:
        return _error("ResourceNotFound", f"The specified task {job_id} is not found.", 404)

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def get(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "status")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return self._not_found(request.path_params["id"])
        return JSONResponse(self.task_json(job, self._base(request)))

    async def delete(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "cancel")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return self._not_found(request.path_params["id"])
        status = self._status(job)
        if status == "queued":
            job.cancelled = True
        elif status == "running":
            return _error("InvalidAction.TaskRunning", "A running task cannot be cancelled.", 409)
        else:
            job.extra["deleted"] = True  # a finished task's record (and output) is deleted
        return JSONResponse({})

    async def list(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "list")
        if early is not None:
            return early
        query = request.query_params
        try:
            page_num = int(query.get("page_num", 1))
            page_size = int(query.get("page_size", 10))
        except ValueError:
            return _invalid("page_num", "must be an integer")
        if not (1 <= page_num <= 500 and 1 <= page_size <= 500):
            return _invalid("page_size", "page_num and page_size must be from 1 to 500")
        ids = set(query.getlist("filter.task_ids"))
        base = self._base(request)
        tasks = [
            self.task_json(job, base)
            for job in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
            if not job.extra.get("deleted")
        ]
        tasks = [
            t
            for t in tasks
            if (not ids or t["id"] in ids)
            and t["model"] == query.get("filter.model", t["model"])
            and t["status"] == query.get("filter.status", t["status"])
            and t["service_tier"] == query.get("filter.service_tier", t["service_tier"])
        ]
        start = (page_num - 1) * page_size
        return JSONResponse({"total": len(tasks), "items": tasks[start : start + page_size]})

    async def output(self, request: Request) -> Response:
        self.output_fetches.append({k.lower(): v for k, v in request.headers.items()})
        fault = self.take_fault("download")
        if fault is not None and fault.kind in ("500", "503"):
            return Response("upstream error", int(fault.kind))
        job_id = request.path_params["id"]
        expires = request.query_params.get("X-Tos-Expires", "")
        want = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        sig = request.query_params.get("X-Tos-Signature", "")
        valid = expires.isdigit() and hmac.compare_digest(sig, want.hexdigest())
        if not valid or int(expires) < time.time():
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                403,
                media_type="application/xml",
            )
        job = self.jobs[job_id]
        seconds = requested_seconds(job.body.get("duration"), 5)
        return Response(sample_mp4(seconds=seconds), media_type="video/mp4")
