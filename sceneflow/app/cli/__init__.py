"""The `sceneflow` command line: one Typer app with a module per group of commands.

    sceneflow keys | creds | db | deployments     (groups, one module each)
    sceneflow generate | batch                    (run.py)
    sceneflow status | cancel | jobs resubmit     (jobs.py)
    sceneflow providers | doctor                  (providers.py, doctor.py)

This module only assembles the tree; it imports its parts and nothing imports it, so there is
no cycle. Prefect's defaults for a terminal are set when a command runs (`_prefect_defaults`),
never on import: importing the CLI changes no one's environment.
"""

from __future__ import annotations

import os

import typer
from prefect.context import refresh_global_settings_context
from prefect.logging.configuration import setup_logging

from sceneflow.app.cli import doctor, jobs, providers, run
from sceneflow.app.cli.creds import creds_app
from sceneflow.app.cli.database import db_app
from sceneflow.app.cli.deploy import deployments_app
from sceneflow.app.cli.keys import keys_app

__all__ = ["app"]

app = typer.Typer(
    name="sceneflow",
    help="Generate AI video at scale through many providers, orchestrated by Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_DEFAULTS = {
    # Prefect's INFO lines would scroll the progress bar away; users can still ask for them.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # The first run on a fresh machine migrates Prefect's database, which on a busy 2-core
    # machine takes longer than Prefect's default wait for its ephemeral server.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # SceneFlow runs on offline machines; Prefect's telemetry would only log failures there.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


@app.callback()
def _prefect_defaults() -> None:
    """Generate AI video at scale through many providers, orchestrated by Prefect."""
    changed = False
    defaults = dict(_DEFAULTS)
    if not os.environ.get("PREFECT_API_URL"):
        # The temporary local API this process starts logs its own shutdown races ("Error
        # flushing events") as tracebacks after the work is done; only critical ones matter.
        defaults["PREFECT_SERVER_LOGGING_LEVEL"] = "CRITICAL"
    for name, value in defaults.items():
        if name not in os.environ:
            os.environ[name] = value
            changed = True
    if changed:
        # Prefect read its settings and set up logging when it was imported; read them again.
        refresh_global_settings_context()
        setup_logging()


app.add_typer(keys_app, name="keys")
app.add_typer(creds_app, name="creds")
app.add_typer(db_app, name="db")
app.add_typer(deployments_app, name="deployments")
app.add_typer(jobs.jobs_app, name="jobs")
app.command()(run.generate)
app.command()(run.batch)
app.command()(jobs.status)
app.command()(jobs.cancel)
app.command()(providers.providers)
app.command()(doctor.doctor)
