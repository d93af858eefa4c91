"""Open a user's provider credentials for a run; test them against the provider.

The decrypted value exists only in memory: NO_CACHE and persist_result=False keep Prefect from
writing it to result storage (design.md §4), and `Credentials` refuses to be pickled.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

import adapters
from sceneflow import credentials
from sceneflow.providers import Credentials


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="load-credentials[{provider}]")
async def load_credentials(user_id: str, provider: str) -> Credentials:
    """Decrypt one (user, provider) credential; memory only."""
    return credentials.open_credentials(user_id, adapters.get_adapter(provider).capabilities())


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="test-credentials[{provider}]")
async def test_credentials(user_id: str, provider: str) -> bool:
    """Re-test one stored credential and update is_valid."""
    return await credentials.check_credentials(adapters.get_adapter(provider), user_id)
