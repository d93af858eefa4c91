"""How close `generate_batch` comes to the physical limit of a batch against an emulated provider
(issue 10: "The batch engine at the physical limit").

Run: `python -m bench.bench_batch [--configs NAME ... | --quick] [--modes ephemeral server]
[--rows N --concurrency C --latency L --poll P] [--budget S] [--profile N] [--json]`.

N rows, each a job the Runway emulator finishes L seconds after its submit, at most C in flight:
no client can finish before ceil(N/C)*L, the physical limit. For each configuration three
measurements run, each in a fresh process of its own with an emulator of its own (a child
process, so its CPU is not counted in the client's):

- plain: the Runway adapter driven by plain asyncio (submit, poll, download under a semaphore
  of C) on an httpx client whose pool is sized to C. No Prefect, no database, no verification.
- ephemeral: the real `generate_batch` flow on Prefect's ephemeral API (a uvicorn subprocess).
- server: the same flow on a `prefect server` this bench starts for the configuration (its own
  temporary PREFECT_HOME and SQLite database, a free 127.0.0.1 port) and stops afterwards.

The flow is driven only through its public signature, so the bench measures whatever engine
flows/batch.py runs. Each pipeline is warmed up by a 1-row batch that is not measured.

Polling: configurations with a poll interval patch `RunwayAdapter.capabilities` in the client's
process to poll every P seconds with no back-off (Runway's own guidance, at most every 5 s,
would dwarf a 2 s job); `--poll 0` keeps the provider's own guidance.

Every figure is a ratio or a count from one run; nothing here is asserted on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import csv
import importlib.metadata
import inspect
import io
import json
import math
import os
import platform
import pstats
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
USER = "bench"
CSV_HEAD = "id,prompt,aspect_ratio,motion_intensity,duration,resolution,seed\n"
TICK = os.sysconf("SC_CLK_TCK")
# The least a client can send for one job: the submit, one status that says it is done, and
# the download.
MINIMUM_REQUESTS = 3
MODES = ("ephemeral", "server")


@dataclass(frozen=True)
class Config:
    name: str
    rows: int
    concurrency: int
    latency: float
    poll: float | None  # None: the provider's own guidance (Runway: 5 s, backing off)
    # Seconds the flow runs before it is stopped; None: `default_budget`. A configuration that
    # measures only the start of a batch sets it.
    budget: float | None = None

    @property
    def limit(self) -> float:
        return math.ceil(self.rows / self.concurrency) * self.latency

    def args(self) -> list[str]:
        return [
            "--rows",
            str(self.rows),
            "--concurrency",
            str(self.concurrency),
            "--latency",
            f"{self.latency:g}",
            "--poll",
            f"{self.poll or 0:g}",
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "concurrency": self.concurrency,
            "latency_seconds": self.latency,
            "poll_seconds": self.poll,
            "limit_seconds": self.limit,
        }


# The three configurations, plus one at the provider's own poll guidance for the
# "requests per job at the providers' own poll guidance" target. 10k runs under `make bench`
# only (CI runs `make test`, whose bench test is tiny).
CONFIGS = {
    c.name: c
    for c in (
        Config("1k", 1_000, 50, 2.0, 0.2),
        Config("2k", 2_000, 100, 5.0, 1.0),
        Config("guidance", 200, 50, 10.0, None),
        Config("10k", 10_000, 200, 5.0, 1.0),
        # Only how soon the first submit goes out: stopped after a minute.
        Config("first", 100_000, 200, 5.0, 1.0, budget=60.0),
    )
}
QUICK = ("1k",)


def default_budget(config: Config) -> float:
    """Seconds a pipeline may run before it is stopped and reported as such: 10 times the
    limit (the engine on main took up to 8.5 times) plus five minutes."""
    return 10 * config.limit + 300


# --------------------------------------------------------------------------- measuring


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    # ru_maxrss is the peak of this whole process (KiB on Linux): exact, unlike sampling.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _peak_rss_kib(pid: int) -> int:
    """A live process's peak resident set (VmHWM); 0 once it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class ProcessTree:
    """Another process and its descendants at the time this is made (Linux /proc): CPU (user +
    system, its reaped children included) and peak RSS (the sum of each one's VmHWM)."""

    def __init__(self, pid: int) -> None:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
        self.pids, todo = [], [pid]
        while todo:
            current = todo.pop()
            self.pids.append(current)
            todo += children.get(current, [])

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids:
            fields = _stat(pid)
            if fields is not None:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return total / TICK

    def peak_rss_mb(self) -> float:
        return sum(_peak_rss_kib(pid) for pid in self.pids) / 1024

    def wait_idle(self, cap: float, quiet: float = 2.0, below: float = 0.05) -> float:
        """Wait until the tree has used less than `below` of a core for `quiet` seconds (or
        `cap` seconds passed); return how long it stayed busy."""
        started = last_busy = time.perf_counter()
        before = self.cpu_seconds()
        while (now := time.perf_counter()) - started < cap:
            if now - last_busy >= quiet:
                break
            time.sleep(0.5)
            after = self.cpu_seconds()
            if after - before > below * 0.5:
                last_busy = time.perf_counter()
            before = after
        return round(last_busy - started, 1)


def _spread(values: list[float], scale: float) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(v / scale for v in values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 2)

    return {"median": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 2)}


# --------------------------------------------------------------------------- the emulator


def _kind(method: str, path: str) -> str | None:
    """What a request to the Runway emulator is, for counting; None for its control routes."""
    if path.startswith("/v1/") and path.endswith("_to_video") and method == "POST":
        return "submit"
    if path.startswith("/v1/tasks/"):
        return "status" if method == "GET" else "cancel"
    if path.startswith("/_outputs/"):
        return "download"
    if path.startswith("/_emulator/"):
        return None
    return "other"


class CountingApp:
    """ASGI wrapper of the Runway emulator's app, in the emulator's process: counts every
    provider request by kind and every reply that is not 2xx or 3xx, times each job from its
    submit to its download (the emulator's own clock), and keeps the most jobs ever in flight
    at once (accepted, not yet downloaded). The emulator itself is unchanged:
    `/_bench/counts` reads the counts, `POST /_bench/reset` zeroes them and forgets the jobs of
    the warm-up (the emulator's submit scans every job it holds)."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.job_seconds: list[float] = []
        self.first_submit_at: float | None = None
        self.in_flight = self.peak_in_flight = 0
        self.downloaded: set[str] = set()
        with self.emulator.lock:
            self.emulator.jobs.clear()
        self._trim()

    def _trim(self) -> None:
        # The emulator logs every request with its headers for SDK conformance tests; at
        # 10,000 rows that log alone would hold hundreds of MB. The bench never reads it.
        self.emulator.recorded.clear()
        self.emulator.output_fetches.clear()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse, Response

        if scope["type"] != "http":
            await self.emulator.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/_bench/counts":
            body = {
                "requests": dict(self.requests),
                "errors": dict(self.errors),
                "job_seconds": self.job_seconds,
                "first_submit_at": self.first_submit_at,
                "peak_in_flight": self.peak_in_flight,
            }
            await JSONResponse(body)(scope, receive, send)
            return
        if path == "/_bench/reset":
            self.reset()
            await Response(status_code=204)(scope, receive, send)
            return
        kind = _kind(scope["method"], path)
        if kind is None:
            await self.emulator.app(scope, receive, send)
            return
        self.requests[kind] += 1
        if kind == "submit" and self.first_submit_at is None:
            self.first_submit_at = time.time()
        if kind == "download":
            job_id = path.rsplit("/", 1)[1].removesuffix(".mp4")
            job = self.emulator.jobs.get(job_id)
            if job is not None:
                self.job_seconds.append(time.monotonic() - job.created)
            if job_id not in self.downloaded:
                self.downloaded.add(job_id)
                self.in_flight -= 1
        if len(self.emulator.recorded) > 1000:
            self._trim()

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    self.errors[f"{kind} {message['status']}"] += 1
                elif kind == "submit":
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            await send(message)

        await self.emulator.app(scope, receive, counted)


def _serve_emulator(latency: float) -> None:
    from tests.support.emulators import runway
    from tests.support.emulators._base import sample_mp4, serve

    sample_mp4(seconds=5.0)  # the clip every download serves, encoded before the clock starts
    with serve(CountingApp(runway.RunwayEmulator(latency=latency))) as url:
        print(url, flush=True)
        sys.stdin.read()  # until the parent closes the pipe or ends


class Emulator:
    """The Runway emulator in a child process of its own, and its request counts."""

    def __init__(self, url: str, pid: int, latency: float) -> None:
        self.url, self.pid, self.latency = url, pid, latency

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.url}/_bench/reset", timeout=30).raise_for_status()

    def figures(self, completed: int, started_at: float) -> dict[str, Any]:
        """Provider requests per completed job over the minimum, by kind, each job's time at
        the provider (submit to download) over L, and the first submit's seconds after
        `started_at` (a `time.time()`)."""
        import httpx

        counts = httpx.get(f"{self.url}/_bench/counts", timeout=30).json()
        first = counts["first_submit_at"]
        total = sum(counts["requests"].values())
        per_job = total / completed if completed else None
        return {
            "provider_requests": counts["requests"],
            "provider_errors": counts["errors"],
            "requests_per_job": None if per_job is None else round(per_job, 2),
            "requests_per_job_vs_minimum": (
                None if per_job is None else round(per_job / MINIMUM_REQUESTS, 2)
            ),
            "job_time_vs_latency": _spread(counts["job_seconds"], self.latency),
            "first_submit_seconds": (None if first is None else round(first - started_at, 2)),
        }


@contextlib.contextmanager
def _emulator(latency: float) -> Iterator[Emulator]:
    command = [sys.executable, "-m", "bench.bench_batch", "--serve-emulator", f"{latency:g}"]
    child = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the Runway emulator did not start (it printed {url!r})")
        yield Emulator(url, child.pid, latency)
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _poll_every(poll: float) -> Callable[[], None]:
    """Make `RunwayAdapter` poll every `poll` seconds with no back-off in this process; returns
    what undoes it. bench_scale's flow runs, each a process of its own, call it at their start
    (bench/flow_run_hook)."""
    from adapters.runway import RunwayAdapter

    original = RunwayAdapter.capabilities

    def capabilities(self: RunwayAdapter) -> Any:
        return original(self).model_copy(update={"poll_interval": poll, "max_poll_interval": poll})

    RunwayAdapter.capabilities = capabilities  # type: ignore[method-assign]

    def undo() -> None:
        RunwayAdapter.capabilities = original  # type: ignore[method-assign]

    return undo


@contextlib.contextmanager
def _polling(poll: float | None) -> Iterator[None]:
    if poll is None:
        yield
        return
    undo = _poll_every(poll)
    try:
        yield
    finally:
        undo()


def _prompt(i: int) -> str:
    return f"A lighthouse on a cliff at dusk with waves below and shot number {i}"


# --------------------------------------------------------------------------- plain asyncio


async def plain(rows: int, concurrency: int, base_url: str, out: Path) -> list[BaseException]:
    """Submit, poll at the adapter's interval, download: what any client must do at least.
    Its HTTP pool is sized to C (httpx's default of 100 connections makes httpcore scan the
    pool on every request once more are in flight), so it measures the provider."""
    import httpx

    from adapters.runway import RunwayAdapter
    from sceneflow.models import JobStatus, StandardVideoRequest
    from sceneflow.providers import Credentials
    from tests.support.emulators.runway import API_KEY

    credentials = Credentials({"api_key": API_KEY})
    limit = asyncio.Semaphore(concurrency)
    out.mkdir(parents=True)
    pool = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(adapter: RunwayAdapter, interval: float, i: int) -> None:
        request = StandardVideoRequest(
            prompt=_prompt(i),
            aspect_ratio="16:9",
            motion_intensity=5,
            duration=5,
            resolution="720p",
            seed=i,
        )
        async with limit:
            job_id = await adapter.submit(request, credentials)
            while True:
                result = await adapter.status(job_id, credentials)
                if result.status is JobStatus.COMPLETED:
                    break
                if result.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
                    raise RuntimeError(f"row {i}: {result.status} {result.error_message}")
                await asyncio.sleep(interval)
            await adapter.download(result, credentials, out / f"{i}.mp4")

    async with httpx.AsyncClient(timeout=RunwayAdapter.timeout, limits=pool) as client:
        adapter = RunwayAdapter(client=client, base_url=base_url)
        interval = adapter.capabilities().poll_interval
        done = await asyncio.gather(
            *(one(adapter, interval, i) for i in range(rows)), return_exceptions=True
        )
    return [e for e in done if isinstance(e, BaseException)]


def run_plain(config: Config) -> dict[str, Any]:
    import adapters.runway  # noqa: F401  (imported before the clock starts)
    import tests.support.emulators.runway  # noqa: F401

    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-plain-") as tmp,
        _emulator(config.latency) as emulator,
        _polling(config.poll),
    ):
        emulator_cpu = ProcessTree(emulator.pid)
        emulator_before, cpu, started, started_at = (
            emulator_cpu.cpu_seconds(),
            _cpu_seconds(),
            time.perf_counter(),
            time.time(),
        )
        errors = asyncio.run(
            plain(config.rows, config.concurrency, emulator.url, Path(tmp) / "out")
        )
        wall = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        emulator_used = emulator_cpu.cpu_seconds() - emulator_before
        completed = config.rows - len(errors)
        figures = emulator.figures(completed, started_at)
    return {
        "wall_seconds": round(wall, 2),
        "cpu_ms_per_row": round(1000 * cpu / config.rows, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "emulator_cpu_ms_per_row": round(1000 * emulator_used / config.rows, 1),
        "completed": completed,
        "failed_rows": len(errors),
        "error": f"{type(errors[0]).__name__}: {errors[0]}"[:300] if errors else None,
        **figures,
    }


# --------------------------------------------------------------------------- the pipeline


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _is_error(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class PrefectApiCalls:
    """Every HTTP attempt Prefect's own API clients make in this process, as the client sees it,
    and every time its event stream had to reconnect.

    How: `PrefectHttpxAsyncClient` (the httpx client inside `PrefectClient`) and its sync twin
    send each request through `_send_with_retry`, whose loop silently retries 429, 502, 503 and
    408 replies and transport errors (ReadError, timeouts...) up to PREFECT_CLIENT_MAX_RETRIES
    times. The `send` callable that loop is given is wrapped here, so each attempt is counted,
    including the retried ones no caller ever hears of. An httpx response hook would miss the
    attempts that end in a transport error; the API server's access log exists only for a
    server we start (the ephemeral one logs errors only) and misses what never reached it.
    Events do not use HTTP: `PrefectEventsClient` streams them over a websocket, and each
    `_reconnect` after the first connection is counted. These are private names of Prefect
    3.9: if they change, the bench fails loudly instead of reporting zero errors.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.attempts = 0
        self.statuses: Counter[int] = Counter()
        self.failed: Counter[str] = Counter()  # "503 POST /api/...", ids as {id}
        self.exceptions: Counter[str] = Counter()
        self.reconnects = 0
        self.events = self._events_emitted()

    def install(self) -> PrefectApiCalls:
        from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
        from prefect.events.clients import PrefectEventsClient

        for cls in (PrefectHttpxAsyncClient, PrefectHttpxSyncClient):
            self._wrap_retry_loop(cls)
        original = PrefectEventsClient._reconnect
        calls = self

        async def reconnect(client: Any) -> None:
            if getattr(client, "_bench_connected", False):
                calls.reconnects += 1
            await original(client)
            client._bench_connected = True

        PrefectEventsClient._reconnect = reconnect  # type: ignore[method-assign]
        self.reset()
        return self

    def _wrap_retry_loop(self, cls: type) -> None:
        original = getattr(cls, "_send_with_retry", None)
        signature = inspect.signature(original) if original is not None else None
        if signature is None or "send" not in signature.parameters:
            raise RuntimeError(
                f"{cls.__name__}._send_with_retry(send=...) is gone: Prefect changed, and the "
                "bench cannot count the API errors its client retries; update PrefectApiCalls"
            )
        calls = self

        def seen(request: Any, response: Any = None, error: BaseException | None = None) -> None:
            calls.attempts += 1
            if error is not None:
                calls.exceptions[type(error).__name__] += 1
                what = type(error).__name__
            elif response.status_code >= 400:
                calls.statuses[response.status_code] += 1
                what = str(response.status_code)
            else:
                return
            path = _UUID.sub("{id}", str(getattr(request, "url", "?").path))
            calls.failed[f"{what} {getattr(request, 'method', '?')} {path}"] += 1

        if inspect.iscoroutinefunction(original):

            async def wrapped(*args: Any, **kwargs: Any) -> Any:
                bound = signature.bind(*args, **kwargs)
                send = bound.arguments["send"]

                async def counted(request: Any, *a: Any, **kw: Any) -> Any:
                    try:
                        response = await send(request, *a, **kw)
                    except Exception as e:
                        seen(request, error=e)
                        raise
                    seen(request, response)
                    return response

                bound.arguments["send"] = counted
                return await original(*bound.args, **bound.kwargs)

        else:

            def wrapped(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                bound = signature.bind(*args, **kwargs)
                send = bound.arguments["send"]

                def counted(request: Any, *a: Any, **kw: Any) -> Any:
                    try:
                        response = send(request, *a, **kw)
                    except Exception as e:
                        seen(request, error=e)
                        raise
                    seen(request, response)
                    return response

                bound.arguments["send"] = counted
                return original(*bound.args, **bound.kwargs)

        cls._send_with_retry = wrapped  # type: ignore[attr-defined]

    @staticmethod
    def _events_emitted() -> float:
        from prefect.events.clients import EVENTS_EMITTED

        return sum(
            sample.value
            for metric in EVENTS_EMITTED.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    def figures(self, rows: int) -> dict[str, Any]:
        # Errors: server errors, 429/408 (which the client retries silently), transport errors
        # and websocket reconnects. Other 4xx replies are listed apart: Prefect uses 404 and
        # 409 in its normal course (a limit or block that does not exist yet).
        errors = sum(n for code, n in self.statuses.items() if _is_error(code))
        errors += sum(self.exceptions.values()) + self.reconnects
        statuses = {str(k): v for k, v in sorted(self.statuses.items())}
        return {
            "api_errors": errors,
            "api_error_statuses": {k: v for k, v in statuses.items() if _is_error(int(k))},
            "api_other_4xx": {k: v for k, v in statuses.items() if not _is_error(int(k))},
            "api_transport_errors": dict(self.exceptions),
            "api_event_reconnects": self.reconnects,
            "api_failed_requests": dict(self.failed.most_common(10)),
            "api_requests_per_row": round(self.attempts / rows, 2),
            "events_per_row": round((self._events_emitted() - self.events) / rows, 2),
        }


def _write_csv(path: Path, rows: int, first: int = 0) -> str:
    """`rows` rows numbered from `first`: ids, prompts and seeds no other numbering shares."""
    lines = [f"r{i:05d},{_prompt(i)},16:9,5,5,720p,{i}\n" for i in range(first, first + rows)]
    path.write_text(CSV_HEAD + "".join(lines))
    return str(path)


async def pipeline(
    csv_path: str, concurrency: int, out: Path, budget: float | None = None
) -> dict[str, Any]:
    """The public flow, as a user's code calls it; what stopped it, if anything."""
    from adapters import Provider
    from flows.batch import generate_batch

    run = generate_batch(
        csv_path, USER, provider=Provider.RUNWAY, output_dir=str(out), max_concurrency=concurrency
    )
    try:
        await asyncio.wait_for(run, budget)
    except TimeoutError:
        return {"timed_out": True, "error": f"stopped by its time budget of {budget:g} s"}
    except Exception as e:
        return {"timed_out": False, "error": f"{type(e).__name__}: {e}"[:500]}
    return {"timed_out": False, "error": None}


def _outcomes(results_csv: Path) -> Counter[str]:
    """Rows by status in the batch's results.csv."""
    if not results_csv.exists():
        return Counter()
    with results_csv.open(newline="") as f:
        return Counter(row["status"] for row in csv.DictReader(f))


def _why_not_completed(results_csv: Path, most: int = 5) -> dict[str, int]:
    """The errors of the rows that did not complete, with how many rows gave each."""
    if not results_csv.exists():
        return {}
    with results_csv.open(newline="") as f:
        errors = Counter(
            f"{row['status']}: {row['error']}"
            for row in csv.DictReader(f)
            if row["status"] != "COMPLETED"
        )
    return dict(errors.most_common(most))


@contextlib.contextmanager
def _environment(
    tmp: Path, emulator_url: str, server: str | None, database_url: str | None = None
) -> Iterator[None]:
    """Everything the flow reads from the environment, set for this run and restored after;
    SceneFlow's database is a SQLite file in SCENEFLOW_HOME unless `database_url` is given."""
    values = {
        "SCENEFLOW_HOME": str(tmp / "sceneflow"),
        "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SCENEFLOW_BASE_URLS__RUNWAY": emulator_url,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Its 20 s default is too short on a busy 2-core machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # Run logs still reach the API at INFO, as in production; the terminal gets warnings only.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "PREFECT_API_URL": server,
        "DATABASE_URL": database_url,
    }
    previous = {key: os.environ.get(key) for key in values}

    def apply(settings: dict[str, str | None]) -> None:
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    from sceneflow.settings import get_settings

    apply(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        apply(previous)
        get_settings.cache_clear()


def _store_key() -> None:
    from sceneflow import store
    from sceneflow.db import session_scope
    from tests.support.emulators.runway import API_KEY

    with session_scope() as session:
        store.put_credentials(
            session=session, user_id=USER, provider="runway", credentials={"api_key": API_KEY}
        )


def _ephemeral_server_pid() -> int | None:
    # Private API: the ephemeral server is a uvicorn subprocess Prefect keeps in a class registry.
    from prefect.server.api.server import SubprocessASGIServer

    for server in SubprocessASGIServer._instances.values():
        if server.server_process is not None:
            return server.server_process.pid
    return None


def _stop_ephemeral_server() -> None:
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


def run_pipeline(
    config: Config, server: str | None, server_pid: int | None, budget: float | None, profile: int
) -> dict[str, Any]:
    """Warm-up, then the measured batch: wall time, CPU of this process and of the Prefect API
    (counted until the API has ingested what the flow sent, up to 3 minutes after the flow
    returns), peak RSS of both, provider requests, Prefect API errors, rows not COMPLETED."""
    n = config.rows
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-flow-") as tmp_name,
        _emulator(config.latency) as emulator,
        _polling(config.poll),
        _environment(Path(tmp_name), emulator.url, server),
    ):
        tmp = Path(tmp_name)
        _store_key()
        calls = PrefectApiCalls().install()
        started = time.perf_counter()
        warmup = asyncio.run(pipeline(_write_csv(tmp / "warmup.csv", 1), 1, tmp / "warmup"))
        if warmup["error"]:
            raise RuntimeError(f"the 1-row warm-up batch failed: {warmup['error']}")
        warmup_seconds = time.perf_counter() - started
        api_pid = server_pid or _ephemeral_server_pid()
        if api_pid is None:
            raise RuntimeError("no Prefect API process to measure")
        api, emulator_cpu = ProcessTree(api_pid), ProcessTree(emulator.pid)
        csv_path = _write_csv(tmp / f"rows{n}.csv", n)
        api.wait_idle(cap=60)  # the warm-up's events are ingested before the clock starts
        emulator.reset()
        calls.reset()
        cpu, api_before = _cpu_seconds(), api.cpu_seconds()
        emulator_before, started = emulator_cpu.cpu_seconds(), time.perf_counter()
        started_at = time.time()
        profiler = cProfile.Profile() if profile else None
        with profiler or contextlib.nullcontext():
            stopped = asyncio.run(pipeline(csv_path, config.concurrency, tmp / "out", budget))
        wall = time.perf_counter() - started
        cpu_in_flow, api_in_flow = _cpu_seconds() - cpu, api.cpu_seconds() - api_before
        drain = api.wait_idle(cap=180)
        cpu, api_used = _cpu_seconds() - cpu, api.cpu_seconds() - api_before
        emulator_used = emulator_cpu.cpu_seconds() - emulator_before
        outcomes = _outcomes(tmp / "out" / "results.csv")
        completed = outcomes.pop("COMPLETED", 0)
        result: dict[str, Any] = {
            "wall_seconds": round(wall, 2),
            "warmup_seconds": round(warmup_seconds, 1),
            **stopped,
            "cpu_ms_per_row": round(1000 * cpu / n, 1),
            "api_cpu_ms_per_row": round(1000 * api_used / n, 1),
            "cpu_ms_per_row_during_flow": round(1000 * cpu_in_flow / n, 1),
            "api_cpu_ms_per_row_during_flow": round(1000 * api_in_flow / n, 1),
            "api_busy_after_flow_seconds": drain,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "api_peak_rss_mb": round(api.peak_rss_mb(), 1),
            "emulator_cpu_ms_per_row": round(1000 * emulator_used / n, 1),
            "api_pid": api_pid,
            "completed": completed,
            "failed_rows": n - completed,
            "not_completed": dict(outcomes),
            "not_completed_errors": _why_not_completed(tmp / "out" / "results.csv"),
            **calls.figures(n),
            **emulator.figures(completed, started_at),
        }
        if profiler is not None:
            if dump := os.environ.get("SCENEFLOW_BENCH_PSTATS"):
                profiler.dump_stats(dump)  # for pstats' callers and callees views
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(profile)
            result["profile"] = text.getvalue()
        if server is None:
            _stop_ephemeral_server()  # before its PREFECT_HOME goes with the temporary folder
    return result


# --------------------------------------------------------------------------- a prefect server


@dataclass
class PrefectServer:
    url: str
    pid: int
    start_seconds: float


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def prefect_server(root: Path, settings: dict[str, str] | None = None) -> Iterator[PrefectServer]:
    """`prefect server start` on a free 127.0.0.1 port with its own PREFECT_HOME and SQLite
    database under `root`, no UI; stopped (its whole process group) on the way out, error or
    not. `settings` are Prefect settings over those (another PREFECT_API_DATABASE_CONNECTION_URL,
    say)."""
    from tests.support.emulators._base import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(root / "server-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{root / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
    )
    env.update(settings or {})
    log = root / "server.log"
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ui",
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        import httpx

        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.perf_counter() - started > 180 or proc.poll() is not None:
                raise RuntimeError(f"the Prefect server did not start\n{_tail(log)}")
            time.sleep(0.3)
        yield PrefectServer(url, proc.pid, round(time.perf_counter() - started, 1))
    finally:
        _stop_group(proc, grace=20)


def _stop_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM to the process group `proc` leads, then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


# --------------------------------------------------------------------------- the whole run


class Stopped(Exception):
    """SIGTERM reached the bench: the measurement running is stopped, none after it starts,
    and what was measured is still reported."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """One measurement in a fresh process of its own (its own session, so a timeout, a Ctrl-C
    or a SIGTERM here stops it and everything it started); its JSON, or what went wrong."""
    command = [sys.executable, "-m", "bench.bench_batch", *args]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc, grace=10)
        return {"error": f"killed after {timeout:.0f} s without an answer"}
    except BaseException:  # Stopped (SIGTERM), KeyboardInterrupt
        _stop_group(proc, grace=10)
        raise
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        return {"error": f"the measurement failed (exit code {proc.returncode}; see stderr)"}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": f"the measurement printed no JSON: {lines[-1][:200]!r}"}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.rstrip("\n") if done.returncode == 0 else ""


def machine() -> dict[str, Any]:
    """Where and on what the figures were measured. `uncommitted` lists changed files outside
    bench/: figures of a tree with uncommitted engine changes are not the commit's."""
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines()]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "prefect": importlib.metadata.version("prefect"),
        "commit": _git("rev-parse", "--short=10", "HEAD").strip() or None,
        "uncommitted": sorted(p for p in changed if not p.startswith("bench/")),
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _ratios(config: Config, base: dict[str, Any], flow: dict[str, Any]) -> dict[str, Any]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 2)

    wall = None if flow.get("timed_out") else flow.get("wall_seconds")
    figures = {
        "sceneflow_vs_limit": None if wall is None else round(wall / config.limit, 2),
        "sceneflow_vs_plain": ratio(wall, base.get("wall_seconds")),
        "cpu_vs_plain": ratio(
            (flow.get("cpu_ms_per_row") or 0) + (flow.get("api_cpu_ms_per_row") or 0),
            base.get("cpu_ms_per_row"),
        ),
    }
    if flow.get("timed_out") and flow.get("completed"):
        # At the pace it kept, how long the whole batch would have taken.
        pace = flow["wall_seconds"] * config.rows / flow["completed"]
        figures["sceneflow_vs_limit_extrapolated"] = round(pace / config.limit, 2)
    return figures


def run(
    configs: list[Config],
    modes: tuple[str, ...] = MODES,
    budget: float | None = None,
    profile: int = 0,
) -> dict[str, Any]:
    """Every configuration: the plain client, then the flow on each Prefect API."""
    result: dict[str, Any] = {
        "module": "bench_batch",
        **machine(),
        "started_utc": _now(),
        "load_average_start": _load(),
        "configs": {},
    }
    try:
        for config in configs:
            _measure(config, modes, budget, profile, result)
    except Stopped:
        result["stopped"] = (
            f"Stopped by SIGTERM at {_now()}: the measurement then running is left out."
        )
        if result["configs"]:
            list(result["configs"].values())[-1]["stopped"] = result["stopped"]
    result["finished_utc"], result["load_average_end"] = _now(), _load()
    return result


def _measure(
    config: Config,
    modes: tuple[str, ...],
    budget: float | None,
    profile: int,
    result: dict[str, Any],
) -> None:
    """One configuration into result["configs"], each phase as it ends, so a SIGTERM keeps
    what was measured before it."""
    entry: dict[str, Any] = {
        **config.describe(),
        **machine(),
        "started_utc": _now(),
        "load_average_start": _load(),
    }
    result["configs"][config.name] = entry
    seconds = budget or config.budget or default_budget(config)
    entry["budget_seconds"] = seconds
    try:
        # A configuration stopped early measures only the flow's start: no baseline to run.
        plain: dict[str, Any] = {}
        if config.budget is None:
            plain = _child(["--phase", "plain", *config.args()], seconds + 600)
        entry["plain"] = plain
        if "wall_seconds" in plain:
            plain["vs_limit"] = round(plain["wall_seconds"] / config.limit, 2)
        entry["modes"] = {}
        for mode in modes:
            args = ["--phase", "pipeline", *config.args(), "--budget", f"{seconds:g}"]
            args += ["--profile", str(profile)] if profile else []
            try:
                with contextlib.ExitStack() as stack:
                    started = None
                    if mode == "server":
                        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
                        server = stack.enter_context(prefect_server(Path(tmp)))
                        args += ["--server", server.url, "--server-pid", str(server.pid)]
                        started = server.start_seconds
                    flow = _child(args, seconds + 900)
                    if started is not None:
                        flow["api_start_seconds"] = started
            except RuntimeError as e:  # the Prefect server did not start
                flow = {"error": str(e).splitlines()[0]}
            flow.update(_ratios(config, plain, flow))
            entry["modes"][mode] = flow
    finally:
        entry["finished_utc"], entry["load_average_end"] = _now(), _load()


def table(result: dict[str, Any]) -> str:
    from bench.results import batch_tables

    return batch_tables(result)


def _configs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Config]:
    if args.rows is not None:
        name = f"N{args.rows}-C{args.concurrency}-L{args.latency:g}"
        return [Config(name, args.rows, args.concurrency, args.latency, args.poll or None)]
    names = list(QUICK) if args.quick else args.configs or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"no configuration {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    return [CONFIGS[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    known = ", ".join(
        f"{c.name} (N={c.rows} C={c.concurrency} L={c.latency:g})" for c in CONFIGS.values()
    )
    parser.add_argument("--configs", nargs="+", metavar="NAME", help=f"of {known} (all)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="Prefect APIs to run the flow on (both)",
    )
    parser.add_argument("--rows", type=int, help="one configuration of your own: N rows")
    parser.add_argument("--concurrency", type=int, default=8, help="with --rows: C (8)")
    parser.add_argument("--latency", type=float, default=2.0, help="with --rows: L, s (2)")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.2,
        help="with --rows: poll every P s; 0 = the provider's guidance",
    )
    parser.add_argument(
        "--budget", type=float, metavar="S", help="stop a pipeline after S s (10 x the limit + 300)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the pipeline and keep its top N functions",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--phase", choices=["plain", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-emulator", type=float, metavar="LATENCY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator is not None:
        _serve_emulator(args.serve_emulator)
        return 0
    if args.phase is not None:
        return _phase(args, parser)
    signal.signal(signal.SIGTERM, _on_sigterm)
    result = run(_configs(args, parser), tuple(args.modes), args.budget, args.profile)
    print(json.dumps(result, indent=2) if args.json else table(result), flush=True)
    phases = [c["plain"] for c in result["configs"].values()]
    phases += [m for c in result["configs"].values() for m in c["modes"].values()]
    return 1 if any(p.get("error") and not p.get("timed_out") for p in phases) else 0


def _phase(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """One measurement, in this (fresh) process: print its JSON on one line."""
    (config,) = _configs(args, parser)
    if args.phase == "plain":
        result = run_plain(config)
    else:
        result = run_pipeline(config, args.server, args.server_pid, args.budget, args.profile)
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    # Skip Prefect's exit handlers: they flush events to an API that is gone or about to be
    # stopped, for up to half a minute; the measurement is done and printed.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
