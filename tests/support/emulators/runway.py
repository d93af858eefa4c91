"""Runway API emulator: /v1 tasks, the organization endpoint, and a signed-URL "CDN" for outputs.

Speaks what `runwayml` 5.24.0 parses (`TaskRetrieveResponse` discriminated by `status`,
`TextToVideoCreateResponse`, `OrganizationRetrieveResponse`) and what Runway documents
(https://docs.dev.runwayml.com/api-details/errors, /errors/task-failures, /usage/tiers):
`{"error": ...}` bodies, moderation and failures reported on the task as `failure` and
`failureCode` (SAFETY.* for moderation), THROTTLED while the organisation is at its concurrency
limit, DELETE cancelling an active task and deleting a finished one, output URLs signed with an
expiring `_jwt` and served without auth. The model rules are written out here from the SDK's
create-params types, independently of the adapter, so each checks the other. It is stricter than
Runway about unknown body fields, so a misspelt field is caught. Credit prices are illustrative.
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

from tests.support.emulators._base import Emulator, Job, requested_seconds, sample_mp4

API_KEY = "key_" + "0123456789abcdef" * 8
VERSION = "2024-11-06"
GEN4_TEXT = {"1280:720", "720:1280"}
GEN4_IMAGE = GEN4_TEXT | {"1104:832", "832:1104", "960:960", "1584:672"}
VEO = {"1280:720", "720:1280", "1080:1920", "1920:1080"}
COMMON = {"model", "promptText", "ratio", "duration", "seed"}
# endpoint -> model -> (ratios, durations, duration required, extra fields, credits per second)
MODELS: dict[str, dict[str, tuple[set[str], set[int], bool, set[str], int]]] = {
    "text_to_video": {
        "gen4.5": (GEN4_TEXT, set(range(2, 11)), True, {"contentModeration", "outputFormat"}, 12),
        "veo3.1": (VEO, {4, 6, 8}, False, {"negativePrompt", "audio"}, 40),
        "veo3.1_fast": (VEO, {4, 6, 8}, False, {"negativePrompt", "audio"}, 15),
    },
    "image_to_video": {
        "gen4.5": (GEN4_IMAGE, set(range(2, 11)), True, {"promptImage", "contentModeration"}, 12),
        "gen4_turbo": (GEN4_IMAGE, set(range(2, 11)), False, {"promptImage"}, 5),
        "veo3.1": (VEO, {4, 6, 8}, False, {"promptImage", "negativePrompt", "audio"}, 40),
        "veo3.1_fast": (VEO, {4, 6, 8}, False, {"promptImage", "negativePrompt", "audio"}, 15),
    },
}
FAILURE = ("An unexpected error occurred.", "INTERNAL.BAD_OUTPUT.CODE01")
_NOT_JSON = object()
MODERATED = ("The prompt text did not pass content moderation.", "SAFETY.INPUT.TEXT")


def _error(message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers or None)


def _seconds(body: dict[str, Any]) -> int:
    """The length Runway renders: `duration`, else 8 s for Veo models and 5 s for Gen-4."""
    return int(requested_seconds(body.get("duration"), 8 if body["model"].startswith("veo") else 5))


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _body_problem(endpoint: str, body: Any) -> str | None:
    """The first thing Runway would refuse in a create body, naming the field, else None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    model = body.get("model")
    spec = MODELS[endpoint].get(model) if isinstance(model, str) else None
    if spec is None:
        return f"model: must be one of {sorted(MODELS[endpoint])} for /v1/{endpoint}"
    ratios, durations, duration_required, extra, _ = spec
    unknown = set(body) - COMMON - extra
    if unknown:
        return f"{sorted(unknown)[0]}: unrecognized key for model {body['model']}"
    prompt = body.get("promptText")
    if prompt is not None or endpoint == "text_to_video":
        if not isinstance(prompt, str) or not prompt.strip() or _utf16_len(prompt) > 1000:
            return "promptText: must be a non-empty string of at most 1000 characters"
    if body.get("ratio") not in ratios:
        return f"ratio: must be one of {sorted(ratios)}"
    duration = body.get("duration")
    if duration is None and duration_required:
        return "duration: required"
    if duration is not None and (type(duration) is not int or duration not in durations):
        return f"duration: must be one of {sorted(durations)}"
    seed = body.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= 4294967295):
        return "seed: must be an integer from 0 to 4294967295"
    if "negativePrompt" in body and not isinstance(body["negativePrompt"], str):
        return "negativePrompt: must be a string"
    if endpoint == "image_to_video":
        image = body.get("promptImage")
        if not isinstance(image, str) or not image.startswith(("https://", "data:", "runway://")):
            return "promptImage: Only HTTPS URLs, Runway upload URIs or data URIs are allowed."
    return None


class RunwayEmulator(Emulator):
    """`emu.app` is the ASGI app; `emu.recorded` logs every API request (for SDK conformance);
    `emu.output_fetches` logs the headers of every output download."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        max_concurrent: int | None = None,
        url_ttl: float = 3600.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.max_concurrent = max_concurrent  # beyond it, new tasks report THROTTLED
        self.url_ttl = url_ttl
        self.recorded: list[dict[str, Any]] = []
        self.output_fetches: list[dict[str, str]] = []
        self._signing_key = secrets.token_bytes(16)
        self.app = Starlette(
            routes=[
                Route("/v1/text_to_video", self.create, methods=["POST"]),
                Route("/v1/image_to_video", self.create, methods=["POST"]),
                Route("/v1/tasks/{id}", self.get_task, methods=["GET"]),
                Route("/v1/tasks/{id}", self.delete_task, methods=["DELETE"]),
                Route("/v1/organization", self.organization, methods=["GET"]),
                Route("/_outputs/{id}.mp4", self.output, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    async def _gate(self, request: Request, op: str) -> tuple[Response | None, Any, str | None]:
        """Record, check auth and version, apply a queued fault. Returns (early response,
        parsed body, "fail"/"moderation" when the next task must fail)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _NOT_JSON
        self.recorded.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error("Invalid API key", 401), body, None
        if request.headers.get("x-runway-version") != VERSION:
            return _error(f"X-Runway-Version header must be set to {VERSION}", 400), body, None
        if body is _NOT_JSON:
            return _error("Request body must be valid JSON", 400), body, None
        fault = self.take_fault(op)
        if fault is None or fault.kind in ("fail", "moderation", "lost"):
            return None, body, fault.kind if fault else None
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None, body, None
        if fault.kind == "429":
            retry = f"{fault.retry_after:g}"
            return _error("Too many requests", 429, **{"Retry-After": retry}), body, None
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway", 200, media_type="application/json"), body, None
        return _error("Runway is shedding load; try again", int(fault.kind)), body, None

    async def create(self, request: Request) -> Response:
        early, body, failing = await self._gate(request, "submit")
        if early is not None:
            return early
        endpoint = request.url.path.rsplit("/", 1)[1]
        problem = _body_problem(endpoint, body)
        if problem:
            return _error(problem, 400)
        spec = MODELS[endpoint][body["model"]]
        with self.lock:
            active = sum(1 for j in self.jobs.values() if self._status(j) in ("PENDING", "RUNNING"))
        job = self.new_job(body, fail=failing in ("fail", "moderation"))
        job.extra.update(
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            credits=spec[4] * _seconds(body),
            failure=MODERATED if failing == "moderation" else FAILURE,
            throttled=self.max_concurrent is not None and active >= self.max_concurrent,
        )
        if failing == "lost":  # the task exists and is billed; the reply never arrives
            return _error("upstream request timeout", 504)
        return JSONResponse({"id": job.id, "estimatedCost": {"credits": job.extra["credits"]}})

    def _status(self, job: Job) -> str:
        phase, _ = self.phase(job)
        if phase == "queued":
            return "THROTTLED" if job.extra.get("throttled") else "PENDING"
        return {"running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED"}.get(
            phase, "CANCELLED"
        )

    def task_json(self, job: Job, base_url: str) -> dict[str, Any]:
        status = self._status(job)
        task: dict[str, Any] = {
            "id": job.id,
            "status": status,
            "createdAt": job.extra["created_at"],
        }
        if status in ("PENDING", "THROTTLED", "RUNNING"):
            task["estimatedCost"] = {"credits": job.extra["credits"]}
            if status == "RUNNING":
                task["progress"] = round(self.phase(job)[1], 2)  # Runway reports 0..1
            return task
        # Moderated and failed generations are billed; a task cancelled before it ran is refunded.
        task["cost"] = {"credits": job.extra.get("charged", job.extra["credits"])}
        if status == "SUCCEEDED":
            task["output"] = [self.sign(job.id, base_url)]
        elif status == "FAILED":
            task["failure"], task["failureCode"] = job.extra["failure"]
        return task

    def sign(self, job_id: str, base_url: str) -> str:
        expires = int(time.time() + self.url_ttl)
        mac = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        return f"{base_url}/_outputs/{job_id}.mp4?_jwt={expires}.{mac.hexdigest()}"

    def _job(self, request: Request) -> Job | None:
        job = self.jobs.get(request.path_params["id"])
        return None if job is None or job.extra.get("deleted") else job

    async def get_task(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "status")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return _error("Task not found", 404)
        return JSONResponse(self.task_json(job, str(request.base_url).rstrip("/")))

    async def delete_task(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "cancel")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return _error("Task not found", 404)
        status = self._status(job)
        if status in ("PENDING", "THROTTLED", "RUNNING"):
            job.cancelled = True
            job.extra["charged"] = job.extra["credits"] if status == "RUNNING" else 0
        else:
            job.extra["deleted"] = True  # finished tasks are deleted and cannot be fetched again
        return Response(status_code=204)

    async def organization(self, request: Request) -> Response:
        early, _, _ = await self._gate(request, "organization")
        if early is not None:
            return early
        limits = {"maxConcurrentGenerations": self.max_concurrent, "maxDailyGenerations": 50}
        models = {m for by_model in MODELS.values() for m in by_model}
        used = {m: sum(1 for j in self.jobs.values() if j.body["model"] == m) for m in models}
        return JSONResponse(
            {
                "creditBalance": 10_000,
                "tier": {"maxMonthlyCreditSpend": 100_000, "models": {m: limits for m in models}},
                "usage": {"models": {m: {"dailyGenerations": n} for m, n in used.items()}},
            }
        )

    async def output(self, request: Request) -> Response:
        self.output_fetches.append({k.lower(): v for k, v in request.headers.items()})
        fault = self.take_fault("download")
        if fault is not None and fault.kind in ("500", "503"):
            return Response("upstream error", int(fault.kind))
        expires, _, sig = request.query_params.get("_jwt", "").partition(".")
        job_id = request.path_params["id"]
        want = hmac.new(self._signing_key, f"{job_id}.{expires}".encode(), hashlib.sha256)
        valid = expires.isdigit() and hmac.compare_digest(sig, want.hexdigest())
        if not valid or int(expires) < time.time():
            # CloudFront's refusal of a missing, forged or expired signature.
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>",
                403,
                media_type="text/xml",
            )
        job = self.jobs[job_id]  # only jobs get signed URLs
        return Response(sample_mp4(seconds=_seconds(job.body)), media_type="video/mp4")
