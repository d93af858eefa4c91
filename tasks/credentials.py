"""Fetch and decrypt a user's provider credentials; test them against the provider.

The decrypted value exists only in memory: NO_CACHE and persist_result=False keep Prefect from
writing it to result storage (design.md §4), and `Credentials` refuses to be pickled.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from adapters import adapter_class, get_adapter
from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, CredentialsError
from sceneflow.providers import Credentials


def fetch_credentials(user_id: str, provider: str) -> Credentials:
    """Decrypt the stored credentials, refusing ones the last connection test rejected."""
    if not adapter_class(provider)().capabilities().credential_fields:
        return Credentials({})
    with session_scope() as session:
        config = store.get_config(session=session, user_id=user_id, provider=provider)
        if config is not None and config.is_valid is False:
            raise CredentialsError(
                f"The {provider} credentials of user {user_id!r} were rejected by the provider "
                f"at the last check. Store working ones with `sceneflow creds set {user_id} "
                f"{provider}`, then run `sceneflow creds test {user_id} {provider}`."
            )
        return Credentials(
            store.load_credentials(session=session, user_id=user_id, provider=provider)
        )


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="load-credentials[{provider}]")
async def load_credentials(user_id: str, provider: str) -> Credentials:
    """Fetch and decrypt one (user, provider) credential; memory only."""
    return fetch_credentials(user_id, provider)


async def check_credentials(user_id: str, provider: str) -> bool:
    """Make the provider's cheapest authenticated call and store the verdict in is_valid.
    A keyless provider (local) is tested without credentials and stores no verdict."""
    keyless = not adapter_class(provider)().capabilities().credential_fields
    values: dict[str, Any] = {}
    if not keyless:
        with session_scope() as session:
            values = store.load_credentials(session=session, user_id=user_id, provider=provider)
    adapter = get_adapter(provider)
    try:
        await adapter.test_connection(Credentials(values))
        valid = True
    except AuthError:
        valid = False
    finally:
        await adapter.aclose()
    if not keyless:
        with session_scope() as session:
            store.set_validity(session=session, user_id=user_id, provider=provider, is_valid=valid)
    return valid


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="test-credentials[{provider}]")
async def test_credentials(user_id: str, provider: str) -> bool:
    """Re-test one stored credential and update is_valid."""
    return await check_credentials(user_id, provider)
