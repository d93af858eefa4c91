"""Retry classification, deadlines and secret hygiene, through the real flows and Prefect."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from flows.generate import generate_video
from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, GenerationTimeoutError
from sceneflow.models import JobStatus, StandardVideoRequest
from tests.support import fakes
from tests.support.fakes import SECRET, ScriptedAdapter

pytestmark = pytest.mark.usefixtures("prefect_harness")

REQUEST = StandardVideoRequest(prompt="A red fox in snow", aspect_ratio="16:9", motion_intensity=4)


@pytest.fixture
def fake_runway(monkeypatch: pytest.MonkeyPatch, sceneflow_env: Path) -> type[ScriptedAdapter]:
    return fakes.install(monkeypatch, "alice")


def _job(job_id: str):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        job = store.get_job(session=session, job_id=job_id)
        session.expunge(job)
        return job


async def test_transient_failures_are_retried_until_the_job_completes(fake_runway, tmp_path):
    script = fake_runway.reset(transient_submit_failures=2, transient_status_failures=1)
    result = await generate_video("alice", "runway", REQUEST, output_dir=str(tmp_path / "out"))
    assert result.status == JobStatus.COMPLETED
    assert Path(result.output_path).is_file()
    # Two 503s on submit did not create a job; one job was paid for.
    assert len(script.submits) == 1
    job = _job(result.provider_details["job_id"])
    # attempts counts the sends that may have reached the provider; refused ones do not count.
    assert job.status == JobStatus.COMPLETED and job.attempts == 1


async def test_a_401_is_not_retried_and_marks_the_credentials_invalid(fake_runway, tmp_path):
    script = fake_runway.reset(auth_fails=True)
    with pytest.raises(AuthError, match="401"):
        await generate_video("alice", "runway", REQUEST, output_dir=str(tmp_path))
    assert len(script.credentials_seen) == 1  # one attempt, no retry
    with session_scope() as session:
        config = store.get_config(session=session, user_id="alice", provider="runway")
        assert config is not None and config.is_valid is False
    # The next run refuses up front and says how to fix it.
    with pytest.raises(Exception, match="sceneflow creds test alice runway"):
        await generate_video("alice", "runway", REQUEST, output_dir=str(tmp_path))


async def test_a_job_that_never_finishes_times_out_and_is_cancelled(fake_runway, tmp_path):
    script = fake_runway.reset(never_finishes=True)
    with pytest.raises(GenerationTimeoutError, match="did not finish before its deadline") as e:
        await generate_video(
            "alice", "runway", REQUEST, output_dir=str(tmp_path), deadline_seconds=0.5
        )
    assert script.cancels == script.submits and len(script.submits) == 1
    assert "sceneflow status" in str(e.value)
    with session_scope() as session:
        job = store.find_job(session=session, job_id_or_provider_job_id=script.submits[0])
        assert job is not None and job.status == JobStatus.TIMED_OUT
        assert job.provider_job_id == script.submits[0]  # kept so the user can check later


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


async def test_no_run_leaves_a_credential_or_signed_url_on_disk(
    fake_runway, tmp_path, sceneflow_env
):
    fake_runway.reset(transient_status_failures=1)
    result = await generate_video("alice", "runway", REQUEST, output_dir=str(tmp_path / "out"))
    assert result.status == JobStatus.COMPLETED
    # A failing run too: its exception and logs go to the Prefect database.
    fake_runway.reset(auth_fails=True)
    with pytest.raises(AuthError):
        await generate_video(
            "alice", "runway", REQUEST, output_dir=str(tmp_path / "out"), force=True
        )

    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    roots = [Path(os.environ["PREFECT_HOME"]), prefect_db.parent, sceneflow_env, tmp_path]
    needles = [SECRET.encode(), base64.b64encode(SECRET.encode()), b"SIGNED-SECRET"]
    files = _files_under(*roots)
    assert any(f.name.endswith(".db") for f in files)
    assert any("storage" in f.parts for f in files), "cached task results were persisted"
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
