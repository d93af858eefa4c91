"""Live smoke test against the real Gemini API; runs only with GEMINI_API_KEY set."""

from __future__ import annotations

import os

import pytest

from adapters.google.gemini import VeoAdapter
from sceneflow.providers import Credentials

pytestmark = pytest.mark.live


@pytest.mark.skipif(
    not os.environ.get("GEMINI_API_KEY"), reason="set GEMINI_API_KEY to run the live Veo test"
)
async def test_connection_with_the_real_key() -> None:
    async with VeoAdapter() as adapter:
        await adapter.test_connection(Credentials({"api_key": os.environ["GEMINI_API_KEY"]}))
