"""`submit.submit_job` calls the adapter's `prepare` right before the send, as a batch's rows
are sent: a fal endpoint outside the built-in table has its schema read, its unmapped fields
reported in the run's log, and a value the schema refuses ends the job FAILED with nothing
sent. A job whose prepare failed is never UNKNOWN: nothing can have reached the provider."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from adapters import fal
from adapters.fal import FalAdapter
from sceneflow.db import session_scope
from sceneflow.errors import RequestValidationError, TransientError
from sceneflow.jobs import ledger, submit
from sceneflow.models import JobStatus, StandardVideoRequest
from sceneflow.providers import Credentials
from tests.support.emulators._base import serve
from tests.support.emulators.fal import API_KEY, FalEmulator

CREDS = Credentials({"api_key": API_KEY})
RANGES = "fal-ai/acme/range-video"
SCHEMA_PATH = "/api/openapi/queue/openapi.json"
USER = "ann"
RUN = logging.getLogger("tests.run")  # stands in for Prefect's run logger


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | {"model": RANGES} | kw))


@pytest.fixture
def served() -> Iterator[tuple[FalEmulator, str]]:
    fal.SCHEMAS.clear()
    emu = FalEmulator(latency=0.1)
    with serve(emu.app) as url:
        yield emu, url
    fal.SCHEMAS.clear()


def batch_jobs(*requests: StandardVideoRequest) -> list[str]:
    refs = ledger.prepare_jobs(
        user_id=USER,
        batch_id="b1",
        specs=[
            ledger.JobSpec(provider="fal", request=r, row_id=f"r{i}", row_number=i + 2)
            for i, r in enumerate(requests)
        ],
    )
    return [ref.job_id for ref in refs]


def row(job_id: str) -> tuple[JobStatus, int, str | None, str | None]:
    with session_scope() as session:
        job = ledger.load_job(session, job_id)
        return JobStatus(job.status), job.attempts, job.error, job.provider_job_id


async def test_a_schema_models_unmapped_fields_are_logged_once_a_job_and_each_is_sent_once(
    served: tuple[FalEmulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    emu, url = served
    jobs = batch_jobs(req(duration=3, seed=7), req(duration=4, seed=8, negative_prompt="blur"))
    caplog.set_level(logging.WARNING, logger=RUN.name)
    async with FalAdapter(base_url=url, schema_base_url=url) as adapter:
        for job_id in jobs:
            ref = await submit.submit_job(adapter, job_id, CREDS, user_id=USER, logger=RUN)
            assert ref.provider_job_id and ref.status == JobStatus.QUEUED
    where = f"fal model {RANGES} has no equivalent setting; it is not sent"
    logged = [r.getMessage() for r in caplog.records if r.name == RUN.name]
    assert len(logged) == len(set(logged)), "a warning logged twice"
    for job_id, fields in ((jobs[0], ["seed"]), (jobs[1], ["negative_prompt", "seed"])):
        for field in fields:
            assert f"job {job_id}: {field}: {where} (its schema has no input for it)" in logged
    # Each job's lines are what prepare says of the row as it was asked for (the stored row
    # holds every default too; those are not the user's and draw no warning).
    asked = (req(duration=3, seed=7), req(duration=4, seed=8, negative_prompt="blur"))
    for job_id, request in zip(jobs, asked, strict=True):
        async with FalAdapter(base_url=url, schema_base_url=url) as adapter:
            said = await adapter.prepare(request, CREDS)
        assert [line for line in logged if line.startswith(f"job {job_id}: ")] == [
            f"job {job_id}: {w}" for w in said
        ]
    assert emu.submissions == 2
    assert [e["json"] for e in emu.log if e["path"] == f"/{RANGES}"] == [
        {"prompt": "A red fox", "duration": 3, "fps": 24},
        {"prompt": "A red fox", "duration": 4, "fps": 24},
    ]
    # One schema read for the batch, not one a row.
    assert len([e for e in emu.log if e["path"] == SCHEMA_PATH]) == 1


async def test_a_value_the_schema_refuses_fails_the_job_with_nothing_sent(
    served: tuple[FalEmulator, str],
) -> None:
    emu, url = served
    (job_id,) = batch_jobs(req(duration=13))
    async with FalAdapter(base_url=url, schema_base_url=url) as adapter:
        # validate() alone could not tell: the schema is unread until prepare reads it.
        assert adapter.validate(req(duration=13))[0].startswith(f"model: fal model {RANGES}")
        with pytest.raises(RequestValidationError) as exc:
            await submit.submit_job(adapter, job_id, CREDS, user_id=USER, logger=RUN)
    assert exc.value.problems == [
        f"duration: fal model {RANGES} takes whole numbers from 2 to 12 in its input "
        "'duration'; got 13"
    ]
    # Back to QUEUED with no send counted, so the failure policy ends it FAILED, not UNKNOWN.
    assert row(job_id) == (JobStatus.QUEUED, 0, str(exc.value), None)
    assert ledger.settle(job_id, exc.value, USER) == JobStatus.FAILED
    assert row(job_id) == (JobStatus.FAILED, 0, str(exc.value), None)
    assert emu.submissions == 0


async def test_a_schema_that_cannot_be_read_leaves_the_job_to_be_sent_by_the_retry(
    served: tuple[FalEmulator, str],
) -> None:
    emu, url = served
    (job_id,) = batch_jobs(req(duration=3))
    async with FalAdapter(base_url=url, schema_base_url="http://127.0.0.1:9") as adapter:
        with pytest.raises(TransientError):
            await submit.submit_job(adapter, job_id, CREDS, user_id=USER, logger=RUN)
    assert row(job_id)[:2] == (JobStatus.QUEUED, 0)
    async with FalAdapter(base_url=url, schema_base_url=url) as adapter:
        ref = await submit.submit_job(adapter, job_id, CREDS, user_id=USER, logger=RUN)
    assert ref.provider_job_id and row(job_id)[1] == 1 and emu.submissions == 1


async def test_a_bug_in_prepare_is_not_taken_for_a_send_that_may_be_out(
    served: tuple[FalEmulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, url = served
    (job_id,) = batch_jobs(req(duration=3))

    async def broken(self: FalAdapter, request: Any, credentials: Any = None) -> list[str]:
        raise KeyError("input")

    monkeypatch.setattr(FalAdapter, "prepare", broken)
    async with FalAdapter(base_url=url, schema_base_url=url) as adapter:
        with pytest.raises(KeyError) as exc:
            await submit.submit_job(adapter, job_id, CREDS, user_id=USER, logger=RUN)
    assert ledger.settle(job_id, exc.value, USER) == JobStatus.FAILED
    assert emu.submissions == 0


def test_a_sceneflow_error_while_submitting_ends_failed_not_unknown() -> None:
    """The ledger's half: an error SceneFlow raised itself while the job is SUBMITTING (before
    any byte left) is FAILED by `settle`; only a lost reply or a bug mid-send is UNKNOWN."""
    (job_id,) = batch_jobs(req())
    job, send = ledger.mark_sending(job_id)
    assert send and job.status == JobStatus.SUBMITTING
    refused = RequestValidationError(["duration: out of range"], provider="fal")
    assert ledger.settle(job_id, refused, USER) == JobStatus.FAILED
    assert row(job_id)[0] == JobStatus.FAILED


async def test_prepare_hears_only_the_fields_the_row_set_not_every_stored_default() -> None:
    """A job row stores every field; read back, each would count as set and warn on every row
    ("fps not supported", "quality not supported") though the CSV never named them."""
    seen: list[set[str]] = []

    class Recording(FalAdapter):
        async def prepare(
            self, request: StandardVideoRequest, credentials: Any = None
        ) -> list[str]:
            seen.append(set(request.model_fields_set))
            return []

        async def submit(self, request: StandardVideoRequest, credentials: Any, **kw: Any) -> str:
            return "req-1"

    (job_id,) = batch_jobs(req(model="fal-ai/veo3", seed=7))
    await submit.submit_job(Recording(), job_id, CREDS, user_id=USER, logger=RUN)
    assert seen == [{"prompt", "aspect_ratio", "motion_intensity", "model", "seed"}]
