"""MiniMax (Hailuo) v1 video API emulator: create, query, file retrieve, and a signed "OSS" host.

Speaks what MiniMax documents (https://platform.minimax.io/docs/api-reference/video-generation-
intro and its OpenAPI description) and what its official MCP client reads
(github.com/MiniMax-AI/MiniMax-MCP, minimax_mcp/client.py): Bearer auth; business errors in
`base_resp.status_code` with HTTP 200 (1004 for a refused key, 1026 for a sensitive input, 1027
for a sensitive output, 2013 for invalid parameters); statuses Preparing, Queueing, Processing,
Success and Fail; a `file_id` on Success whose `download_url` (from `/v1/files/retrieve`) is a
signed, expiring link that needs no auth. The model rules are written out here from the docs
and the MCP tool, independently of the adapter, so each checks the other. It is stricter than
MiniMax about unknown body fields, so a misspelt field is caught.

What MiniMax does not document is chosen here and marked so in the adapter: an unknown task id
answers 2013; a failed task's reason is in its `base_resp`; a 429 carries Retry-After.

Beyond the shared faults (`emu.inject`), `emu.refuse(op, code, msg)` makes the next call of
`op` answer HTTP 200 with that business error, and `emu.moderate_output()` makes the next task
fail with 1027 once it has run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, sample_mp4

API_KEY = "mm-test-" + "0123456789abcdef" * 4
HAILUO = {"768P": {6, 10}, "1080P": {6}}
V01 = {"720P": {6}}
# model -> (text-to-video, image-to-video, resolution -> durations, takes duration/resolution)
MODELS: dict[str, tuple[bool, bool, dict[str, set[int]], bool]] = {
    "MiniMax-Hailuo-2.3": (True, True, HAILUO, True),
    "MiniMax-Hailuo-2.3-Fast": (False, True, HAILUO, True),
    "MiniMax-Hailuo-02": (True, True, HAILUO, True),
    "T2V-01-Director": (True, False, V01, False),
    "T2V-01": (True, False, V01, False),
    "I2V-01-Director": (False, True, V01, False),
    "I2V-01": (False, True, V01, False),
    "I2V-01-live": (False, True, V01, False),
}
FIELDS = {
    "model",
    "prompt",
    "first_frame_image",
    "duration",
    "resolution",
    "prompt_optimizer",
    "fast_pretreatment",
    "callback_url",
    "aigc_watermark",
}
SIZES = {"720P": (1280, 720), "768P": (1366, 768), "1080P": (1920, 1080)}
FAILURE = (1000, "unknown error: video generation failed")
OUTPUT_REFUSED = (1027, "output new_sensitive")
_NOT_JSON = object()


def _resp(code: int = 0, msg: str = "success", *, http: int = 200, **fields: Any) -> Response:
    return JSONResponse(fields | {"base_resp": {"status_code": code, "status_msg": msg}}, http)


def _body_problem(body: Any) -> str | None:
    """What MiniMax would refuse (2013 invalid params) in a create body, else None."""
    if not isinstance(body, dict):
        return "invalid params, request body must be a JSON object"
    spec = MODELS.get(body.get("model")) if isinstance(body.get("model"), str) else None
    if spec is None:
        return f"invalid params, model must be one of {sorted(MODELS)}"
    text, image, sizes, takes_size = spec
    unknown = set(body) - FIELDS
    if unknown:
        return f"invalid params, unknown field {sorted(unknown)[0]}"
    prompt = body.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 2000):
        return "invalid params, prompt must be a string of at most 2000 characters"
    if not prompt and not body.get("first_frame_image"):
        return "invalid params, prompt is required"
    frame = body.get("first_frame_image")
    if frame is not None and not image:
        return f"invalid params, {body['model']} does not take first_frame_image"
    if frame is None and not text:
        return f"invalid params, {body['model']} needs first_frame_image"
    if frame is not None and (
        not isinstance(frame, str) or not frame.startswith(("http://", "https://", "data:"))
    ):
        return "invalid params, first_frame_image must be a URL or a data URL"
    resolution = body.get("resolution", next(iter(sizes)))
    duration = body.get("duration", 6)
    if not takes_size and ({"duration", "resolution"} & set(body)):
        return f"invalid params, {body['model']} takes no duration or resolution"
    if resolution not in sizes:
        return f"invalid params, resolution must be one of {sorted(sizes)}"
    if type(duration) is not int or duration not in sizes[resolution]:
        return (
            f"invalid params, duration at {resolution} must be one of {sorted(sizes[resolution])}"
        )
    return None


class MiniMaxEmulator(Emulator):
    """`emu.app` is the ASGI app; `emu.recorded` logs every API request (method, path, query,
    headers, body); `emu.output_fetches` logs the headers of every output download."""

    def __init__(self, *, api_key: str = API_KEY, url_ttl: float = 3600.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.url_ttl = url_ttl
        self.recorded: list[dict[str, Any]] = []
        self.output_fetches: list[dict[str, str]] = []
        self.refusals: dict[str, list[tuple[int, str]]] = {}
        self._moderate_next = False
        self._signing_key = secrets.token_bytes(16)
        self._file_ids: dict[str, str] = {}  # file_id -> task_id
        self.app = Starlette(
            routes=[
                Route("/v1/video_generation", self.create, methods=["POST"]),
                Route("/v1/query/video_generation", self.query, methods=["GET"]),
                Route("/v1/files/retrieve", self.retrieve, methods=["GET"]),
                Route("/_oss/{file_id}.mp4", self.output, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    def refuse(self, op: str, code: int, msg: str) -> None:
        """The next `op` ("submit", "status", "retrieve") answers this business error."""
        with self.lock:
            self.refusals.setdefault(op, []).append((code, msg))

    def moderate_output(self) -> None:
        self._moderate_next = True

    async def _gate(self, request: Request, op: str) -> tuple[Response | None, Any, str | None]:
        """Record, check auth, apply a queued fault. Returns (early response, parsed body,
        the kind of fault that shapes the task: "fail", "moderation" or "lost")."""
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
            # MiniMax answers a missing or wrong key with HTTP 200 and code 1004.
            return _resp(1004, "login fail: Please carry the API secret key"), body, None
        with self.lock:
            refusal = self.refusals.get(op, [])
            code_msg = refusal.pop(0) if refusal else None
        if code_msg:
            return _resp(*code_msg), body, None
        fault = self.take_fault(op)
        if fault is None:
            return None, body, None
        if fault.kind in ("fail", "lost"):
            return None, body, fault.kind
        if fault.kind == "moderation":
            if op == "submit":
                return _resp(1026, "input new_sensitive"), body, None
            return None, body, None
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, body, None
        if fault.kind == "429":
            response = _resp(1002, "rate limit", http=429)
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
            return response, body, None
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway", 200, media_type="application/json"), body, None
        return _resp(1000, "unknown error", http=int(fault.kind)), body, None

    async def create(self, request: Request) -> Response:
        early, body, kind = await self._gate(request, "submit")
        if early is not None:
            return early
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return _resp(2013, "invalid params, Content-Type must be application/json")
        problem = _body_problem(body)
        if problem:
            return _resp(2013, problem)
        task_id = f"{int(time.time() * 1000)}{len(self.jobs):06d}"  # digits, as MiniMax's are
        job = self.new_job(body, fail=kind == "fail" or self._moderate_next, job_id=task_id)
        job.extra["failure"] = OUTPUT_REFUSED if self._moderate_next else FAILURE
        self._moderate_next = False
        if kind == "lost":
            return _resp(1000, "gateway timeout", http=504)
        return _resp(task_id=job.id)

    def status_of(self, job: Job) -> str:
        phase, _ = self.phase(job)
        if phase == "queued":
            elapsed = time.monotonic() - job.created
            return "Preparing" if elapsed < self.latency * self.queued_fraction / 2 else "Queueing"
        return {"running": "Processing", "succeeded": "Success"}.get(phase, "Fail")

    def file_id(self, job: Job) -> str:
        if "file_id" not in job.extra:
            job.extra["file_id"] = str(300_000_000_000_000 + len(self._file_ids))
            self._file_ids[job.extra["file_id"]] = job.id
        return str(job.extra["file_id"])

    async def query(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "status")
        if early is not None:
            return early
        job = self.jobs.get(request.query_params.get("task_id", ""))
        if job is None:
            return _resp(2013, "invalid params, task not found", task_id="", status="")
        status = self.status_of(job)
        fields: dict[str, Any] = {"task_id": job.id, "status": status}
        if status == "Success":
            model = MODELS[job.body["model"]]
            w, h = SIZES[job.body.get("resolution", next(iter(model[2])))]
            fields.update(file_id=self.file_id(job), video_width=w, video_height=h)
        if status == "Fail":
            return _resp(*job.extra["failure"], **fields)
        return _resp(**fields)

    async def retrieve(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "retrieve")
        if early is not None:
            return early
        file_id = request.query_params.get("file_id", "")
        if not file_id.isdigit() or file_id not in self._file_ids:
            return _resp(2013, "invalid params, file not found")
        job = self.jobs[self._file_ids[file_id]]
        base = str(request.base_url).rstrip("/")
        return _resp(
            file={
                "file_id": int(file_id),
                "bytes": len(sample_mp4(seconds=self._seconds(job))),
                "created_at": int(time.time()),
                "filename": "output_aigc.mp4",
                "purpose": "video_generation",
                "download_url": self.sign(file_id, base),
            }
        )

    def sign(self, file_id: str, base_url: str) -> str:
        expires = int(time.time() + self.url_ttl)
        mac = hmac.new(self._signing_key, f"{file_id}.{expires}".encode(), hashlib.sha256)
        return f"{base_url}/_oss/{file_id}.mp4?Expires={expires}&Signature={mac.hexdigest()}"

    @staticmethod
    def _seconds(job: Job) -> int:
        return int(job.body.get("duration", 6))

    async def output(self, request: Request) -> Response:
        self.output_fetches.append({k.lower(): v for k, v in request.headers.items()})
        fault = self.take_fault("download")
        if fault is not None and fault.kind in ("500", "503"):
            return Response("upstream error", int(fault.kind))
        file_id = request.path_params["file_id"]
        expires = request.query_params.get("Expires", "")
        want = hmac.new(self._signing_key, f"{file_id}.{expires}".encode(), hashlib.sha256)
        signature = request.query_params.get("Signature", "")
        if (
            not expires.isdigit()
            or not hmac.compare_digest(signature, want.hexdigest())
            or int(expires) < time.time()
            or "authorization" in request.headers  # OSS refuses a second auth scheme
        ):
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                403,
                media_type="application/xml",
            )
        job = self.jobs[self._file_ids[file_id]]
        return Response(sample_mp4(seconds=self._seconds(job)), media_type="video/mp4")
