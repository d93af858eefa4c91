"""Replicate emulator: predictions on models, polling, cancel, account, output files.

Speaks Replicate's wire format (https://replicate.com/docs/topics/predictions/lifecycle, SDK
`replicate` 1.0.7): Bearer auth, RFC 7807 problem-details errors,
prediction objects with `starting`/`processing`/`succeeded`/`failed`/`canceled`/`aborted`,
tqdm-style progress in `logs`, `Prefer: wait[=N]` holding the create call.

Models publish their input schemas as Replicate's do (`GET /v1/models/{owner}/{name}` with
`latest_version.openapi_schema`, `GET .../versions/{id}`), written the way Cog writes them;
the "schema" fault op hits those two routes.

Two deliberate choices:
- Inputs are checked against the model's schema as the real service does (required fields,
  enums, types -> 422 "Input validation failed"), and unknown input names are refused too.
  The real service ignores them; refusing them makes a misspelt input name fail the tests
  instead of vanishing.
- Output files need the token. Whether the real CDN needs it is UNCONFIRMED; the SDK always
  sends it, so the emulator insists on it to prove the adapter sends it as well.

`app.state.emu` is the `Emulator`; `app.state.recorded` logs every request (method, path,
headers, body bytes) for SDK conformance tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job, requested_seconds, sample_mp4

TOKEN = "r8_emulator_token_0123456789abcdef"
MODERATION_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
FAILURE_ERROR = "Prediction failed: the model ran out of GPU memory while rendering frame 41"


@dataclass
class Schema:
    required: set[str]
    types: dict[str, type | tuple[type, ...]]
    enums: dict[str, list[Any]] = field(default_factory=dict)
    strict: bool = True
    seconds: float = 5  # the video's length when the input names no duration
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    visibility: str = "public"

    def openapi(self) -> dict[str, Any]:
        """The schema as Cog publishes it: `components.schemas.Input`, enums as their own
        schemas reached through `allOf: [{$ref}]`, `x-order`, `format: uri` for images."""
        kinds = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}
        components: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for order, (name, kind) in enumerate(self.types.items()):
            json_type = kinds[kind] if isinstance(kind, type) else "number"
            prop: dict[str, Any] = {"title": name.replace("_", " ").title(), "x-order": order}
            if name in self.enums:
                components[name] = {
                    "enum": self.enums[name],
                    "type": json_type,
                    "title": name,
                    "description": "An enumeration.",
                }
                prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
            else:
                prop["type"] = json_type
                if json_type == "array":
                    prop["items"] = {"type": "string", "format": "uri"}
                low, high = self.ranges.get(name, (None, None))
                if low is not None:
                    prop["minimum"] = low
                if high is not None:
                    prop["maximum"] = high
                if json_type == "string" and ("image" in name or "frame" in name):
                    prop["format"] = "uri"
            if name in self.defaults:
                prop["default"] = self.defaults[name]
            properties[name] = prop
        components["Input"] = {
            "type": "object",
            "title": "Input",
            "required": sorted(self.required),
            "properties": properties,
        }
        components["Output"] = {"type": "string", "title": "Output", "format": "uri"}
        return {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "paths": {},
            "components": {"schemas": components},
        }

    def seconds_of(self, inputs: dict[str, Any]) -> float:
        """The length of the clip `inputs` ask for: a duration, or frames at a frame rate."""
        if "num_frames" in self.types:
            fps = inputs.get("frames_per_second", self.defaults.get("frames_per_second", 16))
            frames = inputs.get("num_frames", self.defaults.get("num_frames", 81))
            return float(frames) / float(fps)
        return requested_seconds(inputs.get("duration"), self.seconds)


_STR, _INT, _BOOL, _NUM = str, int, bool, (int, float)
SCHEMAS: dict[str, Schema] = {
    "kwaivgi/kling-v2.5-turbo-pro": Schema(
        {"prompt"},
        {
            "prompt": _STR,
            "negative_prompt": _STR,
            "start_image": _STR,
            "image": _STR,
            "aspect_ratio": _STR,
            "duration": _INT,
        },
        {"aspect_ratio": ["16:9", "9:16", "1:1"], "duration": [5, 10]},
    ),
    "google/veo-3.1": Schema(
        {"prompt"},
        {
            "prompt": _STR,
            "negative_prompt": _STR,
            "image": _STR,
            "last_frame": _STR,
            "aspect_ratio": _STR,
            "duration": _INT,
            "resolution": _STR,
            "seed": _INT,
            "generate_audio": _BOOL,
            "reference_images": list,
        },
        {"aspect_ratio": ["16:9", "9:16"], "duration": [4, 6, 8], "resolution": ["720p", "1080p"]},
        seconds=8,
    ),
    "minimax/hailuo-02": Schema(
        {"prompt"},
        {
            "prompt": _STR,
            "first_frame_image": _STR,
            "last_frame_image": _STR,
            "duration": _INT,
            "resolution": _STR,
            "prompt_optimizer": _BOOL,
        },
        {"duration": [6, 10], "resolution": ["512p", "768p", "1080p"]},
        seconds=6,
    ),
    # A model outside the adapter's table that takes only a prompt.
    "lightricks/ltx-video": Schema({"prompt"}, {"prompt": _STR}, strict=False),
    # Models outside the table, mapped from their schemas: one with enums...
    "acme/enum-video": Schema(
        {"prompt"},
        {
            "prompt": _STR,
            "negative_prompt": _STR,
            "image": _STR,
            "aspect_ratio": _STR,
            "duration": _INT,
            "resolution": _STR,
            "seed": _INT,
            "generate_audio": _BOOL,
        },
        {
            "aspect_ratio": ["16:9", "9:16", "1:1"],
            "duration": [5, 10],
            "resolution": ["480p", "720p", "1080p"],
        },
        defaults={
            "aspect_ratio": "16:9",
            "duration": 5,
            "resolution": "720p",
            "generate_audio": True,
        },
    ),
    # ...one with ranges...
    "acme/range-video": Schema(
        {"prompt"},
        {
            "prompt": _STR,
            "start_image": _STR,
            "duration": _INT,
            "fps": _INT,
            "seed": _INT,
            "guidance_scale": _NUM,
        },
        ranges={
            "duration": (2, 12),
            "fps": (8, 30),
            "seed": (0, 2**31 - 1),
            "guidance_scale": (1, 20),
        },
        defaults={"duration": 5, "fps": 24, "guidance_scale": 7.5},
    ),
    # ...and one whose inputs have other names: frames and a frame rate, a pixel size, and a
    # first frame it cannot do without.
    "acme/frames-video": Schema(
        {"prompt", "first_frame_image"},
        {
            "prompt": _STR,
            "first_frame_image": _STR,
            "num_frames": _INT,
            "frames_per_second": _INT,
            "width": _INT,
            "height": _INT,
            "seed": _INT,
        },
        ranges={
            "num_frames": (17, 161),
            "frames_per_second": (4, 30),
            "width": (256, 1280),
            "height": (256, 1280),
        },
        defaults={"num_frames": 81, "frames_per_second": 16, "width": 832, "height": 480},
    ),
    # A private model: its schema is read with the owner's token only.
    "acme/private-video": Schema(
        {"prompt"},
        {"prompt": _STR, "duration": _INT},
        {"duration": [4, 8]},
        visibility="private",
    ),
}
VERSIONS = {f"{i:064x}": model for i, model in enumerate(SCHEMAS, start=1)}
_WAIT = re.compile(r"^wait(?:=(\d+))?$")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"title": title, "detail": detail, "status": status, **extra}
    return JSONResponse(body, status, media_type="application/problem+json")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _new_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().lower().rstrip("=")[:26]


def check_input(schema: Schema, inputs: Any) -> list[str]:
    if not isinstance(inputs, dict):
        return [f"- input: Invalid type. Expected: object, given: {type(inputs).__name__}"]
    problems = [f"- input: {name} is required" for name in sorted(schema.required - set(inputs))]
    for name, value in inputs.items():
        expected = schema.types.get(name)
        if expected is None:
            if schema.strict:
                problems.append(f"- input: Additional property {name} is not allowed")
            continue
        if not isinstance(value, expected) or (expected is not _BOOL and isinstance(value, bool)):
            shown = getattr(expected, "__name__", "number")
            problems.append(f"- input.{name}: Invalid type. Expected: {shown}")
        elif name in schema.enums and value not in schema.enums[name]:
            allowed = ", ".join(json.dumps(v) for v in schema.enums[name])
            problems.append(f"- input.{name}: {name} must be one of the following: {allowed}")
        elif name in schema.ranges:
            low, high = schema.ranges[name]
            if low is not None and value < low:
                problems.append(f"- input.{name}: Must be greater than or equal to {low:g}")
            if high is not None and value > high:
                problems.append(f"- input.{name}: Must be less than or equal to {high:g}")
    return problems


def set_status(job: Job, status: str) -> None:
    """Force a terminal status the clock does not produce (e.g. `aborted`)."""
    job.extra["status"] = status


def expire_output(job: Job) -> None:
    """What Replicate does an hour after the prediction: the output is deleted."""
    job.extra["data_removed"] = True


def create_app(
    emu: Emulator | None = None, *, token: str = TOKEN, page_size: int = 100
) -> Starlette:
    emu = emu or Emulator()
    recorded: list[dict[str, Any]] = []
    pending_failure: list[str] = []
    lost_reply: list[bool] = []

    async def record(request: Request) -> bytes:
        raw = await request.body()
        entry = {"method": request.method, "path": request.url.path, "body": raw}
        recorded.append(entry | {"headers": dict(request.headers)})
        return raw

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    def unauthenticated() -> JSONResponse:
        return problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    async def fault(op: str) -> Response | None:
        f = emu.take_fault(op)
        if f is None:
            return None
        if f.kind == "slow":
            await asyncio.sleep(f.delay)
        elif f.kind == "429":
            secs = f"{f.retry_after:g}"
            response = problem(
                429,
                "Request was throttled",
                f"Request was throttled. Your rate limit resets in ~{secs}s.",
            )
            response.headers["Retry-After"] = secs
            return response
        elif f.kind in ("500", "503"):
            title = "Internal Server Error" if f.kind == "500" else "Service Unavailable"
            return problem(int(f.kind), title, "Something went wrong on our side")
        elif f.kind == "malformed":
            return Response(
                "<html><body>502 Bad Gateway</body></html>", 200, media_type="application/json"
            )
        elif f.kind == "lost":
            lost_reply[:] = [True]
        else:  # "fail" and "moderation" are asynchronous on Replicate: the prediction fails.
            pending_failure[:] = [f.kind]
        return None

    def prediction(request: Request, job: Job) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        phase, progress = emu.phase(job)
        status = job.extra.get("status") or {
            "queued": "starting",
            "running": "processing",
            "cancelled": "canceled",
        }.get(phase, phase)
        body: dict[str, Any] = {
            "id": job.id,
            "model": job.extra["model"],
            "version": job.extra["version"],
            "input": job.body["input"],
            "logs": "",
            "output": None,
            "data_removed": bool(job.extra.get("data_removed")),
            "error": None,
            "status": status,
            "created_at": job.extra["created_at"],
            "urls": {
                "get": f"{base}/v1/predictions/{job.id}",
                "cancel": f"{base}/v1/predictions/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }
        if status != "starting":
            body["started_at"] = job.extra["created_at"]
        if status == "processing":
            pct, step = int(progress * 100), int(progress * 50)
            bar = "#" * (pct // 10)
            body["logs"] = f"Generating video\n{pct:3d}%|{bar:<10}| {step}/50 [00:01<00:02]\n"
        if status in ("succeeded", "failed", "canceled", "aborted"):
            body["completed_at"] = job.extra.setdefault("completed_at", _now())
            body["metrics"] = {"predict_time": round(emu.latency, 3), "total_time": emu.latency}
        if status == "succeeded" and not body["data_removed"]:
            body["output"] = f"{base}/delivery/xezq/{job.id}/output.mp4"
            body["logs"] = "Generating video\n100%|##########| 50/50 [00:03<00:00]\n"
        if status == "failed":
            body["error"] = job.extra.get("error") or FAILURE_ERROR
        return body

    async def create(request: Request, model: str | None) -> Response:
        raw = await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("submit")) is not None:
            return r
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return problem(400, "Invalid JSON", "The request body is not valid JSON")
        if not isinstance(body, dict) or "input" not in body:
            return problem(422, "Input validation failed", "- (root): input is required")
        version = "hidden"
        if model is None:
            version = str(body.get("version") or "")
            model = VERSIONS.get(version)
            if model is None:
                return problem(
                    422,
                    "Invalid version or not permitted",
                    "The specified version does not exist (or perhaps you don't "
                    "have permission to use it?)",
                )
        schema = SCHEMAS.get(model)
        if schema is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        if problems := check_input(schema, body["input"]):
            return problem(422, "Input validation failed", "\n".join(problems) + "\n")
        kind = pending_failure.pop() if pending_failure else None
        job = emu.new_job(body, fail=bool(kind), job_id=_new_id())
        job.extra.update(model=model, version=version, created_at=_now())
        if kind == "moderation":
            job.extra["error"] = MODERATION_ERROR
        if lost_reply and lost_reply.pop():
            return problem(504, "Gateway Timeout", "The upstream server did not answer in time")
        if m := _WAIT.match(request.headers.get("prefer", "")):
            # `Prefer: wait` holds the reply until the prediction finishes (at most N s).
            until = time.monotonic() + min(int(m.group(1) or 60), 60)
            while emu.phase(job)[0] in ("queued", "running") and time.monotonic() < until:
                await asyncio.sleep(0.05)
        return JSONResponse(prediction(request, job), 201)

    async def create_on_model(request: Request) -> Response:
        return await create(
            request, f"{request.path_params['owner']}/{request.path_params['name']}"
        )

    async def create_on_version(request: Request) -> Response:
        return await create(request, None)

    def find(request: Request) -> Job | None:
        return emu.jobs.get(request.path_params["id"])

    async def get(request: Request) -> Response:
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("status")) is not None:
            return r
        job = find(request)
        if job is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        return JSONResponse(prediction(request, job))

    async def list_predictions(request: Request) -> Response:
        """Newest first, `page_size` a page; `next` carries an opaque cursor, as Replicate's."""
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("list")) is not None:
            return r
        newest_first = sorted(emu.jobs.values(), key=lambda j: j.created, reverse=True)
        start = int(base64.urlsafe_b64decode(request.query_params.get("cursor", "") + "==") or 0)
        page = newest_first[start : start + page_size]
        more = start + page_size < len(newest_first)
        cursor = base64.urlsafe_b64encode(str(start + page_size).encode()).decode().rstrip("=")
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "previous": None,
                "next": f"{base}/v1/predictions?cursor={cursor}" if more else None,
                "results": [prediction(request, job) for job in page],
            }
        )

    async def cancel(request: Request) -> Response:
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("cancel")) is not None:
            return r
        job = find(request)
        if job is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        if emu.phase(job)[0] in ("queued", "running") and "status" not in job.extra:
            job.cancelled = True
        return JSONResponse(prediction(request, job))

    async def account(request: Request) -> Response:
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("account")) is not None:
            return r
        return JSONResponse(
            {"type": "user", "username": "emulator", "name": "Emulator", "github_url": None}
        )

    async def delivery(request: Request) -> Response:
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("download")) is not None:
            return r
        job = find(request)
        if job is None or job.extra.get("data_removed") or emu.phase(job)[0] != "succeeded":
            return problem(404, "Not found", "The requested resource could not be found.")
        seconds = SCHEMAS[job.extra["model"]].seconds_of(job.body["input"])
        return Response(sample_mp4(seconds=seconds), media_type="video/mp4")

    def version_object(version: str) -> dict[str, Any]:
        return {
            "id": version,
            "created_at": "2026-01-05T10:00:00.000000Z",
            "cog_version": "0.9.4",
            "openapi_schema": SCHEMAS[VERSIONS[version]].openapi(),
        }

    async def get_model(request: Request) -> Response:
        """`GET /v1/models/{owner}/{name}`: the model with its latest version's schema."""
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("schema")) is not None:
            return r
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in SCHEMAS:
            return problem(404, "Not found", "The requested resource could not be found.")
        owner, name = model.split("/")
        version = next(v for v, m in VERSIONS.items() if m == model)
        return JSONResponse(
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": f"{name} (emulated)",
                "visibility": SCHEMAS[model].visibility,
                "github_url": None,
                "paper_url": None,
                "license_url": None,
                "run_count": 0,
                "cover_image_url": None,
                "default_example": None,
                "latest_version": version_object(version),
            }
        )

    async def get_version(request: Request) -> Response:
        """`GET /v1/models/{owner}/{name}/versions/{id}`: one version and its schema."""
        await record(request)
        if not authorized(request):
            return unauthenticated()
        if (r := await fault("schema")) is not None:
            return r
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        version = request.path_params["id"]
        if VERSIONS.get(version) != model:
            return problem(404, "Not found", "The requested resource could not be found.")
        return JSONResponse(version_object(version))

    app = Starlette(
        routes=[
            Route("/v1/models/{owner}/{name}/predictions", create_on_model, methods=["POST"]),
            Route("/v1/models/{owner}/{name}", get_model, methods=["GET"]),
            Route("/v1/models/{owner}/{name}/versions/{id}", get_version, methods=["GET"]),
            Route("/v1/predictions", create_on_version, methods=["POST"]),
            Route("/v1/predictions", list_predictions, methods=["GET"]),
            Route("/v1/predictions/{id}", get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", cancel, methods=["POST"]),
            Route("/v1/account", account, methods=["GET"]),
            Route("/delivery/xezq/{id}/output.mp4", delivery, methods=["GET"]),
            *emu.control_routes(),
        ]
    )
    app.state.emu = emu
    app.state.recorded = recorded
    return app
