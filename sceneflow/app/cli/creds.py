"""The `sceneflow` command line.

Every `SceneFlowError` becomes one red `Error: ...` line on stderr and exit code 1, and since each
command runs in one `db.session_scope()`, a failed command leaves nothing stored changed. New
commands reuse the same pattern: decorate with `@handle_errors` and open a `session_scope()`.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import adapters
from sceneflow import db, store, vault
from sceneflow.errors import CredentialsError, SceneFlowError, UnknownProviderError

__all__ = [
    "app",
    "console",
    "creds_app",
    "db_app",
    "err_console",
    "handle_errors",
    "keys_app",
    "parse_credentials",
    "require_provider",
]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="sceneflow",
    help="Generate AI video at scale through many providers, orchestrated by Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="The master key that seals stored credentials.", no_args_is_help=True)
creds_app = typer.Typer(help="Provider credentials, stored encrypted.", no_args_is_help=True)
db_app = typer.Typer(help="The SceneFlow database.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(creds_app, name="creds")
app.add_typer(db_app, name="db")

P = ParamSpec("P")
R = TypeVar("R")

UserArg = Annotated[str, typer.Argument(help="The user the credentials belong to.")]
ProviderArg = Annotated[str, typer.Argument(help="A provider key, such as runway or luma.")]


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a `SceneFlowError` into a one-line `Error: ...` on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SceneFlowError as e:
            # One line, whatever the message: scripts read the first line of stderr.
            message = " ".join(str(e).split())
            err_console.print(Text.assemble(("Error: ", "bold red"), message))
            raise typer.Exit(1) from e

    return wrapper


def require_provider(provider: str) -> str:
    """The provider key, if the registry knows it."""
    if provider not in adapters.known():
        raise UnknownProviderError(provider, adapters.known())
    return provider


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


# --- keys --------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a fresh random key for ENCRYPTION_KEY (the key alone on stdout)."""
    key = vault.generate_key()
    console.print(key)
    err_console.print(
        f"Key id {vault.Keyring.from_keys(key).current_id}. Export it before running "
        f"SceneFlow: export ENCRYPTION_KEY='{key}'. To replace an older key, move that one to "
        "ENCRYPTION_KEYS_PREVIOUS and run `sceneflow keys rotate`."
    )


@keys_app.command("rotate")
@handle_errors
def keys_rotate() -> None:
    """Re-encrypt every stored credential under ENCRYPTION_KEY, in one transaction."""
    ring = vault.Keyring.from_settings()
    with db.session_scope() as session:
        count = store.rotate_keys(session=session, keyring=ring)
        total = len(store.list_all_configs(session=session))
    console.print(
        f"Re-encrypted {count} credential(s) under key id {ring.current_id}; "
        f"{total - count} already used it. Keys in ENCRYPTION_KEYS_PREVIOUS are no longer needed."
    )


# --- creds -------------------------------------------------------------------------------


@creds_app.command("set")
@handle_errors
def creds_set(user: UserArg, provider: ProviderArg) -> None:
    """Store credentials; they come on stdin or at a hidden prompt, never as an argument."""
    require_provider(provider)
    ring = vault.Keyring.from_settings()
    credentials = parse_credentials(_read_secret())
    with db.session_scope() as session:
        row = store.put_credentials(
            session=session,
            user_id=user,
            provider=provider,
            credentials=credentials,
            keyring=ring,
        )
        fields = ", ".join(sorted(credentials))
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


# --- db ----------------------------------------------------------------------------------


@db_app.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply pending database migrations (any command that needs the database does it too)."""
    url = db.upgrade()
    console.print(f"Database {db.public_url(url)} is at the latest schema.")


# The commands that run generations live in their own module; importing it registers them.
from sceneflow import cli_jobs as _cli_jobs  # noqa: E402,F401
from sceneflow import cli_ops as _cli_ops  # noqa: E402,F401
