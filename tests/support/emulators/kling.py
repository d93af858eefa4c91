"""Kling AI emulator: /v1/videos text2video and image2video tasks, JWT auth, and a "CDN".

Written from third-party copies of Kling's official pages ("General Information",
"Concurrency Rules", "Video Generation - Text to Video / Image to Video", "Callback Protocol"),
independently of the adapter, so each checks the other. It speaks what those pages show:

* Auth: `Authorization: Bearer <JWT>`, HS256, `iss` an access key it knows, signed with that
  key's secret, `nbf`/`exp` honoured. Refusals are HTTP 401 with service codes 1001 (empty),
  1002 (invalid), 1003 (not yet valid), 1004 (expired), 1000 (unknown key).
* Every reply is the envelope `{code, message, request_id, data}`; errors carry the HTTP status
  of the service-code table: 1201/400 bad parameter, 1203/404 unknown model, 1301/400 content
  filter, 1303/429 over the account's parallel-task limit, 5000/500, 5001/503, 5002/504.
* Create bodies are checked per model (model_name, mode, string durations "5"/"10",
  aspect_ratio for text2video only, image as URL or bare base64 without a data: prefix,
  cfg_scale only on kling-v1.x, sound only on kling-v2-6, external_task_id unique per account).
  It is stricter than Kling about unknown fields, so a misspelt field is caught.
* The single query `GET /v1/videos/<kind>/<id>` takes a task id or an external_task_id; an
  unknown one is HTTP 400, code 1201, "Task not found" (a third-party probe's report). The list
  `GET /v1/videos/<kind>?pageNum=&pageSize=` is newest first.
* Statuses submitted -> processing -> succeed | failed, the failure reason in task_status_msg;
  outputs are served from `/_outputs/<id>.mp4?sig=` without auth.

Faults (`_base.py`): "submit" faults apply to creates ("moderation" is an up-front 1301
refusal, "fail" makes the task fail later, "lost" creates it and answers 504/5002); an "job"
fault of kind "moderation" or "fail" makes the next created task fail later, refused by the
content filter or with an internal error. "status", "list" and "download" faults apply there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, requested_seconds, sample_mp4

ACCESS_KEY = "AK" + "0123456789abcdef" * 2
SECRET_KEY = "SK" + "fedcba9876543210" * 2
BOTH = {"text2video", "image2video"}
# model -> (kinds, modes it takes, None: takes no mode field)
MODELS: dict[str, tuple[set[str], set[str] | None]] = {
    "kling-v1": (BOTH, {"std", "pro"}),
    "kling-v1-6": (BOTH, {"std", "pro"}),
    "kling-v2-master": (BOTH, None),
    "kling-v2-1": ({"image2video"}, {"std", "pro"}),
    "kling-v2-1-master": (BOTH, None),
    "kling-v2-5-turbo": (BOTH, {"std", "pro"}),
    "kling-v2-6": (BOTH, {"pro"}),
}
COMMON = {"model_name", "prompt", "negative_prompt", "cfg_scale", "mode", "duration"}
COMMON |= {"camera_control", "callback_url", "external_task_id", "sound"}
FIELDS = {
    "text2video": COMMON | {"aspect_ratio"},
    "image2video": COMMON | {"image", "image_tail", "static_mask", "dynamic_masks"},
}
UNITS = {"std": 1.0, "pro": 3.5, None: 2.5}  # per 5 s; illustrative
FAILURE = "Internal error: the generation did not finish, please retry"
RISK = "Failure to pass the risk control system"
_NOT_JSON = object()


def envelope(
    data: Any = None,
    *,
    code: int = 0,
    message: str = "SUCCEED",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status, headers=headers)


def error(code: int, message: str, status: int, **headers: str) -> JSONResponse:
    return envelope(code=code, message=message, status=status, headers=headers or None)


def _image_problem(value: Any, field: str) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{field} is required"
    if value.startswith(("http://", "https://")):
        return None
    if value.startswith("data:"):
        return f"{field}: base64 must not carry a data: prefix"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"{field}: neither a URL nor base64"
    if len(raw) > 10 * 1024 * 1024:
        return f"{field}: image exceeds 10MB"
    return None


def body_problem(kind: str, body: Any) -> tuple[int, int, str] | None:
    """(HTTP status, code, message) for the first thing Kling would refuse, else None."""
    if not isinstance(body, dict):
        return 400, 1200, "request body must be a JSON object"
    name = body.get("model_name", "kling-v1")
    if "model" in body and "model_name" not in body:
        name = "kling-v1"  # the legacy field: "equivalent to model_name empty"
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None or kind not in spec[0]:
        return 404, 1203, f"model_name {name} is not supported for {kind}"
    modes = spec[1]
    unknown = set(body) - FIELDS[kind] - {"model"}
    if unknown:
        return 400, 1201, f"unknown parameter: {sorted(unknown)[0]}"
    prompt = body.get("prompt")
    if kind == "text2video" and (not isinstance(prompt, str) or not prompt.strip()):
        return 400, 1201, "prompt is required"
    for field in ("prompt", "negative_prompt"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > 2500):
            return 400, 1201, f"{field} must be a string of at most 2500 characters"
    if "cfg_scale" in body:
        value = body["cfg_scale"]
        if not name.startswith("kling-v1"):
            return 400, 1201, f"cfg_scale is not supported by {name}"
        if type(value) not in (int, float) or not 0 <= value <= 1:
            return 400, 1201, "cfg_scale must be in [0, 1]"
    if "sound" in body and (name != "kling-v2-6" or body["sound"] not in ("on", "off")):
        return 400, 1201, "sound is not supported or not on/off"
    mode = body.get("mode")
    if mode is not None and (modes is None or mode not in modes):
        return 400, 1201, f"mode {mode} is not supported by {name}"
    if body.get("duration", "5") not in ("5", "10"):  # a string; 5 (an int) is refused
        return 400, 1201, "duration must be one of '5', '10'"
    if kind == "text2video" and body.get("aspect_ratio", "16:9") not in ("16:9", "9:16", "1:1"):
        return 400, 1201, "aspect_ratio must be one of 16:9, 9:16, 1:1"
    if kind == "image2video":
        if "image" not in body and "image_tail" not in body:
            return 400, 1201, "image or image_tail is required"
        for field in ("image", "image_tail"):
            if field in body and (problem := _image_problem(body[field], field)):
                return 400, 1201, problem
    for field in ("external_task_id", "callback_url"):
        if field in body and not isinstance(body[field], str):
            return 400, 1201, f"{field} must be a string"
    return None


class KlingEmulator(Emulator):
    """`emu.app` is the ASGI app; `emu.recorded` logs every API request;
    `emu.output_fetches` the headers of every output download. `keys` maps access key to
    secret key; `max_parallel` is the account's parallel-task limit (1303 beyond it)."""

    def __init__(
        self,
        *,
        keys: dict[str, str] | None = None,
        max_parallel: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.keys = keys or {ACCESS_KEY: SECRET_KEY}
        self.max_parallel = max_parallel
        self.recorded: list[dict[str, Any]] = []
        self.output_fetches: list[dict[str, str]] = []
        self.tokens: list[dict[str, Any]] = []  # verified JWT headers and claims
        self._signing_key = secrets.token_bytes(16)
        routes = []
        for kind in sorted(BOTH):
            routes += [
                Route(f"/v1/videos/{kind}", self.create, methods=["POST"]),
                Route(f"/v1/videos/{kind}", self.list_tasks, methods=["GET"]),
                Route(f"/v1/videos/{kind}/{{id}}", self.get_task, methods=["GET"]),
            ]
        self.app = Starlette(
            routes=[
                *routes,
                Route("/_outputs/{id}.mp4", self.output, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    # -- auth, recording, faults ---------------------------------------------------------

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header:
            return error(1001, "Authorization is empty", 401)
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return error(1002, "Authorization is invalid", 401)
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            head = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return error(1002, "Authorization is invalid", 401)
        secret = self.keys.get(claims.get("iss", ""))
        if secret is None:
            return error(1000, "Authentication failed", 401)
        try:
            jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": ["iss", "exp", "nbf"]},
            )
        except jwt.ImmatureSignatureError:
            return error(1003, "Authorization is not yet valid", 401)
        except jwt.ExpiredSignatureError:
            return error(1004, "Authorization has expired", 401)
        except jwt.PyJWTError:
            return error(1002, "Authorization is invalid", 401)
        self.tokens.append({"header": head, "claims": claims})
        return None

    async def _gate(self, request: Request, op: str) -> tuple[Response | None, Any, str | None]:
        """Record, check auth, apply a queued fault. Returns (early response, parsed body,
        "lost" when the create must be answered with a 504 after it is made)."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = _NOT_JSON
        self.recorded.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        self.requests.append((request.method, request.url.path))
        denied = self._auth(request)
        if denied is not None:
            return denied, body, None
        if body is _NOT_JSON:
            return error(1200, "request body is not valid JSON", 400), body, None
        fault = self.take_fault(op)
        if fault is None:
            return None, body, None
        if fault.kind == "fail":
            self._fail_next = True
            return None, body, None
        if fault.kind == "lost":
            return None, body, "lost"
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, body, None
        if fault.kind == "429":
            retry = {"Retry-After": f"{fault.retry_after:g}"}
            return error(1303, "parallel task over resource pack limit", 429, **retry), body, None
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway", 200, media_type="application/json"), body, None
        if fault.kind == "moderation":
            refusal = "Trigger the content security policy of the platform"
            return error(1301, refusal, 400), body, None
        if fault.kind == "500":
            return error(5000, "Server internal error", 500), body, None
        return error(5001, "Server temporarily unavailable", 503), body, None

    # -- tasks -----------------------------------------------------------------------------

    def _active(self) -> int:
        with self.lock:
            jobs = list(self.jobs.values())
        return sum(1 for j in jobs if self.phase(j)[0] in ("queued", "running"))

    async def create(self, request: Request) -> Response:
        early, body, lost = await self._gate(request, "submit")
        if early is not None:
            return early
        kind = request.url.path.rsplit("/", 1)[1]
        problem = body_problem(kind, body)
        if problem:
            status, code, message = problem
            return error(code, message, status)
        external = body.get("external_task_id")
        if external and any(j.extra.get("external") == external for j in self.jobs.values()):
            return error(1201, "external_task_id already exists", 400)
        if self.max_parallel is not None and self._active() >= self.max_parallel:
            return error(1303, "parallel task over resource pack limit", 429)
        late = self.take_fault("job")
        outcome = late.kind if late and late.kind in ("fail", "moderation") else None
        if self.pop_fail_flag():
            outcome = "fail"
        job = self.new_job(body, fail=outcome is not None, job_id=str(secrets.randbelow(10**18)))
        seconds = int(requested_seconds(body.get("duration"), 5))
        job.extra.update(
            kind=kind,
            external=external,
            created_ms=int(time.time() * 1000),
            units=UNITS[body.get("mode")] * seconds / 5,
            failure=RISK if outcome == "moderation" else FAILURE,
            seconds=seconds,
        )
        if lost:
            return error(5002, "Server internal timeout", 504)
        return envelope(self.task_json(job, str(request.base_url).rstrip("/"), created=True))

    def _status(self, job: Job) -> str:
        phase, _ = self.phase(job)
        return {"queued": "submitted", "running": "processing", "succeeded": "succeed"}.get(
            phase, "failed"
        )

    def task_json(self, job: Job, base_url: str, *, created: bool = False) -> dict[str, Any]:
        status = "submitted" if created else self._status(job)
        task: dict[str, Any] = {
            "task_id": job.id,
            "task_status": status,
            "task_info": {"external_task_id": job.extra["external"]}
            if job.extra["external"]
            else {},
            "created_at": job.extra["created_ms"],
            "updated_at": int(time.time() * 1000),
        }
        if created:
            return task
        task["task_status_msg"] = job.extra["failure"] if status == "failed" else ""
        if status in ("succeed", "failed"):
            task["final_unit_deduction"] = f"{job.extra['units']:g}"
        if status == "succeed":
            url = self.sign(job.id, base_url)
            video = {"id": f"v{job.id}", "url": url, "duration": str(job.extra["seconds"])}
            task["task_result"] = {"videos": [video]}
        return task

    def sign(self, job_id: str, base_url: str) -> str:
        mac = hmac.new(self._signing_key, job_id.encode(), hashlib.sha256).hexdigest()
        return f"{base_url}/_outputs/{job_id}.mp4?sig={mac}"

    def _find(self, kind: str, ident: str) -> Job | None:
        with self.lock:
            jobs = [j for j in self.jobs.values() if j.extra["kind"] == kind]
        for job in jobs:
            if job.id == ident or job.extra.get("external") == ident:
                return job
        return None

    async def get_task(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "status")
        if early is not None:
            return early
        kind = request.url.path.split("/")[3]
        job = self._find(kind, request.path_params["id"])
        if job is None:
            return error(1201, "Task not found", 400)
        return envelope(self.task_json(job, str(request.base_url).rstrip("/")))

    async def list_tasks(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "list")
        if early is not None:
            return early
        try:
            page = int(request.query_params.get("pageNum", "1"))
            size = int(request.query_params.get("pageSize", "30"))
        except ValueError:
            return error(1201, "pageNum and pageSize must be integers", 400)
        if not (1 <= page <= 1000 and 1 <= size <= 500):
            return error(1201, "pageNum must be in [1,1000] and pageSize in [1,500]", 400)
        kind = request.url.path.rsplit("/", 1)[1]
        with self.lock:
            jobs = [j for j in self.jobs.values() if j.extra["kind"] == kind]
        jobs.sort(key=lambda j: j.extra["created_ms"], reverse=True)
        chunk = jobs[(page - 1) * size : page * size]
        base = str(request.base_url).rstrip("/")
        return envelope([self.task_json(j, base) for j in chunk])

    async def output(self, request: Request) -> Response:
        self.output_fetches.append({k.lower(): v for k, v in request.headers.items()})
        fault = self.take_fault("download")
        if fault is not None and fault.kind in ("500", "503"):
            return Response("upstream error", int(fault.kind))
        job_id = request.path_params["id"]
        want = hmac.new(self._signing_key, job_id.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.query_params.get("sig", ""), want):
            return Response("<Error><Code>AccessDenied</Code></Error>", 403, media_type="text/xml")
        job = self.jobs[job_id]
        return Response(sample_mp4(seconds=job.extra["seconds"]), media_type="video/mp4")
