"""Preparing a batch's job rows: one transaction for all of them against one a row (issue 10:
"10,000 job rows prepared in ≤ 1 s").

Run: `python -m bench.bench_prepare [--rows N] [--json]`.

Both sides run in the same process against fresh SQLite files in a temporary SceneFlow home,
so the ratio measures the approach, not the machine's mood. The one-a-row side times a sample
(`--sample` rows) and is scaled to N, since at 1.6 ms or more a row it would dominate the run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from typing import Any


def run(rows: int, sample: int) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="sceneflow-bench-prepare-")
    os.environ.update(SCENEFLOW_HOME=home, ENCRYPTION_KEY=base64.b64encode(bytes(32)).decode())
    from sceneflow import db
    from sceneflow.jobs import ledger
    from sceneflow.models import StandardVideoRequest

    db.upgrade()
    requests = [
        StandardVideoRequest(
            prompt=f"A kite over dune {n}", aspect_ratio="16:9", motion_intensity=3
        )
        for n in range(rows)
    ]
    specs = [
        ledger.JobSpec(provider="runway", request=r, row_id=f"r{n}", row_number=n + 2)
        for n, r in enumerate(requests)
    ]
    started = time.perf_counter()
    ledger.prepare_jobs(user_id="bench", batch_id="bulk", specs=specs)
    bulk_new = time.perf_counter() - started
    started = time.perf_counter()
    ledger.prepare_jobs(user_id="bench", batch_id="bulk", specs=specs)
    bulk_existing = time.perf_counter() - started
    started = time.perf_counter()
    for n, request in enumerate(requests[:sample]):
        ledger.prepare_job(
            user_id="bench",
            provider="runway",
            request=request,
            row_id=f"r{n}",
            batch_id="one-a-row",
            row_number=n + 2,
        )
    one_a_row = (time.perf_counter() - started) * rows / sample
    return {
        "rows": rows,
        "bulk_new_s": round(bulk_new, 3),
        "bulk_existing_s": round(bulk_existing, 3),
        "one_a_row_s": round(one_a_row, 2),
        "one_a_row_vs_bulk": round(one_a_row / bulk_new, 1),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000, help="job rows (10000)")
    parser.add_argument("--sample", type=int, default=1_000, help="rows timed one a row (1000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = run(args.rows, min(args.sample, args.rows))
    print(json.dumps(result, indent=2) if args.json else table(result))


def table(result: dict[str, Any]) -> str:
    return (
        f"{result['rows']} job rows: bulk {result['bulk_new_s']} s new, "
        f"{result['bulk_existing_s']} s existing; one transaction a row "
        f"{result['one_a_row_s']} s ({result['one_a_row_vs_bulk']}x the bulk); "
        f"load {result['load']:.2f}"
    )


if __name__ == "__main__":
    main()
