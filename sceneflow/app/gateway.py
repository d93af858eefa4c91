"""VideoGenerationGateway: the application-facing API. Every method returns a GatewayResponse.

    gateway = VideoGenerationGateway()
    response = await gateway.trigger_generation("alice", request, "runway")
    if response.success:
        job_id = response.data.provider_details["job_id"]

Failures a user can act on (bad input, missing or rejected credentials, provider errors) come
back as `success=False` with the error's class in `error` and how to fix it in `message`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from pydantic import ValidationError

import adapters
from adapters import Provider
from flows.generate import generate_video
from sceneflow import credentials, store
from sceneflow.db import session_scope
from sceneflow.errors import (
    ConfigError,
    NotFoundError,
    ProviderError,
    RequestValidationError,
    SceneFlowError,
)
from sceneflow.jobs import download, ledger, submit
from sceneflow.models import (
    GatewayResponse,
    JobStatus,
    StandardVideoRequest,
    StandardVideoResult,
    format_validation_error,
)
from sceneflow.providers import Capabilities, Credentials, VideoAdapter, validate_request
from sceneflow.tables import GenerationJob

__all__ = ["VideoGenerationGateway"]

T = TypeVar("T")


async def _respond(work: Awaitable[T], message: str | None = None) -> GatewayResponse[T]:
    try:
        data = await work
    except SceneFlowError as e:
        return GatewayResponse(success=False, error=type(e).__name__, message=str(e))
    return GatewayResponse(success=True, data=data, message=message)


class VideoGenerationGateway:
    """One object for application code: trigger, check, cancel, list, test."""

    def get_adapter(self, provider: str) -> VideoAdapter:
        """The adapter for `provider`; raises UnknownProviderError listing the known keys."""
        return adapters.get_adapter(provider)

    async def trigger_generation(
        self,
        user_id: str,
        request: StandardVideoRequest,
        provider: str,
        *,
        wait: bool = False,
        output_dir: str = "outputs",
        force: bool = False,
        audio: bool | None = None,
        options: dict[str, Any] | None = None,
        strict: bool = False,
    ) -> GatewayResponse[StandardVideoResult]:
        """Submit a generation. With `wait=True`, run the whole generate_video flow (poll,
        download, record) and return the finished result.

        `audio` (when not None) and `options` (merged over the request's own) set those fields
        of `request`. With `strict`, a request the provider would run without a field it sets
        is refused (RequestValidationError) before anything is sent."""
        try:
            request = _with(request, audio=audio, options=options)
        except SceneFlowError as e:
            return GatewayResponse(success=False, error=type(e).__name__, message=str(e))
        if wait:
            work = self._run_flow(user_id, request, provider, output_dir, force, strict)
            return await _respond(work)
        return await _respond(self._submit(user_id, request, provider, force, strict))

    async def _run_flow(
        self,
        user_id: str,
        request: StandardVideoRequest,
        provider: str,
        output_dir: str,
        force: bool,
        strict: bool,
    ) -> StandardVideoResult:
        adapters.adapter_class(provider)  # UnknownProviderError names the known keys
        return await generate_video(
            user_id, Provider(provider), request, output_dir, force, strict=strict
        )

    async def _submit(
        self,
        user_id: str,
        request: StandardVideoRequest,
        provider: str,
        force: bool,
        strict: bool = False,
    ) -> StandardVideoResult:
        adapter = self.get_adapter(provider)
        try:
            if strict and getattr(adapter, "schema_credentials", None) is not None:
                # A Replicate or fal model outside the built-in tables (the adapters that read
                # a schema in `prepare` declare schema_credentials): read its schema first, so
                # strict checks the request against it rather than refusing it unread. The
                # contract's own checks come before anything is read.
                validate_request(adapter, request)
                await adapter.prepare(
                    request, credentials.open_credentials(user_id, adapter.capabilities())
                )
            warnings = validate_request(adapter, request, strict=strict)
            opened = credentials.open_credentials(user_id, adapter.capabilities())
            job = ledger.prepare_job(
                user_id=user_id, provider=provider, request=request, regenerate=force
            )
            job = await self._submit_claimed(adapter, job, opened, user_id)
        finally:
            await adapter.aclose()
        return StandardVideoResult(
            status=job.status,
            provider_job_id=job.provider_job_id,
            provider_details={"job_id": job.job_id, "warnings": warnings},
        )

    @staticmethod
    async def _submit_claimed(
        adapter: VideoAdapter, job: ledger.JobRef, opened: Credentials, user_id: str
    ) -> ledger.JobRef:
        """The submit step of the one job engine: under the job's claim, settled by the same
        policy as the flows' jobs."""
        owner = ledger.run_owner()
        await ledger.hold(job.job_id, owner)
        try:
            return await submit.submit_job(adapter, job.job_id, opened, user_id=user_id)
        except SceneFlowError as e:
            ledger.settle(job.job_id, e, user_id)
            raise
        finally:
            ledger.release(job.job_id, owner)

    async def check_generation_status(
        self, user_id: str, provider: str, job_id: str, *, output_dir: str = "outputs"
    ) -> GatewayResponse[StandardVideoResult]:
        """Ask the provider where the job stands (a finished job is answered from the table).
        A job the provider has finished is downloaded to `output_dir` at once (outputs
        expire) and verified: only then does it come back COMPLETED, with its output_path."""
        return await _respond(self._status(user_id, provider, job_id, output_dir))

    async def _status(
        self, user_id: str, provider: str, job_id: str, output_dir: str
    ) -> StandardVideoResult:
        job = ledger.find_owned_job(user_id, provider, job_id)
        if ledger.video_in_place(job.id) or not job.provider_job_id:
            return _from_row(job)
        owner = ledger.run_owner()
        if ledger.claim(job.id, owner) is not None:
            # A run is working on the job (polling it, fetching it): its row is the answer.
            return _from_row(job)
        adapter = self.get_adapter(provider)
        try:
            opened = credentials.open_credentials(user_id, adapter.capabilities())
            result = await adapter.status(job.provider_job_id, opened)
            ledger.record_status(job.id, result, changed=result.status.value != job.status)
            if result.status == JobStatus.COMPLETED:
                done = await download.download_job(
                    adapter, job.id, result, opened, output_dir=output_dir
                )
                result.output_path = done.output_path
        except SceneFlowError as e:
            ledger.settle(job.id, e, user_id)
            raise
        finally:
            ledger.release(job.id, owner)
            await adapter.aclose()
        result.provider_details["job_id"] = job.id
        return result

    async def cancel_generation(
        self, user_id: str, provider: str, job_id: str
    ) -> GatewayResponse[StandardVideoResult]:
        """Cancel at the provider where it can; mark the job CANCELLED either way."""
        return await _respond(self._cancel(user_id, provider, job_id))

    async def _cancel(self, user_id: str, provider: str, job_id: str) -> StandardVideoResult:
        job = ledger.find_owned_job(user_id, provider, job_id)
        if not ledger.cancellable(job):
            raise NotFoundError(
                f"Job {job.id} is already {job.status}; there is nothing to cancel."
            )
        owner = ledger.run_owner()
        if holder := ledger.claim(job.id, owner):
            raise ConfigError(
                f"Job {job.id} is being run by {holder}; stop that run first (Ctrl-C stops a "
                "batch and keeps its jobs), then cancel the job."
            )
        adapter = self.get_adapter(provider)
        note = "the provider has no cancel call; SceneFlow stopped tracking the job"
        try:
            caps = adapter.capabilities()
            if job.provider_job_id and caps.can_cancel:
                opened = credentials.open_credentials(user_id, caps)
                await adapter.cancel(job.provider_job_id, opened)
                note = "cancel sent to the provider"
            return _from_row(ledger.cancel_job(job.id, note))
        finally:
            ledger.release(job.id, owner)
            await adapter.aclose()

    async def get_available_providers(self, user_id: str) -> GatewayResponse[list[dict[str, Any]]]:
        """Providers this user can use now: keyless ones, and those with credentials not
        known to be rejected."""

        async def work() -> list[dict[str, Any]]:
            with session_scope() as session:
                configs = {
                    c.provider_name: c for c in store.list_configs(session=session, user_id=user_id)
                }
            available = []
            for key in adapters.known():
                caps = self.get_adapter(key).capabilities()
                config = configs.get(key)
                if caps.credential_fields and (config is None or config.is_valid is False):
                    continue
                available.append(
                    {
                        "provider": key,
                        "needs_credentials": bool(caps.credential_fields),
                        "is_valid": config.is_valid if config else None,
                    }
                )
            return available

        return await _respond(work())

    async def get_provider_capabilities(self, provider: str) -> GatewayResponse[Capabilities]:
        async def work() -> Capabilities:
            return self.get_adapter(provider).capabilities()

        return await _respond(work())

    async def test_provider_connection(self, user_id: str, provider: str) -> GatewayResponse[bool]:
        """Make the provider's cheapest authenticated call and update is_valid."""

        async def work() -> bool:
            valid = await credentials.check_credentials(self.get_adapter(provider), user_id)
            if not valid:
                raise ProviderError(
                    f"{provider} rejected the stored credentials of {user_id!r}; store working "
                    f"ones with `sceneflow creds set {user_id} {provider}`.",
                    provider=provider,
                )
            return valid

        return await _respond(work(), message=f"{provider} accepted the credentials")


def _with(
    request: StandardVideoRequest, *, audio: bool | None, options: dict[str, Any] | None
) -> StandardVideoRequest:
    """`request` with the gateway's audio and options arguments applied, validated again."""
    if audio is None and not options:
        return request
    data = request.model_dump(exclude_unset=True)
    if audio is not None:
        data["audio"] = audio
    if options:
        data["options"] = {**request.options, **options}
    try:
        return StandardVideoRequest.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(format_validation_error(e)) from None


def _from_row(job: GenerationJob) -> StandardVideoResult:
    return StandardVideoResult(
        status=JobStatus(job.status),
        provider_job_id=job.provider_job_id,
        progress=job.progress,
        output_path=job.output_path,
        error_message=job.error,
        cost=job.cost,
        provider_details={"job_id": job.id},
    )
