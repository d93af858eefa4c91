"""Smoke test against the real Runway API. Runs only with RUNWAYML_API_SECRET set (the SDK's own
variable); it calls GET /v1/organization, which costs no credits."""

from __future__ import annotations

import os

import pytest

from adapters import get_adapter
from sceneflow.providers import Credentials

ENV = "RUNWAYML_API_SECRET"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get(ENV), reason=f"set {ENV} to run the live Runway smoke test")
async def test_connection_against_the_real_runway_api():
    # The base URL comes from SCENEFLOW_BASE_URLS__RUNWAY if set (e.g. Runway's staging host).
    adapter = get_adapter("runway")
    try:
        await adapter.test_connection(Credentials({"api_key": os.environ[ENV]}))
    finally:
        await adapter.aclose()
