"""`sceneflow generate | batch`: the commands that run generations through the Prefect flows.

Both say what they are doing from the start (validating, starting Prefect's local API,
submitting, waiting on the provider) and stop like a command line tool: the first Ctrl-C sends
no new job, keeps the jobs in flight for a re-run to resume (results.csv says which) and exits
130 within seconds; a second one exits at once. Without PREFECT_API_URL they run on a local
Prefect API of their own (`sceneflow.app.local_api`) that a terminal's Ctrl-C cannot reach,
and that is stopped when they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from prefect.logging.handlers import PrefectConsoleHandler
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import adapters
from adapters import Provider
from flows.batch import generate_batch
from flows.generate import generate_video
from sceneflow import batches, credentials, preflight, prompts, store
from sceneflow.app import local_api
from sceneflow.app.cli.console import console, handle_errors, require_provider
from sceneflow.db import session_scope
from sceneflow.errors import RequestValidationError, SceneFlowError
from sceneflow.models import (
    TERMINAL_STATUSES,
    JobStatus,
    StandardVideoRequest,
    format_validation_error,
)
from sceneflow.providers import STRICT_NOTE, Capabilities, VideoAdapter, validate_request

T = TypeVar("T")
INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C (128 + SIGINT)
IN_FLIGHT = frozenset({JobStatus.SUBMITTING, JobStatus.PROCESSING, JobStatus.GENERATED})
# The largest batch measured on the temporary local Prefect API (bench/RESULTS.md, N=10,000):
# it carried it, with retried 503s on concurrency leases; nothing larger was measured.
LOCAL_API_ROWS = 10_000


def local_api_warning(rows: int, api_url: str | None) -> str | None:
    """What to say up front when a batch is larger than the local API was measured to carry."""
    if api_url or rows <= LOCAL_API_ROWS:
        return None
    return (
        f"{rows:,} rows is more than the {LOCAL_API_ROWS:,} the temporary local Prefect API was "
        "measured to carry (bench/RESULTS.md). For a batch this size run a Prefect server: "
        "`make serve` (or `prefect server start`), then "
        "`export PREFECT_API_URL=http://127.0.0.1:4200/api`, or split the CSV."
    )


ProviderOpt = Annotated[str, typer.Option("--provider", "-p", help="Provider key.")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Whose stored credentials to use.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Folder or fsspec URL.")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse, before anything is sent, a request the provider would run without a "
        "field it sets (see README, Strict requests)",
    ),
]


def _options(options_json: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """--options JSON, then each --option key=value over it (a value is read as JSON where it
    is JSON: true, 3, {"type": "simple"}; as text otherwise). Raises RequestValidationError."""
    problems: list[str] = []
    found: dict[str, Any] = {}
    if options_json is not None:
        try:
            found = prompts.parse_options(options_json)
        except ValueError as e:
            problems.append(str(e))
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            problems.append(
                f"options: --option {pair!r} is not key=value; write it as --option loop=true"
            )
            continue
        try:
            found[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            found[name.strip()] = text
    if problems:
        raise RequestValidationError(problems)
    return found


def _provider_check(provider: str, request: StandardVideoRequest) -> list[str]:
    return validate_request(adapters.get_adapter(provider), request)


def _strict_check(user: str) -> preflight.ProviderCheck:
    """`_provider_check` that first reads the published schema of a Replicate or fal model
    outside the built-in tables (with `user`'s credentials where Replicate needs them), once
    per model: strict can then check the request against it here, and the flow in this process
    finds it cached. A schema that cannot be read leaves validate()'s own word (refused under
    strict: the mapping cannot be checked)."""
    read: set[tuple[str, str | None]] = set()

    def check(provider: str, request: StandardVideoRequest) -> list[str]:
        adapter = adapters.get_adapter(provider)
        # The adapters that read a model's schema in `prepare` say whether it takes a key.
        schema_credentials = getattr(adapter, "schema_credentials", None)
        if schema_credentials is not None and (provider, request.model) not in read:
            read.add((provider, request.model))
            with contextlib.suppress(SceneFlowError):
                opened = (
                    credentials.open_credentials(user, adapter.capabilities())
                    if schema_credentials
                    else None
                )
                asyncio.run(_prepared(adapter, request, opened))
        return validate_request(adapter, request)

    return check


async def _prepared(adapter: VideoAdapter, request: StandardVideoRequest, opened: Any) -> None:
    try:
        await adapter.prepare(request, opened)
    finally:
        await adapter.aclose()


def _capabilities(provider: str) -> Capabilities:
    return adapters.get_adapter(provider).capabilities()


class _Interrupted(Exception):
    """The first Ctrl-C stopped the flow; what it kept is in the ledger."""


@contextlib.contextmanager
def _prefect_api() -> Iterator[local_api.LocalApi | None]:
    """The configured Prefect API, or a local one for the length of the command."""
    if local_api.configured_api_url():
        yield None
        return
    console.print("Starting Prefect's local API…")
    console.print(
        "[dim]Tip: with a Prefect server already running (`make serve`, then "
        "PREFECT_API_URL=http://127.0.0.1:4200/api) commands start in about a second.[/]"
    )
    began = time.monotonic()
    with local_api.running(say=console.print) as api:
        console.print(f"Prefect's local API is up ({time.monotonic() - began:.1f} s).")
        yield api


def _quiet_prefect_console() -> None:
    """After an interrupt, Prefect reports every cancelled run as a crash, with tracebacks;
    the terminal needs none of it (the runs' logs in Prefect keep it)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)


def _exit_now(api: local_api.LocalApi | None) -> None:
    """The second Ctrl-C: stop the local API and leave at once. Jobs in flight keep their
    claims and ids; a re-run takes them over as it does after a crash."""
    if api is not None:
        local_api.kill_now(api)
    console.print("[red]Stopped at once.[/] A re-run resumes the jobs that were in flight.")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


async def _until_done(
    start: Callable[[], Awaitable[T]],
    api: local_api.LocalApi | None,
    *,
    tick: Callable[[], None] | None = None,
) -> T:
    """Run the flow; the first Ctrl-C (or SIGTERM) cancels it, which lets each job settle in
    the ledger, and the second exits at once."""
    flow = asyncio.ensure_future(start())
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            _exit_now(api)
        console.print(
            "[yellow]Interrupted:[/] no new job is sent; the jobs in flight are kept for a "
            "re-run to resume. Ctrl-C again to quit at once."
        )
        _quiet_prefect_console()
        flow.cancel()

    watched = (signal.SIGINT, signal.SIGTERM)
    for sig in watched:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, interrupt)  # the main thread only
    try:
        while not flow.done():
            await asyncio.wait({flow}, timeout=0.5)
            if tick is not None:
                tick()
    finally:
        for sig in watched:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(sig)
    if presses and (flow.cancelled() or isinstance(flow.exception(), asyncio.CancelledError)):
        raise _Interrupted
    return flow.result()


@handle_errors
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    provider: ProviderOpt = "local",
    user: UserOpt = "default",
    aspect_ratio: Annotated[str, typer.Option(help="16:9, 9:16, 1:1, 4:3, 3:4 or 21:9")] = "16:9",
    motion_intensity: Annotated[int, typer.Option(help="1 (still) to 10")] = 5,
    duration: Annotated[float, typer.Option(help="Seconds, 1 to 120")] = 5,
    resolution: Annotated[str, typer.Option(help='"WxH", 480p, 720p, 1080p or 4k')] = "720p",
    fps: Annotated[int, typer.Option(help="6 to 60")] = 24,
    seed: Annotated[int | None, typer.Option(help="0 to 999999999")] = None,
    style: Annotated[str | None, typer.Option()] = None,
    quality: Annotated[str, typer.Option(help="draft, standard or high")] = "standard",
    negative_prompt: Annotated[str | None, typer.Option()] = None,
    image_url: Annotated[str | None, typer.Option(help="First frame")] = None,
    model: Annotated[str | None, typer.Option(help="Provider model id")] = None,
    audio: Annotated[
        bool | None,
        typer.Option("--audio/--no-audio", help="Sound on or off (default: the provider's)"),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="A provider option as key=value, e.g. loop=true; repeat"),
    ] = None,
    options: Annotated[
        str | None,
        typer.Option("--options", help="Provider options as a JSON object: '{\"loop\": true}'"),
    ] = None,
    output: OutputOpt = "outputs",
    force: Annotated[bool, typer.Option(help="Generate anew even if already done")] = False,
    strict: StrictOpt = False,
) -> None:
    """Generate one video and wait for it."""
    require_provider(provider)
    chosen = _options(options, option)
    fields = {
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "motion_intensity": motion_intensity,
        "duration": duration,
        "resolution": resolution,
        "fps": fps,
        "seed": seed,
        "style": style,
        "quality": quality,
        "negative_prompt": negative_prompt,
        "image_url": image_url,
        "model": model,
        "audio": audio,
        "options": chosen or None,
    }
    try:
        request = StandardVideoRequest.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
    except ValidationError as e:
        raise RequestValidationError(format_validation_error(e)) from None
    # The provider's limits, the output folder, the data directory, the database and the user's
    # credentials are checked before Prefect starts (and logs) a doomed flow run.
    preflight.check_single(
        output,
        user_id=user,
        provider=provider,
        request=request,
        provider_check=_strict_check(user) if strict else _provider_check,
        capabilities_for=_capabilities,
        strict=strict,
    )

    try:
        with _prefect_api() as api:
            console.print(f"Submitting to {provider}…")
            with console.status(f"Waiting on {provider}…"):
                # Strict was checked above (preflight.check_single) with a schema model's
                # schema read, which the flow's own `strict` cannot do: it is not passed on.
                result = asyncio.run(
                    _until_done(
                        lambda: generate_video(user, Provider(provider), request, output, force),
                        api,
                    )
                )
    except (_Interrupted, KeyboardInterrupt):
        console.print(
            "[yellow]Interrupted.[/] The job is kept: the same command resumes it without "
            "paying again."
        )
        raise typer.Exit(INTERRUPTED) from None
    console.print(f"[green]Done:[/] {result.output_path}")
    for warning in result.provider_details.get("warnings", []):
        console.print(f"[yellow]Note:[/] {warning}")


@handle_errors
def batch(
    csv: Annotated[str, typer.Argument(help="Prompt CSV: a path or fsspec URL.")],
    provider: ProviderOpt = "local",
    user: UserOpt = "default",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder or fsspec URL, one per batch (default: outputs/<CSV name>)",
        ),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once per provider")] = 4,
    batch_id: Annotated[
        str | None,
        typer.Option(help="The batch's identity (default: from the user and the CSV's path)"),
    ] = None,
    regenerate: Annotated[
        list[str] | None,
        typer.Option(help="Generate this row id anew even if it completed (paid again); repeat"),
    ] = None,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(help="Send again the rows whose submit reply was lost (may pay twice)"),
    ] = False,
    strict: StrictOpt = False,
) -> None:
    """Generate a video for every row of a prompt CSV; results.csv goes beside the videos.

    A re-run of the same CSV resumes it: completed rows are reused, never paid again."""
    require_provider(provider)
    source = str(Path(csv).resolve()) if "://" not in csv else csv
    output = output or f"outputs/{Path(source.rstrip('/')).stem}"
    # What can be checked before Prefect starts is checked here, without a flow-run traceback:
    # the settings, the whole CSV (every row) and the credentials of every provider it uses.
    console.print(f"Validating the rows of {Path(source).name if '://' not in source else source}…")
    checked = preflight.check_batch(
        source,
        output_dir=output,
        default_provider=provider,
        user_id=user,
        provider_check=_strict_check(user) if strict else _provider_check,
        capabilities_for=_capabilities,
        strict=strict,
    )
    refused = [p for p in checked.problems if any(STRICT_NOTE in x for x in p.problems)]
    if refused:
        # Strict is settled here, for the whole batch, with every schema model's schema read
        # (the flow's own `strict` cannot read them): nothing is sent for any row.
        more = f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
        raise RequestValidationError(
            [f"strict: {len(refused)} row(s) would be sent without a field they set{more}"]
            + [p.message() for p in refused[:10]]
        )
    rows = len(checked.rows) + len(checked.problems)
    console.print(f"{rows} rows: {len(checked.rows)} valid, {len(checked.problems)} invalid.")
    if warning := local_api_warning(len(checked.rows), local_api.configured_api_url()):
        console.print(f"[yellow]Warning:[/] {warning}")
    batch_id = batch_id or batches.batch_id_for(source, user)
    waiting = f"Waiting on {', '.join(sorted({row.provider for row in checked.rows})) or provider}…"
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with _prefect_api() as api:
            console.print(f"Submitting {len(checked.rows)} rows…")
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("Starting the flow run…", total=None)

                def tick() -> None:
                    # It runs on the flow's event loop, so it counts, never loads, the jobs.
                    with session_scope() as session:
                        counts = store.batch_status_counts(session=session, batch_id=batch_id)
                    if counts:
                        sending = not any(counts.get(s, 0) for s in IN_FLIGHT)
                        bar.update(
                            task,
                            description="Submitting…" if sending else waiting,
                            # Not the ledger's count: a group's rows enter it when it starts.
                            total=len(checked.rows),
                            completed=sum(counts.get(s, 0) for s in TERMINAL_STATUSES),
                        )

                summary = asyncio.run(
                    _until_done(
                        lambda: generate_batch(
                            source,
                            user,
                            Provider(provider),
                            output,
                            max_concurrency,
                            batch_id=batch_id,
                            regenerate=regenerate,
                            resubmit_unknown=resubmit_unknown,
                        ),
                        api,
                        tick=tick,
                    )
                )
    except _Interrupted:
        _report_interrupt(batch_id, output, len(checked.rows))
        raise typer.Exit(INTERRUPTED) from None
    except KeyboardInterrupt:  # before the flow started or after it ended
        console.print("[yellow]Interrupted.[/] The same command resumes the batch.")
        raise typer.Exit(INTERRUPTED) from None
    style = "green" if not summary.failures else "red"
    console.print(
        f"[{style}]{summary.completed} of {summary.total} rows completed, "
        f"{summary.failed} failed, {summary.invalid} invalid.[/]"
    )
    for failure in summary.failures[:20]:
        console.print(f"  {failure}")
    if len(summary.failures) > 20:
        console.print(f"  … and {len(summary.failures) - 20} more in results.csv")
    videos = summary.output_dir if "://" in output else str(Path(output).resolve())
    console.print(f"Batch: {summary.batch_id}\nVideos: {videos}\nResults: {summary.results_csv}")
    if summary.gallery:
        console.print(f"Gallery: {summary.gallery} (open it in a browser)")
    if summary.failures:
        raise typer.Exit(1)


def _report_interrupt(batch_id: str, output: str, rows: int) -> None:
    """What the interrupted flow kept of its `rows` valid rows, from the ledger, and where its
    results.csv is."""
    with session_scope() as session:
        counts = store.batch_status_counts(session=session, batch_id=batch_id)
    completed = counts.get(JobStatus.COMPLETED, 0)
    kept = sum(counts.get(s, 0) for s in IN_FLIGHT)
    console.print(
        f"[yellow]Interrupted:[/] {completed} of {rows} rows completed, {kept} in flight "
        "kept. The same command resumes the batch; no completed or sent row is paid again."
    )
    results = f"{output.rstrip('/')}/results.csv"
    console.print(f"Results: {results if '://' in output else Path(results).resolve()}")
