"""DashScope (Alibaba Cloud Model Studio) emulator for the Wan video models: async tasks under
/api/v1, the task list, cancel, and a signed-URL "OSS" for outputs.

Speaks what `dashscope` 2.0.2 sends and parses (`VideoSynthesisResponse`, the v2 `Job` and
`JobList` types) and what Alibaba documents: `X-DashScope-Async: enable` required on create
("current user api does not support synchronous calls" without it), errors as
`{"request_id", "code", "message"}`, moderation as code `DataInspectionFailed` (HTTP 400 at submit,
or a FAILED task for the output), an unknown or expired task id answered HTTP 200 with
`task_status: UNKNOWN`, cancel only for PENDING tasks, times written in UTC+8 like the docs'
examples ("2025-07-27 21:05:15.212"). The model rules are written out here from the doc tables,
independently of the adapter, so each checks the other. It is stricter than DashScope about
unknown `input`/`parameters` keys, so a misspelt field is caught.

Beyond the shared faults (`_base.py`): `inject("output", "moderation")` makes the next task fail
its output inspection, `suspend(job_id)` reports a task SUSPENDED, `expire(job_id)` forgets it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, sample_mp4

API_KEY = "sk-" + "0123456789abcdef" * 2
PREFIX = "/api/v1"
UTC8 = timezone(timedelta(hours=8))
_NOT_JSON = object()

S480 = {"832*480", "480*832", "624*624"}
S720 = {"1280*720", "720*1280", "960*960", "1088*832", "832*1088"}
S1080 = {"1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"}
# model -> (endpoint, sizes for text models or resolutions for image models, durations, prompt max)
MODELS: dict[str, tuple[str, set[str], set[int], int]] = {
    "wanx2.1-t2v-turbo": ("video-generation", S480 | S720, {5}, 800),
    "wanx2.1-t2v-plus": ("video-generation", S720, {5}, 800),
    "wan2.2-t2v-plus": ("video-generation", S480 | S1080, {5}, 800),
    "wan2.5-t2v-preview": ("video-generation", S480 | S720 | S1080, {5, 10}, 2000),
    "wanx2.1-i2v-turbo": ("video-generation", {"480P", "720P"}, {3, 4, 5}, 800),
    "wanx2.1-i2v-plus": ("video-generation", {"720P"}, {5}, 800),
    "wan2.2-i2v-plus": ("video-generation", {"480P", "1080P"}, {5}, 800),
    "wanx2.1-kf2v-plus": ("image2video", {"720P"}, {5}, 800),
}
INPUT_KEYS = {"prompt", "negative_prompt", "extend_prompt", "function", "img_url"}
INPUT_KEYS |= {"first_frame_url", "last_frame_url"}
PARAMETER_KEYS = {"size", "resolution", "duration", "seed", "prompt_extend", "watermark"}
FAILURE = ("InternalError.Algo", "An internal error has occurred during execution.")
MODERATED_INPUT = ("DataInspectionFailed", "Input data may contain inappropriate content.")
MODERATED_OUTPUT = ("DataInspectionFailed", "Output data may contain inappropriate content.")


def _stamp(moment: float) -> str:
    """A wall-clock time as DashScope writes it (UTC+8, milliseconds, no zone)."""
    return datetime.fromtimestamp(moment, UTC8).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _body_problem(endpoint: str, body: Any) -> tuple[str, str] | None:
    """(code, message) for the first thing DashScope would refuse in a create body, else None."""
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return "InvalidParameter", "input is required and must be an object"
    spec = MODELS.get(body.get("model"))  # type: ignore[arg-type]
    if spec is None:
        return "ModelNotFound", "Model not exist."
    if spec[0] != endpoint:
        return "InvalidParameter", "url error, please check url!"
    _, allowed, durations, prompt_max = spec
    inputs, parameters = body["input"], body.get("parameters") or {}
    unknown = sorted((set(inputs) - INPUT_KEYS) | (set(parameters) - PARAMETER_KEYS))
    if unknown or set(body) - {"model", "input", "parameters"}:
        return "InvalidParameter", f"unknown field: {(unknown or sorted(body))[0]}"
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > prompt_max:
        return "InvalidParameter", f"input.prompt must be 1 to {prompt_max} characters"
    negative = inputs.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > 500):
        return "InvalidParameter", "input.negative_prompt must be at most 500 characters"
    text = body["model"].split("-")[1] == "t2v"
    image_key = {"video-generation": "img_url", "image2video": "first_frame_url"}[endpoint]
    if not text and not str(inputs.get(image_key, "")).startswith(("http://", "https://")):
        return "InvalidParameter", f"input.{image_key} is required and must be a URL"
    if text and (image_key in inputs or "first_frame_url" in inputs):
        return "InvalidParameter", "this model takes no image"
    key = "size" if text else "resolution"
    value = parameters.get(key)
    if value is not None and value not in allowed:
        return "InvalidParameter", f"The {key} is not match, allowed: {sorted(allowed)}"
    other = "resolution" if text else "size"
    if other in parameters:
        return "InvalidParameter", f"parameters.{other} is not supported by this model"
    duration = parameters.get("duration")
    if duration is not None and (type(duration) is not int or duration not in durations):
        return "InvalidParameter", f"parameters.duration must be one of {sorted(durations)}"
    seed = parameters.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= 2147483647):
        return "InvalidParameter", "parameters.seed must be an integer from 0 to 2147483647"
    return None


class WanEmulator(Emulator):
    """`emu.app` is the ASGI app; routes live under /api/v1, so adapters and the SDK take
    `<url>/api/v1` as their base. `emu.recorded` logs every API request (method, path, query,
    headers, body); `emu.output_fetches` logs the headers of every output download."""

    def __init__(self, *, api_key: str = API_KEY, url_ttl: float = 3600.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.url_ttl = url_ttl
        self.recorded: list[dict[str, Any]] = []
        self.output_fetches: list[dict[str, str]] = []
        self._signing_key = secrets.token_bytes(16)
        self.app = Starlette(
            routes=[
                Route(f"{PREFIX}/services/aigc/{{endpoint}}/video-synthesis", self.create,
                      methods=["POST"]),
                Route(f"{PREFIX}/tasks", self.list_tasks, methods=["GET"]),
                Route(f"{PREFIX}/tasks/{{id}}", self.get_task, methods=["GET"]),
                Route(f"{PREFIX}/tasks/{{id}}/cancel", self.cancel_task, methods=["POST"]),
                Route("/_outputs/{id}.mp4", self.output, methods=["GET"]),
                *self.control_routes(),
            ]
        )  # fmt: skip

    # -- helpers ---------------------------------------------------------------------------

    def suspend(self, job_id: str) -> None:
        self.jobs[job_id].extra["suspended"] = True

    def expire(self, job_id: str) -> None:
        del self.jobs[job_id]

    @staticmethod
    def error(code: str, message: str, status: int, **headers: str) -> JSONResponse:
        body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
        return JSONResponse(body, status, headers=headers or None)

    async def _gate(self, request: Request, op: str) -> tuple[Response | None, Any]:
        """Record, check auth, apply a queued fault. Returns (early response, parsed body)."""
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
                "query": dict(request.query_params),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error("InvalidApiKey", "Invalid API-key provided.", 401), body
        if body is _NOT_JSON:
            return self.error("InvalidParameter", "The request body is not valid JSON.", 400), body
        fault = self.take_fault(op)
        if fault is None or fault.kind in ("fail", "moderation", "lost"):
            if fault is not None and op == "submit":
                self._pending_kind = fault.kind
            return None, body
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, body
        if fault.kind == "429":
            retry = {"Retry-After": f"{fault.retry_after:g}"}
            message = "Requests rate limit exceeded, please try again later."
            return self.error("Throttling.RateQuota", message, 429, **retry), body
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway", 200, media_type="application/json"), body
        message = "An internal error has occurred, please try again later."
        return self.error("InternalError", message, int(fault.kind)), body

    def _take_kind(self) -> str | None:
        kind = getattr(self, "_pending_kind", None)
        self._pending_kind = None
        return kind

    def _status(self, job: Job) -> str:
        phase, _ = self.phase(job)
        if phase in ("queued", "running") and job.extra.get("suspended"):
            return "SUSPENDED"
        return {
            "queued": "PENDING",
            "running": "RUNNING",
            "succeeded": "SUCCEEDED",
            "failed": "FAILED",
            "cancelled": "CANCELED",
        }[phase]

    def sign(self, job_id: str, base_url: str) -> str:
        expires = int(time.time() + self.url_ttl)
        mac = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        return f"{base_url}/_outputs/{job_id}.mp4?Expires={expires}&Signature={mac.hexdigest()}"

    def task_json(self, job: Job, base_url: str) -> dict[str, Any]:
        status = self._status(job)
        body = job.body
        created = job.extra["wall"]
        output: dict[str, Any] = {
            "task_id": job.id,
            "task_status": status,
            "submit_time": _stamp(created),
            "orig_prompt": body["input"]["prompt"],
        }
        if status not in ("PENDING", "SUSPENDED"):
            output["scheduled_time"] = _stamp(created + self.latency * self.queued_fraction)
        reply: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
        if status in ("SUCCEEDED", "FAILED", "CANCELED"):
            output["end_time"] = _stamp(created + self.latency)
        if status == "SUCCEEDED":
            output["video_url"] = self.sign(job.id, base_url)
            if body["input"].get("extend_prompt", True):
                output["actual_prompt"] = body["input"]["prompt"] + ", cinematic lighting"
            parameters = body.get("parameters") or {}
            reply["usage"] = {
                "video_duration": parameters.get("duration", 5),
                "video_count": 1,
                "video_ratio": parameters.get("size") or parameters.get("resolution", "720P"),
            }
        elif status == "FAILED":
            output["code"], output["message"] = job.extra["failure"]
        return reply

    # -- routes ----------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        early, body = await self._gate(request, "submit")
        if early is not None:
            return early
        kind = self._take_kind()
        if request.headers.get("x-dashscope-async") != "enable":
            message = "current user api does not support synchronous calls"
            return self.error("AccessDenied", message, 403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self.error("InvalidParameter", "Content-Type must be application/json", 400)
        problem = _body_problem(request.path_params["endpoint"], body)
        if problem:
            return self.error(*problem, 400)
        if kind == "moderation":
            return self.error(*MODERATED_INPUT, 400)
        late_moderation = bool(self.faults.get("output")) and self.take_fault("output") is not None
        job = self.new_job(body, fail=kind == "fail" or late_moderation)
        job.extra.update(wall=time.time(), failure=MODERATED_OUTPUT if late_moderation else FAILURE)
        if kind == "lost":
            return self.error("GatewayTimeout", "upstream timed out", 504)
        output = {"task_id": job.id, "task_status": "PENDING"}
        return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})

    async def get_task(self, request: Request) -> Response:
        early, _ = await self._gate(request, "status")
        if early is not None:
            return early
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            output = {"task_id": request.path_params["id"], "task_status": "UNKNOWN"}
            return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})
        return JSONResponse(self.task_json(job, str(request.base_url).rstrip("/")))

    async def cancel_task(self, request: Request) -> Response:
        early, _ = await self._gate(request, "cancel")
        if early is not None:
            return early
        job = self.jobs.get(request.path_params["id"])
        if job is None or self._status(job) != "PENDING":
            message = "Failed to cancel the task, please confirm if the task is in PENDING status."
            return self.error("UnsupportedOperation", message, 400)
        job.cancelled = True
        return JSONResponse({"request_id": str(uuid.uuid4())})

    async def list_tasks(self, request: Request) -> Response:
        early, _ = await self._gate(request, "list")
        if early is not None:
            return early
        q = request.query_params
        try:
            page_no, page_size = int(q.get("page_no", 1)), int(q.get("page_size", 10))
            # The window is read in UTC+8, as the docs' times are written.
            start, end = (
                datetime.strptime(q[k], "%Y%m%d%H%M%S").replace(tzinfo=UTC8).timestamp()
                if k in q
                else None
                for k in ("start_time", "end_time")
            )
        except ValueError:
            return self.error("InvalidParameter", "start_time/end_time: YYYYMMDDhhmmss", 400)
        if not (page_no >= 1 and 1 <= page_size <= 100):
            return self.error("InvalidParameter", "page_size must be 1 to 100", 400)
        # Whole seconds: the window has no finer grain.
        jobs = [
            j
            for j in sorted(self.jobs.values(), key=lambda j: j.extra["wall"], reverse=True)
            if (start is None or int(j.extra["wall"]) >= start)
            and (end is None or int(j.extra["wall"]) <= end)
            and q.get("model_name") in (None, j.body["model"])
            and q.get("status") in (None, self._status(j))
        ]
        chunk = jobs[(page_no - 1) * page_size : page_no * page_size]
        tasks = [
            {
                "task_id": j.id,
                "task_status": self._status(j),
                "model_name": j.body["model"],
                "submit_time": _stamp(j.extra["wall"]),
            }
            for j in chunk
        ]
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "page_no": page_no,
                "page_size": page_size,
                "total": len(jobs),
                "tasks": tasks,
            }
        )

    async def output(self, request: Request) -> Response:
        self.output_fetches.append({k.lower(): v for k, v in request.headers.items()})
        fault = self.take_fault("download")
        if fault is not None and fault.kind in ("500", "503"):
            return Response("upstream error", int(fault.kind))
        expires = request.query_params.get("Expires", "")
        job_id = request.path_params["id"]
        want = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        signature = request.query_params.get("Signature", "")
        valid = expires.isdigit() and hmac.compare_digest(signature, want.hexdigest())
        if not valid or int(expires) < time.time():
            # OSS's refusal of a missing, forged or expired signature.
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                403,
                media_type="application/xml",
            )
        job = self.jobs[job_id]
        seconds = (job.body.get("parameters") or {}).get("duration", 5)
        return Response(sample_mp4(seconds=seconds), media_type="video/mp4")
