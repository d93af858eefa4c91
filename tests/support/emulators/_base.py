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

Fault *rates* hit any call, not just the first N: each call of a rated operation draws from a
seeded RNG once its queue is empty (queued faults come first), so a run is reproducible:
    emu.set_fault_rates({"500": 0.05, "503": 0.05, "429": 0.05, "slow": 0.02,
                         "malformed": 0.01, "fail": 0.03}, seed=1234, slow_delay=2)
    emu.set_fault_rates({"500": 0.1}, ops=["status"])   # only these operations
"fail", "moderation" and "lost" shape a created job, so they are drawn for "submit" only.
Served through `serve()` (or wrapped in `ReplyShaper`), a drawn "slow" or "malformed" on
"submit" hits the reply of a job that *was* created (and paid): the reply comes late or is
unreadable, as when a real provider's answer is lost on the way back. Without the wrapper
they act like the queued kinds (before the job is made). `emu.drawn` counts what was drawn
per (op, kind); `job.extra["reply_lost"]` names the fault that spoiled a created job's reply.

`emu.on_created(callback)` calls `callback(job)` right after a job is created (and counted in
`submissions`) and before its reply is sent: a drill can SIGKILL the client at the worst
moment. Over HTTP, `POST /_emulator/config {"latency": ...}` still sets the job latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import io
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULT_KINDS = {"429", "500", "503", "malformed", "slow", "moderation", "fail", "lost"}
# Kinds that shape the job a submit creates: drawn by rates for "submit" only.
JOB_KINDS = {"moderation", "fail", "lost"}
# Operations some emulators use internally to decide a job's fate (not an HTTP call): queued
# faults only, never rates.
INTERNAL_OPS = {"job", "output"}
# Kinds a `ReplyShaper` applies to the reply after the job was created.
REPLY_KINDS = {"slow", "malformed"}
MALFORMED_BODY = b"<html>502 Bad Gateway: upstream connection reset"

# Set per request by `ReplyShaper`: what a drawn fault asks of this request's reply.
_reply: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "emulator_reply", default=None
)


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
        # Fault rates: op -> [(kind, probability)], None = every op but INTERNAL_OPS.
        self.rates: dict[str | None, list[tuple[str, float]]] = {}
        self.rng = random.Random(0)
        self.slow_delay = 1.0
        self.rate_retry_after = 1.0
        self.drawn: Counter[tuple[str, str]] = Counter()
        self.created_callbacks: list[Callable[[Job], Any]] = []

    def inject(self, op: str, kind: str, **kw: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        with self.lock:
            self.faults.setdefault(op, []).append(Fault(kind, **kw))

    def set_fault_rates(
        self,
        rates: Mapping[str, float],
        *,
        seed: int | None = None,
        ops: list[str] | tuple[str, ...] | set[str] | None = None,
        slow_delay: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Per call of each operation in `ops` (default: every HTTP operation), fault `kind`
        with probability `rates[kind]`, after any queued fault. `seed` re-seeds the shared RNG;
        a later call for other `ops` adds their table; an empty `rates` removes it."""
        for kind, p in rates.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
            if not 0 <= p <= 1:
                raise ValueError(f"rate of {kind!r} must be between 0 and 1, not {p}")
        if sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates add up to more than 1: {dict(rates)}")
        table = [(kind, float(p)) for kind, p in sorted(rates.items()) if p > 0]
        with self.lock:
            if seed is not None:
                self.rng = random.Random(seed)
            if slow_delay is not None:
                self.slow_delay = slow_delay
            if retry_after is not None:
                self.rate_retry_after = retry_after
            for key in list(ops) if ops is not None else [None]:
                if table:
                    self.rates[key] = table
                else:
                    self.rates.pop(key, None)

    def clear_fault_rates(self) -> None:
        with self.lock:
            self.rates.clear()

    def _draw(self, op: str) -> Fault | None:
        """Under `self.lock`: one draw from the rate table that applies to `op`."""
        table = self.rates.get(op)
        if table is None and op not in INTERNAL_OPS:
            table = self.rates.get(None)
        if not table:
            return None
        roll, edge, kind = self.rng.random(), 0.0, None
        for candidate, p in table:
            edge += p
            if roll < edge:
                kind = candidate
                break
        if kind is None:
            return None
        if kind in JOB_KINDS and op != "submit":
            return None
        self.drawn[(op, kind)] += 1
        reply = _reply.get()
        if kind in REPLY_KINDS and op == "submit" and reply is not None:
            # The job is made as usual; the shaper spoils its reply on the way out.
            reply["kind"] = kind
            reply["delay"] = self.slow_delay
            return None
        return Fault(kind, retry_after=self.rate_retry_after, delay=self.slow_delay)

    def take_fault(self, op: str) -> Fault | None:
        with self.lock:
            for key in (op, "any"):
                queue = self.faults.get(key)
                if queue:
                    return queue.pop(0)
            if self.rates:
                return self._draw(op)
        return None

    def on_created(self, callback: Callable[[Job], Any]) -> Callable[[], None]:
        """Call `callback(job)` right after each job is created and counted, before its reply
        is sent (so a drill can kill the client then). Returns a function that removes it."""
        self.created_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self.created_callbacks.remove(callback)

        return remove

    def new_job(
        self, body: dict[str, Any], *, fail: bool = False, job_id: str | None = None
    ) -> Job:
        with self.lock:
            self.submissions += 1
            job = Job(id=job_id or str(uuid.uuid4()), body=body, fail=fail)
            self.jobs[job.id] = job
        reply = _reply.get()
        if reply is not None:
            reply["job"] = job
            if reply.get("kind"):
                job.extra["reply_lost"] = reply["kind"]
        for callback in list(self.created_callbacks):
            callback(job)
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


class ReplyShaper:
    """ASGI wrapper that lets rate-drawn "slow" and "malformed" faults on a submit hit the
    reply of the job the emulator created: the reply is held `delay` seconds, or its body is
    replaced by text that is not JSON (status 200). Transparent for every other request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reply: dict[str, Any] = {}
        token = _reply.set(reply)

        async def shaped_send(message: dict[str, Any]) -> None:
            kind = reply.get("kind")
            if kind == "slow" and message["type"] == "http.response.start":
                await asyncio.sleep(reply.get("delay", 1.0))
            if kind == "malformed":
                if message["type"] == "http.response.start":
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() not in (b"content-length", b"content-type")
                    ]
                    headers += [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(MALFORMED_BODY)).encode()),
                    ]
                    message = {**message, "status": 200, "headers": headers}
                elif message["type"] == "http.response.body":
                    if message.get("more_body"):
                        return
                    message = {"type": "http.response.body", "body": MALFORMED_BODY}
            with contextlib.suppress(Exception):  # the client may have given up already
                await send(message)

        try:
            await self.app(scope, receive, shaped_send)
        finally:
            _reply.reset(token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 in a thread; yield its base URL. The app is
    wrapped in `ReplyShaper` (transparent unless fault rates draw a reply fault)."""
    port = port or free_port()
    shaped = app if isinstance(app, ReplyShaper) else ReplyShaper(app)
    server = uvicorn.Server(
        uvicorn.Config(shaped, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
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
