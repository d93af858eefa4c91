"""Lanes: one job in flight at a time, the jobs of a group one after another.

A provider's concurrency limit C is a number of jobs in flight, so a batch runs C lanes per
provider and each lane takes its jobs in turn: claim, submit, wait, download (`run_job`). One
Prefect task run per lane-group, not three per job, is what keeps orchestration close to free
(docs/architecture.md, "Task runs"); a tag concurrency limit on those task runs still caps the
provider's jobs in flight across workers, because each one runs a single job at a time.

Every job of a group ends in the ledger (`ledger.settle` is the one failure policy), and the
group goes on to its next job whatever one job hit. The errors worth trying again (a submit
refused by a 503, a download cut off) are not settled while a retry is left: the group reports
one of them (`LaneResult.retry`, its jobs in `LaneResult.pending`) so Prefect's retry machinery
runs the group again, and the retry resumes only those jobs, from where the ledger has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sceneflow.errors import RateLimitedError, SceneFlowError, is_retryable
from sceneflow.jobs import download, ledger, poll, submit
from sceneflow.jobs.ledger import JobRef
from sceneflow.jobs.poll import Deadlines
from sceneflow.providers import Credentials, VideoAdapter

__all__ = ["LaneJob", "LaneResult", "LaneWork", "RowHooks", "lane_size", "run_job", "run_lane"]

Logger = logging.Logger | logging.LoggerAdapter[Any]

# A task run costs the same whatever it carries, and under load far more than its few events: on
# the ephemeral API each wave of group starts waited seconds for Prefect's tag-concurrency check
# (issue 10; docs/architecture.md, "Task runs"). So a lane runs as few groups as it can: one,
# until groups would pass MAX_GROUP jobs; then every lane runs the same number of them.
MAX_GROUP = 50


def lane_size(rows: int, concurrency: int) -> int:
    """Jobs per group for `rows` jobs of one provider run `concurrency` at a time: the fewest
    equal rounds of `concurrency` groups, none larger than MAX_GROUP."""
    lanes = max(concurrency, 1)
    rounds = max(1, -(-rows // (lanes * MAX_GROUP)))
    return max(1, -(-rows // (lanes * rounds)))


class RowHooks(Protocol):
    """What the caller hears as a lane works: a job started, a job ended (with what its
    download returned, or None)."""

    async def started(self, job: JobRef) -> None: ...

    async def finished(self, job: JobRef, done: JobRef | None) -> None: ...


@dataclass(frozen=True)
class LaneWork:
    """What every job of a group shares: the adapter, the opened credentials (or why they could
    not be opened), whose jobs they are, where the videos go and the deadlines."""

    adapter: VideoAdapter
    credentials: Credentials | SceneFlowError
    user_id: str
    output_dir: str
    deadlines: Deadlines
    owner: str = field(default_factory=ledger.run_owner)
    # The warnings already logged, shared by every group of one provider in a batch.
    warned: set[str] = field(default_factory=set)


class LaneJob(JobRef):
    """A prepared job, the CSV row id its video is named after and, where the caller knows
    it, the duration its request asked for (which the download checks the video against)."""

    row_id: str | None = None
    expected_duration: float | None = None


@dataclass
class LaneResult:
    done: list[JobRef | None]
    # A transient error a retry of the group would resolve, and the jobs (not settled yet)
    # that the retry runs again.
    retry: SceneFlowError | None = None
    pending: list[str] = field(default_factory=list)
    # Why each job that did not complete ended, for a caller that runs a single job.
    errors: dict[str, BaseException] = field(default_factory=dict)


async def run_job(job: LaneJob, work: LaneWork, *, logger: Logger) -> JobRef:
    """Take one prepared job to a verified video. Only the run that holds the job's claim works
    on it; another run of the same batch waits for it."""
    if isinstance(work.credentials, SceneFlowError):
        raise work.credentials
    claimed = await ledger.hold(job.job_id, work.owner, logger=logger)
    released = False
    try:
        sent = await submit.submit_job(
            work.adapter,
            job.job_id,
            work.credentials,
            user_id=work.user_id,
            logger=logger,
            warned=work.warned,
        )
        result = await poll.wait_for_job(
            work.adapter,
            sent.job_id,
            work.credentials,
            user_id=work.user_id,
            deadlines=work.deadlines.restarted(),
            owner=work.owner,
            claimed_at=claimed,
            sent=sent,
            logger=logger,
        )
        done = await download.download_job(
            work.adapter,
            sent.job_id,
            result,
            work.credentials,
            output_dir=work.output_dir,
            row_id=job.row_id,
            owner=work.owner,
            expected_duration=job.expected_duration,
            logger=logger,
        )
        released = True  # by the completion itself, in its transaction
        return done
    finally:
        if not released:
            ledger.release(job.job_id, work.owner)


def _retry_first(errors: list[SceneFlowError]) -> SceneFlowError | None:
    # A rate limit goes first: the retry condition then waits at least its Retry-After.
    limited = [e for e in errors if isinstance(e, RateLimitedError)]
    return max(limited, key=lambda e: e.retry_after or 0) if limited else next(iter(errors), None)


async def run_lane(
    jobs: Sequence[LaneJob],
    work: LaneWork,
    *,
    retry_left: bool,
    only: Collection[str] | None = None,
    hooks: RowHooks | None = None,
    logger: Logger = ledger.log,
) -> LaneResult:
    """Run the jobs one after another; every one ends in the ledger unless a retry is left for
    a transient error. `only` (on a retry): the job ids the last try left pending."""
    done: list[JobRef | None] = [None] * len(jobs)
    pending: list[SceneFlowError] = []
    pending_ids: list[str] = []
    errors: dict[str, BaseException] = {}
    for i, job in enumerate(jobs):
        if only is not None and job.job_id not in only:
            continue
        if hooks:
            await hooks.started(job)
        try:
            done[i] = await run_job(job, work, logger=logger)
        except (asyncio.CancelledError, KeyboardInterrupt) as e:
            ledger.settle(job.job_id, e, work.user_id)
            raise
        except SceneFlowError as e:
            if retry_left and is_retryable(e):
                logger.warning("job %s: %s; its group tries it again", job.job_id, e)
                pending.append(e)
                pending_ids.append(job.job_id)
                continue
            ledger.settle(job.job_id, e, work.user_id)
            errors[job.job_id] = e
        except Exception as e:  # a bug: this job fails with its reason, the others go on
            logger.error("job %s hit an unexpected error", job.job_id, exc_info=e)
            ledger.settle(job.job_id, e, work.user_id)
            errors[job.job_id] = e
        if hooks:
            await hooks.finished(job, done[i])
    return LaneResult(done=done, retry=_retry_first(pending), pending=pending_ids, errors=errors)
