"""`sceneflow creds set | list | delete | test`: provider credentials, stored encrypted."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

import adapters
from sceneflow import credentials, db, store, vault
from sceneflow.app.cli.console import console, handle_errors, print_error, require_provider
from sceneflow.errors import CredentialsError

creds_app = typer.Typer(help="Provider credentials, stored encrypted.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="The user the credentials belong to.")]
ProviderArg = Annotated[str, typer.Argument(help="A provider key, such as runway or luma.")]


def parse_credentials(raw: str) -> dict[str, Any]:
    """A JSON object, or a bare key that becomes {"api_key": key}. Never echoes the input."""
    text = raw.strip()
    if not text:
        raise CredentialsError(
            "No credentials given: pipe a JSON object or a bare API key on stdin, "
            "or type it at the prompt."
        )
    if text[0] in '{["' or any(ch.isspace() for ch in text):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            # e.msg and the position are safe to show; the document itself is not.
            raise CredentialsError(
                f"Malformed credential JSON ({e.msg} at line {e.lineno} column {e.colno}): "
                "the credentials must be a JSON object or a bare key."
            ) from None
        if not isinstance(value, dict):
            raise CredentialsError(
                f"The credentials are JSON {type(value).__name__}, but they must be a JSON "
                'object (such as {"api_key": "..."}) or a bare key.'
            )
        return value
    return {"api_key": text}


def _read_secret() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("Credentials (a JSON object or a bare API key)", hide_input=True))
    return sys.stdin.read()


@creds_app.command("set")
@handle_errors
def creds_set(user: UserArg, provider: ProviderArg) -> None:
    """Store credentials; they come on stdin or at a hidden prompt, never as an argument."""
    require_provider(provider)
    ring = vault.Keyring.from_settings()
    values = parse_credentials(_read_secret())
    with db.session_scope() as session:
        row = store.put_credentials(
            session=session, user_id=user, provider=provider, credentials=values, keyring=ring
        )
        fields = ", ".join(sorted(values))
        console.print(
            f"Stored credentials for {provider!r} and user {user!r} (fields: {fields}; "
            f"key id {row.key_id}). Validity: unknown until tested."
        )


@creds_app.command("list")
@handle_errors
def creds_list(user: UserArg) -> None:
    """Show which providers have credentials for USER, and whether they work. No secrets."""
    with db.session_scope() as session:
        rows = [
            store.UserProviderConfigPublic.model_validate(r)
            for r in store.list_configs(session=session, user_id=user)
        ]
    if not rows:
        console.print(f"No credentials stored for user {user!r}.")
        return
    table = Table("Provider", "Valid", "Last validated", "Updated", title=f"Credentials of {user}")
    for r in rows:
        checked = (
            r.last_validated_at.isoformat(timespec="seconds") if r.last_validated_at else "never"
        )
        table.add_row(
            r.provider_name, r.validity, checked, r.updated_at.isoformat(timespec="seconds")
        )
    console.print(table)


@creds_app.command("delete")
@handle_errors
def creds_delete(user: UserArg, provider: ProviderArg) -> None:
    """Delete USER's stored credentials for PROVIDER."""
    with db.session_scope() as session:
        store.delete_credentials(session=session, user_id=user, provider=provider)
    console.print(f"Deleted the credentials for {provider!r} and user {user!r}.")


@creds_app.command("test")
@handle_errors
def creds_test(user: UserArg, provider: ProviderArg) -> None:
    """Make the provider's cheapest authenticated call and update is_valid."""
    adapter = adapters.get_adapter(require_provider(provider))
    if asyncio.run(credentials.check_credentials(adapter, user)):
        console.print(f"[green]{provider} accepted the credentials of {user!r}[/] (is_valid: yes)")
        return
    print_error(
        f"{provider} rejected the credentials of {user!r} (is_valid: no). "
        f"Store working ones with `sceneflow creds set {user} {provider}`."
    )
    raise typer.Exit(1)
