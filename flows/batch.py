"""generate_batch: a prompt CSV fanned out in parallel, bounded per provider."""

from __future__ import annotations

import asyncio
import ssl

import httpx
from prefect import flow, get_run_logger

from adapters import Provider, get_adapter
from adapters.base import HttpAdapter
from flows.steps import limit_tags, run_group
from sceneflow import batches, storage
from sceneflow.batches import BatchSummary, ResultRecord
from sceneflow.errors import SceneFlowError
from sceneflow.jobs import ledger
from sceneflow.jobs.lanes import LaneJob, LaneWork, lane_size
from sceneflow.jobs.ledger import JobRef
from sceneflow.jobs.poll import deadlines_for
from sceneflow.models import JobStatus
from sceneflow.prompts import PromptBatch, PromptRow
from sceneflow.providers import Credentials
from sceneflow.tables import utcnow
from tasks.batch import Progress, read_prompts, write_results
from tasks.credentials import load_credentials
from tasks.record import finish_job

# After an interrupt the artifacts are worth a few seconds, not the user's wait on a dead API.
ARTIFACTS_SECONDS = 10.0


@flow(name="generate-batch", flow_run_name="generate-batch[{provider}]")
async def generate_batch(
    csv_path: str,
    user_id: str,
    provider: Provider = Provider.LOCAL,
    output_dir: str = "outputs",
    max_concurrency: int = 4,
    deadline_seconds: float | None = None,
    batch_id: str | None = None,
    regenerate: list[str] | None = None,
    resubmit_unknown: bool = False,
    strict: bool = False,
) -> BatchSummary:
    """Generate a video for every valid row of a prompt CSV and write results.csv.

    Args:
        csv_path: Path or fsspec URL of the prompt CSV (columns: the request fields, plus
            optional id, provider and model).
        user_id: Whose stored credentials to use.
        provider: Default provider for rows without a provider column.
        output_dir: Folder or fsspec URL for the videos and results.csv.
        max_concurrency: Jobs in flight at once, per provider.
        deadline_seconds: Give up on a job (and cancel it) once it has run this many seconds;
            default per provider. Time in the provider's queue has its own limit.
        batch_id: The batch's identity; by default made from the user and the CSV's location,
            so a re-run of the same CSV resumes it and another CSV never shares its jobs.
        regenerate: Row ids to generate anew even if they completed (each is paid again).
        resubmit_unknown: Send again every row whose submit reply was lost and that the
            provider cannot be asked about (UNKNOWN); one of them may then be paid twice.
        strict: A row the provider would run without a field it sets is an invalid row, not
            a warning; nothing is sent for it.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    logger = get_run_logger()
    batch_id = batch_id or batches.batch_id_for(csv_path, user_id)
    batches.claim_output_folder(output_dir, batch_id)
    again = set(regenerate or ())
    batch = read_prompts(csv_path, Provider(provider).value, strict)
    providers = sorted({row.provider for row in batch.rows})
    credentials: dict[str, Credentials | SceneFlowError] = {}
    for key in providers:
        try:
            credentials[key] = await load_credentials(user_id, key)
        except SceneFlowError as e:
            logger.error("%s rows cannot run: %s", key, e)
            credentials[key] = e
    limits = await limit_tags(providers)
    tls = httpx.create_ssl_context()  # the CA bundle, loaded once for every client, not per client
    since = utcnow()
    # A group in flight holds one of its provider's C lanes: an adapter, its client of its own.
    clients: list[httpx.AsyncClient] = []
    free: dict[str, asyncio.Queue[LaneWork]] = {}
    for key in providers:
        deadlines = deadlines_for(key, get_adapter(key).capabilities(), deadline_seconds)
        warned: set[str] = set()  # the warnings said once for all of the provider's rows
        free[key] = asyncio.Queue()
        for _ in range(max_concurrency):
            clients.append(client := _client(tls))
            lane = LaneWork(
                adapter=get_adapter(key, client=client),
                credentials=credentials[key],
                user_id=user_id,
                output_dir=output_dir,
                deadlines=deadlines,
                warned=warned,
            )
            free[key].put_nowait(lane)
    progress = Progress(len(batch.rows) + len(batch.problems))
    await progress.start(batch_id, already_done=len(batch.problems))
    rows = _Rows(
        batch.rows,
        progress,
        user_id=user_id,
        batch_id=batch_id,
        regenerate=again,
        resubmit_unknown=resubmit_unknown,
    )

    async def run(key: str, group: list[PromptRow]) -> None:
        lane = await free[key].get()
        try:
            await rows.admit(key, group[0].row_number)
            jobs = rows.prepare(group)
            label = f"{key} rows {group[0].row_number}-{group[-1].row_number}"
            done = await run_group(
                jobs, lane, label=label, since=since, limits=limits[key], hooks=rows
            )
        finally:
            rows.begin(group[0].row_number)
            free[key].put_nowait(lane)
        for job, ref in zip(jobs, done, strict=True):
            await rows.finished(job, ref)  # a cached group never ran its hooks

    running = [
        asyncio.ensure_future(run(key, group))
        for key in providers
        for group in _groups([row for row in batch.rows if row.provider == key], max_concurrency)
    ]
    try:
        await asyncio.gather(*running)
    except asyncio.CancelledError:
        # Ctrl-C in the CLI cancels this flow's task. gather has cancelled every group still
        # waiting or running; each settled its job in flight in the ledger.
        await _interrupted(batch, rows, output_dir, batch_id)
        raise
    finally:
        for running_group in running:
            running_group.cancel()  # a group that failed must not leave its siblings running
        for client in clients:
            await client.aclose()
    await progress.tick(final=True)
    records = [batches.invalid_record(p) for p in batch.problems] + rows.records()
    summary = await write_results(records, output_dir, batch_id)
    logger.info(
        "batch %s: %d completed, %d failed, %d invalid; results in %s, gallery in %s",
        batch_id,
        summary.completed,
        summary.failed,
        summary.invalid,
        summary.results_csv,
        summary.gallery,
    )
    return summary


# A lane runs one request at a time, so it has a client of its own with one connection: httpcore
# looks at every idle connection of a pool (a getpeername and a poll each) on every request, so
# a pool shared by lanes costs O(its size) a request. Pools of 8 still spent about a tenth of the
# flow's CPU there at C=50 (issue 10).
def _client(tls: ssl.SSLContext) -> httpx.AsyncClient:
    one = httpx.Limits(
        max_connections=1,
        max_keepalive_connections=1,
        keepalive_expiry=HttpAdapter.keepalive_expiry,
    )
    return httpx.AsyncClient(timeout=HttpAdapter.timeout, limits=one, verify=tls)


def _groups(rows: list[PromptRow], concurrency: int) -> list[list[PromptRow]]:
    size = lane_size(len(rows), concurrency)
    return [rows[i : i + size] for i in range(0, len(rows), size)]


# Groups at once between taking their lane and their first job's start. Starting a group (its
# rows into the ledger, its Prefect task run) is work on the one event loop; when all C lanes
# started at once, the first submit of a 100,000-row batch at C=200 waited for most of the 200
# start-ups (issue 10). Admitted a few at a time, the first group sends while the rest start.
STARTING = 8


class _Rows:
    """The batch's rows and their jobs: each group's rows are prepared in the ledger when the
    group starts, which started, and each one's record once it ended (the RowHooks a group
    calls). Recording a row emits its event and ticks the progress.

    Preparing every row before the first submit held a 100,000-row batch's first submit for
    about 7 s (issue 10); a group's rows take a few milliseconds, and a row that never started
    has nothing to resume."""

    def __init__(
        self,
        rows: list[PromptRow],
        progress: Progress,
        *,
        user_id: str,
        batch_id: str,
        regenerate: set[str],
        resubmit_unknown: bool,
    ) -> None:
        self.all = rows
        self.progress = progress
        self.user_id = user_id
        self.batch_id = batch_id
        self.regenerate = regenerate
        self.resubmit_unknown = resubmit_unknown
        self.rows: dict[str, PromptRow] = {}  # by job id, once prepared
        self.refs: dict[int, JobRef] = {}  # by row number, once prepared
        self.begun: set[str] = set()
        self.ended: dict[str, ResultRecord] = {}
        # Each provider's own: one provider's groups waiting for its Prefect tag limit must not
        # hold up another's.
        self.starting: dict[str, asyncio.Semaphore] = {}
        self.admitted: dict[int, str] = {}  # groups starting, by their first row's number
        self.group_of: dict[str, int] = {}  # each prepared job's group, by its first row's number

    def spec(self, row: PromptRow) -> ledger.JobSpec:
        return ledger.JobSpec(
            provider=row.provider,
            request=row.request,
            row_id=row.row_id,
            occurrence=row.occurrence,
            row_number=row.row_number,
            regenerate=row.row_id in self.regenerate,
        )

    def prepare(self, group: list[PromptRow]) -> list[LaneJob]:
        """The group's jobs, each row's found or made in the ledger in one transaction."""
        refs = ledger.prepare_jobs(
            user_id=self.user_id, batch_id=self.batch_id, specs=[self.spec(r) for r in group]
        )
        jobs = []
        for row, ref in zip(group, refs, strict=True):
            if self.resubmit_unknown and ref.status == JobStatus.UNKNOWN:
                ledger.allow_resubmit(ref.job_id, "sent again: asked for with resubmit_unknown")
            self.rows[ref.job_id] = row
            self.refs[row.row_number] = ref
            self.group_of[ref.job_id] = group[0].row_number
            jobs.append(
                LaneJob(
                    **ref.model_dump(),
                    row_id=row.row_id,
                    expected_duration=row.request.duration,
                )
            )
        return jobs

    async def admit(self, provider: str, group: int) -> None:
        """Wait until fewer than STARTING of the provider's groups are starting; `group` starts."""
        if provider not in self.starting:
            self.starting[provider] = asyncio.Semaphore(STARTING)
        await self.starting[provider].acquire()
        self.admitted[group] = provider

    def begin(self, group: int) -> None:
        """The group's start is over: its first job started, or it ended without one."""
        if (provider := self.admitted.pop(group, None)) is not None:
            self.starting[provider].release()

    async def started(self, job: JobRef) -> None:
        self.begun.add(job.job_id)
        self.begin(self.group_of[job.job_id])

    async def finished(self, job: JobRef, done: JobRef | None) -> None:
        if job.job_id in self.ended:
            return
        row = self.rows[job.job_id]
        summary = finish_job(
            job.job_id,
            user_id=self.user_id,
            batch_id=self.batch_id,
            row_id=row.row_id,
            summary=done.summary if done else None,
        )
        self.ended[job.job_id] = batches.row_record(row, summary, done)
        await self.progress.tick()

    def records(self) -> list[ResultRecord]:
        ended = (self.refs.get(row.row_number) for row in self.all)
        return [self.ended[ref.job_id] for ref in ended if ref and ref.job_id in self.ended]


async def _interrupted(batch: PromptBatch, rows: _Rows, output_dir: str, batch_id: str) -> None:
    """Record every row of an interrupted batch, from the ledger, in results.csv.

    A row that finished keeps its record; one that was in flight keeps its status and job ids
    (its error says a re-run resumes it); one that never started says so, and one whose group
    never started is looked up, since an earlier run may have completed it. results.csv is
    written first, then the artifacts and the gallery, if the API still answers in time."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # the bookkeeping below must not be cancelled by the same request
    unprepared = [row for row in batch.rows if row.row_number not in rows.refs]
    found = ledger.find_jobs(
        user_id=rows.user_id, batch_id=batch_id, specs=[rows.spec(r) for r in unprepared]
    )
    job_ids = {number: ref.job_id for number, ref in rows.refs.items()}
    job_ids |= {r.row_number: job.job_id for r, job in zip(unprepared, found, strict=True) if job}
    summaries = {job.job_id: job for job in found if job}
    summaries |= ledger.summarize_many(
        [ref.job_id for ref in rows.refs.values() if ref.job_id not in rows.ended]
    )
    not_started = "not started: the batch was interrupted; a re-run runs it"
    records = [batches.invalid_record(p) for p in batch.problems]
    for row in batch.rows:
        job_id = job_ids.get(row.row_number)
        if job_id in rows.ended:
            records.append(rows.ended[job_id])
            continue
        if job_id is None:
            records.append(batches.unstarted_record(row, not_started))
            continue
        record = batches.row_record(row, summaries[job_id])
        if job_id not in rows.begun and record.status != JobStatus.COMPLETED:
            record = record.model_copy(update={"error": not_started})
        records.append(record)
    storage.write_text(f"{output_dir.rstrip('/')}/results.csv", batches.results_csv(records))
    try:
        await asyncio.wait_for(write_results(records, output_dir, batch_id), ARTIFACTS_SECONDS)
    except Exception as e:  # results.csv is written; the rest may fail
        get_run_logger().warning(
            "batch %s: artifacts not written after an interrupt: %s", batch_id, e
        )
