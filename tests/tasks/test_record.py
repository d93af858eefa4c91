"""The event each finished job emits: named by its CSV row, ids only, never a secret or URL."""

from __future__ import annotations

from typing import Any

import pytest

from sceneflow.jobs.ledger import JobSummary
from sceneflow.models import JobStatus
from tasks import record


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (JobStatus.COMPLETED, "sceneflow.video.completed"),
        (JobStatus.TIMED_OUT, "sceneflow.video.timed_out"),
        (JobStatus.FAILED, "sceneflow.video.failed"),
        (JobStatus.UNKNOWN, "sceneflow.video.failed"),
    ],
)
@pytest.mark.parametrize(("row_id", "name"), [("kite-7", "kite-7"), (None, "j1")])
def test_the_event_names_the_row_and_carries_ids_only(
    monkeypatch: pytest.MonkeyPatch,
    status: JobStatus,
    event: str,
    row_id: str | None,
    name: str,
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(record, "emit_event", lambda **kw: sent.append(kw))
    summary = JobSummary(
        job_id="j1",
        row_number=7,
        provider="runway",
        status=status,
        provider_job_id="task-1",
        progress=100,
        output_path=None,
        error=None,
        attempts=1,
        cost=None,
        request={"prompt": "p"},
        submitted_at=None,
        finished_at=None,
    )
    record.emit_job_event(summary, user_id="ann", batch_id="b1", row_id=row_id)
    [one] = sent
    assert one["event"] == event
    assert one["resource"]["prefect.resource.name"] == name
    assert set(one["payload"]) == {
        "job_id",
        "user_id",
        "provider",
        "batch_id",
        "status",
        "provider_job_id",
        "error",
    }
