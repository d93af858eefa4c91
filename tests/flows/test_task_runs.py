"""What a batch costs Prefect: one task run a group of rows, not three a row, and a task run
Prefect itself fails costs only its own rows, each with the reason, never the batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

import adapters
from flows import batch, steps
from flows.batch import generate_batch
from sceneflow.jobs.lanes import lane_size
from tasks.batch import Progress
from tests.support import fakes
from tests.support.fakes import ScriptedAdapter

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def fake_runway(monkeypatch: pytest.MonkeyPatch, sceneflow_env: Path) -> type[ScriptedAdapter]:
    return fakes.install(monkeypatch, "bo")


def _csv(tmp_path: Path, rows: int) -> str:
    path = tmp_path / "prompts.csv"
    body = "".join(f"r{i},clip number {i},16:9,4\n" for i in range(rows))
    path.write_text("id,prompt,aspect_ratio,motion_intensity\n" + body)
    return str(path)


async def test_a_batch_runs_one_task_run_a_group_of_rows(fake_runway, tmp_path):
    rows, concurrency = 24, 2
    state = await generate_batch(
        _csv(tmp_path, rows),
        "bo",
        "runway",
        output_dir=str(tmp_path / "out"),
        max_concurrency=concurrency,
        return_state=True,
    )
    summary = await state.result()
    assert summary.completed == rows and len(fake_runway.script.submits) == rows
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    generating = [r for r in runs if r.name.startswith("generate[")]
    size = lane_size(rows, concurrency)
    assert size > 1 and len(generating) == rows // size
    assert {r.name for r in generating} >= {f"generate[runway rows 2-{1 + size}]"}
    # No concurrency limit on provider:runway: the task runs carry no tag, so Prefect's task
    # engine never asks its API for a slot that no limit could refuse.
    assert all(r.tags == [] for r in generating)


@pytest.fixture
async def runway_limit_of_one() -> AsyncIterator[None]:
    async with get_client() as client:
        await client.create_concurrency_limit(tag="provider:runway", concurrency_limit=1)
    try:
        yield
    finally:
        async with get_client() as client:
            await client.delete_concurrency_limit_by_tag("provider:runway")


@pytest.mark.usefixtures("runway_limit_of_one")
async def test_a_tag_concurrency_limit_caps_a_providers_task_runs(fake_runway, tmp_path):
    # Two lanes of two rows; the limit of one lets only one group run at a time.
    state = await generate_batch(
        _csv(tmp_path, 4),
        "bo",
        "runway",
        output_dir=str(tmp_path / "out"),
        max_concurrency=2,
        return_state=True,
    )
    summary = await state.result()
    assert summary.completed == 4 and len(fake_runway.script.submits) == 4
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    generating = sorted(
        (r for r in runs if r.name.startswith("generate[")), key=lambda r: r.start_time
    )
    assert len(generating) == 2 and all(r.tags == ["provider:runway"] for r in generating)
    first, second = generating
    assert first.end_time <= second.start_time, "the limit let two groups run at once"


async def test_a_task_run_prefect_fails_fails_only_its_rows_with_the_reason(
    fake_runway, tmp_path, monkeypatch
):
    real = steps.generate_videos
    calls = 0

    async def refused(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # as Prefect's API answering 503 to the task run's concurrency lease
            raise RuntimeError("Server error '503 Service Unavailable' for url '.../increment'")
        return await real(*args, **kw)

    monkeypatch.setattr(steps, "generate_videos", refused)
    # Two lanes, a group of two rows each: the refused task run carries two of the four.
    summary = await generate_batch(
        _csv(tmp_path, 4), "bo", "runway", output_dir=str(tmp_path / "out"), max_concurrency=2
    )
    assert (summary.completed, summary.failed) == (2, 2)
    assert len(fake_runway.script.submits) == 2  # nothing was sent for the refused rows
    results = (tmp_path / "out" / "results.csv").read_text()
    assert "Prefect could not run the task that carries this job (RuntimeError" in results
    assert "a re-run picks it up" in results
    # A re-run runs it, once.
    again = await generate_batch(
        _csv(tmp_path, 4), "bo", "runway", output_dir=str(tmp_path / "out"), max_concurrency=2
    )
    assert again.completed == 4 and len(fake_runway.script.submits) == 4


class Counting(ScriptedAdapter):
    """Counts the jobs each adapter (one a lane) has between its submit and download."""

    busy: dict[int, int] = {}
    peak: dict[int, int] = {}
    total_peak = 0

    async def submit(self, request: Any, credentials: Any, **kw: Any) -> str:
        cls = type(self)
        cls.busy[id(self)] = cls.busy.get(id(self), 0) + 1
        cls.peak[id(self)] = max(cls.peak.get(id(self), 0), cls.busy[id(self)])
        cls.total_peak = max(cls.total_peak, sum(cls.busy.values()))
        return await super().submit(request, credentials, **kw)

    async def download(self, result: Any, credentials: Any, destination: Path) -> Path:
        type(self).busy[id(self)] -= 1
        return await super().download(result, credentials, destination)


async def test_each_lane_has_its_own_client_and_together_they_never_exceed_the_concurrency(
    fake_runway, tmp_path, monkeypatch
):
    """httpcore scans a whole pool on every request, so each of the C lanes sends through an
    adapter and a one-connection client of its own; together they hold no more than C jobs in
    flight, and every lane was used."""
    monkeypatch.setitem(adapters.REGISTRY, "runway", "tests.flows.test_task_runs:Counting")
    # The registry imports this module by its dotted name, which may be a second copy of it.
    counting: Any = adapters.adapter_class("runway")
    counting.busy, counting.peak, counting.total_peak = {}, {}, 0
    fake_runway.script.polls_to_finish = 3
    concurrency = 20
    summary = await generate_batch(
        _csv(tmp_path, 120),
        "bo",
        "runway",
        output_dir=str(tmp_path / "out"),
        max_concurrency=concurrency,
    )
    assert summary.completed == 120
    assert len(counting.peak) == concurrency  # an adapter a lane
    assert set(counting.peak.values()) == {1}  # one job at a time on each
    # Never more than C in flight; lanes start a few at a time (flows/batch.STARTING) and run
    # out of step, so the peak need not be every lane at once, but it is most of them.
    assert concurrency // 2 < counting.total_peak <= concurrency


async def test_one_providers_groups_waiting_to_start_never_hold_up_anothers() -> None:
    """At most STARTING of a provider's groups start at once (its rows into the ledger, its task
    run), so the first submit of a large batch is not behind all C start-ups; the window is the
    provider's own, so another provider's groups start meanwhile."""
    rows = batch._Rows(
        [], Progress(1), user_id="u", batch_id="b", regenerate=set(), resubmit_unknown=False
    )
    for group in range(batch.STARTING):
        await rows.admit("runway", group)
    blocked = asyncio.ensure_future(rows.admit("runway", batch.STARTING))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the window is full for runway...
    # ...not for luma (groups are named by their first row's number, unique in a CSV)
    await asyncio.wait_for(rows.admit("luma", 100), 1)
    rows.begin(0)  # runway's first group sent its first job: the next one starts
    await asyncio.wait_for(blocked, 1)
    rows.begin(0)  # said twice (its first job, then its end): released once
    assert rows.starting["runway"].locked()
