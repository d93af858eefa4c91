"""A user's provider credentials, opened for one run and tested against the provider.

The decrypted value exists only in memory, inside `Credentials`, which refuses to be pickled or
printed. Prefect tasks that call `open_credentials` use NO_CACHE and persist_result=False
(design.md §4), so nothing here ever reaches result storage.
"""

from __future__ import annotations

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, CredentialsError
from sceneflow.providers import Capabilities, Credentials, VideoAdapter

__all__ = ["check_credentials", "open_credentials"]


def open_credentials(user_id: str, caps: Capabilities) -> Credentials:
    """Decrypt `user_id`'s credentials for the provider `caps` describes, refusing ones that the
    last connection test rejected. A keyless provider (local) needs none."""
    if not caps.credential_fields:
        return Credentials({})
    provider = caps.provider
    with session_scope() as session:
        config = store.get_config(session=session, user_id=user_id, provider=provider)
        if config is not None and config.is_valid is False:
            raise CredentialsError(
                f"The {provider} credentials of user {user_id!r} were rejected by the provider "
                f"at the last check. Store working ones with `sceneflow creds set {user_id} "
                f"{provider}`, then run `sceneflow creds test {user_id} {provider}`."
            )
        return Credentials(
            store.unseal_credentials(session=session, user_id=user_id, provider=provider)
        )


async def check_credentials(adapter: VideoAdapter, user_id: str) -> bool:
    """Make the provider's cheapest authenticated call and store the verdict in is_valid.

    A keyless provider (local) is tested without credentials and stores no verdict. Any other
    failure than a rejected key (the provider is down, the key cannot be decrypted) raises, and
    the last verdict stands. The adapter is closed afterwards."""
    caps = adapter.capabilities()
    keyless = not caps.credential_fields
    try:
        values = {}
        if not keyless:
            with session_scope() as session:
                values = store.unseal_credentials(
                    session=session, user_id=user_id, provider=caps.provider
                )
        try:
            await adapter.test_connection(Credentials(values))
            valid = True
        except AuthError:
            valid = False
    finally:
        await adapter.aclose()
    if not keyless:
        with session_scope() as session:
            store.set_validity(
                session=session, user_id=user_id, provider=caps.provider, is_valid=valid
            )
    return valid
