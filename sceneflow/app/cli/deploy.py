"""`sceneflow deployments apply`: the deployments a manifest CSV defines, on the Prefect server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from prefect.settings import get_current_settings

from sceneflow.app.cli.console import console, handle_errors
from sceneflow.app.deploy import manifest
from sceneflow.app.deploy.worker_steps import MARKER, checkout_directory
from sceneflow.errors import ConfigError

deployments_app = typer.Typer(help="Deployments on the Prefect server.", no_args_is_help=True)

_NO_SERVER = (
    "PREFECT_API_URL is not set, so there is no Prefect server to hold deployments (schedules "
    "and workers refuse the ephemeral one). Start one with `make serve`, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`."
)


def api_url() -> str | None:
    return get_current_settings().api.url


@deployments_app.command("apply")
@handle_errors
def deployments_apply(
    path: Annotated[Path, typer.Argument(help="The manifest CSV, one row per deployment.")],
    check: Annotated[
        bool, typer.Option("--check", help="Validate the manifest only; touch no server.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Also delete deployments an earlier apply made whose rows are gone "
            "(prefect.yaml's are never touched).",
        ),
    ] = False,
) -> None:
    """Create or update the deployments a manifest CSV defines; equal ones are left alone."""
    repo = checkout_directory()
    specs = manifest.load_manifest(path, reserved=manifest.prefect_yaml_names(repo / MARKER))
    if check:
        console.print(f"{path}: {len(specs)} deployment(s), all rows valid.")
        return
    if not api_url():
        raise ConfigError(_NO_SERVER)
    outcomes = asyncio.run(manifest.apply_specs(specs, repo=repo))
    for spec, change, fields in outcomes:
        detail = f" (changed: {', '.join(fields)})" if fields else ""
        console.print(f"{change:<9} {spec.full_name} (row {spec.row_number}){detail}")
    counts = {c: sum(o[1] == c for o in outcomes) for c in ("created", "updated", "unchanged")}
    if prune:
        deleted = asyncio.run(manifest.prune_deployments(specs))
        for name in deleted:
            console.print(f"{'deleted':<9} {name} (no longer in {path.name})")
        counts["deleted"] = len(deleted)
    console.print(", ".join(f"{n} {c}" for c, n in counts.items()))
