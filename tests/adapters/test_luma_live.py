"""Live smoke test against the real Luma Dream Machine API; runs only with LUMAAI_API_KEY set.

It reads the credit balance (GET /credits), which creates nothing and costs nothing.
"""

from __future__ import annotations

import os

import pytest

from adapters.luma import ENV_KEY, LumaAdapter
from sceneflow.providers import Credentials

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get(ENV_KEY), reason=f"set {ENV_KEY} to run the live Luma test"
    ),
]


async def test_connection_with_the_real_key() -> None:
    luma = LumaAdapter()
    async with luma:
        await luma.test_connection(Credentials({"api_key": os.environ[ENV_KEY]}))
