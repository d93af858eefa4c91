"""`sceneflow status | cancel | jobs resubmit`: one job, by SceneFlow's id or the provider's."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from sceneflow import store
from sceneflow.app.cli.console import console, handle_errors, unwrap
from sceneflow.app.gateway import VideoGenerationGateway
from sceneflow.db import session_scope
from sceneflow.errors import NotFoundError
from sceneflow.jobs import ledger

JobArg = Annotated[str, typer.Argument(help="SceneFlow or provider job id.")]

jobs_app = typer.Typer(help="Generation jobs, one at a time.", no_args_is_help=True)


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
    user, provider, our_id = _job_owner(job_id)
    method = getattr(VideoGenerationGateway(), action)
    _print_result(unwrap(asyncio.run(method(user, provider, our_id))))


@handle_errors
def status(job_id: JobArg) -> None:
    """Where a job stands (asks the provider unless it is finished)."""
    _act_on_job(job_id, "check_generation_status")


@handle_errors
def cancel(job_id: JobArg) -> None:
    """Cancel a job at its provider (where the provider can) and stop tracking it."""
    _act_on_job(job_id, "cancel_generation")


@jobs_app.command("resubmit")
@handle_errors
def resubmit(
    job_id: Annotated[str, typer.Argument(help="The UNKNOWN job's id (results.csv, job_id).")],
) -> None:
    """Send an UNKNOWN job again on its next run: its submit reply was lost and the provider
    cannot be asked whether it created the job, so this may pay twice."""
    _, _, our_id = _job_owner(job_id)
    ledger.allow_resubmit(our_id, "sent again: asked for with `sceneflow jobs resubmit`")
    console.print(
        f"Job {our_id} will be sent again the next time its batch (or `sceneflow generate` with "
        "the same request) runs. Check the provider's dashboard first: if it did create the job, "
        "this pays for a second one."
    )
