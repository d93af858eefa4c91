"""`sceneflow doctor`: one line per check of what running SceneFlow needs."""

from __future__ import annotations

import asyncio
from typing import Literal

import typer
from prefect.client.orchestration import get_client
from rich.text import Text

from sceneflow import db, store, vault
from sceneflow.app.cli.console import console
from sceneflow.app.cli.deploy import api_url
from sceneflow.errors import SceneFlowError

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
    async with get_client() as client:
        error = await client.api_healthcheck()
    return None if error is None else f"{type(error).__name__}: {error}"


def _check_prefect() -> Verdict:
    url = api_url()
    if not url:
        return _line(
            "ok",
            "prefect api",
            "local (PREFECT_API_URL is not set): each command starts its own Prefect API and "
            "stops it when it ends; fine for single runs; schedules, workers "
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


def doctor() -> None:
    """Check the encryption key, the database (applying migrations), the Prefect API and every
    stored credential; one line per check, exit code 1 when any fails."""
    verdicts = [_check_key(), _check_database(), _check_prefect(), *_check_credentials()]
    failed = verdicts.count("FAIL")
    if failed:
        console.print(f"{failed} check(s) failed.")
        raise typer.Exit(1)
    console.print("All checks passed.")
