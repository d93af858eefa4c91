"""Lanes: a group's jobs run one after another, every job ends in the ledger, and a transient
error is left for the group's retry (Prefect's) instead of failing the job. Plain functions
over the scripted adapter: no Prefect."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from sceneflow import store
from sceneflow.db import get_engine, session_scope
from sceneflow.errors import AmbiguousSubmitError, CredentialsError, TransientError
from sceneflow.jobs import lanes, ledger, poll, submit
from sceneflow.jobs.lanes import LaneJob, LaneWork, lane_size, run_lane
from sceneflow.jobs.ledger import JobRef
from sceneflow.jobs.poll import deadlines_for
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials, Lookup
from tests.support.fakes import SECRET, ScriptedAdapter


def _jobs(n: int) -> list[LaneJob]:
    refs = ledger.prepare_jobs(
        user_id="ann",
        batch_id="b1",
        specs=[
            ledger.JobSpec(
                provider="runway",
                request=StandardVideoRequest(
                    prompt=f"clip {i}", aspect_ratio="16:9", motion_intensity=4
                ),
                row_id=f"r{i}",
                occurrence=1,
                row_number=i + 2,
            )
            for i in range(n)
        ],
    )
    return [LaneJob(**ref.model_dump(), row_id=f"r{i}") for i, ref in enumerate(refs)]


def _work(adapter: ScriptedAdapter, out: Path, credentials: object = None) -> LaneWork:
    return LaneWork(
        adapter=adapter,  # type: ignore[arg-type]
        credentials=credentials or Credentials({"api_key": SECRET}),  # type: ignore[arg-type]
        user_id="ann",
        output_dir=str(out),
        deadlines=deadlines_for("runway", adapter.capabilities()),
    )


def _outcomes(job: LaneJob, operation: str) -> list[str]:
    """The outcomes of the job's logged attempts of `operation`, oldest first."""
    with session_scope() as session:
        return list(
            session.exec(
                select(store.GenerationAttempt.outcome)
                .where(store.GenerationAttempt.job_id == job.job_id)
                .where(store.GenerationAttempt.operation == operation)
                .order_by(col(store.GenerationAttempt.id))
            ).all()
        )


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def started(self, job: JobRef) -> None:
        self.events.append(("started", job.job_id))

    async def finished(self, job: JobRef, done: JobRef | None) -> None:
        self.events.append(("finished", job.job_id))


def _status(job: LaneJob) -> JobStatus:
    return ledger.summarize(job.job_id).status


def test_lane_size_gives_each_lane_as_few_equal_groups_as_it_can() -> None:
    assert lane_size(10, 50) == 1  # fewer rows than lanes: a task run each
    assert lane_size(1_000, 50) == 20  # one group a lane
    assert lane_size(1_010, 50) == 21  # 49 groups: no lane runs two while others idle
    assert lane_size(10_000, 200) == lanes.MAX_GROUP
    assert lane_size(12_000, 200) == 30  # two rounds of 200 groups, not 240 of 50
    assert lane_size(1_000_000, 10) == lanes.MAX_GROUP


async def test_a_lane_runs_its_jobs_in_turn_and_each_ends_completed(tmp_path: Path) -> None:
    ScriptedAdapter.reset()
    jobs, heard = _jobs(3), Heard()
    result = await run_lane(jobs, _work(ScriptedAdapter(), tmp_path), retry_left=True, hooks=heard)
    assert result.retry is None and result.errors == {}
    assert [_status(j) for j in jobs] == [JobStatus.COMPLETED] * 3
    assert all(done and Path(done.output_path or "").is_file() for done in result.done)
    # One job in flight at a time: each ends before the next starts.
    expected = [(what, j.job_id) for j in jobs for what in ("started", "finished")]
    assert heard.events == expected
    assert len(ScriptedAdapter.script.submits) == 3


async def test_a_transient_error_is_left_for_the_retry_and_the_retry_resumes_only_it(
    tmp_path: Path,
) -> None:
    ScriptedAdapter.reset(transient_submit_failures=1)
    jobs = _jobs(3)
    work = _work(ScriptedAdapter(), tmp_path)
    first = await run_lane(jobs, work, retry_left=True)
    assert isinstance(first.retry, TransientError)
    # Not settled: nothing was sent, the job waits for the retry, not FAILED.
    assert [_status(j) for j in jobs] == [
        JobStatus.QUEUED,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
    ]
    heard = Heard()
    assert first.pending == [jobs[0].job_id]
    again = await run_lane(jobs, work, retry_left=True, only=first.pending, hooks=heard)
    assert again.retry is None
    assert [_status(j) for j in jobs] == [JobStatus.COMPLETED] * 3
    assert heard.events == [("started", jobs[0].job_id), ("finished", jobs[0].job_id)]
    assert len(ScriptedAdapter.script.submits) == 3  # one paid job a row


async def test_on_the_last_try_a_transient_error_ends_the_job_by_the_one_policy(
    tmp_path: Path,
) -> None:
    ScriptedAdapter.reset(transient_submit_failures=1)
    jobs = _jobs(2)
    result = await run_lane(jobs, _work(ScriptedAdapter(), tmp_path), retry_left=False)
    assert result.retry is None
    assert _status(jobs[0]) == JobStatus.FAILED and _status(jobs[1]) == JobStatus.COMPLETED
    assert "HTTP 503" in (ledger.summarize(jobs[0].job_id).error or "")
    assert isinstance(result.errors[jobs[0].job_id], TransientError)


async def test_unopened_credentials_fail_every_job_without_a_request(tmp_path: Path) -> None:
    ScriptedAdapter.reset()
    jobs = _jobs(2)
    refused = CredentialsError("the runway key was rejected: run `sceneflow creds test ann runway`")
    result = await run_lane(
        jobs, _work(ScriptedAdapter(), tmp_path, credentials=refused), retry_left=True
    )
    assert [_status(j) for j in jobs] == [JobStatus.FAILED] * 2
    assert set(result.errors) == {j.job_id for j in jobs}
    assert ScriptedAdapter.script.submits == []


async def test_a_bug_in_one_job_fails_it_with_its_reason_and_the_others_go_on(
    tmp_path: Path, monkeypatch: object
) -> None:
    ScriptedAdapter.reset()
    jobs = _jobs(2)
    adapter = ScriptedAdapter()
    real = adapter.download
    calls = 0

    async def broken(*args: object, **kw: object) -> Path:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ZeroDivisionError("a bug")
        return await real(*args, **kw)  # type: ignore[arg-type]

    adapter.download = broken  # type: ignore[method-assign]
    result = await run_lane(jobs, _work(adapter, tmp_path), retry_left=True)
    assert _status(jobs[1]) == JobStatus.COMPLETED
    first = ledger.summarize(jobs[0].job_id)
    assert first.status != JobStatus.COMPLETED and "ZeroDivisionError: a bug" in (first.error or "")
    assert isinstance(result.errors[jobs[0].job_id], ZeroDivisionError)


class LostThenAskable(ScriptedAdapter):
    """A submit whose reply is lost (the job was created), and a lookup that answers 503 the
    first `failing` times."""

    lookups = 0
    failing = 1

    async def submit(
        self, request: StandardVideoRequest, credentials: Credentials, **kw: object
    ) -> str:
        created = await super().submit(request, credentials)
        raise AmbiguousSubmitError(
            f"runway answered HTTP 502 after creating {created}", provider=self.key
        )

    async def find_submitted(self, request: object, credentials: object, **kw: object) -> Lookup:
        type(self).lookups += 1
        if type(self).lookups <= self.failing:
            raise TransientError("runway answered HTTP 503: busy", provider=self.key)
        return Lookup(job_ids=list(self.script.submits), complete=True)


async def test_a_lookup_that_fails_for_a_moment_is_asked_again_in_place(tmp_path: Path) -> None:
    ScriptedAdapter.reset()
    LostThenAskable.lookups, LostThenAskable.failing = 0, 3
    (job,) = _jobs(1)
    result = await run_lane([job], _work(LostThenAskable(), tmp_path), retry_left=True)
    assert result.retry is None and _status(job) == JobStatus.COMPLETED
    assert LostThenAskable.lookups == 4
    assert len(ScriptedAdapter.script.submits) == 1  # found, not sent again
    assert _outcomes(job, "lookup") == ["error", "error", "error", "ok"]


async def test_a_lookup_still_failing_after_its_patience_is_left_to_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "PATIENCE_SECONDS", 0.0)
    ScriptedAdapter.reset()
    LostThenAskable.lookups, LostThenAskable.failing = 0, 1
    (job,) = _jobs(1)
    work = _work(LostThenAskable(), tmp_path)
    first = await run_lane([job], work, retry_left=True)
    assert isinstance(first.retry, TransientError) and first.pending == [job.job_id]
    assert _status(job) == JobStatus.UNKNOWN  # until it is found
    again = await run_lane([job], work, retry_left=True, only=first.pending)
    assert again.retry is None and _status(job) == JobStatus.COMPLETED
    assert len(ScriptedAdapter.script.submits) == 1  # found, not sent again


class LosesReplies(ScriptedAdapter):
    """Every submit's reply is lost before the provider created anything (`lost` times), and
    the lookup's search is complete: each lost send provably never arrived."""

    lost = 0

    async def submit(
        self, request: StandardVideoRequest, credentials: Credentials, **kw: object
    ) -> str:
        if type(self).lost > 0:
            type(self).lost -= 1
            raise AmbiguousSubmitError("runway: reply lost (ReadTimeout)", provider=self.key)
        return await super().submit(request, credentials)

    async def find_submitted(self, request: object, credentials: object, **kw: object) -> Lookup:
        return Lookup(job_ids=[], complete=True)


async def test_each_send_a_complete_search_proves_lost_is_sent_again_once(tmp_path: Path) -> None:
    ScriptedAdapter.reset()
    LosesReplies.lost = submit.MAX_SENDS - 1
    (job,) = _jobs(1)
    result = await run_lane([job], _work(LosesReplies(), tmp_path), retry_left=False)
    assert result.errors == {} and _status(job) == JobStatus.COMPLETED
    assert len(ScriptedAdapter.script.submits) == 1
    with session_scope() as session:
        assert ledger.load_job(session, job.job_id).attempts == submit.MAX_SENDS


async def test_a_job_whose_replies_keep_getting_lost_waits_for_the_user(tmp_path: Path) -> None:
    ScriptedAdapter.reset()
    LosesReplies.lost = submit.MAX_SENDS
    (job,) = _jobs(1)
    result = await run_lane([job], _work(LosesReplies(), tmp_path), retry_left=False)
    assert _status(job) == JobStatus.UNKNOWN and not ScriptedAdapter.script.submits
    message = str(result.errors[job.job_id])
    assert f"sent {submit.MAX_SENDS} times already" in message
    assert f"sceneflow jobs resubmit {job.job_id}" in message


class Warns(ScriptedAdapter):
    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        return ["motion_intensity: runway has no equivalent setting"]


async def test_a_warning_every_row_shares_is_logged_once_a_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ScriptedAdapter.reset()
    jobs = _jobs(3)
    work = _work(Warns(), tmp_path)
    with caplog.at_level("WARNING", logger="sceneflow.jobs"):
        await run_lane(jobs[:2], work, retry_left=False)
        await run_lane(jobs[2:], work, retry_left=False)  # another group of the same batch
    said = [r.getMessage() for r in caplog.records if "no equivalent setting" in r.getMessage()]
    assert said == [
        f"job {jobs[0].job_id}: motion_intensity: runway has no equivalent setting "
        "(said once for this batch's rows)"
    ]
    assert all(_status(job) == JobStatus.COMPLETED for job in jobs)


class ServesAnErrorPageFirst(ScriptedAdapter):
    """The first download is a proxy's error page with a 200, as a real CDN sometimes sends."""

    pages = 0

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        if type(self).pages > 0:
            type(self).pages -= 1
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(b"<html>upstream proxy error")
            return destination
        return await super().download(result, credentials, destination)


async def test_an_unusable_download_is_fetched_again_in_place_never_paid_again(
    tmp_path: Path,
) -> None:
    ScriptedAdapter.reset()
    ServesAnErrorPageFirst.pages = 2
    (job,) = _jobs(1)
    result = await run_lane([job], _work(ServesAnErrorPageFirst(), tmp_path), retry_left=True)
    assert result.retry is None and _status(job) == JobStatus.COMPLETED
    assert len(ScriptedAdapter.script.submits) == 1
    assert _outcomes(job, "download") == ["error", "error", "ok"]


async def test_a_download_unusable_past_its_patience_is_left_to_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "PATIENCE_SECONDS", 0.0)
    ScriptedAdapter.reset()
    ServesAnErrorPageFirst.pages = 1
    (job,) = _jobs(1)
    work = _work(ServesAnErrorPageFirst(), tmp_path)
    first = await run_lane([job], work, retry_left=True)
    assert first.pending == [job.job_id] and "returned an unusable file" in str(first.retry)
    again = await run_lane([job], work, retry_left=True, only=first.pending)
    assert again.retry is None and _status(job) == JobStatus.COMPLETED
    assert len(ScriptedAdapter.script.submits) == 1


async def test_a_download_still_unusable_when_retries_are_spent_is_download_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "PATIENCE_SECONDS", 0.0)
    ScriptedAdapter.reset()
    ServesAnErrorPageFirst.pages = 1
    (job,) = _jobs(1)
    result = await run_lane([job], _work(ServesAnErrorPageFirst(), tmp_path), retry_left=False)
    summary = ledger.summarize(job.job_id)
    assert summary.status == JobStatus.DOWNLOAD_FAILED and job.job_id in result.errors
    assert "returned an unusable file" in (summary.error or "")
    assert "a re-run fetches it again" in (summary.error or "")
    assert not list(tmp_path.glob("*.mp4"))  # no unusable file is left as the row's video


async def test_a_job_costs_the_ledger_one_transaction_a_move_and_no_read_back(
    tmp_path: Path,
) -> None:
    """On SQLite every transaction takes the database's write lock and held the batch's one
    event loop about 0.7 ms (issue 10): a job is claimed, marked sending, accepted, moved per
    status it reports and completed, and nothing it just wrote is read back."""
    ScriptedAdapter.reset()
    (job,) = _jobs(1)
    job = job.model_copy(update={"expected_duration": 5.0})
    begun: list[str] = []
    engine = get_engine()

    def count(conn: object) -> None:
        begun.append("begin")

    event.listen(engine, "begin", count)
    try:
        result = await run_lane([job], _work(ScriptedAdapter(), tmp_path), retry_left=True)
    finally:
        event.remove(engine, "begin", count)
    (done,) = result.done
    assert done is not None and done.summary is not None
    assert done.summary.status == JobStatus.COMPLETED and done.summary.cost == 5
    assert done.summary.output_path == done.output_path
    # claim, sending, accepted, PROCESSING, GENERATED, COMPLETED
    assert len(begun) == 6


async def test_a_completed_job_is_one_info_line_that_names_the_providers_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Each INFO line reaches the Prefect API's log store: a line a row, not one a step.
    ScriptedAdapter.reset()
    (job,) = _jobs(1)
    with caplog.at_level("INFO", logger="sceneflow.jobs"):
        await run_lane([job], _work(ScriptedAdapter(), tmp_path), retry_left=False)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    provider_job_id = ledger.summarize(job.job_id).provider_job_id
    assert len(said) == 1 and said[0].startswith(f"job {job.job_id} (")
    assert f"job {provider_job_id}): saved " in said[0]
