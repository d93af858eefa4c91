"""Luma Dream Machine emulator: the API under /dream-machine/v1 plus a public "CDN" for assets.

Speaks what `lumaai` 1.21.0 parses (`Generation`, `CreditGetResponse`, `PingCheckResponse`) and
what Luma documents: `{"detail": ...}` errors, pre-submission prompt checks, moderation and job
failures reported after submission in `failure_reason` (https://docs.lumalabs.ai/docs/errors),
DELETE answering 204 and removing the generation. Request validation is FastAPI-style 422 with a
list `detail`; it is stricter than Luma about unknown fields so an adapter that sends a field
Luma would ignore is caught.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Fault, Job, requested_seconds, sample_mp4

PREFIX = "/dream-machine/v1"
API_KEY = "luma-test-key-0123456789"
MODELS = ("ray-2", "ray-flash-2")
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
DURATIONS = ("5s", "9s")
RESOLUTIONS = ("540p", "720p", "1080p", "4k")
BODY_FIELDS = {
    "model", "prompt", "aspect_ratio", "duration", "resolution", "loop", "keyframes",
    "concepts", "callback_url", "generation_type",
}  # fmt: skip
MODERATION_REASON = "Advanced prompt moderation failed"
FAILURE_REASON = "Job failed"
STATES = {"queued": "queued", "running": "dreaming", "succeeded": "completed", "failed": "failed"}


def _detail(message: str, status: int) -> JSONResponse:
    return JSONResponse({"detail": message}, status)


def _invalid(field: str, msg: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": ["body", field], "msg": msg, "input": value}


class LumaEmulator(Emulator):
    """`emu.app` is the ASGI app; `emu.recorded` logs every API request (for SDK conformance)."""

    def __init__(self, *, api_key: str = API_KEY, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.recorded: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route(f"{PREFIX}/generations/video", self.create, methods=["POST"]),
                Route(f"{PREFIX}/generations", self.list, methods=["GET"]),
                Route(f"{PREFIX}/generations/{{id}}", self.get, methods=["GET"]),
                Route(f"{PREFIX}/generations/{{id}}", self.delete, methods=["DELETE"]),
                Route(f"{PREFIX}/credits", self.credits, methods=["GET"]),
                Route(f"{PREFIX}/ping", self.ping, methods=["GET"]),
                Route("/cdn/{id}/video.mp4", self.asset, methods=["GET"]),
                *self.control_routes(),
            ]
        )

    async def _enter(self, request: Request) -> Response | None:
        """Record the request and check auth, the way every API route starts."""
        raw = await request.body()
        self.requests.append((request.method, request.url.path))
        self.recorded.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": json.loads(raw) if raw else None,
            }
        )
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return _detail("Not authenticated", 401)
        if auth[7:] != self.api_key:
            return _detail("Invalid API key is provided", 401)
        return None

    @staticmethod
    async def _answer(fault: Fault | None) -> Response | None:
        """The reply a transport-level fault dictates, with Luma's `{"detail": ...}` bodies."""
        if fault is None or fault.kind in ("moderation", "fail"):
            return None
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "malformed":
            return Response("<html>502 Bad Gateway</html>", 200, media_type="application/json")
        if fault.kind == "429":
            return JSONResponse(
                {"detail": "Too many requests"},
                429,
                headers={"Retry-After": f"{fault.retry_after:g}"},
            )
        text = "Service Unavailable" if fault.kind == "503" else "Internal Server Error"
        return _detail(text, int(fault.kind))

    def generation(self, job: Job, request: Request) -> dict[str, Any]:
        phase, _ = self.phase(job)
        state = STATES[phase]
        failed = state == "failed"
        done = state == "completed"
        cdn = f"{str(request.base_url).rstrip('/')}/cdn/{job.id}"
        return {
            "id": job.id,
            "generation_type": "video",
            "state": state,
            "failure_reason": job.extra.get("reason", FAILURE_REASON) if failed else None,
            "created_at": job.extra["created_at"],
            "assets": {"video": f"{cdn}/video.mp4", "image": f"{cdn}/thumb.jpg"} if done else None,
            "model": job.body["model"],
            "request": job.body,
        }

    async def create(self, request: Request) -> Response:
        if denied := await self._enter(request):
            return denied
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fault = self.take_fault("submit")
        # Luma accepts the job and reports moderation or a job failure later, in failure_reason.
        if fault is not None and fault.kind in ("moderation", "fail"):
            reason = MODERATION_REASON if fault.kind == "moderation" else FAILURE_REASON
            return self._accept(request, body, reason=reason)
        if fault is not None and fault.kind == "lost":
            created = self._accept(request, body, reason=None)
            return created if created.status_code != 201 else _detail("Gateway Timeout", 504)
        if (answer := await self._answer(fault)) is not None:
            return answer
        return self._accept(request, body, reason=None)

    async def list(self, request: Request) -> Response:
        """Newest first, `limit` (default 10, as an unstated server default) from `offset`."""
        if denied := await self._enter(request):
            return denied
        if (answer := await self._answer(self.take_fault("list"))) is not None:
            return answer
        limit = int(request.query_params.get("limit", 10))
        offset = int(request.query_params.get("offset", 0))
        newest_first = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
        page = newest_first[offset : offset + limit]
        return JSONResponse(
            {
                "generations": [self.generation(job, request) for job in page],
                "count": len(page),
                "has_more": offset + limit < len(newest_first),
                "limit": limit,
                "offset": offset,
            }
        )

    def _accept(self, request: Request, body: Any, *, reason: str | None) -> Response:
        # This request's own body: with slow replies in flight, the last one recorded may be
        # another request's.
        if not isinstance(body, dict):
            missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
            return JSONResponse({"detail": [missing]}, 422)
        if problems := self._check(body):
            return JSONResponse({"detail": problems}, 422)
        prompt = body.get("prompt")
        if prompt is None and not body.get("keyframes"):
            return _detail("Prompt is required", 400)
        if prompt is not None and len(prompt) < 3:
            return _detail("Prompt is too short, minimum length is 3 characters", 400)
        if prompt is not None and len(prompt) > 5000:
            return _detail("Prompt is too long, maximum length is 5000 characters", 400)
        job = self.new_job(body, fail=reason is not None)
        job.extra["created_at"] = datetime.now(UTC).isoformat()
        if reason:
            job.extra["reason"] = reason
        return JSONResponse(self.generation(job, request), 201)

    @staticmethod
    def _check(body: dict[str, Any]) -> list[dict[str, Any]]:
        problems = [
            _invalid(k, "Extra inputs are not permitted", body[k])
            for k in body
            if k not in BODY_FIELDS
        ]
        if body.get("model") not in MODELS:
            problems.append(
                _invalid("model", "Input should be 'ray-2' or 'ray-flash-2'", body.get("model"))
            )
        for field, allowed in (
            ("aspect_ratio", ASPECT_RATIOS),
            ("duration", DURATIONS),
            ("resolution", RESOLUTIONS),
        ):
            if field in body and body[field] not in allowed:
                msg = "Input should be " + ", ".join(repr(a) for a in allowed)
                problems.append(_invalid(field, msg, body[field]))
        frame0 = (body.get("keyframes") or {}).get("frame0")
        if frame0 is not None and not (frame0.get("type") == "image" and frame0.get("url")):
            problems.append(_invalid("keyframes", "frame0 needs type 'image' and a url", frame0))
        return problems

    async def get(self, request: Request) -> Response:
        if denied := await self._enter(request):
            return denied
        if (answer := await self._answer(self.take_fault("status"))) is not None:
            return answer
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return _detail("Generation not found", 404)
        return JSONResponse(self.generation(job, request))

    async def delete(self, request: Request) -> Response:
        if denied := await self._enter(request):
            return denied
        if (answer := await self._answer(self.take_fault("cancel"))) is not None:
            return answer
        if self.jobs.pop(request.path_params["id"], None) is None:
            return _detail("Generation not found", 404)
        return Response(status_code=204)

    async def credits(self, request: Request) -> Response:
        if denied := await self._enter(request):
            return denied
        return JSONResponse({"credit_balance": 12345.0})

    async def ping(self, request: Request) -> Response:
        if denied := await self._enter(request):
            return denied
        return JSONResponse({"message": "pong"})

    async def asset(self, request: Request) -> Response:
        # storage.cdn-luma.com serves assets without auth; so does this. Recorded so tests can
        # check the API key never travels to the asset host.
        self.recorded.append(
            {"method": "GET", "path": request.url.path, "headers": dict(request.headers)}
        )
        if (answer := await self._answer(self.take_fault("download"))) is not None:
            return answer
        job = self.jobs.get(request.path_params["id"])
        if job is None or self.phase(job)[0] != "succeeded":
            return Response("<Error><Code>NoSuchKey</Code></Error>", 404)
        # Luma renders 5 s when the body names no duration.
        seconds = requested_seconds(job.body.get("duration"), 5)
        return Response(sample_mp4(seconds=seconds), media_type="video/mp4")
