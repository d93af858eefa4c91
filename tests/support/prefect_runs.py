"""Helpers the end-to-end tests share: waiting on a real Prefect server's flow runs and
showing the tail of its logs when something goes wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def tail_logs(paths: Iterable[Path], lines: int = 60) -> str:
    parts = []
    for path in paths:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"----- {path} -----\n" + "\n".join(tail))
    return "\n".join(parts)


def wait_for_flow_run(
    api: str,
    flow_run_id: str,
    *,
    logs: Callable[[], str],
    timeout: float = 240,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Poll the API until the run ends; fail with the logs unless it COMPLETED. `check` runs
    every second and may fail early (a worker process died, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()
        if run["state"] and run["state"]["type"] in FINAL:
            if run["state"]["type"] != "COMPLETED":
                pytest.fail(f"flow run ended {run['state']}\n{logs()}")
            return dict(run)
        check()
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} did not finish in {timeout} s\n{logs()}")
