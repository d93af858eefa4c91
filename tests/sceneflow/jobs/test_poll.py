"""Polling against two deadlines (design.md §3): time in the provider's queue and time running
are limited separately, so a long queue never cancels a job that had no chance to run. Plain
functions over a scripted adapter and a fake clock: no Prefect, no waiting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import GenerationTimeoutError
from sceneflow.jobs import ledger, poll
from sceneflow.jobs.poll import Deadlines, deadlines_for, wait_for_job
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Capabilities, Credentials
from sceneflow.settings import get_settings

CREDS = Credentials({"api_key": "k"})
Q, P, C = JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    monotonic = time

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Scripted:
    """Reports `script[i]` at the i-th poll (the last one repeats) and records cancels."""

    key = "runway"

    def __init__(self, script: list[JobStatus]) -> None:
        self.script, self.polls, self.cancels = script, 0, 0

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model="m",
            models={},
            credential_fields=["api_key"],
            can_cancel=True,
            connection_test="none",
            poll_interval=10,
            max_poll_interval=10,
            deadline=30,
            queue_deadline=100,
        )

    async def status(self, job_id: str, credentials: Credentials) -> StandardVideoResult:
        status = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        return StandardVideoResult(status=status, provider_job_id=job_id)

    async def cancel(self, job_id: str, credentials: Credentials) -> None:
        self.cancels += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(poll, "time", fake)
    return fake


@pytest.fixture
def job_id(sceneflow_env: Path) -> str:
    request = StandardVideoRequest(prompt="A slow model", aspect_ratio="16:9", motion_intensity=5)
    ref = ledger.prepare_job(user_id="ann", provider="runway", request=request)
    with session_scope() as session:
        store.update_job(session=session, job_id=ref.job_id, provider_job_id="task-1")
    return ref.job_id


async def wait(
    adapter: Scripted,
    job_id: str,
    clock: Clock,
    queued: float,
    running: float,
    sent: ledger.JobRef | None = None,
) -> Any:
    deadlines = Deadlines(started_at=clock.now, queued=queued, running=running)
    return await wait_for_job(
        adapter,  # type: ignore[arg-type]
        job_id,
        CREDS,
        user_id="ann",
        deadlines=deadlines,
        sent=sent,
        sleep=clock.sleep,
    )


def sent_ref(job_id: str) -> ledger.JobRef:
    """The job as its send left it: accepted, with its provider id."""
    with session_scope() as session:
        return ledger.job_ref(ledger.load_job(session, job_id))


def status_of(job_id: str) -> tuple[str, str | None]:
    with session_scope() as session:
        job = store.get_job(session=session, job_id=job_id)
        assert job is not None
        return job.status, job.error


async def test_a_long_queue_does_not_eat_the_running_time(clock: Clock, job_id: str) -> None:
    # 60 s queued, 20 s running: 80 s in all, well past the 30 s a job may run.
    adapter = Scripted([Q] * 7 + [P] * 2 + [C])
    result = await wait(adapter, job_id, clock, queued=100, running=30)
    assert result.status == C and adapter.cancels == 0
    # The provider is done; the job is COMPLETED only once its video is verified in place.
    assert status_of(job_id)[0] == "GENERATED"


async def test_a_job_stuck_in_the_queue_hits_the_queue_deadline(clock: Clock, job_id: str) -> None:
    adapter = Scripted([Q])
    with pytest.raises(GenerationTimeoutError) as e:
        await wait(adapter, job_id, clock, queued=50, running=30)
    assert str(e.value).startswith(
        "runway job task-1 did not start before its queue deadline (queued over 50 s); "
        "a cancel was sent. The job id is kept: `sceneflow status"
    )
    assert adapter.cancels == 1 and clock.now - 1_000_000 == pytest.approx(50)
    assert status_of(job_id) == ("TIMED_OUT", str(e.value))


async def test_the_running_deadline_counts_from_when_the_job_starts(
    clock: Clock, job_id: str
) -> None:
    adapter = Scripted([Q] * 4 + [P])  # seen running at 40 s, then never finishes
    with pytest.raises(
        GenerationTimeoutError, match=r"did not finish before its deadline \(ran over 30 s\)"
    ):
        await wait(adapter, job_id, clock, queued=100, running=30)
    assert clock.now - 1_000_000 == pytest.approx(70) and adapter.cancels == 1


async def test_both_limits_together_bound_a_job_that_flips_back_to_queued(
    clock: Clock, job_id: str
) -> None:
    # Running from the first poll, then reported queued again (a provider re-queues it): the
    # running clock keeps counting from the first start.
    adapter = Scripted([P, Q])
    with pytest.raises(GenerationTimeoutError, match="ran over 30 s"):
        await wait(adapter, job_id, clock, queued=100, running=30)
    assert clock.now - 1_000_000 == pytest.approx(30)


def test_deadlines_come_from_the_flow_then_settings_then_the_provider(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    caps = Scripted([Q]).capabilities()
    assert deadlines_for("runway", caps) == Deadlines(started_at=clock.now, queued=100, running=30)
    monkeypatch.setenv("SCENEFLOW_QUEUE_DEADLINES__RUNWAY", "7200")
    monkeypatch.setenv("SCENEFLOW_DEADLINES__RUNWAY", "600")
    get_settings.cache_clear()
    assert deadlines_for("runway", caps) == Deadlines(
        started_at=clock.now, queued=7200, running=600
    )
    assert deadlines_for("runway", caps, running=5).running == 5
    assert deadlines_for("luma", caps).queued == 100  # another provider's override is not ours


async def test_a_burst_of_status_errors_never_abandons_a_running_job(
    clock: Clock, job_id: str
) -> None:
    from sceneflow.errors import TransientError

    class Bursty(Scripted):
        async def status(self, provider_job_id: str, credentials: Credentials) -> Any:
            self.calls = getattr(self, "calls", 0) + 1
            if 2 <= self.calls <= 8:  # seven failed checks in a row
                raise TransientError("runway answered HTTP 502", provider="runway")
            return await super().status(provider_job_id, credentials)

    result = await wait(Bursty([P, P, C]), job_id, clock, queued=100, running=300)
    assert result.status == C
    assert status_of(job_id)[0] == "GENERATED"


def _status_attempts(job_id: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.exec(
                select(store.GenerationAttempt.detail)
                .where(store.GenerationAttempt.job_id == job_id)
                .where(store.GenerationAttempt.operation == "status")
                .order_by(col(store.GenerationAttempt.id))
            ).all()
        )


async def test_a_poll_that_only_repeats_what_the_send_recorded_writes_nothing(
    clock: Clock, job_id: str
) -> None:
    sent = sent_ref(job_id)
    assert sent.status == Q and sent.provider_job_id
    adapter = Scripted([Q, Q, P, C])
    result = await wait(adapter, job_id, clock, queued=100, running=100, sent=sent)
    assert result.status == C and adapter.polls == 4
    # The queue the send left it in is not news; every change after it is logged.
    assert _status_attempts(job_id) == ["PROCESSING 0%", "COMPLETED 0%"]
    assert status_of(job_id)[0] == JobStatus.GENERATED


def test_time_left_follows_the_pace_the_progress_shows() -> None:
    # A quarter done 2 s after it started: 6 s to go, aimed a little past the end.
    assert poll.time_left(25, 102.0, started=100.0) == pytest.approx(6 * poll.OVERSHOOT)
    assert poll.time_left(0, 102.0, started=100.0) is None  # no pace to go by
    assert poll.time_left(100, 102.0, started=100.0) is None
    assert poll.time_left(50, 100.0, started=100.0) is None


class Linear(Scripted):
    """A job accepted at `clock.now` that runs from 0 to 100% over `seconds`, reporting its
    progress, and records when it was polled."""

    def __init__(
        self, clock: Clock, seconds: float, interval: float, *, reports_progress: bool = True
    ) -> None:
        super().__init__([P])
        self.clock, self.start, self.seconds, self.interval = clock, clock.now, seconds, interval
        self.reports_progress = reports_progress
        self.polled_at: list[float] = []

    def capabilities(self) -> Capabilities:
        return (
            super()
            .capabilities()
            .model_copy(update={"poll_interval": self.interval, "max_poll_interval": 30})
        )

    async def status(self, job_id: str, credentials: Credentials) -> StandardVideoResult:
        elapsed = self.clock.now - self.start
        self.polled_at.append(elapsed)
        if elapsed >= self.seconds:
            return StandardVideoResult(status=C, provider_job_id=job_id, progress=100)
        progress = 100 * elapsed / self.seconds if self.reports_progress else 0
        return StandardVideoResult(status=P, provider_job_id=job_id, progress=progress)


async def test_polls_aim_at_the_end_the_progress_predicts(clock: Clock, job_id: str) -> None:
    adapter = Linear(clock, seconds=20, interval=1)
    result = await wait(adapter, job_id, clock, queued=100, running=100, sent=sent_ref(job_id))
    assert result.status == C
    # A just-accepted job is first asked after one interval, not at once.
    assert adapter.polled_at[0] == pytest.approx(1)
    # Backing off from 1 s asks seven times (at 1, 2, 3.5, 5.75, 9.1, 14.2 and 21.8 s, as the
    # same job without a progress figure shows below); the pace its progress shows brings it to
    # three, and the end is seen soon after it came.
    assert len(adapter.polled_at) == 3
    assert 20 <= adapter.polled_at[-1] <= 20 * 1.1


async def test_without_a_progress_figure_polls_back_off(clock: Clock, job_id: str) -> None:
    adapter = Linear(clock, seconds=20, interval=1, reports_progress=False)
    await wait(adapter, job_id, clock, queued=100, running=100, sent=sent_ref(job_id))
    assert adapter.polled_at == pytest.approx([1, 2, 3.5, 5.75, 9.125, 14.1875, 21.78125])
