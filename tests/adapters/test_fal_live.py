"""Live smoke test against the real fal queue; runs only with FAL_KEY set.

fal's test_connection makes no call (fal has no key-check endpoint), so the smoke test also asks
the real queue for the status of a request that does not exist. That costs nothing and proves
the wire format of the poll and the auth scheme: a good key gets "not found" (RejectedError), a
bad key gets AuthError.
"""

from __future__ import annotations

import os

import pytest

from adapters.fal import DEFAULT_MODEL, FalAdapter
from sceneflow.errors import AuthError, RejectedError
from sceneflow.providers import Credentials

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("FAL_KEY"), reason="set FAL_KEY to run the live fal test"
    ),
]

NO_SUCH_JOB = f"{DEFAULT_MODEL}:00000000-0000-0000-0000-000000000000"


async def test_connection_and_auth_with_the_real_key() -> None:
    key = os.environ["FAL_KEY"]
    async with FalAdapter() as adapter:
        await adapter.test_connection(Credentials({"api_key": key}))
        with pytest.raises(RejectedError) as info:
            await adapter.status(NO_SUCH_JOB, Credentials({"api_key": key}))
        assert key not in str(info.value)
        with pytest.raises(AuthError):
            await adapter.status(NO_SUCH_JOB, Credentials({"api_key": "0000-bad-id:bad-secret"}))
