"""Reading and validating a prompt CSV (issue 10: "100,000-row CSV read and validated in ≤ 2 s").

Run: `python -m bench.bench_prompts [--rows N] [--json]`.

The CSV is written once to a temporary folder: rows for Runway, Luma and the local provider
with varied settings. SceneFlow's read (`prompts.read_csv_text`, which checks the encoding,
NUL bytes and the header) and its validation of every row (`prompts.parse_prompts` with each
provider's own checks, as `sceneflow batch` and the batch flow run them) are timed against
`pandas.read_csv` of the same file in the same process, so the ratio says what validation adds
to the parse, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

HEADER = "id,provider,prompt,aspect_ratio,motion_intensity,duration,resolution\n"
ROWS = {  # provider: (aspect ratios, durations, resolutions), cycled through
    "runway": (("16:9", "9:16"), ("5", "10"), ("720p",)),
    "luma": (("16:9", "1:1", "9:16"), ("5", "9"), ("720p", "1080p")),
    "local": (("16:9", "1:1"), ("3", "5"), ("640x360",)),
}


def write_csv(path: Path, rows: int) -> None:
    providers = list(ROWS)
    with path.open("w") as out:
        out.write(HEADER)
        for i in range(rows):
            provider = providers[i % len(providers)]
            aspects, durations, resolutions = ROWS[provider]
            if provider == "local":
                resolutions = ("640x360",) if aspects[i % 2] == "16:9" else ("480x480",)
            out.write(
                f"r{i},{provider},A kite over dune number {i} at dusk,{aspects[i % len(aspects)]},"
                f"{1 + i % 10},{durations[i % len(durations)]},"
                f"{resolutions[i % len(resolutions)]}\n"
            )


def run(rows: int) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="sceneflow-bench-prompts-")
    os.environ.update(SCENEFLOW_HOME=home, ENCRYPTION_KEY=base64.b64encode(bytes(32)).decode())
    import pandas as pd

    from sceneflow import prompts
    from tasks.generation import request_checker

    path = Path(home) / "prompts.csv"
    write_csv(path, rows)
    started = time.perf_counter()
    pd.read_csv(path, dtype=str, keep_default_na=False)
    pandas_s = time.perf_counter() - started
    started = time.perf_counter()
    frame = prompts.read_csv_text(str(path))
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    batch = prompts.parse_prompts(frame, default_provider="local", provider_check=request_checker())
    validate_s = time.perf_counter() - started
    if batch.problems:
        raise SystemExit(f"the benchmark's CSV has invalid rows: {batch.problems[0].message()}")
    return {
        "rows": rows,
        "pandas_read_csv_s": round(pandas_s, 3),
        "read_s": round(read_s, 3),
        "validate_s": round(validate_s, 3),
        "total_s": round(read_s + validate_s, 3),
        "total_vs_pandas": round((read_s + validate_s) / pandas_s, 1),
        "us_per_row": round((read_s + validate_s) / rows * 1e6, 1),
        "load": round(os.getloadavg()[0], 2),
    }


def table(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{result['rows']:,} rows, load {result['load']}:",
            f"  pandas.read_csv alone      {result['pandas_read_csv_s']:.3f} s",
            f"  SceneFlow read             {result['read_s']:.3f} s",
            f"  SceneFlow validation       {result['validate_s']:.3f} s",
            f"  read + validate            {result['total_s']:.3f} s "
            f"({result['total_vs_pandas']}x pandas, {result['us_per_row']} µs a row)",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the CSV (100,000)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.rows)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
