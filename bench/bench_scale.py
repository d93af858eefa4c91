"""Scale-out: the `sharded-batch` deployment on one process worker, then on two, on a `prefect
server` whose database is PostgreSQL ("sharded-batch on two process workers and a prefect server
on PostgreSQL runs 2,000 rows at the same cost a row").

Run: `python -m bench.bench_scale [--rows N] [--json]`. Needs a PostgreSQL server on which it may
create databases: SCENEFLOW_BENCH_POSTGRES_URL, else SCENEFLOW_TEST_POSTGRES_URL
(`bash .ci/postgres.sh` starts one on this machine and prints its URL).

One run sets up, once: the Runway emulator of bench_batch (a child process; jobs take L=5 s),
a `prefect server` on a fresh PostgreSQL database, SceneFlow's job table on another fresh one
(both dropped at the end), prefect.yaml deployed to the process pool `sceneflow-pool`, and a
Runway key stored for the bench user. A 2-row sharded batch warms the server up unmeasured.
Then two phases of N rows each, C=100 jobs in flight in all, each row id new to its phase:

- one worker: `sharded-batch` with shards=1, max_concurrency=100;
- two workers: shards=2, max_concurrency=50 (the limit is per shard).

Each phase starts its workers (`prefect worker start`), fresh, and stops them after. A worker
runs each flow run as a child process; the parent flow holds a worker slot while it waits for
its shards, so the first worker has `--limit 2` (the parent and a shard) and, in the second
phase, the second `--limit 1`, and the second is held (SIGSTOP) until the first has claimed the
parent: otherwise the worker without the parent may take both shards.

Polling: each flow run is a process of its own, so bench_batch's in-process patch cannot reach
it; the workers' PYTHONPATH holds bench/flow_run_hook, whose sitecustomize makes every flow run
poll every P=1 s with no back-off, as bench_batch's `2k` configuration does.

CPU is read from /proc as user + system time of a whole process tree, each process's reaped
children included (cutime, cstime): a flow run's process is a child of its worker, so its CPU
is counted whether it is still running or has exited. Peak RSS of each flow-run process is its
VmHWM, sampled every 0.5 s while it runs.

Every figure is a ratio or a count from one run; nothing here is asserted on timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.bench_batch import (
    ROOT,
    TICK,
    USER,
    Config,
    Emulator,
    ProcessTree,
    Stopped,
    _emulator,
    _environment,
    _load,
    _now,
    _on_sigterm,
    _outcomes,
    _peak_rss_kib,
    _stat,
    _stop_group,
    _store_key,
    _tail,
    _why_not_completed,
    _write_csv,
    default_budget,
    machine,
    prefect_server,
)

ROWS = 2_000
CONCURRENCY = 100
LATENCY = 5.0
POLL = 1.0
POOL = "sceneflow-pool"
DEPLOYMENT = "generate-sharded-batch/sharded-batch"
PROVIDER_TAG = "provider:runway"
HOOK = Path(__file__).resolve().parent / "flow_run_hook"
BIN = Path(sys.executable).parent
URL_VARIABLES = ("SCENEFLOW_BENCH_POSTGRES_URL", "SCENEFLOW_TEST_POSTGRES_URL")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# Workers look for new runs every second (Prefect's default is 10 s, which would add up to 20 s
# of waiting, the parent's and its shards', to a phase of about 100 s).
WORKER_QUERY_SECONDS = 1


@dataclass(frozen=True)
class Phase:
    key: str
    shards: int
    # One `--limit` a worker: the first also runs the parent flow.
    limits: tuple[int, ...]

    @property
    def concurrency(self) -> int:
        return CONCURRENCY // self.shards


PHASES = (Phase("one_worker", 1, (2,)), Phase("two_workers", 2, (2, 1)))


class Unavailable(Exception):
    """PostgreSQL cannot be had; the message says how to get it."""


# --------------------------------------------------------------------------- PostgreSQL


def _admin_url() -> tuple[str, str]:
    for name in URL_VARIABLES:
        if url := os.environ.get(name):
            return name, url
    raise Unavailable(
        f"the Prefect server and SceneFlow run on PostgreSQL here: set {URL_VARIABLES[0]}"
        f" (or {URL_VARIABLES[1]}) to the URL of a server on which it may create databases, "
        "e.g. postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres. "
        "`bash .ci/postgres.sh` installs and starts one on this machine and prints that URL."
    )


@dataclass
class Databases:
    prefect: str  # the Prefect server's, for asyncpg
    sceneflow: str
    version: str
    postmaster: int | None  # the server's main process, when it runs on this machine


@contextlib.contextmanager
def _databases(variable: str, admin_url: str) -> Iterator[Databases]:
    """Two fresh databases, the Prefect server's and SceneFlow's, dropped on the way out."""
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:10]
    names = [f"bench_prefect_{suffix}", f"bench_sceneflow_{suffix}"]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        admin.dispose()
        raise Unavailable(
            f"cannot reach PostgreSQL at {admin.url.host}:{admin.url.port} (from {variable}): "
            f"{str(e.orig).strip().splitlines()[0]}. Start it with `bash .ci/postgres.sh`, "
            f"or point {variable} at a running server."
        ) from e
    server = admin_url.rsplit("/", 1)[0]
    try:
        yield Databases(
            prefect=f"{server.replace('+psycopg', '+asyncpg')}/{names[0]}",
            sceneflow=f"{server}/{names[1]}",
            version=f"PostgreSQL {version.split()[0]}",
            postmaster=_postmaster(backend),
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _postmaster(backend: int) -> int | None:
    """The parent of our connection's backend, if that backend is a process on this machine."""
    try:
        command = Path(f"/proc/{backend}/cmdline").read_bytes()
    except OSError:
        return None
    fields = _stat(backend)
    return int(fields[1]) if fields and command.startswith(b"postgres") else None


# --------------------------------------------------------------------------- processes


def _own_cpu(pid: int) -> float:
    """A process's own user + system time, its children left out."""
    fields = _stat(pid)
    return 0.0 if fields is None else sum(int(x) for x in fields[11:13]) / TICK


def _tree_cpu(pid: int | None) -> float:
    """A process tree as it is now, each process's reaped children included."""
    return 0.0 if pid is None else ProcessTree(pid).cpu_seconds()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(x) for x in (task / "children").read_text().split()]
    return found


class Worker:
    """`prefect worker start` on the pool, in a session of its own, logging to a file."""

    def __init__(self, name: str, limit: int, env: dict[str, str], log: Path) -> None:
        self.name, self.limit, self.log = name, limit, log
        self.started = time.time()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name,
                 "--limit", str(limit)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"worker {self.name} exited with {self.proc.returncode}\n{_tail(self.log)}"
            )

    def hold(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def release(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.release()
        # A flow run still running here (on an error's way out) is in a process group of its
        # own, out of reach of the worker's.
        left = ProcessTree(self.pid).pids[1:]
        _stop_group(self.proc, grace=5)  # a Prefect 3.9 worker often hangs on SIGTERM
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class FlowRunProcess:
    worker: str
    peak_kib: int = 0
    cpu_seconds: float = 0.0  # as last sampled, up to 0.5 s before it exited


class FlowRunSampler(threading.Thread):
    """Every 0.5 s, each worker's child processes (its flow runs): their peak RSS (VmHWM) and
    CPU, which cannot be read once a process has exited."""

    def __init__(self, workers: list[Worker]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.seen: dict[int, FlowRunProcess] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for worker in self.workers:
                for pid in _children(worker.pid):
                    process = self.seen.setdefault(pid, FlowRunProcess(worker.name))
                    process.peak_kib = max(process.peak_kib, _peak_rss_kib(pid))
                    process.cpu_seconds = max(process.cpu_seconds, _own_cpu(pid))

    def stop(self) -> None:
        self.done.set()
        self.join()


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    root: Path
    api: str
    env: dict[str, str]
    emulator: Emulator
    server_pid: int
    postmaster: int | None
    http: Any = field(default=None)

    def __post_init__(self) -> None:
        import httpx

        self.http = httpx.Client(base_url=self.api, timeout=30)

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(BIN / "prefect"), *args], cwd=ROOT, env=self.env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"`prefect {' '.join(args)}` exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return done.stdout

    def deploy(self) -> None:
        self.cli("work-pool", "create", POOL, "--type", "process")
        deployed = self.cli("--no-prompt", "deploy", "--all", timeout=900)
        for name in ("batch-from-csv", "sharded-batch"):
            if f"/{name}' successfully created" not in deployed:
                raise RuntimeError(f"prefect.yaml's {name} was not deployed:\n{deployed[-2000:]}")

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/flow_runs/{run_id}").raise_for_status().json())

    def shards_of(self, parent: str) -> list[dict[str, Any]]:
        found = self.http.post(
            "/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [parent]}}},
        ).raise_for_status()
        return sorted(found.json(), key=lambda r: str(r["parameters"].get("output_dir")))

    def concurrency_limits(self) -> dict[str, list[str]]:
        """The server's concurrency limits: those on the batch task runs' tag, which count
        jobs in flight across workers (flows/steps.py), and the others. Prefect 3 keeps a tag
        limit as a global one named "tag:<tag>"."""
        found: dict[str, list[str]] = {PROVIDER_TAG: [], "other": []}
        limits = self.http.post("/v2/concurrency_limits/filter", json={}).raise_for_status()
        for limit in limits.json():
            name = limit["name"]
            if name.startswith("deployment:"):  # a deployment's own concurrency_limit
                deployment = self.http.get(f"/deployments/{name.split(':', 1)[1]}")
                if deployment.is_success:
                    name = f"deployment {deployment.json()['name']}"
            text = f"{name}: {limit['limit']}" + ("" if limit.get("active", True) else " (off)")
            found[PROVIDER_TAG if limit["name"] == f"tag:{PROVIDER_TAG}" else "other"].append(text)
        return found

    def start_workers(self, phase: str, limits: tuple[int, ...]) -> list[Worker]:
        workers: list[Worker] = []
        try:
            for n, limit in enumerate(limits, 1):
                log = self.root / f"{phase}-worker-{n}.log"
                workers.append(Worker(f"worker-{n}", limit, self.env, log))
            self._wait_online(workers)
            for worker in workers:  # its start-up is not the batch's cost
                ProcessTree(worker.pid).wait_idle(cap=60)
        except BaseException:
            for worker in workers:
                worker.stop()
            raise
        return workers

    def _wait_online(self, workers: list[Worker], timeout: float = 180) -> None:
        started = time.monotonic()
        while True:
            listed = self.http.post(f"/work_pools/{POOL}/workers/filter", json={}).json()
            # The last phase's worker of the same name is still listed as online for a while.
            heartbeats = {
                w["name"]: _timestamp(w.get("last_heartbeat_time")) or 0
                for w in listed
                if w.get("status") == "ONLINE"
            }
            if all(heartbeats.get(w.name, 0) >= w.started for w in workers):
                return
            for worker in workers:
                worker.check()
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the workers did not come online within {timeout:g} s")
            time.sleep(0.5)

    def run_sharded(
        self, csv_path: str, out: Path, shards: int, concurrency: int, workers: list[Worker]
    ) -> str:
        """`prefect deployment run` of sharded-batch; every worker but the first is held until
        the first has claimed the parent run."""
        held = workers[1:]
        for worker in held:
            worker.hold()
        try:
            done = self.cli(
                "deployment", "run", DEPLOYMENT, "--param", f"csv_path={csv_path}",
                "--param", f"user_id={USER}", "--param", "provider=runway",
                "--param", f"output_dir={out}", "--param", f"shards={shards}",
                "--param", f"max_concurrency={concurrency}",
            )  # fmt: skip
            found = re.search(r"UUID: ([0-9a-f-]{36})", done)
            if not found:
                raise RuntimeError(f"`prefect deployment run` printed no flow run id:\n{done}")
            parent = found.group(1)
            deadline = time.monotonic() + 120
            while held and self._state(self.flow_run(parent)) == "SCHEDULED":
                workers[0].check()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{workers[0].name} did not claim the sharded-batch run within 120 s\n"
                        f"{_tail(workers[0].log)}"
                    )
                time.sleep(0.2)
        finally:
            for worker in held:
                worker.release()
        return parent

    @staticmethod
    def _state(run: dict[str, Any]) -> str | None:
        return run["state"]["type"] if run.get("state") else None

    def wait(self, run_id: str, workers: list[Worker], budget: float) -> dict[str, Any] | None:
        """The run once it ended; None if it was still running after `budget` seconds."""
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            run = self.flow_run(run_id)
            if self._state(run) in FINAL:
                return run
            for worker in workers:
                worker.check()
            time.sleep(1)
        return None


def _worker_env() -> dict[str, str]:
    """The flows' environment (bench_batch's `_environment`, set by the caller) plus what a
    process worker and its flow runs need here."""
    env = dict(os.environ)
    env.update(
        SCENEFLOW_REPO=str(ROOT),
        PREFECT_WORKER_QUERY_SECONDS=str(WORKER_QUERY_SECONDS),
        PYTHONPATH=os.pathsep.join(p for p in (str(HOOK), env.get("PYTHONPATH")) if p),
        SCENEFLOW_BENCH_POLL_SECONDS=f"{POLL:g}",
    )
    return env


# --------------------------------------------------------------------------- one phase


def _timestamp(iso: str | None) -> float | None:
    """A time the API gave, as `time.time()` would have it (the server runs on this machine)."""
    return None if not iso else datetime.fromisoformat(iso).timestamp()


def _pid_of(run: dict[str, Any]) -> int | None:
    # A process worker records the flow run's PID, on some versions as "hostname:pid".
    found = re.search(r"(\d+)$", str(run.get("infrastructure_pid") or ""))
    return int(found.group(1)) if found else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def _per_row(seconds: float, rows: int) -> float:
    return round(1000 * seconds / rows, 1)


def _reset_peak_rss(pid: int) -> bool:
    """Start each process's VmHWM of the tree again from its current RSS (Linux 4.0 and later;
    the owner or root may)."""
    try:
        for member in ProcessTree(pid).pids:
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _paid(emulator: Emulator) -> int:
    import httpx

    return int(httpx.get(f"{emulator.url}/_emulator/stats", timeout=30).json()["submissions"])


def _peak_in_flight(emulator: Emulator) -> int:
    import httpx

    return int(httpx.get(f"{emulator.url}/_bench/counts", timeout=30).json()["peak_in_flight"])


def measure(stack: Stack, phase: Phase, rows: int, first: int) -> dict[str, Any]:
    """One phase: fresh workers, N new rows through sharded-batch, the workers stopped."""
    config = Config(phase.key, rows, CONCURRENCY, LATENCY, POLL)
    out = stack.root / phase.key
    csv_path = _write_csv(stack.root / f"{phase.key}.csv", rows, first)
    result: dict[str, Any] = {
        "workers": len(phase.limits),
        "worker_limits": list(phase.limits),
        "shards": phase.shards,
        "max_concurrency_per_shard": phase.concurrency,
        "started_utc": _now(),
        "load_average_start": _load(),
    }
    workers = stack.start_workers(phase.key, phase.limits)
    result["worker_pids"] = [w.pid for w in workers]
    sampler = FlowRunSampler(workers)
    try:
        stack.emulator.reset()
        paid_before = _paid(stack.emulator)
        server_peak_reset = _reset_peak_rss(stack.server_pid)
        own = {w.name: _own_cpu(w.pid) for w in workers}
        trees = {w.name: _tree_cpu(w.pid) for w in workers}
        server, emulator_cpu = _tree_cpu(stack.server_pid), _tree_cpu(stack.emulator.pid)
        postgres = _tree_cpu(stack.postmaster)
        sampler.start()
        started = time.time()
        parent_id = stack.run_sharded(csv_path, out, phase.shards, phase.concurrency, workers)
        parent = stack.wait(parent_id, workers, default_budget(config))
        waited = time.time() - started
        # The flow-run processes outlive their runs' final states by a few seconds (Prefect's
        # exit handlers): the worker CPU is read once they have exited. The server's is read
        # once it has gone quiet, with the workers stopped: an idle server on PostgreSQL used
        # 2% of a core here, 6% with a worker polling it every second.
        exits = time.monotonic()
        while any(_children(w.pid) for w in workers) and time.monotonic() - exits < 120:
            time.sleep(0.5)
        result["flow_runs_exited_seconds"] = round(time.monotonic() - exits, 1)
        own = {w.name: _own_cpu(w.pid) - own[w.name] for w in workers}
        trees = {w.name: _tree_cpu(w.pid) - trees[w.name] for w in workers}
        sampler.stop()
        shards = stack.shards_of(parent_id) if parent is not None else []
        for worker in workers:
            worker.stop()
        result["server_busy_after_flow_seconds"] = ProcessTree(stack.server_pid).wait_idle(180)
        server = _tree_cpu(stack.server_pid) - server
        emulator_cpu = _tree_cpu(stack.emulator.pid) - emulator_cpu
        postgres = _tree_cpu(stack.postmaster) - postgres
        server_peak = ProcessTree(stack.server_pid).peak_rss_mb()
    finally:
        sampler.done.set()
        for worker in workers:
            worker.stop()
    result["finished_utc"], result["load_average_end"] = _now(), _load()

    wall = None
    if parent is not None:
        ended = _timestamp(parent.get("end_time"))
        wall = waited if ended is None else ended - started
    result["parent_state"] = Stack._state(parent) if parent else "still running"
    result["wall_seconds"] = None if wall is None else round(wall, 2)
    result["vs_limit"] = None if wall is None else round(wall / config.limit, 2)
    result["rows_per_second"] = None if wall is None else round(rows / wall, 2)
    result["rows_per_second_per_worker"] = (
        None if wall is None else round(rows / wall / len(workers), 2)
    )
    worker_cpu, server_cpu = sum(trees.values()), server
    result.update(
        cpu_ms_per_row=_per_row(worker_cpu + server_cpu, rows),
        worker_cpu_ms_per_row=_per_row(worker_cpu, rows),
        worker_process_cpu_ms_per_row=_per_row(sum(own.values()), rows),
        flow_run_cpu_ms_per_row=_per_row(worker_cpu - sum(own.values()), rows),
        server_cpu_ms_per_row=_per_row(server_cpu, rows),
        worker_cpu_seconds={k: round(v, 2) for k, v in trees.items()},
        postgres_cpu_ms_per_row=None if stack.postmaster is None else _per_row(postgres, rows),
        emulator_cpu_ms_per_row=_per_row(emulator_cpu, rows),
        # What one core sustains, at this CPU a row, if nothing else held it back.
        rows_per_worker_core_second=round(rows / worker_cpu, 1) if worker_cpu else None,
        rows_per_server_core_second=round(rows / server_cpu, 1) if server_cpu else None,
        server_peak_rss_mb=round(server_peak, 1),
        server_peak_rss_since="phase start" if server_peak_reset else "server start",
    )
    runs = [("parent", parent)] if parent else []
    runs += [(Path(str(s["parameters"].get("output_dir"))).name, s) for s in shards]
    result["flow_runs"] = []
    for role, run in runs:
        process = sampler.seen.get(_pid_of(run) or -1)
        result["flow_runs"].append(
            {
                "role": role,
                "worker": process and process.worker,
                "state": Stack._state(run),
                "seconds": round(run.get("total_run_time") or 0, 1),
                "peak_rss_mb": process and round(process.peak_kib / 1024, 1),
                "cpu_seconds": process and round(process.cpu_seconds, 1),
            }
        )

    results_csv = out / "results.csv"
    outcomes = _outcomes(results_csv)
    completed = outcomes.pop("COMPLETED", 0)
    result.update(
        completed=completed,
        failed_rows=rows - completed,
        not_completed=dict(outcomes),
        not_completed_errors=_why_not_completed(results_csv),
        paid_submissions=_paid(stack.emulator) - paid_before,
        peak_in_flight=_peak_in_flight(stack.emulator),
        **stack.emulator.figures(completed, started),
    )
    result["error"] = "; ".join(_problems(result, rows, phase)) or None
    return result


def _problems(result: dict[str, Any], rows: int, phase: Phase) -> list[str]:
    problems = []
    if result["parent_state"] != "COMPLETED":
        problems.append(f"the sharded-batch run ended {result['parent_state']}")
    if result["failed_rows"]:
        problems.append(f"{result['failed_rows']} of {rows} rows did not complete")
    if result["paid_submissions"] != rows:
        problems.append(
            f"the emulator was paid {result['paid_submissions']} submissions for {rows} rows"
        )
    ran = [r["worker"] for r in result["flow_runs"] if r["role"] != "parent"]
    if len(set(ran)) != phase.shards or None in ran:
        problems.append(f"the {phase.shards} shard(s) ran on workers {ran}, not one each")
    statuses = result["provider_requests"].get("status", 0) / max(result["completed"], 1)
    if result["completed"] and statuses < LATENCY / POLL - 2:
        # At Runway's own guidance (5 s, backing off) a 5 s job takes one or two polls.
        problems.append(
            f"{statuses:.1f} status polls a job: the flow runs did not poll every {POLL:g} s "
            f"(is {HOOK} still on the flow runs' PYTHONPATH?)"
        )
    return problems


# --------------------------------------------------------------------------- the whole run


def run(rows: int) -> dict[str, Any]:
    from sceneflow.db import dispose_engines

    result: dict[str, Any] = {
        "module": "bench_scale",
        **machine(),
        "started_utc": _now(),
        "load_average_start": _load(),
        "rows": rows,
        "concurrency": CONCURRENCY,
        "latency_seconds": LATENCY,
        "poll_seconds": POLL,
        "limit_seconds": math.ceil(rows / CONCURRENCY) * LATENCY,
        "worker_query_seconds": WORKER_QUERY_SECONDS,
        "phases": {},
    }
    variable, admin_url = _admin_url()
    try:
        with contextlib.ExitStack() as scope:
            root = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
            databases = scope.enter_context(_databases(variable, admin_url))
            result["database"] = databases.version
            emulator = scope.enter_context(_emulator(LATENCY))
            server = scope.enter_context(
                prefect_server(
                    root,
                    {
                        "PREFECT_API_DATABASE_CONNECTION_URL": databases.prefect,
                        # prefect.yaml's scheduled deployments would compete with the batches.
                        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                    },
                )
            )
            result["server_pid"], result["server_start_seconds"] = server.pid, server.start_seconds
            scope.enter_context(
                _environment(root, emulator.url, server.url, database_url=databases.sceneflow)
            )
            _store_key()
            dispose_engines()  # the workers' flow runs use the database from here on
            stack = Stack(
                root, server.url, _worker_env(), emulator, server.pid, databases.postmaster
            )
            scope.callback(stack.http.close)
            started = time.perf_counter()
            stack.deploy()
            result["deploy_seconds"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            _warm_up(stack)
            result["warmup_seconds"] = round(time.perf_counter() - started, 1)
            for n, phase in enumerate(PHASES, 1):
                result["phases"][phase.key] = measure(stack, phase, rows, first=n * rows)
            result["concurrency_limits"] = stack.concurrency_limits()
    except Stopped:
        result["stopped"] = f"Stopped by SIGTERM at {_now()}: the phase then running is left out."
    except RuntimeError as e:
        result["error"] = str(e)[:2000]
    result["ratios"] = _two_over_one(result["phases"])
    result["finished_utc"], result["load_average_end"] = _now(), _load()
    return result


def _warm_up(stack: Stack) -> None:
    """A 2-row sharded batch on one worker, unmeasured: the server's first runs and the
    deployments' first reads are not the phases' cost."""
    csv_path = _write_csv(stack.root / "warmup.csv", 2)
    workers = stack.start_workers("warmup", (3,))
    try:
        parent = stack.run_sharded(csv_path, stack.root / "warmup", 2, 1, workers)
        run = stack.wait(parent, workers, 600)
        if run is None or Stack._state(run) != "COMPLETED":
            state = "still running after 600 s" if run is None else Stack._state(run)
            raise RuntimeError(f"the 2-row warm-up batch ended {state}\n{_tail(workers[0].log)}")
        while _children(workers[0].pid):
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.stop()


def _two_over_one(phases: dict[str, Any]) -> dict[str, float | None]:
    one, two = phases.get("one_worker", {}), phases.get("two_workers", {})
    return {
        key: _ratio(two.get(key), one.get(key))
        for key in (
            "wall_seconds",
            "rows_per_second",
            "cpu_ms_per_row",
            "worker_cpu_ms_per_row",
            "server_cpu_ms_per_row",
        )
    }


def table(result: dict[str, Any]) -> str:
    from bench.results import scale_section

    return scale_section(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=ROWS, help=f"N rows a phase ({ROWS})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.rows < 2:
        parser.error("--rows must be at least 2: the second phase runs two shards")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run(args.rows)
    except Unavailable as e:
        print(f"bench_scale: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else table(result), flush=True)
    phases = result["phases"].values()
    return 1 if result.get("error") or any(p.get("error") for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
