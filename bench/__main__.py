"""Run every benchmark in bench/ in turn, each in a process of its own, and write RESULTS.md.

Run: `python -m bench [--quick | --configs NAME ...] [--budget S] [--json] [--render]
[MODULE ...]` (`make bench`, `make bench-quick`). A MODULE is one such as `bench_batch`;
without one, every `bench/bench_*.py` runs, in name order. Each benchmark runs with its own
defaults (`--quick` gives bench_batch its N=1,000 configuration only and bench_scale 200 rows;
`--configs` and `--budget` go to bench_batch too), in a fresh process, so one's imports,
Prefect server, environment and CPU counters cannot leak into another's numbers. Each prints
its JSON; this merges it into bench/results.json and writes bench/RESULTS.md from that
(bench/results.py). `--json` prints one object keyed by module; `--render` runs nothing and
writes RESULTS.md from results.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

from bench import results as results_md

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def _table(name: str, result: object) -> str:
    module = importlib.import_module(f"bench.{name}")
    table = getattr(module, "table", None)
    return table(result) if table is not None else json.dumps(result, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (all)")
    parser.add_argument(
        "--quick", action="store_true", help="bench_batch at N=1,000, bench_scale at 200 rows"
    )
    parser.add_argument("--configs", nargs="+", metavar="CONFIG", help="bench_batch's (all)")
    parser.add_argument("--budget", type=float, metavar="S", help="bench_batch's flow budget")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--render", action="store_true", help="only write RESULTS.md again")
    args = parser.parse_args(argv)
    if args.render:
        results_md.save(results_md.load())
        print(f"wrote {results_md.RESULTS_MD}")
        return 0
    known = benchmarks()
    # `--configs 10k bench_batch` would take the module for a configuration.
    args.names += [name for name in args.configs or () if name in known]
    args.configs = [name for name in args.configs or () if name not in known]
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; known: {', '.join(known)}")
    results: dict[str, object] = {}
    failed = []
    for name in args.names or known:
        if not args.json:
            print(f"== {name} ==", flush=True)
        command = [sys.executable, "-m", f"bench.{name}", "--json"]
        if name == "bench_scale" and args.quick:
            command += ["--rows", "200"]  # its 2,000 rows take a quarter of an hour
        if name == "bench_batch":
            command += ["--quick"] if args.quick else []
            command += ["--configs", *args.configs] if args.configs else []
            command += ["--budget", f"{args.budget:g}"] if args.budget else []
        done = subprocess.run(
            command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, check=False
        )
        try:
            result = json.loads(done.stdout)
        except ValueError:
            result = None
        if done.returncode != 0:
            failed.append(name)
            print(f"{name} failed with exit code {done.returncode}", file=sys.stderr)
        if result is None:
            continue
        # A benchmark that measured but reported errors (a batch that failed rows, say) still
        # has figures worth writing down: RESULTS.md says what went wrong.
        results[name] = result
        if not args.json:
            print(_table(name, result), flush=True)
    if results:
        results_md.save(results_md.merge(results_md.load(), results))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"wrote {results_md.RESULTS_MD}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
