"""bench_batch's machinery at a tiny size, so the harness cannot rot silently: the plain client
and the flow on both Prefect APIs run, every figure issue 10 names is in the JSON with a sane
value, every Prefect API the bench started is stopped, and RESULTS.md renders from it.

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

ROOT = Path(__file__).resolve().parents[2]
ROWS = 6
# The fixture starts two Prefect APIs on a busy machine: a minute or two.
pytestmark = pytest.mark.timeout(600)

PLAIN_FIGURES = [
    "wall_seconds", "vs_limit", "cpu_ms_per_row", "peak_rss_mb", "requests_per_job_vs_minimum",
    "job_time_vs_latency", "failed_rows", "provider_requests",
]  # fmt: skip
FLOW_FIGURES = PLAIN_FIGURES[:1] + [
    "sceneflow_vs_limit", "sceneflow_vs_plain", "cpu_ms_per_row", "api_cpu_ms_per_row",
    "cpu_vs_plain", "peak_rss_mb", "api_peak_rss_mb", "requests_per_job_vs_minimum",
    "job_time_vs_latency", "api_errors", "api_error_statuses", "api_transport_errors",
    "api_event_reconnects", "failed_rows", "provider_requests",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_batch", "--rows", str(ROWS),
               "--concurrency", "2", "--latency", "0.2", "--poll", "0.05", "--json"]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=500, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_every_figure_with_a_sane_value(tiny: dict[str, Any]) -> None:
    assert tiny["cpus"] == os.cpu_count() and tiny["python"] and tiny["prefect"]
    (config,) = tiny["configs"].values()
    assert config["limit_seconds"] == pytest.approx(3 * 0.2)
    plain = config["plain"]
    assert [f for f in PLAIN_FIGURES if plain.get(f) is None] == []
    assert plain["failed_rows"] == 0 and plain["error"] is None
    assert set(config["modes"]) == {"ephemeral", "server"}
    for mode, flow in [("plain", plain), *config["modes"].items()]:
        if mode != "plain":
            assert flow["error"] is None, flow["error"]
            assert [f for f in FLOW_FIGURES if flow.get(f) is None] == [], mode
            assert flow["failed_rows"] == 0 and flow["not_completed"] == {}, mode
            assert flow["cpu_ms_per_row"] > 0 and flow["api_cpu_ms_per_row"] > 0, mode
            assert flow["api_peak_rss_mb"] > 0 and isinstance(flow["api_errors"], int), mode
            assert _gone(flow["api_pid"]), f"the {mode} Prefect API is still running"
        # Nothing can beat the physical limit, send fewer than three requests a job or fetch
        # a video before the provider has made it; one paid submit and one download a row.
        wall_vs_limit = flow.get("vs_limit") or flow.get("sceneflow_vs_limit")
        assert wall_vs_limit >= 0.99, mode
        assert flow["requests_per_job_vs_minimum"] >= 1.0, mode
        assert flow["job_time_vs_latency"]["median"] >= 1.0, mode
        assert flow["provider_requests"]["submit"] == ROWS, mode
        assert flow["provider_requests"]["download"] == ROWS, mode
        assert flow["peak_rss_mb"] > 0, mode


def test_results_md_renders_every_table_and_target(tiny: dict[str, Any]) -> None:
    prepare = {"rows": 10_000, "bulk_new_s": 0.5, "bulk_existing_s": 0.4, "one_a_row_s": 15.0,
               "one_a_row_vs_bulk": 30.0, "load": 1.0}  # fmt: skip
    merged = results.merge({"bench_prepare": prepare}, {"bench_batch": tiny})
    page = results.render(merged)
    (name,) = tiny["configs"]
    assert f"### {name}:" in page and "| **wall / limit** |" in page
    assert "Prefect API errors seen by the client" in page
    assert "`prefect server`" in page and "ephemeral API" in page
    # Configurations not measured, and the targets bench/ has no benchmark for, say so.
    assert page.count("**not measured**") >= 4
    assert "10,000 job rows prepared in ≤ 1 s (bench_prepare): 0.5 s" in page
    assert "**met**" in page  # that one


def test_the_csv_benchmark_validates_every_row_and_its_target_is_judged() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_prompts", "--rows", "600", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    csv = json.loads(done.stdout)
    assert csv["rows"] == 600 and csv["validate_s"] > 0 and csv["total_vs_pandas"] > 1
    page = results.render(results.merge({}, {"bench_prompts": csv | {"total_s": 2.5}}))
    assert "**missed**: a 600-row CSV read and validated in ≤ 2 s (bench_prompts): 2.5 s" in page
