"""bench/RESULTS.md from the benchmarks' JSON (bench/results.json): the machine, one table per
batch configuration, the scale-out phases, and issue 10's targets, each met or missed with the
measured figure.

`python -m bench` merges each run into bench/results.json (a configuration measured again
replaces its old entry; the others keep theirs, each with its own date, load and commit) and
writes RESULTS.md from it; `python -m bench --render` only writes RESULTS.md again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
MODES = {"ephemeral": "SceneFlow, ephemeral API", "server": "SceneFlow, `prefect server`"}
ON = {"ephemeral": "the ephemeral API", "server": "a `prefect server`"}
CONFIG_ORDER = ["1k", "2k", "guidance", "10k"]


def load() -> dict[str, Any]:
    return json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` (module -> JSON) over `old`; bench_batch's configurations one by one."""
    merged = {**old, **new}
    if "bench_batch" in new:
        measured = new["bench_batch"].get("configs", {})
        configs = {**old.get("bench_batch", {}).get("configs", {}), **measured}
        merged["bench_batch"] = {**new["bench_batch"], "configs": configs}
        # A note says why a configuration was not measured, or what to know about a run of it:
        # a new measurement makes it stale.
        notes = {k: v for k, v in old.get("notes", {}).items() if k not in measured}
        merged["notes"] = notes
    return merged


def save(results: dict[str, Any]) -> None:
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    RESULTS_MD.write_text(render(results))


# --------------------------------------------------------------------------- formatting


def _n(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _counts(counts: dict[str, Any] | None) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items())


def _errors(phase: dict[str, Any]) -> str:
    if "api_errors" not in phase:
        return "–"
    parts = [f"{k}: {v:,}" for k, v in phase.get("api_error_statuses", {}).items()]
    parts += [f"{k}: {v:,}" for k, v in phase.get("api_transport_errors", {}).items()]
    if phase.get("api_event_reconnects"):
        parts.append(f"event-stream reconnects: {phase['api_event_reconnects']:,}")
    return f"{phase['api_errors']:,}" + (f" ({', '.join(parts)})" if parts else "")


def _spread(spread: dict[str, float] | None) -> str:
    if not spread:
        return "–"
    return f"{spread['median']:.2f} / {spread['p95']:.2f} / {spread['max']:.2f}"


def _heading(c: dict[str, Any]) -> str:
    poll = (
        f"polls every {c['poll_seconds']:g} s"
        if c["poll_seconds"]
        else "the provider's own poll guidance"
    )
    return (
        f"N={c['rows']:,}, C={c['concurrency']}, L={c['latency_seconds']:g} s ({poll}): "
        f"limit ceil(N/C)·L = {c['limit_seconds']:g} s"
    )


def _where(c: dict[str, Any]) -> str:
    start, end = c.get("load_average_start", [None]), c.get("load_average_end", [None])
    began, ended = str(c.get("started_utc")), str(c.get("finished_utc", "?"))
    if ended[:10] == began[:10]:
        ended = ended[11:]
    commit = f"commit `{c.get('commit')}`"
    if c.get("uncommitted"):
        commit += f" with uncommitted changes to {', '.join(c['uncommitted'])}"
    return (
        f"Measured {began} to {ended}, load average "
        f"{_n(start[0])} at the start and {_n(end[0])} at the end, {commit}, "
        f"Python {c.get('python')}, Prefect {c.get('prefect')}, {c.get('cpus')} cores."
    )


def config_table(c: dict[str, Any]) -> str:
    plain = c.get("plain", {})
    modes = [m for m in MODES if m in c.get("modes", {})]
    flows = [c["modes"][m] for m in modes]
    header = ["", "plain asyncio + httpx"] + [MODES[m] for m in modes]
    rows: list[list[str]] = [
        ["wall time, s", _n(plain.get("wall_seconds"), 1)]
        + [_n(f.get("wall_seconds"), 1) for f in flows],
        ["**wall / limit**", _n(plain.get("vs_limit"))]
        + [
            _n(f.get("sceneflow_vs_limit"))
            if not f.get("timed_out")
            else f"stopped; ≈ {_n(f.get('sceneflow_vs_limit_extrapolated'))} at its pace"
            for f in flows
        ],
        ["**SceneFlow / plain**", ""] + [_n(f.get("sceneflow_vs_plain")) for f in flows],
        ["CPU ms a row: client (flow) process", _n(plain.get("cpu_ms_per_row"), 0)]
        + [_n(f.get("cpu_ms_per_row"), 0) for f in flows],
        ["CPU ms a row: Prefect API process", "–"]
        + [_n(f.get("api_cpu_ms_per_row"), 0) for f in flows],
        ["CPU a row, both processes / plain's", ""] + [_n(f.get("cpu_vs_plain")) for f in flows],
        ["peak RSS MB: client (flow) process", _n(plain.get("peak_rss_mb"), 0)]
        + [_n(f.get("peak_rss_mb"), 0) for f in flows],
        ["peak RSS MB: Prefect API process", "–"]
        + [_n(f.get("api_peak_rss_mb"), 0) for f in flows],
        ["provider requests a job / minimum (3)", _n(plain.get("requests_per_job_vs_minimum"))]
        + [_n(f.get("requests_per_job_vs_minimum")) for f in flows],
        ["job time at the provider / L: median / p95 / max",
         _spread(plain.get("job_time_vs_latency"))]
        + [_spread(f.get("job_time_vs_latency")) for f in flows],
        ["Prefect API errors seen by the client, retried ones included", "–"]
        + [_errors(f) for f in flows],
        ["other 4xx replies from the API", "–"] + [_counts(f.get("api_other_4xx")) for f in flows],
        ["failed rows (not COMPLETED)", _n(plain.get("failed_rows"))]
        + [
            _n(f.get("failed_rows"))
            + (f" ({_counts(f['not_completed'])})" if f.get("not_completed") else "")
            for f in flows
        ],
        ["Prefect API HTTP requests a row", "–"]
        + [_n(f.get("api_requests_per_row")) for f in flows],
        ["events sent a row", "–"] + [_n(f.get("events_per_row")) for f in flows],
        ["API still busy after the flow returned, s", "–"]
        + [_n(f.get("api_busy_after_flow_seconds"), 1) for f in flows],
        ["emulator CPU ms a row (not counted above)", _n(plain.get("emulator_cpu_ms_per_row"), 0)]
        + [_n(f.get("emulator_cpu_ms_per_row"), 0) for f in flows],
        ["warm-up (1-row batch), s", "–"] + [_n(f.get("warmup_seconds"), 1) for f in flows],
        ["first submit after the flow started, s", _n(plain.get("first_submit_seconds"), 1)]
        + [_n(f.get("first_submit_seconds"), 1) for f in flows],
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = []
    for name, phase in [("plain asyncio", plain)] + [(MODES[m], c["modes"][m]) for m in modes]:
        if phase.get("error"):
            notes.append(f"- {name}: {phase['error']}")
        if phase.get("provider_errors"):
            notes.append(f"- {name}: the emulator answered {_counts(phase['provider_errors'])}")
        failing = {
            k: v for k, v in phase.get("api_failed_requests", {}).items() if k.split()[0] != "422"
        }
        if failing:
            notes.append(f"- {name}, the API requests that failed: {_counts(failing)}")
        for error, rows in phase.get("not_completed_errors", {}).items():
            notes.append(f"- {name}, {rows} row(s) not completed: {error}")
    return "\n".join(lines + ([""] + notes if notes else []))


def batch_tables(
    result: dict[str, Any], notes: dict[str, str] | None = None, every: bool = False
) -> str:
    """One table per configuration measured and, with `every`, a line for each of issue 10's
    that is not."""
    from bench.bench_batch import CONFIGS

    out = []
    order = {name: i for i, name in enumerate(CONFIG_ORDER)}
    configs = result.get("configs", {})
    names = {*configs, *CONFIG_ORDER} if every else set(configs)
    for name in sorted(names, key=lambda n: (order.get(n, len(order)), n)):
        note = (notes or {}).get(name)
        if name not in configs:
            note = note or "bench/results.json has no measurement of this configuration."
            out += [
                f"### {name}: {_heading(CONFIGS[name].describe())}",
                "",
                f"Not measured. {note}",
                "",
            ]
            continue
        c = configs[name]
        out += [f"### {name}: {_heading(c)}", "", _where(c), ""]
        out += [note, ""] if note else []
        out += [c["stopped"], ""] if c.get("stopped") else []
        out += [config_table(c), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- scale-out

SCALE_PHASES = {
    "one_worker": "one worker: shards=1, max_concurrency=100",
    "two_workers": "two workers: shards=2, max_concurrency=50 each",
}


def _flow_runs(phase: dict[str, Any], key: str, digits: int = 0) -> str:
    """Each flow run of a phase (parent, shard-000, ...) with its `key`."""
    runs = phase.get("flow_runs") or []
    return ", ".join(f"{r['role']}: {_n(r.get(key), digits)}" for r in runs) or "–"


def scale_table(s: dict[str, Any]) -> str:
    """The two phases of bench_scale side by side, with two workers' figures over one's."""
    keys = [k for k in SCALE_PHASES if k in s.get("phases", {})]
    phases = [s["phases"][k] for k in keys]
    ratios = s.get("ratios", {})

    def row(label: str, key: str, digits: int = 2, ratio: bool = False) -> list[str]:
        return (
            [label]
            + [_n(p.get(key), digits) for p in phases]
            + [_n(ratios.get(key)) if ratio else ""]
        )

    header = ["", *(SCALE_PHASES[k] for k in keys), "two / one"]
    rows = [
        row("wall time, s: `prefect deployment run` to the parent run's final state",
            "wall_seconds", 1, ratio=True),
        row("**wall / limit**", "vs_limit"),
        row("rows a second", "rows_per_second", ratio=True),
        row("rows a second a worker", "rows_per_second_per_worker"),
        row("**CPU ms a row: workers and server**", "cpu_ms_per_row", 1, ratio=True),
        row("CPU ms a row: workers, their flow-run processes included", "worker_cpu_ms_per_row",
            1, ratio=True),
        row("… of which the worker processes themselves", "worker_process_cpu_ms_per_row", 1),
        row("CPU ms a row: Prefect server", "server_cpu_ms_per_row", 1, ratio=True),
        row("rows a second one core sustains: a worker and its flow runs",
            "rows_per_worker_core_second", 1),
        row("rows a second one core sustains: the Prefect server",
            "rows_per_server_core_second", 1),
        ["CPU s of each flow-run process (sampled every 0.5 s)"]
        + [_flow_runs(p, "cpu_seconds", 1) for p in phases] + [""],
        ["peak RSS MB: each flow-run process"]
        + [_flow_runs(p, "peak_rss_mb") for p in phases] + [""],
        row("peak RSS MB: Prefect server", "server_peak_rss_mb", 0),
        ["which worker ran which flow run"] + [_flow_runs(p, "worker") for p in phases] + [""],
        row("jobs in flight at most, at the emulator", "peak_in_flight"),
        row("provider requests a job / minimum (3)", "requests_per_job_vs_minimum"),
        ["job time at the provider / L: median / p95 / max"]
        + [_spread(p.get("job_time_vs_latency")) for p in phases] + [""],
        ["paid submissions / rows"]
        + [f"{_n(p.get('paid_submissions'))} / {_n(s.get('rows'))}" for p in phases] + [""],
        ["failed rows (not COMPLETED)"]
        + [
            _n(p.get("failed_rows"))
            + (f" ({_counts(p['not_completed'])})" if p.get("not_completed") else "")
            for p in phases
        ]
        + [""],
        row("first submit after `prefect deployment run`, s", "first_submit_seconds", 1),
        row("flow-run processes still running after the parent ended, s",
            "flow_runs_exited_seconds", 1),
        row("server still busy after the flow runs exited, s",
            "server_busy_after_flow_seconds", 1),
        row("PostgreSQL CPU ms a row (the whole server, not counted above)",
            "postgres_cpu_ms_per_row", 1),
        row("emulator CPU ms a row (not counted above)", "emulator_cpu_ms_per_row", 1),
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = []
    for key, phase in zip(keys, phases, strict=True):
        name = SCALE_PHASES[key].split(":")[0]
        if phase.get("error"):
            notes.append(f"- {name}: {phase['error']}")
        if phase.get("provider_errors"):
            notes.append(f"- {name}: the emulator answered {_counts(phase['provider_errors'])}")
        for error, count in phase.get("not_completed_errors", {}).items():
            notes.append(f"- {name}, {count} row(s) not completed: {error}")
    return "\n".join(lines + ([""] + notes if notes else []))


def _capped_by(s: dict[str, Any]) -> str:
    """What held the jobs in flight, from the limits on the server and the emulator's peak."""
    peaks = [
        f"{_n(s['phases'][k].get('peak_in_flight'))} ({SCALE_PHASES[k].split(':')[0]})"
        for k in SCALE_PHASES
        if k in s.get("phases", {})
    ]
    limits = s.get("concurrency_limits")
    if limits is None:
        where = "The server's concurrency limits were not read."
    elif limits.get("provider:runway"):
        where = (
            "The server had a concurrency limit on `provider:runway`, the tag of the batch's "
            f"task runs, which counts jobs in flight across workers: "
            f"{', '.join(limits['provider:runway'])}."
        )
    else:
        where = (
            "The server had no concurrency limit on `provider:runway`, so nothing counted jobs "
            "in flight across workers and each shard's own max_concurrency capped them (one "
            "created before a batch, `prefect concurrency-limit create provider:runway C`, "
            "tags its task runs and counts them across workers)."
        )
        if limits.get("other"):
            where += f" Its other limits hold other work: {', '.join(limits['other'])}."
    return f"{where} Jobs in flight at the emulator, at most: {', '.join(peaks) or '–'}."


def scale_section(s: dict[str, Any]) -> str:
    rows, poll = s.get("rows"), s.get("poll_seconds")
    out = [
        f"N={_n(rows)} rows a phase, each a job the Runway emulator finishes L="
        f"{_n(s.get('latency_seconds'), 0)} s after its submit (polled every {_n(poll, 0)} s), "
        f"C={_n(s.get('concurrency'))} in flight in all: limit ceil(N/C)·L = "
        f"{_n(s.get('limit_seconds'), 0)} s. The `sharded-batch` deployment of prefect.yaml "
        f"runs on process workers and a `prefect server` on {s.get('database', 'PostgreSQL')} "
        "(SceneFlow's job table in another database of the same server): first on one fresh "
        "worker, then on two, with new row ids each time. CPU is user + system time of each "
        "worker's process tree, its flow-run processes included (exited ones too), and of the "
        "server's, from `prefect deployment run` until the flow runs exited and the server "
        f"went quiet. Workers look for runs every {_n(s.get('worker_query_seconds'))} s.",
        "",
        _where(s),
        "",
    ]
    out += [s["stopped"], ""] if s.get("stopped") else []
    out += [f"The run failed: {s['error']}", ""] if s.get("error") else []
    if s.get("phases"):
        out += [_capped_by(s), "", scale_table(s), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- the targets


def _verdict(ok: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "**not measured**"}[ok]


def targets(results: dict[str, Any]) -> list[str]:
    configs = results.get("bench_batch", {}).get("configs", {})
    notes = results.get("notes", {})
    lines: list[str] = []

    def flows(name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(m, f) for m, f in configs.get(name, {}).get("modes", {}).items() if m in MODES]

    def absent(name: str, what: str) -> None:
        why = notes.get(name) or "bench/results.json has no measurement of this configuration."
        lines.append(f"- {_verdict(None)}: {what}. {why}")

    def stopped(f: dict[str, Any]) -> str:
        return (
            f"it was stopped by its time budget after {_n(f.get('wall_seconds'), 0)} s with "
            f"{_n(f.get('completed'))} rows COMPLETED (≈ "
            f"{_n(f.get('sceneflow_vs_limit_extrapolated'))}× the limit at that pace)"
        )

    # N=1,000
    if not flows("1k"):
        absent("1k", "N=1,000, C=50, L=2 s: SceneFlow / limit ≤ 1.3 and SceneFlow / plain ≤ 1.2")
    for mode, f in flows("1k"):
        vs_limit, vs_plain = f.get("sceneflow_vs_limit"), f.get("sceneflow_vs_plain")
        ok = None if vs_limit is None else vs_limit <= 1.3 and (vs_plain or 99) <= 1.2
        lines.append(
            f"- {_verdict(ok)}: N=1,000, C=50, L=2 s on {ON[mode]}: SceneFlow / limit "
            f"{_n(vs_limit)} (target ≤ 1.3), SceneFlow / plain {_n(vs_plain)} (target ≤ 1.2)."
            + (f" {f['error']}." if f.get("error") else "")
        )
    # N=10,000
    what = (
        "N=10,000, C=200, L=5 s: every row COMPLETED, no API error, SceneFlow / limit ≤ 1.3, "
        "peak RSS of the batch process ≤ 600 MB"
    )
    if not flows("10k"):
        absent("10k", what)
    for mode, f in flows("10k"):
        checks = {
            "every row COMPLETED": f.get("failed_rows") == 0 and not f.get("error"),
            "no API error": f.get("api_errors") == 0,
            "SceneFlow / limit ≤ 1.3": (f.get("sceneflow_vs_limit") or 99) <= 1.3,
            "peak RSS ≤ 600 MB": (f.get("peak_rss_mb") or 9999) <= 600,
        }
        failed = [k for k, ok in checks.items() if not ok]
        lines.append(
            f"- {_verdict(not failed)}: N=10,000, C=200, L=5 s on {ON[mode]}: "
            f"{_n(f.get('failed_rows'))} failed rows, {_n(f.get('api_errors'))} API errors, "
            f"SceneFlow / limit {_n(f.get('sceneflow_vs_limit'))}, peak RSS "
            f"{_n(f.get('peak_rss_mb'), 0)} MB"
            + (f"; missed: {', '.join(failed)}" if failed else "")
            + (f"; {stopped(f)}" if f.get("timed_out") else "")
            + (f"; {f['error']}" if f.get("error") and not f.get("timed_out") else "")
            + "."
        )
    # CPU
    cpu = [(n, m, f) for n in configs for m, f in flows(n) if f.get("cpu_vs_plain") is not None]
    if not cpu:
        lines.append(f"- {_verdict(None)}: CPU a row, both processes together, ≤ 2× the plain's.")
    for name, mode, f in cpu:
        lines.append(
            f"- {_verdict(f['cpu_vs_plain'] <= 2)}: CPU a row, both processes together, ≤ 2× "
            f"the plain script's ({name}, {ON[mode]}): {_n(f.get('cpu_ms_per_row'), 0)} + "
            f"{_n(f.get('api_cpu_ms_per_row'), 0)} ms against "
            f"{_n(configs[name]['plain'].get('cpu_ms_per_row'), 0)}, {_n(f['cpu_vs_plain'])}×."
        )
    # Preparing, reading, the first submit
    csv = results.get("bench_prompts")
    if csv:
        lines.append(
            f"- {_verdict(csv['total_s'] <= 2)}: a {csv['rows']:,}-row CSV read and validated "
            f"in ≤ 2 s (bench_prompts): {csv['total_s']} s ({csv['read_s']} s read, "
            f"{csv['validate_s']} s validated, {csv['us_per_row']} µs a row; pandas.read_csv "
            f"alone {csv['pandas_read_csv_s']} s), load {_n(csv.get('load'))}."
        )
    else:
        lines.append(f"- {_verdict(None)}: a 100,000-row CSV read and validated in ≤ 2 s.")
    prepare = results.get("bench_prepare")
    if prepare:
        lines.append(
            f"- {_verdict(prepare['bulk_new_s'] <= 1)}: {prepare['rows']:,} job rows prepared in "
            f"≤ 1 s (bench_prepare): {prepare['bulk_new_s']} s new, {prepare['bulk_existing_s']} s "
            f"when they exist (one transaction a row: {prepare['one_a_row_s']} s), load "
            f"{_n(prepare.get('load'))}."
        )
    else:
        lines.append(f"- {_verdict(None)}: 10,000 job rows prepared in ≤ 1 s (bench_prepare).")
    lines.append(_scale_target(results.get("bench_scale")))
    what = "the first submit of a 100,000-row batch within 10 s of the flow starting"
    if not flows("first"):
        absent("first", what)
    for mode, f in flows("first"):
        first = f.get("first_submit_seconds")
        lines.append(
            f"- {_verdict(None if first is None else first <= 10)}: {what} (the `first` "
            f"configuration) on {ON[mode]}: "
            + ("no submit was made" if first is None else f"{_n(first, 1)} s")
            + (f"; {f['error']}" if f.get("error") and not f.get("timed_out") else "")
            + "."
        )
    # Requests per job at the provider's guidance
    if not flows("guidance"):
        absent(
            "guidance",
            "provider requests per job ≤ 1.5× the minimum at the providers' own poll guidance, "
            "jobs finishing within 50% of the provider's estimate",
        )
    for mode, f in flows("guidance"):
        ratio, spread = f.get("requests_per_job_vs_minimum"), f.get("job_time_vs_latency")
        late = spread["max"] if spread else None
        ok = None if ratio is None or late is None else ratio <= 1.5 and late <= 1.5
        lines.append(
            f"- {_verdict(ok)}: provider requests per job ≤ 1.5× the minimum at Runway's own "
            f"poll guidance, jobs done within 1.5 L ({ON[mode]}, N=200, C=50, L=10 s): "
            f"{_n(ratio)}× the minimum; job time at the provider over L "
            f"{_spread(spread)} (median / p95 / max)."
        )
    return lines


def _scale_target(s: dict[str, Any] | None) -> str:
    what = (
        "sharded-batch on two process workers and a PostgreSQL `prefect server` runs 2,000 "
        "rows at the same cost a row (CPU a row, workers and server, within 10% of one "
        "worker's), every row COMPLETED with exactly one paid submission"
    )
    if not s or set(s.get("phases", {})) != set(SCALE_PHASES):
        return f"- {_verdict(None)}: {what} (bench_scale)."
    phases, rows, ratio = s["phases"], s["rows"], s["ratios"].get("cpu_ms_per_row")
    exact = {
        k: p.get("completed") == rows and p.get("paid_submissions") == rows
        for k, p in phases.items()
    }
    ok: bool | None = ratio is not None and abs(ratio - 1) <= 0.10 and all(exact.values())
    at = ""
    if rows < 2_000:
        ok, at = None, f"; measured at N={rows:,} only"
    one, two = phases["one_worker"], phases["two_workers"]
    return (
        f"- {_verdict(ok)}: {what} (bench_scale, N={rows:,}): "
        f"{_n(two.get('cpu_ms_per_row'), 1)} against {_n(one.get('cpu_ms_per_row'), 1)} ms a "
        f"row, {_n(ratio)}×; rows COMPLETED and paid submissions: "
        + ", ".join(
            f"{_n(p.get('completed'))} and {_n(p.get('paid_submissions'))} "
            f"({SCALE_PHASES[k].split(':')[0]})"
            for k, p in phases.items()
        )
        + f"{at}."
    )


# --------------------------------------------------------------------------- the page


def render(results: dict[str, Any]) -> str:
    batch = results.get("bench_batch", {})
    configs = batch.get("configs", {})
    first = next(iter(configs.values()), {}) if configs else batch
    out = [
        "# Benchmark results",
        "",
        f"Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `python -m bench` "
        "(`make bench`) from bench/results.json. What each figure means: bench/README.md. "
        "Every figure is a ratio or a count from one run; compare ratios across runs, not "
        "seconds.",
        "",
        f"Machine: {first.get('cpus', '?')} cores, shared with other work (load averages "
        f"below), Python {first.get('python', '?')}, Prefect {first.get('prefect', '?')}. "
        "Each table says when it was measured, the load average at its start and end, and "
        "the commit.",
        "",
        "## The batch flow against the Runway emulator (bench_batch)",
        "",
        batch_tables(batch, results.get("notes"), every=True),
        "## Targets of issue 10",
        "",
        *targets(results),
        "",
    ]
    prepare = results.get("bench_prepare")
    if prepare:
        out += [
            "## Preparing job rows (bench_prepare)",
            "",
            f"{prepare['rows']:,} rows in one transaction: {prepare['bulk_new_s']} s new, "
            f"{prepare['bulk_existing_s']} s existing; one transaction a row: "
            f"{prepare['one_a_row_s']} s ({prepare['one_a_row_vs_bulk']}× the bulk); load "
            f"{_n(prepare.get('load'))}.",
            "",
        ]
    scale = results.get("bench_scale")
    if scale:
        out += [
            "## Scale-out: sharded-batch on process workers and PostgreSQL (bench_scale)",
            "",
            scale_section(scale),
        ]
    render_json = results.get("bench_local_render")
    if render_json:
        from bench.bench_local_render import table

        out += ["## The local provider (bench_local_render)", "", "```", table(render_json), "```"]
        out.append("")
    return "\n".join(out)
