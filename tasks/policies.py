"""Retry options for every SceneFlow task that calls a provider, defined once.

Adapters make one attempt; Prefect retries. Only what `sceneflow.errors.is_retryable` says
(transient failures and rate limits) is retried, with exponential backoff and jitter, and a rate
limit waits at least its Retry-After.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.tasks import exponential_backoff

from sceneflow.errors import RateLimitedError, is_retryable

# A provider asking for more than this is treated as an outage, not a pause.
MAX_RETRY_AFTER = 120.0
RETRY_BASE_DELAY = 1.0


def failure_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    return data if isinstance(data, BaseException) else None


async def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient errors and rate limits, nothing else."""
    error = failure_of(state)
    if isinstance(error, RateLimitedError) and error.retry_after:
        # Prefect's own backoff follows this wait, so the next try comes after Retry-After.
        await asyncio.sleep(min(error.retry_after, MAX_RETRY_AFTER))
    return error is not None and is_retryable(error)


RETRY_OPTIONS: dict[str, Any] = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(RETRY_BASE_DELAY)(4),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
