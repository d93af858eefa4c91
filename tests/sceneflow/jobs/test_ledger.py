"""The ledger, the only writer of job rows: plain functions over the database, no Prefect."""

from __future__ import annotations

import pytest
from sqlmodel import select

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, TransientError
from sceneflow.jobs import ledger
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult

pytestmark = pytest.mark.usefixtures("database_url")

REQUEST = StandardVideoRequest(prompt="A red kite", aspect_ratio="16:9", motion_intensity=4)


def _job(**changes: object) -> str:
    ref = ledger.prepare_job(user_id="ann", provider="runway", request=REQUEST, row_id="kite")
    if changes:
        with session_scope() as session:
            store.update_job(session=session, job_id=ref.job_id, **changes)
    return ref.job_id


def test_the_summary_is_typed_and_holds_the_request() -> None:
    job_id = _job()
    summary = ledger.summarize(job_id)
    assert summary.status is JobStatus.QUEUED and summary.attempts == 0
    assert summary.request["prompt"] == "A red kite"


def test_a_status_write_never_stores_a_signature_and_logs_a_change_once() -> None:
    job_id = _job(provider_job_id="task-1")
    done = StandardVideoResult(
        status=JobStatus.PROCESSING, progress=40, video_url="https://cdn/x.mp4?X-Amz-Signature=S"
    )
    ledger.record_status(job_id, done, changed=True)
    ledger.record_status(job_id, done, changed=False)
    with session_scope() as session:
        job = ledger.load_job(session, job_id)
        attempts = session.exec(
            store.select(store.GenerationAttempt).where(store.GenerationAttempt.job_id == job_id)
        ).all()
        assert (job.status, job.progress, job.video_url) == ("PROCESSING", 40, "https://cdn/x.mp4")
        assert [a.detail for a in attempts] == ["PROCESSING 40%"]


def test_sending_is_stamped_once_and_never_twice_for_a_job_with_a_provider_id() -> None:
    job_id = _job()
    job, send = ledger.mark_sending(job_id)
    assert send and job.attempts == 1 and job.submitted_at is not None
    ledger.accept_submission(job_id, "task-7")
    job, send = ledger.mark_sending(job_id)
    assert not send and job.attempts == 1 and job.provider_job_id == "task-7"


def test_an_unknown_submit_is_never_sent_again() -> None:
    job_id = _job(status=JobStatus.UNKNOWN.value)
    assert ledger.mark_sending(job_id)[1] is False


def test_settling_a_running_job_on_a_transient_error_keeps_it_resumable() -> None:
    job_id = _job(provider_job_id="task-1", status=JobStatus.PROCESSING.value)
    assert ledger.settle(job_id, TransientError("502", provider="runway"), "ann") == "PROCESSING"
    summary = ledger.summarize(job_id)
    assert summary.status is JobStatus.PROCESSING
    assert summary.error == "stopped while the job ran (502); a re-run resumes it"


def test_settling_a_bug_before_the_provider_has_the_job_fails_it() -> None:
    job_id = _job()
    assert ledger.settle(job_id, ValueError("boom"), "ann") == "FAILED"
    summary = ledger.summarize(job_id)
    assert (summary.status, summary.error) == (JobStatus.FAILED, "ValueError: boom")


def test_a_rejected_key_ends_the_job_and_marks_the_key_invalid() -> None:
    with session_scope() as session:
        store.put_credentials(
            session=session, user_id="ann", provider="runway", credentials={"api_key": "k" * 12}
        )
    job_id = _job()
    ledger.end_job(job_id, JobStatus.FAILED, AuthError("401", provider="runway"), "ann")
    with session_scope() as session:
        config = store.get_config(session=session, user_id="ann", provider="runway")
        assert config is not None and config.is_valid is False
    assert ledger.summarize(job_id).finished_at is not None


def test_a_bug_while_the_send_is_out_leaves_the_job_unknown_never_failed() -> None:
    job_id = _job()
    ledger.mark_sending(job_id)
    assert ledger.settle(job_id, KeyError("id"), "ann") == "UNKNOWN"


def test_an_interrupted_send_stays_submitting_so_the_next_run_looks_it_up() -> None:
    import asyncio

    job_id = _job()
    ledger.mark_sending(job_id)
    assert ledger.settle(job_id, asyncio.CancelledError(), "ann") == "SUBMITTING"
    assert ledger.summarize(job_id).error == "interrupted; a re-run resumes it"


def test_an_illegal_move_is_a_bug() -> None:
    job_id = _job()
    with pytest.raises(ledger.IllegalTransition, match="QUEUED -> COMPLETED is not a legal move"):
        ledger.complete_job(job_id, "/out/a.mp4")


def test_only_one_run_holds_a_job_and_a_dead_local_run_is_taken_over() -> None:
    job_id = _job()
    assert ledger.claim(job_id, "elsewhere:1:a") is None
    assert ledger.claim(job_id, "elsewhere:2:b") == "elsewhere:1:a"
    ledger.release(job_id, "elsewhere:1:a")
    import socket

    dead = f"{socket.gethostname()}:999999999:c"  # no such pid on this machine
    assert ledger.claim(job_id, dead) is None
    assert ledger.claim(job_id, ledger.run_owner()) is None


def test_a_batch_is_prepared_in_bulk_with_the_same_identities_and_rules() -> None:
    specs = [
        ledger.JobSpec(provider="runway", request=REQUEST, row_id=f"r{n}", row_number=n + 2)
        for n in range(1200)  # more than one IN (...) chunk
    ]
    refs = ledger.prepare_jobs(user_id="ann", batch_id="b1", specs=specs)
    assert len({r.job_id for r in refs}) == 1200
    one = ledger.prepare_job(
        user_id="ann", provider="runway", request=REQUEST, row_id="r7", batch_id="b1", row_number=9
    )
    assert one.job_id == refs[7].job_id
    with session_scope() as session:
        store.update_job(session=session, job_id=refs[0].job_id, status="FAILED")
        store.update_job(session=session, job_id=refs[1].job_id, status="COMPLETED")
        store.update_job(session=session, job_id=refs[2].job_id, status="COMPLETED")
    specs[2] = specs[2].model_copy(update={"regenerate": True})
    again = ledger.prepare_jobs(user_id="ann", batch_id="b1", specs=specs)
    assert [r.job_id for r in again] == [r.job_id for r in refs]
    assert [(r.status, r.generation) for r in again[:4]] == [
        ("QUEUED", 1),  # failed: starts anew
        ("COMPLETED", 0),  # completed: reused
        ("QUEUED", 1),  # completed, regenerated by name
        ("QUEUED", 0),
    ]
    other = ledger.prepare_jobs(user_id="ann", batch_id="b2", specs=specs[:3])
    assert not {r.job_id for r in other} & {r.job_id for r in refs}  # batches never share jobs


def test_a_batch_s_rows_are_found_without_preparing_them_and_summarized_in_bulk() -> None:
    # An interrupted batch reports the rows whose groups never started from what earlier runs
    # left: found by the same identity prepare_jobs uses, and nothing written.
    specs = [
        ledger.JobSpec(provider="runway", request=REQUEST, row_id=f"r{n}", row_number=n + 2)
        for n in range(1100)
    ]
    refs = ledger.prepare_jobs(user_id="ann", batch_id="b1", specs=specs[:600])
    with session_scope() as session:
        store.update_job(session=session, job_id=refs[5].job_id, status="COMPLETED")
    found = ledger.find_jobs(user_id="ann", batch_id="b1", specs=specs)
    assert [f.job_id if f else None for f in found[:600]] == [r.job_id for r in refs]
    assert found[600:] == [None] * 500
    assert found[5] is not None and found[5].status is JobStatus.COMPLETED
    assert ledger.find_jobs(user_id="ann", batch_id="b2", specs=specs[:3]) == [None] * 3
    with session_scope() as session:
        assert len(list(session.exec(select(store.GenerationJob)))) == 600

    summaries = ledger.summarize_many([r.job_id for r in refs])
    assert set(summaries) == {r.job_id for r in refs}  # more than one IN (...) chunk
    assert summaries[refs[5].job_id] == ledger.summarize(refs[5].job_id)
