"""Live smoke test against the real Replicate API; runs only with REPLICATE_API_TOKEN set.

It reads the account (GET /v1/account), which creates nothing and costs nothing.
"""

from __future__ import annotations

import os

import pytest

from adapters.replicate import ENV_KEY, ReplicateAdapter
from sceneflow.providers import Credentials

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get(ENV_KEY), reason=f"set {ENV_KEY} to run the live Replicate test"
    ),
]


async def test_connection_with_the_real_token() -> None:
    async with ReplicateAdapter() as adapter:
        await adapter.test_connection(Credentials({"api_key": os.environ[ENV_KEY]}))
