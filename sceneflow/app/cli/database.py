"""`sceneflow db upgrade`: the SceneFlow database."""

from __future__ import annotations

import typer

from sceneflow import db
from sceneflow.app.cli.console import console, handle_errors

db_app = typer.Typer(help="The SceneFlow database.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply pending database migrations (any command that needs the database does it too)."""
    url = db.upgrade()
    console.print(f"Database {db.public_url(url)} is at the latest schema.")
