"""A submit whose reply is lost (design.md §3), through generate_video under Prefect against
emulators over real HTTP: the job it created is found and resumed, never paid for twice; where
nothing can be found the job stays UNKNOWN and says what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from flows.generate import generate_video
from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AmbiguousSubmitError, AuthError
from sceneflow.jobs import ledger, submit
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from sceneflow.settings import get_settings
from tests.support.emulators import replicate, runway
from tests.support.emulators._base import Emulator, serve
from tests.support.fakes import ScriptedAdapter
from tests.support.polling import fast_polling

pytestmark = pytest.mark.usefixtures("prefect_harness")

REQUEST = StandardVideoRequest(
    prompt="A kite over the dunes", aspect_ratio="16:9", motion_intensity=5
)


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Emulator]]:
    fast_polling(monkeypatch, ("replicate", "runway"))
    rep = Emulator(latency=0.2)
    rw = runway.RunwayEmulator(latency=0.2)
    with serve(replicate.create_app(rep)) as rep_url, serve(rw.app) as rw_url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__REPLICATE", rep_url)
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__RUNWAY", rw_url)
        get_settings.cache_clear()
        with session_scope() as session:
            store.put_credentials(
                session=session,
                user_id="ann",
                provider="replicate",
                credentials={"api_key": replicate.TOKEN},
            )
            store.put_credentials(
                session=session,
                user_id="ann",
                provider="runway",
                credentials={"api_key": runway.API_KEY},
            )
        yield {"replicate": rep, "runway": rw}
    get_settings.cache_clear()


def _job(provider: str) -> tuple[store.GenerationJob, list[tuple[str, str]]]:
    """The user's one job on `provider`, and its attempts as (operation, outcome)."""
    with session_scope() as session:
        (job,) = session.exec(
            select(store.GenerationJob).where(store.GenerationJob.provider == provider)
        ).all()
        attempts = session.exec(
            select(store.GenerationAttempt)
            .where(store.GenerationAttempt.job_id == job.id)
            .order_by(col(store.GenerationAttempt.id))
        ).all()
        session.expunge(job)
        return job, [(a.operation, a.outcome) for a in attempts]


async def test_the_job_a_lost_reply_created_is_found_and_finished(
    emulators, tmp_path: Path
) -> None:
    emu = emulators["replicate"]
    emu.inject("submit", "lost")
    result = await generate_video("ann", "replicate", REQUEST, output_dir=str(tmp_path))
    assert result.status == JobStatus.COMPLETED and Path(result.output_path).is_file()
    assert emu.submissions == 1
    job, attempts = _job("replicate")
    assert job.provider_job_id == next(iter(emu.jobs)) and job.error is None
    assert attempts[:2] == [("submit", "error"), ("lookup", "ok")]


async def test_a_lost_submit_a_complete_search_proves_absent_is_sent_again_once(
    emulators, tmp_path: Path
) -> None:
    emu = emulators["replicate"]
    emu.inject("submit", "500")  # refused before any prediction was made
    result = await generate_video("ann", "replicate", REQUEST, output_dir=str(tmp_path))
    assert result.status == JobStatus.COMPLETED and emu.submissions == 1
    job, attempts = _job("replicate")
    assert attempts[:3] == [("submit", "error"), ("lookup", "ok"), ("submit", "ok")]
    why = _details(job.id, "lookup")[0]
    assert "a complete search of the replicate jobs created since" in why
    assert why.endswith("found no job for the lost send, so it never arrived; sending again")


async def test_a_provider_with_no_lookup_leaves_the_job_unknown_until_resubmitted_by_name(
    emulators, tmp_path: Path
) -> None:
    emu = emulators["runway"]
    emu.inject("submit", "500")
    with pytest.raises(AmbiguousSubmitError) as first:
        await generate_video("ann", "runway", REQUEST, output_dir=str(tmp_path))
    message = str(first.value)
    assert "runway offers no way to look it up" in message
    assert "It stays UNKNOWN and is never sent again on its own" in message
    job, _ = _job("runway")
    assert f"`sceneflow jobs resubmit {job.id}` sends it again" in message
    # A plain re-run asks again and pays for nothing.
    with pytest.raises(AmbiguousSubmitError, match="runway offers no way to look it up"):
        await generate_video("ann", "runway", REQUEST, output_dir=str(tmp_path))
    job, attempts = _job("runway")
    assert job.status == JobStatus.UNKNOWN and emu.submissions == 0
    assert attempts == [("submit", "error"), ("lookup", "error"), ("lookup", "error")]
    # The user's explicit choice for this one job sends it again, once.
    ledger.allow_resubmit(job.id, "asked for in the test")
    result = await generate_video("ann", "runway", REQUEST, output_dir=str(tmp_path))
    assert result.status == JobStatus.COMPLETED and emu.submissions == 1


def _details(job_id: str, operation: str) -> list[str]:
    with session_scope() as session:
        rows = session.exec(
            select(store.GenerationAttempt)
            .where(store.GenerationAttempt.job_id == job_id)
            .where(store.GenerationAttempt.operation == operation)
            .order_by(col(store.GenerationAttempt.id))
        ).all()
        return [r.detail for r in rows]


class _LookupRefused(ScriptedAdapter):
    """The submit's reply is lost, then the provider refuses the key for the lookup."""

    key = "replicate"

    async def submit(self, request: StandardVideoRequest, credentials: Any, **_: Any) -> str:
        raise AmbiguousSubmitError("replicate: the reply was lost (ReadTimeout)", provider=self.key)

    async def find_submitted(self, request: Any, credentials: Any, **_: Any) -> Any:
        raise AuthError(
            "replicate answered HTTP 401: bad token", provider=self.key, status_code=401
        )


async def test_a_failed_lookup_keeps_the_job_unknown_so_no_rerun_pays_again(sceneflow_env) -> None:
    with session_scope() as session:
        store.put_credentials(
            session=session, user_id="ann", provider="replicate", credentials={"api_key": "k"}
        )
    ref = ledger.prepare_job(user_id="ann", provider="replicate", request=REQUEST)
    with pytest.raises(AmbiguousSubmitError, match="asking replicate for it failed") as e:
        await submit.submit_job(_LookupRefused(), ref.job_id, Credentials({}), user_id="ann")
    assert isinstance(e.value.__cause__, AuthError)
    job, attempts = _job("replicate")
    assert job.status == JobStatus.UNKNOWN  # FAILED would make a re-run submit anew
    assert attempts == [("submit", "error"), ("lookup", "error")]
    with session_scope() as session:
        config = store.get_config(session=session, user_id="ann", provider="replicate")
        assert config is not None and config.is_valid is False  # the 401 still counts
    again = ledger.prepare_job(user_id="ann", provider="replicate", request=REQUEST)
    assert again.generation == ref.generation  # not restarted
