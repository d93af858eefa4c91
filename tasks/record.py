"""Close out a job: one summary line in the run log and a Prefect event for Automations."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from sceneflow.jobs import ledger
from sceneflow.jobs.ledger import JobSummary
from sceneflow.models import JobStatus

_EVENTS = {
    JobStatus.COMPLETED: "sceneflow.video.completed",
    JobStatus.TIMED_OUT: "sceneflow.video.timed_out",
}


def emit_job_event(
    summary: JobSummary, *, user_id: str, batch_id: str | None, row_id: str | None = None
) -> None:
    """`sceneflow.video.completed`, `.failed` or `.timed_out`: ids only, no secrets, no URLs.
    The resource is named by the CSV row's id where there is one, so Automations can match it."""
    emit_event(
        event=_EVENTS.get(summary.status, "sceneflow.video.failed"),
        resource={
            "prefect.resource.id": f"sceneflow.job.{summary.job_id}",
            "prefect.resource.name": row_id or summary.job_id,
            "sceneflow.provider": summary.provider,
            "sceneflow.user": user_id,
        },
        payload={
            "job_id": summary.job_id,
            "user_id": user_id,
            "provider": summary.provider,
            "batch_id": batch_id,
            "status": summary.status.value,
            "provider_job_id": summary.provider_job_id,
            "error": summary.error,
        },
    )


def finish_job(
    job_id: str,
    *,
    user_id: str,
    batch_id: str | None = None,
    row_id: str | None = None,
    summary: JobSummary | None = None,
) -> JobSummary:
    """Announce a job's final state; returns its summary (no secrets). `summary`: the row as
    the job's last move wrote it, when the caller has it; else it is read."""
    summary = summary or ledger.summarize(job_id)
    emit_job_event(summary, user_id=user_id, batch_id=batch_id, row_id=row_id)
    return summary


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="record[{job_id}]")
def record_outcome(job_id: str, user_id: str, batch_id: str | None = None) -> JobSummary:
    """Write the job's outcome to the run log and emit its event."""
    summary = finish_job(job_id, user_id=user_id, batch_id=batch_id)
    get_run_logger().info(
        "job %s (%s): %s%s",
        job_id,
        summary.provider,
        summary.status.value,
        f" - {summary.error}" if summary.error else "",
    )
    return summary
