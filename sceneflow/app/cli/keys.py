"""`sceneflow keys generate | rotate`: the master key that seals stored credentials."""

from __future__ import annotations

import typer

from sceneflow import db, store, vault
from sceneflow.app.cli.console import console, err_console, handle_errors

keys_app = typer.Typer(help="The master key that seals stored credentials.", no_args_is_help=True)


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
