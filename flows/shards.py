"""generate_sharded_batch: one large CSV split over several workers through deployment runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import BaseModel

from adapters import Provider
from sceneflow import prompts, storage
from sceneflow.errors import SceneFlowError
from sceneflow.models import JobStatus
from sceneflow.shards import Shard, merge_results, split_prompts


class ShardRun(BaseModel):
    index: int
    first_row: int
    rows: int
    flow_run_id: str
    state: str
    output_dir: str


class ShardedSummary(BaseModel):
    total: int
    completed: int
    results_csv: str
    output_dir: str
    shards: list[ShardRun]


def _absolute(location: str) -> str:
    """Children may run anywhere, so a local output folder is made absolute here."""
    return location if storage.is_remote(location) else str(Path(location).expanduser().resolve())


@flow(name="generate-sharded-batch", flow_run_name="sharded-batch[{shards}]")
async def generate_sharded_batch(
    csv_path: str,
    user_id: str,
    provider: Provider = Provider.LOCAL,
    output_dir: str = "outputs",
    shards: int = 2,
    max_concurrency: int = 4,
    regenerate: list[str] | None = None,
    deadline_seconds: float | None = None,
    deployment: str = "generate-batch/batch-from-csv",
    shard_timeout_seconds: float = 6 * 3600,
) -> ShardedSummary:
    """Split a prompt CSV into shards, run each shard as its own deployment run so that several
    workers share the work, then gather the shards' results into one results.csv.

    Args:
        csv_path: Path or fsspec URL of the prompt CSV.
        user_id: Whose stored credentials to use.
        provider: Default provider for rows without a provider column.
        output_dir: Folder or fsspec URL reachable by every worker (s3://... across machines).
            Shard CSVs go to shards/, each shard's videos to shard-NNN/, the merged results.csv
            to the folder itself.
        shards: How many shard runs to start (at most one per row).
        max_concurrency: Jobs in flight at once, per provider, within each shard.
        regenerate: Row ids to generate anew even if they completed (each is paid again).
        deadline_seconds: Give up on a job (and cancel it) once it has run this many seconds.
        deployment: The batch deployment that runs each shard.
        shard_timeout_seconds: Stop waiting for a shard after this long.
    """
    logger = get_run_logger()
    output_dir = _absolute(output_dir).rstrip("/")
    pieces = split_prompts(prompts.read_csv_text(csv_path), shards)
    locations = [f"{output_dir}/shards/shard-{s.index:03d}.csv" for s in pieces]
    for shard, location in zip(pieces, locations, strict=True):
        storage.write_text(location, shard.csv_text)
    # The same key on a retry of this run returns the children it already started.
    parent = runtime.flow_run.id or "local"

    async def dispatch(shard: Shard, location: str) -> FlowRun:
        return await run_deployment(  # type: ignore[no-any-return, misc]
            name=deployment,
            parameters={
                "csv_path": location,
                "user_id": user_id,
                "provider": Provider(provider).value,
                "output_dir": f"{output_dir}/shard-{shard.index:03d}",
                "max_concurrency": max_concurrency,
                "regenerate": regenerate,
                "deadline_seconds": deadline_seconds,
            },
            idempotency_key=f"{parent}:shard-{shard.index}",
            timeout=shard_timeout_seconds,
            poll_interval=2,
            tags=["sceneflow-shard"],
        )

    children = await asyncio.gather(
        *(dispatch(s, loc) for s, loc in zip(pieces, locations, strict=True))
    )
    runs, parts, unfinished = [], [], []
    for shard, child in zip(pieces, children, strict=True):
        state = child.state.name if child.state else "UNKNOWN"
        shard_output = f"{output_dir}/shard-{shard.index:03d}"
        runs.append(
            ShardRun(
                index=shard.index,
                first_row=shard.first_row,
                rows=shard.rows,
                flow_run_id=str(child.id),
                state=state,
                output_dir=shard_output,
            )
        )
        results = f"{shard_output}/results.csv"
        if child.state is not None and child.state.is_completed() and storage.exists(results):
            parts.append((shard, storage.read_text(results)))
        else:
            last = shard.first_row + shard.rows - 1
            unfinished.append(f"shard {shard.index} (rows {shard.first_row}-{last}) {state}")
    records, text = merge_results(parts)
    location = storage.write_text(f"{output_dir}/results.csv", text)
    await acreate_table_artifact(
        table=[r.model_dump() for r in runs],
        key="sharded-batch-shards",
        description=f"Shard runs of {csv_path}; merged results in {location}",
    )
    completed = sum(r.status == JobStatus.COMPLETED.value for r in records)
    logger.info("%d of %d shards finished; results in %s", len(parts), len(pieces), location)
    if unfinished:
        raise SceneFlowError(
            f"{len(unfinished)} shard run(s) did not complete: {'; '.join(unfinished)}. Their "
            f"rows are missing from {location}. Run the batch again: rows already done are "
            "reused, not paid for again."
        )
    return ShardedSummary(
        total=sum(s.rows for s in pieces),
        completed=completed,
        results_csv=location,
        output_dir=output_dir,
        shards=runs,
    )
