"""`sceneflow generate | batch | status | cancel | providers | creds test`: the commands that run
generations. They are registered on the app in `sceneflow.cli`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import adapters
from adapters import Provider
from sceneflow import batchfile, store
from sceneflow.cli import app, console, creds_app, err_console, handle_errors, require_provider
from sceneflow.db import session_scope
from sceneflow.errors import NotFoundError, RequestValidationError
from sceneflow.models import TERMINAL_STATUSES, GatewayResponse, StandardVideoRequest

# Prefect's INFO lines would scroll the progress bar away; users can still ask for them.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The first run on a fresh machine migrates Prefect's database, which on a busy 2-core machine
# takes longer than Prefect's default wait for its ephemeral server.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# SceneFlow runs on offline machines; Prefect's telemetry would only log failures there.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
if not os.environ.get("PREFECT_API_URL"):
    # The temporary local API this process starts logs its own shutdown races ("Error flushing
    # events") as tracebacks after the work is done; only its critical errors are worth showing.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")

ProviderOpt = Annotated[str, typer.Option("--provider", "-p", help="Provider key.")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Whose stored credentials to use.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Folder or fsspec URL.")]


def _unwrap(response: GatewayResponse[Any]) -> Any:
    if not response.success:
        err_console.print(f"[bold red]Error:[/] {response.message}")
        raise typer.Exit(1)
    return response.data


@app.command()
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
    output: OutputOpt = "outputs",
    force: Annotated[bool, typer.Option(help="Generate anew even if already done")] = False,
) -> None:
    """Generate one video and wait for it."""
    require_provider(provider)
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
    }
    try:
        request = StandardVideoRequest.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
    except ValidationError as e:
        from sceneflow.models import format_validation_error

        raise RequestValidationError(format_validation_error(e)) from None
    from flows.generate import generate_video
    from tasks.credentials import fetch_credentials
    from tasks.generation import check_request

    # The provider's limits and the user's credentials are checked before Prefect starts (and
    # logs) a doomed flow run.
    check_request(provider, request)
    fetch_credentials(user, provider)

    with console.status(f"Generating with {provider}…"):
        result = asyncio.run(generate_video(user, Provider(provider), request, output, force))
    console.print(f"[green]Done:[/] {result.output_path}")
    for warning in result.provider_details.get("warnings", []):
        console.print(f"[yellow]Note:[/] {warning}")


@app.command()
@handle_errors
def batch(
    csv: Annotated[str, typer.Argument(help="Prompt CSV: a path or fsspec URL.")],
    provider: ProviderOpt = "local",
    user: UserOpt = "default",
    output: OutputOpt = "outputs",
    max_concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once per provider")] = 4,
    force: Annotated[bool, typer.Option(help="Generate every row anew")] = False,
) -> None:
    """Generate a video for every row of a prompt CSV; results.csv goes beside the videos."""
    require_provider(provider)
    from flows.batch import batch_id_for, generate_batch

    source = str(Path(csv).resolve()) if "://" not in csv else csv
    # What can be checked before Prefect starts is checked here, without a flow-run traceback.
    batchfile.check_columns(batchfile.read_csv_text(source).columns)
    batch_id = batch_id_for(source, user)

    async def run() -> Any:
        flow = asyncio.create_task(
            generate_batch(source, user, Provider(provider), output, max_concurrency, force)
        )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("Starting Prefect…", total=None)
            while not flow.done():
                await asyncio.wait({flow}, timeout=0.5)
                with session_scope() as session:
                    rows = store.jobs_for_batch(session=session, batch_id=batch_id)
                    done = sum(r.status in TERMINAL_STATUSES for r in rows)
                if rows:
                    bar.update(
                        task,
                        description="Rendering" if provider == "local" else "Generating",
                        total=len(rows),
                        completed=done,
                    )
        return flow.result()

    summary = asyncio.run(run())
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
    console.print(f"Videos: {videos}\nResults: {summary.results_csv}")
    if summary.failures:
        raise typer.Exit(1)


def _job_owner(job_id: str) -> tuple[str, str, str]:
    with session_scope() as session:
        job = store.find_job(session=session, job_id_or_provider_job_id=job_id)
        if job is None:
            raise NotFoundError(
                f"No job {job_id!r}. Use the job_id column of results.csv or the id "
                "`sceneflow generate` printed."
            )
        return job.user_id, job.provider, job.id


def _print_result(result: Any) -> None:
    table = Table(show_header=False)
    for name in ("status", "provider_job_id", "progress", "output_path", "error_message", "cost"):
        value = getattr(result, name)
        if value is not None:
            table.add_row(name, str(value))
    console.print(table)


def _act_on_job(job_id: str, action: str) -> None:
    from sceneflow.gateway import VideoGenerationGateway

    user, provider, our_id = _job_owner(job_id)
    method = getattr(VideoGenerationGateway(), action)
    _print_result(_unwrap(asyncio.run(method(user, provider, our_id))))


@app.command()
@handle_errors
def status(job_id: Annotated[str, typer.Argument(help="SceneFlow or provider job id.")]) -> None:
    """Where a job stands (asks the provider unless it is finished)."""
    _act_on_job(job_id, "check_generation_status")


@app.command()
@handle_errors
def cancel(job_id: Annotated[str, typer.Argument(help="SceneFlow or provider job id.")]) -> None:
    """Cancel a job at its provider (where the provider can) and stop tracking it."""
    _act_on_job(job_id, "cancel_generation")


@app.command()
@handle_errors
def providers(
    key: Annotated[str | None, typer.Argument(help="Show one provider's field mapping.")] = None,
) -> None:
    """List the providers and their capabilities."""
    if key is None:
        table = Table(
            "Provider", "Default model", "Models", "Cancel", "Credentials", "Connection test"
        )
        for name in adapters.known():
            caps = adapters.adapter_class(name)().capabilities()
            table.add_row(
                name,
                caps.default_model,
                ", ".join(caps.models),
                "yes" if caps.can_cancel else "no",
                ", ".join(caps.credential_fields) or "none",
                caps.connection_test,
            )
        console.print(table)
        return
    caps = adapters.adapter_class(require_provider(key))().capabilities()
    for model, model_caps in caps.models.items():
        table = Table("Field", "Support", "How", title=f"{key} / {model}")
        for field, mapping in model_caps.fields.items():
            table.add_row(field, mapping.support, mapping.note)
        console.print(table)
        durations = model_caps.durations or (
            f"{model_caps.min_duration:g}-{model_caps.max_duration:g} s"
        )
        ratios = ", ".join(model_caps.aspect_ratios)
        console.print(f"aspect ratios: {ratios}; durations: {durations}")


@creds_app.command("test")
@handle_errors
def creds_test(
    user: Annotated[str, typer.Argument()], provider: Annotated[str, typer.Argument()]
) -> None:
    """Make the provider's cheapest authenticated call and update is_valid."""
    from tasks.credentials import check_credentials

    require_provider(provider)
    if asyncio.run(check_credentials(user, provider)):
        console.print(f"[green]{provider} accepted the credentials of {user!r}[/] (is_valid: yes)")
        return
    err_console.print(
        f"[bold red]Error:[/] {provider} rejected the credentials of {user!r} (is_valid: no). "
        f"Store working ones with `sceneflow creds set {user} {provider}`."
    )
    raise typer.Exit(1)
