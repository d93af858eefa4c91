"""The emulators' drill machinery itself: seeded fault rates after the queue, an asynchronous
"fail" drawn by rate on every remote provider, a reply spoilt after its job was created (and
counted), and the `on_created` hook firing before the reply leaves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import adapters
from sceneflow.errors import AmbiguousSubmitError
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support import drills
from tests.support.emulators import _base


@pytest.fixture(scope="module")
def fleet() -> Iterator[drills.Fleet]:
    with drills.serve_fleet(latency=0.2) as served:
        yield served


def _adapter(fleet: drills.Fleet, key: str) -> adapters.VideoAdapter:
    return adapters.get_adapter(
        key, base_url=fleet.base_url_env()[f"SCENEFLOW_BASE_URLS__{key.upper()}"]
    )


def _request(key: str, row_id: str) -> StandardVideoRequest:
    model, aspect, duration, resolution, _ = drills.ROW_SPECS[key]
    fields = {
        "prompt": f"A scene {drills.token(row_id)}",
        "aspect_ratio": aspect,
        "motion_intensity": 5,
    }
    fields |= {"duration": duration, "model": model or None}
    if resolution:
        fields["resolution"] = resolution
    return StandardVideoRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def _creds(fleet: drills.Fleet, key: str) -> Credentials:
    return Credentials(drills.credentials_for(fleet)[key])


def test_rates_are_seeded_and_come_after_the_queue() -> None:
    rates = {"500": 0.2, "503": 0.2, "429": 0.1, "slow": 0.1, "fail": 0.1}

    def draws(emu: _base.Emulator) -> list[str | None]:
        out = []
        for _ in range(300):
            fault = emu.take_fault("submit")
            out.append(fault.kind if fault else None)
        return out

    a, b = _base.Emulator(), _base.Emulator()
    a.set_fault_rates(rates, seed=7)
    b.set_fault_rates(rates, seed=7)
    a.inject("submit", "moderation")
    first = draws(a)
    assert first[0] == "moderation"  # queued faults come first
    assert first[1:] == draws(b)[:-1]
    kinds = {k for k in first if k}
    assert {"500", "503", "429", "slow", "fail"} <= kinds
    assert 0.5 < sum(k is not None for k in first) / 300 < 0.9
    # Job-shaping kinds are drawn for "submit" only; "status" gets the others.
    only_fail = _base.Emulator()
    only_fail.set_fault_rates({"fail": 1.0}, seed=1)
    assert only_fail.take_fault("status") is None
    assert only_fail.take_fault("submit").kind == "fail"  # type: ignore[union-attr]
    # `ops` limits the rates to those operations; internal ops never draw.
    scoped = _base.Emulator()
    scoped.set_fault_rates({"500": 1.0}, ops=["status"], seed=1)
    assert scoped.take_fault("submit") is None and scoped.take_fault("status") is not None
    everywhere = _base.Emulator()
    everywhere.set_fault_rates({"500": 1.0}, seed=1)
    assert everywhere.take_fault("job") is None
    with pytest.raises(ValueError, match="more than 1"):
        everywhere.set_fault_rates({"500": 0.7, "503": 0.7})


async def _until_done(adapter: adapters.VideoAdapter, pid: str, creds: Credentials):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = await adapter.status(pid, creds)
        if result.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{pid} did not finish")


@pytest.mark.parametrize("key", drills.REMOTE)
async def test_a_fail_drawn_by_rate_fails_the_job_later(fleet: drills.Fleet, key: str) -> None:
    emu = fleet.emulators[key]
    emu.set_fault_rates({"fail": 1.0}, ops=["submit"], seed=3)
    seen: list[tuple[str, int]] = []
    remove = emu.on_created(lambda job: seen.append((job.id, emu.submissions)))
    before = emu.submissions
    try:
        async with _adapter(fleet, key) as adapter:
            pid = await adapter.submit(_request(key, f"fail-{key}"), _creds(fleet, key))
            result = await _until_done(adapter, pid, _creds(fleet, key))
    finally:
        emu.clear_fault_rates()
        remove()
    assert result.status == JobStatus.FAILED and result.error_message, result
    assert emu.submissions == before + 1
    # The hook saw the job right after it was counted, before the reply named it.
    assert len(seen) == 1 and seen[0][1] == before + 1 and seen[0][0] in pid


@pytest.mark.parametrize("key", drills.REMOTE)
@pytest.mark.parametrize("kind", ["malformed", "slow"])
async def test_a_spoilt_reply_comes_after_its_job_was_paid(
    fleet: drills.Fleet, key: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    import adapters.base

    monkeypatch.setattr(adapters.base.HttpAdapter, "timeout", httpx.Timeout(0.5))
    emu = fleet.emulators[key]
    emu.set_fault_rates({kind: 1.0}, ops=["submit"], seed=5, slow_delay=1.5)
    row = f"{kind}-{key}"
    before = emu.submissions
    try:
        async with _adapter(fleet, key) as adapter:
            with pytest.raises(AmbiguousSubmitError):
                await adapter.submit(_request(key, row), _creds(fleet, key))
    finally:
        emu.clear_fault_rates()
    assert emu.submissions == before + 1
    (job,) = drills.jobs_of_row(emu, row)
    assert job.extra["reply_lost"] == kind
    assert emu.drawn[("submit", kind)] >= 1
