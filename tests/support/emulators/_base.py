"""Shared machinery for provider emulators: job clock, fault injection, submission counting,
a real MP4 to serve, and running an ASGI app on 127.0.0.1.

Each provider emulator (tests/emulators/<provider>.py) builds a Starlette app around an
`Emulator`. Tests reach it in-process (`httpx.ASGITransport(app=emu.app)`) or over real HTTP
(`with serve(emu.app) as base_url:`).

Faults are queued per operation ("submit", "status", "cancel", "download", "any") and each is
used once, in order:
    emu.inject("submit", "429", retry_after=1)   # 429 with Retry-After
    emu.inject("status", "500") / "503"          # server errors
    emu.inject("status", "malformed")            # 200 with a body that is not JSON
    emu.inject("submit", "slow", delay=2)        # answer after `delay` seconds
    emu.inject("submit", "moderation")           # the provider's content-filter refusal
    emu.inject("submit", "fail")                 # accepted, then the job fails asynchronously
    emu.inject("submit", "lost")                 # the job is created, then the reply is a 504
Over HTTP the same is `POST /_emulator/faults {"op": ..., "kind": ..., ...}`;
`GET /_emulator/stats` returns submission counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULT_KINDS = {"429", "500", "503", "malformed", "slow", "moderation", "fail", "lost"}


@dataclass
class Fault:
    kind: str
    retry_after: float = 1.0
    delay: float = 1.0


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    created: float = field(default_factory=time.monotonic)
    fail: bool = False
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """Provider-neutral state. `latency` is seconds from submit to done; the first
    `queued_fraction` of it the job reports queued."""

    def __init__(self, *, latency: float = 0.3, queued_fraction: float = 0.3) -> None:
        self.latency = latency
        self.queued_fraction = queued_fraction
        self.jobs: dict[str, Job] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.submissions = 0
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def inject(self, op: str, kind: str, **kw: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        with self.lock:
            self.faults.setdefault(op, []).append(Fault(kind, **kw))

    def take_fault(self, op: str) -> Fault | None:
        with self.lock:
            for key in (op, "any"):
                queue = self.faults.get(key)
                if queue:
                    return queue.pop(0)
        return None

    def new_job(
        self, body: dict[str, Any], *, fail: bool = False, job_id: str | None = None
    ) -> Job:
        with self.lock:
            self.submissions += 1
            job = Job(id=job_id or str(uuid.uuid4()), body=body, fail=fail)
            self.jobs[job.id] = job
            return job

    def phase(self, job: Job) -> tuple[str, float]:
        """("queued" | "running" | "succeeded" | "failed" | "cancelled", progress 0..1)."""
        if job.cancelled:
            return "cancelled", 0.0
        elapsed = time.monotonic() - job.created
        if elapsed >= self.latency:
            return ("failed", 1.0) if job.fail else ("succeeded", 1.0)
        queued_for = self.latency * self.queued_fraction
        if elapsed < queued_for:
            return "queued", 0.0
        return "running", (elapsed - queued_for) / max(self.latency - queued_for, 1e-9)

    async def apply_fault(self, op: str, moderation: Response | None = None) -> Response | None:
        """Return the response a queued fault dictates, or None to answer normally.
        "fail" is not a response: callers check `take_fault` themselves for it via `pending_fail`.
        """
        fault = self.take_fault(op)
        if fault is None:
            return None
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "429":
            return JSONResponse(
                {"error": "rate limited"}, 429, headers={"Retry-After": f"{fault.retry_after:g}"}
            )
        if fault.kind in ("500", "503"):
            return JSONResponse({"error": "server error"}, int(fault.kind))
        if fault.kind == "malformed":
            return Response("<html>upstream proxy error", 200, media_type="application/json")
        if fault.kind == "moderation":
            return moderation or JSONResponse({"error": "blocked by content moderation"}, 400)
        if fault.kind == "fail":
            self._fail_next = True
        return None

    def pop_fail_flag(self) -> bool:
        flag = getattr(self, "_fail_next", False)
        self._fail_next = False
        return flag

    def control_routes(self) -> list[Route]:
        async def faults(request: Request) -> Response:
            body = await request.json()
            self.inject(body.pop("op", "any"), body.pop("kind"), **body)
            return JSONResponse({"ok": True})

        async def stats(request: Request) -> Response:
            return JSONResponse({"submissions": self.submissions, "jobs": len(self.jobs)})

        async def config(request: Request) -> Response:
            body = await request.json()
            self.latency = float(body.get("latency", self.latency))
            return JSONResponse({"latency": self.latency})

        return [
            Route("/_emulator/faults", faults, methods=["POST"]),
            Route("/_emulator/stats", stats, methods=["GET"]),
            Route("/_emulator/config", config, methods=["POST"]),
        ]


def requested_seconds(value: Any, default: float) -> float:
    """The length a duration field asks for, written as 5, 5.0, "5" or "5s"; `default` when
    the field is absent or unreadable (an emulator that validates late still finishes jobs)."""
    if isinstance(value, str):
        value = value.strip().removesuffix("s")
    if isinstance(value, bool) or value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


# Sized for every length the emulators serve at once (4-10 s and the odd Wan frame count), so
# a run encodes each clip once.
@functools.lru_cache(maxsize=16)
def sample_mp4(seconds: float = 1.0, width: int = 64, height: int = 64, fps: int = 8) -> bytes:
    """A real, tiny H.264 MP4 so downloads can be verified like a provider's output. Emulators
    serve it at the length the job asked for, as providers do."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((height, width, 3), (i * 20) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"emulator did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
