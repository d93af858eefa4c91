"""Differential conformance with the official SDK, `replicate` 1.0.7.

The SDK and the adapter send the same logical requests to the emulator, which records them; we
compare method, path, auth scheme, the headers that matter and the JSON body (the SDK's
user-agent is its own business). Then the SDK's own types parse the emulator's replies, which
shows the emulator speaks what the SDK expects from the real service.

Known SDK gap: its `Prediction.status` type lacks `aborted` (Replicate's lifecycle docs list it),
so only the adapter is checked against that status (in test_replicate.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.model import Model
from replicate.prediction import Prediction
from replicate.schema import make_schema_backwards_compatible
from replicate.version import Version
from starlette.applications import Starlette

from adapters import replicate as replicate_adapter
from adapters.replicate import ReplicateAdapter, _progress
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import Emulator, sample_mp4, serve
from tests.support.emulators.replicate import TOKEN, VERSIONS, create_app, set_status

CREDS = Credentials({"api_key": TOKEN})
# Async fixtures live on the session loop (pyproject); the tests must share it so the adapter's
# sockets are closed on the loop that opened them.
pytestmark = pytest.mark.asyncio(loop_scope="session")
COMPARED_HEADERS = ("authorization", "content-type", "accept", "content-length", "prefer")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Emulator, Starlette, str]]:
    emu = Emulator(latency=0.4)
    app = create_app(emu)
    with serve(app) as url:
        yield emu, app, url


@pytest.fixture
def sdk(server: tuple[Emulator, Starlette, str]) -> replicate.Client:
    return replicate.Client(api_token=TOKEN, base_url=server[2])


@pytest.fixture
async def adapter(server: tuple[Emulator, Starlette, str]) -> AsyncIterator[ReplicateAdapter]:
    async with ReplicateAdapter(base_url=server[2]) as adapter:
        yield adapter


def last(app: Starlette) -> dict[str, Any]:
    """The last recorded request, reduced to what both clients must agree on."""
    entry = app.state.recorded[-1]
    headers = {k: v for k, v in entry["headers"].items() if k in COMPARED_HEADERS}
    if headers.get("content-type") == "application/json":
        headers.pop("content-length")  # same JSON, keys in another order or spacing
    body = json.loads(entry["body"]) if entry["body"] else entry["body"]
    return {"method": entry["method"], "path": entry["path"], "headers": headers, "body": body}


def req(**kw: Any) -> StandardVideoRequest:
    fields = {"prompt": "A lighthouse at dusk", "aspect_ratio": "9:16", "motion_intensity": 4}
    return StandardVideoRequest(**(fields | kw))


async def test_create_on_a_model_matches_the_sdk(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client, adapter: ReplicateAdapter
) -> None:
    _, app, _ = server
    await sdk.models.predictions.async_create(
        model="kwaivgi/kling-v2.5-turbo-pro",
        input={
            "prompt": "A lighthouse at dusk",
            "negative_prompt": "people",
            "aspect_ratio": "9:16",
            "duration": 10,
            "start_image": "https://example.com/lighthouse.png",
        },
    )
    by_sdk = last(app)
    await adapter.submit(
        req(duration=10, negative_prompt="people", image_url="https://example.com/lighthouse.png"),
        CREDS,
    )
    assert last(app) == by_sdk
    assert by_sdk["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert by_sdk["path"] == "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions"


async def test_create_on_a_version_matches_the_sdk(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client, adapter: ReplicateAdapter
) -> None:
    _, app, _ = server
    version = next(v for v, m in VERSIONS.items() if m == "google/veo-3.1")
    await sdk.predictions.async_create(
        version=version,
        input={
            "prompt": "A lighthouse at dusk",
            "aspect_ratio": "9:16",
            "duration": 6,
            "resolution": "1080p",
            "seed": 11,
        },
    )
    by_sdk = last(app)
    await adapter.submit(
        req(model=f"google/veo-3.1:{version}", duration=6, resolution="1080p", seed=11), CREDS
    )
    assert last(app) == by_sdk and by_sdk["path"] == "/v1/predictions"


async def test_get_and_cancel_match_the_sdk_and_parse_as_sdk_predictions(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client, adapter: ReplicateAdapter
) -> None:
    emu, app, _ = server
    created = await sdk.models.predictions.async_create(
        model="minimax/hailuo-02", input={"prompt": "waves", "duration": 6}
    )
    assert isinstance(created, Prediction) and created.status == "starting"
    await sdk.predictions.async_get(created.id)
    sdk_get = last(app)
    await adapter.status(created.id, CREDS)
    assert last(app) == sdk_get and sdk_get["path"] == f"/v1/predictions/{created.id}"
    seen: set[str] = set()
    while (by_sdk := await sdk.predictions.async_get(created.id)).status != "succeeded":
        seen.add(by_sdk.status)
        if by_sdk.status == "processing" and by_sdk.progress:
            # The same logs, read by the SDK's parser and by ours.
            assert _progress(by_sdk.logs) == pytest.approx(by_sdk.progress.percentage * 100)
        await asyncio.sleep(0.05)
    assert seen == {"starting", "processing"}
    ours = await adapter.status(created.id, CREDS)
    assert by_sdk.output == ours.video_url and by_sdk.metrics and by_sdk.completed_at
    assert await FileOutput(by_sdk.output, sdk).aread() == sample_mp4(seconds=6)

    job = await sdk.models.predictions.async_create(
        model="minimax/hailuo-02", input={"prompt": "waves"}
    )
    canceled = await sdk.predictions.async_cancel(job.id)
    by_sdk_cancel = last(app)
    assert canceled.status == "canceled"
    await adapter.cancel(job.id, CREDS)
    assert last(app) == by_sdk_cancel
    assert by_sdk_cancel["body"] == b"" and by_sdk_cancel["headers"]["content-length"] == "0"

    failed = await sdk.models.predictions.async_create(
        model="minimax/hailuo-02", input={"prompt": "waves"}
    )
    set_status(emu.jobs[failed.id], "failed")
    reread = await sdk.predictions.async_get(failed.id)
    assert reread.status == "failed" and reread.error
    assert (await adapter.status(failed.id, CREDS)).error_message == reread.error


async def test_schema_reads_match_the_sdk_and_parse_as_sdk_models_and_versions(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client, adapter: ReplicateAdapter
) -> None:
    """The adapter reads a model's schema as `models.get` and `versions.get` do, and the SDK's
    own types read what the emulator answers (the schema where SceneFlow looks for it)."""
    _, app, _ = server
    replicate_adapter.SCHEMAS.clear()
    model = await sdk.models.async_get("acme/enum-video")
    by_sdk = last(app)
    report = await adapter.describe_model("acme/enum-video", CREDS)
    assert last(app) == by_sdk and by_sdk["path"] == "/v1/models/acme/enum-video"
    assert isinstance(model, Model) and model.visibility == "public"
    assert isinstance(model.latest_version, Version)
    schema = make_schema_backwards_compatible(
        model.latest_version.openapi_schema, model.latest_version.cog_version
    )
    assert list(schema["components"]["schemas"]["Input"]["properties"]) == [
        "prompt",
        "negative_prompt",
        "image",
        "aspect_ratio",
        "duration",
        "resolution",
        "seed",
        "generate_audio",
    ]
    assert report.source.endswith(model.latest_version.id)

    version = await model.versions.async_get(model.latest_version.id)
    by_sdk = last(app)
    pinned = f"acme/enum-video:{version.id}"
    await adapter.describe_model(pinned, CREDS)
    assert last(app) == by_sdk and isinstance(version, Version)
    assert version.openapi_schema == model.latest_version.openapi_schema

    # What the adapter then sends is what the SDK sends for the same inputs.
    await sdk.models.predictions.async_create(
        model="acme/enum-video",
        input={"prompt": "A lighthouse at dusk", "aspect_ratio": "9:16", "duration": 10},
    )
    by_sdk = last(app)
    await adapter.submit(req(model="acme/enum-video", duration=10, resolution="720p"), CREDS)
    ours = last(app)
    assert ours["body"]["input"].pop("resolution") == "720p"  # the standard default, sent
    assert ours == by_sdk
    replicate_adapter.SCHEMAS.clear()


async def test_account_matches_the_sdk(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client, adapter: ReplicateAdapter
) -> None:
    _, app, _ = server
    account = await sdk.accounts.async_current()
    assert (account.type, account.username) == ("user", "emulator")
    by_sdk = last(app)
    await adapter.test_connection(CREDS)
    assert (
        last(app)
        == by_sdk
        == {
            "method": "GET",
            "path": "/v1/account",
            "headers": {"authorization": f"Bearer {TOKEN}", "accept": "*/*"},
            "body": b"",
        }
    )


async def test_sdk_reads_the_emulators_problem_details(
    server: tuple[Emulator, Starlette, str],
) -> None:
    url = server[2]
    wrong = replicate.Client(api_token="r8_wrong", base_url=url)
    with pytest.raises(ReplicateError) as info:
        await wrong.accounts.async_current()
    assert (info.value.status, info.value.title) == (401, "Unauthenticated")
    assert info.value.detail == "You did not pass a valid authentication token"
    sdk = replicate.Client(api_token=TOKEN, base_url=url)
    with pytest.raises(ReplicateError) as info:
        await sdk.models.predictions.async_create(
            model="google/veo-3.1", input={"prompt": "x", "duration": 7}
        )
    assert (info.value.status, info.value.title) == (422, "Input validation failed")
    assert info.value.detail == "- input.duration: duration must be one of the following: 4, 6, 8\n"


async def test_sdk_run_with_prefer_wait_returns_the_output(
    server: tuple[Emulator, Starlette, str], sdk: replicate.Client
) -> None:
    _, app, url = server
    output = await sdk.async_run("minimax/hailuo-02", input={"prompt": "waves"}, wait=5)
    assert app.state.recorded[-1]["headers"]["prefer"] == "wait=5"
    assert isinstance(output, str) and output.startswith(f"{url}/delivery/")
