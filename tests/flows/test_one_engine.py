"""One engine, one policy: the same scripted failures run through the single-video flow, a batch
row and the gateway end their jobs identically: the same row (status, error, attempts) and the
same event. The gateway's full run is the single-video flow; its submit-only path shares the
engine's submit step and `ledger.settle`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

import adapters
from flows.batch import generate_batch
from flows.generate import generate_video
from sceneflow import store
from sceneflow.app.gateway import VideoGenerationGateway
from sceneflow.db import session_scope
from sceneflow.errors import SceneFlowError
from sceneflow.models import StandardVideoRequest
from sceneflow.settings import get_settings
from tasks import record
from tests.support.fakes import SECRET, ScriptedAdapter

pytestmark = pytest.mark.usefixtures("prefect_harness")

REQUEST = StandardVideoRequest(prompt="A red fox in snow", aspect_ratio="16:9", motion_intensity=4)
CSV = "id,prompt,aspect_ratio,motion_intensity\nr1,A red fox in snow,16:9,4\n"
SCENARIOS = {
    "the submit is refused by endless 503s": {"transient_submit_failures": 99},
    "the key is rejected": {"auth_fails": True},
    "the provider fails the job": {"provider_fails": True},
    "the job misses its deadline": {"never_finishes": True},
}


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(record, "emit_event", lambda **kw: seen.append(kw))
    return seen


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, sceneflow_env: Path) -> type[ScriptedAdapter]:
    monkeypatch.setitem(adapters.REGISTRY, "runway", "tests.support.fakes:ScriptedAdapter")
    monkeypatch.setenv("SCENEFLOW_DEADLINES__RUNWAY", "0.5")
    get_settings.cache_clear()
    with session_scope() as session:
        for user in ("flow", "batch", "gateway"):
            store.put_credentials(
                session=session, user_id=user, provider="runway", credentials={"api_key": SECRET}
            )
    return ScriptedAdapter


def _plain(text: str | None) -> str | None:
    """The error without the ids that differ from one job to the next."""
    if text is None:
        return None
    return re.sub(r"fake-\d+", "<provider id>", re.sub(r"\b[0-9a-f]{32}\b", "<job>", text))


def _row(user: str) -> tuple[str, str | None, int]:
    with session_scope() as session:
        (job,) = session.exec(
            select(store.GenerationJob).where(store.GenerationJob.user_id == user)
        ).all()
        return job.status, _plain(job.error), job.attempts


async def _run(caller: str, tmp_path: Path) -> None:
    out = str(tmp_path / caller)
    if caller == "flow":
        await generate_video("flow", "runway", REQUEST, output_dir=out)
    elif caller == "batch":
        source = tmp_path / "one.csv"
        source.write_text(CSV)
        summary = await generate_batch(str(source), "batch", "runway", output_dir=out)
        assert summary.completed == 0 and summary.failed == 1
    else:
        response = await VideoGenerationGateway().trigger_generation(
            "gateway", REQUEST, "runway", wait=True, output_dir=out
        )
        assert not response.success
        raise SceneFlowError(response.message)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_caller_ends_the_job_the_same_way(
    scenario: str, fake: type[ScriptedAdapter], events: list[dict[str, Any]], tmp_path: Path
) -> None:
    rows, announced = {}, {}
    for caller in ("flow", "batch", "gateway"):
        fake.reset(**SCENARIOS[scenario])
        if caller != "batch":
            with pytest.raises(SceneFlowError):
                await _run(caller, tmp_path)
        else:
            await _run(caller, tmp_path)
        rows[caller] = _row(caller)
        (event,) = [e for e in events if e["payload"]["user_id"] == caller]
        announced[caller] = (
            event["event"],
            event["payload"]["status"],
            _plain(event["payload"]["error"]),
        )
    assert rows["flow"] == rows["batch"] == rows["gateway"], rows
    assert announced["flow"] == announced["batch"] == announced["gateway"], announced
    status, error, _ = rows["flow"]
    assert status in ("FAILED", "TIMED_OUT") and error
    assert announced["flow"][0] == (
        "sceneflow.video.timed_out" if status == "TIMED_OUT" else "sceneflow.video.failed"
    )
