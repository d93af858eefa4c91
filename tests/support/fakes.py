"""A scripted adapter for pipeline tests, registered in place of a real one with
`monkeypatch.setitem(adapters.REGISTRY, "runway", "tests.support.fakes:ScriptedAdapter")`.

The script is class-level because the pipeline builds its own adapter instances.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import adapters
from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, TransientError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import (
    Capabilities,
    Credentials,
    FieldMapping,
    Lookup,
    ModelCapabilities,
)
from tests.support.emulators._base import sample_mp4

SECRET = "sk-test-SUPERSECRET-0123456789abcdef"


@dataclass
class Script:
    transient_submit_failures: int = 0
    transient_status_failures: int = 0
    auth_fails: bool = False
    never_finishes: bool = False
    provider_fails: bool = False
    polls_to_finish: int = 2
    submits: list[str] = field(default_factory=list)
    status_calls: int = 0
    cancels: list[str] = field(default_factory=list)
    credentials_seen: list[str] = field(default_factory=list)


class ScriptedAdapter:
    key = "runway"
    script = Script()
    _ids = itertools.count(1)

    def __init__(self, *, client: object = None, base_url: str | None = None) -> None:
        self.polls: dict[str, int] = {}

    @classmethod
    def reset(cls, **kw: object) -> Script:
        cls.script = Script(**kw)  # type: ignore[arg-type]
        return cls.script

    def capabilities(self) -> Capabilities:
        every = {f: FieldMapping(support="native") for f in StandardVideoRequest.model_fields}
        return Capabilities(
            provider=self.key,
            default_model="fake-1",
            credential_fields=["api_key"],
            models={"fake-1": ModelCapabilities(fields=every, aspect_ratios=["16:9", "9:16"])},
            can_cancel=True,
            connection_test="none",
            poll_interval=0.05,
            max_poll_interval=0.1,
            deadline=30,
        )

    def validate(self, request: StandardVideoRequest) -> list[str]:
        return []

    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        return self.validate(request)

    def _check(self, credentials: Credentials) -> None:
        key = credentials.require("api_key", provider=self.key)
        self.script.credentials_seen.append(key)
        if self.script.auth_fails or key != SECRET:
            raise AuthError("runway answered HTTP 401: bad key", provider=self.key, status_code=401)

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        self._check(credentials)
        if self.script.transient_submit_failures:
            self.script.transient_submit_failures -= 1
            raise TransientError(
                "runway answered HTTP 503: busy", provider=self.key, status_code=503
            )
        job_id = f"fake-{next(self._ids)}"
        self.script.submits.append(job_id)
        return job_id

    async def status(self, job_id: str, credentials: Credentials) -> StandardVideoResult:
        self._check(credentials)
        self.script.status_calls += 1
        if self.script.transient_status_failures:
            self.script.transient_status_failures -= 1
            raise TransientError("runway answered HTTP 502", provider=self.key, status_code=502)
        if job_id in self.script.cancels:
            return StandardVideoResult(status=JobStatus.CANCELLED, provider_job_id=job_id)
        polls = self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if self.script.provider_fails and polls >= self.script.polls_to_finish:
            return StandardVideoResult(
                status=JobStatus.FAILED, provider_job_id=job_id, error_message="the model crashed"
            )
        if self.script.never_finishes or polls < self.script.polls_to_finish:
            return StandardVideoResult(
                status=JobStatus.PROCESSING, provider_job_id=job_id, progress=50
            )
        return StandardVideoResult(
            status=JobStatus.COMPLETED,
            provider_job_id=job_id,
            progress=100,
            video_url=f"https://cdn.example/{job_id}.mp4?sig=SIGNED-SECRET",
            cost=5,
        )

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup | None:
        return None  # like Runway: no way to list or query its jobs

    async def cancel(self, job_id: str, credentials: Credentials) -> None:
        self._check(credentials)
        self.script.cancels.append(job_id)

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path:
        self._check(credentials)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(sample_mp4(seconds=5.0))
        return destination

    async def test_connection(self, credentials: Credentials) -> None:
        self._check(credentials)

    async def aclose(self) -> None:
        return None


def install(monkeypatch: Any, user_id: str) -> type[ScriptedAdapter]:
    """Register the scripted adapter as Runway, with a fresh script and `user_id`'s stored key
    (the `fake_runway` fixtures of the pipeline tests)."""
    monkeypatch.setitem(adapters.REGISTRY, "runway", "tests.support.fakes:ScriptedAdapter")
    ScriptedAdapter.reset()
    with session_scope() as session:
        store.put_credentials(
            session=session, user_id=user_id, provider="runway", credentials={"api_key": SECRET}
        )
    return ScriptedAdapter
