"""Finding the prediction a lost submit created (design.md §3), over real HTTP against the
Replicate emulator, with the official SDK reading the emulator's list pages as the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import replicate as replicate_sdk

from adapters.replicate import ReplicateAdapter
from sceneflow.errors import AmbiguousSubmitError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials, Lookup
from tests.support.emulators._base import Emulator, serve
from tests.support.emulators.replicate import TOKEN, create_app

CREDS = Credentials({"api_key": TOKEN})

NOTHING = Lookup(job_ids=[], complete=True)


def req(prompt: str = "A red fox runs through snow", **kw: Any) -> StandardVideoRequest:
    return StandardVideoRequest(prompt=prompt, aspect_ratio="16:9", motion_intensity=5, **kw)


@pytest.fixture
def server() -> Iterator[tuple[Emulator, str, list[dict[str, Any]]]]:
    emu = Emulator(latency=0.3)
    app = create_app(emu, page_size=2)  # small pages, so a lookup has to follow the cursor
    with serve(app) as url:
        yield emu, url, app.state.recorded


async def test_the_prediction_a_lost_reply_created_is_found_pages_back(server) -> None:  # type: ignore[no-untyped-def]
    emu, url, recorded = server
    sent_at = datetime.now(UTC)
    async with ReplicateAdapter(base_url=url) as adapter:
        emu.inject("submit", "lost")
        with pytest.raises(AmbiguousSubmitError, match="HTTP 504"):
            await adapter.submit(req(), CREDS)
        lost_id = next(iter(emu.jobs))
        # Newer predictions push it to the third page: the same prompt on another model, the
        # same model with another prompt or another setting.
        await adapter.submit(req(model="minimax/hailuo-02", duration=6), CREDS)
        await adapter.submit(req("A grey wolf runs through snow"), CREDS)
        await adapter.submit(req(negative_prompt="blurry"), CREDS)
        await adapter.submit(req("A hare in the snow"), CREDS)
        found = await adapter.find_submitted(req(), CREDS, since=sent_at - timedelta(seconds=5))
    assert found == Lookup(job_ids=[lost_id], complete=True)
    lists = [r for r in recorded if r["method"] == "GET" and r["path"] == "/v1/predictions"]
    assert len(lists) == 3  # 5 predictions, 2 a page


async def test_the_walk_stops_at_predictions_older_than_the_submit(server) -> None:  # type: ignore[no-untyped-def]
    emu, url, recorded = server
    async with ReplicateAdapter(base_url=url) as adapter:
        for _ in range(5):
            await adapter.submit(req(), CREDS)
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await adapter.find_submitted(req(), CREDS, since=later) == NOTHING
    assert sum(r["method"] == "GET" for r in recorded) == 1  # the first page was already older


async def test_several_matches_come_newest_first(server) -> None:  # type: ignore[no-untyped-def]
    emu, url, _ = server
    async with ReplicateAdapter(base_url=url) as adapter:
        ids = [await adapter.submit(req(), CREDS) for _ in range(3)]
        found = await adapter.find_submitted(req(), CREDS, since=datetime.now(UTC) - timedelta(1))
    assert found == Lookup(job_ids=ids[::-1], complete=True)


async def test_only_the_cursor_is_followed_so_the_token_stays_on_replicate() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page: dict[str, Any] = {"results": [], "next": None}
        if len(seen) == 1:
            page["next"] = "https://collector.example/v1/predictions?cursor=c2Vjb25k"
        return httpx.Response(200, json=page)

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    adapter = ReplicateAdapter(client=client, base_url="https://api.replicate.test")
    assert await adapter.find_submitted(req(), CREDS, since=datetime.now(UTC)) == NOTHING
    await client.aclose()
    assert [str(r.url) for r in seen] == [
        "https://api.replicate.test/v1/predictions",
        "https://api.replicate.test/v1/predictions?cursor=c2Vjb25k",
    ]


def test_the_sdk_reads_the_emulators_list_pages(server) -> None:  # type: ignore[no-untyped-def]
    emu, url, _ = server
    client = replicate_sdk.Client(api_token=TOKEN, base_url=url)
    for prompt in ("one", "two", "three"):
        client.models.predictions.create("kwaivgi/kling-v2.5-turbo-pro", input={"prompt": prompt})
    first = client.predictions.list()
    assert [p.input["prompt"] for p in first.results] == ["three", "two"]
    assert first.next is not None
    second = client.predictions.list(first.next)
    assert [p.input["prompt"] for p in second.results] == ["one"] and second.next is None
