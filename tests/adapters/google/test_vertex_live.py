"""Live smoke test against real Vertex AI; runs only when SCENEFLOW_LIVE_VERTEX_CREDENTIALS names
a credentials JSON file: {"service_account": {...}, "project": "...", "location": "..."}, or
{"api_key": "..."} for express mode; either may add "storage_uri": "gs://BUCKET/PREFIX/"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapters.google.vertex import VertexVeoAdapter
from sceneflow.providers import Credentials

pytestmark = pytest.mark.live
ENV = "SCENEFLOW_LIVE_VERTEX_CREDENTIALS"


@pytest.mark.skipif(
    not os.environ.get(ENV), reason=f"set {ENV} to a credentials JSON file to run the live test"
)
async def test_connection_with_real_credentials() -> None:
    values = json.loads(Path(os.environ[ENV]).read_text())
    async with VertexVeoAdapter() as adapter:
        await adapter.test_connection(Credentials(values))
