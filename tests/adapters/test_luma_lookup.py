"""Finding the generation a lost submit created (design.md §3), over real HTTP against the Luma
emulator, with the official SDK reading the emulator's list pages as the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import lumaai
import pytest

import adapters.luma
from adapters.luma import LumaAdapter
from sceneflow.errors import AmbiguousSubmitError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials, Lookup
from tests.support.emulators._base import serve
from tests.support.emulators.luma import API_KEY, PREFIX, LumaEmulator

CREDS = Credentials({"api_key": API_KEY})

NOTHING = Lookup(job_ids=[], complete=True)


def req(prompt: str = "Neon city in the rain", **kw: Any) -> StandardVideoRequest:
    fields: dict[str, Any] = {"aspect_ratio": "16:9", "motion_intensity": 5, "duration": 5}
    return StandardVideoRequest(prompt=prompt, **(fields | kw))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LumaEmulator, str]]:
    monkeypatch.setattr(adapters.luma, "_LOOKUP_PAGE_SIZE", 2)  # so a lookup has to page
    emu = LumaEmulator(latency=0.3)
    with serve(emu.app) as url:
        yield emu, url + PREFIX


def lists(emu: LumaEmulator) -> int:
    return sum(path.endswith("/generations") for method, path in emu.requests if method == "GET")


async def test_the_generation_a_lost_reply_created_is_found_pages_back(server) -> None:  # type: ignore[no-untyped-def]
    emu, url = server
    sent_at = datetime.now(UTC)
    async with LumaAdapter(base_url=url) as luma:
        emu.inject("submit", "lost")
        with pytest.raises(AmbiguousSubmitError, match="HTTP 504"):
            await luma.submit(req(), CREDS)
        (lost_id,) = emu.jobs
        for other in (req(aspect_ratio="9:16"), req("A quiet harbour"), req(model="ray-flash-2")):
            await luma.submit(other, CREDS)
        await luma.submit(req(resolution="1080p"), CREDS)
        found = await luma.find_submitted(req(), CREDS, since=sent_at - timedelta(seconds=5))
    assert found == Lookup(job_ids=[lost_id], complete=True)
    assert lists(emu) == 3  # 5 generations, 2 a page


async def test_older_generations_are_not_candidates_and_end_the_walk(server) -> None:  # type: ignore[no-untyped-def]
    emu, url = server
    async with LumaAdapter(base_url=url) as luma:
        for _ in range(5):
            await luma.submit(req(), CREDS)
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await luma.find_submitted(req(), CREDS, since=later) == NOTHING
        assert lists(emu) == 1
        every = await luma.find_submitted(req(), CREDS, since=later - timedelta(hours=1))
    assert every == Lookup(job_ids=list(emu.jobs)[::-1], complete=True)  # newest first


def test_the_sdk_reads_the_emulators_list_pages(server) -> None:  # type: ignore[no-untyped-def]
    emu, url = server
    client = lumaai.LumaAI(auth_token=API_KEY, base_url=url)
    for prompt in ("one", "two", "three"):
        client.generations.create(prompt=prompt, model="ray-2", aspect_ratio="16:9")
    first = client.generations.list(limit=2, offset=0)
    assert [g.request.prompt for g in first.generations] == ["three", "two"]  # type: ignore[union-attr]
    assert first.has_more is True and first.count == 2
    rest = client.generations.list(limit=2, offset=2)
    assert [g.id for g in rest.generations] == [next(iter(emu.jobs))] and rest.has_more is False
