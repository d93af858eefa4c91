"""`sceneflow deployments apply` and `sceneflow doctor`: the commands for running SceneFlow as
a service. They are registered on the app in `sceneflow.cli`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.text import Text

from sceneflow import db, manifest, store, vault
from sceneflow.cli import app, console, handle_errors
from sceneflow.errors import ConfigError, SceneFlowError
from sceneflow.worker_steps import MARKER, checkout_directory

deployments_app = typer.Typer(help="Deployments on the Prefect server.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")

_NO_SERVER = (
    "PREFECT_API_URL is not set, so there is no Prefect server to hold deployments (schedules "
    "and workers refuse the ephemeral one). Start one with `make serve`, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`."
)


def _api_url() -> str | None:
    from prefect.settings import get_current_settings

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
    if not _api_url():
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


# --- doctor ------------------------------------------------------------------------------

Verdict = Literal["ok", "warn", "FAIL"]
_STYLE = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}


def _line(verdict: Verdict, check: str, detail: str) -> Verdict:
    console.print(Text.assemble((f"{verdict:<5}", _STYLE[verdict]), f"{check}: {detail}"))
    return verdict


def _check_key() -> Verdict:
    try:
        ring = vault.Keyring.from_settings()
    except SceneFlowError as e:
        return _line("FAIL", "encryption key", str(e))
    return _line(
        "ok", "encryption key", f"ENCRYPTION_KEY is well formed (key id {ring.current_id})"
    )


def _check_database() -> Verdict:
    try:
        url = db.upgrade()
    except SceneFlowError as e:
        return _line("FAIL", "database", " ".join(str(e).split()))
    return _line("ok", "database", f"{db.public_url(url)} is at the latest schema")


async def _health(url: str) -> str | None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        error = await client.api_healthcheck()
    return None if error is None else f"{type(error).__name__}: {error}"


def _check_prefect() -> Verdict:
    url = _api_url()
    if not url:
        return _line(
            "ok",
            "prefect api",
            "ephemeral (PREFECT_API_URL is not set): fine for single runs; schedules, workers "
            "and the UI need `make serve`",
        )
    problem = asyncio.run(_health(url))
    if problem:
        return _line(
            "FAIL",
            "prefect api",
            f"{url} is not reachable ({problem}); start the server or fix PREFECT_API_URL",
        )
    return _line("ok", "prefect api", f"{url} is healthy")


def _check_credentials() -> list[Verdict]:
    try:
        ring = vault.Keyring.from_settings()
        with db.session_scope() as session:
            rows = store.list_all_configs(session=session)
    except SceneFlowError:
        return [_line("FAIL", "credentials", "not checked: fix the key and database first")]
    if not rows:
        return [_line("ok", "credentials", "none stored")]
    verdicts = []
    for row in rows:
        check = f"credentials {row.user_id}/{row.provider_name}"
        try:
            # Decrypting proves the current keys still open the row; the value is dropped.
            ring.unseal(
                user_id=row.user_id, provider=row.provider_name, token=row.encrypted_credentials
            )
        except SceneFlowError as e:
            verdicts.append(_line("FAIL", check, str(e)))
            continue
        if row.is_valid is False:
            verdicts.append(
                _line(
                    "FAIL",
                    check,
                    f"rejected by the provider at the last check; store working ones with "
                    f"`sceneflow creds set {row.user_id} {row.provider_name}`",
                )
            )
        elif row.is_valid is None:
            verdicts.append(
                _line(
                    "warn",
                    check,
                    f"never tested; run `sceneflow creds test {row.user_id} {row.provider_name}`",
                )
            )
        else:
            when = (
                row.last_validated_at.isoformat(timespec="seconds")
                if row.last_validated_at
                else "?"
            )
            verdicts.append(_line("ok", check, f"valid (last checked {when})"))
    return verdicts


@app.command()
def doctor() -> None:
    """Check the encryption key, the database (applying migrations), the Prefect API and every
    stored credential; one line per check, exit code 1 when any fails."""
    verdicts = [_check_key(), _check_database(), _check_prefect(), *_check_credentials()]
    failed = verdicts.count("FAIL")
    if failed:
        console.print(f"{failed} check(s) failed.")
        raise typer.Exit(1)
    console.print("All checks passed.")
