"""How close `generate_batch` comes to the physical limit of a batch against an emulated provider.

Run: `python -m bench.bench_batch [--rows 50 200] [--latency 2] [--concurrency 8] [--poll 0.2]
[--server URL] [--profile N] [--json]`.

N rows, each a job the Runway emulator finishes L seconds after its submit, at most C in flight:
no client can finish before ceil(N/C)*L, the physical limit. Two clients run in this process
against the same emulator (a subprocess, so its CPU is not counted here); every baseline runs
first, before Prefect is imported, then a 1-row warm-up batch, then every pipeline:

- baseline: the Runway adapter driven by plain asyncio (submit, poll, download under a semaphore
  of C). No Prefect, no database, no verification of the video.
- pipeline: the real `generate_batch` flow, with its task runs, job table (SQLite in a temporary
  SCENEFLOW_HOME), result persistence, artifacts and events.

Runway asks for polls no closer than 5 s, which would dwarf a 2 s job, so for both clients the
bench patches `RunwayAdapter.capabilities` to poll every `--poll` seconds with no back-off.
By default Prefect is an ephemeral API in a temporary PREFECT_HOME, warmed up by a 1-row batch
first; `--server URL` uses a running `prefect server` instead, which is closer to production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

USER = "bench"
CSV_HEAD = "id,prompt,aspect_ratio,motion_intensity,duration,resolution,seed\n"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of another process, from /proc (Linux only)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _ephemeral_server_pid() -> int | None:
    # Private API: the ephemeral server is a uvicorn subprocess Prefect keeps in a class registry.
    from prefect.server.api.server import SubprocessASGIServer

    for server in SubprocessASGIServer._instances.values():
        if server.server_process is not None:
            return server.server_process.pid
    return None


async def _measured(work: Awaitable[Any]) -> dict[str, float]:
    """Wall and CPU seconds of awaiting `work`, and the peak RSS sampled while it runs
    (ru_maxrss would be the peak of the whole process, not of this phase)."""
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, int(Path("/proc/self/statm").read_text().split()[1]))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    cpu, started = _cpu_seconds(), time.perf_counter()
    try:
        await work
    finally:
        sampler.cancel()
    return {
        "wall": time.perf_counter() - started,
        "cpu": _cpu_seconds() - cpu,
        "rss_mb": peak * PAGE / 2**20,
    }


@contextlib.contextmanager
def _emulator(latency: float) -> Iterator[str]:
    """The Runway emulator in a child process of its own; yields its base URL."""
    command = [sys.executable, "-m", "bench.bench_batch", "--serve-emulator", str(latency)]
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the Runway emulator did not start (it printed {url!r})")
        yield url
    finally:
        child.terminate()
        child.wait(timeout=10)


def _serve_emulator(latency: float) -> None:
    from tests.support.emulators import runway
    from tests.support.emulators._base import serve

    with serve(runway.RunwayEmulator(latency=latency).app) as url:
        print(url, flush=True)
        sys.stdin.read()  # until the parent closes the pipe or ends


@contextlib.contextmanager
def _fast_polling(poll: float) -> Iterator[None]:
    from adapters.runway import RunwayAdapter

    original = RunwayAdapter.capabilities

    def capabilities(self: RunwayAdapter) -> Any:
        return original(self).model_copy(update={"poll_interval": poll, "max_poll_interval": poll})

    RunwayAdapter.capabilities = capabilities  # type: ignore[method-assign]
    try:
        yield
    finally:
        RunwayAdapter.capabilities = original  # type: ignore[method-assign]


def _prompt(i: int) -> str:
    return f"A lighthouse on a cliff at dusk with waves below and shot number {i}"


async def baseline(rows: int, concurrency: int, base_url: str, out: Path) -> None:
    """Submit, poll at the adapter's interval, download: what any client must do at least."""
    from adapters.runway import RunwayAdapter
    from sceneflow.models import JobStatus, StandardVideoRequest
    from sceneflow.providers import Credentials
    from tests.support.emulators.runway import API_KEY

    credentials = Credentials({"api_key": API_KEY})
    limit = asyncio.Semaphore(concurrency)
    out.mkdir(parents=True)

    async def one(adapter: RunwayAdapter, i: int) -> None:
        request = StandardVideoRequest(prompt=_prompt(i), aspect_ratio="16:9", motion_intensity=5,
                                       duration=5, resolution="720p", seed=i)  # fmt: skip
        async with limit:
            job_id = await adapter.submit(request, credentials)
            while True:
                result = await adapter.status(job_id, credentials)
                if result.status is JobStatus.COMPLETED:
                    break
                if result.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
                    raise RuntimeError(f"row {i}: {result.status} {result.error_message}")
                await asyncio.sleep(adapter.capabilities().poll_interval)
            await adapter.download(result, credentials, out / f"{i}.mp4")

    async with RunwayAdapter(base_url=base_url) as adapter:
        await asyncio.gather(*(one(adapter, i) for i in range(rows)))


def _write_csv(path: Path, rows: int) -> str:
    lines = [f"r{i:05d},{_prompt(i)},16:9,5,5,720p,{i}\n" for i in range(rows)]
    path.write_text(CSV_HEAD + "".join(lines))
    return str(path)


async def pipeline(csv_path: str, concurrency: int, out: Path) -> None:
    from adapters import Provider
    from flows.batch import generate_batch

    summary = await generate_batch(
        csv_path, USER, provider=Provider.RUNWAY, output_dir=str(out), max_concurrency=concurrency
    )
    if summary.completed != summary.total:
        raise RuntimeError(f"the pipeline did not complete every row: {summary.failures[:3]}")


@contextlib.contextmanager
def _environment(tmp: Path, emulator_url: str, server: str | None) -> Iterator[None]:
    """Everything the flow reads from the environment, set for this run and restored after."""
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
        "DATABASE_URL": None,
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


def _row_result(n: int, c: int, latency: float, base: dict[str, float], flow: dict[str, float],
                server_cpu: float | None) -> dict[str, Any]:  # fmt: skip
    limit = math.ceil(n / c) * latency
    return {
        "rows": n,
        "limit_seconds": limit,
        "baseline_seconds": round(base["wall"], 3),
        "pipeline_seconds": round(flow["wall"], 3),
        "baseline_vs_limit": round(base["wall"] / limit, 3),
        "pipeline_vs_limit": round(flow["wall"] / limit, 3),
        "pipeline_vs_baseline": round(flow["wall"] / base["wall"], 3),
        "baseline_cpu_ms_per_row": round(1000 * base["cpu"] / n, 1),
        "pipeline_cpu_ms_per_row": round(1000 * flow["cpu"] / n, 1),
        "server_cpu_ms_per_row": None if server_cpu is None else round(1000 * server_cpu / n, 1),
        "baseline_peak_rss_mb": round(base["rss_mb"], 1),
        "pipeline_peak_rss_mb": round(flow["rss_mb"], 1),
    }


def run(*, rows: list[int], latency: float = 2.0, concurrency: int = 8, poll: float = 0.2,
        server: str | None = None, profile: int = 0) -> dict[str, Any]:  # fmt: skip
    """Every baseline, a 1-row warm-up of Prefect, then every pipeline; returns the numbers."""
    result: dict[str, Any] = {
        "latency_seconds": latency, "concurrency": concurrency, "poll_seconds": poll,
        "prefect_api": server or "ephemeral", "cpus": os.cpu_count(),
        "load_average_1m_before": round(os.getloadavg()[0], 2), "runs": [],
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp_name,
        _emulator(latency) as url,
        _fast_polling(poll),
        _environment(Path(tmp_name), url, server),
    ):
        tmp = Path(tmp_name)
        # Every baseline runs before Prefect is imported, so its peak RSS does not include it.
        bases = {
            n: asyncio.run(_measured(baseline(n, concurrency, url, tmp / f"b{n}"))) for n in rows
        }
        _store_key()
        started = time.perf_counter()
        asyncio.run(pipeline(_write_csv(tmp / "warmup.csv", 1), concurrency, tmp / "warmup"))
        result["warmup_seconds"] = round(time.perf_counter() - started, 1)
        server_pid = None if server else _ephemeral_server_pid()
        for n in rows:
            csv_path = _write_csv(tmp / f"rows{n}.csv", n)
            server_before = _process_cpu_seconds(server_pid)
            profiler = cProfile.Profile() if profile else None
            with profiler or contextlib.nullcontext():
                flow = asyncio.run(_measured(pipeline(csv_path, concurrency, tmp / f"p{n}")))
            server_after = _process_cpu_seconds(server_pid)
            server_cpu = None
            if server_before is not None and server_after is not None:
                server_cpu = server_after - server_before
            result["runs"].append(_row_result(n, concurrency, latency, bases[n], flow, server_cpu))
            if profiler is not None:
                text = io.StringIO()
                stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
                stats.print_stats(profile)
                result.setdefault("profiles", {})[str(n)] = text.getvalue()
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return result


def table(r: dict[str, Any]) -> str:
    lines = [
        f"Runway emulator: job latency L={r['latency_seconds']:g} s, concurrency C="
        f"{r['concurrency']}, polls every {r['poll_seconds']:g} s; Prefect API: "
        f"{r['prefect_api']} (warm-up {r['warmup_seconds']:g} s); {r['cpus']} cpus, load "
        f"{r['load_average_1m_before']} -> {r['load_average_1m_after']}",
        f"{'rows':>5} {'limit s':>8} {'base s':>7} {'pipe s':>7} {'base/lim':>8} "
        f"{'pipe/lim':>8} {'pipe/base':>9} {'cpu ms/row base':>15} {'pipe':>6} {'server':>6} "
        f"{'peak MB base':>12} {'pipe':>6}",
    ]
    for x in r["runs"]:
        server = "-" if x["server_cpu_ms_per_row"] is None else f"{x['server_cpu_ms_per_row']:.0f}"
        lines.append(
            f"{x['rows']:>5} {x['limit_seconds']:>8.1f} {x['baseline_seconds']:>7.2f} "
            f"{x['pipeline_seconds']:>7.2f} {x['baseline_vs_limit']:>8.2f} "
            f"{x['pipeline_vs_limit']:>8.2f} {x['pipeline_vs_baseline']:>9.2f} "
            f"{x['baseline_cpu_ms_per_row']:>15.1f} {x['pipeline_cpu_ms_per_row']:>6.0f} "
            f"{server:>6} {x['baseline_peak_rss_mb']:>12.0f} {x['pipeline_peak_rss_mb']:>6.0f}"
        )
    lines.append(
        "limit = ceil(rows/C)*L. x/lim of 1.00 is the limit itself; the baseline pays one poll "
        "interval and the HTTP calls on top. cpu = this process (server = the Prefect API's)."
    )
    for n, text in r.get("profiles", {}).items():
        lines += [f"--- cProfile of the {n}-row pipeline, by own time ---", text]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[50], help="batch sizes (50)")
    parser.add_argument("--latency", type=float, default=2.0, help="job latency L, s (2)")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs in flight C (8)")
    parser.add_argument("--poll", type=float, default=0.2, help="poll interval, s (0.2)")
    parser.add_argument("--server", help="a running Prefect API URL instead of the ephemeral one")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile the pipeline and print its top N functions")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve-emulator", type=float, metavar="LATENCY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator is not None:
        _serve_emulator(args.serve_emulator)
        return
    result = run(rows=args.rows, latency=args.latency, concurrency=args.concurrency,
                 poll=args.poll, server=args.server, profile=args.profile)  # fmt: skip
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
