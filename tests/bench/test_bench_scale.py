"""bench_scale's machinery at a tiny size, where a test PostgreSQL is at hand (always in CI): both
phases run on their workers, every figure is in the JSON with a sane value, the flow-run
processes' CPU is counted, every process the bench started is stopped, and RESULTS.md renders
its section and its target.

No timing is asserted (design.md §7): only what holds at any speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import results
from bench.bench_scale import URL_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
ROWS = 4
# A Prefect server started and migrated on PostgreSQL, a deploy, a warm-up and two phases, each
# with its workers' and flow runs' start-up, on a busy machine: five minutes or so.
pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        not any(os.environ.get(v) for v in URL_VARIABLES),
        reason=f"bench_scale needs PostgreSQL: set {URL_VARIABLES[1]} (bash .ci/postgres.sh)",
    ),
]

FIGURES = [
    "wall_seconds", "vs_limit", "rows_per_second", "cpu_ms_per_row", "worker_cpu_ms_per_row",
    "worker_process_cpu_ms_per_row", "flow_run_cpu_ms_per_row", "server_cpu_ms_per_row",
    "rows_per_worker_core_second", "rows_per_server_core_second", "server_peak_rss_mb",
    "peak_in_flight", "requests_per_job_vs_minimum", "job_time_vs_latency",
    "first_submit_seconds", "emulator_cpu_ms_per_row",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", "--rows", str(ROWS), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return json.loads(done.stdout)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_both_phases_with_every_figure(tiny: dict[str, Any]) -> None:
    assert tiny["cpus"] == os.cpu_count() and tiny["database"].startswith("PostgreSQL")
    assert tiny["limit_seconds"] == pytest.approx(5.0)  # one round of L=5 s
    assert set(tiny["phases"]) == {"one_worker", "two_workers"}
    for key, phase in tiny["phases"].items():
        assert phase["error"] is None, (key, phase["error"])
        assert [f for f in FIGURES if phase.get(f) is None] == [], key
        # Every row done, each paid once; nothing beats the limit or sends fewer than three
        # requests a job; the jobs in flight never exceed the rows.
        assert phase["completed"] == ROWS and phase["failed_rows"] == 0, key
        assert phase["paid_submissions"] == ROWS, key
        assert phase["vs_limit"] >= 0.99 and phase["requests_per_job_vs_minimum"] >= 1.0, key
        assert 1 <= phase["peak_in_flight"] <= ROWS, key
        # The flow runs' CPU is in the workers', and far beyond the workers' own.
        assert phase["flow_run_cpu_ms_per_row"] > phase["worker_process_cpu_ms_per_row"] > 0
        assert phase["cpu_ms_per_row"] == pytest.approx(
            phase["worker_cpu_ms_per_row"] + phase["server_cpu_ms_per_row"], abs=0.2
        )
        runs = phase["flow_runs"]
        shards = [f"shard-{i:03d}" for i in range(phase["shards"])]
        assert [r["role"] for r in runs] == ["parent", *shards], key
        assert all(r["state"] == "COMPLETED" and r["peak_rss_mb"] > 0 for r in runs), key
        assert len({r["worker"] for r in runs[1:]}) == phase["shards"], key
        assert all(_gone(pid) for pid in phase["worker_pids"]), f"{key}: a worker is running"
    assert _gone(tiny["server_pid"]), "the Prefect server is still running"
    assert tiny["ratios"]["cpu_ms_per_row"] > 0 and tiny["ratios"]["wall_seconds"] > 0
    assert tiny["concurrency_limits"]["provider:runway"] == []


def test_results_md_renders_the_section_and_the_target(tiny: dict[str, Any]) -> None:
    page = results.render(results.merge({}, {"bench_scale": tiny}))
    assert "## Scale-out: sharded-batch on process workers and PostgreSQL" in page
    assert "| **CPU ms a row: workers and server** |" in page
    assert "no concurrency limit on `provider:runway`" in page
    # At 4 rows the 2,000-row target is not judged, but its figures are shown.
    assert f"(bench_scale, N={ROWS}): " in page and f"measured at N={ROWS} only" in page
    assert results.render(results.merge({}, {})).count("(bench_scale).") == 1
