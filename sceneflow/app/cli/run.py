"""`sceneflow generate | batch`: the commands that run generations through the Prefect flows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import adapters
from adapters import Provider
from flows.batch import generate_batch
from flows.generate import generate_video
from sceneflow import batches, preflight, store
from sceneflow.app.cli.console import console, handle_errors, require_provider
from sceneflow.db import session_scope
from sceneflow.errors import RequestValidationError
from sceneflow.models import TERMINAL_STATUSES, StandardVideoRequest, format_validation_error
from sceneflow.providers import Capabilities

ProviderOpt = Annotated[str, typer.Option("--provider", "-p", help="Provider key.")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Whose stored credentials to use.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Folder or fsspec URL.")]


def _provider_check(provider: str, request: StandardVideoRequest) -> list[str]:
    return adapters.get_adapter(provider).validate(request)


def _capabilities(provider: str) -> Capabilities:
    return adapters.get_adapter(provider).capabilities()


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
        raise RequestValidationError(format_validation_error(e)) from None
    # The provider's limits, the output folder, the data directory, the database and the user's
    # credentials are checked before Prefect starts (and logs) a doomed flow run.
    preflight.check_single(
        output,
        user_id=user,
        provider=provider,
        request=request,
        provider_check=_provider_check,
        capabilities_for=_capabilities,
    )

    with console.status(f"Generating with {provider}…"):
        result = asyncio.run(generate_video(user, Provider(provider), request, output, force))
    console.print(f"[green]Done:[/] {result.output_path}")
    for warning in result.provider_details.get("warnings", []):
        console.print(f"[yellow]Note:[/] {warning}")


@handle_errors
def batch(
    csv: Annotated[str, typer.Argument(help="Prompt CSV: a path or fsspec URL.")],
    provider: ProviderOpt = "local",
    user: UserOpt = "default",
    output: OutputOpt = "outputs",
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
) -> None:
    """Generate a video for every row of a prompt CSV; results.csv goes beside the videos.

    A re-run of the same CSV resumes it: completed rows are reused, never paid again."""
    require_provider(provider)
    source = str(Path(csv).resolve()) if "://" not in csv else csv
    # What can be checked before Prefect starts is checked here, without a flow-run traceback:
    # the settings, the whole CSV (every row) and the credentials of every provider it uses.
    preflight.check_batch(
        source,
        output_dir=output,
        default_provider=provider,
        user_id=user,
        provider_check=_provider_check,
        capabilities_for=_capabilities,
    )
    batch_id = batch_id or batches.batch_id_for(source, user)

    async def run() -> Any:
        flow = asyncio.create_task(
            generate_batch(
                source,
                user,
                Provider(provider),
                output,
                max_concurrency,
                batch_id=batch_id,
                regenerate=regenerate,
                resubmit_unknown=resubmit_unknown,
            )
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
    console.print(f"Batch: {summary.batch_id}\nVideos: {videos}\nResults: {summary.results_csv}")
    if summary.failures:
        raise typer.Exit(1)
