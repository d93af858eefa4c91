"""End to end on a real `prefect server`: deploy prefect.yaml, run batch-from-csv on a process
worker, and share a sharded batch between two workers with every row done exactly once. With a
test PostgreSQL (always in CI) the server and SceneFlow both keep their data there, as in
production; without one, in SQLite files."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.support.emulators._base import free_port
from tests.support.prefect_runs import tail_logs, wait_for_flow_run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEADER = "id,prompt,resolution,duration,fps,aspect_ratio,motion_intensity\n"


@dataclass
class Stack:
    root: Path
    api: str
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with log.open("wb") as out:
            self.procs[name] = subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() takes its children too
            )

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def dump(self) -> str:
        return tail_logs(self.logs.values())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)  # a Prefect 3.9 worker often hangs on SIGTERM
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait_for(self, flow_run_id: str, timeout: float = 240) -> dict[str, Any]:
        def processes_alive() -> None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited with {proc.returncode}\n{self.dump()}")

        return wait_for_flow_run(
            self.api, flow_run_id, logs=self.dump, timeout=timeout, check=processes_alive
        )

    def deployment_run(self, name: str, **params: str | int) -> str:
        args = [str(BIN / "prefect"), "deployment", "run", name]
        for key, value in params.items():
            args += ["--param", f"{key}={value}"]
        out = self.run(*args)
        found = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert found, out
        return found.group(1)

    def workers_of(self, flow_run_id: str) -> set[str]:
        """Workers whose log holds the run's own output. "submitting flow run" is no proof:
        two workers may both try, and the server lets only one of them run it."""
        return {
            name
            for name, log in self.logs.items()
            if name.startswith("worker") and f"runs/flow-run/{flow_run_id}" in log.read_text()
        }


@contextlib.contextmanager
def _databases(root: Path) -> Iterator[tuple[str, str]]:
    """(Prefect server URL, SceneFlow URL): two fresh PostgreSQL databases when the tests have
    a server (always in CI), as in production (README, "Running the Prefect server on
    PostgreSQL"); else SQLite files, the default a laptop gets."""
    admin_url = os.environ.get("SCENEFLOW_TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite+aiosqlite:///{root / 'prefect.db'}", f"sqlite:///{root / 'sceneflow.db'}"
        return
    suffix = uuid.uuid4().hex[:10]
    names = [f"e2e_prefect_{suffix}", f"e2e_sceneflow_{suffix}"]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    server = admin_url.rsplit("/", 1)[0]
    try:
        yield (
            f"{server.replace('+psycopg', '+asyncpg')}/{names[0]}",
            f"{server}/{names[1]}",
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("e2e")
    with _databases(root) as (prefect_db, sceneflow_db):
        yield from _stack(root, prefect_db, sceneflow_db)


def _stack(root: Path, prefect_db: str, sceneflow_db: str) -> Iterator[Stack]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCENEFLOW_"))}
    env.update(
        PREFECT_HOME=str(root / "prefect"),
        PREFECT_API_URL=api,
        PREFECT_API_DATABASE_CONNECTION_URL=prefect_db,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
        # Scheduled inbox and credential runs would compete with the runs under test.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
        SCENEFLOW_HOME=str(root / "sceneflow"),
        DATABASE_URL=sceneflow_db,
        ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),  # the stack's own
        SCENEFLOW_REPO=str(REPO),
    )
    s = Stack(root=root, api=api, env=env)
    try:
        s.start(
            "server",
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or s.procs["server"].poll() is not None:
                pytest.fail(f"the Prefect server did not start within 90 s\n{s.dump()}")
            time.sleep(0.5)
        s.run(str(BIN / "prefect"), "work-pool", "create", "sceneflow-pool", "--type", "process")
        deployed = s.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", timeout=240)
        for name in (
            "generate-video",
            "batch-from-csv",
            "sharded-batch",
            "scheduled-inbox",
            "check-credentials",
        ):
            assert f"/{name}' successfully created" in deployed, deployed
        for n in (1, 2):
            s.start(
                f"worker-{n}",
                str(BIN / "prefect"),
                "worker",
                "start",
                "--pool",
                "sceneflow-pool",
                "--name",
                f"sceneflow-worker-{n}",
                "--limit",
                "2",
            )
        yield s
    finally:
        s.stop()


def _jobs(stack: Stack, user_id: str) -> list[sa.RowMapping]:
    engine = sa.create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT j.id, j.batch_id, j.row_number, j.status, j.output_path, "
                        "(SELECT COUNT(*) FROM generation_attempt a WHERE a.job_id = j.id "
                        " AND a.operation = 'submit') AS submits "
                        "FROM generation_job j WHERE j.user_id = :user"
                    ),
                    {"user": user_id},
                ).mappings()
            )
    finally:
        engine.dispose()


def test_a_worker_runs_batch_from_csv_with_its_videos(stack: Stack) -> None:
    csv = stack.root / "two.csv"
    csv.write_text(
        HEADER + "kite,A red kite,160x90,1,6,16:9,3\nboat,A blue boat,160x90,1,6,16:9,5\n"
    )
    out = stack.root / "out-single"
    run_id = stack.deployment_run(
        "generate-batch/batch-from-csv", csv_path=str(csv), user_id="e2e-one", output_dir=str(out)
    )
    stack.wait_for(run_id)

    assert len(stack.workers_of(run_id)) == 1
    results = pd.read_csv(out / "results.csv")
    assert list(results["status"]) == ["COMPLETED", "COMPLETED"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["boat.mp4", "kite.mp4"]
    jobs = _jobs(stack, "e2e-one")
    assert len(jobs) == 2 and all(j["submits"] == 1 for j in jobs)


def test_two_workers_share_a_sharded_batch_and_each_row_is_done_once(stack: Stack) -> None:
    rows = [f"r{n},Shot number {n},160x90,1,6,16:9,{1 + n % 9}" for n in range(3, 10)]
    # Two equal rows without ids, in different shards: each must still be its own job.
    same = ",A lighthouse at dusk,160x90,1,6,16:9,4"
    csv = stack.root / "nine.csv"
    csv.write_text(HEADER + "\n".join([same, *rows, same]) + "\n")
    out = stack.root / "out-sharded"
    before = set((stack.root / "sceneflow" / "local" / "jobs").glob("*"))

    parent = stack.deployment_run(
        "generate-sharded-batch/sharded-batch",
        csv_path=str(csv),
        user_id="e2e-shard",
        output_dir=str(out),
        shards=3,
    )
    stack.wait_for(parent)

    children = httpx.post(
        f"{stack.api}/flow_runs/filter",
        json={"flow_runs": {"tags": {"all_": ["sceneflow-shard"]}}},
        timeout=10,
    ).json()
    assert len(children) == 3
    assert {c["state"]["type"] for c in children} == {"COMPLETED"}
    ran_on = [stack.workers_of(c["id"]) for c in children] + [stack.workers_of(parent)]
    assert all(len(w) == 1 for w in ran_on), ran_on
    assert set().union(*ran_on) == {"worker-1", "worker-2"}, stack.dump()

    results = pd.read_csv(out / "results.csv")
    assert list(results["row_number"]) == list(range(2, 11))
    assert set(results["status"]) == {"COMPLETED"}
    assert list(results["id"])[0] == "row-2" and list(results["id"])[-1] == "row-10"
    assert results["output_path"].nunique() == 9
    assert all(Path(p).is_file() for p in results["output_path"])

    jobs = _jobs(stack, "e2e-shard")
    assert len(jobs) == 9
    assert len({(j["batch_id"], j["row_number"]) for j in jobs}) == 9
    assert all(j["submits"] == 1 and j["status"] == "COMPLETED" for j in jobs)
    rendered = set((stack.root / "sceneflow" / "local" / "jobs").glob("*")) - before
    assert len(rendered) == 9  # the local provider was asked for nine videos, no more
    prefect_db = stack.env["PREFECT_API_DATABASE_CONNECTION_URL"]
    if prefect_db.startswith("postgresql"):  # the runs really live in PostgreSQL
        engine = sa.create_engine(prefect_db.replace("+asyncpg", "+psycopg"))
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT COUNT(*) FROM flow_run")).scalar_one()
        engine.dispose()
        assert runs >= 4  # at least this test's parent and its 3 shards
