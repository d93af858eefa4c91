"""Google's long-running operations, as both Veo endpoints speak them.

A generation is a `google.longrunning.Operation`: the submit answers `{"name": ...}`; reading
that name again gives `done` and then either `error` (a `google.rpc.Status`) or `response`. The
Gemini API and Vertex differ only in the call that reads an operation and in how `response`
holds the video; the state machine and the error shape are the same. There is no progress and
no finer state than "not done".

Wire format: https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/predictLongRunning
and the official SDK `google-genai` 2.34.0 (`operations.py`, `_GenerateVideosOperation_from_*`).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from sceneflow.errors import ModerationError
from sceneflow.models import JobStatus, StandardVideoResult

__all__ = [
    "ErrorBody",
    "FilteredMedia",
    "Operation",
    "OperationError",
    "error_reasons",
    "result_of",
]

R = TypeVar("R", bound=BaseModel)


class OperationError(BaseModel):
    """google.rpc.Status, as in an operation's `error` and in error replies."""

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] = []


class ErrorBody(BaseModel):
    """A Google error reply: `{"error": google.rpc.Status}`."""

    error: OperationError


class FilteredMedia(BaseModel):
    """What Google's Responsible-AI filter withheld, in either endpoint's response."""

    raiMediaFilteredCount: int | None = None
    raiMediaFilteredReasons: list[str] = []


class Operation(BaseModel, Generic[R]):
    """An operation whose `response` has the endpoint's own shape `R`."""

    name: str
    done: bool = False
    error: OperationError | None = None
    response: R | None = None


def error_reasons(response: httpx.Response) -> str:
    """The `reason`s of an error reply's details (e.g. API_KEY_INVALID), space-separated."""
    try:
        error = ErrorBody.model_validate_json(response.content).error
    except ValueError:
        return ""
    return " ".join(str(d.get("reason", "")) for d in error.details)


def result_of(
    op: Operation[Any], media: FilteredMedia, *, provider: str, video_url: str | None, samples: int
) -> StandardVideoResult:
    """The operation as a standard result: QUEUED until done, then FAILED (`error`, or no
    video) or COMPLETED with `video_url`. Raises ModerationError when Google's safety filter
    withheld the video: the job ends there, with Google's reasons."""
    if not op.done:
        return StandardVideoResult(status=JobStatus.QUEUED, provider_job_id=op.name)
    details: dict[str, Any] = {"samples": samples}
    failed = {"status": JobStatus.FAILED, "provider_job_id": op.name}
    if op.error is not None:
        code = op.error.status or op.error.code
        return StandardVideoResult(
            **failed,
            error_message=op.error.message or f"operation failed with {code}",
            provider_details=details | {"error_code": code},
        )
    filtered, reasons = media.raiMediaFilteredCount, media.raiMediaFilteredReasons
    if filtered:
        details |= {"rai_media_filtered_count": filtered, "rai_media_filtered_reasons": reasons}
    if video_url is None and filtered:
        why = "; ".join(reasons) or f"{filtered} video(s) withheld, no reason given"
        raise ModerationError(
            f"{provider}: operation {op.name} was blocked by the safety filter: {why}",
            provider=provider,
        )
    if video_url is None:
        return StandardVideoResult(
            **failed,
            error_message="the operation finished without a video",
            provider_details=details,
        )
    return StandardVideoResult(
        status=JobStatus.COMPLETED,
        provider_job_id=op.name,
        progress=100,
        video_url=video_url,
        provider_details=details,
    )
