"""Drills with the CLI in a subprocess (`sceneflow batch`, as a user runs it) against the
emulators over HTTP and one real `prefect server` for the module:

- a SIGKILL right after a provider created (and billed) a job, before its reply reached the
  CLI, for every provider, then re-runs: every row is paid exactly once; rows of providers that
  can be asked complete; the others stay UNKNOWN with a message naming
  `sceneflow jobs resubmit`;
- random kills of one batch, each followed by a re-run: every row paid once, all complete;
- a SIGKILL in the middle of a large batch (10,000 rows at 200 at a time in full, 300 in CI)
  and a re-run: every row completes, each paid once;
- two runs of the same batch at once with a slow submit, on SQLite and PostgreSQL: every row
  paid once, both runs finish.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from sceneflow.media import verify_video
from tests.support import drills

pytestmark = pytest.mark.timeout(1800)

USER = "drill-kill"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with drills.prefect_server(tmp_path_factory.mktemp("prefect-server")) as env:
        yield env


@pytest.fixture(scope="module")
def fleet() -> Iterator[drills.Fleet]:
    with drills.serve_fleet(latency=0.3) as served:
        yield served


@pytest.fixture
def env(
    fleet: drills.Fleet, server_env: dict[str, str], sceneflow_env: Path
) -> Iterator[dict[str, str]]:
    drills.store_credentials(USER, fleet)
    yield drills.cli_env(server_env | fleet.base_url_env())
    for emu in fleet.emulators.values():
        emu.clear_fault_rates()
        emu.created_callbacks.clear()


def _results(out: Path) -> dict[str, dict[str, str]]:
    frame = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    return {row["id"]: row for row in frame.to_dict(orient="records")}


def _batch_args(source: Path, out: Path, concurrency: int) -> list[str]:
    return [
        "batch",
        str(source),
        "--user",
        USER,
        "--output",
        str(out),
        "--max-concurrency",
        str(concurrency),
    ]


def _local_jobs(home: Path) -> int:
    jobs = home / "local" / "jobs"
    return len(list(jobs.iterdir())) if jobs.exists() else 0


@pytest.mark.parametrize("provider", [*drills.REMOTE, "local"])
def test_a_kill_right_after_a_job_is_created_never_pays_twice(
    provider: str,
    fleet: drills.Fleet,
    env: dict[str, str],
    tmp_path: Path,
    sceneflow_env: Path,
) -> None:
    rows = drills.size(2, 40)
    prefix = f"k{uuid.uuid4().hex[:4]}-"
    ids = drills.row_ids(provider, rows, prefix)
    source, out, log = tmp_path / "kill.csv", tmp_path / "out", tmp_path / "cli.log"
    source.write_text(drills.csv_text({provider: rows}, prefix))
    args = _batch_args(source, out, drills.size(1, 4))

    if provider == "local":
        first = drills.start_cli(args, env | {"SCENEFLOW_DRILL_KILL_LOCAL": "1"}, log)
        first.wait(timeout=180)
    else:
        running: list[subprocess.Popen[bytes]] = []
        kill = drills.killer(lambda: running[0] if running else None)
        fleet.emulators[provider].on_created(kill)
        first = drills.start_cli(args, env, log)
        running.append(first)
        try:
            first.wait(timeout=180)
        finally:
            fleet.emulators[provider].created_callbacks.clear()
        assert kill.fired, f"no {provider} job was created before the run ended\n{drills.tail(log)}"
    assert first.returncode == -9, f"the first run was not killed\n{drills.tail(log)}"

    def paid() -> dict[str, int]:
        if provider == "local":
            return {"*": _local_jobs(sceneflow_env)}
        counts = drills.paid_per_row(fleet.emulators[provider])
        return {row_id: counts[row_id] for row_id in ids}

    code = drills.run_cli(args, env, log)
    results = _results(out)
    assert sorted(results) == sorted(ids)
    unknown = [r for r in ids if results[r]["status"] == "UNKNOWN"]
    counts = paid()
    if provider in drills.ASKABLE:
        assert code == 0, drills.tail(log)
        assert all(results[r]["status"] == "COMPLETED" for r in ids), results
        if provider == "local":
            assert counts["*"] == rows, counts  # the killed row's render was found, not redone
        else:
            assert counts == dict.fromkeys(ids, 1), counts
    else:
        assert code == 1, drills.tail(log)
        assert unknown, f"the killed {provider} row did not stay UNKNOWN: {results}"
        assert drills.RESUBMIT_HINT in log.read_text()
        for row_id in ids:
            row = results[row_id]
            assert row["status"] in ("COMPLETED", "UNKNOWN"), row
            if row["status"] == "UNKNOWN":
                assert drills.RESUBMIT_HINT in row["error"], row["error"]
        assert all(n <= 1 for n in counts.values()), counts
        assert all(counts[r] == 1 for r in ids if results[r]["status"] == "COMPLETED")
        # A row whose send never arrived (concurrency > 1 only) is the user's to resend.
        never_arrived = [r for r in unknown if counts[r] == 0]
        for row_id in never_arrived:
            resubmit = ["jobs", "resubmit", results[row_id]["job_id"]]
            assert drills.run_cli(resubmit, env, log) == 0, drills.tail(log)
        if never_arrived:
            drills.run_cli(args, env, log)
            results = _results(out)
            assert all(results[r]["status"] == "COMPLETED" for r in never_arrived)
        assert paid() == dict.fromkeys(ids, 1), paid()
    for row in results.values():
        if row["status"] == "COMPLETED":
            verify_video(row["output_path"])


def test_random_kills_each_followed_by_a_rerun_pay_every_row_once(
    fleet: drills.Fleet, env: dict[str, str], tmp_path: Path
) -> None:
    providers = ("replicate", "luma", "kling", "wan", "seedance")  # every one can be asked
    per_provider = drills.size(6, 60)  # 30 rows in CI, 300 in full
    kills = drills.size(2, 5)
    prefix = f"r{uuid.uuid4().hex[:4]}-"
    source, out, log = tmp_path / "random.csv", tmp_path / "out", tmp_path / "cli.log"
    source.write_text(drills.csv_text(dict.fromkeys(providers, per_provider), prefix))
    ids = {r: p for p in providers for r in drills.row_ids(p, per_provider, prefix)}
    args = _batch_args(source, out, 4)
    rng = random.Random(99)
    emulators = [fleet.emulators[p] for p in providers]

    base = sum(emu.submissions for emu in emulators)  # earlier drills' jobs on the same fleet

    def created() -> int:
        return sum(emu.submissions for emu in emulators) - base

    killed = 0
    for _ in range(kills):
        start = created()
        remaining = len(ids) - start
        if remaining <= 2:
            break
        # Kill a random while after a random number of new jobs was created.
        target = start + rng.randint(1, max(1, remaining // kills))
        delay = rng.uniform(0, 0.4)
        proc = drills.start_cli(args, env, log)
        while proc.poll() is None and created() < target:
            time.sleep(0.01)
        if proc.poll() is None:
            threading.Event().wait(delay)
            drills.kill_group(proc)
            killed += 1
        proc.wait(timeout=60)
    assert killed >= 1, drills.tail(log)
    assert drills.run_cli(args, env, log) == 0, drills.tail(log)

    results = _results(out)
    assert sorted(results) == sorted(ids)
    assert all(r["status"] == "COMPLETED" for r in results.values()), results
    for provider in providers:
        counts = drills.paid_per_row(fleet.emulators[provider])
        mine = {r: counts[r] for r, p in ids.items() if p == provider}
        assert mine == dict.fromkeys(mine, 1), f"{provider}: {mine}"


def test_a_sigkill_in_the_middle_of_a_large_batch_and_a_rerun_pay_every_row_once(
    fleet: drills.Fleet, env: dict[str, str], tmp_path: Path
) -> None:
    provider = "luma"  # can be asked, so a job in flight at the kill is found, not resent
    rows = drills.size(300, 10_000)
    prefix = f"m{uuid.uuid4().hex[:4]}-"
    ids = drills.row_ids(provider, rows, prefix)
    source, out, log = tmp_path / "large.csv", tmp_path / "out", tmp_path / "cli.log"
    source.write_text(drills.csv_text({provider: rows}, prefix))
    args = _batch_args(source, out, drills.size(20, 200))
    emu = fleet.emulators[provider]
    base = emu.submissions

    proc = drills.start_cli(args, env, log)
    deadline = time.monotonic() + 1200
    while proc.poll() is None and emu.submissions - base < rows // 2:
        assert time.monotonic() < deadline, f"half the rows not sent in 1,200 s\n{drills.tail(log)}"
        time.sleep(0.05)
    assert proc.poll() is None, f"the batch ended before half was sent\n{drills.tail(log)}"
    drills.kill_group(proc)
    assert proc.wait(timeout=30) == -9
    sent_before = emu.submissions - base

    assert drills.run_cli(args, env, log, timeout=1500) == 0, drills.tail(log)
    assert f"{rows} of {rows} rows completed" in log.read_text(), drills.tail(log)
    results = _results(out)
    assert sorted(results) == sorted(ids)
    assert all(r["status"] == "COMPLETED" for r in results.values()), drills.tail(log)
    counts = drills.paid_per_row(emu)
    assert {r: counts[r] for r in ids} == dict.fromkeys(ids, 1)
    assert rows // 2 <= sent_before < rows  # the kill fell in the middle
    for row in results.values():
        verify_video(row["output_path"])


def test_two_runs_of_one_batch_at_once_pay_every_row_once(
    fleet: drills.Fleet, env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    rows = drills.size(6, 40)
    prefix = f"t{uuid.uuid4().hex[:4]}-"
    ids = drills.row_ids("runway", rows, prefix)  # runway cannot be asked: no lookup hides it
    source, out = tmp_path / "twice.csv", tmp_path / "out"
    source.write_text(drills.csv_text({"runway": rows}, prefix))
    emu = fleet.emulators["runway"]
    # Every submit's job is created at once and its reply held for 1.5 s, and jobs run long
    # enough that the second run, which starts its own Prefect API (about 5-10 s), arrives
    # while the first still holds them.
    emu.set_fault_rates({"slow": 1.0}, ops=["submit"], seed=1, slow_delay=1.5)
    latency, emu.latency = emu.latency, 20.0
    args = _batch_args(source, out, 4)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [drills.start_cli(args, env, log) for log in logs]
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        emu.latency = latency
        for p in procs:
            if p.poll() is None:
                drills.kill_group(p)
    both = "\n".join(drills.tail(log, 200) for log in logs)
    assert codes == [0, 0], both
    for log in logs:
        assert f"{rows} of {rows} rows completed" in log.read_text(), drills.tail(log)
    assert "is being run by" in both, "the waiting run did not say so"
    counts = drills.paid_per_row(emu)
    assert {r: counts[r] for r in ids} == dict.fromkeys(ids, 1)
    results = _results(out)
    assert all(results[r]["status"] == "COMPLETED" for r in ids), results
