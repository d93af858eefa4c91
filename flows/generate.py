"""generate_video: one request, one Prefect flow; the job runs as a group of one."""

from __future__ import annotations

from prefect import flow

from adapters import Provider, get_adapter
from flows.steps import limit_tags, run_group
from sceneflow.errors import SceneFlowError
from sceneflow.jobs import ledger
from sceneflow.jobs.lanes import LaneJob, LaneWork
from sceneflow.jobs.poll import deadlines_for
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.tables import utcnow
from tasks.credentials import load_credentials
from tasks.generation import validate_request
from tasks.record import record_outcome


@flow(name="generate-video", flow_run_name="generate-video[{provider}]")
async def generate_video(
    user_id: str,
    provider: Provider,
    request: StandardVideoRequest,
    output_dir: str = "outputs",
    force: bool = False,
    deadline_seconds: float | None = None,
    strict: bool = False,
) -> StandardVideoResult:
    """Generate one video: validate, load credentials, submit, wait, download, record.

    Args:
        user_id: Whose stored credentials to use. Keys are never flow parameters.
        provider: Which provider renders the video.
        request: What to generate.
        output_dir: A folder or an fsspec URL (s3://bucket/prefix) for the video.
        force: Generate this request anew even if it already completed (it is paid again).
        deadline_seconds: Give up (and cancel) once the job has run this many seconds; default
            per provider. Time in the provider's queue has its own limit (README, Configuration).
        strict: Refuse the request, before anything is sent, if the provider would run it
            without a field it sets (a warning otherwise).
    """
    provider_key = Provider(provider).value
    since = utcnow()
    warnings = validate_request(provider_key, request, strict)
    credentials = await load_credentials(user_id, provider_key)
    prepared = ledger.prepare_job(
        user_id=user_id, provider=provider_key, request=request, regenerate=force
    )
    limits = await limit_tags([provider_key])
    adapter = get_adapter(provider_key)
    work = LaneWork(
        adapter=adapter,
        credentials=credentials,
        user_id=user_id,
        output_dir=output_dir,
        deadlines=deadlines_for(provider_key, adapter.capabilities(), deadline_seconds),
    )
    try:
        (job,) = await run_group(
            [LaneJob(**prepared.model_dump(), expected_duration=request.duration)],
            work,
            label=provider_key,
            since=since,
            limits=limits[provider_key],
            raise_error=True,
        )
    except SceneFlowError:
        record_outcome(prepared.job_id, user_id)
        raise
    finally:
        await adapter.aclose()
    assert job is not None  # a job that did not complete raised why, above
    summary = record_outcome(job.job_id, user_id)
    return StandardVideoResult(
        status=JobStatus.COMPLETED,
        provider_job_id=job.provider_job_id,
        progress=100,
        output_path=job.output_path,
        cost=summary.cost,
        provider_details={"job_id": job.job_id, "warnings": warnings, "duration": job.duration},
    )
