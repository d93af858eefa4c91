"""Run every benchmark in bench/ in turn, each in a process of its own, and print its table.

Run: `python -m bench [--json] [NAME ...]` (`make bench`). A NAME is a module such as
`bench_batch`; without one, every `bench/bench_*.py` runs, in name order. Each benchmark runs
with its own defaults, in a fresh process, so one's imports, Prefect server, environment and
CPU counters cannot leak into another's numbers. `--json` prints one object keyed by module.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    known = benchmarks()
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; known: {', '.join(known)}")
    results: dict[str, object] = {}
    failed = []
    for name in args.names or known:
        if not args.json:
            print(f"== {name} ==", flush=True)
        command = [sys.executable, "-m", f"bench.{name}"] + (["--json"] if args.json else [])
        done = subprocess.run(
            command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, check=False
        )
        if done.returncode != 0:
            failed.append(name)
            print(f"{name} failed with exit code {done.returncode}", file=sys.stderr)
            continue
        if args.json:
            results[name] = json.loads(done.stdout)
        else:
            print(done.stdout, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
